"""EdgeNeXt's attention (and a detector's box decoding) rewritten into ops pnnx lowers to native ncnn layers.

pnnx (the PyTorch -> ncnn converter) leaves three constructs of the fused XCA as layers ncnn
cannot run: ``torch.baddbmm`` (the fused ``qkv``), ``clamp_min`` with the norm guard (traced as
``aten::clamp_min`` with a tensor operand) and the ``pnnx.Expression`` holding its eps. The
modules here compute the same function from the same weights with ``torch.matmul`` + bias
(MemoryData, MatMul, BinaryOp), ``sum(q * q)`` (BinaryOp, Reduction) and ``torch.clamp`` with
a scalar bound (Clip), then ``sqrt`` (UnaryOp). The detector's export graph (``SSDLiteRaw``)
decodes and clips its boxes with strided slices (torchvision's ``decode_single`` and
``clip_boxes_to_image``: ``codes[:, 0::4]``, ``boxes[..., 0::2]``), which pnnx leaves as
``Tensor.slice``: its ncnn form decodes all four coordinates at once against precomputed anchor
centres and sizes, with unit-step slices only. An unfused BatchNorm model's ``BatchNormLast``
becomes its eval-mode affine. timm's ``SplitTransposeBlock`` splits its channels with ``chunk``,
which pnnx writes as an equal-parts ``Slice`` that ncnn divides differently from torch where the
channels do not divide evenly: its form slices explicitly. ``ncnn_graph_form`` swaps every fused XCA
(channels-last ``FusedXCA``, channels-first ``XCAFirst``), every training ``XCA`` and
``BatchNormLast`` and an ``SSDLiteRaw`` in a module for its ncnn form, on a copy.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...dense.ssdlite import BOX_DIMS, SSDLiteRaw
from ...models.blocks import split_convs
from ...models.layers import XCA, BatchNormLast
from ..fusion.channels_first import XCAFirst
from ..fusion.modules import _NORMALIZE_EPS, FusedXCA


def _guarded_norm(t: torch.Tensor) -> torch.Tensor:
    """``max(||t||, eps)`` over the last axis, keepdim, as F.normalize guards its division;
    the clamp is on the squared norm (``eps**2`` is a normal float32), so sqrt keeps it exact."""
    return torch.sqrt(torch.clamp(torch.sum(t * t, dim=-1, keepdim=True), min=_NORMALIZE_EPS ** 2))


class _NcnnAttention(nn.Module):
    """Shared core: from ``qkv`` as ``(B, 3C, N)`` to the attended ``(B, C, N)``."""

    num_heads: int

    def _attend(self, qkv: torch.Tensor) -> torch.Tensor:
        B, C3, N = qkv.shape
        C = C3 // 3
        c = C // self.num_heads
        # NOTE: slices then a 4-D reshape each (3-D ncnn Mats once the batch is dropped), not a
        # 5-D reshape + unbind
        q = qkv[:, :C].reshape(B, self.num_heads, c, N)
        k = qkv[:, C : 2 * C].reshape(B, self.num_heads, c, N)
        v = qkv[:, 2 * C :].reshape(B, self.num_heads, c, N)
        scale = self.temperature / (_guarded_norm(q) * _guarded_norm(k).transpose(-2, -1))  # (B, h, c, c)
        logits = torch.matmul(q, k.transpose(-2, -1)) * scale
        return torch.matmul(torch.softmax(logits, dim=-1), v).reshape(B, C, N)


class NcnnXCA(_NcnnAttention):
    """``FusedXCA`` (tokens ``(B, N, C)`` in and out) in ncnn-native ops."""

    def __init__(self, xca: FusedXCA) -> None:
        super().__init__()
        self.num_heads = xca.num_heads
        self.register_buffer("qkv_weight", xca.qkv_weight.detach().clone())  # (3C, C)
        self.register_buffer("qkv_bias", xca.qkv_bias.detach().clone())  # (3C, 1)
        self.register_buffer("temperature", xca.temperature.detach().clone())  # (h, 1, 1)
        self.proj = copy.deepcopy(xca.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = torch.matmul(self.qkv_weight, x.transpose(1, 2)) + self.qkv_bias  # (B, 3C, N)
        return self.proj(self._attend(qkv).transpose(1, 2))  # (B, N, C)


class NcnnXCAFirst(_NcnnAttention):
    """``XCAFirst`` (tokens ``(B, C, N)`` in and out) in ncnn-native ops."""

    def __init__(self, xca: XCAFirst) -> None:
        super().__init__()
        self.num_heads = xca.num_heads
        for name in ("qkv_weight", "qkv_bias", "temperature", "proj_weight", "proj_bias"):
            self.register_buffer(name, getattr(xca, name).detach().clone())

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        qkv = torch.matmul(self.qkv_weight, t) + self.qkv_bias  # (B, 3C, N)
        return torch.matmul(self.proj_weight, self._attend(qkv)) + self.proj_bias


class NcnnTrainingXCA(_NcnnAttention):
    """The training ``XCA`` (an unfused export; dropout is identity in eval) in ncnn-native ops."""

    def __init__(self, xca: XCA) -> None:
        super().__init__()
        self.num_heads = xca.num_heads
        self.register_buffer("qkv_weight", xca.qkv.weight.detach().clone())
        bias = xca.qkv.bias if xca.qkv.bias is not None else torch.zeros(xca.qkv.out_features)
        self.register_buffer("qkv_bias", bias.detach().clone()[:, None])
        self.register_buffer("temperature", xca.temperature.detach().clone())
        self.proj = copy.deepcopy(xca.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = torch.matmul(self.qkv_weight, x.transpose(1, 2)) + self.qkv_bias  # (B, 3C, N)
        return self.proj(self._attend(qkv).transpose(1, 2))


class NcnnBatchNormLast(nn.Module):
    """The training ``BatchNormLast`` in eval (its running statistics) as ``x * scale + shift`` over
    the last axis: its ``reshape(-1, C)`` folds the batch into the tokens, which ncnn's batch-free
    blobs cannot express (pnnx then leaves ``Tensor.reshape`` layers)."""

    def __init__(self, norm: BatchNormLast) -> None:
        super().__init__()
        scale = torch.rsqrt(norm.running_var.double() + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.double()
        shift = -norm.running_mean.double() * scale
        if norm.bias is not None:
            shift = shift + norm.bias.double()
        self.register_buffer("scale", scale.float())
        self.register_buffer("shift", shift.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class NcnnSSDLiteRaw(nn.Module):
    """``SSDLiteRaw`` (boxes decoded and clipped, class softmax) with the decoding of torchvision's
    ``BoxCoder.decode_single`` and ``clip_boxes_to_image`` written without strided slices: the
    same arithmetic per coordinate, the anchors' centres and sizes precomputed as in torchvision."""

    def __init__(self, raw: SSDLiteRaw) -> None:
        super().__init__()
        self.normalize, self.backbone, self.head = raw.normalize, raw.backbone, raw.head
        anchors = raw.anchors.float()  # (A, 4) x1, y1, x2, y2
        size = anchors[:, 2:] - anchors[:, :2]  # widths, heights
        self.register_buffer("anchor_size", size.clone())
        self.register_buffer("anchor_centre", (anchors[:, :2] + 0.5 * size).clone())
        wx, wy, ww, wh = (float(w) for w in raw.box_coder.weights)
        self.register_buffer("centre_weights", torch.tensor([wx, wy]))
        self.register_buffer("size_weights", torch.tensor([ww, wh]))
        self.size_clip = float(raw.box_coder.bbox_xform_clip)
        height, width = raw.image_size
        self.register_buffer("limits", torch.tensor([width, height, width, height], dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(list(self.backbone(self.normalize(images)).values()))
        codes = out["bbox_regression"].reshape(images.shape[0], -1, BOX_DIMS)  # (N, A, 4)
        centre = codes[..., 0:2] / self.centre_weights * self.anchor_size + self.anchor_centre
        size = torch.exp(torch.clamp(codes[..., 2:4] / self.size_weights, max=self.size_clip)) * self.anchor_size
        half = 0.5 * size
        boxes = torch.cat((centre - half, centre + half), dim=-1)  # (N, A, 4) x1, y1, x2, y2
        boxes = torch.minimum(torch.clamp(boxes, min=0.0), self.limits)
        return boxes, out["cls_logits"].softmax(dim=-1)


class NcnnTimmSDTA(nn.Module):
    """timm's ``SplitTransposeBlock`` (eval) with its channel split written as explicit slices.
    timm splits with ``x.chunk(scales)``, which pnnx writes as an ncnn ``Slice`` of equal parts;
    where the channels do not divide (EdgeNeXt-XXS's stage 3: 88 in 3) ncnn's equal parts
    (29, 29, 30) are not torch's (30, 30, 28) and the next convolution reads past its input.
    The rest is the block's own computation on its own modules: positional encoding, XCA with
    its layer scale, the inverted bottleneck with its own, the residual."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        mixed = split_convs(x, b.convs, b.width, True, dim=1)
        B, C, H, W = mixed.shape
        tokens = mixed.reshape(B, C, H * W).transpose(1, 2)  # (B, N, C)
        if b.pos_embd is not None:
            tokens = tokens + b.pos_embd((B, H, W)).reshape(B, C, H * W).transpose(1, 2)
        attended = b.xca(b.norm_xca(tokens))
        tokens = tokens + (attended if b.gamma_xca is None else b.gamma_xca * attended)
        y = b.mlp(b.norm(tokens.reshape(B, H, W, C)))
        if b.gamma is not None:
            y = b.gamma * y
        return x + y.permute(0, 3, 1, 2)


_FORMS = ((FusedXCA, NcnnXCA), (XCAFirst, NcnnXCAFirst), (XCA, NcnnTrainingXCA), (BatchNormLast, NcnnBatchNormLast),
          (SSDLiteRaw, NcnnSSDLiteRaw))


def _forms() -> tuple:
    """``_FORMS``, plus timm's ``CrossCovarianceAttn`` (the bench's timm EdgeNeXt: the same
    attributes and function as our training ``XCA``) and its ``SplitTransposeBlock`` where timm
    has them."""
    try:
        from timm.models.edgenext import CrossCovarianceAttn, SplitTransposeBlock
    except ImportError:  # another timm: its EdgeNeXt exports as it is
        return _FORMS
    return (*_FORMS, (CrossCovarianceAttn, NcnnTrainingXCA), (SplitTransposeBlock, NcnnTimmSDTA))


def _ncnn_form(module: nn.Module):
    for kind, form in _forms():
        if type(module) is kind:
            return form
    return None


def ncnn_graph_form(module: nn.Module) -> nn.Module:
    """``module`` with each XCA (and a detector's box decoding) replaced by its ncnn form, same
    weights, same function, on a copy; a module without any is returned as it is (so applying
    it twice is applying it once)."""
    if not any(_ncnn_form(m) is not None for m in module.modules()):
        return module
    out = copy.deepcopy(module)
    for parent in list(out.modules()):  # NOTE: the forms share their children: later visits still reach them
        for name, child in list(parent.named_children()):
            form = _ncnn_form(child)
            if form is not None:
                setattr(parent, name, form(child).eval())
    form = _ncnn_form(out)
    return (out if form is None else form(out)).eval()
