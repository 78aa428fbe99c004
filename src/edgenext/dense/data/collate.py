"""Collate functions for detection and segmentation batches.

Both return the ``(inputs, targets, skipped)`` triple of ``edgenext.data.SkipCounter``:
``SkippedSample`` entries (unreadable images) are dropped and counted. Detection images of
different sizes (a dataset used without a transform) are padded at the bottom and right to the
largest in the batch, which leaves box coordinates valid; segmentation images and masks of
different sizes (evaluation at each image's own size) stay a list, unpadded.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from ...data.datasets import SkippedSample


def _as_float_image(image: Any) -> torch.Tensor:
    if isinstance(image, Image.Image):
        image = v2.functional.to_image(image)
    image = image.as_subclass(torch.Tensor) if isinstance(image, torch.Tensor) else torch.as_tensor(image)
    if not image.is_floating_point():
        image = v2.functional.to_dtype(image, torch.float32, scale=True)
    return image


def _pad_to(tensor: torch.Tensor, height: int, width: int, value: float) -> torch.Tensor:
    pad_h, pad_w = height - tensor.shape[-2], width - tensor.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return tensor
    return F.pad(tensor, (0, pad_w, 0, pad_h), value=value)


def _stack_padded(tensors: list[torch.Tensor], value: float) -> torch.Tensor:
    height = max(t.shape[-2] for t in tensors)
    width = max(t.shape[-1] for t in tensors)
    return torch.stack([_pad_to(t, height, width, value) for t in tensors])


def detection_collate(batch: Sequence[tuple[Any, Any]]) -> tuple[torch.Tensor, list[dict], int]:
    """``[(image, target), ...]`` -> ``(images [N, 3, H, W] float, targets, skipped)``.

    Each target keeps its keys, with ``boxes`` as a float ``[n, 4]`` tensor (xyxy pixels) and
    ``labels`` as an int64 ``[n]`` tensor. All samples skipped: ``images`` is ``[0, 3, 0, 0]``.
    """
    good = [(x, t) for x, t in batch if not isinstance(x, SkippedSample)]
    skipped = len(batch) - len(good)
    if not good:
        return torch.empty(0, 3, 0, 0), [], skipped
    images = _stack_padded([_as_float_image(x) for x, _ in good], 0.0)
    targets = []
    for _, target in good:
        target = dict(target)
        target["boxes"] = torch.as_tensor(target["boxes"]).as_subclass(torch.Tensor).to(torch.float32).reshape(-1, 4)
        target["labels"] = torch.as_tensor(target["labels"]).as_subclass(torch.Tensor).to(torch.int64).reshape(-1)
        targets.append(target)
    return images, targets, skipped


def segmentation_collate(batch: Sequence[tuple[Any, Any]]) -> tuple[Any, Any, int]:
    """``[(image, mask), ...]`` -> ``(images [N, 3, H, W] float, masks [N, H, W] int64, skipped)``.

    Images (masks) of different sizes come as a list of ``[3, H, W]`` (``[H, W]``) tensors instead,
    unpadded: the evaluation sees each image as it is and scores each mask at its own size (training
    crops are all one size). All samples skipped: ``images`` is ``[0, 3, 0, 0]`` and ``masks`` ``[0, 0, 0]``.
    """
    good = [(x, m) for x, m in batch if not isinstance(x, SkippedSample)]
    skipped = len(batch) - len(good)
    if not good:
        return torch.empty(0, 3, 0, 0), torch.empty(0, 0, 0, dtype=torch.int64), skipped
    images = [_as_float_image(x) for x, _ in good]
    masks = [torch.as_tensor(_mask_array(m)).as_subclass(torch.Tensor).to(torch.int64) for _, m in good]
    return _stack_if_equal(images), _stack_if_equal(masks), skipped


def _stack_if_equal(tensors: list[torch.Tensor]) -> Any:
    return torch.stack(tensors) if len({tuple(t.shape) for t in tensors}) == 1 else tensors


def _mask_array(mask: Any) -> Any:
    # NOTE: np.asarray of a palette ("P") image gives its indices, which is what a mask holds.
    if isinstance(mask, Image.Image):
        return np.array(mask, dtype=np.int64)
    return mask
