"""Feature extraction: log-mel shapes, the on-disk layout, broken files, train-only stats."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from avmae.data.features import extract, log_mel
from avmae.data.ffmpeg import ffmpeg_exe
from avmae.data.lists import read_vggsound
from avmae.data.toy import make_toy_vggsound, write_mp4

SECONDS, FPS, SIDE = 3.0, 10, 24  # small settings keep the test fast


def test_log_mel_of_8_seconds_is_798_by_128():
    wave = torch.sin(torch.arange(8 * 16000) * 0.1) * 0.5
    mel = log_mel(wave)
    assert 798 <= mel.shape[0] <= 800 and mel.shape[1] == 128
    assert mel.dtype == torch.float32 and torch.isfinite(mel).all()


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """Features of a tiny toy set plus four broken files and one failed download."""
    root = tmp_path_factory.mktemp("features")
    csv = make_toy_vggsound(root / "toy", clips_per_class=2, test_fraction=0.5, seed=1)
    media = csv.parent / "media"
    rows = [{"id": c.id, "start_seconds": c.start, "label": c.label, "split": c.split,
             "status": "ok", "path": str(media / f"{c.id}.mp4"), "reason": ""}
            for c in read_vggsound(csv)]
    good = media / f"{rows[0]['id']}.mp4"
    (root / "empty.mp4").touch()
    # Cut in half: a plain mp4 loses its index (moov, at the end); a "faststart" one,
    # index first, keeps it but misses data.
    (root / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    faststart = root / "faststart.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(good), "-c", "copy",
                    "-movflags", "+faststart", str(faststart)], check=True)
    half = faststart.read_bytes()[: faststart.stat().st_size // 2]
    (root / "cut_faststart.mp4").write_bytes(half)
    write_mp4(root / "silent_film.mp4", np.zeros((100, 64, 96, 3), np.uint8), audio=None)
    broken = [("empty", "train"), ("cut", "test"), ("cut_faststart", "train"),
              ("silent_film", "train")]
    for name, split in broken:
        rows.append({"id": name, "start_seconds": 0, "label": rows[0]["label"], "split": split,
                     "status": "ok", "path": str(root / f"{name}.mp4"), "reason": ""})
    rows.append({"id": "gone", "start_seconds": 0, "label": "never downloaded", "split": "train",
                 "status": "failed", "path": "", "reason": "HTTP Error 404"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    meta = extract(root / "manifest.csv", root / "out", clip_seconds=SECONDS, fps=FPS,
                   short_side=SIDE, workers=2)
    return root / "out", meta


def test_layout_shapes_and_dtypes(extracted):
    out, meta = extracted
    assert json.loads((out / "meta.json").read_text()) == meta
    assert meta["counts"] == {"train": 8, "test": 8}
    assert meta["audio_frames"] == 300 and meta["video_frames"] == 30
    assert (meta["fps"], meta["short_side"], meta["n_mels"], meta["sample_rate"],
            meta["clip_seconds"]) == (FPS, SIDE, 128, 16000, SECONDS)
    assert meta["classes"] == sorted(meta["classes"]) and "never downloaded" in meta["classes"]
    for split in ("train", "test"):
        audio = np.load(out / split / "audio.npy", mmap_mode="r")
        video = np.load(out / split / "video.npy", mmap_mode="r")
        index = pd.read_csv(out / split / "index.csv")
        assert audio.shape == (8, 300, 128) and audio.dtype == np.float16
        assert video.shape == (8, 30, SIDE, SIDE, 3) and video.dtype == np.uint8
        assert list(index.columns) == ["id", "label", "label_index", "split"]
        assert (index.split == split).all()
        assert [meta["classes"][i] for i in index.label_index] == index.label.tolist()
        assert np.isfinite(audio).all() and video.std() > 10  # real content, not padding
    assert not list(out.rglob(".*"))  # no scratch or temp files left


def test_broken_files_are_skipped_with_reasons(extracted):
    out, _ = extracted
    skipped = pd.read_csv(out / "skipped.csv").set_index("id")
    assert sorted(skipped.index) == ["cut", "cut_faststart", "empty", "silent_film"]
    assert skipped.reason["empty"] == "empty file (0 bytes)"
    assert skipped.reason["cut"] == "audio decode failed: moov atom not found"
    assert skipped.reason["cut_faststart"].startswith("truncated file (audio: ")
    assert skipped.reason["silent_film"] == "no audio stream"
    assert skipped.split["cut"] == "test" and skipped.split["silent_film"] == "train"


def test_audio_statistics_come_from_train_only(extracted):
    out, meta = extracted
    train = np.load(out / "train" / "audio.npy").astype(np.float64)
    test = np.load(out / "test" / "audio.npy").astype(np.float64)
    assert meta["audio_mean"] == pytest.approx(train.mean(), rel=1e-6)
    assert meta["audio_std"] == pytest.approx(train.std(), rel=1e-6)
    both = np.concatenate([train, test])
    assert meta["audio_mean"] != pytest.approx(both.mean(), rel=1e-6)


def test_manifest_without_ok_clips_is_an_error(tmp_path):
    path = tmp_path / "manifest.csv"
    pd.DataFrame([{"id": "a", "start_seconds": 0, "label": "x", "split": "train",
                   "status": "failed", "path": "", "reason": "404"}]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="no clip has status 'ok'"):
        extract(path, tmp_path / "out")
