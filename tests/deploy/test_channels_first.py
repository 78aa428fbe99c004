"""channels_first(): the fused classifier rewritten for NCHW engines computes the same function for
every variant, has no transposes, and is what the ONNX / OpenVINO exports write."""

import onnx
import pytest
import torch

import edgenext
from edgenext.deploy import fuse
from edgenext.deploy.export import export_model
from edgenext.deploy.formats import FORMATS
from edgenext.deploy.fusion.channels_first import ChannelsFirstEdgeNeXt, channels_first, in_layout
from edgenext.optional import is_installed

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
    assert {FORMATS[name].layout for name in ("onnx", "openvino")} == {"channels_first"}


@pytest.mark.skipif(not is_installed("onnxruntime"), reason="onnxruntime is not installed")
def test_the_onnx_export_writes_the_channels_first_graph_and_passes_parity(cached_model, tmp_path):
    result = export_model(cached_model("edgenext_xx_small"), "onnx", tmp_path / "xxs.onnx", input_size=64)
    nodes = onnx.load(str(tmp_path / "xxs.onnx")).graph.node
    # no layout change anywhere; the only LayerNormalization left is the head's, on (B, C)
    assert not _layout_transposes(nodes) and [n.op_type for n in nodes].count("LayerNormalization") <= 1
    assert result.max_abs_diff < TOL
