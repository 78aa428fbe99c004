"""Every installed export format round-trips within 1e-4 of eager PyTorch (xx_small and a
bn_hs variant); missing optional packages fail with the extra to install."""

import json

import pytest
import torch

from edgenext.cli.main import main
from edgenext.deploy.common import MissingExtraError, is_installed, require
from edgenext.deploy.export import SUFFIXES, ParityError, export_model

# the package each format needs; TorchScript needs only torch
NEEDS = {"onnx": "onnxruntime", "torchscript": "torch", "executorch": "executorch", "openvino": "openvino",
         "coreml": "coremltools"}
SIZE = 32  # the smallest input EdgeNeXt takes: exports and runtimes stay fast


def _installed(fmt):
    return pytest.mark.skipif(not is_installed(NEEDS[fmt]), reason=f"{NEEDS[fmt]} is not installed")


FORMATS = [pytest.param(f, marks=[_installed(f)] + ([pytest.mark.slow] if f in ("executorch", "coreml") else []))
           for f in NEEDS]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, cached_model):
    """``exported(fmt, name)``: the export result, made once per module (exports are slow)."""
    cache = {}

    def get(fmt, name):
        if (fmt, name) not in cache:
            out = tmp_path_factory.mktemp(f"{fmt}-{name}") / f"model{SUFFIXES[fmt]}"
            cache[fmt, name] = export_model(cached_model(name, 10), fmt, out, input_size=SIZE)
        return cache[fmt, name]

    return get


@pytest.mark.parametrize("name", ["edgenext_xx_small", "edgenext_xx_small_bn_hs"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_export_round_trip(fmt, name, exported):
    result = exported(fmt, name)
    assert result.size_bytes > 100_000
    if fmt == "coreml" and result.max_abs_diff is None:  # off macOS: structural check only
        assert "structural" in result.check and [1, 10] in result.details["shapes"].values()
        return
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    assert "max |exported - eager|" in result.parity_line()


@_installed("onnx")
def test_onnx_graph_is_dynamic_batch_and_new_opset(exported):
    import onnx

    from edgenext.deploy.onnx import OrtModel

    path = exported("onnx", "edgenext_xx_small").path
    graph = onnx.load(path)
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    out = OrtModel(path)(torch.randn(5, 3, SIZE, SIZE))
    assert out.shape == (5, 10)


def test_parity_failure_is_loud(tmp_path, cached_model, monkeypatch):
    import edgenext.deploy.export as export_mod

    model = cached_model("edgenext_xx_small", 10)

    class Broken:
        def __init__(self, path):
            pass

        def __call__(self, x):
            return model(x) + 1e-3

    writer, _ = export_mod._writer_and_runner("torchscript")
    monkeypatch.setattr(export_mod, "_writer_and_runner", lambda fmt: (writer, Broken))
    with pytest.raises(ParityError, match="differs from eager"):
        export_model(model, "torchscript", tmp_path / "m.pt", input_size=SIZE)


def test_missing_package_names_the_extra(monkeypatch):
    with pytest.raises(MissingExtraError, match=r'pip install "edgenext\[executorch\]"'):
        require("surely_not_a_module_xyz", "executorch", "ExecuTorch export")


def test_bad_format_and_batch(tmp_path, cached_model):
    model = cached_model("edgenext_xx_small", 10)
    with pytest.raises(ValueError, match="unknown export format"):
        export_model(model, "tflite", tmp_path / "m.tflite")
    with pytest.raises(ValueError, match="batch"):
        export_model(model, "onnx", tmp_path / "m.onnx", batch=0)


def test_cli_export_prints_parity_line(tmp_path, capsys):
    out = tmp_path / "m.pt"
    rc = main(["export", "--model", "edgenext_xx_small", "--num-classes", "10", "--format", "torchscript",
               "--output", str(out), "--input-size", str(SIZE), "--batch", "2", "--json"])
    assert rc == 0 and out.exists()
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "torchscript" and result["max_abs_diff"] < 1e-4


def test_cli_export_reports_errors(tmp_path, capsys):
    rc = main(["export", "--model", "edgenext_xx_small", "--format", "openvino", "--output", str(tmp_path / "m.onnx"),
               "--input-size", str(SIZE)])
    if is_installed("openvino"):
        assert rc == 2 and ".xml" in capsys.readouterr().err
