"""Media in the formats real downloads come in, made with the project's ffmpeg at test
time, through the feature stage (``extract``): mono, 48 kHz, 5.1 audio, a portrait
video and a variable frame rate. Each must be kept with its own class, 16 kHz mono
audio whose tone sits where the reference's does, and frames sampled in time order at
the stored rate, the short side scaled to ``short_side``."""

import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.io import decode_jpeg

from avmae.features.extract import extract
from avmae.ffmpeg import ffmpeg_exe

SECONDS, FPS, SIDE = 3.0, 10, 24
# Luma rises 70 levels per second (frame N of 25 fps: 70 N / 25), so a frame's brightness
# tells when it was shown; the audio is a 440 Hz tone on every channel.
RAMP = "geq=lum='16+70*T':cb=128:cr=128"
VARIANTS = {  # name: (video source size, extra video filters, audio layout and rate, split)
    "reference": ("64x48", "", ("stereo", 44100), "train"),
    "mono": ("64x48", "", ("mono", 44100), "train"),
    "rate48k": ("64x48", "", ("stereo", 48000), "test"),
    "surround51": ("64x48", "", ("5.1", 48000), "test"),
    "portrait": ("48x96", "", ("stereo", 44100), "train"),
    # variable frame rate: frame N shown at N/25 + 0.015 sin(N) s (gaps from 10 to 70 ms)
    "vfr": ("64x48", ",settb=1/1000,setpts='(N/25+0.015*sin(N))/TB'", ("stereo", 44100), "test"),
}


def make_clip(path, size, vfilter, layout, rate):
    cmd = [ffmpeg_exe(), "-v", "error", "-y",
           "-f", "lavfi", "-i", f"nullsrc=s={size}:r=25:d=4,format=yuv420p,{RAMP}",
           "-f", "lavfi", "-i", f"sine=f=440:r={rate}:d=4",
           "-filter_complex", f"[0:v]null{vfilter}[v];[1:a]aformat=channel_layouts={layout}[a]",
           "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", str(rate)]
    if "setpts" in vfilter:   # keep the uneven times: encoder and file in ms, not 1/25 s
        cmd += ["-fps_mode", "passthrough", "-enc_time_base", "1:1000", "-video_track_timescale", "1000"]
    subprocess.run([*cmd, str(path)], check=True, capture_output=True, timeout=120)


def probe(path) -> str:
    """ffmpeg's description of the file's streams (ffmpeg -i exits 1: no output named)."""
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                          check=False, timeout=60).stderr


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd_media")
    rows = []
    for name, (size, vfilter, (layout, rate), split) in VARIANTS.items():
        path = root / f"{name}.mp4"
        make_clip(path, size, vfilter, layout, rate)
        rows.append({"id": name, "start_seconds": 0, "label": f"class {name}", "split": split,
                     "status": "ok", "path": str(path), "reason": ""})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    meta = extract(root / "manifest.csv", root / "out", clip_seconds=SECONDS, fps=FPS, short_side=SIDE, workers=2)
    return root, meta


def test_the_files_are_what_they_claim(extracted):
    root, _ = extracted
    assert "mono" in probe(root / "mono.mp4") and "44100 Hz" in probe(root / "mono.mp4")
    assert "48000 Hz" in probe(root / "rate48k.mp4")
    assert "5.1" in probe(root / "surround51.mp4")
    assert "48x96" in probe(root / "portrait.mp4")
    # the VFR file's frame times are uneven (ffprobe-free: ffmpeg's showinfo prints pts_time)
    info = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(root / "vfr.mp4"), "-map", "0:v",
                           "-vf", "showinfo", "-fps_mode", "passthrough", "-f", "null", "-"],
                          capture_output=True, text=True, check=True, timeout=60).stderr
    times = np.array([float(t) for t in re.findall(r"pts_time:([\d.]+)", info)])
    gaps = np.diff(times)
    assert len(times) == 100 and gaps.min() < 0.03 and gaps.max() > 0.05


def load(out, split):
    index = pd.read_csv(out / split / "index.csv")
    audio = np.load(out / split / "audio.npy")
    offsets = np.load(out / split / "video_jpeg_offsets.npy")
    data = (out / split / "video_jpeg.bin").read_bytes()

    def frames(i):
        return [decode_jpeg(torch.frombuffer(bytearray(data[offsets[i, f]:offsets[i, f + 1]]), dtype=torch.uint8))
                for f in range(offsets.shape[1] - 1)]
    return index, audio, frames


def test_every_clip_is_kept_with_its_class(extracted):
    root, meta = extracted
    assert meta["counts"] == {"train": 3, "test": 3}
    assert not (root / "out" / "skipped.csv").exists() or pd.read_csv(root / "out" / "skipped.csv").empty
    names = sorted(f"class {n}" for n in VARIANTS)
    assert meta["classes"] == names
    for split in ("train", "test"):
        index, _, _ = load(root / "out", split)
        assert sorted(index.id) == sorted(n for n, v in VARIANTS.items() if v[3] == split)
        assert [names[i] for i in index.label_index] == [f"class {i}" for i in index.id]


def mel_peak(audio_row) -> int:
    return int(np.asarray(audio_row, np.float32)[50:250].mean(0).argmax())


def test_audio_is_16khz_mono_with_the_tone_in_place(extracted):
    """440 Hz on 128 Kaldi mel bins from 20 Hz to 8 kHz: mel(f) = 1127 ln(1 + f/700);
    mel(20) = 31.7, mel(8000) = 2840.0, bin i centred at 31.7 + (i + 1) x 21.77;
    mel(440) = 549.6 -> i = 22.8: the peak is bin 22 or 23, for every layout and rate."""
    root, _ = extracted
    peaks, levels = {}, {}
    for split in ("train", "test"):
        index, audio, _ = load(root / "out", split)
        assert audio.shape[1:] == (300, 128) and np.isfinite(audio).all()
        for i, name in enumerate(index.id):
            peaks[name] = mel_peak(audio[i])
            levels[name] = float(np.asarray(audio[i], np.float32)[50:250, peaks[name]].mean())
    assert peaks["reference"] in (22, 23)
    assert set(peaks.values()) == {peaks["reference"]}, peaks
    # the same tone at the same level whatever the layout (a dropped channel or a wrong
    # rate would move the level or the peak): within 3 (log energy) of the reference
    assert all(abs(v - levels["reference"]) < 3.0 for v in levels.values()), levels


def test_frames_follow_time_and_keep_the_aspect(extracted):
    root, _ = extracted
    for split in ("train", "test"):
        index, _, frames = load(root / "out", split)
        for i, name in enumerate(index.id):
            clip = frames(i)
            assert len(clip) == SECONDS * FPS
            shape = tuple(clip[0].shape)
            # short side -> 24; the long side keeps the aspect, rounded to even:
            # 64x48 -> 32x24; portrait 48x96 -> 24x48
            assert shape == ((3, 48, 24) if name == "portrait" else (3, 24, 32)), (name, shape)
            luma = np.array([f.float().mean().item() for f in clip])
            # frame k of 10 fps is the one shown at k/10 s: luma 16 + 70 k / 10 (video range,
            # expanded to full range by the stored JPEG: x 255/219 after -16), to a frame either way
            expected = (70 * np.arange(30) / 10) * 255 / 219
            assert np.abs((luma - luma[0]) - expected).max() < 12, (name, luma.round(1).tolist())
            assert (np.diff(luma) > -2).all(), name


# -- a clip that breaks partway: the container is whole, the middle of its data is not ----
# Made here: a 4 s clip (the luma ramp; a 440 Hz tone) with its index first (faststart),
# then a share of the bytes of its media data (mdat) overwritten with seeded noise. The
# header still reads (probe_clip accepts it); decoding hits errors from that point on.
BROKEN_SECONDS = 4.0
BROKEN = {"intact": None, "mid": (0.3, 0.7), "tail": (0.4, 1.0)}   # share of mdat overwritten


def mdat_span(data: bytes) -> tuple[int, int]:
    """(first, end) byte of the payload of the file's top-level mdat box."""
    at = 0
    while at < len(data):
        size, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        if kind == b"mdat":
            return at + 8, at + size
        at += size
    raise AssertionError("no mdat box")


def decoded_samples(path) -> int:
    """16 kHz mono samples ffmpeg gets out of the file, errors skipped: the oracle for
    the feature stage's MIN_DECODED_FRACTION rule, found without avmae's code."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "quiet", "-i", str(path), "-map", "0:a:0", "-ac", "1",
                          "-ar", "16000", "-f", "f32le", "-"], capture_output=True, check=False, timeout=60).stdout
    return len(raw) // 4


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken_media")
    intact = root / "intact.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y",
                    "-f", "lavfi", "-i", f"nullsrc=s=64x48:r=25:d={BROKEN_SECONDS},format=yuv420p,{RAMP}",
                    "-f", "lavfi", "-i", f"sine=f=440:r=44100:d={BROKEN_SECONDS}",
                    "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-movflags", "+faststart", str(intact)], check=True, capture_output=True, timeout=120)
    data = intact.read_bytes()
    first, end = mdat_span(data)
    rng = np.random.default_rng(0)
    for name, share in BROKEN.items():
        if share:
            lo, hi = (first + int(f * (end - first)) for f in share)
            noisy = data[:lo] + rng.integers(0, 256, hi - lo, dtype=np.uint8).tobytes() + data[hi:]
            (root / f"{name}.mp4").write_bytes(noisy)
    return root


def test_full_verification_rejects_a_clip_that_breaks_midway(broken):
    from avmae.acquire.verify import VerifyError, probe_clip, verify_clip

    assert verify_clip(broken / "intact.mp4", BROKEN_SECONDS) == pytest.approx(BROKEN_SECONDS, abs=0.1)
    for name in ("mid", "tail"):
        path = broken / f"{name}.mp4"
        assert probe_clip(path, BROKEN_SECONDS) == pytest.approx(BROKEN_SECONDS, abs=0.1)  # header intact
        with pytest.raises(VerifyError, match=r"^does not decode: \S") as err:
            verify_clip(path, BROKEN_SECONDS)
        assert not err.value.permanent   # a fresh download may be whole


def test_features_skip_a_clip_that_breaks_partway(broken):
    """features.extract: a clip whose decode logs errors and whose audio comes out short is
    skipped with the reason in skipped.csv: under MIN_DECODED_FRACTION as too short, above
    it (mid: ffmpeg drops the bad packets, so the audio after the break would sit early
    against the video) as broken partway. The intact clip is kept."""
    from avmae.features.extract import COMPLETE_FRACTION, MIN_DECODED_FRACTION, extract_shard

    want = round(BROKEN_SECONDS * 16000)
    got = {name: decoded_samples(broken / f"{name}.mp4") for name in BROKEN}
    # the cuts sit either side of the half rule: mid loses under half of its audio, tail over half
    assert got["intact"] == want
    assert MIN_DECODED_FRACTION * want <= got["mid"] < COMPLETE_FRACTION * want
    assert got["tail"] < MIN_DECODED_FRACTION * want
    pd.DataFrame([{"id": name, "start_seconds": 0, "label": "tone", "split": "train", "status": "ok",
                   "path": str(broken / f"{name}.mp4"), "reason": ""} for name in BROKEN]
                 ).to_csv(broken / "manifest.csv", index=False)
    shard = extract_shard(broken / "manifest.csv", broken / "out", clip_seconds=BROKEN_SECONDS, fps=FPS,
                          short_side=SIDE, workers=1)
    skipped = pd.read_csv(broken / "out" / "skipped.csv").set_index("id")["reason"]
    assert sorted(skipped.index) == ["mid", "tail"]
    frames = round(BROKEN_SECONDS * FPS)
    # whichever the stage meets first: ffmpeg's error, short audio or video
    assert re.fullmatch(rf"decode failed: \S.*|only \d+ of ({want} audio samples|{frames} video frames) decoded"
                        rf"|broken partway: .*", skipped["tail"]), skipped["tail"]
    counted = re.fullmatch(rf"broken partway: (\d+) of {want} audio samples decoded, after errors \(\S.*\)",
                           skipped["mid"])
    assert counted, skipped["mid"]
    # the stage's count is ffmpeg's (one decode of audio and video; the oracle decodes audio alone)
    assert abs(int(counted[1]) - got["mid"]) <= 2048, (skipped["mid"], got["mid"])
    assert shard["counts"] == {"train": 1}
    assert pd.read_csv(broken / "out" / "train" / "clips.csv")["id"].tolist() == ["intact"]
