"""Large depth-wise convolutions rewritten into ones XNNPACK runs with its depth-wise kernels.

XNNPACK's f32 depth-wise microkernels take at most 25 taps (5x5): ExecuTorch's XNNPACK delegate
runs a larger depth-wise conv (EdgeNeXt's 7x7 and 9x9 conv encoders) as a grouped IGEMM, one
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
``executorch_graph_form`` swaps every such ``nn.Conv2d`` in a module on a copy.
"""

from __future__ import annotations

import copy

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
        (ph, pw), (dh, dw) = self.padding, self.dilation
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


def executorch_graph_form(module: nn.Module) -> nn.Module:
    """``module`` with every large depth-wise ``nn.Conv2d`` (``is_large_depthwise``) as a
    ``TiledDepthwiseConv``, same weights, same function, on a copy; a module without any is
    returned as it is (so applying it twice is applying it once)."""
    if is_large_depthwise(module):
        return TiledDepthwiseConv(module).eval()
    if not any(is_large_depthwise(m) for m in module.modules()):
        return module
    out = copy.deepcopy(module)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if is_large_depthwise(child):
                setattr(parent, name, TiledDepthwiseConv(child).eval())
    return out
