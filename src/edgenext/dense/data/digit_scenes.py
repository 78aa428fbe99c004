"""Digit scenes: the built-in detection and segmentation demo, made from real handwritten digits.

Each scene pastes a few of scikit-learn's 8x8 handwritten digits, upsampled to random sizes,
at random non-overlapping places on a plain noisy canvas. The digits come from the same
seeded train/val split as the classification demo (``edgenext.data.datasets.digits_split``),
so no validation digit is ever seen in training. Ground truth is exact by construction: a
pixel is a digit's "ink" where the upsampled digit's intensity reaches ``ink_threshold``; the
mask labels ink pixels with digit + 1 (0 is background) and each box is the tight box of its
digit's ink.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ...constants import IMAGENET_MEAN, IMAGENET_STD
from ...data.datasets import digits_split
from .transforms import Index, apply_transform, split_index

DIGIT_CLASS_NAMES = ("background",) + tuple(str(d) for d in range(10))

_SPLIT_CODES = {"train": 0, "val": 1}
_DEFAULT_SCENES = {"train": 4000, "val": 400}
_EDGE_RAMP = 0.4


def _range(name: str, value: Sequence[int], low: int, high: int) -> tuple[int, int]:
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max <= {high}, got {tuple(value)}")
    return int(value[0]), int(value[1])


#: what a scene's target is: boxes and labels (detection) or a class-index mask (segmentation)
TARGETS = ("boxes", "mask")


class DigitScenes(Dataset):
    """Scenes of handwritten digits with exact boxes (``targets="boxes"``) or masks (``targets="mask"``).

    Scene ``i`` of a split is a function of ``(seed, split, i)`` and the scene parameters only,
    so a resumed run, or another worker process, renders the same data. With ``cache=True`` each
    scene is rendered once per process and kept (about 50 KB per 128-pixel scene): the demos
    run without loader processes and see every scene once per epoch, so rendering it again each
    epoch would be a fifth of their training time.

    ``dataset[i]`` (or ``dataset[(i, size)]``) returns ``(image, target)``; without a transform
    ``image`` is a float ``[3, S, S]`` tensor in [0, 1] (or ImageNet-normalised with
    ``normalize=True``) with ``S = image_size`` (or ``size``: the scene is rendered at
    ``image_size`` and resized), and ``target`` is, for ``boxes``, a dict of ``boxes`` float
    ``[n, 4]`` xyxy pixels, ``labels`` int64 ``[n]`` (digit + 1) and ``image_id`` (``i``), or, for
    ``mask``, an int64 ``[S, S]`` mask (0 background, digit + 1 on its ink). A ``transform``
    (e.g. ``DetectionTransform``) instead receives the uint8 ``tv_tensors.Image`` and the target
    with ``tv_tensors`` boxes / mask. Both kinds have ``num_classes == 11`` and
    ``class_names == ["background", "0", ..., "9"]``.

    Args:
        split: "train" or "val" (the digits' split, and a different scene stream).
        targets: "boxes" (detection: boxes and labels) or "mask" (segmentation: a class-index mask).
        image_size: canvas side in pixels.
        num_scenes: scenes in the split (default 4000 for train, 400 for val).
        digits_per_scene: (min, max) digits placed per scene; fewer when no free place is found.
        digit_size: (min, max) side of an upsampled digit in pixels.
        ink_threshold: intensity (0..1 after upsampling) from which a pixel is the digit's ink;
            lower gives thicker strokes.

    NOTE: the masks are thin strokes, which a decoder at output stride 16 cannot draw on small
    canvases: fitting the best possible stride-16 logits (bilinearly upsampled, as DeepLabv3's
    head does) to the default scenes reaches only about 0.74 mIoU, against 0.93 at stride 8 and
    0.85 at stride 16 on 192-pixel canvases with 48-96 pixel digits. Use output stride 8 or
    larger scenes for the segmentation demo.
        noise: standard deviation of the Gaussian pixel noise (0..255 scale).
        seed: the scene stream's seed.
        val_fraction, split_seed: the digits' train/val split (as ``DigitsDataset``'s).
        cache: keep each rendered scene in memory (the same arrays as rendering it again).
    """

    def __init__(
        self,
        split: str = "train",
        targets: str = "boxes",
        *,
        image_size: int = 128,
        num_scenes: Optional[int] = None,
        digits_per_scene: Sequence[int] = (1, 4),
        digit_size: Sequence[int] = (32, 64),
        ink_threshold: float = 0.35,
        noise: float = 8.0,
        seed: int = 0,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        transform: Optional[Callable] = None,
        normalize: bool = False,
        cache: bool = False,
    ) -> None:
        if targets not in TARGETS:
            raise ValueError(f"targets must be one of {', '.join(map(repr, TARGETS))}, got {targets!r}")
        self.digits, labels = digits_split(split, val_fraction=val_fraction, split_seed=split_seed)
        self.digit_labels = labels.astype(np.int64)
        if image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {image_size}")
        self.digit_size = _range("digit_size", digit_size, 4, image_size)
        self.digits_per_scene = _range("digits_per_scene", digits_per_scene, 1, 64)
        if not 0.0 < ink_threshold < 1.0:
            raise ValueError(f"ink_threshold must be in (0, 1), got {ink_threshold}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.num_scenes = _DEFAULT_SCENES[split] if num_scenes is None else int(num_scenes)
        if self.num_scenes < 1:
            raise ValueError(f"num_scenes must be >= 1, got {num_scenes}")
        self.split, self.targets, self.image_size = split, targets, int(image_size)
        self.ink_threshold, self.noise, self.seed = float(ink_threshold), float(noise), int(seed)
        self.transform, self.normalize = transform, normalize
        self.num_classes = len(DIGIT_CLASS_NAMES)
        self.class_names = list(DIGIT_CLASS_NAMES)
        self._resizes: dict[int, v2.Resize] = {}
        self._cache: Optional[dict[int, dict[str, np.ndarray]]] = {} if cache else None

    def __len__(self) -> int:
        return self.num_scenes

    def render(self, i: int) -> dict[str, np.ndarray]:
        """Scene ``i`` as arrays: ``image`` uint8 ``[S, S, 3]``, ``boxes`` float32 ``[n, 4]`` xyxy
        (pixel edges: ink occupies columns x1..x2-1), ``labels`` int64 ``[n]`` (digit + 1),
        ``mask`` int64 ``[S, S]``, ``digits`` int64 ``[n]`` (indices into ``self.digits``)."""
        if not 0 <= i < self.num_scenes:
            raise IndexError(f"scene {i} out of range for {self.num_scenes} scenes")
        rng = np.random.default_rng([self.seed, _SPLIT_CODES[self.split], i])
        size = self.image_size
        background = rng.uniform(0.0, 110.0, size=3)
        canvas = np.broadcast_to(background, (size, size, 3)).copy()
        mask = np.zeros((size, size), dtype=np.int64)
        boxes, labels, used, taken = [], [], [], []
        for _ in range(int(rng.integers(self.digits_per_scene[0], self.digits_per_scene[1] + 1))):
            place = self._free_place(rng, taken)
            if place is None:
                break
            x, y, side = place
            d = int(rng.integers(len(self.digits)))
            intensity = self._upsample(self.digits[d], side)
            ink = intensity >= self.ink_threshold
            # NOTE: a ramp centred on the threshold, so the visible edge of a digit is the edge of its
            # mask, and the faint strokes of the 8x8 scans (values of 1 or 2 out of 16) stay invisible.
            alpha = np.clip((intensity - self.ink_threshold) / _EDGE_RAMP + 0.5, 0.0, 1.0)
            color = rng.uniform(150.0, 255.0, size=3)
            patch = canvas[y:y + side, x:x + side]
            patch[:] = patch * (1.0 - alpha[..., None]) + color * alpha[..., None]
            label = int(self.digit_labels[d]) + 1
            mask[y:y + side, x:x + side][ink] = label
            rows, cols = np.nonzero(ink)
            boxes.append([x + cols.min(), y + rows.min(), x + cols.max() + 1, y + rows.max() + 1])
            labels.append(label)
            used.append(d)
            taken.append((x, y, side))
        if self.noise > 0:
            canvas += rng.normal(0.0, self.noise, size=canvas.shape)
        return dict(
            image=np.clip(canvas, 0, 255).round().astype(np.uint8),
            boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            labels=np.asarray(labels, dtype=np.int64),
            mask=mask,
            digits=np.asarray(used, dtype=np.int64),
        )

    def _free_place(self, rng: np.random.Generator, taken: list[tuple[int, int, int]]) -> Optional[tuple[int, int, int]]:
        """A random square that overlaps none already taken, or None after a few tries."""
        for _ in range(20):
            side = int(rng.integers(self.digit_size[0], self.digit_size[1] + 1))
            x = int(rng.integers(0, self.image_size - side + 1))
            y = int(rng.integers(0, self.image_size - side + 1))
            if all(x + side <= tx or tx + ts <= x or y + side <= ty or ty + ts <= y for tx, ty, ts in taken):
                return x, y, side
        return None

    @staticmethod
    def _upsample(digit: np.ndarray, side: int) -> np.ndarray:
        # the raw values are 0..16; bicubic can overshoot, hence the clip
        img = Image.fromarray((digit / 16.0).astype(np.float32), mode="F").resize((side, side), Image.BICUBIC)
        return np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)

    def _scene(self, i: int) -> dict[str, np.ndarray]:
        if self._cache is None:
            return self.render(i)
        if i not in self._cache:
            scene = self.render(i)
            # only what __getitem__ reads for these targets; a mask fits in a byte (11 classes)
            keep = ("image", "boxes", "labels") if self.targets == "boxes" else ("image", "mask")
            self._cache[i] = {k: scene[k].astype(np.uint8) if k == "mask" else scene[k] for k in keep}
        return self._cache[i]

    def __getitem__(self, index: Index) -> tuple[torch.Tensor, Any]:
        i, size = split_index(index)
        scene = self._scene(i)
        image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(scene["image"].transpose(2, 0, 1))))  # HWC -> CHW
        if self.targets == "boxes":
            canvas = (self.image_size, self.image_size)
            target: Any = dict(
                boxes=tv_tensors.BoundingBoxes(torch.from_numpy(scene["boxes"].copy()), format="XYXY", canvas_size=canvas),
                labels=torch.from_numpy(scene["labels"].copy()),
                image_id=i,
            )
        else:
            target = tv_tensors.Mask(torch.from_numpy(scene["mask"]).long())
        if self.transform is not None:
            return apply_transform(self.transform, image, target, size)
        if size is not None and size != self.image_size:
            if size not in self._resizes:
                self._resizes[size] = v2.Resize((size, size), antialias=True)
            image, target = self._resizes[size](image, target)
        out = v2.functional.to_dtype(image, torch.float32, scale=True)
        if self.normalize:
            out = v2.functional.normalize(out, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
        if self.targets == "boxes":
            target = dict(target, boxes=target["boxes"].as_subclass(torch.Tensor))
        else:
            target = target.as_subclass(torch.Tensor)
        return out.as_subclass(torch.Tensor), target
