"""yt-dlp section downloads of file:// URLs: exact cuts, recorded failures, safe ids."""

import subprocess

import numpy as np
import pandas as pd
import pytest

from avmae.acquire.download import MANIFEST_COLUMNS, Policy, download
from avmae.acquire.lists import Clip
from avmae.ffmpeg import ffmpeg_exe
from avmae.toy.media import write_mp4

FPS, RATE, BITS, BAR = 25, 44100, 9, 10
CLICK_AFTER_START = 1.0  # seconds: where the cut clip should hear the click


def time_coded_source(path, seconds, start):
    """Frame k shows k in binary as black/white bars; a click sounds at start + 1 s."""
    k = np.arange(seconds * FPS)
    bits = ((k[:, None] >> np.arange(BITS)) & 1).astype(np.uint8) * 255
    frames = np.zeros((len(k), 64, 96, 3), np.uint8)
    frames[:, :, 3:3 + BITS * BAR] = np.repeat(bits, BAR, axis=1)[:, None, :, None]
    audio = np.random.default_rng(0).normal(0, 300, size=(seconds * RATE, 2))
    click = int((start + CLICK_AFTER_START) * RATE)
    audio[click:click + RATE // 50] *= 60  # 20 ms burst
    write_mp4(path, frames, audio.clip(-32767, 32767).astype(np.int16))


def decode_raw(path, *args):
    """Raw decoded bytes of a file (no scaling), through our ffmpeg."""
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), *args, "pipe:"]
    return subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout


def frame_numbers(path):
    frames = np.frombuffer(decode_raw(path, "-f", "rawvideo", "-pix_fmt", "gray"), np.uint8)
    frames = frames.reshape(-1, 64, 96)
    centres = frames[:, 32, 3 + BAR // 2:3 + BITS * BAR:BAR] > 128
    return (centres * (1 << np.arange(BITS))).sum(axis=1)


def audio_16k(path):
    return np.frombuffer(decode_raw(path, "-f", "f32le", "-ac", "1", "-ar", "16000"), "<f4")


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    root = tmp_path_factory.mktemp("dl")
    src = root / "src" / "media"
    src.mkdir(parents=True)
    time_coded_source(src / "timecode_A2.mp4", 14, start=2)
    time_coded_source(src / "timecode_B0.mp4", 12, start=0)
    time_coded_source(root / "src" / "evil.mp4", 12, start=0)  # what "../evil" would reach
    clips = [Clip("timecode_A2", 2.0, "a", "train"), Clip("missing_000", 0.0, "b", "train"),
             Clip("../evil", 0.0, "c", "test"), Clip("timecode_B0", 0.0, "d", "test")]
    out = root / "out"
    kwargs = dict(url_template=f"file://{src}/{{id}}.mp4", out_dir=out / "media",
                  manifest_path=out / "manifest.csv", workers=2, allow_file_urls=True,
                  policy=Policy(sleep=0, videos_per_hour=0))
    manifest = download(clips, **kwargs)
    return root, clips, kwargs, manifest


def test_manifest_records_every_clip(fetched):
    root, clips, kwargs, manifest = fetched
    on_disk = pd.read_csv(kwargs["manifest_path"], keep_default_na=False)
    assert list(on_disk.columns) == MANIFEST_COLUMNS
    assert on_disk.id.tolist() == [c.id for c in clips]
    assert on_disk.status.tolist() == ["ok", "unavailable", "unavailable", "ok"]
    missing, evil = on_disk.iloc[1], on_disk.iloc[2]
    assert "No such file" in missing.reason and "\n" not in missing.reason
    assert "invalid id" in evil.reason
    assert on_disk.label.tolist() == ["a", "b", "c", "d"]


def test_bad_id_never_touches_files_outside_out_dir(fetched):
    root, *_ = fetched
    assert sorted(p.name for p in (root / "out").iterdir()) == [
        "manifest.csv", "manifest.journal.jsonl", "media"]
    assert sorted(p.name for p in (root / "out" / "media").iterdir()) == ["timecode_A2.mp4",
                                                                         "timecode_B0.mp4"]


@pytest.mark.parametrize("row", [0, 3])
def test_clip_is_cut_frame_accurately_to_10_seconds(fetched, row):
    *_, manifest = fetched
    clip = manifest.iloc[row]
    numbers = frame_numbers(clip.path)
    assert abs(len(numbers) / FPS - 10) <= 0.1
    assert abs(numbers[0] - clip.start_seconds * FPS) <= 1  # the frame at `start`
    assert (np.diff(numbers) == 1).all()  # no frames dropped or repeated
    wave = audio_16k(clip.path)
    assert abs(len(wave) / 16000 - 10) <= 0.1
    assert abs(np.argmax(np.abs(wave)) / 16000 - CLICK_AFTER_START) < 0.03


def test_a_clip_downloads_to_the_same_frames_again(fetched, tmp_path):
    """Downloads are reproducible. (With x264's own threads, repeated downloads of toy
    clips differed about once in twelve; these simple clips did not show that in six
    tries, so this checks the property, not that one cause: see CUT_ENCODER_ARGS.)"""
    root, clips, kwargs, manifest = fetched
    again = download([clips[0], clips[3]], **{**kwargs, "out_dir": tmp_path / "media",
                                               "manifest_path": tmp_path / "manifest.csv"})
    for path, first in zip(again.path, manifest.path.iloc[[0, 3]]):
        assert decode_raw(path, "-f", "rawvideo") == decode_raw(first, "-f", "rawvideo")


def test_rerun_skips_downloaded_clips(fetched):
    root, clips, kwargs, manifest = fetched
    before = {p: p.stat().st_mtime_ns for p in (root / "out" / "media").iterdir()}
    again = download(clips, **kwargs)
    assert again.status.tolist() == manifest.status.tolist()
    assert {p: p.stat().st_mtime_ns for p in (root / "out" / "media").iterdir()} == before
    # a changed clip length is a new clip: downloaded again, cut to the new end
    shorter = download(clips, **{**kwargs, "clip_seconds": 4.0})
    assert (shorter.end_seconds - shorter.start_seconds)[shorter.status == "ok"].tolist() == [4.0, 4.0]
    assert (shorter.attempts[shorter.status == "ok"] == 1).all()
    download(clips, **kwargs)   # back to 10 s for the other tests of the module


def test_file_urls_need_explicit_permission(tmp_path):
    with pytest.raises(ValueError, match="allow_file_urls"):
        download([Clip("x", 0.0, "a", "train")], "file:///nowhere/{id}.mp4",
                 tmp_path / "media", tmp_path / "manifest.csv")


def test_segments_of_one_video_are_clips_of_their_own(fetched, tmp_path):
    """A clip is its (id, start): a second segment of an id is downloaded into its own file,
    cut at its own start; only a repeated (id, start) row is a duplicate. A rerun fetches
    nothing again; clips_used.csv lists both segments."""
    from avmae.acquire.availability import write_report

    _, _, kwargs, _ = fetched
    clips = [Clip("timecode_A2", 2.0, "a", "train"), Clip("timecode_B0", 0.0, "d", "test"),
             Clip("timecode_A2", 3.5, "a", "train"), Clip("timecode_A2", 2.0, "a", "train")]
    kwargs = {**kwargs, "out_dir": tmp_path / "media", "manifest_path": tmp_path / "manifest.csv"}
    manifest = download(clips, **kwargs)
    assert manifest.status.tolist() == ["ok", "ok", "ok", "unavailable"]
    assert manifest.reason[3] == ("duplicate row: id 'timecode_A2' starting at 2 s is listed before; "
                                  "only its first row is downloaded")
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == [
        "timecode_A2_000002.mp4", "timecode_A2_000003.500.mp4", "timecode_B0.mp4"]
    for row in (0, 2):
        numbers = frame_numbers(manifest.path[row])
        assert abs(numbers[0] - manifest.start_seconds[row] * FPS) <= 1
        assert abs(len(numbers) / FPS - 10) <= 0.1

    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "media").iterdir()}
    again = download(clips, **kwargs)
    assert again.status.tolist() == manifest.status.tolist()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "media").iterdir()} == before

    write_report(again, "toy", tmp_path / "availability.json", tmp_path / "used.csv")
    used = pd.read_csv(tmp_path / "used.csv")
    assert used.values.tolist() == [["timecode_B0", 0.0, "test"], ["timecode_A2", 2.0, "train"],
                                    ["timecode_A2", 3.5, "train"]]

    # features and the dataset keep both segments as clips of their own, keyed by (id, start)
    from avmae.data.dataset import AVClipDataset, ClipSubset
    from avmae.features.extract import extract
    extract(tmp_path / "manifest.csv", tmp_path / "features", short_side=32, fps=FPS)
    index = pd.read_csv(tmp_path / "features" / "train" / "index.csv")
    assert index[["id", "start_seconds"]].values.tolist() == [["timecode_A2", 2.0], ["timecode_A2", 3.5]]
    audio = np.load(tmp_path / "features" / "train" / "audio.npy").astype(np.float32)
    loudest = audio.mean(axis=2).argmax(axis=1)  # the click: source second 3 (time_coded_source)
    assert abs(loudest[0] - 100) <= 3          # 1 s into the segment from 2 s (10 ms frames)
    assert not 90 <= loudest[1] <= 110         # before the segment from 3.5 s: not in it
    data = AVClipDataset(tmp_path / "features", "train", video_frames=4, video_stride=2, crop=32,
                         audio_frames=1000, train=True)
    assert data.keys() == [("timecode_A2", 2.0), ("timecode_A2", 3.5)]
    assert ClipSubset(data, [("timecode_A2", 3.5)]).rows.tolist() == [1]
