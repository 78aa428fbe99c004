"""ExecuTorch's graph form: the ops XNNPACK's delegate would leave out, rewritten into ones it runs.

Large depth-wise convolutions, into ones XNNPACK runs with its depth-wise kernels. XNNPACK's f32
depth-wise microkernels take at most 25 taps (5x5): ExecuTorch's XNNPACK delegate runs a larger depth-wise conv (EdgeNeXt's 7x7 and 9x9 conv encoders) as a grouped IGEMM, one
group per channel, 29-33% of the whole run of EdgeNeXt-XXS and -S (benchmarks/results.md,
"ExecuTorch (XNNPACK), per operator"). A ``kh x kw`` depth-wise conv is the sum of depth-wise convs
over horizontal strips of its kernel, each applied to the rows of the zero-padded input it
reaches: ``TiledDepthwiseConv`` pads once, then runs one full-width strip of ``25 // kw`` rows
(7x7: 3 + 3 + 1 rows, 21 + 21 + 7 taps; 9x9: 2 + 2 + 2 + 2 + 1) per slice of the padded input and
adds them; the bias rides on the first strip. Full-width strips slice the padded input along its
rows only, a contiguous block of the channels-last tensor. Measured per conv in XNNPACK (one
conv, ETDump, batch 1): 7x7 88 channels 16x16 3.5-4.2x faster, 9x9 168/304 channels 8x8 3.1-3.7x;
these strips beat a 5x5 + 5x2 + 2x5 + 2x2 grid (2.6-2.8x) and column strips (3.5x); a strip of more
than 25 taps (7x7 as 4 + 3 rows) falls back to IGEMM. Each strip's weight is its own parameter,
sliced once here: a weight sliced in the graph keeps the conv out of XNNPACK.

LayerNorm and the XCA's L2 norms: XNNPACK's partitioner takes neither ``native_layer_norm`` nor a sum
over the channels, and the XCA's 4-D matmuls broadcast through ``expand`` copies it leaves out too,
so the shallow fused DeepLabv3 lowered as 25 delegate calls with portable kernels between them
(XXS at 256 px: 30). ``XnnpackLayerNorm`` and ``XnnpackXCA`` compute the same functions from ops
it takes (2 delegate calls): EdgeNeXt-XXS and -S run 1.31x and 1.32x faster at 2 threads, 1.06x and
1.13x at 1 thread (batch 1, 256 px; ``benchmarks/executorch_graph_form.py``, results.md).

``executorch_graph_form`` swaps every such module in a module on a copy.
"""

from __future__ import annotations

import copy
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

#: the most taps of a depth-wise kernel XNNPACK's f32 DWConv microkernels take (5x5)
MAX_DWCONV_TAPS = 25


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def is_large_depthwise(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain stride-1, zero-padded depth-wise ``nn.Conv2d`` with more taps than
    XNNPACK's depth-wise kernels take, and rows narrow enough to strip."""
    if type(conv) is not nn.Conv2d:  # NOTE: subclasses (timm's Conv2dSame) have their own forward
        return False
    kh, kw = conv.kernel_size
    return (conv.groups == conv.in_channels == conv.out_channels and kh * kw > MAX_DWCONV_TAPS
            and kw <= MAX_DWCONV_TAPS and _pair(conv.stride) == (1, 1) and not isinstance(conv.padding, str)
            and conv.padding_mode == "zeros")


class TiledDepthwiseConv(nn.Module):
    """A large depth-wise ``nn.Conv2d`` (``is_large_depthwise``) as one zero pad and a sum of
    depth-wise convs over full-width strips of its kernel, at most ``MAX_DWCONV_TAPS`` taps each;
    same function, (B, C, H, W) in and out in either memory format."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not is_large_depthwise(conv):
            raise ValueError(f"TiledDepthwiseConv takes a stride-1 zero-padded depth-wise nn.Conv2d of more than "
                             f"{MAX_DWCONV_TAPS} taps, got {conv}")
        kh, kw = conv.kernel_size
        self.kernel_size = (kh, kw)
        self.dilation = _pair(conv.dilation)
        self.padding = _pair(conv.padding)
        rows = max(1, MAX_DWCONV_TAPS // kw)
        weight = conv.weight.detach()
        self.starts: list[int] = []
        self.strips = nn.ModuleList()
        for start in range(0, kh, rows):
            height = min(rows, kh - start)
            bias = conv.bias is not None and start == 0
            strip = nn.Conv2d(conv.in_channels, conv.out_channels, (height, kw), dilation=self.dilation,
                              groups=conv.groups, bias=bias)
            strip.weight = nn.Parameter(weight[:, :, start : start + height].clone(), requires_grad=False)
            if bias:
                strip.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
            self.starts.append(start)
            self.strips.append(strip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (ph, pw), (dh, _) = self.padding, self.dilation
        height = x.shape[-2] + 2 * ph - dh * (self.kernel_size[0] - 1)  # the output's rows
        padded = F.pad(x, (pw, pw, ph, ph))
        out = None
        for start, strip in zip(self.starts, self.strips):
            rows = padded[:, :, dh * start : dh * start + height + dh * (strip.kernel_size[0] - 1)]
            y = strip(rows)
            out = y if out is None else out + y
        return out

    def extra_repr(self) -> str:
        return (f"{self.strips[0].in_channels}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, strips={[s.kernel_size for s in self.strips]}")


def _frozen(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone(), requires_grad=False)


class XnnpackLayerNorm(nn.Module):
    """An ``nn.LayerNorm`` over the last axis from ops XNNPACK's delegate takes.

    ExecuTorch's XNNPACK partitioner has no LayerNorm and no reduction over the channels, so every
    LayerNorm ran as a portable kernel between two delegate calls (14 of the shallow DeepLabv3's 25
    partitions). Here the mean and the variance are products with a constant ``1/C`` column (a
    one-output fully connected layer); the rest is subtract, multiply, ``rsqrt`` and the affine."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        if len(norm.normalized_shape) != 1:
            raise ValueError(f"XnnpackLayerNorm normalises the last axis only, got {norm}")
        channels = norm.normalized_shape[0]
        self.eps = norm.eps
        self.average = _frozen(torch.full((1, channels), 1.0 / channels))
        self.weight = None if norm.weight is None else _frozen(norm.weight)
        self.bias = None if norm.bias is None else _frozen(norm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - F.linear(x, self.average)
        y = centred * torch.rsqrt(F.linear(centred * centred, self.average) + self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


class XnnpackXCA(nn.Module):
    """The fused XCA (``FusedXCA``) from ops XNNPACK's delegate takes: ``qkv`` a fully connected layer
    on the tokens, q, k and v channel slices of its transpose, the squared L2 norms over the tokens a
    global average pool (times N), and the two products 3-D batched matmuls (a 4-D ``@`` would
    broadcast through ``expand`` copies, which stay outside the delegate)."""

    def __init__(self, xca: nn.Module) -> None:
        from ..fusion.modules import _NORMALIZE_EPS

        super().__init__()
        self.num_heads = xca.num_heads
        self.eps = _NORMALIZE_EPS  # F.normalize's guard, as the fused XCA keeps it
        out_features, in_features = xca.qkv_weight.shape
        self.qkv = nn.Linear(in_features, out_features).requires_grad_(False)
        self.qkv.weight, self.qkv.bias = _frozen(xca.qkv_weight), _frozen(xca.qkv_bias[:, 0])
        self.temperature = _frozen(xca.temperature)  # (heads, 1, 1)
        self.proj = xca.proj

    def _token_norm(self, t: torch.Tensor) -> torch.Tensor:
        """``|t|`` over the tokens of ``(B, C, N)``, as ``(B, C, 1, 1)``: the mean of squares over a
        ``(B, C, N, 1)`` map's last two axes (a global average pool), times N as a float (an int becomes
        an int64 constant whose cast to float stays outside the delegate)."""
        B, C, N = t.shape
        return torch.sqrt((t * t).reshape(B, C, N, 1).mean((2, 3), keepdim=True) * float(N)).clamp_min(self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        h, c = self.num_heads, C // self.num_heads
        qkv = self.qkv(x).transpose(1, 2)  # (B, 3C, N)
        q, k, v = qkv[:, :C], qkv[:, C : 2 * C], qkv[:, 2 * C :]
        logits = torch.bmm(q.reshape(B * h, c, N), k.reshape(B * h, c, N).transpose(1, 2)).reshape(B, h, c, c)
        norms = self._token_norm(q).reshape(B, h, c, 1) * self._token_norm(k).reshape(B, h, 1, c)
        logits = logits * (self.temperature / norms)
        out = torch.bmm(logits.softmax(dim=-1).reshape(B * h, c, c), v.reshape(B * h, c, N))  # (B*h, c, N)
        return self.proj(out.reshape(B, C, N).transpose(1, 2))  # (B, N, C)


def _form_of(module: nn.Module) -> Optional[type]:
    """The module ``executorch_graph_form`` puts in place of ``module`` (None: it stays). Exact types:
    a subclass (timm's LayerNorm2d, Conv2dSame) has a forward of its own."""
    from ..fusion.modules import FusedXCA  # NOTE: lazy, as ncnn's form: registering the formats loads no fusion code

    if is_large_depthwise(module):
        return TiledDepthwiseConv
    if type(module) is nn.LayerNorm and len(module.normalized_shape) == 1:
        return XnnpackLayerNorm
    if type(module) is FusedXCA:
        return XnnpackXCA
    return None


def executorch_graph_form(module: nn.Module, form_of: Callable[[nn.Module], Optional[type]] = _form_of) -> nn.Module:
    """``module`` with every large depth-wise ``nn.Conv2d`` (``is_large_depthwise``) as a
    ``TiledDepthwiseConv``, every last-axis ``nn.LayerNorm`` as an ``XnnpackLayerNorm`` and every
    fused XCA as an ``XnnpackXCA``: same weights, same function, on a copy. A module without any
    is returned as it is (so applying it twice is applying it once). ``form_of``: which module
    replaces which (a benchmark's subset of the rewrites)."""
    form = form_of(module)
    if form is not None:
        return form(module).eval()
    if not any(form_of(m) is not None for m in module.modules()):
        return module
    out = copy.deepcopy(module)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            form = form_of(child)
            if form is not None:
                setattr(parent, name, form(child).eval())
    return out
