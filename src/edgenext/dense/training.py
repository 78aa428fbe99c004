"""Detection (SSDLite) and segmentation (DeepLabv3) as training ``TrainingTask``s.

The runner trains them exactly as it trains a classifier (checkpoints, resume, DDP, EMA,
logging); what differs lives here: the data (digit scenes, COCO, VOC or paired folders), the
model, the loss (the model computes it in train mode, torchvision's convention) and the
metrics (COCO box mAP, VOC mIoU). Class names include the background at index 0, so
``num_classes == len(class_names)`` for both.

The validation-set builders (``coco_files``, ``segmentation_dataset``, the ``*_eval_transform``
functions) and the evaluation loops (``evaluate_detection``, ``evaluate_segmentation``) are
module functions: ``edgenext.inference.dense`` evaluates a saved checkpoint with the very code
that scored it during training.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable, Optional

import torch
from torch import nn
from tqdm import tqdm

from ..models import Checkpoint, get_variant, read_weights
from ..models.weights import CheckpointError, WeightsDownloadError, read_checkpoint
from ..train.config import DIGITS, TrainConfig
from ..train.distributed import DistInfo, all_reduce_sum
from ..train.engine import autocast
from ..train.training_task import TrainingTask, TaskData, check_weight_files, move_to_device, refuse_keys
from .constants import PAPER_DEEPLABV3, VOC_NUM_CLASSES
from .data import (
    CocoDetection,
    DetectionTransform,
    DigitScenes,
    MaskDataset,
    PairedSegmentation,
    SegmentationTransform,
    VOCSegmentation,
    detection_collate,
    find_coco2017,
    segmentation_collate,
)
from ..data.shards import looks_like_shards, resolve_shards
from .data.coco_voc import CocoVOCSegmentation
from .data.shards import ShardDetection, ShardSegmentation
from .data.segmentation import VOC_CLASSES, ConcatSegmentation, SbdSetting
from .data.transforms import check_eval_size
from .deeplabv3 import deeplabv3, segmentation_loss
from .metrics import COCO_STATS, DetectionMetric, SegmentationMetric
from .ssdlite import ssdlite

log = logging.getLogger(__name__)


def backbone_weights(cfg: TrainConfig) -> Optional[str]:
    """``backbone_weights`` of a config: a file / URL / hf-hub name, or ``pretrained`` for the variant's release."""
    if cfg.backbone_weights == "pretrained":
        variant, release = get_variant(cfg.model)
        return (release or variant.default_release).url
    return cfg.backbone_weights


def digit_scenes(cfg: TrainConfig, targets: str, train_tf, val_tf) -> tuple[DigitScenes, DigitScenes]:
    """The demo's training and validation scenes; ``data_kwargs`` sets the scene knobs
    (``num_scenes`` / ``val_scenes``: scenes per split, ``digits_per_scene``, ``digit_size``, ...)."""
    scenes = {k: v for k, v in cfg.data_kwargs.items() if k not in ("transform", "num_scenes", "val_scenes")}
    train = DigitScenes("train", targets, image_size=cfg.input_size, transform=train_tf, seed=cfg.seed,
                        num_scenes=cfg.data_kwargs.get("num_scenes"), **scenes)
    val = DigitScenes("val", targets, image_size=cfg.input_size, transform=val_tf, seed=cfg.seed,
                      num_scenes=cfg.data_kwargs.get("val_scenes"), **scenes)
    return train, val


def _is_digits(cfg: TrainConfig) -> bool:
    return cfg.data == DIGITS and not cfg.train_dir


def _uses_shards(cfg: TrainConfig) -> bool:
    """Whether the data are tar shards (``edgenext shards --task detect|segment``' output, a pattern, a URL)."""
    return not _is_digits(cfg) and looks_like_shards(cfg.train_dir or cfg.data)


def _check_paths(cfg: TrainConfig, keys: Iterable[str]) -> None:
    for key in keys:
        value = getattr(cfg, key)
        if value is not None and not Path(value).exists():
            raise ValueError(f"{key}={value}: no such file or folder")


def load_finetune(model: nn.Module, path: str) -> None:
    """Weights of a dense checkpoint (``edgenext train --task ...``'s best.pth / last.pth, or a bare
    state dict); tensors whose shape differs (another class count) keep their fresh initialisation."""
    obj = read_checkpoint(path)
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a state dict or a checkpoint of edgenext train (no 'model' weights)")
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f"{path}: none of its {len(state)} tensors fits this model; is it a checkpoint of another task?")
    fresh = sorted(set(own) - set(usable))
    model.load_state_dict(usable, strict=False)
    log.info("fine-tuning from %s: %d tensors loaded, %d re-initialised%s", path, len(usable), len(fresh),
             f" ({', '.join(fresh[:4])}{', ...' if len(fresh) > 4 else ''})" if fresh else "")


def detection_eval_transform(input_size: int) -> DetectionTransform:
    """Evaluation preprocessing of a detector trained at ``input_size``: a plain resize to that square."""
    return DetectionTransform(image_size=input_size, train=False)


def segmentation_eval_transform(input_size: int, eval_size: Any = None) -> SegmentationTransform:
    """Evaluation preprocessing of a segmenter: the short side to ``eval_size`` (an int), the image to exactly
    ``(height, width)`` (a pair), or the full image (None); the mask stays at its original size."""
    return SegmentationTransform(crop_size=input_size, train=False, eval_size=eval_size)


def recipe_eval_size(data_kwargs: dict[str, Any]) -> Any:
    """The segmentation recipe's evaluation size (``data_kwargs: {transform: {eval_size: N | [H, W]}}``), or None."""
    return check_eval_size(dict(data_kwargs.get("transform") or {}).get("eval_size"))


def coco_files(split: str, *, data: Optional[str] = None, images: Optional[str] = None,
               ann: Optional[str] = None) -> tuple[Path, Path]:
    """``(images folder, annotation file)`` of one split: the explicit pair, or the COCO 2017 layout under ``data``."""
    if images or ann:
        if not (images and ann):
            raise ValueError(f"explicit COCO files need both --{split}-images and --{split}-ann (got only "
                             f"{'--' + split + '-images' if images else '--' + split + '-ann'})")
        return Path(images), Path(ann)
    if data is None:
        raise ValueError(f"give a COCO 2017 folder (with {split}2017/ and annotations/), or --{split}-images "
                         f"with --{split}-ann")
    return find_coco2017(data, splits=(split,))[split]


def segmentation_dataset(
    split: str,
    transform: SegmentationTransform,
    *,
    data: Optional[str] = None,
    images: Optional[str] = None,
    masks: Optional[str] = None,
    num_classes: Optional[int] = None,
    class_names: Optional[list[str]] = None,
    sbd: SbdSetting = False,
) -> MaskDataset:
    """One split of a paired layout (``images`` + ``masks`` folders) or of the VOC layout under ``data``.

    ``sbd`` adds SBD's masks to VOC's train split (True, or "auto": when present). ``num_classes`` None:
    inferred from the masks.
    """
    if images or masks:
        if not (images and masks):
            raise ValueError(f"a paired layout needs both --{split}-images and --{split}-masks (got only "
                             f"{'--' + split + '-images' if images else '--' + split + '-masks'})")
        return PairedSegmentation(images, masks, transform, num_classes=num_classes, class_names=class_names)
    if data is None:
        raise ValueError(f"give a Pascal VOC folder (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/), "
                         f"or --{split}-images with --{split}-masks")
    dataset = VOCSegmentation(data, split, transform, num_classes=num_classes, sbd=sbd)
    if class_names is not None:
        if len(class_names) != dataset.num_classes:
            raise ValueError(f"{len(class_names)} class names for {dataset.num_classes} classes; give one name per class")
        dataset.class_names = list(class_names)
    return dataset


def detection_metric(dataset: Any, device: torch.device) -> DetectionMetric:
    """The COCO metric of a validation set: against its annotation file when it has one (``CocoDetection``:
    original pixels, crowd regions, the file's category ids), else against the targets it yields."""
    ground_truth = getattr(dataset, "ground_truth", None)
    if callable(ground_truth):
        return DetectionMetric(device, ground_truth=ground_truth(), label_to_category_id=dataset.label_to_category_id)
    return DetectionMetric(device)


@torch.no_grad()
def evaluate_detection(model: nn.Module, loader: Iterable, *, device: torch.device, dist: Optional[DistInfo] = None,
                       amp_dtype: Optional[torch.dtype] = None, progress: bool = False,
                       save_detections: Optional[str] = None) -> dict[str, float]:
    """The 12 COCO numbers of a detector over ``loader`` (``detection_collate`` batches of a dataset; see
    ``detection_metric``), plus ``count`` (images evaluated) and ``skipped`` (unreadable), over every process.
    ``save_detections``: a file for the COCO results JSON (written by the main process)."""
    dist = dist if dist is not None else DistInfo(device=device)
    model.eval()
    metric = detection_metric(getattr(loader, "dataset", None), device)
    counts = torch.zeros(2, dtype=torch.float64, device=device)  # images, skipped
    for images, targets, skipped in tqdm(loader, desc="eval", disable=not (progress and dist.is_main), leave=False):
        counts[1] += skipped
        if images.numel() == 0:
            continue
        with autocast(device, amp_dtype):
            detections = model(list(images.to(device)))
        metric.update(detections, targets, input_hw=images.shape[-2:])
        counts[0] += images.shape[0]
    all_reduce_sum(counts, dist)
    if counts[0] == 0:
        raise ValueError(f"no readable images to evaluate ({int(counts[1])} skipped)")
    if save_detections is not None:
        results = metric.results()
        if dist.is_main:
            Path(save_detections).parent.mkdir(parents=True, exist_ok=True)
            Path(save_detections).write_text(json.dumps(results))
    return {**metric.compute(), "count": int(counts[0]), "skipped": int(counts[1])}


def logits_at(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Class logits ``(N, C, h, w)`` upsampled bilinearly to ``size`` (an image's original pixels), where
    evaluation scores them and ``predict`` takes the arg-max (ml-cvnets upsamples to the original too)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return torch.nn.functional.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def _same_size_groups(images: Any) -> list[tuple[list[int], torch.Tensor]]:
    """A batch (a tensor, or a list of images of different sizes) as ``(positions, stacked images)`` per size."""
    if isinstance(images, torch.Tensor):
        return [(list(range(images.shape[0])), images)]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    return [(idx, torch.stack([images[i] for i in idx])) for idx in groups.values()]


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, loader: Iterable, *, device: torch.device, dist: Optional[DistInfo] = None,
                          amp_dtype: Optional[torch.dtype] = None, progress: bool = False) -> dict[str, float]:
    """mIoU and pixel accuracy over the dataset's confusion matrix, and the pixel-averaged loss, of a
    segmenter over ``loader`` (``segmentation_collate`` batches), plus ``count`` and ``skipped``.

    Each image runs as its transform made it (images of one size share a forward pass; none is padded,
    so its prediction does not depend on the batch) and its logits are upsampled to its mask's size
    (the original image's) before the arg-max: VOC's mIoU over original pixels, 255 ignored."""
    dist = dist if dist is not None else DistInfo(device=device)
    model.eval()
    metric: Optional[SegmentationMetric] = None
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, labelled pixels, images, skipped
    for images, masks, skipped in tqdm(loader, desc="eval", disable=not (progress and dist.is_main), leave=False):
        totals[3] += skipped
        if len(images) == 0 or images[0].numel() == 0:
            continue
        for positions, group in _same_size_groups(images):
            with autocast(device, amp_dtype):
                group_logits = model(group.to(device))
            for k, i in enumerate(positions):
                mask = masks[i].to(device)[None]
                logits = logits_at(group_logits[k:k + 1].float(), tuple(mask.shape[-2:]))
                metric = metric or SegmentationMetric(logits.shape[1], device)
                metric.update(logits, mask)
                labelled = (mask != 255).sum()
                if labelled > 0:
                    totals[0] += segmentation_loss(logits, mask).double() * labelled
                totals[1] += labelled
        totals[2] += len(images)
    # NOTE: a process without batches still joins the metric's cross-process sync, with an empty matrix
    metric = metric or SegmentationMetric(max(2, getattr(model, "num_classes", 2)), device)
    all_reduce_sum(totals, dist)
    if totals[2] == 0:
        raise ValueError(f"no readable images to evaluate ({int(totals[3])} skipped)")
    return {**metric.compute(), "loss": float(totals[0] / totals[1].clamp(min=1)), "count": int(totals[2]),
            "skipped": int(totals[3])}


class _DenseTask(TrainingTask):
    """What detection and segmentation share: backbone checks and weights, fine-tuning, the head's lr factor."""

    drop_last = True  # ASPP's image pooling and SSD's last levels are 1x1 maps: BatchNorm needs two images
    takes_coco_supplement = False  # whether it reads cfg.coco_supplement
    _backbone: Optional[Checkpoint] = None  # what fetch_weights read, until the model is built

    def check(self) -> None:
        cfg = self.cfg
        get_variant(cfg.model)
        shards = _uses_shards(cfg)
        _check_paths(cfg, ("train_ann", "val_ann", "train_masks", "val_masks", "coco_supplement")
                     + (() if shards else ("train_dir", "val_dir")))
        if not _is_digits(cfg) and cfg.train_dir is None and not shards:
            _check_paths(cfg, ("data",))
        check_weight_files(cfg, ("finetune", "backbone_weights"))
        if cfg.model_kwargs:  # the classifier's EdgeNeXt options: a dense network would build without them
            raise ValueError(f"model_kwargs={cfg.model_kwargs}: options of the classifier, which --task {self.name} "
                             "does not read; give the backbone's in task_kwargs, e.g. --set \"task_kwargs={backbone_kwargs: "
                             "{depths: [1, 1, 2, 2]}}\"")
        if not self.takes_coco_supplement:
            refuse_keys(cfg, ("coco_supplement",), f"COCO images added to a VOC segmentation training set: a setting "
                        f"of --task segment, which --task {self.name} does not read")
        elif _is_digits(cfg):
            refuse_keys(cfg, ("coco_supplement",), "it adds VOC-class images, and the digit scenes have their own "
                        "classes; give --data a VOC folder (or --train-images / --train-masks of VOC classes)")

    def fetch_weights(self) -> None:
        source = backbone_weights(self.cfg)
        if source is None:
            return
        try:
            self._backbone = read_weights(source)
        except (WeightsDownloadError, CheckpointError) as err:
            raise type(err)(f"backbone_weights={self.cfg.backbone_weights}: {err}. For edgenext train: --set "
                            "backbone_weights=FILE with the file, or --set backbone_weights=null to train without "
                            "ImageNet weights (from scratch, far below the paper's figures)") from None

    def _backbone_weights(self) -> Any:
        """The backbone's weights for building the model: what ``fetch_weights`` read (handed over once), else
        the config's file / URL / hub name."""
        fetched, self._backbone = self._backbone, None
        return fetched if fetched is not None else backbone_weights(self.cfg)

    def _finish_model(self, model: nn.Module, load: bool) -> nn.Module:
        if load and self.cfg.finetune:
            load_finetune(model, self.cfg.finetune)
        return model

    def param_groups(self, model: nn.Module) -> Optional[list[tuple[list[str], float]]]:
        if self.cfg.head_lr_mult == 1.0:
            return None
        head = [name for name, _ in model.named_parameters() if not name.startswith("backbone.")]
        return [(head, self.cfg.head_lr_mult)]

    def _task_data(self, train, val, found: int, source: str, collate, info: dict[str, Any]) -> TaskData:
        """The data with its class count: the data's (``found``, as ``source`` explains), or the recipe's
        ``num_classes`` when larger (the extra classes get placeholder names)."""
        num_classes = self.cfg.num_classes
        if num_classes is None:
            num_classes = found
        elif num_classes < found:
            raise ValueError(f"num_classes={num_classes} but the data has {found} classes ({source})")
        else:
            source = f"num_classes of the recipe; the data has {found}"
        names = list(train.class_names)[:num_classes]
        names += [f"class_{i}" for i in range(len(names), num_classes)]
        info["num_classes"] = f"{num_classes} ({source})"
        return TaskData(train=train, val=val, class_names=names, collate=collate, info=info)


class DetectionTask(_DenseTask):
    """SSDLite: smooth-L1 + cross-entropy with 3:1 hard negatives (torchvision's SSD loss); COCO mAP picks best.pth."""

    name = "detect"
    metric = "map"
    log_keys = COCO_STATS  # the 12 numbers of COCOeval.summarize()
    plot_keys = ("map", "map50", "map75")

    def _transforms(self) -> tuple[DetectionTransform, DetectionTransform]:
        cfg = self.cfg
        train = DetectionTransform(image_size=cfg.input_size, train=cfg.augment, hflip=cfg.hflip,
                                   **dict(cfg.data_kwargs.get("transform", {})))
        return train, detection_eval_transform(cfg.input_size)

    def build_data(self) -> TaskData:
        cfg = self.cfg
        train_tf, val_tf = self._transforms()
        if _is_digits(cfg):
            train, val = digit_scenes(cfg, "boxes", train_tf, val_tf)
            info = {"data": f"digit scenes, {len(train)} train / {len(val)} val at {cfg.input_size} px"}
        elif _uses_shards(cfg):
            train = ShardDetection(resolve_shards(cfg.train_dir or cfg.data, "train"), transform=train_tf)
            val = ShardDetection(resolve_shards(cfg.val_dir or cfg.data, "val"), transform=val_tf)
            info = {"train data": train.summary(), "val data": val.summary()}
        else:
            if cfg.train_ann or cfg.val_ann:
                if not (cfg.train_ann and cfg.val_ann and cfg.train_dir and cfg.val_dir):
                    raise ValueError("explicit COCO files need all four of --train-ann, --train-images, --val-ann, --val-images")
                layout = {"train": coco_files("train", images=cfg.train_dir, ann=cfg.train_ann),
                          "val": coco_files("val", images=cfg.val_dir, ann=cfg.val_ann)}
            else:
                layout = find_coco2017(cfg.data)
            train = CocoDetection(*layout["train"], transform=train_tf)
            val = CocoDetection(*layout["val"], transform=val_tf)
            if train.class_names != val.class_names:
                raise ValueError(f"{layout['val'][1]}: its categories differ from those of {layout['train'][1]}")
            info = {"train data": train.summary(), "val data": val.summary()}
        return self._task_data(train, val, train.num_classes, "background + the data's categories", detection_collate, info)

    def build_model(self, num_classes: int, *, load_finetune: bool = True) -> nn.Module:
        cfg = self.cfg
        options = {"drop_path_rate": cfg.drop_path, **cfg.task_kwargs}
        model = ssdlite(cfg.model, num_classes, backbone_weights=self._backbone_weights() if load_finetune else None,
                        image_size=cfg.input_size, **options)
        return self._finish_model(model, load_finetune)

    def to_device(self, inputs: torch.Tensor, targets: list[dict], device: torch.device) -> tuple[Any, Any]:
        targets = [{k: v for k, v in t.items() if k in ("boxes", "labels")} for t in targets]
        return move_to_device(inputs, device), move_to_device(targets, device)

    def placeholder_batch(self, model: nn.Module, device: torch.device) -> tuple[Any, Any]:
        size = self.cfg.input_size
        empty = {"boxes": torch.zeros(0, 4, device=device), "labels": torch.zeros(0, dtype=torch.long, device=device)}
        return torch.zeros(1, 3, size, size, device=device), [empty]

    def loss(self, model: nn.Module, inputs: torch.Tensor, targets: list[dict]) -> torch.Tensor:
        losses = model(list(inputs), targets)
        return losses["bbox_regression"] + losses["classification"]

    def evaluate(self, model: nn.Module, loader: Iterable, *, device: torch.device, dist: DistInfo,
                 amp_dtype: Optional[torch.dtype] = None, progress: bool = False) -> dict[str, float]:
        return evaluate_detection(model, loader, device=device, dist=dist, amp_dtype=amp_dtype, progress=progress)

    def describe(self, record: dict[str, Any]) -> str:
        ema = f" (EMA {record['ema_val_map']:.3f} / {record['ema_val_map50']:.3f})" if "ema_val_map" in record else ""
        return f"val box mAP / mAP@0.5 {record['val_map']:.3f} / {record['val_map50']:.3f}{ema}"


class SegmentationTask(_DenseTask):
    """DeepLabv3: pixel-wise cross-entropy ignoring 255; mIoU over the dataset's confusion matrix picks best.pth."""

    name = "segment"
    metric = "miou"
    log_keys = ("miou", "pixel_acc", "loss")
    takes_coco_supplement = True

    def _transforms(self) -> tuple[SegmentationTransform, SegmentationTransform]:
        cfg = self.cfg
        options = dict(cfg.data_kwargs.get("transform", {}))
        eval_size = options.pop("eval_size", None)
        train = SegmentationTransform(crop_size=cfg.input_size, train=cfg.augment, hflip=cfg.hflip, **options)
        return train, segmentation_eval_transform(cfg.input_size, eval_size)

    def build_data(self) -> TaskData:
        cfg = self.cfg
        train_tf, val_tf = self._transforms()
        if _is_digits(cfg):
            train, val = digit_scenes(cfg, "mask", train_tf, val_tf)
            info = {"data": f"digit scenes, {len(train)} train / {len(val)} val at {cfg.input_size} px"}
            found, source = train.num_classes, "background + 10 digits"
        elif _uses_shards(cfg):
            train = ShardSegmentation(resolve_shards(cfg.train_dir or cfg.data, "train"), train_tf, num_classes=cfg.num_classes)
            val = ShardSegmentation(resolve_shards(cfg.val_dir or cfg.data, "val"), val_tf, num_classes=train.num_classes)
            found, source = train.num_classes, train.num_classes_source
            info = {"train data": f"{len(train)} samples in {train.stats['shards']} shards", "val data": f"{len(val)} samples"}
        else:
            four = (cfg.train_masks, cfg.val_masks, cfg.train_dir, cfg.val_dir)
            if (cfg.train_masks or cfg.val_masks) and not all(four):
                raise ValueError("a paired layout needs all four of --train-images, --train-masks, --val-images, --val-masks")
            paired = bool(cfg.train_masks)
            num_classes, names = supplement_classes(cfg.num_classes) if cfg.coco_supplement else (cfg.num_classes, None)
            train = segmentation_dataset("train", train_tf, data=cfg.data, images=cfg.train_dir if paired else None,
                                         masks=cfg.train_masks, num_classes=num_classes,
                                         class_names=names if paired else None, sbd=cfg.data_kwargs.get("sbd", False))
            val = segmentation_dataset("val", val_tf, data=cfg.data, images=cfg.val_dir if paired else None,
                                       masks=cfg.val_masks, num_classes=train.num_classes,
                                       class_names=train.class_names if paired else None)
            found, source = train.num_classes, train.num_classes_source
            info = {"train data": f"{len(train)} image/mask pairs ({train.stats})", "val data": f"{len(val)} pairs"}
            if getattr(train, "sbd_found", None) is False:
                info["sbd"] = sbd_absent(train.root, len(train))
            if cfg.coco_supplement:
                coco = CocoVOCSegmentation(cfg.coco_supplement, transform=train_tf)
                train, info["coco supplement"] = ConcatSegmentation([train, coco]), coco.summary()
                source = "VOC's 20 + background, the classes coco_supplement renders COCO's masks in"
        return self._task_data(train, val, found, source, segmentation_collate, info)

    def build_model(self, num_classes: int, *, load_finetune: bool = True) -> nn.Module:
        cfg = self.cfg
        options = {"drop_path_rate": cfg.drop_path, **cfg.task_kwargs}
        model = deeplabv3(cfg.model, num_classes, backbone_weights=self._backbone_weights() if load_finetune else None,
                          **options)
        return self._finish_model(model, load_finetune)

    def placeholder_batch(self, model: nn.Module, device: torch.device) -> tuple[Any, Any]:
        size = self.cfg.input_size
        return torch.zeros(1, 3, size, size, device=device), torch.full((1, size, size), 255, dtype=torch.long, device=device)

    def loss(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return model(inputs, targets)["loss"]

    def evaluate(self, model: nn.Module, loader: Iterable, *, device: torch.device, dist: DistInfo,
                 amp_dtype: Optional[torch.dtype] = None, progress: bool = False) -> dict[str, float]:
        return evaluate_segmentation(model, loader, device=device, dist=dist, amp_dtype=amp_dtype, progress=progress)

    def describe(self, record: dict[str, Any]) -> str:
        ema = f" (EMA {record['ema_val_miou']:.3f})" if "ema_val_miou" in record else ""
        return f"val mIoU {record['val_miou']:.3f}{ema}, pixel acc {record['val_pixel_acc']:.3f}, val loss {record['val_loss']:.4f}"


def supplement_classes(num_classes: Optional[int]) -> tuple[int, list[str]]:
    """The class count and names of a segmentation training set with the COCO supplement: VOC's, which its
    masks are rendered in."""
    if num_classes not in (None, VOC_NUM_CLASSES):
        raise ValueError(f"num_classes={num_classes}, but coco_supplement renders COCO's masks in VOC's "
                         f"{VOC_NUM_CLASSES} classes; leave num_classes unset (or {VOC_NUM_CLASSES})")
    return VOC_NUM_CLASSES, list(VOC_CLASSES)


def sbd_absent(voc_root: Path, count: int) -> str:
    """The log's line when ``sbd: auto`` found no SBD masks."""
    miou = PAPER_DEEPLABV3["edgenext_small"]["miou"]
    return (f"absent (no {voc_root / 'SegmentationClassAug'}), training on VOC's own {count} masks; the paper's "
            f"{miou} mIoU needs SBD's masks there (the 10,582-image train_aug set) and the COCO supplement "
            "(--set coco_supplement=COCO2017_DIR)")
