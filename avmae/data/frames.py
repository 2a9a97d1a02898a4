"""From stored frames to model input, in the loader workers or on the training device.

A stage's ``video_decode`` says where a window's JPEG frames are decoded:

* ``loader``: in the DataLoader workers, on their CPU cores (libjpeg-turbo through
  ``torchvision.io.decode_jpeg``); an item carries its finished ``video``.
* ``device``: an item carries the window's JPEG bytes (``jpeg``, ``jpeg_sizes``) and the
  draws of its augmentation (``box``, and ``color`` when finetuning); :func:`collate`
  packs a batch's bytes into one tensor and :func:`decode_batch` decodes the batch with
  one ``decode_jpeg(..., device=...)`` call where the model runs. On an A100/H100 that
  is the GPU's hardware JPEG decoder (torchvision sends baseline JPEGs, which ours are,
  to nvJPEG's hardware backend), so the workers only copy bytes and the audio window.

Both apply the same crop, resize, flip and colour (:func:`render`), with the item's
draws from its own ``(seed, epoch, clip)`` generator: on the CPU the two give identical
tensors (tested); nvJPEG's inverse DCT may differ from libjpeg-turbo's by a level or two.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch.utils.data import default_collate
from torchvision.io import ImageReadMode, decode_jpeg

from avmae.data.augment import Box, apply_box, apply_color, to_model_range, to_unit_range

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


def render(frames: torch.Tensor | list[torch.Tensor], box: Box, color: torch.Tensor | None) -> torch.Tensor:
    """uint8 frames (a [T, 3, H, W] tensor, or a list of [3, H, W] frames as decoded) -> the
    box (resized, flipped), coloured as drawn, in [-1, 1]: float [3, T, out, out], on the
    frames' device.

    Only the box is copied out of decoded frames, and without colour the float video is
    converted in place (the values of ``to_model_range(to_unit_range(x))``): fresh
    multi-MB tensors cost page faults, which were half of a loader item's time.
    """
    if not torch.is_tensor(frames):
        frames = torch.stack([f[:, box.top:box.top + box.height, box.left:box.left + box.width]
                              for f in frames])
        box = replace(box, top=0, left=0)
    region = apply_box(frames, box)                                   # uint8 [T, 3, out, out]
    if color is not None:
        return to_model_range(apply_color(to_unit_range(region), color))
    video = torch.empty((3, *region.shape[:1], *region.shape[2:]), device=region.device)
    return video.copy_(region.permute(1, 0, 2, 3)).div_(255.0).mul_(2.0).sub_(1.0)


def collate(items: list[dict]) -> dict:
    """``default_collate``, except that the items' ``jpeg`` bytes are joined into one
    uint8 tensor (their ``jpeg_sizes`` [B, T] split it again)."""
    if "jpeg" not in items[0]:
        return default_collate(items)
    rest = default_collate([{k: v for k, v in item.items() if k != "jpeg"} for item in items])
    return {**rest, "jpeg": torch.cat([item["jpeg"] for item in items])}


def decode_batch(batch: dict, device) -> dict:
    """A collated batch with its ``video`` [B, 3, T, out, out] float32 on ``device``: the
    JPEG frames decoded there and rendered as each item drew. A batch whose loader
    already decoded its frames is returned as it is."""
    if "jpeg" not in batch:
        return batch
    batch = dict(batch)
    sizes = batch.pop("jpeg_sizes")
    boxes, colors = batch.pop("box"), batch.pop("color", None)
    frames = decode_jpeg(list(torch.split(batch.pop("jpeg"), sizes.flatten().tolist())),
                         mode=ImageReadMode.RGB, device=device)
    t = sizes.shape[1]
    batch["video"] = torch.stack([
        render(frames[i * t:(i + 1) * t], Box.unpack(boxes[i]),
               None if colors is None else colors[i])
        for i in range(len(boxes))])
    return batch
