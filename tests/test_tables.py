"""Table 1 as the workflow writes it (``avmae table`` on the spec of ``tables.table1``):
our numbers from metrics files beside the paper's."""

import pandas as pd
import pytest
import yaml
from conftest import ROOT
from test_report import fake_results

from avmae.report.paper_numbers import TABLE1
from avmae.report.specs import table_spec
from avmae.report.tables import write_spec_table

TOY = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
PAPER_CFG = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
# config.yaml / paper.yaml tables.table1.rows, the paper's order (mid/shared again last)
ROWS = [("Early fusion", "Shared"), ("Shared", "Shared"), ("Separate", "Shared"), ("Mid-fusion", "Shared"),
        ("Mid-fusion", "Early"), ("Mid-fusion", "Separate"), ("Mid-fusion", "Shared")]
PAPER_ROWS = [("early", "shared"), ("shared", "shared"), ("separate", "shared"), ("mid", "shared"),
              ("mid", "early"), ("mid", "separate"), ("mid", "shared")]


def scores(path, key):
    """Ours, told apart by cell: 10 x the encoder's place in the rows + the modality's."""
    encoders = ("early", "shared", "separate", "mid")
    enc = next(e for e in encoders if f"_{e}-" in path)
    return 10.0 * encoders.index(enc) + ("_audio/", "_video/", "_av/").index(
        next(m for m in ("_audio/", "_video/", "_av/") if m in path))


def test_table1_puts_ours_beside_the_paper(tmp_path, monkeypatch):
    """Toy profile: ours beside the paper's, no difference, a footnote on what the toy shows."""
    monkeypatch.chdir(tmp_path)
    spec = table_spec(TOY, "table1")
    fake_results(tmp_path, spec, scores)
    df = write_spec_table(spec, tmp_path / "table1")
    assert list(zip(df["Encoder"], df["Decoder"])) == ROWS
    assert df.loc[0, "Video-only (ours)"] == 1.0 and df.loc[3, "Audiovisual (ours)"] == 32.0
    for i, key in enumerate(PAPER_ROWS):
        assert [df.loc[i, f"{c} (paper)"] for c in ("Audio-only", "Video-only", "Audiovisual")] == list(TABLE1[key])
    assert not [c for c in df.columns if "(diff)" in c]
    assert pd.read_csv(tmp_path / "table1.csv").shape == (7, 8)
    md = (tmp_path / "table1.md").read_text()
    assert "Audiovisual (paper)" in md and "vggsound 240 train / 80 test" in md
    assert "(diff)" not in md and "Toy profile:" in md and "not comparable with the paper's" in md
    assert "audiovisual beats audio-only and video-only" in md and "no difference column" in md
    tex = (tmp_path / "table1.tex").read_text()
    assert r"\multicolumn{2}{c}{Audio-only}" in tex and "& ours & paper & ours & paper &" in tex
    assert "Early fusion & Shared & 0.0 & 55.5 & 1.0 & 46.5 & 2.0 & 62.2" in tex
    assert "& diff" not in tex


def test_paper_profile_table1_has_the_differences(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = table_spec(PAPER_CFG, "table1")
    fake_results(tmp_path, spec, lambda path, key: 60.0 if "_early-" in path else 61.04)
    df = write_spec_table(spec, tmp_path / "table1")
    # by hand: early/shared audio 60.0 - paper 55.5; mid/shared AV 61.04 (61.0 as printed) - 63.5
    assert df.loc[0, "Audio-only (ours)"] == 60.0 and df.loc[0, "Audio-only (paper)"] == 55.5
    assert df.loc[0, "Audio-only (diff)"] == pytest.approx(4.5)
    assert df.loc[3, "Audiovisual (diff)"] == pytest.approx(-2.5)
    assert df.loc[3, "Video-only (diff)"] == pytest.approx(61.0 - 48.5)
    assert "Toy profile" not in df.attrs["footnote"]
    assert pd.read_csv(tmp_path / "table1.csv").shape == (7, 11)
    tex = (tmp_path / "table1.tex").read_text()
    assert r"\multicolumn{3}{c}{Audio-only}" in tex and "Early fusion & Shared & 60.0 & 55.5 & 4.5 &" in tex
