"""The price of a reduced-precision dense export: box mAP and mIoU of eager and export on the same
scenes, from networks whose answers are known (an oracle and a damaged oracle)."""

import pytest
import torch
from torch import nn

from edgenext.deploy.dense_precision import (DenseAccuracy, DenseCheck, digit_scene_calibration, digit_scene_check,
                                             measure_dense_precision)
from edgenext.deploy.result import ExportResult

SIDE = 64
CLASSES = 11


class BoxOracle(nn.Module):
    """A 'detector' that returns the ground truth of each scene (in order) as its only anchors' boxes,
    the true class at score 0.9, optionally shifted by ``shift`` pixels."""

    def __init__(self, targets, shift: float = 0.0) -> None:
        super().__init__()
        self.targets, self.shift, self.seen = targets, shift, 0

    def forward(self, images):
        n, anchors = len(images), max(len(t["labels"]) for t in self.targets)
        boxes = torch.zeros(n, anchors, 4)
        scores = torch.full((n, anchors, CLASSES), 0.01)
        scores[..., 0] = 1.0  # background wins where there is no object
        for row in range(n):
            target = self.targets[min(self.seen + row, len(self.targets) - 1)]  # padding: the last again
            k = len(target["labels"])
            boxes[row, :k] = torch.as_tensor(target["boxes"]).float() + self.shift
            scores[row, :k, 0] = 0.0
            scores[row, torch.arange(k), torch.as_tensor(target["labels"])] = 0.9
        self.seen += n
        return boxes, scores


class MaskOracle(nn.Module):
    """A 'segmenter' whose logits are the one-hot ground truth; ``flip`` pixels of each mask's first
    row turned to class 1."""

    def __init__(self, masks, flip: int = 0) -> None:
        super().__init__()
        self.masks, self.flip, self.seen = masks, flip, 0

    def forward(self, images):
        masks = self.masks[self.seen:self.seen + len(images)].clone()
        self.seen += len(images)
        masks[:, 0, :self.flip] = 1
        return torch.nn.functional.one_hot(masks, CLASSES).permute(0, 3, 1, 2).float()


def test_digit_scenes_give_the_check_and_the_calibration_at_the_export_size():
    check = digit_scene_check("detect", (SIDE, SIDE), {"digit_size": [16, 32]}, count=3)
    assert check.images.shape == (3, 3, SIDE, SIDE) and 0.0 <= check.images.min() and check.images.max() <= 1.0
    assert len(check.targets) == 3 and all(len(t["boxes"]) == len(t["labels"]) > 0 for t in check.targets)
    masks = torch.stack(digit_scene_check("segment", (32, 32), {"digit_size": [8, 16], "image_size": 64}, count=2).targets)
    assert masks.shape == (2, 32, 32) and masks.dtype == torch.int64  # rendered at 64, resized to 32
    calibration = digit_scene_calibration("segment", (SIDE, SIDE), count=4)
    assert calibration.shape == (4, 3, SIDE, SIDE)
    assert not torch.equal(calibration[:3], digit_scene_check("segment", (SIDE, SIDE), count=3).images)  # train split
    with pytest.raises(ValueError, match="square"):
        digit_scene_check("detect", (32, 48))


def test_box_map_of_an_oracle_and_of_its_shifted_export():
    check = digit_scene_check("detect", (SIDE, SIDE), {"digit_size": [16, 32]}, count=6)
    oracle, shifted = BoxOracle(check.targets), BoxOracle(check.targets, shift=6.0)
    accuracy = measure_dense_precision("detect", oracle, lambda x: shifted(x), "int8", check, batch=4)
    assert accuracy.fp32 == pytest.approx(100.0)
    assert 0.0 <= accuracy.export < 90.0 and accuracy.change == pytest.approx(accuracy.export - 100.0)
    assert shifted.seen == 8  # a static batch 4: the last chunk padded to 4, the padding's outputs dropped
    same = measure_dense_precision("detect", BoxOracle(check.targets), lambda x: BoxOracle(check.targets)(x), "fp16",
                                   check)
    assert same.change == 0.0 and same.pixel_agreement is None


def test_miou_and_pixel_agreement_of_an_oracle_and_its_damaged_export():
    check = digit_scene_check("segment", (SIDE, SIDE), {"digit_size": [16, 32]}, count=4)
    masks = torch.stack(check.targets)
    damaged = MaskOracle(masks, flip=16)
    accuracy = measure_dense_precision("segment", MaskOracle(masks), lambda x: (damaged(x),), "int8", check)
    assert accuracy.fp32 == pytest.approx(100.0) and accuracy.export < 100.0
    changed = int((masks[:, 0, :16] != 1).sum())  # the pixels the damage changed
    assert accuracy.pixel_agreement == pytest.approx(100.0 * (1 - changed / masks.numel()))


def test_the_report_round_trips_through_an_export_result():
    accuracy = DenseAccuracy("int8", "mIoU", 80.0, 79.5, 8, "digit-scene validation images", 99.5)
    result = ExportResult("onnx", "m.onnx", 1, 0.1, 1e-4, "batch 1", 0.0, precision="int8",
                          accuracy=accuracy.to_dict())
    lines = result.report_lines()
    assert lines[1] == ("int8 mIoU on 8 digit-scene validation images: 79.50 vs eager fp32 80.00 "
                        "(change -0.50 points)")
    assert lines[2] == "int8 pixels of the same class as eager fp32: 99.500%"
    assert DenseAccuracy.from_dict(result.to_dict()["accuracy"]) == accuracy


def test_only_dense_tasks_are_measured():
    check = DenseCheck(torch.zeros(1, 3, 8, 8), [], "none")
    with pytest.raises(ValueError, match="detect or segment"):
        measure_dense_precision("classify", nn.Identity(), lambda x: (x,), "int8", check)
