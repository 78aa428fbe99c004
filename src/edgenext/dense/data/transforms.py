"""Paired transforms for detection and segmentation (torchvision.transforms.v2 with tv_tensors).

Each transform is called as ``transform(image, target, size=None)``: ``image`` a PIL image or a
``tv_tensors.Image``; ``target`` a dict holding ``boxes`` (``tv_tensors.BoundingBoxes``) and
``labels`` for detection, or a ``tv_tensors.Mask`` of class indices for segmentation. The
geometry moves the boxes and masks with the image. The output image is a float tensor in
[0, 1] (``normalize=True`` subtracts the ImageNet mean and divides by its std instead: the
dense models normalise inside, as torchvision's do, so the default leaves that to them).

``size`` is the input size a multi-scale batch sampler asked for; it replaces ``image_size``
(detection) or ``crop_size`` / ``eval_size`` (segmentation) for that sample.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ...constants import IMAGENET_MEAN, IMAGENET_STD

#: The value of ignored mask pixels (VOC's object borders, crop padding): the loss skips them.
IGNORE_INDEX = 255

Index = Union[int, tuple[int, int]]


def split_index(index: Index) -> tuple[int, Optional[int]]:
    """``i`` or ``(i, size)`` (what the multi-scale batch sampler yields) as ``(i, size or None)``."""
    if isinstance(index, (tuple, list)):
        return int(index[0]), int(index[1])
    return int(index), None


def apply_transform(transform: Optional[Callable], image: Any, target: Any, size: Optional[int]) -> tuple[Any, Any]:
    """Run a paired transform, passing ``size`` on only to transforms that take it (ours do).

    Any other callable ``(image, target) -> (image, target)``, a plain ``v2.Compose`` for
    example, works too; it then ignores the sampler's size.
    """
    if transform is None:
        return image, target
    if size is not None and getattr(transform, "supports_size", False):
        return transform(image, target, size=size)
    return transform(image, target)


def _finish(normalize: bool, mean: Sequence[float], std: Sequence[float]) -> list[Callable]:
    steps: list[Callable] = [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True)]
    if normalize:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return steps


class DetectionTransform:
    """SSD-style paired augmentation, or a plain resize for evaluation.

    Train: photometric distortion, optional zoom-out (torchvision's SSD recipe; off by default
    as in its SSDLite recipe and ml-cvnets'), random IoU crop, horizontal flip, resize to a
    square ``image_size``, then drop the boxes the crop marked invalid or made smaller than
    ``min_box_size`` pixels. Eval: resize to the square only (every box kept). The output target holds plain
    tensors: ``boxes`` float ``[n, 4]`` xyxy in pixels of the output image, ``labels`` int64
    ``[n]``, and any other keys of the input target unchanged.

    Args:
        image_size: side of the square output (SSDLite's 320).
        train: augment (True) or only resize (False).
        photometric: apply ``RandomPhotometricDistort`` (train).
        iou_crop: apply ``RandomIoUCrop`` (train; skipped on images without boxes).
        zoom_out: largest side ratio of ``RandomZoomOut`` (train, probability 0.5); 1.0 disables it.
        hflip: probability of a horizontal flip (train).
        min_box_size: boxes narrower or shorter than this (in output pixels) are dropped.
        normalize: subtract the ImageNet mean / divide by the std after scaling to [0, 1].
    """

    supports_size = True

    def __init__(
        self,
        image_size: int = 320,
        *,
        train: bool = True,
        photometric: bool = True,
        iou_crop: bool = True,
        zoom_out: float = 1.0,
        hflip: float = 0.5,
        min_box_size: float = 1.0,
        normalize: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        if zoom_out < 1.0:
            raise ValueError(f"zoom_out is the largest zoom-out side ratio and must be >= 1 (1 disables it), got {zoom_out}")
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"hflip is a probability, got {hflip}")
        self.image_size, self.train = int(image_size), train
        self.photometric, self.iou_crop, self.zoom_out, self.hflip = photometric, iou_crop, zoom_out, hflip
        self.min_box_size = min_box_size
        self.normalize, self.mean, self.std = normalize, tuple(mean), tuple(std)
        self._cache: dict[tuple[int, bool], v2.Compose] = {}

    def _pipeline(self, size: int, with_crop: bool) -> v2.Compose:
        if (size, with_crop) not in self._cache:
            self._cache[size, with_crop] = self._build(size, with_crop)
        return self._cache[size, with_crop]

    def _build(self, size: int, with_crop: bool) -> v2.Compose:
        steps: list[Callable] = [v2.ToImage()]
        if self.train:
            if self.photometric:
                steps.append(v2.RandomPhotometricDistort())
            if self.zoom_out > 1.0:
                fill = {tv_tensors.Image: [round(255 * m) for m in self.mean], "others": 0}
                steps.append(v2.RandomZoomOut(fill=fill, side_range=(1.0, self.zoom_out), p=0.5))
            if with_crop:
                steps.append(v2.RandomIoUCrop())
            if self.hflip > 0:
                steps.append(v2.RandomHorizontalFlip(self.hflip))
        steps += [v2.Resize((size, size), antialias=True), v2.ClampBoundingBoxes()]
        if self.train:
            # NOTE: also removes the boxes RandomIoUCrop zeroed (centres outside the crop). Not in
            # eval: a tiny ground-truth box still counts there, as in COCO's evaluation.
            steps.append(v2.SanitizeBoundingBoxes(min_size=self.min_box_size))
        return v2.Compose(steps + _finish(self.normalize, self.mean, self.std))

    def __call__(self, image: Any, target: dict, size: Optional[int] = None) -> tuple[torch.Tensor, dict]:
        size = self.image_size if size is None else int(size)
        # NOTE: RandomIoUCrop needs a box to centre a crop on; with none it would only spin.
        with_crop = self.train and self.iou_crop and len(target["boxes"]) > 0
        image, target = self._pipeline(size, with_crop)(image, target)
        out = dict(target)
        out["boxes"] = target["boxes"].as_subclass(torch.Tensor).to(torch.float32)
        out["labels"] = target["labels"].as_subclass(torch.Tensor).to(torch.int64)
        return image.as_subclass(torch.Tensor), out

    def __repr__(self) -> str:
        mode = "train" if self.train else "eval"
        return f"DetectionTransform({mode}, image_size={self.image_size}, normalize={self.normalize})"


class SegmentationTransform:
    """DeepLab-style paired augmentation, or a resize / full-size pass for evaluation.

    Train: resize the short side to ``crop_size`` times a random factor from ``scale_range``,
    crop ``crop_size`` square at random (padding the image with 0 and the mask with 255 where
    the image is smaller), horizontal flip, photometric distortion. Eval: resize the short side
    to ``eval_size`` (the mask with nearest neighbour), or keep the full size when it is None.
    The output mask is an int64 ``[H, W]`` tensor of class indices with 255 = ignore.
    """

    supports_size = True

    def __init__(
        self,
        crop_size: int = 512,
        *,
        train: bool = True,
        scale_range: Sequence[float] = (0.5, 2.0),
        eval_size: Optional[int] = None,
        hflip: float = 0.5,
        photometric: bool = True,
        normalize: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if crop_size < 1:
            raise ValueError(f"crop_size must be >= 1, got {crop_size}")
        if len(scale_range) != 2 or not 0.0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {tuple(scale_range)}")
        if eval_size is not None and eval_size < 1:
            raise ValueError(f"eval_size must be >= 1 or None (full size), got {eval_size}")
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"hflip is a probability, got {hflip}")
        self.crop_size, self.train, self.eval_size = int(crop_size), train, eval_size
        self.scale_range, self.hflip, self.photometric = tuple(scale_range), hflip, photometric
        self.normalize, self.mean, self.std = normalize, tuple(mean), tuple(std)
        self._cache: dict[Optional[int], v2.Compose] = {}

    def _pipeline(self, size: Optional[int]) -> v2.Compose:
        if size not in self._cache:
            self._cache[size] = self._build(size)
        return self._cache[size]

    def _build(self, size: Optional[int]) -> v2.Compose:
        steps: list[Callable] = [v2.ToImage()]
        if self.train:
            low = max(1, round(size * self.scale_range[0]))
            high = max(low + 1, round(size * self.scale_range[1]) + 1)  # RandomResize's max is exclusive
            fill = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}
            steps += [v2.RandomResize(low, high, antialias=True), v2.RandomCrop(size, pad_if_needed=True, fill=fill)]
            if self.hflip > 0:
                steps.append(v2.RandomHorizontalFlip(self.hflip))
            if self.photometric:
                steps.append(v2.RandomPhotometricDistort())
        elif size is not None:
            steps.append(v2.Resize(size, antialias=True))
        return v2.Compose(steps + _finish(self.normalize, self.mean, self.std))

    def __call__(self, image: Any, mask: Any, size: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
        if size is None:
            size = self.crop_size if self.train else self.eval_size
        if not isinstance(mask, tv_tensors.Mask):
            mask = tv_tensors.Mask(mask)
        image, mask = self._pipeline(size)(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).to(torch.int64)

    def __repr__(self) -> str:
        mode = "train" if self.train else "eval"
        return f"SegmentationTransform({mode}, crop_size={self.crop_size}, eval_size={self.eval_size})"
