"""int8 post-training quantisation of a quickly trained digits model keeps its accuracy."""

import pytest
import torch

from edgenext.data import DigitsDataset, eval_transform_factory, load_image
from edgenext.deploy import fuse
from edgenext.deploy.calibration import calibration_tensor, top1
from edgenext.deploy.formats import FORMATS

SIZE = 32
CROP = 1.0  # the digits recipe's evaluation crop: the whole digit
#: stated margin: int8 may lose at most this many top-1 points on the digits validation split
#: (360 images: one image is 0.28 points). The benchmark's full-size model loses < 1 point.
MARGIN = 2.0


@pytest.mark.skipif(not FORMATS["onnx"].installed, reason="onnxruntime is not installed")
def test_onnxruntime_static_int8_keeps_accuracy(digits_model, tmp_path):
    """Static QDQ (the default, dynamic int8, and the other runtimes: test_precision.py)."""
    import onnx

    from edgenext.deploy.formats.onnx import OnnxRunner, export_onnx, quantize_onnx

    model, calib, x_val, y_val, fp32 = digits_model
    fp32_path = export_onnx(fuse(model, SIZE), tmp_path / "fp32.onnx", input_size=(SIZE, SIZE))
    int8_path = quantize_onnx(fp32_path, tmp_path / "int8.onnx", calib, method="static")
    ops = {n.op_type for n in onnx.load(str(int8_path)).graph.node}
    assert "DequantizeLinear" in ops
    assert int8_path.stat().st_size < 0.6 * fp32_path.stat().st_size  # int8 weights
    int8 = top1(OnnxRunner(int8_path), x_val, y_val)
    assert int8 >= fp32 - MARGIN, f"int8 {int8:.2f}% vs fp32 {fp32:.2f}%"


def test_digits_calibration_is_the_training_split_preprocessed_for_evaluation():
    """The data module's split (so a digits run's validation images are never calibrated on) and
    its evaluation transform, image for image."""
    calib = calibration_tensor("digits", (SIZE, 48), limit=20, crop_pct=CROP)
    assert calib.shape == (20, 3, SIZE, 48) and calib.dtype == torch.float32
    train = DigitsDataset("train")  # no transform: the PIL images
    transform = eval_transform_factory(crop_pct=CROP)((SIZE, 48))
    expected = torch.stack([transform(train.images[i]) for i in range(20)])
    assert torch.equal(calib, expected)


def test_calibration_from_an_image_folder(image_folder):
    x = calibration_tensor(image_folder, input_size=SIZE, limit=5)
    assert x.shape == (5, 3, SIZE, SIZE) and x.dtype == torch.float32
    first = sorted(p for p in image_folder.rglob("*.png"))[0]
    assert torch.equal(x[0], eval_transform_factory()((SIZE, SIZE))(load_image(first)))
    (image_folder / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        calibration_tensor(image_folder / "empty", input_size=SIZE)
