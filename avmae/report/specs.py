"""From the config's ``tables:`` section to table specs: which run fills which cell.

A spec is plain JSON (the workflow passes it to ``avmae table --spec`` as a rule
parameter, so editing a table's config reruns that table alone):

``{"name", "title", "label_columns", "columns", "rows", "datasets", "notes", "decimals", "profile"}``

Each row has ``labels`` (label column -> text), ``quoted`` (a row the paper quotes from
another work: paper values only) and ``cells`` (column -> ``{"paper": value}`` plus, for
our rows, ``"metrics"``: the finetuning ``metrics.json`` and ``"key"``: the metric in it).
``datasets`` maps each dataset the table uses to its features ``meta.json`` and
``availability.json`` (footnote: clip counts). ``profile`` is the config's: the paper's
numbers stand beside ours in every profile, the differences (ours - paper) only in the
paper profile; a toy table's notes say what the toy can and cannot show
(:func:`profile_notes`).

Runs are named by :class:`avmae.config.PretrainRun`, so a run that two tables use (Table
1's mid/shared row is Table 3's AV-MAE row) is one path, computed once.

Epochs: every epoch count below is the paper's. A run trains for
``round(paper epochs x tables.epoch_scale)`` epochs (toy: 0.1, so 200/400/800/1200 become
20/40/80/120 and Table 5 keeps its shape). The ablations (Tables 1-3) run at
``pretrain.epochs`` and ``model.size``, the paper's 400 epochs of ViT-B (toy: 40 = 400 x
0.1). Sizes: ``tables.sizes`` maps the paper's backbones (base, large) to entries of
``sizes`` (toy: two toy transformers).
"""

from __future__ import annotations

import json
import re

from avmae.config import PretrainRun, default_run, table1_runs
from avmae.report import paper_numbers as P

TABLES = ("table1", "table2", "table3", "table4", "table5", "table6", "table7a", "table7b", "table7c")
# what the labels of each list format are (as workflow/rules/common.smk), and their metric
LABEL_KINDS = {"vggsound": "single", "audioset": "multi", "epic": "verb_noun", "clips": "single"}
METRIC = {"single": "top1", "multi": "mAP", "verb_noun": "action_top1"}
METRIC_NAMES = {"top1": "top-1 %", "mAP": "mAP %", "action_top1": "action top-1 %",
                "verb_top1": "verb top-1 %", "noun_top1": "noun top-1 %"}
DATASET_LABELS = {"vggsound": "VGGSound", "audioset": "AudioSet", "epic": "Epic Kitchens"}
ENCODERS = {"early": "Early fusion", "separate": "Separate", "shared": "Shared", "mid": "Mid-fusion"}
DECODERS = {"early": "Early", "separate": "Separate", "shared": "Shared"}
MODALITIES = (("audio", "Audio-only"), ("video", "Video-only"), ("av", "Audiovisual"))
OBJECTIVE_LABELS = {"joint": "Joint reconstruction", "inpaint_video": "Inpainting (video from audio)",
                    "inpaint_audio": "Inpainting (audio from video)",
                    "inpaint_both": "Inpainting (both modalities)"}
PRETRAIN_LABELS = {"audio": "AudioMAE", "video": "VideoMAE", "av": "Audiovisual MAE"}
SIZE_LABELS = {"base": "Base", "large": "Large"}
TITLES = {
    "table1": "Table 1: pretraining architectures (encoder x decoder)",
    "table2": "Table 2: pretraining objectives (early-fusion encoder, shared decoder)",
    "table3": "Table 3: unimodal vs audiovisual pretraining",
    "table4": "Table 4: transfer across pretraining and finetuning datasets (audiovisual)",
    "table5": "Table 5: pretraining epochs (audiovisual finetuning)",
    "table6": "Table 6: backbone size (audiovisual top-1 on VGGSound)",
    "table7a": "Table 7a: state of the art on VGGSound (top-1)",
    "table7b": "Table 7b: state of the art on AudioSet (mAP)",
    "table7c": "Table 7c: state of the art on Epic Kitchens (top-1)",
}


def finetune_metrics(run: PretrainRun | str, target: str, modality: str) -> str:
    """The ``metrics.json`` of finetuning ``run`` on ``target`` with ``modality`` (rule finetune)."""
    name = run if isinstance(run, str) else run.name
    return f"results/finetune/{name}/{target}_{modality}/metrics.json"


def metric_of(config: dict, dataset: str) -> str:
    """The paper's metric of a finetuning dataset: top1, mAP or action_top1 (by its labels)."""
    if dataset not in config["datasets"]:
        raise KeyError(f"dataset {dataset!r} is used by a table but not defined under 'datasets' in the config")
    ds = config["datasets"][dataset]
    return METRIC[ds.get("labels", LABEL_KINDS[ds.get("format", "vggsound")])]


def scaled_epochs(config: dict, paper_epochs: int) -> int:
    """Epochs a run trains for the paper's ``paper_epochs`` (``tables.epoch_scale``)."""
    return max(1, round(paper_epochs * config["tables"]["epoch_scale"]))


def size_of(config: dict, paper_size: str) -> str:
    sizes = config["tables"]["sizes"]
    if paper_size not in sizes:
        raise KeyError(f"tables.sizes has no entry for the paper's {paper_size!r} backbone")
    if sizes[paper_size] not in config["sizes"]:
        raise KeyError(f"tables.sizes.{paper_size} = {sizes[paper_size]!r} is not defined under 'sizes'")
    return sizes[paper_size]


def av_run(config: dict, dataset: str, paper_size: str, paper_epochs: int) -> PretrainRun:
    """The paper's default AV-MAE (mid-fusion encoder, shared decoder, joint objective)."""
    t = config["tables"]
    return PretrainRun(dataset, size_of(config, paper_size), t["encoder"], t["decoder"], "joint",
                       scaled_epochs(config, paper_epochs))


def cell(config: dict, run: PretrainRun | str, target: str, modality: str, paper, key: str | None = None) -> dict:
    return {"metrics": finetune_metrics(run, target, modality), "key": key or metric_of(config, target),
            "paper": paper}


def _ours(labels: dict, cells: dict) -> dict:
    return {"labels": labels, "quoted": False, "cells": cells}


def _quoted(labels: dict, values: dict) -> dict:
    return {"labels": labels, "quoted": True, "cells": {c: {"paper": v} for c, v in values.items()}}


def _modality_cells(config: dict, run, target: str, paper) -> dict:
    return {label: cell(config, run, target, mod, paper[i] if paper else None)
            for i, (mod, label) in enumerate(MODALITIES)}


# ----------------------------------------------------------------------------- tables
def _table1(config):
    t, pre = config["tables"]["table1"], config["pretrain"]
    rows = [_ours({"Encoder": ENCODERS[run.encoder], "Decoder": DECODERS[run.decoder]},
                  _modality_cells(config, run, pre["dataset"], P.TABLE1.get((run.encoder, run.decoder))))
            for run in table1_runs(config)]
    return (["Encoder", "Decoder"], [m[1] for m in MODALITIES], rows, [pre["dataset"]],
            [f"Paper: ViT-B, 400 epochs of pretraining on VGGSound ({t['objective']} objective)."])


def _table2(config):
    t, pre = config["tables"]["table2"], config["pretrain"]
    rows = []
    for objective in t["objectives"]:
        run = default_run(config, t["encoder"], t["decoder"], objective)
        rows.append(_ours({"Objective": OBJECTIVE_LABELS[objective]},
                          _modality_cells(config, run, pre["dataset"], P.TABLE2.get(objective))))
    return (["Objective"], [m[1] for m in MODALITIES], rows, [pre["dataset"]],
            [f"Ours: {ENCODERS[t['encoder']]} encoder, {DECODERS[t['decoder']]} decoder. "
             "Paper: ViT-B, 400 epochs on VGGSound, early-fusion encoder, shared decoder."])


def unimodal_run(config: dict, modality: str, size: str, epochs: int) -> PretrainRun:
    enc, dec = config["tables"]["table3"]["unimodal"]
    return PretrainRun(config["pretrain"]["dataset"], size, enc, dec, "joint", epochs, modality)


def two_maes_run(config: dict, size: str, epochs: int) -> PretrainRun:
    """The Sec. 4.2 baseline: an AudioMAE and a VideoMAE side by side, i.e. separate encoders
    and separate decoders (two uncoupled MAEs, paper Sec. 3.3); rule two_maes builds it."""
    return PretrainRun(config["pretrain"]["dataset"], size, "separate", "separate", "joint", epochs, "av")


def _table3(config):
    t, pre = config["tables"]["table3"], config["pretrain"]
    ds, size, epochs = pre["dataset"], config["model"]["size"], pre["epochs"]
    rows = []
    for modalities in ("audio", "video", "av"):
        run = (default_run(config, config["tables"]["encoder"], config["tables"]["decoder"]) if modalities == "av"
               else unimodal_run(config, modalities, size, epochs))
        rows.append(_ours({"Pretraining": PRETRAIN_LABELS[modalities]},
                          _modality_cells(config, run, ds, P.TABLE3[modalities])))
    notes = ["Paper: ViT-B, 400 epochs on VGGSound; a unimodal MAE initialises both MBT streams."]
    if t.get("baseline_epochs"):
        # Sec. 4.2: two unimodal MAEs initialising MBT vs the AV-MAE, both at baseline_epochs.
        e, size = scaled_epochs(config, t["baseline_epochs"]), size_of(config, "base")
        av = av_run(config, ds, "base", t["baseline_epochs"])
        label = f"{t['baseline_epochs']} epochs, Sec. 4.2"
        rows.append(_ours({"Pretraining": f"AudioMAE + VideoMAE ({label})"},
                          {"Audiovisual": cell(config, two_maes_run(config, size, e), ds, "av",
                                               P.SEC42_BASELINE["two_maes"])}))
        rows.append(_ours({"Pretraining": f"Audiovisual MAE ({label})"},
                          {"Audiovisual": cell(config, av, ds, "av", P.SEC42_BASELINE["av"])}))
        notes.append("Sec. 4.2 rows: an AudioMAE's and a VideoMAE's encoders initialise one MBT "
                     "stream each (paper: ViT-B, 800 epochs).")
    return ["Pretraining"], [m[1] for m in MODALITIES], rows, [ds], notes


def _table4(config):
    t = config["tables"]["table4"]
    rows = []
    for pre_ds, paper_epochs in t["pretrain"].items():
        run = av_run(config, pre_ds, t["size"], paper_epochs)
        rows.append(_ours({"Pretrain": f"{DATASET_LABELS.get(pre_ds, pre_ds)} ({paper_epochs} ep)"},
                          {DATASET_LABELS.get(ft, ft): cell(config, run, ft, "av", P.TABLE4.get((pre_ds, ft)))
                           for ft in t["targets"]}))
    used = list(dict.fromkeys([*t["pretrain"], *t["targets"]]))
    return (["Pretrain"], [DATASET_LABELS.get(ft, ft) for ft in t["targets"]], rows, used,
            ["Finetune (columns): audiovisual; VGGSound top-1, AudioSet mAP, Epic Kitchens action top-1. "
             "Paper: ViT-L, equal iterations (800 epochs VGGSound, 80 epochs AudioSet = 10x VGGSound)."])


def _table5(config):
    t = config["tables"]["table5"]
    rows = []
    for ft in t["targets"]:
        cells = {}
        for e in t["epochs"]:
            run = av_run(config, t["pretrain"], t["size"], e)
            cells[str(e)] = cell(config, run, ft, "av", P.TABLE5.get(ft, {}).get(e))
        rows.append(_ours({"Finetune": DATASET_LABELS.get(ft, ft)}, cells))
    return (["Finetune"], [str(e) for e in t["epochs"]], rows, list(dict.fromkeys([t["pretrain"], *t["targets"]])),
            [f"Columns: the paper's pretraining epochs on {DATASET_LABELS.get(t['pretrain'], t['pretrain'])}; "
             "audiovisual finetuning (VGGSound top-1, Epic Kitchens action top-1). Paper: ViT-L."])


def _table6(config):
    t = config["tables"]["table6"]
    ds = config["pretrain"]["dataset"]
    rows = [_quoted({"Initialisation": "ImageNet-21K [52] (Supervised)"},
                    {SIZE_LABELS[s]: P.TABLE6["in21k"][s] for s in t["sizes"]}),
            _ours({"Initialisation": "Audiovisual MAE (Self-supervised)"},
                  {SIZE_LABELS[s]: cell(config, av_run(config, ds, s, t["epochs"]), ds, "av", P.TABLE6["avmae"][s])
                   for s in t["sizes"]})]
    return (["Initialisation"], [SIZE_LABELS[s] for s in t["sizes"]], rows, [ds],
            [f"Ours: {t['epochs']} paper epochs on {DATASET_LABELS.get(ds, ds)}. The supervised row is "
             "quoted by the paper from MBT [52]."])


def _table7(config, part):
    t = config["tables"]["table7"][part]
    run = av_run(config, t["pretrain"], t["size"], t["epochs"])
    ft = t["target"]
    if part == "c":
        columns, keys = [], []
        for mod, name in (("audio", "Audio"), ("video", "Video"), ("av", "Audiovisual")):
            for k in ("verb", "noun", "action"):
                columns.append(f"{name} {k}")
                keys.append((mod, f"{k}_top1"))
        quoted = P.TABLE7C
        labels = ["Method", "Pretraining"]
    else:
        columns, keys = ["A", "V", "AV"], [("audio", None), ("video", None), ("av", None)]
        quoted = P.TABLE7A if part == "a" else P.TABLE7B
        labels = ["Method", "Pretraining"] + (["Training set"] if part == "b" else [])
    rows = []
    for q in quoted:
        values = dict(zip(columns, q[len(labels):]))
        row_labels = dict(zip(labels, q[:len(labels)]))
        if q[0] == "Ours":
            rows.append(_ours(row_labels, {c: cell(config, run, ft, mod, values[c], key)
                                           for c, (mod, key) in zip(columns, keys)}))
        else:
            rows.append(_quoted(row_labels, values))
    return (labels, columns, rows, list(dict.fromkeys([t["pretrain"], ft])),
            [f"Ours: pretrained on {DATASET_LABELS.get(t['pretrain'], t['pretrain'])} for {t['epochs']} paper "
             f"epochs ({t['size']} backbone), finetuned on {DATASET_LABELS.get(ft, ft)}. Other rows are quoted "
             "from the paper, which quotes them from their references."])


# What a toy table can and cannot show (its footnote); the toy sets (avmae/toy/) need both
# modalities to tell every class apart, so audiovisual can beat unimodal there.
TOY_NOTE = ("Toy profile: synthetic sets (avmae/toy/) and tiny transformers trained for a fraction of the "
            "paper's epochs. What it can show: that the pipeline runs end to end{unimodal}. What it cannot: "
            "its numbers are not comparable with the paper's (ViT-B/L on the real datasets), so no "
            "difference column is shown.")
TOY_UNIMODAL = (", and that audiovisual beats audio-only and video-only on data built so that only both "
                "modalities together tell every class apart")


def shows_modalities(rows: list[dict]) -> bool:
    """Whether our cells include audio-only, video-only and audiovisual finetuning (by their
    metrics.json, :func:`finetune_metrics`)."""
    found = {m.group(1) for row in rows for c in row["cells"].values() if "metrics" in c
             for m in [re.search(r"_(audio|video|av)/metrics\.json$", c["metrics"])] if m}
    return {"audio", "video", "av"} <= found


def profile_notes(profile: str, unimodal: bool) -> list[str]:
    """The footnote lines a profile adds: what the toy can and cannot show (``unimodal``: the
    table has audio-only and video-only columns beside audiovisual); none at paper scale."""
    if profile == "paper":
        return []
    return [TOY_NOTE.format(unimodal=TOY_UNIMODAL if unimodal else "")]


BUILDERS = {"table1": _table1, "table2": _table2, "table3": _table3, "table4": _table4, "table5": _table5,
            "table6": _table6, "table7a": lambda c: _table7(c, "a"), "table7b": lambda c: _table7(c, "b"),
            "table7c": lambda c: _table7(c, "c")}


def table_spec(config: dict, name: str) -> dict:
    """The spec of table ``name`` (one of :data:`TABLES`) under ``config``."""
    if name not in BUILDERS:
        raise KeyError(f"unknown table {name!r}; expected one of {TABLES}")
    label_columns, columns, rows, datasets, notes = BUILDERS[name](config)
    scale = config["tables"]["epoch_scale"]
    if name not in ("table1", "table2") and scale != 1:
        notes.append(f"Epochs are the paper's; this profile trains round(paper epochs x {scale}) epochs.")
    for ds in datasets:
        metric_of(config, ds)  # every dataset must be defined
    profile = config["profile"]
    notes += profile_notes(profile, shows_modalities(rows))
    return {"name": name, "title": TITLES[name], "label_columns": label_columns, "columns": columns,
            "rows": rows, "notes": notes, "decimals": config["tables"].get("decimals", 1), "profile": profile,
            "datasets": {ds: {"meta": f"results/features/{ds}/meta.json",
                              "availability": f"results/data/{ds}/availability.json"} for ds in datasets}}


def spec_inputs(spec: dict) -> list[str]:
    """Every file a table reads: our cells' metrics, then the datasets' meta and availability."""
    paths = [c["metrics"] for row in spec["rows"] for c in row["cells"].values() if "metrics" in c]
    for files in spec["datasets"].values():
        paths += [files["meta"], files["availability"]]
    return list(dict.fromkeys(paths))


def spec_json(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True)
