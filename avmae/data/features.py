"""Decode downloaded clips into fixed-size log-mel and RGB-frame arrays.

Each clip is decoded by two ffmpeg pipes (one per stream, no per-frame seeking):

- audio: 16 kHz mono float32, padded with zeros or trimmed to ``clip_seconds`` exactly
  (ffmpeg builds differ by a few samples), then a Kaldi log-mel filterbank
  (:func:`log_mel`) padded by repeating the last frame or trimmed to ``clip_seconds * 100``;
- video: ``fps`` frames per second, scaled so the short side is ``short_side`` and
  centre-cropped to a square ``short_side x short_side`` (the skeleton stores square
  frames; a later issue revisits storage), padded by repeating the last frame or trimmed
  to ``clip_seconds * fps``.

A clip that cannot be decoded (empty, corrupt or truncated file, missing stream, less
than half the clip decoded) is listed in ``skipped.csv`` with its reason, and extraction goes on.
"""

from __future__ import annotations

import csv
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import ffmpeg
import numpy as np
import pandas as pd
import torch
import torchaudio
from tqdm import tqdm

from avmae.data.ffmpeg import ffmpeg_exe
from avmae.data.labels import LabelSpace, read_class_names
from avmae.data.lists import SPLITS
from avmae.io import atomic_path, write_json

MANIFEST_COLUMNS = ("id", "label", "split", "status", "path")
MIN_DECODED_FRACTION = 0.5  # a clip with less than half its audio or video is skipped
FRAMES_PER_SECOND_AUDIO = 100  # 10 ms filterbank hop
CHUNK = 64  # clips per read when computing statistics or compacting arrays


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

    AST convention: the waveform keeps its [-1, 1] scale (not the int16 scale of Kaldi;
    scaling by 32768 would only add a constant 2*ln(32768) to every value, which the
    dataset normalisation removes) and has its mean subtracted; no dither, no energy,
    Hamming window. 8 s at 16 kHz gives 798 frames (``snip_edges``).
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
    """The first line of ffmpeg's error output, without its ``[demuxer @ 0x..]`` prefixes."""
    for line in stderr.decode(errors="replace").splitlines():
        line = re.sub(r"^(\[[^\]]* @ 0x[0-9a-f]+\]\s*)+", "", line).strip()
        if line:
            return line
    return "no error message"


def _run(stream, what: str) -> bytes:
    """Run an ffmpeg-python graph and return its stdout; problems become DecodeError.

    ffmpeg exits 0 on an MP4 whose data ends early (it decodes what is there and logs
    "partial file"); such a truncated file is an error here too.
    """
    try:
        out, err = stream.global_args("-nostdin", "-v", "error").run(
            cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as e:
        message = _first_error(e.stderr)
        if "matches no streams" in message:
            raise DecodeError(f"no {what} stream") from None
        raise DecodeError(f"{what} decode failed: {message}") from None
    if b"partial file" in err:
        raise DecodeError(f"truncated file ({what}: {_first_error(err)})")
    return out


def _check_length(got: int, want: int, what: str, unit: str) -> None:
    if got == 0:
        raise DecodeError(f"no {what} decoded")
    if got < MIN_DECODED_FRACTION * want:
        raise DecodeError(f"only {got} of {want} {what} {unit} decoded")


def decode_audio(path: Path, spec: Spec) -> np.ndarray:
    """Mono float32 waveform of exactly ``spec.audio_samples`` samples."""
    out = _run(ffmpeg.input(f"file:{path}")["a:0"].output(
        "pipe:", format="f32le", ac=1, ar=spec.sample_rate), "audio")
    wave = np.frombuffer(out, dtype="<f4")
    _check_length(len(wave), spec.audio_samples, "audio", "samples")
    return _fit_length(wave, spec.audio_samples, pad="zero")


def decode_video(path: Path, spec: Spec) -> np.ndarray:
    """uint8 frames [spec.video_frames, S, S, 3]: short side scaled to S, centre crop."""
    s = spec.short_side
    stream = (ffmpeg.input(f"file:{path}")["v:0"]
              .filter("fps", fps=spec.fps)
              .filter("scale", f"if(lt(iw,ih),{s},-1)", f"if(lt(iw,ih),-1,{s})", flags="area")
              .filter("crop", s, s)
              .output("pipe:", format="rawvideo", pix_fmt="rgb24"))
    out = _run(stream, "video")
    frames = np.frombuffer(out, dtype=np.uint8).reshape(-1, s, s, 3)
    _check_length(len(frames), spec.video_frames, "video", "frames")
    return _fit_length(frames, spec.video_frames, pad="edge")


def clip_features(path: Path, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """(log-mel float16 [audio_frames, n_mels], frames uint8 [video_frames, S, S, 3])."""
    if not path.is_file():
        raise DecodeError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    wave = decode_audio(path, spec)
    mel = log_mel(torch.from_numpy(wave.copy()), spec.sample_rate, spec.n_mels).numpy()
    mel = _fit_length(mel, spec.audio_frames, pad="edge").astype(np.float16)
    return mel, decode_video(path, spec)


def _read_manifest(manifest_path: Path) -> pd.DataFrame:
    """All manifest rows, checked: missing columns, a bad split or no ok clip raise
    ValueError naming the file (and the line)."""
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
    if ok.empty:
        raise ValueError(f"{manifest_path}: no clip has status 'ok'")
    return df


def _extract_split(rows: pd.DataFrame, split_dir: Path, spec: Spec, classes: LabelSpace,
                   workers: int) -> tuple[int, list[dict]]:
    """Write audio.npy, video.npy and index.csv of one split; return (count, skipped rows)."""
    split_dir.mkdir(parents=True, exist_ok=True)
    n, s = len(rows), spec.short_side
    scratch_a = split_dir / ".audio.scratch.npy"
    scratch_v = split_dir / ".video.scratch.npy"
    try:
        audio = np.lib.format.open_memmap(
            scratch_a, "w+", np.float16, (n, spec.audio_frames, spec.n_mels))
        video = np.lib.format.open_memmap(
            scratch_v, "w+", np.uint8, (n, spec.video_frames, s, s, 3))

        def work(i: int) -> str | None:
            try:
                audio[i], video[i] = clip_features(Path(rows["path"].iloc[i]), spec)
            except DecodeError as e:
                return str(e)
            return None

        with ThreadPoolExecutor(max_workers=workers) as pool:
            reasons = list(tqdm(pool.map(work, range(n)), total=n, unit="clip",
                                desc=f"features {split_dir.name}"))
        good = [i for i, r in enumerate(reasons) if r is None]
        _save_rows(audio, good, split_dir / "audio.npy", scratch_a)
        _save_rows(video, good, split_dir / "video.npy", scratch_v)
    finally:
        scratch_a.unlink(missing_ok=True)
        scratch_v.unlink(missing_ok=True)

    kept = rows.iloc[good]
    index = pd.DataFrame({"id": kept["id"], "label": kept["label"],
                          **classes.columns(kept["label"], source=f"manifest rows of {split_dir}"),
                          "split": kept["split"]})
    with atomic_path(split_dir / "index.csv") as tmp:
        index.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL)
    skipped = [{"id": rows["id"].iloc[i], "split": rows["split"].iloc[i], "reason": r}
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


def _mean_std(audio_path: Path) -> tuple[float, float]:
    """Mean and standard deviation of every value of a log-mel array, read in chunks."""
    audio = np.load(audio_path, mmap_mode="r")
    total = total_sq = 0.0
    for start in range(0, len(audio), CHUNK):
        chunk = np.asarray(audio[start:start + CHUNK], dtype=np.float64)
        total += chunk.sum()
        total_sq += np.square(chunk).sum()
    count = audio.size
    mean = total / count
    return float(mean), float(np.sqrt(max(total_sq / count - mean**2, 0.0)))


def extract(manifest_path: str | os.PathLike, out_dir: str | os.PathLike,
            clip_seconds: float = 10.0, fps: int = 25, short_side: int = 40,
            sample_rate: int = 16000, n_mels: int = 128, workers: int = 2, labels: str = "single",
            class_list: str | os.PathLike | None = None) -> dict:
    """Extract features of the manifest's ok clips into ``out_dir``; return meta.json's content.

    Writes ``{split}/audio.npy`` (float16 [N, clip_seconds*100, n_mels], raw log-mel),
    ``{split}/video.npy`` (uint8 [N, clip_seconds*fps, S, S, 3]), ``{split}/index.csv``
    (id, label, the label columns, split; one row per array row), ``skipped.csv``
    (id,split,reason) and, last, ``meta.json``. ``labels`` is the label kind (single,
    multi, verb_noun) and ``class_list`` an AudioSet ``class_labels_indices.csv``; the
    classes (:class:`avmae.data.labels.LabelSpace`: index columns and meta.json entries)
    come from all manifest rows, so indices do not depend on which downloads failed.
    ``audio_mean`` and ``audio_std`` are computed on the train split only (None when it is empty).
    """
    manifest_path, out_dir = Path(manifest_path), Path(out_dir)
    spec = Spec(clip_seconds, fps, short_side, sample_rate, n_mels)
    manifest = _read_manifest(manifest_path)
    classes = LabelSpace.from_labels(labels, manifest["label"].set_axis(manifest.index + 2),
                                     read_class_names(class_list), source=str(manifest_path))
    ok = manifest[manifest["status"] == "ok"]

    counts, skipped = {}, []
    for split in SPLITS:
        rows = ok[ok["split"] == split]
        if len(rows):
            counts[split], lost = _extract_split(rows, out_dir / split, spec, classes, workers)
            skipped += lost

    with atomic_path(out_dir / "skipped.csv") as tmp:
        pd.DataFrame(skipped, columns=["id", "split", "reason"]).to_csv(tmp, index=False)
    mean, std = _mean_std(out_dir / "train" / "audio.npy") if counts.get("train") else (None, None)
    meta = {**classes.meta(), **asdict(spec), "audio_frames": spec.audio_frames,
            "video_frames": spec.video_frames, "counts": counts,
            "audio_mean": mean, "audio_std": std}
    write_json(out_dir / "meta.json", meta)
    return meta
