"""The Model Zoo table: each released finetuned model's score as the authors report it,
beside its score on this copy of the test split, with the clip counts, the availability
footnote and the hash of the test ids that make the two comparable or not."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from avmae.io import write_text
from avmae.report.tables import format_cell, latex_escape, latex_table, write_table

METRICS = {"top1": "top-1 %", "mAP": "mAP %"}


def zoo_table(entries: list[dict], profile: str) -> pd.DataFrame:
    """``entries``: {name, dataset, modality, released, metrics (our metrics.json), meta
    (features meta.json), availability (availability.json)}, in table order."""
    records, notes = [], {}
    for e in entries:
        metrics = json.loads(Path(e["metrics"]).read_text())
        key = "mAP" if "mAP" in metrics else "top1"
        availability = json.loads(Path(e["availability"]).read_text())["footnote"]
        notes[e["dataset"]] = availability
        records.append({"Model": e["name"], "Dataset": e["dataset"], "Modality": e["modality"],
                        "Metric": METRICS[key], "Released (Model Zoo)": e.get("released"),
                        "Ours (this copy)": round(float(metrics[key]), 1), "Test clips": metrics["test_clips"],
                        "Test ids (sha256)": metrics["test_ids_sha256"][:12]})
    df = pd.DataFrame.from_records(records)
    df.attrs["title"] = "Model Zoo: the authors' released finetuned models on our copy of the test split"
    lines = ["Released: the score the authors report for the checkpoint (scenic/projects/av_mae/README.md). "
             "Ours: the same weights through our download, features and test protocol, on the test clips "
             "that survived download; the two differ by the clips each copy lacks, and by any difference in "
             "the inputs.", *(f"{avail}." for avail in notes.values())]
    if profile == "toy":
        lines.append("Toy profile: tiny random checkpoints in the Model Zoo's format (avmae/toy/zoo.py), so "
                     "the scores are chance; it shows the fetch -> import -> evaluate chain runs.")
    df.attrs["footnote"] = " ".join(lines)
    return df


def flat_latex(df: pd.DataFrame) -> str:
    """A booktabs table of ``df``'s columns as they are, its footnote below."""
    align = "".join("r" if df[c].dtype.kind in "if" else "l" for c in df.columns)
    head = [" & ".join(latex_escape(c) for c in df.columns) + r" \\"]
    rows = [[latex_escape(format_cell(v, 1)) for v in row] for row in df.itertuples(index=False)]
    return latex_table(df.attrs["title"], align, head, rows, df.attrs["footnote"])


def write_zoo_table(entries: list[dict], out_prefix: str | Path, profile: str) -> pd.DataFrame:
    """``{out_prefix}.csv``, ``.md`` and ``.tex``."""
    df = zoo_table(entries, profile)
    write_table(df, out_prefix)   # csv and md
    write_text(Path(out_prefix).with_suffix(".tex"), flat_latex(df))
    return df
