"""Data for detection and segmentation: COCO and VOC-style datasets, paired transforms,
collate functions, and the built-in digit scenes."""

from .coco import COCO2017_LAYOUT, CocoDetection, find_coco2017
from .collate import detection_collate, segmentation_collate
from .digit_scenes import DIGIT_CLASS_NAMES, DigitScenes
from .segmentation import (
    MASK_EXTENSIONS,
    VOC_CLASSES,
    MaskDataset,
    MaskFormatError,
    PairedSegmentation,
    VOCSegmentation,
    read_mask,
)
from .transforms import IGNORE_INDEX, DetectionTransform, SegmentationTransform, apply_transform, split_index

__all__ = [
    "COCO2017_LAYOUT",
    "CocoDetection",
    "DIGIT_CLASS_NAMES",
    "DetectionTransform",
    "DigitScenes",
    "IGNORE_INDEX",
    "MASK_EXTENSIONS",
    "MaskDataset",
    "MaskFormatError",
    "PairedSegmentation",
    "SegmentationTransform",
    "VOCSegmentation",
    "VOC_CLASSES",
    "apply_transform",
    "detection_collate",
    "find_coco2017",
    "read_mask",
    "segmentation_collate",
    "split_index",
]
