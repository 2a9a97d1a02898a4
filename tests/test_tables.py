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
    """Toy profile (the default): ours beside the paper's, no difference, a footnote on what the toy shows."""
    scores = {(e, d, m): 10.0 * i + j for i, (e, d) in enumerate(ROWS) for j, m in enumerate(("audio", "video", "av"))}
    df = table1(ROWS, metrics_files(tmp_path, scores), {"train": 240, "test": 80},
                "vggsound: clips available: test 80/80 (100.0 %), train 240/240 (100.0 %)")
    assert df["Encoder"].tolist() == ["Mid-fusion", "Early fusion"]
    assert df.loc[1, "Video-only (ours)"] == 11.0
    assert df.loc[0, "Audiovisual (paper)"] == TABLE1[("mid", "shared")][2]
    assert not [c for c in df.columns if "(diff)" in c]
    write_table(df, tmp_path / "table1", "Table 1")
    assert pd.read_csv(tmp_path / "table1.csv").shape == (2, 8)
    md = (tmp_path / "table1.md").read_text()
    assert "Audiovisual (paper)" in md and "240 train / 80 test" in md and "train 240/240" in md
    assert "(diff)" not in md and "Toy profile:" in md and "not comparable with the paper's" in md
    assert "audiovisual beats audio-only and video-only" in md and "no difference column" in md
    tex = (tmp_path / "table1.tex").read_text()
    assert r"\multicolumn{2}{c}{Audio-only}" in tex and "& ours & paper & ours & paper &" in tex
    assert "& diff" not in tex and "Toy profile:" in tex


def test_paper_profile_table1_has_the_differences(tmp_path):
    scores = {(e, d, m): 1.0 for e, d in ROWS for m in ("audio", "video", "av")}
    scores[("early", "shared", "audio")] = 60.0     # paper 55.5
    scores[("mid", "shared", "av")] = 61.04         # paper 63.5; ours rounds to 61.0
    df = table1(ROWS, metrics_files(tmp_path, scores), {"train": 240, "test": 80}, profile="paper")
    assert df.loc[1, "Audio-only (ours)"] == 60.0 and df.loc[1, "Audio-only (paper)"] == 55.5
    assert df.loc[1, "Audio-only (diff)"] == pytest.approx(4.5)
    assert df.loc[0, "Audiovisual (diff)"] == pytest.approx(-2.5)   # 61.04 - 63.5 = -2.46
    assert df.loc[0, "Video-only (diff)"] == pytest.approx(1.0 - 48.5)
    assert "Toy profile" not in df.attrs["footnote"]
    write_table(df, tmp_path / "table1", "Table 1")
    assert pd.read_csv(tmp_path / "table1.csv").shape == (2, 11)
    tex = (tmp_path / "table1.tex").read_text()
    assert r"\multicolumn{3}{c}{Audio-only}" in tex and "Early fusion & Shared & 60.0 & 55.5 & 4.5 &" in tex


def test_missing_metric_names_the_file(tmp_path):
    files = metrics_files(tmp_path, {(e, d, m): 1.0 for e, d in ROWS for m in ("audio", "video", "av")})
    files[("early", "shared", "av")].write_text(json.dumps({"loss": 1.0}))
    with pytest.raises(KeyError, match="early-shared-av.json.*top1"):
        table1(ROWS, files, {})
