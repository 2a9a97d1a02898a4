"""Sharding, AS-500K balancing and the data command line."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avmae.acquire.balance import draw_balanced
from avmae.acquire.download import MANIFEST_COLUMNS
from avmae.acquire.lists import Clip, read_clips
from avmae.acquire.shards import publish, shard_of, split_clips

FIXTURES = Path(__file__).parent / "fixtures"


def test_shards_are_deterministic_and_stable_under_edits():
    clips = [Clip(f"vid{i:04d}", 0.0, "a", "train") for i in range(3000)]
    parts = split_clips(clips, 10)
    assert sum(map(len, parts)) == 3000 and all(200 < len(p) < 400 for p in parts)
    assert split_clips(list(reversed(clips)), 10) == [list(reversed(p)) for p in parts]
    edited = split_clips(clips[:-1] + [Clip("new", 0.0, "a", "train")], 10)
    changed = [i for i in range(10) if edited[i] != parts[i]]
    assert len(changed) <= 2  # only the shards of the removed and the added row


def test_shard_of_is_a_stable_hash_not_pythons_salted_one():
    """Literal values, from blake2b(key, digest_size=8) read big-endian, mod the shard count
    (the documented scheme; Python's hash() is salted per process and would differ in a
    child process with another PYTHONHASHSEED)."""
    import hashlib
    assert int.from_bytes(hashlib.blake2b(b"-abc", digest_size=8).digest(), "big") % 7 == 1
    assert [shard_of(k, 7) for k in ("-abc", "vid0000", "P01_01")] == [1, 4, 5]
    assert [shard_of("-abc", n) for n in (2, 10, 1000)] == [1, 7, 57]
    code = "from avmae.acquire.shards import shard_of; print(shard_of('-abc', 1000))"
    for hashseed in ("1", "2"):
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               timeout=120, env={**os.environ, "PYTHONHASHSEED": hashseed})
        assert child.stdout.strip() == "57"


def test_clips_of_one_video_share_a_shard():
    clips = [Clip(f"P01_01_{i}", i, "verb:0;noun:0", "train", end=i + 1, source="P01_01")
             for i in range(50)]
    assert sorted(len(p) for p in split_clips(clips, 8)) == [0] * 7 + [50]


def synthetic_as2m(n, classes=60, seed=0):
    """Zipf-like multi-label list: a few classes are in most clips, like Speech and Music."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, classes + 1) ** 1.3
    p /= p.sum()
    clips = []
    for i in range(n):
        labels = sorted(set(rng.choice(classes, size=rng.integers(1, 4), p=p)))
        clips.append(Clip(f"yt{i:06d}", 0.0, ";".join(f"/m/{c}" for c in labels), "train", end=10.0))
    return clips


def test_as500k_recipe_balances_and_is_deterministic():
    clips = synthetic_as2m(6000)
    subset, stats = draw_balanced(clips, 1500, seed=0)
    assert len(subset) == 1500 and len({c.id for c in subset}) == 1500
    counts = Counter(label for c in subset for label in c.labels)
    assert max(counts.values()) <= stats["cap"]
    before, after = stats["before"], stats["after"]
    assert after["max_over_min"] < before["max_over_min"] / 3
    assert after["normalised_entropy"] > before["normalised_entropy"]
    assert after["classes"] == before["classes"]  # no class disappears
    rarest = before["class_count"]["min"]
    rare = {label for label, n in Counter(l for c in clips for l in c.labels).items() if n == rarest}
    assert all(counts[label] == rarest for label in rare)  # the rarest classes keep every clip
    again, _ = draw_balanced(list(reversed(clips)), 1500, seed=0)
    assert sorted(c.id for c in again) == sorted(c.id for c in subset)  # row order is irrelevant
    other, _ = draw_balanced(clips, 1500, seed=1)
    assert {c.id for c in other} != {c.id for c in subset}
    with pytest.raises(ValueError, match="cannot draw"):
        draw_balanced(clips[:10], 11)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "avmae.cli", *args],
                          capture_output=True, text=True, check=True, timeout=300)


def test_command_line_split_list_and_as500k(tmp_path):
    cli("split-list", "--format", "epic", "--list", f"train={FIXTURES / 'EPIC_100_train.csv'}",
        "--list", f"test={FIXTURES / 'EPIC_100_validation.csv'}", "--shards", "3",
        "--out", str(tmp_path / "lists"))
    shards = [read_clips(p) for p in sorted((tmp_path / "lists").glob("*.csv"))]
    assert len(shards) == 3 and sum(map(len, shards)) == 7
    assert {c.split for part in shards for c in part} == {"train", "test"}

    cli("as500k", "--format", "audioset", "--list", str(FIXTURES / "balanced_train_segments.csv"),
        "--classes", str(FIXTURES / "class_labels_indices.csv"), "--size", "3",
        "--out", str(tmp_path / "as500k.csv"), "--stats", str(tmp_path / "stats.json"))
    assert len(read_clips(tmp_path / "as500k.csv")) == 3
    assert json.loads((tmp_path / "stats.json").read_text())["before"]["clips"] == 4


def test_bad_list_names_file_and_line(tmp_path):
    bad = tmp_path / "v.csv"
    bad.write_text("ok000000001,1,a,train\nbroken,x,a,train\n")
    proc = subprocess.run([sys.executable, "-m", "avmae.cli", "split-list", "--list",
                           str(bad), "--shards", "2", "--out", str(tmp_path / "l")],
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode != 0 and f"{bad}:2: start_seconds 'x' is not a number" in proc.stderr
    assert not (tmp_path / "l").exists()


def test_publish_links_kept_clips_and_rewrites_their_paths(tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "media").mkdir(parents=True)
    (work / "media" / "-abc.mp4").write_bytes(b"clip")
    rows = [{c: "" for c in MANIFEST_COLUMNS} | {"id": "-abc", "status": "ok", "path": str(work / "media" / "-abc.mp4")},
            {c: "" for c in MANIFEST_COLUMNS} | {"id": "gone", "status": "unavailable", "reason": "private video"}]
    pd.DataFrame(rows).to_csv(work / "manifest.csv", index=False)
    monkeypatch.chdir(tmp_path)
    manifest = publish(work / "manifest.csv", Path("out/manifest.csv"), Path("out/media"))
    assert manifest.path.tolist() == ["out/media/-abc.mp4", ""]
    assert pd.read_csv("out/manifest.csv", keep_default_na=False).equals(manifest)
    linked = tmp_path / "out/media/-abc.mp4"
    assert linked.read_bytes() == b"clip" and linked.stat().st_ino == (work / "media" / "-abc.mp4").stat().st_ino
    # publishing again (a rerun) replaces the links
    assert publish(work / "manifest.csv", Path("out/manifest.csv"), Path("out/media")).equals(manifest)
    (work / "manifest.csv").write_text("id,status\nx,ok\n")
    with pytest.raises(ValueError, match=r"work/manifest.csv: not a download manifest"):
        publish(work / "manifest.csv", Path("out/m2.csv"), Path("out/media"))
