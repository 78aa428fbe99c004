"""Paper figures and fixed settings of the dense-prediction models (one source of truth)."""

from __future__ import annotations

#: The sizes each task is measured at (paper Sec. 4.2 / 4.3, ml-cvnets v0.1's recipes) and the class
#: counts of the papers' datasets, background included (COCO's 80 + 1, VOC's 20 + 1): defined in
#: ``edgenext.constants`` (the task registry reads them without importing dense code), one value each.
from ..constants import COCO_NUM_CLASSES, DETECTION_INPUT_SIZE, SEGMENTATION_INPUT_SIZE, VOC_NUM_CLASSES  # noqa: E402,F401

#: Parameters and multiply-adds the paper reports for SSDLite on COCO at 320 (reference/paper.md), by backbone.
PAPER_SSDLITE = {
    "edgenext_small": dict(params=6.2e6, madds=2.1e9, box_map=27.9),
    "mobilevit_s": dict(params=5.7e6, madds=3.4e9, box_map=27.7),
}
#: ... and for DeepLabv3 on Pascal VOC at 512, by backbone.
PAPER_DEEPLABV3 = {
    "edgenext_small": dict(params=6.5e6, madds=8.7e9, miou=80.2),
    "mobilevit_s": dict(params=6.4e6, madds=13.7e9, miou=79.1),
}

#: ml-cvnets v0.1's SSDLite layout (config/detection/ssd_mobilevit_small_320.yaml).
SSD_OUTPUT_STRIDES = (16, 32, 64, 128, 256, -1)
SSD_PROJ_CHANNELS = (512, 256, 256, 128, 128, 64)
SSD_ASPECT_RATIOS = ((2, 3), (2, 3), (2, 3), (2, 3), (2, 3), (2,))
SSD_MIN_SCALE, SSD_MAX_SCALE = 0.1, 1.05
#: SSD's box-coding variances 0.1 (centre) and 0.2 (size), as torchvision's BoxCoder weights.
SSD_BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)

#: DeepLabv3's atrous rates at output stride 16 (doubled at 8).
ASPP_RATES = (6, 12, 18)
