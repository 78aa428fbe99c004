import pytest
import torch
import torch.nn.functional as F

from edgenext import EdgeNeXt
from edgenext.deploy.calibration import calibration_tensor, digits_tensors, top1

DIGITS_SIZE = 32
DIGITS_CROP = 1.0  # the digits recipe's evaluation crop: the whole digit


@pytest.fixture(scope="session")
def digits_model():
    """``(model, calibration, x_val, y_val, fp32_top1)``: a small EdgeNeXt trained for a few
    seconds on scikit-learn's digits (32x32 RGB), its calibration images (training split) and
    the validation split."""
    torch.manual_seed(0)
    x_train, y_train = digits_tensors("train", DIGITS_SIZE, crop_pct=DIGITS_CROP)
    x_val, y_val = digits_tensors("val", DIGITS_SIZE, crop_pct=DIGITS_CROP)
    model = EdgeNeXt(depths=(1, 1, 2, 1), dims=(16, 32, 48, 64), heads=(2, 2, 2, 2), num_classes=10)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.05)
    model.train()
    for _ in range(2):
        order = torch.randperm(len(y_train))
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    accuracy = top1(model, x_val, y_val)
    assert accuracy > 80.0, f"the digits model did not train ({accuracy:.1f}%)"
    return model, calibration_tensor("digits", DIGITS_SIZE, limit=64, crop_pct=DIGITS_CROP), x_val, y_val, accuracy
