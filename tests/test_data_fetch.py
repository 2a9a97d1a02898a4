"""Official list files: fetched once with their checksum, and recorded when used."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from avmae.acquire.fetch import describe, fetch

FIXTURES = Path(__file__).parent / "fixtures"


def test_fetch_writes_the_list_and_returns_its_sha256(tmp_path):
    src = FIXTURES / "EPIC_100_train.csv"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "lists" / "EPIC_100_train.csv"
    assert fetch(src.as_uri(), out, sha256=digest.upper()) == digest
    assert out.read_bytes() == src.read_bytes()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary left behind


def test_a_checksum_mismatch_writes_nothing(tmp_path):
    out = tmp_path / "vggsound.csv"
    with pytest.raises(ValueError, match="differs from the expected 00ff"):
        fetch((FIXTURES / "EPIC_100_train.csv").as_uri(), out, sha256="00ff")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_an_unreachable_url_names_it(tmp_path):
    url = (tmp_path / "missing.csv").as_uri()
    with pytest.raises(OSError, match="missing.csv: cannot fetch the list"):
        fetch(url, tmp_path / "out.csv", retries=1, backoff=0.0)
    with pytest.raises(FileNotFoundError, match="list file not found"):
        describe(tmp_path / "out.csv")


def test_split_list_records_the_lists_it_read(tmp_path):
    lists = [FIXTURES / "EPIC_100_train.csv", FIXTURES / "EPIC_100_validation.csv"]
    subprocess.run([sys.executable, "-m", "avmae.cli", "split-list", "--format", "epic",
                    "--list", f"train={lists[0]}", "--list", f"test={lists[1]}", "--shards", "2",
                    "--out", str(tmp_path / "shards")], check=True, capture_output=True, timeout=120)
    sources = json.loads((tmp_path / "shards" / "sources.json").read_text())
    assert [s["path"] for s in sources] == [str(p) for p in lists]
    assert [s["sha256"] for s in sources] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in lists]


def test_the_workflow_fetches_a_configured_list_once(tmp_path):
    """A {path, url} list entry is fetched by rule fetch_list before split_list reads it."""
    src = FIXTURES / "vggsound.csv"
    overrides = {"datasets": {"vggsound": {"toy": None, "list": {
        "path": "lists/vggsound.csv", "url": src.as_uri(),
        "sha256": hashlib.sha256(src.read_bytes()).hexdigest()}}}}
    (tmp_path / "paper.yaml").write_text(json.dumps(overrides))
    root = Path(__file__).resolve().parents[1]

    def snakemake(*args):
        return subprocess.run([sys.executable, "-m", "snakemake", *args, "--cores", "1", "--snakefile",
                               str(root / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                               str(root / "config/config.yaml"), str(tmp_path / "paper.yaml")], capture_output=True, text=True, cwd=root,
                              timeout=900)

    plan = snakemake("-n", "results/data/vggsound/shards/lists")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "rule fetch_list:" in plan.stdout and "rule split_list:" in plan.stdout
    run = snakemake("results/data/vggsound/shards/lists")
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "lists/vggsound.csv").read_bytes() == src.read_bytes()
    sources = json.loads((tmp_path / "results/data/vggsound/shards/lists/sources.json").read_text())
    assert sources[0]["sha256"] == overrides["datasets"]["vggsound"]["list"]["sha256"]
    assert "rule fetch_list:" not in snakemake("-n", "results/data/vggsound/shards/lists").stdout  # once
