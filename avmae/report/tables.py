"""Paper tables: our numbers (read from the runs' metrics.json) beside the paper's.

Each table is written as CSV and Markdown; "paper" columns are quoted from the
paper, "ours" columns come from runs of this workflow, "diff" is ours - paper.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from avmae.io import write_text
from avmae.report.paper_numbers import TABLE1

ENCODERS = {"early": "Early fusion", "separate": "Separate", "shared": "Shared", "mid": "Mid-fusion"}
DECODERS = {"early": "Early", "separate": "Separate", "shared": "Shared"}
MODALITIES = (("audio", "Audio-only"), ("video", "Video-only"), ("av", "Audiovisual"))


def read_metric(path: str | Path, key: str) -> float:
    path = Path(path)
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read metrics ({e})") from e
    if key not in metrics:
        raise KeyError(f"{path}: metrics have no {key!r} (keys: {sorted(metrics)})")
    return float(metrics[key])


def table1(rows: list[tuple[str, str]], metrics: dict[tuple[str, str, str], str | Path],
           clips: dict[str, int], availability: str = "") -> pd.DataFrame:
    """Rows in the paper's order; ``metrics`` maps (encoder, decoder, modality) to a metrics.json."""
    records = []
    for enc, dec in rows:
        rec = {"Encoder": ENCODERS[enc], "Decoder": DECODERS[dec]}
        paper = TABLE1.get((enc, dec))
        for i, (mod, label) in enumerate(MODALITIES):
            ours = read_metric(metrics[(enc, dec, mod)], "top1")
            rec[f"{label} (ours)"] = round(ours, 1)
            rec[f"{label} (paper)"] = paper[i] if paper else None
            rec[f"{label} (diff)"] = round(ours - paper[i], 1) if paper else None
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    df.attrs["footnote"] = (f"Ours: top-1 %, on the {clips.get('train', 0)} train / {clips.get('test', 0)} "
                            "test clips that survived download and feature extraction. "
                            f"{availability + '. ' if availability else ''}"
                            "Paper: ViT-B, 400 epochs of pretraining on VGGSound.")
    return df


def write_table(df: pd.DataFrame, out_prefix: str | Path, title: str) -> None:
    """Write ``{out_prefix}.csv`` and ``{out_prefix}.md``."""
    out_prefix = Path(out_prefix)
    write_text(out_prefix.with_suffix(".csv"), df.to_csv(index=False))
    md = f"# {title}\n\n{df.to_markdown(index=False)}\n\n{df.attrs.get('footnote', '')}\n"
    write_text(out_prefix.with_suffix(".md"), md)
