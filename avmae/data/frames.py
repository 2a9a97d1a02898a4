"""From stored frames to model input, in the loader workers or on the training device.

Items leave the DataLoader workers as uint8, so a batch crosses processes, pinned
memory and the host-to-device copy at a quarter of its float size: the float
conversion, the finetuning colour (drawn by the worker, ``color``) and the [-1, 1]
scaling happen where the model runs (:func:`finish_batch`, called by the training step
and by evaluation).

A stage's ``video_decode`` says where a window's JPEG frames are decoded:

* ``loader``: in the DataLoader workers, on their CPU cores (libjpeg-turbo through
  ``torchvision.io.decode_jpeg``); an item carries its cropped window, ``video``
  uint8 [T, crop, crop, 3] (channels last, as decoded).
* ``device``: an item carries the window's JPEG bytes (``jpeg``, ``jpeg_sizes``) and
  its crop box (``box``); :func:`collate` packs a batch's bytes into one tensor and
  :func:`finish_batch` decodes the batch with one ``decode_jpeg(..., device=...)`` call
  where the model runs. On an A100/H100 that is the GPU's hardware JPEG decoder
  (torchvision sends baseline JPEGs, which ours are, to nvJPEG's hardware backend), so
  the workers only copy bytes and the audio window.

Both cut the same box (crop, resize, flip: :func:`render`), with the item's draws from
its own ``(seed, epoch, clip)`` generator: on the CPU the two give identical tensors
(tested); nvJPEG's inverse DCT may differ from libjpeg-turbo's by a level or two.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch.utils.data import default_collate
from torchvision.io import ImageReadMode, decode_jpeg

from avmae.data.augment import (
    Box,
    apply_box,
    apply_color,
    to_model_range,
    to_unit_range,
)

VIDEO_DECODE = ("loader", "device")
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data) -> tuple[int, int]:
    """(height, width) of a JPEG image from its frame header, without decoding it."""
    data = memoryview(data).cast("B")
    p = 2
    while p + 9 <= len(data):
        if data[p] != 0xFF:
            break
        marker = data[p + 1]
        if marker == 0xFF:          # fill byte
            p += 1
            continue
        if marker in _SOF:
            return (data[p + 5] << 8 | data[p + 6], data[p + 7] << 8 | data[p + 8])
        p += 2 + (data[p + 2] << 8 | data[p + 3])
    raise ValueError("not a JPEG image with a frame header")


def render(frames: torch.Tensor | list[torch.Tensor], box: Box) -> torch.Tensor:
    """uint8 frames (a [T, 3, H, W] tensor, or a list of [3, H, W] frames as decoded) -> the
    box, resized and flipped: uint8 [T, out, out, 3], contiguous, on the frames' device.

    Pixels stay in the channels-last order the decoders write (a CPU-decoded frame is an
    [H, W, 3] buffer seen as [3, H, W]): cutting and resizing in it takes a tenth and a
    half of the time they take in channels-first order. Only the box is copied out of
    decoded frames.
    """
    if not torch.is_tensor(frames):
        frames = torch.stack([f.permute(1, 2, 0)[box.top:box.top + box.height, box.left:box.left + box.width]
                              for f in frames]).permute(0, 3, 1, 2)
        box = replace(box, top=0, left=0)
    return apply_box(frames, box).permute(0, 2, 3, 1).contiguous()


def model_video(video: torch.Tensor, colors: torch.Tensor | None) -> torch.Tensor:
    """A batch's uint8 windows [B, T, H, W, 3] -> float [B, 3, T, H, W] in [-1, 1], each
    item coloured as it drew (``colors`` [B, 6] of :func:`~avmae.data.augment.draw_color`
    on the CPU, or None), on the video's device. Without colour it is one pass into the
    model's layout."""
    if colors is not None:
        return torch.stack([to_model_range(apply_color(to_unit_range(v.permute(0, 3, 1, 2)), c))
                            for v, c in zip(video, colors)])
    out = torch.empty((video.shape[0], 3, *video.shape[1:4]), device=video.device)
    return out.copy_(video.permute(0, 4, 1, 2, 3)).div_(255.0).mul_(2.0).sub_(1.0)


def collate(items: list[dict]) -> dict:
    """``default_collate``, except that the items' ``jpeg`` bytes are joined into one
    uint8 tensor (their ``jpeg_sizes`` [B, T] split it again)."""
    if "jpeg" not in items[0]:
        return default_collate(items)
    rest = default_collate([{k: v for k, v in item.items() if k != "jpeg"} for item in items])
    return {**rest, "jpeg": torch.cat([item["jpeg"] for item in items])}


def finish_batch(batch: dict, device) -> dict:
    """A collated batch as the model takes it: ``video`` float [B, 3, T, out, out] in
    [-1, 1] on ``device`` (:func:`model_video`). JPEG frames left encoded by the workers
    are decoded there first, with one ``decode_jpeg`` call, and cut to each item's box.
    A batch without video (audio-only items) is returned as it is."""
    batch = dict(batch)
    colors = batch.pop("color", None)
    if "jpeg" in batch:
        sizes, boxes = batch.pop("jpeg_sizes"), batch.pop("box")
        if torch.device(device).type == "cuda":
            # nvJPEG's hardware decoder writes its outputs without waiting for the stream:
            # into memory the caching allocator may have freed while queued kernels still
            # read it (pytorch/vision#9606). Draining the stream first prevents that.
            torch.cuda.current_stream(device).synchronize()
        frames = decode_jpeg(list(torch.split(batch.pop("jpeg"), sizes.flatten().tolist())),
                             mode=ImageReadMode.RGB, device=device)
        t = sizes.shape[1]
        batch["video"] = torch.stack([render(frames[i * t:(i + 1) * t], Box.unpack(boxes[i]))
                                      for i in range(len(boxes))])
    if "video" in batch:   # the colour draws stay on the CPU: reading them needs no sync
        batch["video"] = model_video(batch["video"].to(device, non_blocking=True), colors)
    return batch
