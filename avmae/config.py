"""From the workflow config to the settings of one run, and the run's name.

A run's name holds the choices that define it in the paper's tables (dataset, model
size, modalities, encoder, decoder, objective, epochs), so runs are shared between
tables with no bookkeeping. Every other value reaches the run through its settings,
which the workflow passes as rule parameters: editing one reruns exactly what depends
on it.

Names read ``{dataset}_{size}_{modalities}_{encoder}-{decoder}_{objective}_e{epochs}``,
e.g. ``vggsound_base_av_mid-shared_joint_e400`` or ``vggsound_base_audio_separate-shared_joint_e400``
(an "AudioMAE"). Objectives are written without their underscore (``inpaintvideo``).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from avmae.data.audio import AudioInput
from avmae.models.objectives import MODALITY_SETS, OBJECTIVES

OBJECTIVE_NAMES = {o.replace("_", ""): o for o in OBJECTIVES}
RUN_PATTERN = re.compile(
    r"(?P<dataset>[a-z0-9]+)_(?P<size>[a-z0-9]+)_(?P<modalities>av|audio|video)"
    r"_(?P<encoder>early|separate|shared|mid)-(?P<decoder>early|separate|shared)"
    rf"_(?P<objective>{'|'.join(OBJECTIVE_NAMES)})_e(?P<epochs>[0-9]+)")
# The same pattern without group names, as Snakemake wildcard constraints need it.
RUN_CONSTRAINT = re.sub(r"\(\?P<\w+>", "(?:", RUN_PATTERN.pattern)


@dataclass(frozen=True)
class PretrainRun:
    dataset: str
    size: str
    encoder: str
    decoder: str
    objective: str = "joint"
    epochs: int = 1
    modalities: str = "av"

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {tuple(OBJECTIVES)}, got {self.objective!r}")
        if self.modalities not in MODALITY_SETS:
            raise ValueError(f"modalities must be one of {tuple(MODALITY_SETS)}, got {self.modalities!r}")

    @property
    def name(self) -> str:
        return (f"{self.dataset}_{self.size}_{self.modalities}_{self.encoder}-{self.decoder}"
                f"_{self.objective.replace('_', '')}_e{self.epochs}")

    @classmethod
    def parse(cls, name: str) -> "PretrainRun":
        m = RUN_PATTERN.fullmatch(name)
        if not m:
            raise ValueError(f"not a pretraining run name: {name!r} (expected {RUN_PATTERN.pattern})")
        d = m.groupdict()
        return cls(**{**d, "objective": OBJECTIVE_NAMES[d["objective"]], "epochs": int(d["epochs"])})


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override``'s values, merged key by key into nested mappings."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def typed_overrides(value):
    """``--config`` values with their string leaves read as YAML (``"2"`` -> 2, ``"[1, 2]"`` ->
    [1, 2]): Snakemake reads a nested ``--config 'tables={decimals: 2}'`` with YAML's base
    loader, which leaves every leaf a string."""
    import yaml

    if isinstance(value, dict):
        return {k: typed_overrides(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed_overrides(v) for v in value]
    return yaml.safe_load(value) if isinstance(value, str) else value


def model_settings(config: dict, run: PretrainRun) -> dict:
    """The ``ModelConfig`` fields of a run (``model``, with ``model.by_dataset[run.dataset]``
    merged over it, e.g. AudioSet's audio mask ratio). ``joint_layers`` is kept only for a
    mid-fusion encoder, the one that uses it, so editing it reruns only mid-fusion runs."""
    model = copy.deepcopy(config["model"])
    model.pop("size")  # the run names its own size
    model = deep_merge(model, model.pop("by_dataset", {}).get(run.dataset, {}))
    if run.encoder != "mid":
        model.pop("joint_layers", None)
    if run.size not in config["sizes"]:
        raise KeyError(f"model size {run.size!r} is not defined under 'sizes' in the config")
    return {**model, **copy.deepcopy(config["sizes"][run.size]), "encoder_strategy": run.encoder,
            "decoder_strategy": run.decoder, "objective": run.objective,
            "modalities": list(MODALITY_SETS[run.modalities])}


def pretrain_settings(config: dict, run: PretrainRun) -> dict:
    """``pretrain``, with ``pretrain.by_dataset[run.dataset]`` merged over it (e.g. AudioSet's lr
    and 10 s audio); its merged ``input`` is checked (:class:`avmae.data.audio.AudioInput`),
    so a bad audio mode stops the workflow when it plans, naming the key."""
    stage = copy.deepcopy(config["pretrain"])
    stage = deep_merge(stage, stage.pop("by_dataset", {}).get(run.dataset, {}))
    stage["epochs"] = run.epochs
    del stage["dataset"]
    AudioInput.from_config(stage["input"], f"pretrain.input (with by_dataset.{run.dataset})")
    return {"seed": config["seed"], "model": model_settings(config, run), "pretrain": stage}


def finetune_settings(config: dict, run: PretrainRun, target: str) -> dict:
    """Finetuning of ``run`` on dataset ``target``: ``finetune``, with ``finetune.by_dataset[target]``
    merged over it, and the MBT fusion layer of the run's model size."""
    stage = copy.deepcopy(config["finetune"])
    stage = deep_merge(stage, stage.pop("by_dataset", {}).get(target, {}))
    fusion = stage["mbt"]["fusion_layer"]
    if run.size not in fusion:
        raise KeyError(f"finetune.mbt.fusion_layer has no entry for model size {run.size!r} "
                       f"(target dataset {target!r})")
    stage["mbt"]["fusion_layer"] = fusion[run.size]
    AudioInput.from_config(stage["input"], f"finetune.input (with by_dataset.{target})")
    return {"seed": config["seed"], "model": model_settings(config, run), "finetune": stage}


def default_run(config: dict, encoder: str, decoder: str, objective: str = "joint",
                modalities: str = "av") -> PretrainRun:
    p = config["pretrain"]
    return PretrainRun(p["dataset"], config["model"]["size"], encoder, decoder, objective, p["epochs"],
                       modalities)


def table1_runs(config: dict) -> list[PretrainRun]:
    t = config["tables"]["table1"]
    return [default_run(config, enc, dec, t["objective"]) for enc, dec in t["rows"]]
