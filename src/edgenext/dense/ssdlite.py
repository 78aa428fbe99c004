"""SSDLite with an EdgeNeXt backbone, in ml-cvnets v0.1's layout (the paper's detector, Sec. 4.2).

Levels: the backbone's maps at output strides 16 and 32, three depth-wise-separable stride-2
blocks (strides 64, 128, 256) and a global-pool level. Each level predicts, per anchor, 4 box
offsets and ``num_classes`` logits from a 1x1 projection (only where the widths differ), a
depth-wise 3x3 + BN and a 1x1 conv; the pooled level uses one 1x1 conv. Matching, box coding,
hard negative mining, the loss and NMS are torchvision's ``SSD``; its ``DefaultBoxGenerator``
gives ml-cvnets' anchors.

Conventions (torchvision's): ``num_classes`` counts the background, label 0; the model takes a
list (or a batch tensor) of RGB float images in [0, 1], any size, and itself resizes them to
``image_size`` and normalises them with ImageNet's mean and std (so a data pipeline does
neither). Train mode: ``model(images, targets)`` -> ``{"bbox_regression", "classification"}``
losses; eval mode: ``model(images)`` -> one ``{"boxes", "scores", "labels"}`` per image, boxes
``(x1, y1, x2, y2)`` in that image's pixels.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import Conv2dNormActivation, batched_nms, clip_boxes_to_image

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..models import EdgeNeXtFeatures
from ..models.edgenext import InputSize, input_hw, stage_map_sizes
from .backbone import BackboneWeights, Normalize, build_backbone, freeze, frozen_parts, keep_frozen_in_eval
from .constants import (
    COCO_NUM_CLASSES,
    DETECTION_INPUT_SIZE,
    SSD_ASPECT_RATIOS,
    SSD_MAX_SCALE,
    SSD_MIN_SCALE,
    SSD_PROJ_CHANNELS,
)

BOX_DIMS = 4


def _xavier(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def separable_block(in_channels: int, out_channels: int, stride: int = 2) -> nn.Sequential:
    """Depth-wise 3x3 (stride 2) + BN, then point-wise 1x1 + BN + ReLU (ml-cvnets' SeparableConv)."""
    return nn.Sequential(
        Conv2dNormActivation(in_channels, in_channels, 3, stride=stride, groups=in_channels, activation_layer=None),
        Conv2dNormActivation(in_channels, out_channels, 1, activation_layer=nn.ReLU),
    )


class SSDLiteFeatures(nn.Module):
    """The six maps SSDLite predicts from: two backbone stages, then the extra levels.

    ``extra_channels``: widths of the stride-2 separable blocks, then of the pooled level's 1x1
    conv (no norm, ReLU). The frozen part of the backbone stays in eval mode while training.
    """

    def __init__(
        self, body: EdgeNeXtFeatures, extra_channels: Sequence[int], *, freeze_backbone: bool = False, freeze_stages: int = 0
    ) -> None:
        super().__init__()
        if len(extra_channels) < 1:
            raise ValueError("extra_channels must name at least the pooled level's width")
        self.body = body
        blocks: list[nn.Module] = []
        in_channels = body.channels[-1]
        for out_channels in extra_channels[:-1]:
            blocks.append(separable_block(in_channels, out_channels))
            in_channels = out_channels
        blocks.append(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(1),
                Conv2dNormActivation(in_channels, extra_channels[-1], 1, norm_layer=None, bias=False, activation_layer=nn.ReLU),
            )
        )
        self.extra = nn.ModuleList(blocks)
        _xavier(self.extra)
        self.out_channels = [*body.channels, *extra_channels]
        self.freeze_backbone, self.freeze_stages = freeze_backbone, freeze_stages
        freeze(frozen_parts(body, freeze_backbone, freeze_stages))

    def train(self, mode: bool = True) -> "SSDLiteFeatures":
        super().train(mode)
        keep_frozen_in_eval(frozen_parts(self.body, self.freeze_backbone, self.freeze_stages))
        return self

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        maps = self.body(x)
        y = maps[-1]
        for block in self.extra:
            y = block(y)
            maps.append(y)
        return OrderedDict((str(i), m) for i, m in enumerate(maps))

    def map_sizes(self, image_size: InputSize) -> list[tuple[int, int]]:
        """``(height, width)`` of each level for an input of ``image_size``, without running it."""
        if hasattr(self.body, "out_map_sizes"):  # a timm backbone (the bench's MobileViT) knows its own
            sizes = self.body.out_map_sizes(image_size)
        else:
            stages = stage_map_sizes(image_size, len(self.body.stages), self.body.reductions[-1])
            sizes = [stages[i] for i in self.body.out_indices]
        h, w = sizes[-1]
        for _ in range(len(self.extra) - 1):
            h, w = (h + 1) // 2, (w + 1) // 2  # 3x3 conv, stride 2, padding 1
            sizes.append((h, w))
        sizes.append((1, 1))
        return sizes


class SSDLiteHead(nn.Module):
    """Per level: [1x1 projection + BN + ReLU], depth-wise 3x3 + BN, 1x1 conv to anchors x (4 + classes).

    A level with kernel size 1 (the pooled one) has just the 1x1 prediction conv. Returns the
    dict torchvision's ``SSD`` expects: ``bbox_regression (N, A, 4)`` and ``cls_logits (N, A, C)``,
    anchors ordered by level, then row, column and anchor (``DefaultBoxGenerator``'s order).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        proj_channels: Sequence[int],
        num_anchors: Sequence[int],
        num_classes: int,
        kernel_sizes: Sequence[int],
    ) -> None:
        super().__init__()
        if not len(in_channels) == len(proj_channels) == len(num_anchors) == len(kernel_sizes):
            raise ValueError(
                f"one entry per level: in_channels={tuple(in_channels)}, proj_channels={tuple(proj_channels)}, "
                f"num_anchors={tuple(num_anchors)}, kernel_sizes={tuple(kernel_sizes)}"
            )
        self.num_classes = num_classes
        levels = []
        for c_in, c_proj, anchors, k in zip(in_channels, proj_channels, num_anchors, kernel_sizes):
            outputs = anchors * (BOX_DIMS + num_classes)
            if k == 1:
                levels.append(nn.Conv2d(c_in, outputs, 1))
                continue
            layers: list[nn.Module] = []
            if c_proj != c_in:
                layers.append(Conv2dNormActivation(c_in, c_proj, 1, activation_layer=nn.ReLU))
            layers += [
                Conv2dNormActivation(c_proj, c_proj, k, groups=c_proj, activation_layer=None),
                nn.Conv2d(c_proj, outputs, 1),
            ]
            levels.append(nn.Sequential(*layers))
        self.levels = nn.ModuleList(levels)
        _xavier(self)

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        per_level = []
        for x, level in zip(features, self.levels):
            y = level(x).permute(0, 2, 3, 1)  # (N, H, W, A_l * (4 + C))
            per_level.append(y.reshape(y.shape[0], -1, BOX_DIMS + self.num_classes))  # (N, H * W * A_l, 4 + C)
        out = torch.cat(per_level, dim=1)
        return {"bbox_regression": out[..., :BOX_DIMS], "cls_logits": out[..., BOX_DIMS:]}


class SSDLite(SSD):
    """torchvision's ``SSD`` over ``SSDLiteFeatures`` and ``SSDLiteHead`` (see the module docstring)."""

    def __init__(
        self,
        features: SSDLiteFeatures,
        head: SSDLiteHead,
        anchor_generator: DefaultBoxGenerator,
        *,
        image_size: tuple[int, int],
        num_classes: int,
        score_thresh: float,
        nms_thresh: float,
        detections_per_class: int,
        detections_per_img: int,
        topk_candidates: int,
        iou_thresh: float,
    ) -> None:
        height, width = image_size
        # NOTE: SSD's size is (width, height); its transform resizes every image to it exactly.
        super().__init__(
            features,
            anchor_generator,
            (width, height),
            num_classes,
            image_mean=list(IMAGENET_MEAN),
            image_std=list(IMAGENET_STD),
            head=head,
            score_thresh=score_thresh,
            nms_thresh=nms_thresh,
            detections_per_img=detections_per_img,
            iou_thresh=iou_thresh,
            topk_candidates=topk_candidates,
            positive_fraction=0.25,  # 3 hard negatives per positive
        )
        self.image_size = (height, width)
        self.num_classes = num_classes
        self.detections_per_class = detections_per_class

    def selection(self) -> dict[str, float]:
        """The post-processing settings the eval-mode model applies (``select_detections``'s keywords)."""
        return dict(score_thresh=float(self.score_thresh), nms_thresh=float(self.nms_thresh),
                    detections_per_class=int(self.detections_per_class),
                    detections_per_img=int(self.detections_per_img), topk_candidates=int(self.topk_candidates))

    def postprocess_detections(self, head_outputs: dict[str, torch.Tensor], image_anchors: list[torch.Tensor],
                               image_shapes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        # NOTE: overrides torchvision's (a per-image cap after NMS over all classes) with ml-cvnets'
        # per-class cap after NMS; called by SSD.forward in eval mode, before boxes are mapped back
        probs = head_outputs["cls_logits"].softmax(dim=-1)
        settings = self.selection()
        found = []
        for codes, scores, anchors, shape in zip(head_outputs["bbox_regression"], probs, image_anchors, image_shapes):
            boxes = clip_boxes_to_image(self.box_coder.decode_single(codes, anchors), shape)
            found.append(select_detections(boxes, scores, **settings))
        return found

    def anchors(self, image_size: Optional[InputSize] = None) -> torch.Tensor:
        """The anchors ``(A, 4)``, ``(x1, y1, x2, y2)`` in pixels of a ``image_size`` input (default: the model's)."""
        h, w = input_hw(image_size) if image_size is not None else self.image_size
        device = next(self.parameters()).device
        images = ImageList(torch.empty(1, 0, h, w, device=device), [(h, w)])
        maps = [torch.empty(1, 0, fh, fw, device=device) for fh, fw in self.backbone.map_sizes((h, w))]
        return self.anchor_generator(images, maps)[0]


#: the names of ``SSDLiteRaw``'s outputs in an exported file
RAW_OUTPUT_NAMES = ("boxes", "scores")


class SSDLiteRaw(nn.Module):
    """The network of an ``SSDLite`` with box decoding and softmax, for export (no NMS).

    Takes ``(N, 3, H, W)`` RGB images in [0, 1] already at the model's ``image_size`` and
    returns ``boxes (N, A, 4)``, ``(x1, y1, x2, y2)`` in input pixels and clipped to the image,
    and ``scores (N, A, C)``, softmax over the classes (column 0: background). Apply
    ``postprocess_detections`` to these to get the eval-mode detections.
    """

    def __init__(self, model: SSDLite) -> None:
        super().__init__()
        self.image_size = model.image_size
        self.normalize = Normalize()
        self.backbone = model.backbone
        self.head = model.head
        self.box_coder = model.box_coder
        self.register_buffer("anchors", model.anchors().detach().clone(), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not torch.jit.is_tracing() and tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(
                f"SSDLiteRaw was built for {self.image_size[0]}x{self.image_size[1]} inputs, got shape "
                f"{tuple(images.shape)}: resize the images first"
            )
        out = self.head(list(self.backbone(self.normalize(images)).values()))
        n = images.shape[0]
        codes = out["bbox_regression"].reshape(-1, BOX_DIMS)  # (N * A, 4)
        anchors = self.anchors.unsqueeze(0).expand(n, -1, -1).reshape(-1, BOX_DIMS)  # (N * A, 4)
        boxes = self.box_coder.decode_single(codes, anchors).reshape(n, -1, BOX_DIMS)  # (N, A, 4)
        boxes = clip_boxes_to_image(boxes, self.image_size)
        return boxes, out["cls_logits"].softmax(dim=-1)


ArrayLike = Union[torch.Tensor, np.ndarray]

#: ml-cvnets v0.1's detection post-processing, the COCO recipe's (cvnets/models/detection/ssd.py:
#: ``--model.detection.ssd.conf-threshold`` 0.05 at line 176, ``num-objects-per-class`` 200 at line 178,
#: applied per class after NMS in ``predict``, lines 258-271, with no per-image cap; the NMS IoU is the
#: config's ``nms_iou_threshold: 0.5``, config/detection/ssd_mobilevit_small_320.yaml line 56)
SCORE_THRESH = 0.05
NMS_THRESH = 0.5
DETECTIONS_PER_CLASS = 200


def select_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    *,
    score_thresh: float = SCORE_THRESH,
    nms_thresh: float = NMS_THRESH,
    detections_per_class: int = DETECTIONS_PER_CLASS,
    detections_per_img: int = 0,
    topk_candidates: int = 0,
) -> dict[str, torch.Tensor]:
    """One image's detections from decoded ``boxes (A, 4)`` and class probabilities ``scores (A, C)``
    (column 0: the background, never reported).

    Per class: the scores above ``score_thresh`` (the best ``topk_candidates`` of them when > 0),
    NMS at IoU ``nms_thresh``, the best ``detections_per_class`` survivors (0: all); then the best
    ``detections_per_img`` over all classes (0: all). Sorted by score, best first.
    """
    score = scores[:, 1:]
    labels = torch.arange(1, scores.shape[1], device=scores.device).expand_as(score)
    anchor = torch.arange(scores.shape[0], device=scores.device)[:, None].expand_as(score)
    keep = score > score_thresh
    score, labels, anchor = score[keep], labels[keep], anchor[keep]
    if topk_candidates > 0:
        chosen = [torch.nonzero(labels == c).flatten() for c in labels.unique()]
        chosen = [idx[score[idx].topk(min(topk_candidates, idx.numel())).indices] for idx in chosen]
        pick = torch.cat(chosen) if chosen else labels.new_zeros(0)
        score, labels, anchor = score[pick], labels[pick], anchor[pick]
    box = boxes[anchor]
    kept = batched_nms(box, score, labels, nms_thresh)  # best first
    if detections_per_class > 0 and kept.numel():
        kept_labels = labels[kept]
        # rank of each survivor within its class (kept is sorted by score): a running count per class
        onehot = torch.nn.functional.one_hot(kept_labels, int(kept_labels.max()) + 1)
        rank = (onehot.cumsum(0) * onehot).sum(1) - 1
        kept = kept[rank < detections_per_class]
    if detections_per_img > 0:
        kept = kept[:detections_per_img]
    return {"boxes": box[kept], "scores": score[kept], "labels": labels[kept]}


def postprocess_detections(
    boxes: ArrayLike,
    scores: ArrayLike,
    score_thresh: float = SCORE_THRESH,
    nms_thresh: float = NMS_THRESH,
    detections_per_class: int = DETECTIONS_PER_CLASS,
    detections_per_img: int = 0,
    topk_candidates: int = 0,
) -> list[dict[str, torch.Tensor]]:
    """Detections from ``SSDLiteRaw``'s outputs (torch or numpy, e.g. from ONNX Runtime).

    ``boxes (N, A, 4)`` / ``scores (N, A, C)`` (or one image's ``(A, 4)`` / ``(A, C)``), then
    ``select_detections`` per image with these settings: what the eval-mode model does with the
    same settings, so the results are the same.
    """
    boxes_t, scores_t = torch.as_tensor(boxes), torch.as_tensor(scores)
    if boxes_t.dim() == 2:
        boxes_t, scores_t = boxes_t[None], scores_t[None]
    if boxes_t.dim() != 3 or boxes_t.shape[-1] != BOX_DIMS or scores_t.shape[:2] != boxes_t.shape[:2]:
        raise ValueError(
            f"expected boxes (N, A, 4) and scores (N, A, C) for the same anchors, got {tuple(boxes_t.shape)} and "
            f"{tuple(scores_t.shape)}"
        )
    settings = dict(score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_class=detections_per_class,
                    detections_per_img=detections_per_img, topk_candidates=topk_candidates)
    return [select_detections(b, s, **settings) for b, s in zip(boxes_t, scores_t)]


def ssdlite(
    backbone: str = "edgenext_small",
    num_classes: int = COCO_NUM_CLASSES,
    *,
    backbone_weights: BackboneWeights = None,
    image_size: InputSize = DETECTION_INPUT_SIZE,
    freeze_backbone: bool = False,
    freeze_stages: int = 0,
    drop_path_rate: float = 0.0,
    proj_channels: Sequence[int] = SSD_PROJ_CHANNELS,
    score_thresh: float = SCORE_THRESH,
    nms_thresh: float = NMS_THRESH,
    detections_per_class: int = DETECTIONS_PER_CLASS,
    detections_per_img: int = 0,
    topk_candidates: int = 0,
    iou_thresh: float = 0.5,
    backbone_kwargs: Optional[dict] = None,
) -> SSDLite:
    """SSDLite on an EdgeNeXt variant, ml-cvnets v0.1's layout (3,232 anchors at 320x320).

    Args:
        backbone: any registered variant.
        num_classes: object classes + 1: label 0 is the background (COCO: 81).
        backbone_weights: ImageNet initialisation: a path, URL or ``hf-hub:`` name in any format
            ``create_model(weights=...)`` reads; its classifier is not used.
        image_size: the side (or ``(height, width)``) every image is resized to.
        freeze_backbone: no training for the whole backbone; ``freeze_stages``: for its stem
            and first n stages only. Frozen parts also keep their BatchNorm statistics.
        drop_path_rate: the backbone's stochastic depth.
        backbone_kwargs: architecture overrides of the variant (``create_model``'s, e.g. ``depths``).
        proj_channels: width of each of the six levels (the extra levels are built at it).
        score_thresh, nms_thresh, detections_per_class, detections_per_img, topk_candidates: eval-mode
            post-processing (``select_detections``; 0 = no cap). The defaults are ml-cvnets v0.1's:
            scores > 0.05, NMS at 0.5, 200 per class after NMS, no per-image or pre-NMS cap.
        iou_thresh: anchor / ground-truth IoU for a positive match (training).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes} must count the background and at least one object class")
    proj_channels = tuple(int(c) for c in proj_channels)
    if len(proj_channels) != len(SSD_ASPECT_RATIOS):
        raise ValueError(f"proj_channels needs {len(SSD_ASPECT_RATIOS)} widths (one per level), got {proj_channels}")
    size = input_hw(image_size)
    body = build_backbone(backbone, out_indices=(2, 3), weights=backbone_weights, drop_path_rate=drop_path_rate,
                          backbone_kwargs=backbone_kwargs)
    features = SSDLiteFeatures(body, proj_channels[2:], freeze_backbone=freeze_backbone, freeze_stages=freeze_stages)
    num_levels = len(proj_channels)
    scales = [float(s) for s in np.linspace(SSD_MIN_SCALE, SSD_MAX_SCALE, num_levels + 1)]
    anchor_generator = DefaultBoxGenerator([list(r) for r in SSD_ASPECT_RATIOS], scales=scales, clip=True)
    head = SSDLiteHead(
        features.out_channels,
        proj_channels,
        anchor_generator.num_anchors_per_location(),
        num_classes,
        kernel_sizes=(3,) * (num_levels - 1) + (1,),
    )
    return SSDLite(
        features,
        head,
        anchor_generator,
        image_size=size,
        num_classes=num_classes,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_class=detections_per_class,
        detections_per_img=detections_per_img,
        topk_candidates=topk_candidates,
        iou_thresh=iou_thresh,
    )
