"""From the workflow config to the settings of one run, and the run's name.

A run's name holds the choices that define it in the paper's tables (dataset, model
size, encoder, decoder, objective, epochs), so runs are shared between tables with
no bookkeeping. Every other value reaches the run through its settings, which the
workflow passes as rule parameters: editing one reruns exactly what depends on it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

RUN_PATTERN = re.compile(
    r"(?P<dataset>[a-z0-9]+)_(?P<size>[a-z0-9]+)_(?P<encoder>early|separate|shared|mid)"
    r"-(?P<decoder>early|separate|shared)_(?P<objective>[a-z0-9]+)_e(?P<epochs>[0-9]+)")
# The same pattern without group names, as Snakemake wildcard constraints need it.
RUN_CONSTRAINT = re.sub(r"\(\?P<\w+>", "(?:", RUN_PATTERN.pattern)


@dataclass(frozen=True)
class PretrainRun:
    dataset: str
    size: str
    encoder: str
    decoder: str
    objective: str
    epochs: int

    @property
    def name(self) -> str:
        return (f"{self.dataset}_{self.size}_{self.encoder}-{self.decoder}_{self.objective}"
                f"_e{self.epochs}")

    @classmethod
    def parse(cls, name: str) -> "PretrainRun":
        m = RUN_PATTERN.fullmatch(name)
        if not m:
            raise ValueError(f"not a pretraining run name: {name!r} (expected {RUN_PATTERN.pattern})")
        d = m.groupdict()
        return cls(**{**d, "epochs": int(d["epochs"])})


def model_settings(config: dict, run: PretrainRun) -> dict:
    """The ``ModelConfig`` fields of a run."""
    model = copy.deepcopy(config["model"])
    model.pop("size")  # the run names its own size
    if run.size not in config["sizes"]:
        raise KeyError(f"model size {run.size!r} is not defined under 'sizes' in the config")
    if run.objective != "joint":
        raise ValueError(f"objective {run.objective!r}: only 'joint' reconstruction is implemented so far")
    return {**model, **copy.deepcopy(config["sizes"][run.size]),
            "encoder_strategy": run.encoder, "decoder_strategy": run.decoder}


def pretrain_settings(config: dict, run: PretrainRun) -> dict:
    stage = copy.deepcopy(config["pretrain"])
    stage["epochs"] = run.epochs
    del stage["dataset"]
    return {"seed": config["seed"], "model": model_settings(config, run), "pretrain": stage}


def finetune_settings(config: dict, run: PretrainRun) -> dict:
    return {"seed": config["seed"], "model": model_settings(config, run),
            "finetune": copy.deepcopy(config["finetune"])}


def default_run(config: dict, encoder: str, decoder: str, objective: str = "joint") -> PretrainRun:
    p = config["pretrain"]
    return PretrainRun(p["dataset"], config["model"]["size"], encoder, decoder, objective, p["epochs"])


def table1_runs(config: dict) -> list[PretrainRun]:
    t = config["tables"]["table1"]
    return [default_run(config, enc, dec, t["objective"]) for enc, dec in t["rows"]]
