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

#: the orders and meanings ``DetectionTransform`` can train with
DETECTION_STYLES = ("ml-cvnets", "torchvision")
#: ml-cvnets' SSD crop's minimum IoUs (data/transforms/image.py line 933: 0.0 = no crop, 1.0 never met) as
#: ``RandomIoUCrop`` options, where >= 1.0 is "no crop": the same draw, one in six leaving the image whole
SSD_CROP_OPTIONS = [0.1, 0.3, 0.5, 0.7, 0.9, 1.0]


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


def check_eval_size(eval_size: Union[int, Sequence[int], None]) -> Union[int, tuple[int, int], None]:
    """A segmentation eval size: None (full size), a short side N >= 1, or an exact ``(height, width)``."""
    if eval_size is None:
        return None
    if isinstance(eval_size, (list, tuple)):
        if len(eval_size) == 1:
            eval_size = eval_size[0]
        elif len(eval_size) == 2 and all(isinstance(v, int) and v >= 1 for v in eval_size):
            return int(eval_size[0]), int(eval_size[1])
        else:
            raise ValueError(f"eval_size {list(eval_size)}: give a short side N, a pair [height, width], or null")
    if not isinstance(eval_size, int) or eval_size < 1:
        raise ValueError(f"eval_size must be a short side >= 1, a pair [height, width], or None (full size), "
                         f"got {eval_size!r}")
    return int(eval_size)


def rescale_boxes(boxes: torch.Tensor, size: Sequence[int], original: Sequence[int]) -> torch.Tensor:
    """Boxes ``(n, 4)`` xyxy in pixels of an image resized to ``size`` -> pixels of the ``original``
    image (both ``(height, width)``), clipped to it: undoes the detector's plain resize."""
    (h, w), (h0, w0) = size, original
    scale = torch.tensor([w0 / w, h0 / h, w0 / w, h0 / h], dtype=torch.float64)
    out = boxes.double() * scale
    limit = torch.tensor([w0, h0, w0, h0], dtype=torch.float64)
    return torch.minimum(out.clamp(min=0), limit).to(boxes.dtype if boxes.is_floating_point() else torch.float32)


def _finish(normalize: bool, mean: Sequence[float], std: Sequence[float]) -> list[Callable]:
    steps: list[Callable] = [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True)]
    if normalize:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return steps


def _rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB in [0, 1] -> hue in degrees [0, 360), saturation and value in [0, 1]."""
    r, g, b = rgb.unbind(0)
    value, _ = rgb.max(0)
    chroma = value - rgb.min(0).values
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(value == r, ((g - b) / safe) % 6, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(chroma > 0, hue * 60.0, torch.zeros_like(hue))
    saturation = torch.where(value > 0, chroma / torch.where(value > 0, value, torch.ones_like(value)),
                             torch.zeros_like(value))
    return torch.stack([hue, saturation, value])


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    hue, saturation, value = hsv.unbind(0)

    def channel(n: float) -> torch.Tensor:
        k = (n + hue / 60.0) % 6
        return value - value * saturation * torch.clamp(torch.minimum(k, 4 - k), 0, 1)

    return torch.stack([channel(5), channel(3), channel(1)])


class SSDPhotometricDistort(v2.Transform):
    """ml-cvnets v0.1's ``PhotometricDistort`` (data/transforms/image.py, lines 1208-1337), on RGB images.

    Each step with probability ``p``: contrast as a gain (pixels x U(0.5, 1.5)), brightness as an offset
    (+ U(-0.2, 0.2) x 255), saturation x U(0.5, 1.5) and hue + U(-0.05, 0.05) x 255 units of OpenCV's
    8-bit hue (2 degrees each, truncated to whole units) in HSV, the gain again if it was not applied
    first, then a random channel order. Values are clipped to [0, 255] and truncated to integers where
    ml-cvnets converts to uint8. One difference: a hue pushed below 0 wraps round the colour circle
    (ml-cvnets clips it to 0, i.e. red, as a side effect of its uint8 clip). Boxes and masks pass through.
    """

    def __init__(self, p: float = 0.5, contrast: Sequence[float] = (0.5, 1.5), brightness: Sequence[float] = (-0.2, 0.2),
                 saturation: Sequence[float] = (0.5, 1.5), hue: Sequence[float] = (-0.05, 0.05)) -> None:
        super().__init__()
        self.p, self.contrast, self.brightness = p, tuple(contrast), tuple(brightness)
        self.saturation, self.hue = tuple(saturation), tuple(hue)

    @staticmethod
    def _uniform(bounds: tuple[float, float]) -> float:
        return float(torch.empty(1).uniform_(bounds[0], bounds[1]))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        draws = torch.rand(6)
        alpha = self._uniform(self.contrast) if draws[0] < self.p else 1.0
        return dict(
            alpha=alpha,
            beta=self._uniform(self.brightness) * 255 if draws[1] < self.p else 0.0,
            gamma=self._uniform(self.saturation) if draws[2] < self.p else 1.0,
            delta=2.0 * int(self._uniform(self.hue) * 255) if draws[3] < self.p else 0.0,  # degrees
            alpha_after=self._uniform(self.contrast) if alpha == 1.0 and draws[4] < self.p else 1.0,
            order=torch.randperm(3) if draws[5] < self.p else None,
        )

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        if inpt.dtype != torch.uint8:
            raise TypeError(f"SSDPhotometricDistort works on uint8 images (as ml-cvnets'), got {inpt.dtype}")
        x = inpt.as_subclass(torch.Tensor).float()
        x = (x * params["alpha"] + params["beta"]).clamp(0, 255).floor()
        if params["gamma"] != 1.0 or params["delta"] != 0.0:
            hsv = _rgb_to_hsv(x / 255.0)
            hsv[1] = (hsv[1] * params["gamma"]).clamp(0, 1)
            hsv[0] = (hsv[0] + params["delta"]) % 360.0
            x = (_hsv_to_rgb(hsv) * 255.0).round().clamp(0, 255)
        x = (x * params["alpha_after"]).clamp(0, 255).floor()
        if params["order"] is not None:
            x = x[params["order"]]
        return tv_tensors.wrap(x.to(torch.uint8), like=inpt)


class DetectionTransform:
    """SSD-style paired augmentation, or a plain resize for evaluation.

    Train, ``style="ml-cvnets"`` (the default; ml-cvnets v0.1's ``COCODetectionSSD.training_transforms``,
    data/datasets/detection/coco.py lines 206-217, in its order): the SSD crop (a minimum IoU drawn
    from {none, 0.1, 0.3, 0.5, 0.7, 0.9}: torchvision's ``RandomIoUCrop`` with 1.0 standing for "no
    crop", ml-cvnets' 0.0), ml-cvnets' photometric distortion (``SSDPhotometricDistort``),
    horizontal flip, resize. ``style="torchvision"``: torchvision's SSD reference order and meaning
    (``RandomPhotometricDistort``, then ``RandomIoUCrop`` whose 0.0 is an unconstrained crop). Either
    style: optional zoom-out before the crop (off by default, as in both SSDLite recipes), resize to a
    square ``image_size``, then drop the boxes the crop marked invalid or made smaller than
    ``min_box_size`` pixels. Eval: resize to the square only (every box kept). The output target holds plain
    tensors: ``boxes`` float ``[n, 4]`` xyxy in pixels of the output image, ``labels`` int64
    ``[n]``, and any other keys of the input target unchanged.

    Args:
        image_size: side of the square output (SSDLite's 320).
        train: augment (True) or only resize (False).
        style: "ml-cvnets" or "torchvision" (train; see above).
        photometric: apply the style's photometric distortion (train).
        iou_crop: apply the style's IoU crop (train; skipped on images without boxes).
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
        style: str = "ml-cvnets",
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
        if style not in DETECTION_STYLES:
            raise ValueError(f"style {style!r}: choose one of {', '.join(DETECTION_STYLES)}")
        self.image_size, self.train, self.style = int(image_size), train, style
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
            cvnets = self.style == "ml-cvnets"
            if self.photometric and not cvnets:
                steps.append(v2.RandomPhotometricDistort())
            if self.zoom_out > 1.0:
                fill = {tv_tensors.Image: [round(255 * m) for m in self.mean], "others": 0}
                steps.append(v2.RandomZoomOut(fill=fill, side_range=(1.0, self.zoom_out), p=0.5))
            if with_crop:
                steps.append(v2.RandomIoUCrop(sampler_options=SSD_CROP_OPTIONS if cvnets else None))
            if self.photometric and cvnets:
                steps.append(SSDPhotometricDistort())
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
        mode = f"train, {self.style}" if self.train else "eval"
        return f"DetectionTransform({mode}, image_size={self.image_size}, normalize={self.normalize})"


class SegmentationTransform:
    """DeepLab-style paired augmentation, or a resize / full-size pass for evaluation.

    Train: resize the short side to ``crop_size`` times a random factor from ``scale_range``,
    crop ``crop_size`` square at random (padding the image with 0 and the mask with 255 where
    the image is smaller), horizontal flip, photometric distortion. Eval: resize the image's short
    side to ``eval_size`` (an int), or to exactly ``(height, width)`` (a pair: ml-cvnets' 512x512),
    or keep the full size when it is None; the mask keeps the original size, where the metric
    scores the logits upsampled to it (so no prediction depends on the other images of a batch).
    The output mask is an int64 ``[H, W]`` tensor of class indices with 255 = ignore.
    """

    supports_size = True

    def __init__(
        self,
        crop_size: int = 512,
        *,
        train: bool = True,
        scale_range: Sequence[float] = (0.5, 2.0),
        eval_size: Union[int, Sequence[int], None] = None,
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
        eval_size = check_eval_size(eval_size)
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"hflip is a probability, got {hflip}")
        self.crop_size, self.train, self.eval_size = int(crop_size), train, eval_size
        self.scale_range, self.hflip, self.photometric = tuple(scale_range), hflip, photometric
        self.normalize, self.mean, self.std = normalize, tuple(mean), tuple(std)
        self._cache: dict[Any, v2.Compose] = {}

    def _pipeline(self, size: Any) -> v2.Compose:
        if size not in self._cache:
            self._cache[size] = self._build(size)
        return self._cache[size]

    def _build(self, size: Any) -> v2.Compose:
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
        if self.train:
            image, mask = self._pipeline(size)(image, mask)
        else:  # NOTE: the mask stays at the original size, where the evaluation scores
            image = self._pipeline(size)(image)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).to(torch.int64)

    def __repr__(self) -> str:
        mode = "train" if self.train else "eval"
        return f"SegmentationTransform({mode}, crop_size={self.crop_size}, eval_size={self.eval_size})"
