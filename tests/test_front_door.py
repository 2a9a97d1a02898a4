"""The paper profile's front door: on a fresh clone, `snakemake all --configfile
config/paper.yaml` stops before any job with one line per input the user must supply
(what it is, its config key, where to get it), and plans once the files are there; the
toy profile never asks for anything."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow

FIXTURES = Path(__file__).parent / "fixtures"
VGGSOUND_URL = "https://www.robots.ox.ac.uk/~vgg/data/vggsound/"
AUDIOSET_URL = "https://research.google.com/audioset/download.html"
EPIC_URL = "https://github.com/epic-kitchens/epic-kitchens-100-annotations"

# The AudioSet and EPIC entries without their URLs, as a user with local copies might
# configure them (only the list paths stay); none of these files is in a fresh clone.
LOCAL_LISTS = {"datasets": {
    "audioset": {"lists": {"train": ["data/lists/audioset/balanced_train_segments.csv",
                                     "data/lists/audioset/unbalanced_train_segments.csv"],
                           "test": "data/lists/audioset/eval_segments.csv"},
                 "classes": "data/lists/audioset/class_labels_indices.csv"},
    "epic": {"lists": {"train": "data/lists/epic/EPIC_100_train.csv",
                       "test": "data/lists/epic/EPIC_100_validation.csv"}}}}


@pytest.fixture
def clone(tmp_path):
    """The workflow as a fresh clone has it: no data/, no results/."""
    copy_workflow(tmp_path)
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(LOCAL_LISTS))
    return tmp_path


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=300, check=False)


def listed(proc: subprocess.CompletedProcess) -> list[str]:
    """The message's lines naming a missing file (two-space indent)."""
    return [line.strip() for line in proc.stderr.splitlines() if line.startswith("  data/")]


def assert_stopped_before_any_job(proc: subprocess.CompletedProcess) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "Stopped before any job" in proc.stderr, out[-3000:]
    assert "Job stats" not in out and "\nrule " not in out and "\nlocalrule " not in out, out[-3000:]
    assert "Traceback" not in out and "MissingInputException" not in out, out[-3000:]


def test_paper_profile_names_the_list_to_supply(clone):
    proc = snakemake(clone, "-n", "all", "--configfile", "config/paper.yaml")
    assert_stopped_before_any_job(proc)
    assert listed(proc) == [("data/lists/vggsound.csv: VGGSound clip list; config key datasets.vggsound.list; "
                             f"from the VGGSound authors' page {VGGSOUND_URL} (vggsound.csv)")]


def test_a_real_run_starts_nothing(clone):
    """Not a dry run: still no job (the AudioSet and EPIC lists would otherwise be fetched)."""
    proc = snakemake(clone, "all", "--configfile", "config/paper.yaml")
    assert_stopped_before_any_job(proc)
    assert [line.split(":")[0] for line in listed(proc)] == ["data/lists/vggsound.csv"]
    assert not (clone / "results").exists() and not (clone / "data").exists()


def test_every_missing_input_the_dag_needs_is_named_once(clone):
    proc = snakemake(clone, "-n", "all", "--configfile", "config/paper.yaml", "local.yaml")
    assert_stopped_before_any_job(proc)
    lines = listed(proc)
    keys = {line.split(":")[0]: line.split("config key ")[1].split(";")[0] for line in lines}
    assert keys == {
        "data/lists/vggsound.csv": "datasets.vggsound.list",
        "data/lists/audioset/balanced_train_segments.csv": "datasets.audioset.lists.train[0]",
        "data/lists/audioset/unbalanced_train_segments.csv": "datasets.audioset.lists.train[1]",
        "data/lists/audioset/eval_segments.csv": "datasets.audioset.lists.test",
        "data/lists/audioset/class_labels_indices.csv": "datasets.audioset.classes",
        "data/lists/epic/EPIC_100_train.csv": "datasets.epic.lists.train",
        "data/lists/epic/EPIC_100_validation.csv": "datasets.epic.lists.test",
    }  # EPIC's class lists and md5.csv keep their URLs (fetched): not listed
    assert len(lines) == len(keys)
    urls = {"vggsound": VGGSOUND_URL, "audioset": AUDIOSET_URL, "epic": EPIC_URL}
    for line in lines:
        assert urls[keys[line.split(":")[0]].split(".")[1]] in line, line
    # Table 1 needs VGGSound alone: the other datasets' missing lists are not asked for
    proc = snakemake(clone, "-n", "table1", "--configfile", "config/paper.yaml", "local.yaml")
    assert_stopped_before_any_job(proc)
    assert [line.split(":")[0] for line in listed(proc)] == ["data/lists/vggsound.csv"]


def test_with_the_list_in_place_the_paper_profile_plans(clone):
    (clone / "data/lists").mkdir(parents=True)
    shutil.copy(FIXTURES / "vggsound.csv", clone / "data/lists/vggsound.csv")
    proc = snakemake(clone, "-n", "all", "--configfile", "config/paper.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Stopped before any job" not in out and "missing_input" not in out
    assert "rule split_list:" in out and "rule fetch_list:" in out and "Job stats" in out


def test_toy_profile_never_asks_for_a_list(clone):
    proc = snakemake(clone, "-n", "table1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "rule toy_dataset:" in out and "missing_input" not in out and "Stopped" not in out
