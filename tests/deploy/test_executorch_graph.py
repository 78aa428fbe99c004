"""ExecuTorch's graph form: the depth-wise convs larger than 5x5 split into strips of at most 25 taps
compute the same function as the conv (kernels 7 and 9, dilated or not, both memory formats), in
a fused EdgeNeXt in both layouts; LayerNorm and the fused XCA in XNNPACK's ops are the same functions;
and a block of all three lowers to XNNPACK with nothing left outside it."""

import pytest
import torch
from torch import nn

import edgenext
from edgenext.deploy import fuse
from edgenext.deploy.formats import FORMATS
from edgenext.deploy.formats._executorch_graph import (
    MAX_DWCONV_TAPS, TiledDepthwiseConv, XnnpackLayerNorm, XnnpackXCA, executorch_graph_form, is_large_depthwise)
from edgenext.deploy.fusion.channels_first import LAYOUTS, in_layout, written_module
from edgenext.deploy.fusion.modules import FusedXCA, LastAxisConv

TOL = 1e-5


def _conv(k, dilation, channels=12):
    torch.manual_seed(k * 10 + dilation)
    conv = nn.Conv2d(channels, channels, k, padding=dilation * (k // 2), dilation=dilation, groups=channels)
    nn.init.normal_(conv.bias)
    return conv.eval()


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("k", [7, 9])
def test_tiled_depthwise_conv_is_the_conv(k, dilation, memory_format):
    conv = _conv(k, dilation)
    tiled = TiledDepthwiseConv(conv)
    heights = [s.kernel_size[0] for s in tiled.strips]
    assert sum(heights) == k and all(h * k <= MAX_DWCONV_TAPS for h in heights)
    assert heights == ([3, 3, 1] if k == 7 else [2, 2, 2, 2, 1])
    x = torch.randn(2, 12, 11, 13).contiguous(memory_format=memory_format)
    with torch.no_grad():
        assert (tiled(x) - conv(x)).abs().max() <= TOL


def test_only_large_stride_1_depthwise_convs_are_split():
    assert is_large_depthwise(_conv(7, 1)) and is_large_depthwise(_conv(9, 4))
    assert not is_large_depthwise(_conv(5, 1))  # XNNPACK's DWConv takes 5x5
    assert not is_large_depthwise(nn.Conv2d(12, 24, 7, groups=12))  # not depth-wise
    assert not is_large_depthwise(nn.Conv2d(12, 12, 7, stride=2, groups=12))
    assert not is_large_depthwise(nn.Conv2d(12, 12, 7, padding="same", groups=12))
    with pytest.raises(ValueError, match="depth-wise"):
        TiledDepthwiseConv(nn.Conv2d(12, 12, 3, groups=12))


def test_executorch_writes_the_graph_form():
    fmt = FORMATS["executorch"]
    assert fmt.graph_form is executorch_graph_form
    fused = fuse(edgenext.create_model("edgenext_xx_small").eval())
    written = written_module(fmt, fused)
    assert sum(isinstance(m, TiledDepthwiseConv) for m in written.modules()) == 6  # stage 3's 7x7 and 4's 9x9
    assert not any(isinstance(m, TiledDepthwiseConv) for m in fused.modules())  # on a copy
    assert executorch_graph_form(written) is written  # nothing left to split
    # int8: as it is (XNNPACK refuses the strips' zero pad in a quantised program)
    assert not any(isinstance(m, TiledDepthwiseConv) for m in written_module(fmt, fused, "int8").modules())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_graph_form_of_a_fused_model_is_the_same_function(layout):
    torch.manual_seed(0)
    model = edgenext.create_model("edgenext_xx_small", features_only=True, output_stride=16).eval()
    for p in model.parameters():
        p.data += 0.05 * torch.randn_like(p)
    module = in_layout(fuse(model), layout)
    form = executorch_graph_form(module)
    assert sum(isinstance(m, TiledDepthwiseConv) and m.dilation == (2, 2) for m in form.modules()) == 1  # stage 4
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for got, want in zip(form(x), module(x)):
            assert (got - want).abs().max() <= TOL


@pytest.mark.parametrize("affine", [True, False])
def test_xnnpack_layernorm_is_the_layernorm(affine):
    torch.manual_seed(0)
    norm = nn.LayerNorm(24, eps=1e-6, elementwise_affine=affine).eval()
    if affine:
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
    x = torch.randn(2, 5, 7, 24) * 3 + 1
    with torch.no_grad():
        assert (XnnpackLayerNorm(norm)(x) - norm(x)).abs().max() <= TOL
    with pytest.raises(ValueError, match="last axis"):
        XnnpackLayerNorm(nn.LayerNorm((4, 24)))


def _fused_xca(channels=24, heads=3):
    torch.manual_seed(1)
    return FusedXCA(nn.Linear(channels, 3 * channels), torch.rand(heads, 1, 1) + 0.5, nn.Linear(channels, channels),
                    heads).eval()


def test_xnnpack_xca_is_the_fused_xca():
    xca = _fused_xca()
    x = torch.randn(2, 35, 24)
    with torch.no_grad():
        assert (XnnpackXCA(xca)(x) - xca(x)).abs().max() <= TOL


def test_the_graph_form_rewrites_the_norms_and_the_xcas_of_a_fused_model_only():
    fused = fuse(edgenext.create_model("edgenext_xx_small").eval())
    form = executorch_graph_form(fused)
    norms = sum(type(m) is nn.LayerNorm for m in fused.modules())
    assert norms > 0 and sum(isinstance(m, XnnpackLayerNorm) for m in form.modules()) == norms
    assert sum(isinstance(m, XnnpackXCA) for m in form.modules()) == 3  # one SDTA block in stages 2-4
    assert not any(type(m) is nn.LayerNorm or isinstance(m, FusedXCA) for m in form.modules())
    # a subclass has a forward of its own (the unfused model's LayerNorm2d): it stays
    unfused = edgenext.create_model("edgenext_xx_small").eval()
    kept = [m for m in executorch_graph_form(unfused).modules() if isinstance(m, nn.LayerNorm) and type(m) is not nn.LayerNorm]
    assert kept


class _Tokens(nn.Module):
    """A fused block's ops in ExecuTorch's graph form: a tiled dilated 9x9 depth-wise conv, a LayerNorm and
    an XCA, on a ``(B, H, W, C)`` map as the fused model runs them."""

    def __init__(self):
        super().__init__()
        self.conv = LastAxisConv(TiledDepthwiseConv(_conv(9, 2, channels=24)))
        self.norm = XnnpackLayerNorm(nn.LayerNorm(24))
        self.xca = XnnpackXCA(_fused_xca())

    def forward(self, x):
        y = self.norm(self.conv(x))
        B, H, W, C = y.shape
        return self.xca(y.reshape(B, H * W, C))


@pytest.mark.slow  # importing ExecuTorch's lowering
def test_the_graph_form_lowers_entirely_to_xnnpack():
    pytest.importorskip("executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    x = torch.randn(1, 10, 10, 24)
    with torch.no_grad():
        program = torch.export.export(_Tokens().eval(), (x,), strict=False)
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    ops = [str(n.target) for n in edge.exported_program().graph.nodes if n.op == "call_function"]
    assert ops and all("executorch_call_delegate" in op or "getitem" in op for op in ops), ops
