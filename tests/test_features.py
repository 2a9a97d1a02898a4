"""Feature extraction: log-mel shapes, the JPEG-shard and array layouts, real broken files,
train-only stats."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.io import decode_jpeg

from conftest import decode_video

from avmae.acquire.lists import read_vggsound
from avmae.data.dataset import AVClipDataset
from avmae.features.extract import (
    Spec,
    combine,
    extract,
    extract_shard,
    log_mel,
)
from avmae.ffmpeg import ffmpeg_exe
from avmae.toy.media import SAMPLE_RATE, write_mp4
from avmae.toy.vggsound import make_toy_vggsound

SECONDS, FPS, SIDE = 3.0, 10, 24  # small settings keep the test fast
BROKEN = {  # name: (split, reason or reason prefix)
    "empty": ("train", "empty file (0 bytes)"),
    "cut": ("test", "decode failed: moov atom not found"),
    "cut_faststart": ("train", "truncated file ("),
    "silent_film": ("train", "no audio stream"),
    "radio": ("train", "no video stream"),
    "short_video": ("test", "only 10 of 30 video frames decoded"),
    "garbage": ("train", "decode failed: "),
}


def test_log_mel_of_8_seconds_is_798_by_128():
    wave = torch.sin(torch.arange(8 * 16000) * 0.1) * 0.5
    mel = log_mel(wave)
    assert 798 <= mel.shape[0] <= 800 and mel.shape[1] == 128
    assert mel.dtype == torch.float32 and torch.isfinite(mel).all()


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 8000).astype(np.int16)


def _broken_files(root, good):
    """Real broken media files, one per failure the extractor must survive."""
    (root / "empty.mp4").touch()
    # Cut in half: a plain mp4 loses its index (moov, at the end); a "faststart" one,
    # index first, keeps it but misses data.
    (root / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    faststart = root / "faststart.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(good), "-c", "copy",
                    "-movflags", "+faststart", str(faststart)], check=True, timeout=120)
    (root / "cut_faststart.mp4").write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    write_mp4(root / "silent_film.mp4", np.zeros((100, 64, 96, 3), np.uint8), audio=None)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=4", "-c:a", "aac",
                    str(root / "radio.mp4")], check=True, timeout=120)  # audio only
    # 1 s of picture with the full 3 s of sound: the video is shorter than the window.
    frames = np.random.default_rng(0).integers(0, 255, (25, 64, 96, 3), dtype=np.uint8)
    write_mp4(root / "short_video.mp4", frames, audio=_tone(SECONDS))
    (root / "garbage.mp4").write_bytes(np.random.default_rng(1).bytes(5000))


def _manifest(root, broken: bool):
    csv = make_toy_vggsound(root / "toy", clips_per_class=2, test_fraction=0.5, seed=1)
    media = csv.parent / "media"
    rows = [{"id": c.id, "start_seconds": c.start, "label": c.label, "split": c.split,
             "status": "ok", "path": str(media / f"{c.id}.mp4"), "reason": ""}
            for c in read_vggsound(csv)]
    if broken:
        _broken_files(root, media / f"{rows[0]['id']}.mp4")
        for name, (split, _) in BROKEN.items():
            rows.append({"id": name, "start_seconds": 0, "label": rows[0]["label"], "split": split,
                         "status": "ok", "path": str(root / f"{name}.mp4"), "reason": ""})
        rows.append({"id": "gone", "start_seconds": 0, "label": "never downloaded", "split": "train",
                     "status": "failed", "path": "", "reason": "HTTP Error 404"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv", rows


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """JPEG-shard features of a tiny toy set plus real broken files and one failed download."""
    root = tmp_path_factory.mktemp("features")
    manifest, rows = _manifest(root, broken=True)
    meta = extract(manifest, root / "out", clip_seconds=SECONDS, fps=FPS, short_side=SIDE, workers=2)
    return root / "out", meta, rows


def test_jpeg_layout_shapes_and_dtypes(extracted):
    out, returned, rows = extracted
    meta = json.loads((out / "meta.json").read_text())   # what the file says, checked against hand values
    assert returned["counts"] == meta["counts"]
    # the toy manifest: 2 clips per class, half of them test -> 8 + 8 good clips; the 7 broken
    # files and the failed download are left out of both splits
    good = [r for r in rows if r["id"] not in BROKEN and r["status"] == "ok"]
    assert len(good) == 16 and sum(r["split"] == "train" for r in good) == 8
    assert meta["counts"] == {"train": 8, "test": 8}
    # 3 s of audio at a 10 ms frame shift -> 300 frames (the clip window); 3 s at 10 fps -> 30 frames
    assert meta["audio_frames"] == 300 and meta["video_frames"] == 30
    assert (meta["fps"], meta["short_side"], meta["n_mels"], meta["sample_rate"],
            meta["clip_seconds"], meta["video_format"], meta["jpeg_quality"]) == (
        FPS, SIDE, 128, 16000, SECONDS, "jpeg", 89)
    assert meta["classes"] == sorted(meta["classes"]) and "never downloaded" in meta["classes"]
    for split in ("train", "test"):
        audio = np.load(out / split / "audio.npy", mmap_mode="r")
        offsets = np.load(out / split / "video_jpeg_offsets.npy")
        data = (out / split / "video_jpeg.bin").read_bytes()
        index = pd.read_csv(out / split / "index.csv")
        assert audio.shape == (8, 300, 128) and audio.dtype == np.float16
        assert offsets.shape == (8, 31) and offsets.dtype == np.int64
        assert offsets[0, 0] == 0 and offsets[-1, -1] == len(data)
        assert (np.diff(offsets, axis=1) > 0).all() and (offsets[1:, 0] == offsets[:-1, -1]).all()
        assert list(index.columns) == ["id", "start_seconds", "label", "label_index", "split",
                                       "action_first", "action_last"]
        # a manifest without clip_start: each segment is its whole clip
        assert (index.action_first == 0).all() and (index.action_last == 29).all()
        assert (index.split == split).all() and not set(index.id) & set(BROKEN)
        assert [meta["classes"][i] for i in index.label_index] == index.label.tolist()
        assert np.isfinite(audio).all()
        frame = decode_jpeg(torch.frombuffer(bytearray(data[offsets[3, 7]:offsets[3, 8]]), dtype=torch.uint8))
        assert frame.shape == (3, SIDE, 36)  # 96x64 source: short side 24, aspect kept
        assert frame.float().std() > 10  # real content, not padding
    assert not list(out.rglob(".*"))  # no scratch or temp files left


def test_jpeg_frames_match_the_raw_decode(extracted):
    """The stored JPEG frames are the frames of the lossless decode, up to JPEG error."""
    out, meta, rows = extracted
    index = pd.read_csv(out / "train" / "index.csv")
    path = next(r["path"] for r in rows if r["id"] == index.id[2])
    raw = decode_video(path, Spec(SECONDS, FPS, SIDE, 16000, 128))  # [30, 24, 24, 3], centre crop
    offsets = np.load(out / "train" / "video_jpeg_offsets.npy")[2]
    data = (out / "train" / "video_jpeg.bin").read_bytes()
    jpeg = torch.stack(decode_jpeg([torch.frombuffer(bytearray(data[a:b]), dtype=torch.uint8)
                                    for a, b in zip(offsets[:-1], offsets[1:])]))
    centre = jpeg[:, :, :, 6:30].permute(0, 2, 3, 1).float().numpy()
    raw = raw.astype(np.float32)
    # uint8 levels. Grey levels are close; colour less so at 24 px (4:2:0 chroma of
    # 12 px), but far closer than to other frames of the same clip.
    assert np.abs(centre.mean(-1) - raw.mean(-1)).mean() < 5
    assert np.abs(centre - raw).mean() < 0.25 * np.abs(centre - raw[::-1]).mean()


def test_broken_files_are_skipped_with_reasons(extracted):
    out, _, _ = extracted
    skipped = pd.read_csv(out / "skipped.csv").set_index("id")
    assert sorted(skipped.index) == sorted(BROKEN)
    for name, (split, reason) in BROKEN.items():
        assert skipped.reason[name].startswith(reason), (name, skipped.reason[name])
        assert skipped.split[name] == split


def test_audio_statistics_come_from_train_only(extracted):
    out, meta, _ = extracted
    train = np.load(out / "train" / "audio.npy").astype(np.float64)
    test = np.load(out / "test" / "audio.npy").astype(np.float64)
    assert meta["audio_mean"] == pytest.approx(train.mean(), rel=1e-6)
    assert meta["audio_std"] == pytest.approx(train.std(), rel=1e-6)
    both = np.concatenate([train, test])
    assert meta["audio_mean"] != pytest.approx(both.mean(), rel=1e-6)


def test_array_format_and_worker_count_do_not_change_the_features(tmp_path):
    manifest, _ = _manifest(tmp_path, broken=False)
    one = extract(manifest, tmp_path / "one", clip_seconds=SECONDS, fps=FPS, short_side=SIDE, workers=1)
    arr = extract(manifest, tmp_path / "arr", clip_seconds=SECONDS, fps=FPS, short_side=SIDE, workers=2,
                  video_format="array")
    assert arr["video_format"] == "array" and arr["jpeg_quality"] is None
    video = np.load(tmp_path / "arr" / "train" / "video.npy", mmap_mode="r")
    assert video.shape == (8, 30, SIDE, SIDE, 3) and video.dtype == np.uint8
    assert not (tmp_path / "arr" / "train" / "video_jpeg.bin").exists()
    np.testing.assert_array_equal(np.load(tmp_path / "arr" / "train" / "audio.npy"),
                                  np.load(tmp_path / "one" / "train" / "audio.npy"))
    assert one["audio_mean"] == arr["audio_mean"]
    # The JPEG shard is identical with 1 or 2 workers (clips are appended in row order).
    two = extract(manifest, tmp_path / "two", clip_seconds=SECONDS, fps=FPS, short_side=SIDE, workers=2)
    assert two == one
    for name in ("video_jpeg.bin", "video_jpeg_offsets.npy", "audio.npy"):
        assert (tmp_path / "one" / "test" / name).read_bytes() == (tmp_path / "two" / "test" / name).read_bytes()


def test_shards_combined_read_as_one_extraction(tmp_path, extracted):
    """Four shards (one with no ok clip) joined by combine() give the one-shot set's
    labels, statistics and items, rows numbered across the shard folders."""
    out, meta, rows = extracted
    manifest = pd.read_csv(out.parent / "manifest.csv")
    pieces = [manifest.iloc[:5], manifest.iloc[5:11], manifest.iloc[11:], manifest[manifest.status != "ok"]]
    assert (pieces[2].split == "test").any() and (pieces[0].split == "train").any()
    shard_dirs = []
    for i, piece in enumerate(pieces):
        piece.to_csv(tmp_path / f"m{i}.csv", index=False)
        shard_dirs.append(tmp_path / "features" / "shards" / f"{i:05d}")
        extract_shard(tmp_path / f"m{i}.csv", shard_dirs[-1], clip_seconds=SECONDS, fps=FPS,
                      short_side=SIDE, workers=1)
    assert json.loads((shard_dirs[3] / "shard.json").read_text())["counts"] == {}
    # the classes come from every row of the dataset's manifest, whatever each shard kept
    joined = combine(out.parent / "manifest.csv", shard_dirs, tmp_path / "features")
    assert joined["classes"] == meta["classes"]
    ok_kept = sum(joined["counts"].values())
    assert joined["parts"]["train"][0] == ["shards/00000", json.loads(
        (shard_dirs[0] / "shard.json").read_text())["counts"]["train"]]
    assert ok_kept == sum(json.loads((d / "shard.json").read_text())["counts"].get(s, 0)
                          for d in shard_dirs for s in ("train", "test"))
    one = AVClipDataset(out, "train", 2, 4, 16, 64, train=False)
    many = AVClipDataset(tmp_path / "features", "train", 2, 4, 16, 64, train=False)
    assert len(one) == len(many) and many.meta["audio_mean"] == pytest.approx(one.meta["audio_mean"])
    for i in range(len(one)):
        a, b = one[i], many[i]
        assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["video"], b["video"])
        assert a["label"] == b["label"]


def test_combine_refuses_shards_of_other_sizes(tmp_path):
    manifest, _ = _manifest(tmp_path, broken=False)
    for name, side in (("a", SIDE), ("b", SIDE + 8)):
        extract_shard(manifest, tmp_path / name, clip_seconds=SECONDS, fps=FPS, short_side=side)
    with pytest.raises(ValueError, match=r"b/shard.json: sizes .* differ from"):
        combine(manifest, [tmp_path / "a", tmp_path / "b"], tmp_path / "out")


def test_manifest_without_ok_clips_is_an_error(tmp_path):
    path = tmp_path / "manifest.csv"
    pd.DataFrame([{"id": "a", "start_seconds": 0, "label": "x", "split": "train",
                   "status": "failed", "path": "", "reason": "404"}]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="no clip was extracted"):
        extract(path, tmp_path / "out")


def test_bad_storage_settings_are_errors(tmp_path):
    with pytest.raises(ValueError, match="video_format 'png' is not one of"):
        extract(tmp_path / "m.csv", tmp_path / "out", video_format="png")
    with pytest.raises(ValueError, match=r"jpeg_quality 3 is not a libjpeg quality in 50..100 \(not ffmpeg's -q:v"):
        extract(tmp_path / "m.csv", tmp_path / "out", jpeg_quality=3)


def test_action_frames_mark_the_segment_inside_its_context(tmp_path):
    """A whole-video clip holds its segment's context: index.csv gives the segment's
    stored frames; a segment that misses the stored clip is skipped with its reason; a
    time that is not a number names its manifest line."""
    manifest, _ = _manifest(tmp_path, broken=False)
    frame = pd.read_csv(manifest)
    spans = {0: (5.0, 7.05, 4.9), 1: (0.0, 10.0, 0.0), 2: (3.0, 3.2, 1.0), 3: (20.0, 21.0, 10.0)}
    frame["end_seconds"] = frame.start_seconds + SECONDS
    frame["clip_start"] = frame.start_seconds
    for i, (start, end, clip_start) in spans.items():
        frame.loc[i, ["start_seconds", "end_seconds", "clip_start"]] = start, end, clip_start
    frame.to_csv(manifest, index=False)
    extract_shard(manifest, tmp_path / "out", clip_seconds=SECONDS, fps=FPS, short_side=SIDE)
    clips = pd.concat([pd.read_csv(tmp_path / "out" / split / "clips.csv")
                       for split in ("train", "test")]).set_index("id")
    ids = frame.id.tolist()
    # (5.0 - 4.9) s at 10 fps starts in frame 1, 7.05 s ends in frame 21; the segment is
    # clamped to the 30 stored frames; 3.0-3.2 s from 1.0 s are frames 20-21
    assert clips.loc[ids[0], ["action_first", "action_last"]].tolist() == [1, 21]
    assert clips.loc[ids[1], ["action_first", "action_last"]].tolist() == [0, 29]
    assert clips.loc[ids[2], ["action_first", "action_last"]].tolist() == [20, 21]
    rest = clips.drop(ids[:3])
    assert ids[3] not in rest.index and (rest.action_first == 0).all() and (rest.action_last == 29).all()
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv").set_index("id")
    assert list(skipped.index) == [ids[3]]
    assert skipped.reason[ids[3]] == "its segment [20.0, 21.0) s misses the stored 3 s from 10.0 s"

    frame = frame.astype({"clip_start": object})
    frame.loc[2, "clip_start"] = "soon"
    frame.to_csv(manifest, index=False)
    with pytest.raises(ValueError, match=r"manifest.csv:4: clip_start 'soon' is not a number"):
        extract_shard(manifest, tmp_path / "again", clip_seconds=SECONDS, fps=FPS, short_side=SIDE)
