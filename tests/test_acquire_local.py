"""Datasets on disk (avmae/acquire/local.py, issue 18 item 4): pre-cut clips linked, whole
videos cut locally, tar shards extracted; missing and corrupt files; bad settings refused
before any clip."""

import errno
import os
import tarfile

import numpy as np
import pandas as pd
import pytest

from avmae.acquire import local as local_mod
from avmae.acquire.availability import write_report
from avmae.acquire.download import MANIFEST_COLUMNS
from avmae.acquire.lists import Clip, write_clips
from avmae.acquire.local import LocalConfigError, check_local, register
from avmae.cli import main
from avmae.toy.media import write_mp4


def toy_clip(path, seconds=10, grey=100):
    frames = np.full((seconds * 25, 32, 32, 3), grey, np.uint8)
    sound = np.random.default_rng(grey).normal(0, 3000, (seconds * 44100, 2)).astype(np.int16)
    write_mp4(path, frames, sound)
    return path


def truncate(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A VGGSound-like mirror of pre-cut clips named {id}_{start:06d}.mp4, two segments of
    one video among them; one clip cut short, one not a video."""
    root = tmp_path_factory.mktemp("mirror") / "video"
    root.mkdir()
    one = toy_clip(root / "aaaaaaaaaaa_000030.mp4", grey=10)
    for name in ("aaaaaaaaaaa_000100.mp4", "bbbbbbbbbbb_000000.mp4", "cut_short_000010.mp4"):
        (root / name).write_bytes(one.read_bytes())
    truncate(root / "cut_short_000010.mp4")
    (root / "not_video_000000.mp4").write_text("<html>mirror error page</html>\n")
    clips = [Clip("aaaaaaaaaaa", 30.0, "dog", "train"), Clip("bbbbbbbbbbb", 0.0, "cat", "test"),
             Clip("aaaaaaaaaaa", 100.0, "dog", "train"), Clip("missing_id1", 20.0, "cow", "train"),
             Clip("cut_short", 10.0, "owl", "train"), Clip("not_video", 0.0, "owl", "test"),
             Clip("aaaaaaaaaaa", 12.5, "dog", "train")]
    return root, clips


def test_precut_clips_are_linked_and_recorded_as_a_download(mirror, tmp_path):
    root, clips = mirror
    local = check_local(root, "clips", "{id}_{start:06d}.mp4")
    manifest = register(clips, local, tmp_path / "media", tmp_path / "manifest.csv")
    on_disk = pd.read_csv(tmp_path / "manifest.csv", keep_default_na=False)
    assert list(on_disk.columns) == MANIFEST_COLUMNS
    assert manifest.status.tolist() == ["ok", "ok", "ok", "unavailable", "failed", "failed", "unavailable"]
    assert manifest.reason[3] == f"no such file: {root.resolve()}/missing_id1_000020.mp4"
    assert manifest.reason[4].startswith("verify: truncated: box 'mdat'")
    assert manifest.reason[4].endswith(f"({root.resolve()}/cut_short_000010.mp4)")
    assert "not_video_000000.mp4" in manifest.reason[5]
    assert "cannot name start 12.5 s" in manifest.reason[6]
    # the shard's own names (an id with several segments: {id}_{start:06d}), hard links
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == [
        "aaaaaaaaaaa_000030.mp4", "aaaaaaaaaaa_000100.mp4", "bbbbbbbbbbb.mp4"]
    for path, name in zip(manifest.path[:3], ["aaaaaaaaaaa_000030", "bbbbbbbbbbb_000000", "aaaaaaaaaaa_000100"]):
        assert os.path.samefile(path, root / f"{name}.mp4") and not os.path.islink(path)
    assert (manifest.duration[:3].astype(float) - 10).abs().max() < 0.1
    assert (root / "cut_short_000010.mp4").exists()  # the user's files are never touched

    # a rerun checks nothing again; clips_used.csv lists both segments of one video
    before = {p.name: p.stat().st_ino for p in (tmp_path / "media").iterdir()}
    again = register(clips, local, tmp_path / "media", tmp_path / "manifest.csv")
    assert again.status.tolist() == manifest.status.tolist()
    assert {p.name: p.stat().st_ino for p in (tmp_path / "media").iterdir()} == before
    write_report(again, "toy", tmp_path / "availability.json", tmp_path / "used.csv")
    assert pd.read_csv(tmp_path / "used.csv").values.tolist() == [
        ["bbbbbbbbbbb", 0.0, "test"], ["aaaaaaaaaaa", 30.0, "train"], ["aaaaaaaaaaa", 100.0, "train"]]


def test_across_file_systems_a_clip_is_symlinked_not_copied(mirror, tmp_path, monkeypatch):
    root, clips = mirror

    def cross_device(src, dst, **_):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(local_mod.os, "link", cross_device)
    manifest = register(clips[:1], check_local(root), tmp_path / "media", tmp_path / "m.csv")
    path = manifest.path[0]
    assert manifest.status[0] == "ok" and os.path.islink(path)
    assert os.readlink(path) == str((root / "aaaaaaaaaaa_000030.mp4").resolve())


def test_tar_shards_of_clips(mirror, tmp_path):
    """Members found by name in any folder of any tar, plain or compressed; the shard's
    members extracted; missing and corrupt members recorded."""
    root, clips = mirror
    tars = tmp_path / "tars"
    tars.mkdir()
    with tarfile.open(tars / "vggsound_00.tar", "w") as t:
        for name in ("aaaaaaaaaaa_000030.mp4", "cut_short_000010.mp4"):
            t.add(root / name, arcname=f"scratch/VGGSound/video/{name}")
    with tarfile.open(tars / "vggsound_01.tar.gz", "w:gz") as t:
        t.add(root / "bbbbbbbbbbb_000000.mp4", arcname="./video/bbbbbbbbbbb_000000.mp4")
    (tars / "README.txt").write_text("not a tar, not looked at\n")
    local = check_local(tars, "tar")
    assert [p.name for p in local.tars] == ["vggsound_00.tar", "vggsound_01.tar.gz"]
    manifest = register(clips[:5], local, tmp_path / "media", tmp_path / "manifest.csv")
    assert manifest.status.tolist() == ["ok", "ok", "unavailable", "unavailable", "failed"]
    assert manifest.reason[2] == f"no such file: aaaaaaaaaaa_000100.mp4 in the tar(s) under {tars}"
    assert manifest.reason[4].startswith("verify: truncated")
    assert manifest.reason[4].endswith(f"({tars}/vggsound_00.tar:scratch/VGGSound/video/cut_short_000010.mp4)")
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == [
        "aaaaaaaaaaa_000030.mp4", "bbbbbbbbbbb.mp4"]  # the corrupt member is not kept
    assert (tmp_path / "media" / "bbbbbbbbbbb.mp4").read_bytes() == (root / "bbbbbbbbbbb_000000.mp4").read_bytes()
    # a pattern with a folder must match the member's path
    manifest = register(clips[:1], check_local(tars / "vggsound_00.tar", "tar", "video/{id}_{start:06d}.mp4"),
                        tmp_path / "media2", tmp_path / "manifest2.csv")
    assert manifest.status.tolist() == ["unavailable"]


def test_tar_hard_links_are_clips_too(mirror, tmp_path):
    """tar stores the second name of a hard-linked file as a link member (no data of its
    own); both names are clips, with the same bytes (plain and compressed tars)."""
    root, clips = mirror
    (tmp_path / "src").mkdir()
    first, second = tmp_path / "src" / "aaaaaaaaaaa_000030.mp4", tmp_path / "src" / "bbbbbbbbbbb_000000.mp4"
    first.write_bytes((root / "aaaaaaaaaaa_000030.mp4").read_bytes())
    os.link(first, second)
    for name, mode in (("plain.tar", "w"), ("packed.tar.gz", "w:gz")):
        with tarfile.open(tmp_path / name, mode) as t:
            t.add(first, arcname=first.name)
            t.add(second, arcname=second.name)
            assert t.getmember(second.name).islnk()
        out = tmp_path / name.partition(".")[0]
        manifest = register(clips[:2], check_local(tmp_path / name, "tar"), out / "media", out / "manifest.csv")
        assert manifest.status.tolist() == ["ok", "ok"], manifest.reason.tolist()
        assert (out / "media" / "bbbbbbbbbbb.mp4").read_bytes() == first.read_bytes()


def test_whole_videos_are_cut_locally(tmp_path):
    """Whole videos {id}.mp4, each segment cut by the whole-video (EPIC) path; missing and
    corrupt videos recorded."""
    videos = tmp_path / "videos dir"  # a space: the file:// URL is quoted
    videos.mkdir()
    toy_clip(videos / "vidA.mp4", seconds=14, grey=60)
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(200))
    clips = [Clip("vidA", 3.0, "dog", "train"), Clip("gone", 0.0, "dog", "train"),
             Clip("broken", 0.0, "dog", "test")]
    manifest = register(clips, check_local(videos, "videos"), tmp_path / "media",
                        tmp_path / "manifest.csv", clip_seconds=4.0)
    assert manifest.status.tolist() == ["ok", "unavailable", "failed"]
    assert manifest.reason[1] == f"no such file: {videos}/gone.mp4"
    assert "broken.mp4" in manifest.reason[2]
    assert (manifest.clip_start[0], manifest.clip_end[0]) == (3.0, 7.0)
    assert abs(float(manifest.duration[0]) - 4.0) < 0.1
    assert float(manifest.video_seconds[0]) == pytest.approx(14.0, abs=0.1)
    assert os.stat(manifest.path[0]).st_ino != os.stat(videos / "vidA.mp4").st_ino


@pytest.mark.parametrize("layout,pattern,make,message", [
    ("clips", "{id}_{vid}.mp4", None, r"datasets\.vgg\.local\.pattern .* unknown field"),
    ("clips", "clip_{start:06d}.mp4", None, r"datasets\.vgg\.local\.pattern .* has no \{id\}"),
    ("clips", "{id}_{start:06q}.mp4", None, r"datasets\.vgg\.local\.pattern .* does not format"),
    ("clips", "../{id}.mp4", None, r"datasets\.vgg\.local\.pattern .* relative path"),
    ("videos", "{id}_{start}.mp4", None, r"datasets\.vgg\.local\.pattern .* by \{id\} alone"),
    ("folders", None, None, r"datasets\.vgg\.local\.layout 'folders' is not one of clips, videos, tar"),
    ("clips", None, "nothing", r"datasets\.vgg\.local\.root .* does not exist"),
    ("tar", None, "nothing", r"datasets\.vgg\.local\.root .* does not exist"),
    ("tar", None, "text.tar", r"datasets\.vgg\.local\.root: .*text\.tar' is not a tar file"),
    ("tar", None, "empty_dir", r"datasets\.vgg\.local\.root .* holds no tar file"),
    ("clips", None, "text.tar", r"datasets\.vgg\.local\.root .* is not a folder"),
])
def test_bad_settings_are_refused_naming_the_config_key(tmp_path, layout, pattern, make, message):
    root = tmp_path
    if make == "nothing":
        root = tmp_path / "no" / "such" / "root"
    elif make == "text.tar":
        root = tmp_path / "text.tar"
        root.write_text("this is not a tar file\n" * 40)
    elif make == "empty_dir":
        (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(LocalConfigError, match=message):
        check_local(root, layout, pattern, key="datasets.vgg.local")


def test_command_line_refuses_a_bad_setting_before_any_clip(tmp_path):
    write_clips(tmp_path / "list.csv", [Clip("aaaaaaaaaaa", 30.0, "dog", "train")])
    with pytest.raises(SystemExit) as e:
        main(["download", "--format", "clips", "--list", str(tmp_path / "list.csv"),
              "--url-template", "https://www.youtube.com/watch?v={id}", "--local", str(tmp_path),
              "--pattern", "{start:06d}.mp4", "--config-key", "datasets.vgg.local",
              "--out", str(tmp_path / "media"), "--manifest", str(tmp_path / "manifest.csv")])
    assert str(e.value).startswith("avmae download: datasets.vgg.local.pattern '{start:06d}.mp4' has no {id}")
    assert not (tmp_path / "manifest.csv").exists() and not (tmp_path / "media").exists()


def test_command_line_registers_a_local_copy(mirror, tmp_path):
    root, clips = mirror
    write_clips(tmp_path / "list.csv", clips[:2])
    main(["download", "--format", "clips", "--list", str(tmp_path / "list.csv"),
          "--local", str(root), "--layout", "clips", "--pattern", "{id}_{start:06d}.mp4",
          "--out", str(tmp_path / "media"), "--manifest", str(tmp_path / "manifest.csv")])
    assert pd.read_csv(tmp_path / "manifest.csv").status.tolist() == ["ok", "ok"]
