"""The export formats are a registry: a format registered from outside the package exports
through ``edgenext export``, listing the formats imports no optional runtime, and an unsupported
format x precision fails before any work. (That deploy/ has no import cycle and the registry
imports no format: ``tests/packaging/test_imports.py``, over the whole package.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
import torch

import edgenext
from edgenext.cli.main import main
from edgenext.deploy.formats import FORMATS, PRECISIONS, ExportFormat, export_format, register, unregister

SIZE = 64
#: the packages of the optional runtimes and their int8 paths
OPTIONAL_RUNTIMES = ("onnxruntime", "onnx", "onnxscript", "onnxslim", "openvino", "nncf", "executorch", "torchao",
                     "coremltools")


def test_listing_formats_imports_no_optional_runtime():
    code = f"""
import sys
from edgenext.deploy.formats import FORMATS, PRECISIONS
from edgenext.deploy.request import precision_unavailable
from edgenext.bench.candidates import OUR_RUNTIMES, runtime_available
rows = [(f.name, f.installed, [precision_unavailable(f.name, p) for p in PRECISIONS]) for f in FORMATS.values()]
available = [runtime_available(r) for r in OUR_RUNTIMES]
optional = {OPTIONAL_RUNTIMES!r}
print(sorted(m for m in sys.modules if m.split(".")[0] in optional))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"listing the formats imported {out.strip()}"


# registering a format


def test_register_refuses_a_taken_name_and_a_format_without_fp32():
    onnx = export_format("onnx")
    with pytest.raises(ValueError, match="already registered"):
        register(onnx)
    with pytest.raises(ValueError, match="must start with fp32"):
        ExportFormat("toy", ".toy", None, "torch", onnx.writer, onnx.runner, precisions=("int8",))
    with pytest.raises(ValueError, match="unknown export format 'toy': choose one of onnx"):
        unregister("toy")
    assert list(FORMATS)[:2] == ["onnx", "executorch"]  # listing order: the formats' ``order``


def _write_exported_program(model: torch.nn.Module, output: Path, *, input_size: tuple[int, int],
                            batch: Optional[int], precision: str = "fp32",
                            calibration: Optional[torch.Tensor] = None) -> Path:
    x = torch.randn(batch or 2, getattr(model, "in_chans", 3), *input_size)
    dynamic = None if batch else ({0: torch.export.Dim("batch", min=1, max=64)},)
    with torch.no_grad():
        torch.export.save(torch.export.export(model.eval(), (x,), dynamic_shapes=dynamic, strict=False), output)
    return output


class _ExportedProgramRunner:
    def __init__(self, path: Path, *, threads: Optional[int] = None, precision: str = "fp32") -> None:
        self.module = torch.export.load(path).module()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(x)


@pytest.fixture
def toy_format():
    """A format this file alone defines: ``torch.export.save`` of the graph, run by ``torch.export.load``."""
    fmt = register(ExportFormat("toy-pt2", ".pt2", None, "torch", _write_exported_program, _ExportedProgramRunner))
    yield fmt
    unregister(fmt.name)


def test_a_format_registered_from_outside_exports_through_the_cli(toy_format, tmp_path, capsys):
    out = tmp_path / "m.pt2"
    assert main(["export", "--model", "edgenext_xx_small", "--format", toy_format.name, "--output", str(out),
                 "--input-size", str(SIZE)]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"{toy_format.name}: {out}") and "max |exported - eager|" in line
    assert float(line.split("max |exported - eager| = ")[1].split()[0]) < 1e-4  # (--json: test_export.py)
    assert torch.export.load(out).module()(torch.randn(1, 3, SIZE, SIZE)).shape == (1, 1000)


def test_an_unsupported_precision_fails_before_any_work(tmp_path, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("a model was built or calibration images loaded before the request was validated")

    monkeypatch.setattr(edgenext.EdgeNeXt, "__init__", no_work)
    monkeypatch.setattr("edgenext.deploy.calibration.calibration_tensor", no_work)
    monkeypatch.setattr("edgenext.deploy.calibration.digits_tensors", no_work)
    rc = main(["export", "--model", "edgenext_xx_small", "--format", "torchscript", "--precision", "int8",
               "--output", str(tmp_path / "m.pt"), "--input-size", str(SIZE)])
    err = capsys.readouterr().err
    assert rc == 2 and "--format torchscript cannot write --precision int8" in err
    writers = err.split("int8 is written by")[1]
    assert all(name in writers for name in ("onnx", "executorch", "openvino")), err
    assert [name for name in PRECISIONS if name != "fp32"] == ["fp16", "bf16", "int8"]
    assert list(tmp_path.iterdir()) == []


def test_writers_run_with_fewer_garbage_collections_and_the_collector_is_restored(tmp_path):
    import gc

    from edgenext.deploy.export import export_model
    from edgenext.deploy.formats.registry import CONVERTER_GC_THRESHOLD

    seen = []

    def writer(model, output, **options):
        seen.append(gc.get_threshold())
        if options["precision"] == "fp16":
            raise RuntimeError("the converter failed")
        return _write_exported_program(model, output, **options)

    fmt = register(ExportFormat("gc-pt2", ".pt2", None, "torch", writer, _ExportedProgramRunner,
                                precisions=("fp32", "fp16")))
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    try:
        model = edgenext.create_model("edgenext_xx_small", num_classes=10, depths=(1, 1, 1, 1))
        result = export_model(model, fmt.name, tmp_path / "m.pt2", input_size=32)
        assert result.max_abs_diff < 1e-4
        with pytest.raises(RuntimeError, match="the converter failed"):
            fmt.write(model, tmp_path / "f.pt2", input_size=(32, 32), batch=1, precision="fp16")
        assert [t[0] for t in seen] == [CONVERTER_GC_THRESHOLD] * 2 and all(t[1:] == before[1:] for t in seen)
        assert gc.get_threshold() == (700, *before[1:])  # as it was, after a success and after a failure
    finally:
        gc.set_threshold(*before)
        unregister(fmt.name)
