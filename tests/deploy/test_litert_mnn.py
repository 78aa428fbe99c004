"""LiteRT and MNN: detectors, segmenters and features_only backbones export, run in the engine and
equal eager PyTorch (1e-4); int8 files are int8 and keep the digits model's top-1. The classifier's
fp32 round trip is test_export.py's, which covers every registered format."""

import pytest
import torch

import edgenext
from edgenext.deploy import fuse
from edgenext.deploy.export import export_model, export_network
from edgenext.deploy.formats import FORMATS
from edgenext.deploy.calibration import top1
from edgenext.deploy.precision_accuracy import PrecisionCheck
from edgenext.tasks import get_task

TOL = 1e-4
#: LiteRT's converter cannot lower a 1x1 last stage (a 32 px input): its tests use 64 px
ENGINES = [pytest.param(f, marks=pytest.mark.skipif(not FORMATS[f].installed, reason=f"{f} is not installed"))
           for f in ("litert", "mnn")]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ENGINES)
@pytest.mark.parametrize("task", ["detect", "segment"])
def test_dense_exports_equal_the_unfused_model(task, fmt, tmp_path, dense_parity_model):
    model, size = dense_parity_model(task)
    result = get_task(task).export_model(model, fmt, tmp_path / f"model{FORMATS[fmt].suffix}", input_size=size)
    assert result.max_abs_diff is not None and result.max_abs_diff < TOL, result.check
    shapes = result.details["shapes"]
    if task == "detect":
        assert list(shapes) == ["boxes", "scores"] and shapes["scores"][2] == 4
    else:
        assert shapes["logits"] == [1, 4, 64, 64]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ENGINES)
def test_features_only_backbone_gives_its_four_maps(fmt, tmp_path, randomized):
    # one block per stage: the four maps are this test's subject (every block kind is the dense tests')
    backbone = randomized(edgenext.create_model("edgenext_xx_small", features_only=True, depths=(1, 1, 1, 1)))
    result = export_network(fuse(backbone, 64), fmt, tmp_path / f"f{FORMATS[fmt].suffix}", input_size=64,
                            output_names=("s1", "s2", "s3", "s4"), reference=backbone)
    assert result.max_abs_diff < TOL, result.check
    assert result.details["shapes"]["s1"] == [1, 24, 16, 16] and result.details["shapes"]["s4"] == [1, 168, 2, 2]


@pytest.fixture(scope="module")
def digits_64(tiny_digits):
    """``(model, calibration, x_val, y_val, fp32_top1)``: a small EdgeNeXt trained for a few seconds on
    scikit-learn's digits at 64 px (LiteRT's converter needs a last stage larger than 1x1)."""
    model, x_train, x_val, y_val = tiny_digits(64, (1, 1, 1, 1), (16, 24, 32, 48))
    fp32 = top1(model, x_val, y_val)
    assert fp32 > 70.0, f"the digits model did not train ({fp32:.1f}%)"
    return model, x_train[:64], x_val, y_val, fp32


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ENGINES)
def test_int8_is_smaller_and_keeps_the_digits_top1(fmt, digits_64, tmp_path):
    model, calib, x_val, y_val, fp32 = digits_64
    check = PrecisionCheck(x_val, "digits val", (x_val, y_val))
    out = tmp_path / f"m{FORMATS[fmt].suffix}"
    result = export_model(model, fmt, out, input_size=64, precision="int8", calibration=calib[:32], check=check)
    acc = result.accuracy
    print(f"{fmt} int8: digits top-1 {acc['digits_top1_fp32']:.2f} -> {acc['digits_top1_export']:.2f} "
          f"({acc['digits_top1_change']:+.2f}), agreement with fp32 {acc['agreement']:.1f}%")
    assert acc["digits_top1_fp32"] == pytest.approx(fp32)
    assert acc["digits_top1_change"] >= -2.0 and acc["agreement"] >= 90.0, acc
    if fmt == "litert":  # int8 kernels: the interpreter's tensors are int8
        from ai_edge_litert.interpreter import Interpreter

        dtypes = {d["dtype"].__name__ for d in Interpreter(model_path=str(out)).get_tensor_details()}
        assert "int8" in dtypes, dtypes


@pytest.mark.slow
@pytest.mark.skipif(not FORMATS["mnn"].installed, reason="MNN is not installed")
def test_mnn_int8_stores_int8_weights(tmp_path, cached_model, exported):
    model = cached_model("edgenext_xx_small", 10)
    # the fp32 file: conftest's session export of the same model (test_export.py's round trip checks it too)
    sizes = {"fp32": exported("mnn", "edgenext_xx_small", input_size=32).size_bytes,
             # batch 1: the weights' bytes do not depend on it, and a dynamic batch costs the ONNX step seconds
             "int8": export_model(model, "mnn", tmp_path / "int8.mnn", input_size=32, batch=1,
                                  precision="int8").size_bytes}
    assert sizes["int8"] < 0.45 * sizes["fp32"], sizes  # 1 byte per weight instead of 4, plus the graph


@pytest.mark.skipif(not FORMATS["litert"].installed, reason="ai_edge_litert is not installed")
def test_litert_names_the_size_its_converter_cannot_take(tmp_path, cached_model):
    with pytest.raises(ValueError, match="1x1 map.*64 px"):
        export_model(cached_model("edgenext_xx_small", 10), "litert", tmp_path / "m.tflite", input_size=32)


@pytest.mark.skipif(not FORMATS["mnn"].installed, reason="MNN is not installed")
def test_mnn_runs_any_batch_of_a_dynamic_file(cached_model, exported):
    model = cached_model("edgenext_xx_small", 10)
    result = exported("mnn", "edgenext_xx_small", input_size=32)  # the fp32 file test_export.py round-trips
    runner = FORMATS["mnn"].runner(result.path, threads=1)
    for batch in (1, 4):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            assert (runner(x) - model(x)).abs().max() < TOL
