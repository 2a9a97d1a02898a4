"""A partial file is never ok: the cheap check (complete container, header, duration,
streams) runs whatever --no-verify says (issue 18, item 5)."""

import subprocess

import numpy as np
import pytest

from avmae.acquire.download import Policy, verified
from avmae.acquire.verify import VerifyError, incomplete, probe_clip, verify_clip
from avmae.ffmpeg import ffmpeg_exe
from avmae.toy.media import write_mp4

SECONDS = 10


def clip(path, seconds=SECONDS, audio=True, video=True):
    frames = np.random.default_rng(0).integers(0, 255, (seconds * 25, 32, 32, 3), np.uint8)
    sound = np.random.default_rng(1).normal(0, 3000, (seconds * 44100, 2)).astype(np.int16)
    if video:
        write_mp4(path, frames, sound if audio else None)
    else:  # audio only: drop the video stream of a full clip
        full = path.with_name("full_" + path.name)
        write_mp4(full, frames, sound)
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(full), "-vn", "-c", "copy", str(path)],
                       check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    path = clip(root / "good.mp4")
    faststart = root / "faststart.mp4"  # the index (moov) before the media data, as mirrors serve
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(path), "-c", "copy",
                    "-movflags", "+faststart", str(faststart)], check=True, timeout=60)
    return path, faststart


def truncated(source, dest, fraction=0.6):
    data = source.read_bytes()
    dest.write_bytes(data[:int(len(data) * fraction)])
    return dest


def test_a_whole_clip_passes_both_checks(good):
    for path in good:
        assert incomplete(path) is None
        assert abs(probe_clip(path, SECONDS) - SECONDS) < 0.1
        assert abs(verify_clip(path, SECONDS) - SECONDS) < 0.1


@pytest.mark.parametrize("which", [0, 1], ids=["index-last", "faststart"])
def test_a_clip_truncated_mid_stream_fails_the_cheap_check(good, tmp_path, which):
    cut = truncated(good[which], tmp_path / "cut.mp4")
    with pytest.raises(VerifyError, match="truncated: box 'mdat'") as e:
        probe_clip(cut, SECONDS)
    assert not e.value.permanent
    with pytest.raises(VerifyError, match="truncated"):
        verify_clip(cut, SECONDS)


@pytest.mark.parametrize("verify", [True, False], ids=["verify", "no-verify"])
def test_no_verify_never_records_a_partial_clip_as_ok(good, tmp_path, verify):
    """``--no-verify`` (Policy.verify=False) skips only the full decode."""
    cut = truncated(good[1], tmp_path / "cut.mp4", 0.9)
    status, path, reason, duration = verified(cut, SECONDS, Policy(verify=verify))
    assert (status, path, duration) == ("failed", "", None)
    assert reason.startswith("verify: truncated: box 'mdat'")
    assert not cut.exists()  # deleted, as a failed download is
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(good[0].read_bytes())
    status, path, reason, duration = verified(whole, SECONDS, Policy(verify=verify))
    assert (status, path, reason) == ("ok", str(whole), "") and abs(duration - SECONDS) < 0.1


def test_the_cheap_check_reads_duration_and_streams(good, tmp_path):
    with pytest.raises(VerifyError, match=r"duration 10\.00 s, expected 4\.00 s"):
        probe_clip(good[0], 4)
    with pytest.raises(VerifyError, match="no audio stream") as e:
        probe_clip(clip(tmp_path / "silent.mp4", 2, audio=False), 2)
    assert e.value.permanent
    with pytest.raises(VerifyError, match="no video stream") as e:
        probe_clip(clip(tmp_path / "radio.mp4", 2, video=False), 2)
    assert e.value.permanent
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)
    with pytest.raises(VerifyError, match="corrupt|truncated|header does not read|no duration"):
        probe_clip(garbage, SECONDS)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n")
    with pytest.raises(VerifyError, match="header does not read|no duration"):
        probe_clip(text, SECONDS)
