"""Detection (SSDLite) and segmentation (DeepLabv3) with an EdgeNeXt backbone (paper Sec. 4.2-4.3).

Both models take RGB float images in [0, 1] (they normalise inside) and count the background
in ``num_classes`` (label 0): 81 for COCO, 21 for VOC. Data: ``edgenext.dense.data``; metrics:
``edgenext.dense.metrics``; training tasks: ``edgenext.dense.training``.
"""

from .data import CocoDetection, DigitScenes, PairedSegmentation, VOCSegmentation
from .deeplabv3 import DeepLabV3, deeplabv3, segmentation_loss
from .metrics import DetectionMetric, SegmentationMetric
from .ssdlite import SSDLite, SSDLiteRaw, postprocess_detections, ssdlite

__all__ = [
    "CocoDetection",
    "DeepLabV3",
    "DetectionMetric",
    "DigitScenes",
    "PairedSegmentation",
    "SSDLite",
    "SSDLiteRaw",
    "SegmentationMetric",
    "VOCSegmentation",
    "deeplabv3",
    "postprocess_detections",
    "segmentation_loss",
    "ssdlite",
]
