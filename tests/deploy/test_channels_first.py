"""channels_first(): the fused classifier or backbone rewritten for NCHW engines computes the same
function for every variant and output stride, has no layout transposes, and is what the ONNX /
OpenVINO exports write (dense networks: their backbone rewritten inside)."""

import json

import onnx
import pytest
import torch

import edgenext
from edgenext.deploy import fuse, fuse_dense
from edgenext.deploy.export import export_model
from edgenext.deploy.formats import FORMATS
from edgenext.deploy.fusion import FusedEdgeNeXtFeatures
from edgenext.deploy.fusion.channels_first import (
    ChannelsFirstEdgeNeXt,
    ChannelsFirstEdgeNeXtFeatures,
    channels_first,
    in_layout,
)
from edgenext.dense.deeplabv3 import deeplabv3
from edgenext.dense.ssdlite import SSDLiteRaw, ssdlite

TOL = 1e-4
#: the permutations between NCHW and NHWC: what a channels-last graph has around every depth-wise conv
LAYOUT_PERMS = {(0, 2, 3, 1), (0, 3, 1, 2)}


def _layout_transposes(nodes):
    return [n for n in nodes if n.op_type == "Transpose" and any(tuple(a.ints) in LAYOUT_PERMS for a in n.attribute)]


@pytest.mark.parametrize("name", edgenext.list_models())
def test_channels_first_equals_the_model_it_came_from(name, cached_model):
    model = cached_model(name)  # randomised layer scales, temperatures and BatchNorm statistics
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(x)
        for input_size in (None, (64, 96)):
            first = channels_first(fuse(model, input_size))
            assert isinstance(first, ChannelsFirstEdgeNeXt) and not first.training
            assert (first(x) - reference).abs().max().item() < TOL
        # precomputed for one size, run at another
        y = torch.randn(1, 3, 96, 64)
        assert (first(y) - model(y)).abs().max().item() < TOL


def test_the_graph_has_no_transpose_and_every_pointwise_layer_is_a_conv(cached_model, tmp_path):
    first = channels_first(fuse(cached_model("edgenext_xx_small"), 64))
    path = tmp_path / "first.onnx"
    torch.onnx.export(first, (torch.randn(1, 3, 64, 64),), str(path), dynamo=True, opset_version=20)
    nodes = onnx.load(str(path)).graph.node
    ops = [n.op_type for n in nodes]
    assert not _layout_transposes(nodes) and ops.count("Conv") > 2 * ops.count("MatMul") > 0
    # what stays is inside the attention: k^T for the c x c logits and its norms (last two axes)
    assert {tuple(a.ints) for n in nodes if n.op_type == "Transpose" for a in n.attribute} == {(0, 1, 3, 2)}


def test_in_layout_rewrites_fused_classifiers_only(cached_model):
    fused = fuse(cached_model("edgenext_xx_small"), 64)
    assert isinstance(in_layout(fused, "channels_first"), ChannelsFirstEdgeNeXt)
    assert in_layout(fused, "channels_last") is fused
    unfused = cached_model("edgenext_xx_small")
    assert in_layout(unfused, "channels_first") is unfused  # --no-fuse exports stay as they are
    with pytest.raises(ValueError, match="unknown layout"):
        in_layout(fused, "nhwc")
    with pytest.raises(TypeError, match="FusedEdgeNeXt"):
        channels_first(unfused)
    assert in_layout(torch.nn.Conv2d(3, 3, 1), "channels_first").__class__ is torch.nn.Conv2d
    assert {FORMATS[name].layout for name in ("onnx", "openvino")} == {"channels_first"}


@pytest.mark.skipif(not FORMATS["onnx"].installed, reason="onnxruntime is not installed")
def test_the_onnx_export_writes_the_channels_first_graph_and_passes_parity(exported):
    # conftest's session export: the fp32 file test_export.py round-trips (ONNX's default layout)
    result = exported("onnx", "edgenext_xx_small", input_size=32)
    nodes = onnx.load(str(result.path)).graph.node
    # no layout change anywhere; the only LayerNormalization left is the head's, on (B, C)
    assert not _layout_transposes(nodes) and [n.op_type for n in nodes].count("LayerNormalization") <= 1
    assert result.max_abs_diff < TOL


@pytest.mark.parametrize("output_stride", [32, 16, 8])
@pytest.mark.parametrize("name", ["edgenext_xx_small", "edgenext_small_bn_hs", "edgenext_base"])
def test_channels_first_backbones_give_the_same_maps(name, output_stride, randomize):
    model = randomize(edgenext.create_model(name, features_only=True, output_stride=output_stride)).eval()
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x)
        first = channels_first(fuse(model, (64, 96)))
        got = first(x)
    assert isinstance(first, ChannelsFirstEdgeNeXtFeatures) and first.reductions == model.reductions
    assert [g.shape for g in got] == [w.shape for w in want] and all(g.is_contiguous() for g in got)
    assert max((g - w).abs().max().item() for g, w in zip(got, want)) < TOL


def test_in_layout_rewrites_the_backbone_inside_a_fused_detector_and_segmenter(randomize):
    torch.manual_seed(0)
    raw = SSDLiteRaw(randomize(ssdlite("edgenext_xx_small", 5, image_size=128)).eval()).eval()
    segmenter = randomize(deeplabv3("edgenext_xx_small", 5, output_stride=16)).eval()
    for model, x in ((raw, torch.rand(1, 3, 128, 128)), (segmenter, torch.rand(1, 3, 64, 64))):
        fused = fuse_dense(model, x.shape[-2:])
        first = in_layout(fused, "channels_first")
        assert any(isinstance(m, ChannelsFirstEdgeNeXtFeatures) for m in first.modules())
        assert any(isinstance(m, FusedEdgeNeXtFeatures) for m in fused.modules())  # the fused model is not touched
        with torch.no_grad():
            want, got = model(x), first(x)
        want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
        assert all((g - w).abs().max().item() < TOL * max(1.0, w.abs().max().item()) for g, w in zip(got, want))


def test_onnx_int8_is_written_channels_last_and_fp32_channels_first():
    # measured: ONNX Runtime's int8 (MatMul quantisation) is faster on the channels-last graph at batch 1
    assert FORMATS["onnx"].layout_for("int8") == "channels_last"
    assert FORMATS["onnx"].layout_for("fp32") == "channels_first" == FORMATS["openvino"].layout_for("int8")


@pytest.mark.skipif(not FORMATS["onnx"].installed, reason="onnxruntime is not installed")
def test_layout_can_be_chosen_per_export(cached_model, tmp_path, capsys):
    # ONNX Runtime: channels-first is faster at batch 32, channels-last at batch 1 on EdgeNeXt-S: the user
    # picks, in the CLI (export_model(layout=...) underneath; an export that fails parity exits non-zero)
    from edgenext.cli.main import main

    assert main(["export", "--model", "edgenext_xx_small", "--format", "onnx", "--input-size", "64", "--batch", "1",
                 "--layout", "channels_last", "--output", str(tmp_path / "m.onnx"), "--json"]) == 0
    assert _layout_transposes(onnx.load(str(tmp_path / "m.onnx")).graph.node)
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] < TOL
    with pytest.raises(ValueError, match="unknown layout 'nhwc'"):
        export_model(cached_model("edgenext_xx_small"), "onnx", tmp_path / "x.onnx", input_size=64, layout="nhwc")
    with pytest.raises(SystemExit):  # argparse names the choices
        main(["export", "--model", "edgenext_xx_small", "--format", "onnx", "--layout", "nchw",
              "--output", str(tmp_path / "n.onnx")])
    assert "channels_first" in capsys.readouterr().err
