"""The synthetic VGGSound set: real H.264/AAC files, the real CSV format, deterministic."""

import json
import re
import subprocess
from collections import Counter

import pytest

from avmae.data.features import Spec, decode_audio, decode_video
from avmae.data.ffmpeg import ffmpeg_exe
from avmae.data.lists import read_vggsound
from avmae.data.toy import make_toy_vggsound


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_vggsound(tmp_path_factory.mktemp("toy"), clips_per_class=2,
                             test_fraction=0.5, seed=7, workers=2)


def ffmpeg_info(path):
    """What `ffmpeg -i` prints about a file (there is no ffprobe)."""
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True).stderr


def test_csv_is_vggsound_format_with_8_classes(toy):
    clips = read_vggsound(toy)
    assert len(clips) == 16
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{11}", c.id) for c in clips)
    assert len({c.id for c in clips}) == 16
    assert all(c.start in (0, 1, 2, 3) for c in clips)
    labels = {c.label for c in clips}
    assert len(labels) == 8
    assert Counter((c.label, c.split) for c in clips) == {
        (label, split): 1 for label in labels for split in ("train", "test")}

    classes = json.loads((toy.parent / "classes.json").read_text())["classes"]
    assert {c["label"] for c in classes} == labels
    told_apart_by = Counter(c["told_apart_by"] for c in classes)
    assert told_apart_by == {"video": 2, "audio": 2, "audio+video": 4}


def test_media_are_h264_aac_mp4_of_the_right_length(toy):
    for clip in read_vggsound(toy):
        path = toy.parent / "media" / f"{clip.id}.mp4"
        info = ffmpeg_info(path)
        assert "Input #0, mov,mp4" in info
        assert re.search(r"Video: h264 .*96x64.* 25 fps", info), info
        assert re.search(r"Audio: aac .*44100 Hz, stereo", info), info
        h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", info).groups()
        assert abs(float(s) + 60 * int(m) - (clip.start + 11)) < 0.1, info


def test_same_seed_gives_same_csv_and_content(toy, tmp_path):
    again = make_toy_vggsound(tmp_path / "again", clips_per_class=2, test_fraction=0.5,
                              seed=7, workers=1)
    assert again.read_bytes() == toy.read_bytes()
    spec = Spec(clip_seconds=10.0, fps=25, short_side=40, sample_rate=16000, n_mels=128)
    for clip in read_vggsound(toy)[:3]:
        a, b = (root.parent / "media" / f"{clip.id}.mp4" for root in (toy, again))
        assert (decode_video(a, spec) == decode_video(b, spec)).all()
        assert (decode_audio(a, spec) == decode_audio(b, spec)).all()
    other = make_toy_vggsound(tmp_path / "other", clips_per_class=1, seed=8)
    assert {c.id for c in read_vggsound(other)}.isdisjoint({c.id for c in read_vggsound(toy)})
