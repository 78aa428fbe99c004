"""Semantic segmentation datasets: the Pascal VOC layout (optionally with SBD's extra masks),
a plain folder of images beside a folder of masks, and several of them read as one.

Masks are single-channel images of class indices: VOC's palette PNGs (their pixel values are
the palette indices), grayscale or 16-bit PNGs. 255 marks pixels to ignore (VOC's object
borders). ``num_classes`` is the caller's, or else 1 + the largest index found in the masks;
``num_classes_source`` says which, for the log.
"""

from __future__ import annotations

import bisect
import io
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.datasets.folder import IMG_EXTENSIONS

from ...data.datasets import SkippedSample, load_image
from .transforms import IGNORE_INDEX, Index, apply_transform, split_index

PathLike = Union[str, os.PathLike]

#: What ``sbd`` takes: True (SBD's masks required), False (not read) or "auto" (read when present).
SbdSetting = Union[bool, str]

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

#: Lossless formats a mask may be stored in (a JPEG would blur the class indices).
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif", ".pgm", ".ppm", ".webp")

_BAD_FILE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class MaskFormatError(ValueError):
    """A readable mask that does not hold class indices (a colour-coded mask, say)."""


def read_mask(path: Union[PathLike, bytes]) -> np.ndarray:
    """A mask file as an int64 ``[H, W]`` array of class indices.

    Palette, grayscale, 16/32-bit and binary images are read as they are stored; an RGB(A)
    image is accepted only when its channels are equal (a grayscale mask saved as colour).
    """
    with (io.BytesIO(path) if isinstance(path, bytes) else open(path, "rb")) as f:
        img = Image.open(f)
        img.load()
    path = "mask" if isinstance(path, bytes) else path
    if img.mode in ("P", "L", "1", "I", "I;16", "I;16B", "I;16L"):
        # NOTE: for mode "P" this gives the palette indices, not the colours: VOC's class ids.
        return np.array(img, dtype=np.int64)
    if img.mode in ("RGB", "RGBA"):
        arr = np.array(img.convert("RGB"), dtype=np.int64)
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all():
            return arr[..., 0]
    raise MaskFormatError(
        f"{path}: a mask must hold one class index per pixel (a palette or grayscale PNG), got a {img.mode} "
        "image with differing colour channels; convert colour-coded masks to class indices first"
    )


class MaskDataset(Dataset):
    """Pairs of (image file, mask file) with robust loading; the base of the layouts below.

    ``dataset[i]`` (or ``dataset[(i, size)]``) returns ``(image, mask)``: without a transform an
    RGB PIL image and a ``tv_tensors.Mask`` int64 ``[H, W]``; with ``SegmentationTransform`` a
    float ``[3, H, W]`` tensor and an int64 ``[H, W]`` tensor. An unreadable image or mask comes
    back as a ``SkippedSample`` for the collate function to drop and count; a mask whose size
    differs from its image, or that holds an index >= ``num_classes`` other than 255, is a
    ``ValueError`` naming the file.
    """

    def __init__(
        self,
        samples: Sequence[tuple[PathLike, PathLike]],
        transform: Optional[Callable] = None,
        *,
        num_classes: Optional[int] = None,
        class_names: Optional[Sequence[str]] = None,
        name: str = "dataset",
    ) -> None:
        self.samples = [(Path(i), Path(m)) for i, m in samples]
        if not self.samples:
            raise ValueError(f"{name}: no image/mask pairs found")
        self.transform = transform
        self.name = name
        if num_classes is not None:
            if num_classes < 1:
                raise ValueError(f"num_classes must be >= 1, got {num_classes}")
            self.num_classes = int(num_classes)
            self.num_classes_source = f"given: {self.num_classes} classes"
        else:
            self.num_classes, self.num_classes_source = self._infer_num_classes()
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for {self.num_classes} classes; give one name per class")
        self.class_names = list(class_names) if class_names is not None else [str(c) for c in range(self.num_classes)]

    def _infer_num_classes(self) -> tuple[int, str]:
        largest, read = -1, 0
        for _, mask_path in self.samples:
            try:
                mask = read_mask(mask_path)
            except MaskFormatError:
                raise
            except _BAD_FILE_ERRORS:
                continue  # counted when the sample is loaded and skipped
            labelled = mask[mask != IGNORE_INDEX]
            read += 1
            if labelled.size:
                largest = max(largest, int(labelled.max()))
        if read == 0:
            raise ValueError(f"{self.name}: none of the {len(self.samples)} masks could be read to count the classes")
        n = max(largest + 1, 1)
        return n, f"inferred: largest class index {largest} in {read} masks -> {n} classes"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: Index) -> tuple[Any, Any]:
        i, size = split_index(index)
        image_name, mask_name = self._sample_names(i)
        try:
            image = self._load_image(i)
        except _BAD_FILE_ERRORS as err:
            return self._skip(image_name, f"{type(err).__name__}: {err}")
        try:
            mask = self._load_mask(i)
        except MaskFormatError:
            raise  # a readable mask in the wrong format: the user must fix it, skipping would hide it
        except _BAD_FILE_ERRORS as err:
            return self._skip(mask_name, f"{type(err).__name__}: {err}")
        if mask.shape != (image.height, image.width):
            raise ValueError(
                f"{mask_name}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {os.path.basename(image_name)} is "
                f"{image.width}x{image.height}; a mask must have its image's size"
            )
        bad = (mask >= self.num_classes) & (mask != IGNORE_INDEX) | (mask < 0)
        if bad.any():
            raise ValueError(
                f"{mask_name}: class index {int(mask[bad].max())} is outside 0..{self.num_classes - 1} "
                f"(num_classes={self.num_classes}, {IGNORE_INDEX} = ignore); raise num_classes or fix the mask"
            )
        return apply_transform(self.transform, image, tv_tensors.Mask(torch.from_numpy(mask)), size)

    def _sample_names(self, i: int) -> tuple[str, str]:
        """How messages name sample ``i``'s image and mask."""
        return str(self.samples[i][0]), str(self.samples[i][1])

    def _load_image(self, i: int) -> Image.Image:
        return load_image(self.samples[i][0])

    def _load_mask(self, i: int) -> np.ndarray:
        """Sample ``i``'s class indices, int64 ``[H, W]``: its mask file, unless a layout renders them."""
        return read_mask(self.samples[i][1])

    def _skip(self, path: str, reason: str) -> tuple[SkippedSample, Any]:
        warnings.warn(f"skipping sample {path} ({reason})", stacklevel=3)
        return SkippedSample(str(path), reason), tv_tensors.Mask(torch.zeros(0, 0, dtype=torch.int64))


def _find_voc_root(root: Path) -> Path:
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise ValueError(
        f"{root}: not a Pascal VOC folder; expected JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/ "
        "in it (or in VOC2012/ or VOCdevkit/VOC2012/ below it)"
    )


def _read_ids(list_file: Path) -> list[str]:
    # NOTE: the augmented list (train_aug.txt) is often "/JPEGImages/x.jpg /SegmentationClassAug/x.png".
    lines = [ln.split()[0] for ln in list_file.read_text().splitlines() if ln.strip()]
    return [Path(ln).stem for ln in lines]


class VOCSegmentation(MaskDataset):
    """Pascal VOC's layout: ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette PNGs),
    ``ImageSets/Segmentation/<split>.txt``.

    ``root`` may be the VOC2012 folder, or a folder holding ``VOC2012/`` or ``VOCdevkit/VOC2012/``.
    ``sbd=True`` adds SBD's extra training masks (the 10,582-image "train_aug" set of DeepLab)
    to the ``train`` split, in the converted-PNG form: ``SegmentationClassAug/<id>.png`` index
    masks beside ``SegmentationClass/``, with the ids from ``ImageSets/Segmentation/train_aug.txt``
    if present, else every mask in ``SegmentationClassAug/``; without that folder it is an error.
    ``sbd="auto"`` adds them when the folder is there and trains on VOC's own masks when it is
    not (``sbd_found`` says which). SBD's original ``cls/*.mat`` files are not read: convert them
    to PNG first. Validation ids are always excluded from training. Other splits are unaffected
    by ``sbd``.

    ``stats``: ``ids`` listed, ``missing_images`` (skipped when loaded), ``val_ids_excluded``.
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        transform: Optional[Callable] = None,
        *,
        num_classes: Optional[int] = None,
        sbd: SbdSetting = False,
    ) -> None:
        if not (isinstance(sbd, bool) or sbd == "auto"):
            raise ValueError(f"sbd must be true, false or \"auto\", got {sbd!r}")
        self.root = _find_voc_root(Path(root))
        sets = self.root / "ImageSets" / "Segmentation"
        list_file = sets / f"{split}.txt"
        if not list_file.is_file():
            choices = sorted(p.stem for p in sets.glob("*.txt")) if sets.is_dir() else []
            raise ValueError(f"{list_file}: split list not found; available splits: {choices or 'none'}")
        ids = _read_ids(list_file)
        self.stats = dict(ids=0, missing_images=0, val_ids_excluded=0)
        self.sbd_found: Optional[bool] = None  # whether SegmentationClassAug/ is there (None: not looked for)
        masks = {i: self.root / "SegmentationClass" / f"{i}.png" for i in ids}
        if sbd and split == "train":
            masks = self._with_sbd(masks, sets, required=sbd is True)
        self.stats["ids"] = len(masks)
        samples = [(self.root / "JPEGImages" / f"{i}.jpg", m) for i, m in masks.items()]
        self.stats["missing_images"] = sum(not p.is_file() for p, _ in samples)
        if self.stats["missing_images"]:
            warnings.warn(f"{self.root / 'JPEGImages'}: {self.stats['missing_images']} of {len(samples)} images of "
                          f"the {split} split are missing; they will be skipped", stacklevel=2)
        super().__init__(samples, transform, num_classes=num_classes, name=str(list_file))
        if self.num_classes == len(VOC_CLASSES):
            self.class_names = list(VOC_CLASSES)

    def _with_sbd(self, masks: dict[str, Path], sets: Path, *, required: bool) -> dict[str, Path]:
        aug = self.root / "SegmentationClassAug"
        self.sbd_found = aug.is_dir()
        if not self.sbd_found:
            if required:
                raise ValueError(f"{aug}: SBD masks not found; sbd=true needs SBD's masks converted to index PNGs "
                                 "there (sbd=auto trains on VOC's own masks when they are absent)")
            return masks
        aug_list = sets / "train_aug.txt"
        extra = _read_ids(aug_list) if aug_list.is_file() else sorted(p.stem for p in aug.glob("*.png"))
        val_list = sets / "val.txt"
        val_ids = set(_read_ids(val_list)) if val_list.is_file() else set()
        merged = dict(masks)
        for i in extra:
            if i in val_ids:
                self.stats["val_ids_excluded"] += 1
                continue
            if (aug / f"{i}.png").is_file() or i not in merged:
                merged[i] = aug / f"{i}.png"
        return merged


def _files_by_key(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith("."):
            key = p.relative_to(folder).with_suffix("").as_posix()
            if key in found:
                raise ValueError(f"{folder}: two files for {key!r} ({found[key].name}, {p.name}); keep one")
            found[key] = p
    return found


class PairedSegmentation(MaskDataset):
    """A folder of images and a folder of masks with the same file stems (sub-folders allowed).

    Masks are class-index images in a lossless format (PNG, ...). An image without a mask is a
    ``ValueError`` listing it; masks without an image are counted in ``stats["unpaired_masks"]``.
    """

    def __init__(
        self,
        images_dir: PathLike,
        masks_dir: PathLike,
        transform: Optional[Callable] = None,
        *,
        num_classes: Optional[int] = None,
        class_names: Optional[Sequence[str]] = None,
    ) -> None:
        images_dir, masks_dir = Path(images_dir), Path(masks_dir)
        for folder, what in ((images_dir, "image"), (masks_dir, "mask")):
            if not folder.is_dir():
                raise ValueError(f"{folder}: {what} folder not found")
        images = _files_by_key(images_dir, tuple(IMG_EXTENSIONS))
        masks = _files_by_key(masks_dir, MASK_EXTENSIONS)
        if not images:
            raise ValueError(f"{images_dir}: no images found (looked for {', '.join(IMG_EXTENSIONS)})")
        lacking = [k for k in images if k not in masks]
        if lacking:
            raise ValueError(
                f"{masks_dir}: no mask for {len(lacking)} image(s), e.g. {', '.join(lacking[:5])}; masks need the "
                f"images' file stems and a lossless format ({', '.join(MASK_EXTENSIONS)})"
            )
        self.stats = dict(pairs=len(images), unpaired_masks=sum(k not in images for k in masks))
        if self.stats["unpaired_masks"]:
            warnings.warn(f"{masks_dir}: {self.stats['unpaired_masks']} masks have no image and are ignored", stacklevel=2)
        samples = [(images[k], masks[k]) for k in images]
        super().__init__(samples, transform, num_classes=num_classes, class_names=class_names, name=str(masks_dir))


class ConcatSegmentation(Dataset):
    """Mask datasets of the same classes read one after the other (VOC's training set and COCO's supplement).

    Takes ``i`` or ``(i, size)`` like its parts; class count and names are the first part's.
    """

    def __init__(self, parts: Sequence[MaskDataset]) -> None:
        if not parts:
            raise ValueError("ConcatSegmentation needs at least one dataset")
        first = parts[0]
        for part in parts[1:]:
            if part.num_classes != first.num_classes:
                raise ValueError(f"{part.name}: {part.num_classes} classes, but {first.name} has {first.num_classes}")
        self.parts = list(parts)
        self.num_classes, self.num_classes_source = first.num_classes, first.num_classes_source
        self.class_names = list(first.class_names)
        self._ends = list(np.cumsum([len(p) for p in self.parts]))

    def __len__(self) -> int:
        return int(self._ends[-1])

    def __getitem__(self, index: Index) -> tuple[Any, Any]:
        i, size = split_index(index)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        part = bisect.bisect_right(self._ends, i)
        j = i - (int(self._ends[part - 1]) if part else 0)
        return self.parts[part][j if size is None else (j, size)]
