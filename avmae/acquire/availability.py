"""Availability report: per split, how many clips were requested, ok, unavailable, failed.

Published numbers depend on which clips survive, so the ids of the clips used (status
``ok``) are saved beside the report; compare two reproductions by this file.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd

from avmae.acquire.download import STATUSES
from avmae.io import atomic_path, write_json


def availability(manifest: pd.DataFrame) -> dict[str, dict[str, int]]:
    """{split: {requested, ok, unavailable, failed}}, plus an ``all`` entry."""
    report = {}
    for split, rows in [*manifest.groupby("split", sort=True), ("all", manifest)]:
        counts = rows["status"].value_counts()
        report[str(split)] = {"requested": len(rows),
                              **{status: int(counts.get(status, 0)) for status in STATUSES}}
    return report


def footnote(dataset: str, report: dict[str, dict[str, int]]) -> str:
    """One line for a table footnote, e.g. ``vggsound: train 90/100 (90.0 %), ...``."""
    parts = [f"{split} {c['ok']}/{c['requested']} ({100 * c['ok'] / max(c['requested'], 1):.1f} %)"
             for split, c in report.items() if split != "all"]
    return f"{dataset}: clips available: " + ", ".join(parts)


def write_report(manifest: pd.DataFrame, dataset: str, report_path: str | os.PathLike,
                 ids_path: str | os.PathLike) -> dict:
    """Write ``report_path`` (JSON) and ``ids_path`` (CSV id,start_seconds,split of ok clips)."""
    report = availability(manifest)
    write_json(report_path, {"dataset": dataset, "splits": report,
                             "footnote": footnote(dataset, report), "ids": Path(ids_path).name})
    used = manifest.loc[manifest["status"] == "ok", ["id", "start_seconds", "split"]]
    with atomic_path(ids_path) as tmp:
        used.sort_values(["split", "id", "start_seconds"], kind="stable",
                         key=lambda c: pd.to_numeric(c) if c.name == "start_seconds" else c
                         ).to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL)
    return report
