"""Data-stage bookkeeping at AS-2M scale; prints numbers, passes or fails nothing.

1. ``snakemake -n`` over a synthetic 1,857,210-row AudioSet segment CSV (real format),
   sharded into ``--shards`` download jobs (goal: DAG in under 20 s).
2. Per-clip overhead, no transfer: splitting the list into shards, a shard rerun whose
   clips are all already done (journal lookup), and merging the shard manifests.

    python benchmarks/data_dag.py [--rows 1857210] [--shards 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from avmae.acquire.download import Policy, download, journal_path
from avmae.acquire.lists import read_audioset, read_clips
from avmae.acquire.shards import merge_manifests, write_shards

ROOT = Path(__file__).resolve().parents[1]
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def write_as2m(path: Path, rows: int) -> None:
    """An unbalanced_train_segments.csv look-alike: comment lines, quoted label lists."""
    with path.open("w") as f:
        f.write("# Segments csv created Sun Mar  5 10:54:31 2017\n"
                f"# num_ytids={rows}, num_segs={rows}, num_unique_labels=527, "
                f"num_positive_labels={2 * rows}\n"
                "# YTID, start_seconds, end_seconds, positive_labels\n")
        for i in range(rows):
            vid = "".join(ALPHABET[(i >> (6 * k)) % 64] for k in range(11))
            start = (i * 7) % 300
            f.write(f'{vid}, {start}.000, {start + 10}.000, "/m/{i % 527:05d},/m/09x0r"\n')


def workflow_copy(root: Path, as2m: Path, shards: int) -> Path:
    """The repository's workflow with an `as2m` dataset added (schema widened if needed)."""
    wd = root / "wf"
    wd.mkdir()
    shutil.copy(ROOT / "Snakefile", wd)
    shutil.copytree(ROOT / "workflow", wd / "workflow")
    shutil.copytree(ROOT / "config", wd / "config")
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    cfg["datasets"]["as2m"] = {"list": str(as2m), "format": "audioset", "shards": shards,
                               "url_template": "https://www.youtube.com/watch?v={id}"}
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    schema_path = wd / "workflow/schemas/config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    entry = schema["properties"]["datasets"]["additionalProperties"]["properties"]
    entry.setdefault("format", {"type": "string"})
    entry.setdefault("shards", {"type": "integer"})
    schema_path.write_text(yaml.safe_dump(schema))
    return wd


def timed(label: str, n: int, fn):
    t = time.perf_counter()
    result = fn()
    s = time.perf_counter() - t
    print(f"{label:<44} {s:8.2f} s  {1e6 * s / n:8.1f} us/clip")
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_857_210)
    ap.add_argument("--shards", type=int, default=1000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        as2m = root / "unbalanced_train_segments.csv"
        write_as2m(as2m, a.rows)
        wd = workflow_copy(root, as2m, a.shards)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1",
                               "results/data/as2m/manifest.csv"], cwd=wd, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(proc.stdout[-2000:] + proc.stderr[-2000:])
        print(f"snakemake -n, {a.rows} rows, {a.shards} shards:"
              f" {time.perf_counter() - t:.2f} s (goal < 20 s)")

        clips = timed("read AS-2M list", a.rows, lambda: read_audioset(as2m))
        paths = timed(f"write {a.shards} shard lists", a.rows,
                      lambda: write_shards(clips, a.shards, root / "lists"))

        # A rerun of one shard whose clips are all done: journal lookups, no transfer.
        shard = read_clips(paths[0])
        media, manifest = root / "shard/media", root / "shard/manifest.csv"
        media.mkdir(parents=True)
        with journal_path(manifest).open("w") as f:
            for c in shard:
                (media / f"{c.id}.mp4").write_bytes(b"x")
                row = {"id": c.id, "start_seconds": c.start, "end_seconds": c.end, "label": c.label,
                       "split": c.split, "source": "", "status": "ok",
                       "path": str(media / f"{c.id}.mp4"), "reason": "", "attempts": 1, "duration": 10.0}
                f.write(json.dumps(row) + "\n")
        timed(f"rerun a done shard ({len(shard)} clips)", len(shard),
              lambda: download(shard, "https://www.youtube.com/watch?v={id}", media, manifest,
                               workers=2, policy=Policy(sleep=0, videos_per_hour=0)))
        manifests = [manifest] * a.shards
        timed(f"merge {a.shards} shard manifests", len(shard) * a.shards,
              lambda: merge_manifests(manifests, root / "merged.csv"))


if __name__ == "__main__":
    main()
