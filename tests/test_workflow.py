"""End to end: `snakemake table1` on a shrunken toy config, then a partial rerun."""

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, shrink, snakemake, write_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the workflow with a config shrunk to a couple of minutes."""
    wd = tmp_path_factory.mktemp("wf")
    cfg = shrink(copy_workflow(wd))
    cfg["tables"]["table1"]["rows"] = [["mid", "shared"], ["early", "shared"], ["mid", "shared"]]
    write_config(wd, cfg)
    snakemake(wd, "table1")
    return wd


def test_table1_from_a_fresh_workdir(workdir):
    table = pd.read_csv(workdir / "results/tables/table1.csv")
    assert table["Encoder"].tolist() == ["Mid-fusion", "Early fusion", "Mid-fusion"]
    assert table["Audiovisual (paper)"].tolist() == [63.5, 62.2, 63.5]
    ours = table["Audiovisual (ours)"]
    assert ours.between(0, 100).all() and ours[0] == ours[2]   # one run serves both rows
    manifest = pd.read_csv(workdir / "results/data/vggsound/manifest.csv")
    assert len(manifest) == 32 and (manifest.status == "ok").all()
    runs = sorted(p.name for p in (workdir / "results/pretrain").iterdir())
    assert runs == ["vggsound_toy_av_early-shared_joint_e1", "vggsound_toy_av_mid-shared_joint_e1"]
    assert (workdir / "results/pretrain" / runs[0] / "config.yaml").exists()


def planned(workdir: Path) -> dict[str, int]:
    """Jobs a dry run of table1 would start, by rule."""
    proc = snakemake(workdir, "-n", "table1")
    rules = {"toy_dataset", "download", "features", "pretrain", "finetune", "table1"}
    return {w[0]: int(w[1]) for w in (line.split() for line in (proc.stdout + proc.stderr).splitlines())
            if len(w) == 2 and w[0] in rules and w[1].isdigit()}


def test_config_edit_reruns_only_what_depends_on_it(workdir):
    assert planned(workdir) == {}
    cfg_path = workdir / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["finetune"]["label_smoothing"] = 0.2
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert planned(workdir) == {"finetune": 6, "table1": 1}
