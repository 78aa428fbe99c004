"""Reduced precisions: which format writes which, why one is unavailable, int8/bf16 exports that
run and agree with fp32, the top-1 arithmetic, and the CLI's errors and report."""

import json
import sys
import xml.etree.ElementTree as ET

import pytest
import torch
from torch import nn

import edgenext.deploy.request as request_mod
from edgenext.cli.main import main
from edgenext.deploy.precision_accuracy import (
    PrecisionCheck,
    is_digits_run,
    measure_precision,
    predict_logits,
    top1_accuracy,
    top1_agreement,
)
from edgenext.deploy.export import export_model
from edgenext.deploy.formats import FORMATS, PRECISIONS
from edgenext.deploy.request import precision_unavailable, validate_export
from edgenext.deploy.formats.registry import is_present
from edgenext.optional import is_installed

SIZE = 32
#: int8 may lose at most this many top-1 points on the digits validation split (one image: 0.28)
MARGIN = 2.0
#: and must predict fp32's class on at least this share of the validation images
MIN_AGREEMENT = 90.0


def _installed(*modules):
    missing = [m for m in modules if not is_present(m)]  # found, not imported: collection stays light
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed")


def _bf16(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(request_mod, "native_bf16", lambda: (native, "this CPU has no native bf16 (test)"))


# precision_unavailable


def test_every_format_lists_fp32_and_only_known_precisions():
    for spec in FORMATS.values():
        assert spec.precisions[0] == "fp32" and set(spec.precisions) <= set(PRECISIONS)
    assert {p for spec in FORMATS.values() for p in spec.precisions} == set(PRECISIONS)


@pytest.mark.parametrize("fmt,precision", [("torchscript", "bf16"), ("torchscript", "int8"), ("coreml", "int8"),
                                           ("onnx", "bf16"), ("executorch", "bf16")])
def test_a_format_that_cannot_write_a_precision_says_which_can(fmt, precision):
    why = precision_unavailable(fmt, precision)
    assert why is not None and f"--format {fmt}" in why and f"--precision {precision}" in why
    assert all(f in why.split("written by")[1] for f, s in FORMATS.items() if precision in s.precisions)


@_installed("onnxruntime", "openvino", "nncf", "executorch")
def test_fp32_and_int8_are_available_where_installed():
    for fmt in ("onnx", "openvino", "executorch"):
        assert precision_unavailable(fmt, "fp32") is None and precision_unavailable(fmt, "int8") is None


@_installed("openvino")
def test_bf16_is_offered_only_with_native_bf16(monkeypatch):
    _bf16(monkeypatch, False)
    assert "no native bf16" in precision_unavailable("openvino", "bf16")
    _bf16(monkeypatch, True)
    assert precision_unavailable("openvino", "bf16") is None


def test_a_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert 'pip install "edgenext[onnx]"' in precision_unavailable("onnx", "int8")
    monkeypatch.setitem(sys.modules, "nncf", None)
    if is_installed("openvino"):
        why = precision_unavailable("openvino", "int8")
        assert "nncf" in why and 'pip install "edgenext[openvino]"' in why


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        precision_unavailable("onnx", "fp8")
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        precision_unavailable("tflite", "fp32")


def test_an_export_checks_its_precision_once_before_writing(tmp_path, cached_model):
    """``validate_export`` decides; ``export_model`` asks it before any work (writers trust it)."""
    model = cached_model("edgenext_xx_small", 10)
    with pytest.raises(ValueError, match="--precision bf16"):
        export_model(model, "onnx", tmp_path / "m.onnx", input_size=SIZE, precision="bf16")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"--precision int8 \(it writes fp32\); int8 is written by onnx"):
        validate_export("torchscript", "int8")
    with pytest.raises(ValueError, match="--task detect exports fp32 only"):
        validate_export("onnx", "int8", multi_output=True, precisions=("fp32",), task="detect")
    with pytest.raises(ValueError, match="--task detect exports to onnx, executorch, ") as err:
        validate_export("torchscript", multi_output=True, task="detect")
    assert all(f in str(err.value) for f in ("openvino", "litert", "ncnn", "mnn"))  # every multi-output format
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        validate_export("onnx", batch=0)
    assert validate_export("executorch").batch == 1 and validate_export("onnx").batch is None  # static: 1


# the top-1 arithmetic


class _Fixed(nn.Module):
    """Returns row i of ``logits`` for an input whose first pixel is i."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        return self.logits[x[:, 0, 0, 0].long()]


def _indexed(n: int) -> torch.Tensor:
    x = torch.zeros(n, 3, 4, 4)
    x[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32)
    return x


def test_agreement_and_accuracy_arithmetic():
    ref = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    cand = torch.tensor([[2.0, 0.0], [1.0, 0.0], [1.0, 0.5], [0.0, 3.0]])  # row 1 flips
    assert top1_agreement(ref, cand) == 75.0
    assert top1_accuracy(cand, torch.tensor([0, 1, 0, 0])) == 50.0
    with pytest.raises(ValueError, match="one shape"):
        top1_agreement(ref, cand[:3])


def test_measure_precision_on_a_fixture_with_known_answers():
    n = 10
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    fp32_logits = torch.nn.functional.one_hot(labels, 3).float()
    fp32_logits[9] = torch.tensor([0.0, 1.0, 0.0])  # fp32 wrong on image 9: 90% top-1
    export_logits = fp32_logits.clone()
    export_logits[3] = torch.tensor([0.0, 0.0, 1.0])  # the export changes two predictions:
    export_logits[9] = torch.tensor([1.0, 0.0, 0.0])  # one newly wrong, one newly right
    export_logits[4] = torch.tensor([0.0, 0.0, 1.0])  # and a third, newly wrong
    exported = _Fixed(export_logits)
    check = PrecisionCheck(_indexed(n), "fixture", (_indexed(n), labels))
    result = measure_precision(_Fixed(fp32_logits), exported, "int8", check, batch=4)
    assert result.agreement == 70.0 and result.agreement_images == n
    assert result.digits_top1_fp32 == 90.0 and result.digits_top1_export == 80.0
    assert result.digits_top1_change == pytest.approx(-10.0)
    assert set(exported.calls) == {4}  # a static-batch program only ever sees its batch
    assert "change -10.00 points" in result.lines()[0] and "70.00% of 10 images (fixture)" in result.lines()[1]
    assert result.to_dict()["digits_top1_change"] == pytest.approx(-10.0)


def test_predict_logits_pads_the_last_static_batch():
    model = _Fixed(torch.arange(14.0).reshape(7, 2))
    out = predict_logits(model, _indexed(7), batch=3)
    assert torch.equal(out, torch.arange(14.0).reshape(7, 2)) and model.calls == [3, 3, 3]


def test_a_digits_run_is_recognised_by_its_recorded_data():
    assert is_digits_run({"data": "digits", "model": "edgenext_xx_small"}, 10)
    assert not is_digits_run({"data": "/data/imagenet"}, 10)
    assert not is_digits_run({"data": "digits"}, 1000)
    assert not is_digits_run(None, 10)


# exports that run


def _check_int8(result, fp32_top1):
    acc = result.accuracy
    assert result.precision == "int8" and acc["agreement"] >= MIN_AGREEMENT, acc
    assert acc["digits_top1_fp32"] == pytest.approx(fp32_top1)
    assert acc["digits_top1_change"] >= -MARGIN, acc


INT8_FORMATS = [
    pytest.param("onnx", marks=_installed("onnxruntime")),
    pytest.param("openvino", marks=[_installed("openvino", "nncf"), pytest.mark.slow]),
    pytest.param("executorch", marks=[_installed("executorch"), pytest.mark.slow]),
]


def _has_int8(fmt, path, model, tmp_path) -> bool:
    """The file holds int8 arithmetic: its int8 ops, or (ExecuTorch) int8-sized weights: well under the
    fp32 weights' bytes."""
    if fmt == "onnx":
        import onnx

        return "MatMulInteger" in {n.op_type for n in onnx.load(str(path)).graph.node}
    if fmt == "openvino":
        return any(layer.attrib.get("type") == "FakeQuantize" for layer in ET.parse(path).getroot().iter("layer"))
    fp32_weight_bytes = 4 * sum(p.numel() for p in model.parameters())  # what an fp32 program holds, at least
    return path.stat().st_size < 0.6 * fp32_weight_bytes


@pytest.mark.parametrize("fmt", INT8_FORMATS)
def test_int8_export_runs_and_agrees_with_fp32(fmt, digits_model, tmp_path):
    model, calib, x_val, y_val, fp32 = digits_model
    check = PrecisionCheck(x_val, "digits val", (x_val, y_val))
    out = tmp_path / f"m{FORMATS[fmt].suffix}"
    result = export_model(model, fmt, out, input_size=SIZE, precision="int8", calibration=calib[:32], check=check)
    _check_int8(result, fp32)
    assert _has_int8(fmt, out, model, tmp_path)
    assert "fp32's tolerance does not apply" in result.parity_line()


@_installed("openvino")
def test_openvino_bf16_path_with_native_bf16_faked(digits_model, tmp_path, monkeypatch):
    """What we ask of OpenVINO, on any CPU: the IR records the bf16 hint and our runtime compiles with it.
    Whether the CPU plugin honours it is the CPU's say (the next test)."""
    import openvino as ov

    asked = []
    real_compile = ov.Core.compile_model

    def spy(core, model, device_name=None, config=None, **kwargs):
        asked.append(dict(config or {}))
        return real_compile(core, model, device_name, config, **kwargs)

    monkeypatch.setattr(ov.Core, "compile_model", spy)
    _bf16(monkeypatch, True)
    model, _, x_val, y_val, fp32 = digits_model
    out = tmp_path / "m.xml"
    # batch 1: what is asked does not depend on the batch, and a dynamic one doubles the conversion's time
    result = export_model(model, "openvino", out, input_size=SIZE, batch=1, precision="bf16",
                          check=PrecisionCheck(x_val[:64], "digits val"))
    assert result.precision == "bf16" and result.accuracy["agreement"] >= MIN_AGREEMENT
    assert result.accuracy["digits_top1_fp32"] is None  # no labelled digits given
    hint = ET.parse(out).getroot().find("rt_info/runtime_options/INFERENCE_PRECISION_HINT")
    assert hint is not None and hint.attrib["value"] == "bf16"
    assert asked and all(config.get("INFERENCE_PRECISION_HINT") == "bf16" for config in asked), asked


@_installed("openvino")
def test_openvino_compiles_bf16_where_the_cpu_plugin_offers_it(digits_model, tmp_path):
    """Where the CPU plugin lists BF16 (AVX512-BF16 or AMX), the bf16 runtime compiles bf16 and the
    fp32 one f32. Elsewhere (AVX2 only, AVX-512 without BF16) it compiles f32 whatever the hint."""
    import openvino as ov

    from edgenext.deploy.formats.openvino import OpenVinoRunner, export_openvino

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "BF16" not in capabilities:
        pytest.skip(f"OpenVINO's CPU plugin cannot honour a bf16 hint here: it lists {', '.join(capabilities)}, "
                    "no BF16, and compiles f32")
    out = export_openvino(digits_model[0], tmp_path / "m.xml", input_size=(SIZE, SIZE), precision="bf16")

    def compiled_as(precision):
        return str(OpenVinoRunner(out, precision=precision).compiled.get_property("INFERENCE_PRECISION_HINT"))

    assert "bfloat16" in compiled_as("bf16") and "float32" in compiled_as("fp32")


# the command line


def _export(tmp_path, *args):
    return main(["export", "--model", "edgenext_xx_small", "--num-classes", "10", "--input-size", str(SIZE),
                 "--output", str(tmp_path / "m.out"), *args])


def test_cli_names_the_bad_precision(tmp_path, capsys, monkeypatch):
    assert _export(tmp_path, "--format", "torchscript", "--precision", "bf16") == 2
    err = capsys.readouterr().err
    assert "--format torchscript cannot write --precision bf16" in err and "openvino" in err
    with pytest.raises(SystemExit):
        _export(tmp_path, "--format", "onnx", "--precision", "fp8")
    assert "fp8" in capsys.readouterr().err
    if is_installed("openvino"):
        _bf16(monkeypatch, False)
        assert _export(tmp_path, "--format", "openvino", "--precision", "bf16") == 2
        assert "no native bf16" in capsys.readouterr().err


def test_cli_names_the_writers_of_a_dense_precision_a_format_lacks(tmp_path, capsys):
    rc = main(["export", "--task", "detect", "--model", "edgenext_xx_small", "--format", "onnx", "--output",
               str(tmp_path / "m.onnx"), "--precision", "fp16"])
    err = capsys.readouterr().err
    assert rc == 2 and "--format onnx cannot write --precision fp16" in err and "fp16 is written by ncnn" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@_installed("onnxruntime", "ncnn")
def test_cli_int8_of_a_digits_checkpoint_reports_the_top1_change(tmp_path, tiny_config, capsys, image_folder):
    from edgenext.tasks import fit

    fit(tiny_config(input_size=SIZE, digits_size=SIZE, epochs=1, train_limit=16, val_limit=16))
    best = next((tmp_path / "run").rglob("best.pth"))
    out = tmp_path / "m.onnx"
    args = ["export", "--weights", str(best), "--format", "onnx", "--output", str(out), "--precision", "int8"]
    assert main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    acc = result["accuracy"]
    assert result["precision"] == "int8" and acc["agreement_images"] == 360  # the digits validation split
    assert acc["digits_top1_change"] == pytest.approx(acc["digits_top1_export"] - acc["digits_top1_fp32"])
    # --agreement-images, and the report printed as text: on ncnn's fp16 (a reduced precision in 2 s, not 8)
    fp16 = ["export", "--weights", str(best), "--format", "ncnn", "--output", str(tmp_path / "m.param"),
            "--precision", "fp16", "--agreement-images", str(image_folder)]
    assert main(fp16) == 0
    text = capsys.readouterr().out
    assert "fp16 top-1 on the digits validation split" in text and f"of 16 images ({image_folder})" in text
