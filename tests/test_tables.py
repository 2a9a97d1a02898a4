"""Table 1: our numbers from metrics files beside the paper's."""

import json

import pandas as pd
import pytest

from avmae.report.paper_numbers import TABLE1
from avmae.report.tables import table1, write_table

ROWS = [("mid", "shared"), ("early", "shared")]


def metrics_files(tmp_path, scores):
    files = {}
    for (enc, dec, mod), top1 in scores.items():
        p = tmp_path / f"{enc}-{dec}-{mod}.json"
        p.write_text(json.dumps({"top1": top1}))
        files[(enc, dec, mod)] = p
    return files


def test_table1_puts_ours_beside_the_paper(tmp_path):
    scores = {(e, d, m): 10.0 * i + j for i, (e, d) in enumerate(ROWS) for j, m in enumerate(("audio", "video", "av"))}
    df = table1(ROWS, metrics_files(tmp_path, scores), {"train": 240, "test": 80},
                "vggsound: clips available: test 80/80 (100.0 %), train 240/240 (100.0 %)")
    assert df["Encoder"].tolist() == ["Mid-fusion", "Early fusion"]
    assert df.loc[1, "Video-only (ours)"] == 11.0
    assert df.loc[0, "Audiovisual (paper)"] == TABLE1[("mid", "shared")][2]
    assert df.loc[0, "Audio-only (diff)"] == pytest.approx(0.0 - 55.8)
    write_table(df, tmp_path / "table1", "Table 1")
    assert pd.read_csv(tmp_path / "table1.csv").shape == (2, 11)
    md = (tmp_path / "table1.md").read_text()
    assert "Audiovisual (paper)" in md and "240 train / 80 test" in md and "train 240/240" in md


def test_missing_metric_names_the_file(tmp_path):
    files = metrics_files(tmp_path, {(e, d, m): 1.0 for e, d in ROWS for m in ("audio", "video", "av")})
    files[("early", "shared", "av")].write_text(json.dumps({"loss": 1.0}))
    with pytest.raises(KeyError, match="early-shared-av.json.*top1"):
        table1(ROWS, files, {})
