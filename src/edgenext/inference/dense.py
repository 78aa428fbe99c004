"""Evaluating and predicting with a trained detector or segmenter (``edgenext eval`` / ``predict``).

A checkpoint of ``edgenext train --task detect|segment`` (best.pth / last.pth) records the run's
config (backbone, input size, head options) and class names beside the weights, so the file
alone rebuilds the network: ``load_run_model`` loads its ``model`` weights strictly into the
network the task builds from that config (``edgenext.tasks`` says which task a file is for).
Evaluation reuses the training task's own validation transforms and metric loops
(``edgenext.dense.training``), so a saved checkpoint scores what it scored during training.
Prediction maps the network's output back to each image's own pixels and draws it with
``torchvision.utils``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from ..data import ShardedBatchSampler, load_image
from ..models import Checkpoint
from ..models.weights import CheckpointError, PathLike
from ..models.run_config import run_config
from ..dense.data import CocoDetection, detection_collate, segmentation_collate
from ..dense.data.transforms import rescale_boxes
from ..dense.training import (
    coco_files,
    detection_eval_transform,
    evaluate_detection,
    evaluate_segmentation,
    logits_at,
    recipe_eval_size,
    segmentation_dataset,
    segmentation_eval_transform,
)

log = logging.getLogger(__name__)

_BAD_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
_MAX_DETAIL = 400  # characters of torch's missing / unexpected key lists quoted in an error

Device = Union[str, torch.device, None]
#: a run config (``TrainConfig.to_dict()``) and a class count -> the untrained network it describes
BuildNetwork = Callable[[Mapping[str, Any], int], nn.Module]


@dataclass
class LoadedDense:
    """A trained detector or segmenter in eval mode, with what its checkpoint records."""

    model: nn.Module
    task: str  # the task it was trained for (edgenext.tasks)
    class_names: list[str]  # index 0 is the background; one name per output class
    input_size: int  # the training input side (the detector resizes every image to it)
    config: dict[str, Any] = field(default_factory=dict)  # the run's TrainConfig.to_dict()
    source: str = ""  # the checkpoint, as given

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_run_model(checkpoint: Checkpoint, build: BuildNetwork, *, task: str, title: str,
                   device: Device = "cpu") -> LoadedDense:
    """The network ``build`` makes from the run config of ``checkpoint`` (a checkpoint of
    ``edgenext train --task {task}``, already checked to be one), its weights loaded strictly, in eval mode.

    Raises ``CheckpointError`` naming the file when it records no class names, its ``model`` is not
    a state dict, or the weights do not fit the network (``title``: how the error names it).
    """
    source, content = checkpoint.source, checkpoint.content
    config = dict(run_config(content) or {})
    names = content.get("class_names")
    if not isinstance(names, (list, tuple)) or len(names) < 2:
        raise CheckpointError(f"{source}: records no class names (background included); was it written by edgenext train?")
    state = content.get("model")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: its 'model' entry is not a state dict")
    model = build(config, len(names))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(line.strip() for line in str(err).splitlines()[1:3])[:_MAX_DETAIL]
        raise CheckpointError(f"{source}: its weights do not fit the {title} network its config describes "
                              f"({config.get('model')}, {len(names)} classes): {detail}") from None
    model.eval().to(device)
    return LoadedDense(model=model, task=task, class_names=[str(n) for n in names],
                       input_size=int(config.get("input_size", 0)), config=config, source=source)


def _check_class_names(found: Sequence[str], loaded: LoadedDense, source: Path) -> None:
    """The data's classes must be the model's (a run with a larger num_classes pads with ``class_<i>``)."""
    n = len(found)
    padding = [f"class_{i}" for i in range(n, loaded.num_classes)]
    if list(found) != loaded.class_names[:n] or loaded.class_names[n:] != padding:
        raise ValueError(
            f"{source}: its categories ({', '.join(found[1:7])}{', ...' if n > 7 else ''}; {n - 1} in all) are not "
            f"the classes {loaded.source} was trained on ({', '.join(loaded.class_names[1:7])}"
            f"{', ...' if loaded.num_classes > 7 else ''}; {loaded.num_classes - 1} in all); evaluate on data "
            "with the same categories in the same id order"
        )


def _model_device(loaded: LoadedDense, device: Device) -> torch.device:
    """``device``, or where the model's weights are when None."""
    return torch.device(device) if device is not None else next(loaded.model.parameters()).device


def _text(path: Optional[PathLike]) -> Optional[str]:
    return None if path is None else str(path)


def _evaluate(loaded: LoadedDense, dataset: Dataset, collate: Callable, evaluate: Callable, *, batch_size: int,
              workers: int, device: Device, progress: bool, **options: Any) -> dict[str, Any]:
    loader = DataLoader(dataset, batch_sampler=ShardedBatchSampler(len(dataset), batch_size), num_workers=workers,
                        collate_fn=collate)
    metrics = evaluate(loaded.model, loader, device=_model_device(loaded, device), progress=progress, **options)
    return {"task": loaded.task, **metrics, "images": len(dataset)}


def evaluate_detector(
    loaded: LoadedDense,
    *,
    data: Optional[PathLike] = None,
    images: Optional[PathLike] = None,
    ann: Optional[PathLike] = None,
    batch_size: int = 8,
    workers: int = 2,
    device: Device = None,
    progress: bool = True,
    save_detections: Optional[PathLike] = None,
) -> dict[str, Any]:
    """The COCO box AP / AR of a detector on a COCO 2017 root ``data`` (its val2017/ split), or ``images``
    with its COCO JSON ``ann``, at its training input size; the categories must be the checkpoint's classes.

    Scored by pycocotools' ``COCOeval`` against the annotation file itself (crowd regions ignored as
    COCO does, boxes mapped back to each image's pixels, the file's category ids), with the model's
    post-processing settings (``loaded.model.selection()``). Returns the 12 numbers of
    ``edgenext.dense.metrics.COCO_STATS`` in [0, 1] (-1: no ground truth in that area range), plus
    ``count`` (images evaluated), ``skipped`` (unreadable), ``images`` (in the set) and ``task``.
    ``device``: where the batches go (default: the model's device). ``save_detections``: a file for
    the detections as a COCO results JSON (for COCOeval or the evaluation server)."""
    images_dir, ann_file = coco_files("val", data=_text(data), images=_text(images), ann=_text(ann))
    dataset = CocoDetection(images_dir, ann_file, transform=detection_eval_transform(loaded.input_size))
    _check_class_names(dataset.class_names, loaded, ann_file)
    return _evaluate(loaded, dataset, detection_collate, evaluate_detection, batch_size=batch_size, workers=workers,
                     device=device, progress=progress, save_detections=_text(save_detections))


def evaluate_segmenter(
    loaded: LoadedDense,
    *,
    data: Optional[PathLike] = None,
    images: Optional[PathLike] = None,
    masks: Optional[PathLike] = None,
    eval_size: Any = None,
    batch_size: int = 8,
    workers: int = 2,
    device: Device = None,
    progress: bool = True,
) -> dict[str, Any]:
    """mIoU of a segmenter on a Pascal VOC root ``data`` (its val split), or ``images`` with class-index
    ``masks``; mask values must be below the checkpoint's class count (255: ignored). ``eval_size``:
    the short side images are resized to, or an exact ``(height, width)`` (default: the recipe's, else
    full size). Each image's logits are upsampled to its original size and scored there, so the
    figure does not depend on ``batch_size``.

    Returns ``miou``, ``pixel_acc`` (in [0, 1]) and ``loss``, plus ``count``, ``skipped``, ``images`` and ``task``."""
    size = eval_size if eval_size is not None else recipe_eval_size(loaded.config.get("data_kwargs") or {})
    transform = segmentation_eval_transform(loaded.input_size, size)
    dataset = segmentation_dataset("val", transform, data=_text(data), images=_text(images), masks=_text(masks),
                                   num_classes=loaded.num_classes, class_names=loaded.class_names)
    return _evaluate(loaded, dataset, segmentation_collate, evaluate_segmentation, batch_size=batch_size,
                     workers=workers, device=device, progress=progress)


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """Pascal VOC's colour map: the bits of the class index spread over R, G and B from the top bit down."""
    colors = []
    for index in range(num_classes):
        rgb, c = [0, 0, 0], index
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((c >> channel) & 1) << bit
            c >>= 3
        colors.append((rgb[0], rgb[1], rgb[2]))
    return colors


def _output_stems(paths: Sequence[PathLike]) -> list[str]:
    """One output name per input: the file stem, with ``-2``, ``-3``... where stems repeat."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = Path(path).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def _save_picture(picture: torch.Tensor, path: Path) -> None:
    Image.fromarray(picture.permute(1, 2, 0).numpy()).save(path, quality=90)  # CHW -> HWC


def _save_mask(mask: torch.Tensor, colors: list[tuple[int, int, int]], path: Path) -> None:
    """A class-index PNG: a palette image (VOC's format) up to 256 classes, 16-bit grayscale beyond."""
    height, width = mask.shape
    if len(colors) <= 256:
        image = Image.frombytes("P", (width, height), mask.numpy().astype(np.uint8).tobytes())
        image.putpalette([v for rgb in colors for v in rgb] + [0, 0, 0] * (256 - len(colors)))
    else:
        image = Image.fromarray(mask.numpy().astype(np.uint16))
    image.save(path)


def detect_pixels(loaded: LoadedDense, pixels: torch.Tensor, device: Device = None) -> dict[str, torch.Tensor]:
    """The detections of one uint8 ``(3, H, W)`` image, boxes in its own pixels: ``eval``'s preprocessing
    (``detection_eval_transform``: the resize to the input size), the model, and the boxes mapped back
    as ``eval`` maps them before scoring."""
    transform = detection_eval_transform(loaded.input_size)
    empty = {"boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=tuple(pixels.shape[-2:])),
             "labels": torch.zeros(0, dtype=torch.int64)}
    image, _ = transform(tv_tensors.Image(pixels), empty)
    found = loaded.model([image.to(_model_device(loaded, device))])[0]
    boxes = rescale_boxes(found["boxes"].float().cpu(), tuple(image.shape[-2:]), tuple(pixels.shape[-2:]))
    return {"boxes": boxes, "scores": found["scores"].float().cpu(), "labels": found["labels"].cpu()}


def _detect(loaded: LoadedDense, pixels: torch.Tensor, score_thresh: float, colors: list[tuple[int, int, int]],
            device: torch.device) -> tuple[dict[str, Any], torch.Tensor]:
    found = detect_pixels(loaded, pixels, device)
    keep = found["scores"] >= score_thresh
    boxes, scores, labels = found["boxes"][keep], found["scores"][keep], found["labels"][keep]
    names = [loaded.class_names[int(i)] for i in labels]
    detections = [{"label": name, "index": int(i), "score": float(s), "box": [float(v) for v in b]}
                  for name, i, s, b in zip(names, labels, scores, boxes)]
    picture = pixels
    if len(boxes):
        width = max(1, round(min(pixels.shape[-2:]) / 200))
        picture = draw_bounding_boxes(pixels, boxes, labels=[f"{n} {float(s):.2f}" for n, s in zip(names, scores)],
                                      colors=[colors[int(i)] for i in labels], width=width)
    return {"detections": detections}, picture


def segment_pixels(loaded: LoadedDense, pixels: torch.Tensor, eval_size: Any = None,
                   device: Device = None) -> torch.Tensor:
    """The class logits ``(1, C, H, W)`` of one uint8 ``(3, H, W)`` image at its own size: ``eval``'s
    preprocessing (``segmentation_eval_transform``), the model, and the logits upsampled to the
    original pixels as ``eval`` upsamples them before scoring."""
    transform = segmentation_eval_transform(loaded.input_size, eval_size)
    image, _ = transform(tv_tensors.Image(pixels), torch.zeros(pixels.shape[-2:], dtype=torch.int64))
    logits = loaded.model(image[None].to(_model_device(loaded, device))).float()
    return logits_at(logits, tuple(pixels.shape[-2:]))


def _segment(loaded: LoadedDense, pixels: torch.Tensor, size: Any, colors: list[tuple[int, int, int]],
             device: torch.device) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    height, width = pixels.shape[-2:]
    mask = segment_pixels(loaded, pixels, size, device).argmax(dim=1)[0].cpu()  # (H, W) in the image's pixels
    counts = torch.bincount(mask.flatten(), minlength=loaded.num_classes)
    present = [int(i) for i in torch.nonzero(counts).flatten()]
    classes = [{"label": loaded.class_names[i], "index": i, "pixels": int(counts[i]),
                "fraction": float(counts[i]) / (height * width)} for i in present]
    objects = [i for i in present if i != 0]
    picture = pixels
    if objects:
        layers = mask.unsqueeze(0) == torch.tensor(objects).view(-1, 1, 1)  # (K, H, W) one layer per class shown
        picture = draw_segmentation_masks(pixels, layers, alpha=0.5, colors=[colors[i] for i in objects])
    return {"classes": classes}, picture, mask


#: what predicting one image does: (pixels, output stem, colours, device) -> the entry's results, written files
_PerImage = Callable[[torch.Tensor, Path, list, torch.device], dict[str, Any]]


def _predict_each(loaded: LoadedDense, paths: Sequence[PathLike], output_dir: PathLike, device: Device,
                  per_image: _PerImage) -> list[dict[str, Any]]:
    """``per_image`` on each readable image of ``paths`` (an ``error`` entry for the others)."""
    device = _model_device(loaded, device)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    colors = class_colors(loaded.num_classes)
    loaded.model.eval()
    results = []
    for path, stem in zip(paths, _output_stems(paths)):
        try:
            img = load_image(path)
        except _BAD_IMAGE_ERRORS as err:
            results.append({"image": str(path), "error": f"{type(err).__name__}: {err}"})
            continue
        pixels = v2.functional.to_image(img)  # uint8 (3, H, W)
        entry: dict[str, Any] = {"image": str(path), "width": img.width, "height": img.height}
        entry.update(per_image(pixels, out / stem, colors, device))
        results.append(entry)
    return results


@torch.no_grad()
def predict_detections(
    loaded: LoadedDense,
    paths: Sequence[PathLike],
    *,
    output_dir: PathLike,
    score_thresh: float = 0.3,
    device: Device = None,
) -> list[dict[str, Any]]:
    """Each image's detections, drawn into ``<stem>_boxes.jpg`` under ``output_dir``.

    Images of any size, preprocessed as ``eval`` does (``detect_pixels``): the same image gives the
    same boxes in both, in the original image's pixels. Per image the entry holds ``image``, ``width``, ``height``,
    ``detections`` (``label``, ``index``, ``score`` >= ``score_thresh``, ``box`` x1 y1 x2 y2) and
    ``picture``; an unreadable image gives an ``error`` entry instead. ``device``: where the
    images go (default: the model's device).
    """
    if not 0.0 <= score_thresh <= 1.0:
        raise ValueError(f"score_thresh is a probability in [0, 1], got {score_thresh}")

    def per_image(pixels: torch.Tensor, stem: Path, colors: list, device: torch.device) -> dict[str, Any]:
        found, picture = _detect(loaded, pixels, score_thresh, colors, device)
        _save_picture(picture, stem.with_name(f"{stem.name}_boxes.jpg"))
        return {**found, "picture": str(stem.with_name(f"{stem.name}_boxes.jpg"))}

    return _predict_each(loaded, paths, output_dir, device, per_image)


@torch.no_grad()
def predict_masks(
    loaded: LoadedDense,
    paths: Sequence[PathLike],
    *,
    output_dir: PathLike,
    eval_size: Any = None,
    device: Device = None,
) -> list[dict[str, Any]]:
    """Each image's class mask, written as a palette PNG ``<stem>_mask.png`` and overlaid in
    ``<stem>_overlay.jpg`` under ``output_dir``.

    The segmenter sees each image as ``eval`` does (``segment_pixels``: resized to ``eval_size``, default
    the recipe's, else full size) and its mask comes back in the original image's pixels. Per image
    the entry holds ``image``, ``width``, ``height``, ``classes`` (pixel count and fraction of each
    class present), ``mask`` and ``picture``; an unreadable image gives an ``error`` entry instead.
    """
    size = eval_size if eval_size is not None else recipe_eval_size(loaded.config.get("data_kwargs") or {})

    def per_image(pixels: torch.Tensor, stem: Path, colors: list, device: torch.device) -> dict[str, Any]:
        found, picture, mask = _segment(loaded, pixels, size, colors, device)
        mask_path, picture_path = stem.with_name(f"{stem.name}_mask.png"), stem.with_name(f"{stem.name}_overlay.jpg")
        _save_mask(mask, colors, mask_path)
        _save_picture(picture, picture_path)
        return {**found, "mask": str(mask_path), "picture": str(picture_path)}

    return _predict_each(loaded, paths, output_dir, device, per_image)
