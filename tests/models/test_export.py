"""Every variant exports to ONNX (dynamic batch) and runs in ONNX Runtime like eager; tracing works."""

import warnings

import numpy as np
import pytest
import torch

import edgenext

ort = pytest.importorskip("onnxruntime")

SIZE = 64  # four stages of 16, 8, 4 and 2 pixels: every op of the network at a fraction of 256's cost


def _export(model, path, dynamo):
    # NOTE: torch.export specialises a dimension whose example size is 1, so trace batch 2
    x = torch.randn(2, 3, SIZE, SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=18, verbose=False,
                              input_names=["input"], output_names=["logits"],
                              dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=256)}})
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}})


def _check(model, path, shapes):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in shapes:
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4, shape


@pytest.mark.parametrize("name", edgenext.list_models())
def test_onnx_runtime_parity(name, cached_model, tmp_path):
    model = cached_model(name)
    _export(model, tmp_path / "m.onnx", dynamo=False)
    _check(model, tmp_path / "m.onnx", [(1, 3, SIZE, SIZE), (3, 3, SIZE, SIZE), (2, 3, SIZE, 3 * SIZE // 2)])


@pytest.mark.slow
def test_onnx_dynamo_exporter(cached_model, tmp_path):
    model = cached_model("edgenext_xx_small")
    _export(model, tmp_path / "m.onnx", dynamo=True)
    _check(model, tmp_path / "m.onnx", [(1, 3, SIZE, SIZE), (4, 3, SIZE, SIZE)])


@pytest.mark.parametrize("name", ["edgenext_xx_small", "edgenext_xx_small_bn_hs"])
def test_torchscript_trace(name, cached_model, tmp_path):
    model = cached_model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.randn(1, 3, SIZE, SIZE))
    traced.save(str(tmp_path / "m.pt"))
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=0)
