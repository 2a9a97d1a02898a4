"""End to end: `snakemake table1` on a shrunken toy config, then partial reruns (dry
runs), the HTML report and the linter."""

import re
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, shrink, snakemake, write_config

MID, EARLY = "vggsound_toy_av_mid-shared_joint_e1", "vggsound_toy_av_early-shared_joint_e1"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the workflow with a config shrunk to a couple of minutes."""
    wd = tmp_path_factory.mktemp("wf")
    cfg = shrink(copy_workflow(wd))
    cfg["sizes"]["toy"]["encoder"]["depth"] = 3  # room for 1 or 2 mid-fusion joint layers
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
    assert runs == [EARLY, MID]
    assert (workdir / "results/pretrain" / runs[0] / "config.yaml").exists()


def planned(workdir: Path) -> dict[str, list[str]]:
    """Jobs a dry run of table1 would start: rule -> the jobs' wildcards, sorted."""
    proc = snakemake(workdir, "-n", "table1")
    jobs = {}
    for block in re.split(r"^(?:local)?rule ", proc.stdout + proc.stderr, flags=re.M)[1:]:
        wildcards = re.search(r"^    wildcards: (.*)$", block, flags=re.M)
        jobs.setdefault(block.split(":")[0], []).append(wildcards.group(1) if wildcards else "")
    return {rule: sorted(w) for rule, w in jobs.items()}


@contextmanager
def edited_config(workdir: Path, edit):
    """The workdir's config with ``edit(cfg)`` applied, restored afterwards."""
    path = workdir / "config" / "config.yaml"
    text = path.read_text()
    cfg = yaml.safe_load(text)
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg))
    try:
        yield
    finally:
        path.write_text(text)


def finetunes(run: str) -> list[str]:
    return [f"run={run}, target=vggsound, modality={m}" for m in ("audio", "av", "video")]


TABLE1 = {"table": ["table=table1"], "table1": [""]}


def test_finetune_value_reruns_the_finetunes_and_table(workdir):
    assert planned(workdir) == {}
    with edited_config(workdir, lambda cfg: cfg["finetune"].update(label_smoothing=0.2)):
        assert planned(workdir) == {"finetune": sorted(finetunes(MID) + finetunes(EARLY)), **TABLE1}
    assert planned(workdir) == {}


def test_mid_fusion_value_reruns_only_the_mid_fusion_run(workdir):
    """model.joint_layers reaches only mid-fusion runs' settings: the early-fusion run stays."""
    with edited_config(workdir, lambda cfg: cfg["model"].update(joint_layers=2)):
        assert planned(workdir) == {"pretrain": [f"run={MID}"], "finetune": finetunes(MID), **TABLE1}


def test_table_format_reruns_only_the_table(workdir):
    with edited_config(workdir, lambda cfg: cfg["tables"].update(decimals=2)):
        assert planned(workdir) == TABLE1


def test_report_gathers_the_built_table_with_its_caption(workdir):
    """`snakemake --report` takes the targets that were built (here table1; default: all)."""
    snakemake(workdir, "--report", "results/report.html", "table1")
    html = (workdir / "results/report.html").read_text()
    for text in ("table1.csv", "table1.md", "table1.tex", "Table 1: pretraining architectures",
                 "Reproduces", "quoted as printed", "not comparable"):
        assert text in html, text


@pytest.mark.parametrize("config", [[], ["--configfile", "config/paper.yaml"]])
def test_lint_is_clean(workdir, config):
    snakemake(workdir, "--lint", *config)  # fails on any lint


def test_zoo_fetches_imports_and_evaluates_the_toy_checkpoints(workdir):
    """`snakemake zoo` on the toy's Model-Zoo-format checkpoints (file:// URLs), end to end."""
    import hashlib
    import json

    snakemake(workdir, "zoo")
    table = pd.read_csv(workdir / "results/tables/zoo.csv")
    assert table["Model"].tolist() == ["vggsound_av_ft_av", "vggsound_av_ft_audio", "vggsound_av_ft_video"]
    assert table["Released (Model Zoo)"].tolist() == [65.0, 57.2, 50.3]   # config/config.yaml, theirs
    meta = json.loads((workdir / "results/features/vggsound/meta.json").read_text())
    assert (table["Test clips"] == meta["counts"]["test"]).all()
    zoo = workdir / "results/zoo"
    record = json.loads((zoo / "vggsound_av/import.json").read_text())
    assert record["kind"] == "avmae" and record["architecture"]["encoder_strategy"] == "separate"
    fetched = json.loads((zoo / "vggsound_av_ft_av/checkpoint.json").read_text())
    assert fetched["sha256"] == hashlib.sha256((zoo / "vggsound_av_ft_av/checkpoint").read_bytes()).hexdigest()
    assert "toy profile" in (workdir / "results/tables/zoo.md").read_text().lower()


def test_a_released_model_stands_in_for_a_pretraining_run(workdir):
    run = "vggsound_toy_av_separate-shared_joint_e1"
    target = f"results/finetune/{run}/vggsound_av/metrics.json"

    def stand_in(cfg):
        cfg["zoo"]["stand_in"] = {run: "vggsound_av"}
    with edited_config(workdir, stand_in):
        plan = snakemake(workdir, "-n", "-p", target)
    assert "rule pretrain:" not in plan.stdout and "results/zoo/vggsound_av/model.pt" in plan.stdout

    def wrong(cfg):
        cfg["zoo"]["stand_in"] = {MID: "vggsound_av"}
    with edited_config(workdir, wrong):
        refused = snakemake(workdir, "-n", f"results/finetune/{MID}/vggsound_av/metrics.json", check=False)
    assert refused.returncode != 0 and f"zoo.stand_in.{MID}: vggsound_av" in refused.stdout + refused.stderr
