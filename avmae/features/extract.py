"""Decode downloaded clips into fixed-size log-mel arrays and 25 fps JPEG frame shards.

Each clip is decoded by one ffmpeg process (:func:`ffmpeg_command`; one demuxer for both
streams, no per-frame seeking), its video read while it runs:

- audio (on a second pipe): 16 kHz mono float32, padded with zeros or trimmed to
  ``clip_seconds`` exactly (ffmpeg builds differ by a few samples), then a Kaldi log-mel
  filterbank (:func:`log_mel`) padded by repeating the last frame or trimmed to
  ``clip_seconds * 100``;
- video: ``fps`` frames per second, scaled so the short side is ``short_side``, padded
  by repeating the last frame or trimmed to ``clip_seconds * fps`` frames.

Storage (``video_format``):

- ``jpeg`` (default, paper scale): the frames keep their aspect ratio (the train-time
  random crop may then fall anywhere along the long side, as in the official DMVR
  pipeline; the long side is rounded to even). ffmpeg hands over full-range yuv420p
  planes and libjpeg-turbo (``simplejpeg``) encodes each frame as it arrives, straight
  from its planes: no RGB conversion, one frame in memory at a time. ``jpeg_quality`` is
  the libjpeg quality, 50..100; the default 89 gives the PSNR of ffmpeg's mjpeg
  ``-q:v 3``, which this pipeline used before (and which made ~20-30 % smaller files,
  but cost more CPU time: see the README's "Extraction cost"). Per split,
  ``video_jpeg.bin`` holds every kept clip's frames back to back and
  ``video_jpeg_offsets.npy`` (int64 [N, frames + 1]) their byte offsets: frame ``f`` of
  row ``i`` is ``bin[off[i, f]:off[i, f + 1]]``. A training window reads and decodes only
  its own frames (``torchvision.io.decode_jpeg``), never a video. Measured
  (``benchmarks/extract.py``): ~6 MB per 10 s clip at 456x256 on noisy synthetic
  content, against 88 MB as raw uint8; see the README for projections.
- ``array``: uint8 frames centre-cropped to a square ``S x S``, ``video.npy``
  [N, frames, S, S, 3] read through a memory map. Lossless and simplest, but 49 MB per
  10 s clip at S = 256: for small sets and tests.

A clip that cannot be decoded (empty, corrupt or truncated file, missing stream, less
than half the clip decoded, e.g. a video shorter than the training window, or decode
errors partway with the audio cut short, :data:`COMPLETE_FRACTION`) is listed in
``skipped.csv`` with its reason, and extraction goes on.

Each clip's listed segment (an EPIC action: ~3 s inside its 10 s context) is kept as
the stored frames it covers, ``action_first``/``action_last`` in ``index.csv``; the
dataset draws its windows on it (:class:`avmae.data.dataset.AVClipDataset`).

The workflow extracts each download shard on its own (:func:`extract_shard`, one job per
shard, clips in parallel threads) and :func:`combine` joins the shards into one feature
set without copying them: labels, normalisation statistics and ``meta.json``, whose
``parts`` say which shard folder holds which rows. :func:`extract` does both for one
manifest.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import simplejpeg
import torch
import torchaudio
from tqdm import tqdm

from avmae.acquire.lists import SPLITS, read_classes
from avmae.features.labels import LabelSpace
from avmae.ffmpeg import ffmpeg_exe, first_error
from avmae.io import atomic_path, write_json

CLIP_KEY = ("id", "start_seconds")  # a clip is its (id, start): segments of one video are clips
MANIFEST_COLUMNS = (*CLIP_KEY, "label", "split", "status", "path")
MIN_DECODED_FRACTION = 0.5  # a clip with less than half its audio or video is skipped
# A clip whose decode logged errors and whose audio came out shorter than this share is
# broken partway: ffmpeg drops the bad packets and joins what follows, so the audio
# after the break would sit early against the video (and the frames freeze). Errors with
# a full-length decode (concealed damage) keep the clip.
COMPLETE_FRACTION = 0.95
FRAMES_PER_SECOND_AUDIO = 100  # 10 ms filterbank hop
CHUNK = 64  # clips per read when computing statistics or compacting arrays
VIDEO_FORMATS = ("jpeg", "array")
VIDEO_FILES = {"jpeg": ("video_jpeg.bin", "video_jpeg_offsets.npy"), "array": ("video.npy",)}
SHARD_FILE = "shard.json"
JPEG_QUALITY = 89  # libjpeg quality: the PSNR of ffmpeg's mjpeg -q:v 3, used before
JPEG_QUALITIES = (50, 100)  # allowed range; anything lower is likely an old -q:v value
SHARD_TOTALS = ("counts", "train_moments")  # the shard.json entries that differ between shards
ACTION_COLUMNS = ("action_first", "action_last")  # the listed segment's stored frames, per clip


class DecodeError(RuntimeError):
    """A clip could not be decoded; the message is the reason recorded in skipped.csv."""


@dataclass(frozen=True)
class Spec:
    """Sizes of the stored features."""

    clip_seconds: float
    fps: int
    short_side: int
    sample_rate: int
    n_mels: int

    @property
    def audio_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    @property
    def audio_frames(self) -> int:
        return round(self.clip_seconds * FRAMES_PER_SECOND_AUDIO)

    @property
    def video_frames(self) -> int:
        return round(self.clip_seconds * self.fps)


def log_mel(wave: torch.Tensor, sample_rate: int = 16000, n_mels: int = 128,
            frame_shift_ms: float = 10.0, frame_length_ms: float = 25.0) -> torch.Tensor:
    """Kaldi log-mel filterbank of a mono waveform in [-1, 1]: Tensor[frames, n_mels].

    AST convention: the waveform keeps its [-1, 1] scale (not the int16 scale of Kaldi)
    and has its mean subtracted; no dither, no energy, Hamming window. 8 s at 16 kHz
    gives 798 frames (``snip_edges``). Scaling by 32768 would add a constant
    2*ln(32768) to every value: ``audio_norm: dataset`` removes it, ``raw`` (the
    official pretraining's input and target) keeps it. The official front end's log
    offset is not published: its raw AudioSet log-mel has mean 1.102 and std 2.762,
    AST's (this convention) -4.27 and 4.57. The stored log-mel is raw; the dataset
    normalises a window when it loads it (:mod:`avmae.data.audio`), so one extraction
    serves every mode.
    """
    wave = wave.reshape(1, -1).to(torch.float32)
    return torchaudio.compliance.kaldi.fbank(
        wave - wave.mean(), htk_compat=True, sample_frequency=sample_rate, use_energy=False,
        window_type="hamming", num_mel_bins=n_mels, dither=0.0,
        frame_shift=frame_shift_ms, frame_length=frame_length_ms)


def _fit_length(x: np.ndarray, n: int, pad: str) -> np.ndarray:
    """Trim axis 0 to n, or pad it with zeros (pad='zero') or the last row (pad='edge')."""
    if len(x) >= n:
        return x[:n]
    widths = [(0, n - len(x))] + [(0, 0)] * (x.ndim - 1)
    return np.pad(x, widths, mode="constant" if pad == "zero" else "edge")


def _first_error(stderr: bytes) -> str:
    """The first line of ffmpeg's error output (:func:`avmae.ffmpeg.first_error`)."""
    return first_error(stderr.decode(errors="replace")) or "no error message"


def _check_length(got: int, want: int, what: str, unit: str) -> None:
    if got == 0:
        raise DecodeError(f"no {what} decoded")
    if got < MIN_DECODED_FRACTION * want:
        raise DecodeError(f"only {got} of {want} {what} {unit} decoded")


def _open_checked(path: Path) -> None:
    if not path.is_file():
        raise DecodeError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")


def ffmpeg_command(path: Path, spec: Spec, audio_out: str | None, video_format: str | None) -> list[str]:
    """The one ffmpeg command line that decodes a clip: 16 kHz mono float32 audio to
    ``audio_out`` (an ffmpeg output URL, e.g. ``pipe:5``; None: no audio), the frames
    (``spec.fps`` per second; None: no video) on stdout.

    ``jpeg``: short side ``spec.short_side``, aspect kept (long side rounded to even),
    full-range yuv420p in a YUV4MPEG2 stream (its header gives the frame size); ``array``:
    rgb24 ``S x S`` centre crops, raw. One decoder and one filter thread: extraction runs
    one clip per core, and more threads only add overhead.
    """
    s = spec.short_side
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-threads", "1", "-filter_threads", "1",
           "-i", f"file:{path}"]
    if audio_out is not None:
        cmd += ["-map", "0:a:0", "-ac", "1", "-ar", str(spec.sample_rate), "-f", "f32le", audio_out]
    if video_format == "jpeg":
        cmd += ["-map", "0:v:0", "-vf", f"fps={spec.fps},scale='if(lt(iw,ih),{s},-2)':'if(lt(iw,ih),-2,{s})'"
                f":flags=area:out_range=full,format=yuv420p", "-f", "yuv4mpegpipe", "pipe:1"]
    elif video_format == "array":
        cmd += ["-map", "0:v:0", "-vf", f"fps={spec.fps},scale='if(lt(iw,ih),{s},-1)':'if(lt(iw,ih),-1,{s})'"
                f":flags=area,crop={s}:{s}", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    return cmd


def _decode_error(returncode: int, stderr: bytes) -> DecodeError | None:
    """The reason a finished ffmpeg failed, or None. ffmpeg exits 0 on an MP4 whose data
    ends early (it decodes what is there and logs "partial file"): an error here too."""
    if returncode != 0:
        missing = re.search(rb"Failed to set value '0:([av]):0' for option 'map'", stderr)
        if missing:
            return DecodeError(f"no {'audio' if missing[1] == b'a' else 'video'} stream")
        return DecodeError(f"decode failed: {_first_error(stderr)}")
    if b"partial file" in stderr:
        return DecodeError(f"truncated file ({_first_error(stderr)})")
    return None


def _drain(f, out: list) -> threading.Thread:
    """A started thread that reads ``f`` to its end into ``out``."""
    t = threading.Thread(target=lambda: out.append(f.read()), daemon=True)
    t.start()
    return t


def decode(path: str | os.PathLike, spec: Spec, audio: bool = True, video_format: str | None = None,
           read_video=None) -> tuple[np.ndarray | None, object]:
    """Decode a clip with one ffmpeg process (:func:`ffmpeg_command`), reading the video
    while ffmpeg runs: (mono float32 waveform of exactly ``spec.audio_samples`` samples,
    or None without ``audio``; ``read_video(stdout)``, or None without ``video_format``).
    Problems, ffmpeg's first, become DecodeError."""
    path = Path(path)
    _open_checked(path)
    audio_r, audio_w = os.pipe() if audio else (None, None)
    try:
        proc = subprocess.Popen(
            ffmpeg_command(path, spec, f"pipe:{audio_w}" if audio else None, video_format),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(audio_w,) if audio else ())
    except BaseException:
        if audio:
            os.close(audio_r)
        raise
    finally:
        if audio:
            os.close(audio_w)
    wave, err = [], []  # drained by threads, so that ffmpeg never blocks on them
    drains = [_drain(proc.stderr, err)]
    audio_pipe = open(audio_r, "rb") if audio else None
    if audio:
        drains.append(_drain(audio_pipe, wave))
    video, bad_video = None, None
    try:
        try:
            if read_video is not None:
                video = read_video(proc.stdout)
        except DecodeError as e:  # ffmpeg's own error, if any, is the better reason
            bad_video = e
        proc.stdout.close()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in drains:
            t.join()
        proc.stderr.close()
        if audio_pipe:
            audio_pipe.close()
    error = _decode_error(proc.returncode, err[0])
    if error or bad_video:
        raise error or bad_video
    if not audio:
        return None, video
    samples = np.frombuffer(wave[0], dtype="<f4")
    _check_length(len(samples), spec.audio_samples, "audio", "samples")
    if err[0].strip() and len(samples) < COMPLETE_FRACTION * spec.audio_samples:
        raise DecodeError(f"broken partway: {len(samples)} of {spec.audio_samples} audio samples "
                          f"decoded, after errors ({_first_error(err[0])})")
    return _fit_length(samples, spec.audio_samples, pad="zero"), video


def _read_rgb(spec: Spec):
    """A ``read_video`` for :func:`decode`: uint8 frames [spec.video_frames, S, S, 3]."""
    s = spec.short_side

    def read(stream) -> np.ndarray:
        frames = np.frombuffer(stream.read(), dtype=np.uint8)
        frames = frames[:len(frames) // (s * s * 3) * s * s * 3].reshape(-1, s, s, 3)
        _check_length(len(frames), spec.video_frames, "video", "frames")
        return _fit_length(frames, spec.video_frames, pad="edge")
    return read


def _read_jpeg(spec: Spec, quality: int):
    """A ``read_video`` for :func:`decode`: each frame of the YUV4MPEG2 stream encoded as
    it arrives by libjpeg-turbo straight from its Y, U and V planes (no RGB conversion);
    returns (concatenated JPEG bytes, int64 offsets [spec.video_frames + 1])."""
    def read(stream) -> tuple[bytes, np.ndarray]:
        header = stream.readline()
        if not header:
            raise DecodeError("no video decoded")
        fields = {f[:1]: f[1:] for f in header.split()[1:]}
        if not header.startswith(b"YUV4MPEG2 ") or not fields.get(b"C", b"420").startswith(b"420"):
            raise DecodeError(f"bad YUV4MPEG2 stream from ffmpeg: {header[:80]!r}")
        w, h = int(fields[b"W"]), int(fields[b"H"])
        cw, ch = (w + 1) // 2, (h + 1) // 2
        size = w * h + 2 * cw * ch
        jpegs: list[bytes] = []
        got = 0
        while line := stream.readline():
            planes = np.frombuffer(stream.read(size), dtype=np.uint8)
            if not line.startswith(b"FRAME") or len(planes) < size:
                raise DecodeError(f"bad YUV4MPEG2 stream from ffmpeg at frame {got}")
            got += 1
            if len(jpegs) < spec.video_frames:  # later frames are read, not encoded
                jpegs.append(simplejpeg.encode_jpeg_yuv_planes(
                    planes[:w * h].reshape(h, w), planes[w * h:w * h + cw * ch].reshape(ch, cw),
                    planes[w * h + cw * ch:].reshape(ch, cw), quality=quality))
        _check_length(got, spec.video_frames, "video", "frames")
        jpegs += jpegs[-1:] * (spec.video_frames - len(jpegs))  # pad with the last frame
        offsets = np.zeros(len(jpegs) + 1, dtype=np.int64)
        np.cumsum([len(j) for j in jpegs], out=offsets[1:])
        return b"".join(jpegs), offsets
    return read


def clip_audio(wave: np.ndarray, spec: Spec) -> np.ndarray:
    """log-mel float16 [audio_frames, n_mels] of a waveform from :func:`decode`."""
    mel = log_mel(torch.from_numpy(wave.copy()), spec.sample_rate, spec.n_mels).numpy()
    return _fit_length(mel, spec.audio_frames, pad="edge").astype(np.float16)


def clip_features(path: Path, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """(log-mel float16 [audio_frames, n_mels], frames uint8 [video_frames, S, S, 3])."""
    wave, frames = decode(path, spec, video_format="array", read_video=_read_rgb(spec))
    return clip_audio(wave, spec), frames


def clip_features_jpeg(path: Path, spec: Spec, quality: int = JPEG_QUALITY) -> tuple[np.ndarray, bytes, np.ndarray]:
    """(log-mel float16 [audio_frames, n_mels], JPEG bytes, offsets int64 [video_frames + 1])."""
    wave, (data, offsets) = decode(path, spec, video_format="jpeg", read_video=_read_jpeg(spec, quality))
    return clip_audio(wave, spec), data, offsets


def _ordered_map(fn, n: int, workers: int):
    """fn(0..n-1) on a thread pool, yielded in order, at most 2 x workers results in flight
    (a clip's JPEG bytes are a few MB; this bounds the memory whatever n is)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for i in range(n):
            pending.append(pool.submit(fn, i))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _read_manifest(manifest_path: Path) -> pd.DataFrame:
    """All manifest rows, checked: missing columns or a bad split raise ValueError naming
    the file (and the line)."""
    df = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{manifest_path}: missing manifest column(s) {missing}")
    ok = df[df["status"] == "ok"]
    bad = ok[~ok["split"].isin(SPLITS)]
    if len(bad):
        line = bad.index[0] + 2  # 1-based, after the header line
        raise ValueError(
            f"{manifest_path}:{line}: split {bad['split'].iloc[0]!r} is not one of {SPLITS}")
    return df


def _progress(it, n: int, split_dir: Path):
    return tqdm(it, total=n, unit="clip", desc=f"features {split_dir.name}")


def _write_arrays(paths: list[Path], split_dir: Path, spec: Spec, workers: int) -> list[str | None]:
    """audio.npy + video.npy (uint8 square frames); returns the skip reason per row (None: kept)."""
    n, s = len(paths), spec.short_side
    scratch_a = split_dir / ".audio.scratch.npy"
    scratch_v = split_dir / ".video.scratch.npy"
    try:
        audio = np.lib.format.open_memmap(
            scratch_a, "w+", np.float16, (n, spec.audio_frames, spec.n_mels))
        video = np.lib.format.open_memmap(
            scratch_v, "w+", np.uint8, (n, spec.video_frames, s, s, 3))

        def work(i: int) -> str | None:
            try:
                audio[i], video[i] = clip_features(paths[i], spec)
            except DecodeError as e:
                return str(e)
            return None

        reasons = list(_progress(_ordered_map(work, n, workers), n, split_dir))
        good = [i for i, r in enumerate(reasons) if r is None]
        _save_rows(audio, good, split_dir / "audio.npy", scratch_a)
        _save_rows(video, good, split_dir / "video.npy", scratch_v)
    finally:
        scratch_a.unlink(missing_ok=True)
        scratch_v.unlink(missing_ok=True)
    return reasons


def _write_jpeg(paths: list[Path], split_dir: Path, spec: Spec, workers: int,
                quality: int) -> list[str | None]:
    """audio.npy + video_jpeg.bin + video_jpeg_offsets.npy; returns the skip reason per row.

    Clips are decoded in parallel and appended in row order, so the shard's bytes do not
    depend on the number of workers.
    """
    n = len(paths)
    scratch_a = split_dir / ".audio.scratch.npy"
    scratch_o = split_dir / ".offsets.scratch.npy"

    def work(i: int):
        try:
            return clip_features_jpeg(paths[i], spec, quality)
        except DecodeError as e:
            return str(e)

    reasons: list[str | None] = []
    try:
        audio = np.lib.format.open_memmap(
            scratch_a, "w+", np.float16, (n, spec.audio_frames, spec.n_mels))
        offsets = np.lib.format.open_memmap(scratch_o, "w+", np.int64, (n, spec.video_frames + 1))
        with atomic_path(split_dir / "video_jpeg.bin") as tmp, open(tmp, "wb") as out:
            pos = 0
            for i, result in enumerate(_progress(_ordered_map(work, n, workers), n, split_dir)):
                if isinstance(result, str):
                    reasons.append(result)
                    continue
                audio[i], data, offsets[i] = result[0], result[1], result[2] + pos
                out.write(data)
                pos += len(data)
                reasons.append(None)
        good = [i for i, r in enumerate(reasons) if r is None]
        _save_rows(audio, good, split_dir / "audio.npy", scratch_a)
        _save_rows(offsets, good, split_dir / "video_jpeg_offsets.npy", scratch_o)
    finally:
        scratch_a.unlink(missing_ok=True)
        scratch_o.unlink(missing_ok=True)
    return reasons


def _action_frames(ok: pd.DataFrame, spec: Spec, manifest_path: Path) -> pd.DataFrame:
    """Per ok manifest row, the first and last stored frame of its listed segment
    (``action_first``, ``action_last``): ``start/end_seconds`` less ``clip_start``, where
    the clip file starts in its source, at ``spec.fps``, within the stored frames. A
    whole-video download stores a segment's 10 s context (:func:`avmae.acquire.videos.context`),
    a section download the segment itself. Without ``clip_start`` (a manifest from before
    it, or written by hand) a segment is its whole clip. A segment that misses the stored
    clip gets -1, -1. A value that is not a number raises ValueError naming its line."""
    if "clip_start" not in ok.columns:
        return pd.DataFrame({"action_first": 0, "action_last": spec.video_frames - 1}, index=ok.index)
    times = {}
    for column in ("start_seconds", "end_seconds", "clip_start"):
        if column not in ok.columns:
            raise ValueError(f"{manifest_path}: no {column} column, which clip_start needs")
        values = pd.to_numeric(ok[column], errors="coerce")
        if values.isna().any():
            row = values.index[values.isna()][0]
            raise ValueError(f"{manifest_path}:{row + 2}: {column} {ok[column][row]!r} is not a number")
        times[column] = values.to_numpy(np.float64)
    first = np.floor((times["start_seconds"] - times["clip_start"]) * spec.fps + 1e-6)
    last = np.ceil((times["end_seconds"] - times["clip_start"]) * spec.fps - 1e-6) - 1
    missed = (last < 0) | (first > spec.video_frames - 1) | (last < first)
    first, last = np.clip(first, 0, spec.video_frames - 1), np.clip(last, 0, spec.video_frames - 1)
    return pd.DataFrame({"action_first": np.where(missed, -1, first).astype(np.int64),
                         "action_last": np.where(missed, -1, last).astype(np.int64)}, index=ok.index)


def _extract_split(rows: pd.DataFrame, split_dir: Path, spec: Spec, workers: int,
                   video_format: str = "jpeg", jpeg_quality: int = JPEG_QUALITY) -> tuple[int, list[dict]]:
    """Write audio.npy, the video storage and clips.csv (id, start_seconds, label, split,
    action_first, action_last; one row per array row) of one split; return (count, skipped rows)."""
    split_dir.mkdir(parents=True, exist_ok=True)
    missed = rows["action_last"] < 0
    skipped = [{"id": row.id, "start_seconds": row.start_seconds, "split": row.split,
                "reason": f"its segment [{row.start_seconds}, {row.end_seconds}) s misses the stored "
                          f"{spec.clip_seconds:g} s from {row.clip_start} s"}
               for row in rows[missed].itertuples()]
    rows = rows[~missed]
    paths = [Path(p) for p in rows["path"]]
    if video_format == "jpeg":
        reasons = _write_jpeg(paths, split_dir, spec, workers, jpeg_quality)
    else:
        reasons = _write_arrays(paths, split_dir, spec, workers)
    for stale in VIDEO_FILES[next(f for f in VIDEO_FORMATS if f != video_format)]:
        (split_dir / stale).unlink(missing_ok=True)  # left by a run with the other format
    good = [i for i, r in enumerate(reasons) if r is None]
    with atomic_path(split_dir / "clips.csv") as tmp:
        rows.iloc[good][list(CLIP_KEY + ("label", "split", *ACTION_COLUMNS))].to_csv(
            tmp, index=False, quoting=csv.QUOTE_MINIMAL)
    skipped += [{"id": rows["id"].iloc[i], "start_seconds": rows["start_seconds"].iloc[i],
                 "split": rows["split"].iloc[i], "reason": r}
                for i, r in enumerate(reasons) if r is not None]
    return len(good), skipped


def _save_rows(scratch: np.memmap, keep: list[int], path: Path, scratch_path: Path) -> None:
    """Publish the kept rows of a scratch array at ``path`` (rename, or copy in chunks)."""
    scratch.flush()
    if len(keep) == len(scratch):
        os.replace(scratch_path, path)
        return
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, "w+", scratch.dtype, (len(keep), *scratch.shape[1:]))
        for start in range(0, len(keep), CHUNK):
            out[start:start + CHUNK] = scratch[keep[start:start + CHUNK]]
        out.flush()


def _moments(audio_path: Path) -> list[float]:
    """[count, sum, sum of squares] of every value of a log-mel array, read in chunks."""
    audio = np.load(audio_path, mmap_mode="r")
    total = total_sq = 0.0
    for start in range(0, len(audio), CHUNK):
        chunk = np.asarray(audio[start:start + CHUNK], dtype=np.float64)
        total += chunk.sum()
        total_sq += np.square(chunk).sum()
    return [float(audio.size), total, total_sq]


def extract_shard(manifest_path: str | os.PathLike, out_dir: str | os.PathLike,
                  clip_seconds: float = 10.0, fps: int = 25, short_side: int = 256,
                  sample_rate: int = 16000, n_mels: int = 128, workers: int = 2,
                  video_format: str = "jpeg", jpeg_quality: int = JPEG_QUALITY) -> dict:
    """Extract the manifest's ok clips (one download shard) into ``out_dir``; return shard.json.

    Writes per split ``{split}/audio.npy`` (float16 [N, clip_seconds*100, n_mels], raw
    log-mel), the video storage (``video_format``, see the module docstring) and
    ``{split}/clips.csv`` (id, start_seconds, label, split and the segment's stored frames,
    :func:`_action_frames`; one row per array row), then
    ``skipped.csv`` (id, start_seconds, split, reason) and, last, ``shard.json``: the sizes, the clip
    counts and the train split's log-mel moments, which :func:`combine` sums over shards.
    A shard without ok clips is valid (all its downloads failed) and holds no split.
    """
    manifest_path, out_dir = Path(manifest_path), Path(out_dir)
    if video_format not in VIDEO_FORMATS:
        raise ValueError(f"video_format {video_format!r} is not one of {VIDEO_FORMATS}")
    lo, hi = JPEG_QUALITIES
    if not lo <= jpeg_quality <= hi:
        raise ValueError(f"jpeg_quality {jpeg_quality} is not a libjpeg quality in {lo}..{hi} "
                         f"(not ffmpeg's -q:v 2..31 any more; {JPEG_QUALITY} matches -q:v 3)")
    spec = Spec(clip_seconds, fps, short_side, sample_rate, n_mels)
    manifest = _read_manifest(manifest_path)
    ok = manifest[manifest["status"] == "ok"]
    ok = ok.join(_action_frames(ok, spec, manifest_path))
    counts, skipped = {}, []
    for split in SPLITS:
        rows = ok[ok["split"] == split]
        if len(rows):
            counts[split], lost = _extract_split(rows, out_dir / split, spec, workers,
                                                 video_format, jpeg_quality)
            skipped += lost
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "skipped.csv") as tmp:
        pd.DataFrame(skipped, columns=[*CLIP_KEY, "split", "reason"]).to_csv(tmp, index=False)
    shard = {**asdict(spec), "audio_frames": spec.audio_frames, "video_frames": spec.video_frames,
             "video_format": video_format,
             "jpeg_quality": jpeg_quality if video_format == "jpeg" else None, "counts": counts,
             "train_moments": _moments(out_dir / "train" / "audio.npy") if counts.get("train") else None}
    write_json(out_dir / SHARD_FILE, shard)
    return shard


def combine(manifest_path: str | os.PathLike, shard_dirs: list[str | os.PathLike],
            out_dir: str | os.PathLike, labels: str = "single", class_list=None) -> dict:
    """Join extracted shards into one feature set: ``{split}/index.csv``, ``skipped.csv``
    and, last, ``meta.json``; return meta.json's content.

    The classes (:class:`avmae.features.labels.LabelSpace`; ``labels`` is the label kind:
    single, multi or verb_noun; ``class_list`` the ``--classes`` values, see
    :func:`avmae.acquire.lists.read_classes`)
    come from every row of the dataset's manifest, so indices do not depend on which
    downloads failed. ``index.csv`` has id, start_seconds (a clip is its id and start:
    several segments of one video are several clips), label, the label columns, split and the
    stored frames of the clip's listed segment (``action_first``, ``action_last``), one
    row per clip in shard order; ``meta.json``'s ``parts`` maps each split to its shards
    (folder relative to ``out_dir``, clips), and ``audio_mean``/``audio_std`` are those
    of the train split (None when it is empty). The shards must share their sizes.
    """
    manifest_path, out_dir = Path(manifest_path), Path(out_dir)
    manifest = _read_manifest(manifest_path)
    classes = LabelSpace.from_labels(labels, manifest["label"].set_axis(manifest.index + 2),
                                     read_classes(class_list), source=str(manifest_path))
    shards = [(Path(d), json.loads((Path(d) / SHARD_FILE).read_text())) for d in shard_dirs]
    if not shards:
        raise ValueError(f"{manifest_path}: no feature shard to combine")
    sizes = {k: v for k, v in shards[0][1].items() if k not in SHARD_TOTALS}
    for d, shard in shards[1:]:
        other = {k: v for k, v in shard.items() if k not in SHARD_TOTALS}
        if other != sizes:
            raise ValueError(f"{d / SHARD_FILE}: sizes {other} differ from {shards[0][0] / SHARD_FILE}'s {sizes}")
    if not any(shard["counts"] for _, shard in shards):
        raise ValueError(f"{manifest_path}: no clip was extracted (none has status 'ok', or every one was skipped)")

    parts, counts = {}, {}
    for split in SPLITS:
        held = [(d, shard["counts"][split]) for d, shard in shards if shard["counts"].get(split)]
        if not held:
            continue
        rows = pd.concat([pd.read_csv(d / split / "clips.csv", dtype=str, keep_default_na=False)
                          for d, _ in held], ignore_index=True)
        index = pd.DataFrame({**{c: rows[c] for c in CLIP_KEY}, "label": rows["label"],
                              **classes.columns(rows["label"], source=f"{split} clips of {manifest_path}"),
                              "split": rows["split"], **{c: rows[c] for c in ACTION_COLUMNS}})
        with atomic_path(out_dir / split / "index.csv") as tmp:
            index.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL)
        parts[split] = [[os.path.relpath(d, out_dir), n] for d, n in held]
        counts[split] = len(index)
    skipped = pd.concat([pd.read_csv(d / "skipped.csv", dtype=str, keep_default_na=False)
                         for d, _ in shards], ignore_index=True)
    with atomic_path(out_dir / "skipped.csv") as tmp:
        skipped.to_csv(tmp, index=False)
    moments = np.sum([shard["train_moments"] for _, shard in shards if shard["train_moments"]], axis=0)
    mean = std = None
    if counts.get("train"):
        n, total, total_sq = moments
        mean = total / n
        std = float(np.sqrt(max(total_sq / n - mean**2, 0.0)))
    meta = {**classes.meta(), **sizes, "counts": counts, "parts": parts,
            "audio_mean": mean, "audio_std": std}
    write_json(out_dir / "meta.json", meta)
    return meta


def extract(manifest_path: str | os.PathLike, out_dir: str | os.PathLike, labels: str = "single",
            class_list=None, **sizes) -> dict:
    """:func:`extract_shard` and :func:`combine` of the whole manifest as one shard, in
    ``out_dir``; ``sizes`` are extract_shard's options. Returns meta.json's content."""
    extract_shard(manifest_path, out_dir, **sizes)
    return combine(manifest_path, [out_dir], out_dir, labels, class_list)
