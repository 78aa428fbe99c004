"""ncnn: classifiers, detectors, segmenters and features_only backbones export through pnnx into
native ncnn layers only and run in ncnn within fp32 tolerance of eager PyTorch, in both layouts."""

import re
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("ncnn")
pytest.importorskip("pnnx")

from edgenext.deploy import fuse  # noqa: E402
from edgenext.deploy.export import export_model, export_network  # noqa: E402
from edgenext.deploy.formats import FORMATS  # noqa: E402
from edgenext.deploy.formats._ncnn_graph import NcnnTrainingXCA, NcnnXCA, NcnnXCAFirst, ncnn_graph_form  # noqa: E402
from edgenext.deploy.formats.ncnn import (  # noqa: E402
    NcnnRunner, export_ncnn, param_io, unsupported_layers)
from edgenext.deploy.fusion.channels_first import in_layout  # noqa: E402
from edgenext.deploy.precision_accuracy import PrecisionCheck  # noqa: E402
from edgenext.optional import MissingExtraError  # noqa: E402
from edgenext.tasks import get_task  # noqa: E402

FP32_TOL = 1e-4
DENSE_TOL = 1e-4  # as tests/deploy/test_fuse_dense.py
SIZE = 32
LAYOUTS = ("channels_first", "channels_last")
def test_ncnn_is_registered_as_an_fp32_multi_output_static_batch_format():
    spec = FORMATS["ncnn"]
    assert (spec.suffix, spec.extra, spec.module) == (".param", "ncnn", "ncnn")
    assert spec.static_batch and spec.multi_output and spec.precisions == ("fp32", "fp16")
    assert spec.layout == "channels_first" and spec.graph_form is not None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_classifier_round_trips_in_native_ncnn_layers(layout, cached_model, exported):
    model = cached_model("edgenext_xx_small", 10)
    # conftest's session export; in ncnn's own layout it is the file test_export.py's round trip checks too
    options = {} if layout == FORMATS["ncnn"].layout else {"layout": layout}
    result = exported("ncnn", "edgenext_xx_small", input_size=SIZE, **options)
    assert result.max_abs_diff is not None and result.max_abs_diff < FP32_TOL
    # only the ncnn files in the output folder (the export's own), none of pnnx's intermediates
    assert sorted(p.name for p in Path(result.path).parent.iterdir()) == ["model.bin", "model.param"]
    assert unsupported_layers(result.path) == {}
    # the runner loops over a batch and keeps each output's batch axis
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    got = NcnnRunner(result.path, threads=1)(x)
    with torch.no_grad():
        want = model(x)
    assert got.shape == want.shape == (3, 10)
    assert (got - want).abs().max() < FP32_TOL


def test_a_batch_asked_for_still_exports_one_image_graphs(tmp_path, cached_model):
    result = export_model(cached_model("edgenext_xx_small_bn_hs", 10), "ncnn", tmp_path / "m.param",
                          input_size=SIZE, batch=2)
    assert result.max_abs_diff < FP32_TOL and "batch 2" in result.check


def test_unfused_classifier_exports_too(tmp_path, cached_model):
    result = export_model(cached_model("edgenext_xx_small", 10), "ncnn", tmp_path / "m.param", input_size=SIZE,
                          fused=False)
    assert result.max_abs_diff < FP32_TOL and unsupported_layers(result.path) == {}


@pytest.mark.parametrize("task, fused", [("detect", True), ("segment", True), ("detect", False)])
def test_dense_exports_pass_parity(task, fused, tmp_path, dense_parity_model):
    model, size = dense_parity_model(task)
    result = get_task(task).export_model(model, "ncnn", tmp_path / "m.param", input_size=size,
                                          fused=fused)
    assert result.max_abs_diff is not None and result.max_abs_diff < DENSE_TOL, result.check
    assert unsupported_layers(result.path) == {}
    shapes = result.details["shapes"]
    if task == "detect":
        assert list(shapes) == ["boxes", "scores"]
        assert shapes["boxes"][2] == 4 and shapes["scores"][1] == shapes["boxes"][1]  # (N, A, 4), (N, A, K)
    runner = NcnnRunner(result.path)
    x = torch.rand(2, 3, *((96, 96) if task == "detect" else (64, 64)))
    outputs = runner.outputs(x)
    assert [list(o.shape[1:]) for o in outputs] == [s[1:] for s in shapes.values()]
    assert all(o.shape[0] == 2 for o in outputs)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_features_only_backbone_gives_its_four_maps(layout, tmp_path, shallow_backbone):
    backbone = shallow_backbone
    result = export_network(fuse(backbone, 64), "ncnn", tmp_path / "f.param", input_size=64,
                            output_names=("s1", "s2", "s3", "s4"), reference=backbone, layout=layout)
    assert result.max_abs_diff < FP32_TOL, result.check
    assert result.details["shapes"]["s1"] == [1, 24, 16, 16] and result.details["shapes"]["s4"] == [1, 168, 2, 2]
    assert len(param_io(result.path)[1]) == 4


def test_timms_edgenext_with_its_uneven_channel_split_runs_in_ncnn(tmp_path, randomized):
    """timm's SDTA splits with ``chunk``, which pnnx writes as ncnn's equal-part Slice: for the 88
    channels of EdgeNeXt-XXS's stage 3 in 3 parts ncnn's parts are 29, 29, 30, torch's 30, 30, 28
    (ncnn then read past the convolution's input and crashed). Its ncnn form slices explicitly."""
    timm = pytest.importorskip("timm")
    model = randomized(timm.create_model("edgenext_xx_small", pretrained=False, num_classes=10))
    result = export_network(model, "ncnn", tmp_path / "t.param", input_size=64, output_names=("logits",))
    assert result.max_abs_diff < FP32_TOL, result.check
    equal_parts = [line for line in Path(result.path).read_text().splitlines()
                   if line.startswith("Slice") and re.search(r"-23300=\d+(,-233)+(\s|$)", line)]
    assert equal_parts == []


def test_fp16_export_halves_the_weights_and_reports_its_top1_change(digits_model, tmp_path):
    model, _, x_val, y_val, fp32_top1 = digits_model
    check = PrecisionCheck(x_val, "digits val", (x_val, y_val))
    full = export_model(model, "ncnn", tmp_path / "full.param", input_size=SIZE)
    half = export_model(model, "ncnn", tmp_path / "half.param", input_size=SIZE, precision="fp16",
                        check=check)
    assert half.precision == "fp16"  # the weights in half; the .bin's fp32 leftovers: norms, biases, constants
    assert (tmp_path / "half.bin").stat().st_size < 0.7 * (tmp_path / "full.bin").stat().st_size
    assert half.max_abs_diff > full.max_abs_diff  # the weights were rounded to half
    acc = half.accuracy
    assert acc["digits_top1_fp32"] == pytest.approx(fp32_top1) and acc["agreement"] >= 95.0, acc
    assert acc["digits_top1_change"] >= -2.0, acc
    assert "fp32's tolerance does not apply" in half.parity_line()


def test_every_xca_gets_its_ncnn_form_with_the_same_function(cached_model):
    model = cached_model("edgenext_xx_small", 10)
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        want = model(x)
        for module, form in ((in_layout(fuse(model, SIZE), "channels_last"), NcnnXCA),
                             (in_layout(fuse(model, SIZE), "channels_first"), NcnnXCAFirst),
                             (model, NcnnTrainingXCA)):
            rewritten = ncnn_graph_form(module)
            kinds = {type(m) for m in rewritten.modules()}
            assert form in kinds and not kinds & {type(m) for m in module.modules() if "XCA" in type(m).__name__}
            assert (rewritten(x) - want).abs().max() < 1e-5
    # the original is left as it was
    assert not any(isinstance(m, NcnnTrainingXCA) for m in model.modules())


def test_a_leftover_unsupported_op_is_refused_by_name(tmp_path):
    class ClampMin(torch.nn.Module):  # the fused XCA's norm guard, as pnnx cannot lower it
        def forward(self, x):
            return torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12) * x

    with pytest.raises(RuntimeError, match=r"aten::clamp_min"):
        export_ncnn(ClampMin(), tmp_path / "bad.param", input_size=(8, 8))
    assert not list(tmp_path.glob("bad.*"))


def test_wrong_suffix_and_precision_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.param"):
        export_ncnn(torch.nn.Identity(), tmp_path / "m.ncnn", input_size=(8, 8))
    with pytest.raises(ValueError, match="fp32"):
        export_ncnn(torch.nn.Identity(), tmp_path / "m.param", input_size=(8, 8), precision="int8")


@pytest.mark.parametrize("module, call", [("ncnn", "runner"), ("pnnx", "writer")])
def test_a_missing_package_names_the_extra(module, call, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` fail
    spec = FORMATS["ncnn"]
    with pytest.raises(MissingExtraError, match=r'pip install "edgenext\[ncnn\]"'):
        if call == "runner":
            spec.runner(tmp_path / "m.param")
        else:
            spec.writer(torch.nn.Identity(), tmp_path / "m.param", input_size=(8, 8), batch=None)
