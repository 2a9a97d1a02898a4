"""Whole-video downloads (avmae/acquire/videos.py) against a local HTTP server with Range
support: one download per video, resumed parts, md5 checks, segments cut at their times."""

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_data_download_http import MALICIOUS, Handler, Server

from avmae.acquire.download import Policy
from avmae.acquire.lists import Clip, ListFormatError, write_clips
from avmae.acquire.videos import EPIC_DATASETS, context, download_videos, read_checksums
from avmae.ffmpeg import ffmpeg_exe
from avmae.toy.media import write_mp4

FIXTURES = Path(__file__).parent / "fixtures"
FAST = Policy(retries=1, backoff=0.01, max_backoff=0.05, block_after=0, sleep=0, videos_per_hour=0, timeout=5)
SECONDS = 8


class RangeLog(Handler):
    """The shared test server's handler, recording each request's Range header per file;
    a range that starts at or after the end gets 416, as from a real server."""

    def do_GET(self):
        ranged = self.headers.get("Range")
        self.server.ranges.setdefault(self.path.lstrip("/"), []).append(ranged)
        start = int(ranged.removeprefix("bytes=").partition("-")[0]) if ranged else 0
        if start and start >= len(self.server.video):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(self.server.video)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """An 8 s video (48x64 at 25 fps, with sound) whose grey level is 25 x the second."""
    frames = np.repeat((25 * (np.arange(SECONDS * 25) // 25)).astype(np.uint8), 48 * 64 * 3)
    frames = frames.reshape(SECONDS * 25, 48, 64, 3)
    sound = np.random.default_rng(0).normal(0, 3000, (SECONDS * 44100, 2)).astype(np.int16)
    path = tmp_path_factory.mktemp("video") / "video.mp4"
    write_mp4(path, frames, sound)
    return path.read_bytes()


@pytest.fixture
def server(video):
    srv = Server({})
    srv.RequestHandlerClass, srv.ranges, srv.video = RangeLog, {}, video
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def segment(narration, video, start, stop):
    return Clip(narration, start, "verb:1;noun:2", "train", end=stop, source=video)


def grey_at_start(path):
    """Mean grey level of a clip's first frame."""
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True,
                         timeout=60)
    return np.frombuffer(out.stdout, np.uint8).mean()


def test_one_download_per_video_segments_cut_in_their_context(server, tmp_path):
    """Each segment's 3 s context, centred on it and moved into the 8 s video, is cut."""
    server.files.update(P01_01=server.video, P01_101=server.video)
    clips = [segment("P01_01_0", "P01_01", 1.0, 3.5), segment("P01_101_0", "P01_101", 0.0, 2.0),
             segment("P01_01_1", "P01_01", 3.0, 5.0), segment("P01_01_2", "P01_01", 7.0, 7.8),
             segment("P01_101_1", "P01_101", 2.0, 7.5), segment("P02_01_0", "P02_01", 0.0, 2.0)]
    contexts = [(0.75, 3.75), (0.0, 3.0), (2.5, 5.5), (5.0, 8.0), (3.25, 6.25)]
    out = tmp_path / "media"
    manifest = download_videos(clips, server.template, out, tmp_path / "manifest.csv",
                               workers=2, clip_seconds=3.0, policy=FAST).set_index("id")
    assert manifest.index.tolist() == [c.id for c in clips]  # list order
    assert manifest.status.to_dict() == {c.id: "ok" for c in clips[:5]} | {"P02_01_0": "unavailable"}
    assert "404" in manifest.reason["P02_01_0"]
    assert server.hits == {"P01_01": 1, "P01_101": 1, "P02_01": 1}
    for clip, (begin, end) in zip(clips, contexts):
        row = manifest.loc[clip.id]
        assert (row.start_seconds, row.end_seconds) == (clip.start, clip.end)  # as listed
        assert (row.clip_start, row.clip_end, row.video_seconds) == (begin, end, SECONDS)
        assert abs(row.duration - 3.0) < 0.15
        assert abs(grey_at_start(out / f"{clip.id}.mp4") - 25 * int(begin)) < 6
    assert list((out / "videos").iterdir()) == []  # deleted once their segments are cut

    again = download_videos(clips, server.template, out, tmp_path / "manifest.csv",
                            clip_seconds=3.0, policy=FAST)
    assert again.status.tolist() == manifest.status.tolist()
    assert server.hits == {"P01_01": 1, "P01_101": 1, "P02_01": 1}  # the journal skips all
    longer = download_videos(clips[:1], server.template, out, tmp_path / "manifest.csv",
                             clip_seconds=5.0, policy=FAST)  # a new clip length: cut again
    assert server.hits["P01_01"] == 2
    assert (longer.clip_start[0], longer.clip_end[0], longer.duration[0].round()) == (0.0, 5.0, 5.0)


def test_context_is_centred_and_moved_into_the_video():
    assert context(10.0, 13.0, 10.0) == (6.5, 16.5)
    assert context(1.0, 2.0, 10.0) == (0.0, 10.0)                         # the video's start
    assert context(95.0, 99.0, 10.0, video_seconds=100.0) == (90.0, 100.0)  # its end
    assert context(2.0, 5.0, 10.0, video_seconds=6.5) == (0.0, 6.5)       # all of a shorter video
    assert context(10.0, 40.0, 10.0) == (20.0, 30.0)                      # a long segment's middle
    assert context(0.1234, 0.5, 0.2) == (0.212, 0.412)                    # milliseconds


def test_a_segment_after_the_video_end_is_unavailable(server, tmp_path):
    server.files["P04_01"] = server.video
    clips = [segment("P04_01_0", "P04_01", 9.0, 10.0), segment("P04_01_1", "P04_01", 1.0, 2.0)]
    manifest = download_videos(clips, server.template, tmp_path / "m", tmp_path / "manifest.csv", policy=FAST)
    assert manifest.status.tolist() == ["unavailable", "ok"]
    assert "starts at 9.00 s, after the video's end (8.00 s)" in manifest.reason[0]


def test_keep_videos(server, tmp_path):
    server.files["P03_01"] = server.video
    download_videos([segment("P03_01_0", "P03_01", 0.0, 2.0)], server.template, tmp_path / "m",
                    tmp_path / "manifest.csv", policy=FAST, keep_videos=True)
    assert (tmp_path / "m" / "videos" / "P03_01.mp4").read_bytes() == server.video


def test_resume_continues_a_part_with_a_range_request(server, tmp_path):
    server.files.update(P04_01=server.video, P04_02=server.video)
    server.plan["P04_02"] = ["truncate", "ok"]  # the connection drops after a third
    videos = tmp_path / "media" / "videos"
    videos.mkdir(parents=True)
    (videos / "P04_01.mp4.part").write_bytes(server.video[:1000])  # left by a killed job
    clips = [segment("P04_01_0", "P04_01", 2.0, 4.0), segment("P04_02_0", "P04_02", 2.0, 4.0)]
    manifest = download_videos(clips, server.template, tmp_path / "media",
                               tmp_path / "manifest.csv", workers=1, policy=FAST, keep_videos=True)
    assert manifest.status.tolist() == ["ok", "ok"] and manifest.attempts.tolist() == [1, 2]
    assert server.ranges["P04_01.mp4"] == ["bytes=1000-"]
    first = len(server.video) // 3
    assert server.ranges["P04_02.mp4"] == [None, f"bytes={first}-"]
    assert (videos / "P04_01.mp4").read_bytes() == (videos / "P04_02.mp4").read_bytes() == server.video
    assert sorted(p.name for p in videos.iterdir()) == ["P04_01.mp4", "P04_02.mp4"]  # no .part


def test_resume_a_whole_part_and_drop_one_too_long(server, tmp_path):
    """A job killed after the last byte but before the rename left a whole part (416, then
    renamed); a part longer than the file (416) is deleted and the retry starts over."""
    server.files.update(P06_01=server.video, P06_02=server.video)
    videos = tmp_path / "media" / "videos"
    videos.mkdir(parents=True)
    (videos / "P06_01.mp4.part").write_bytes(server.video)
    (videos / "P06_02.mp4.part").write_bytes(server.video + b"junk")
    clips = [segment("P06_01_0", "P06_01", 2.0, 4.0), segment("P06_02_0", "P06_02", 2.0, 4.0)]
    manifest = download_videos(clips, server.template, tmp_path / "media",
                               tmp_path / "manifest.csv", workers=1, policy=FAST, keep_videos=True)
    assert manifest.status.tolist() == ["ok", "ok"] and manifest.attempts.tolist() == [1, 2]
    assert server.ranges["P06_01.mp4"] == [f"bytes={len(server.video)}-"]
    assert server.ranges["P06_02.mp4"] == [f"bytes={len(server.video) + 4}-", None]
    assert (videos / "P06_02.mp4").read_bytes() == server.video


def test_md5_list_paths_and_mismatch(server, tmp_path):
    """{path} from the checksum list; a wrong md5 is failed (retried), the file removed; a video
    the list lacks is unavailable. Through the CLI, as the workflow runs it."""
    good = hashlib.md5(server.video).hexdigest()
    checksums = tmp_path / "md5.csv"
    checksums.write_text("md5,file_remote_path,version\n"
                         f"{good},videos/train/P01/P01_05.MP4,55\n"
                         f"{'0' * 32},P01/videos/P01_105.MP4,100\n")
    server.files[f"{EPIC_DATASETS['55']}/videos/train/P01/P01_05.MP4"] = server.video
    server.files[f"{EPIC_DATASETS['100']}/P01/videos/P01_105.MP4"] = server.video
    shard = tmp_path / "00000.csv"
    write_clips(shard, [segment("P01_05_0", "P01_05", 1.0, 3.0), segment("P01_105_0", "P01_105", 1.0, 3.0),
                        segment("P01_06_0", "P01_06", 1.0, 3.0)])
    template = server.template.replace("{id}.mp4", "{path}")
    proc = subprocess.run([sys.executable, "-m", "avmae.cli", "download", "--format", "clips",
                           "--list", str(shard), "--url-template", template, "--whole-videos",
                           "--checksums", str(checksums), "--out", str(tmp_path / "media"),
                           "--manifest", str(tmp_path / "manifest.csv"), "--sleep", "0",
                           "--videos-per-hour", "0", "--retries", "1", "--backoff", "0.01"],
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    manifest = pd.read_csv(tmp_path / "manifest.csv", keep_default_na=False).set_index("id")
    assert manifest.status.to_dict() == {"P01_05_0": "ok", "P01_105_0": "failed",
                                         "P01_06_0": "unavailable"}
    assert manifest.reason["P01_105_0"].startswith(f"md5 mismatch: {good}, expected {'0' * 32}")
    assert manifest.attempts["P01_105_0"] == 2
    assert "not in the checksum list" in manifest.reason["P01_06_0"]
    # the failed video is deleted; the good one too, its segment being cut
    assert list((tmp_path / "media" / "videos").iterdir()) == []


def test_malicious_ids_never_leave_the_folder(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server.files.update({v: server.video for v in MALICIOUS + ["P05_01"]})
    clips = [segment(f"P05_01_{i}", v, 0.0, 2.0) for i, v in enumerate(MALICIOUS)]
    clips += [segment(v, "P05_01", 0.0, 2.0) for v in MALICIOUS if v not in ("-abc", "-")]
    clips += [segment("P05_01_ok", "P05_01", 0.0, 2.0)]
    manifest = download_videos(clips, server.template, tmp_path / "o" / "media",
                               tmp_path / "o" / "manifest.csv", policy=FAST, keep_videos=True)
    ok = set(manifest.id[manifest.status == "ok"])
    assert ok == {"P05_01_0", "P05_01_5", "P05_01_ok"}  # videos '-abc' and '-' are valid ids
    assert set(server.hits) == {"-abc", "-", "P05_01"}  # no request for a rejected id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    assert sorted(p.name for p in (tmp_path / "o" / "media").iterdir()) == [
        "P05_01_0.mp4", "P05_01_5.mp4", "P05_01_ok.mp4", "videos"]


def test_read_checksums_official_rows():
    videos = read_checksums(FIXTURES / "md5.csv")  # a few rows of the official data/md5.csv
    assert videos == {
        "P01_01": (f"{EPIC_DATASETS['55']}/videos/train/P01/P01_01.MP4", "f7de046e4f7719e373eb85c62e73f15b"),
        "P01_11": (f"{EPIC_DATASETS['55']}/videos/test/P01/P01_11.MP4", "647c9e4764d4ca96e73d26cdd1595062"),
        "P01_101": (f"{EPIC_DATASETS['100']}/P01/videos/P01_101.MP4", "654113cadf8ba21f51cb81cd35ad18a1"),
    }  # the rgb_frames row is not a video


def test_read_checksums_malformed_rows(tmp_path):
    lines = (FIXTURES / "md5.csv").read_text().splitlines()
    lines[1] = lines[1].replace("f7de", "F7DE")
    lines[2] = lines[2].replace("videos/test", "../test")
    lines[3] = lines[3].replace(",100", ",101")
    path = tmp_path / "md5.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ListFormatError) as e:
        read_checksums(path)
    message = str(e.value)
    assert f"{path}:2: md5 'F7DE" in message and f"{path}:3: file_remote_path" in message
    assert f"{path}:4: version '101'" in message and "3 malformed row(s)" in message
