"""An independent, deliberately plain re-statement of the reference EdgeNeXt (paper + the
official release's key layout), used only as a numerical reference for our implementation:
channels-first throughout, per-batch positional encoding, list-size splits."""

import math

import pytest
import torch
from torch import nn

from edgenext.models import get_variant


class RefLN2d(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):  # (B, C, H, W)
        mu = x.mean(1, keepdim=True)
        var = ((x - mu) ** 2).mean(1, keepdim=True)
        return self.weight[:, None, None] * (x - mu) / torch.sqrt(var + 1e-6) + self.bias[:, None, None]


def ref_norm(kind, c):
    return RefLN2d(c) if kind == "ln" else nn.BatchNorm2d(c)


def ref_act(kind):
    return nn.GELU() if kind == "ln" else nn.Hardswish()


def pointwise(layer, x):  # a Linear applied over the channels of (B, C, H, W)
    return torch.einsum("bchw,oc->bohw", x, layer.weight) + layer.bias[None, :, None, None]


class RefPos(nn.Module):
    def __init__(self, dim, hidden=32):
        super().__init__()
        self.hidden = hidden
        self.token_projection = nn.Conv2d(2 * hidden, dim, 1)

    def forward(self, b, h, w):
        ys = torch.arange(1, h + 1, dtype=torch.float32).view(1, h, 1).expand(b, h, w)
        xs = torch.arange(1, w + 1, dtype=torch.float32).view(1, 1, w).expand(b, h, w)
        ys = ys / (h + 1e-6) * 2 * math.pi
        xs = xs / (w + 1e-6) * 2 * math.pi
        i = torch.arange(self.hidden, dtype=torch.float32)
        freq = 10000 ** (2 * (i // 2) / self.hidden)
        feats = []
        for coord in (ys, xs):
            p = coord[..., None] / freq  # (B, H, W, D)
            out = torch.empty_like(p)
            out[..., 0::2] = p[..., 0::2].sin()
            out[..., 1::2] = p[..., 1::2].cos()
            feats.append(out)
        return self.token_projection(torch.cat(feats, dim=3).permute(0, 3, 1, 2))


class RefXCA(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # (B, C, H, W)
        b, c, h, w = x.shape
        qkv = pointwise(self.qkv, x).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
        q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        k = k / k.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        attn = torch.softmax(torch.einsum("bhcn,bhdn->bhcd", q, k) * self.temperature, dim=-1)
        out = torch.einsum("bhcd,bhdn->bhcn", attn, v).reshape(b, c, h, w)
        return pointwise(self.proj, out)


class RefBottleneck(nn.Module):
    """norm -> pwconv1 -> act -> pwconv2 -> layer scale, the tail both official blocks share."""

    def __init__(self, dim, kind):
        super().__init__()
        self.norm = ref_norm(kind, dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = ref_act(kind)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def bottleneck(self, x):
        return self.gamma[:, None, None] * pointwise(self.pwconv2, self.act(pointwise(self.pwconv1, self.norm(x))))


class RefConvBlock(RefBottleneck):
    def __init__(self, dim, k, kind):
        super().__init__(dim, kind)
        self.dwconv = nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim, bias=kind == "ln")

    def forward(self, x):
        return x + self.bottleneck(self.dwconv(x))


class RefSDTA(RefBottleneck):
    def __init__(self, dim, heads, scales, pos, kind):
        super().__init__(dim, kind)
        self.kind = kind
        self.width = math.ceil(dim / scales)
        self.convs = nn.ModuleList(nn.Conv2d(self.width, self.width, 3, padding=1, groups=self.width) for _ in range(scales - 1))
        self.pos_embd = RefPos(dim) if pos else None
        self.norm_xca = ref_norm(kind, dim)
        self.gamma_xca = nn.Parameter(torch.full((dim,), 1e-6))
        self.xca = RefXCA(dim, heads)

    def forward(self, x):
        shortcut = x
        groups = list(torch.split(x, self.width, dim=1))
        outs, prev = [], None
        for i, conv in enumerate(self.convs):
            prev = conv(groups[i] if prev is None else prev + groups[i])
            outs.append(prev)
        x = torch.cat(outs + groups[len(self.convs):], dim=1)
        b, c, h, w = x.shape
        if self.kind == "bn":  # the BN variants normalise first and keep the normalised tensor
            x = self.norm_xca(x)
            if self.pos_embd is not None:
                x = x + self.pos_embd(b, h, w)
            x = x + self.gamma_xca[:, None, None] * self.xca(x)
        else:
            if self.pos_embd is not None:
                x = x + self.pos_embd(b, h, w)
            x = x + self.gamma_xca[:, None, None] * self.xca(self.norm_xca(x))
        return shortcut + self.bottleneck(x)


class RefEdgeNeXt(nn.Module):
    def __init__(self, cfg, kind, num_classes=1000):
        super().__init__()
        self.kind = kind
        dims, depths = cfg["dims"], cfg["depths"]
        heads = cfg.get("heads", (8, 8, 8, 8))
        kernels, scales, pos = (3, 5, 7, 9), (2, 2, 3, 4), (False, True, False, False)
        bias = kind == "ln"
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4, bias=bias), ref_norm(kind, dims[0]))]
            + [nn.Sequential(ref_norm(kind, dims[i - 1]), nn.Conv2d(dims[i - 1], dims[i], 2, stride=2, bias=bias)) for i in range(1, 4)]
        )
        self.stages = nn.ModuleList()
        for i in range(4):
            blocks = [RefConvBlock(dims[i], kernels[i], kind) for _ in range(depths[i] - (1 if i else 0))]
            if i:
                blocks.append(RefSDTA(dims[i], heads[i], scales[i], pos[i], kind))
            self.stages.append(nn.Sequential(*blocks))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6) if kind == "ln" else nn.BatchNorm2d(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x):
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        x = self.norm(x.mean((2, 3))) if self.kind == "ln" else self.norm(x).mean((2, 3))
        return self.head(x)


def build_reference(name, num_classes=1000):
    variant, _ = get_variant(name)
    kind = "bn" if variant.config.get("norm_layer") == "batchnorm" else "ln"
    return RefEdgeNeXt(variant.config, kind, num_classes)


@pytest.fixture
def official_reference():
    return build_reference
