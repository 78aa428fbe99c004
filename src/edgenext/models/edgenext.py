"""The EdgeNeXt network: stages of convolution encoders ending in SDTA encoders (paper Sec. 3).

One class for every variant: sizes, the norm family (LayerNorm or BatchNorm) and the
activation are constructor arguments. The state-dict layout is timm's, so timm checkpoints
load as they are; the official release's layout is converted in ``weights.py``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..constants import DEFAULT_PRETRAINED_CFG
from .blocks import ConvEncoder, SDTAEncoder
from .head import ClassifierHead, check_pool_type
from .layers import ActLayer, NormName, RightPaddedConv2d, make_norm

MIN_INPUT_SIZE = 32
OUTPUT_STRIDES = (8, 16, 32)
#: layouts ``forward_intermediates`` returns maps in
OUTPUT_FORMATS = ("NCHW", "NHWC")

InputSize = Union[int, tuple[int, int]]


def input_hw(input_size: InputSize) -> tuple[int, int]:
    """``(height, width)`` from a side or a pair, checked against the 32x32 minimum."""
    hw = (input_size, input_size) if isinstance(input_size, int) else (int(input_size[0]), int(input_size[1]))
    if min(hw) < MIN_INPUT_SIZE:
        raise ValueError(f"input size {input_size} is below the {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} minimum of EdgeNeXt")
    return hw


def stage_map_sizes(input_size: InputSize, num_stages: int = 4, output_stride: int = 32) -> list[tuple[int, int]]:
    """Map size of each stage: the 4x4 stem and each 2x2 downsampling floor the size; a
    downsampling turned into stride 1 by ``output_stride`` keeps it."""
    h, w = input_hw(input_size)
    h, w = h // 4, w // 4
    sizes = [(h, w)]
    for stride in stage_strides(num_stages, output_stride)[1:]:
        h, w = h // stride, w // stride
        sizes.append((h, w))
    return sizes


def stage_strides(num_stages: int, output_stride: int = 32) -> list[int]:
    """Stride of each stage's downsampling (stage 0: the stem's 4): 2, or 1 where a stride of 2
    would take the map below ``output_stride`` (8, 16 or 32)."""
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride={output_stride!r} is not supported: use one of {OUTPUT_STRIDES}")
    strides, reduction = [4], 4
    for _ in range(num_stages - 1):
        stride = 2 if reduction * 2 <= output_stride else 1
        reduction *= stride
        strides.append(stride)
    return strides


def _is_tracing() -> bool:
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling() or exporting()


def check_input(x: torch.Tensor, in_chans: int) -> None:
    """Clear errors for inputs the network cannot take (skipped while tracing or exporting;
    ``torch.fx`` records it as one opaque call, so a traced graph still checks its input)."""
    if _is_tracing():
        return
    if x.dim() != 4:
        raise ValueError(f"EdgeNeXt expects a (batch, channels, height, width) tensor, got shape {tuple(x.shape)}")
    if x.shape[1] != in_chans:
        raise ValueError(f"EdgeNeXt was built for {in_chans} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    if x.shape[2] < MIN_INPUT_SIZE or x.shape[3] < MIN_INPUT_SIZE:
        raise ValueError(
            f"EdgeNeXt needs inputs of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}, got {x.shape[2]}x{x.shape[3]}: "
            f"resize or pad the image"
        )


# NOTE: without this, symbolic tracing would branch on the traced input's shape and fail
torch.fx.wrap("check_input")


class EdgeNeXtStage(nn.Module):
    """Optional downsampling (norm + 2x2 conv, stride 2), conv encoders, then SDTA encoders.

    ``stride=1`` (output stride below 32) keeps the map size: the 2x2 conv, dilated by
    ``downsample_dilation``, reads its input padded on the right and bottom, and the blocks'
    depth-wise convs are dilated by ``dilation``. The parameters are the same in both cases.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int,
        *,
        depth: int,
        num_sdta: int,
        downsample: bool,
        kernel_size: int,
        num_heads: int,
        scales: int,
        use_pos_embed: bool,
        drop_path_rates: Sequence[float],
        block_kwargs: dict[str, Any],
        sdta_kwargs: dict[str, Any],
        norm_layer: NormName,
        conv_bias: bool,
        xca_norm_shortcut: bool,
        stride: int = 2,
        downsample_dilation: int = 1,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.grad_checkpointing = False
        if downsample:
            if stride == 2:
                conv = nn.Conv2d(in_dim, dim, kernel_size=2, stride=2, bias=conv_bias)
            else:
                # NOTE: a 2x2 kernel at stride 1 needs one row and column more than the map has;
                # padding only right/bottom (not both sides) keeps the size exact and keeps the
                # stride-2 alignment: output (p) reads inputs p and p + d, so the even (at OS 8,
                # every fourth) positions are where the stride-2 conv's outputs were.
                conv = RightPaddedConv2d(in_dim, dim, kernel_size=2, dilation=downsample_dilation, bias=conv_bias)
            self.downsample = nn.Sequential(make_norm(norm_layer, in_dim, channels_last=False), conv)
        else:
            self.downsample = nn.Identity()
        blocks: list[nn.Module] = []
        for j in range(depth):
            if j >= depth - num_sdta:
                blocks.append(
                    SDTAEncoder(
                        dim,
                        num_heads=num_heads,
                        scales=scales,
                        use_pos_embed=use_pos_embed,
                        xca_norm_shortcut=xca_norm_shortcut,
                        drop_path=drop_path_rates[j],
                        dilation=dilation,
                        **block_kwargs,
                        **sdta_kwargs,
                    )
                )
            else:
                blocks.append(
                    ConvEncoder(
                        dim,
                        kernel_size=kernel_size,
                        conv_bias=conv_bias,
                        drop_path=drop_path_rates[j],
                        dilation=dilation,
                        **block_kwargs,
                    )
                )
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            for block in self.blocks:
                x = checkpoint(block, x, use_reentrant=False)
            return x
        return self.blocks(x)


def _per_stage(name: str, value: Sequence[Any], num_stages: int) -> tuple[Any, ...]:
    value = tuple(value)
    if len(value) != num_stages:
        raise ValueError(f"{name} has {len(value)} entries but depths defines {num_stages} stages: give one per stage")
    return value


class EdgeNeXt(nn.Module):
    """EdgeNeXt (Maaz et al., 2022). Defaults: the shared settings of the released variants.

    Args:
        depths: blocks per stage (the last ``sdta_blocks[i]`` of stage i are SDTA encoders).
        dims: channels per stage.
        heads: XCA heads per stage.
        kernel_sizes: depth-wise kernel of the convolution encoders, per stage.
        sdta_scales: channel groups of the SDTA split, per stage.
        sdta_blocks: number of SDTA encoders per stage.
        sdta_pos_embed: whether the stage's SDTA encoders add the Fourier positional encoding.
        expand_ratio: MLP hidden width / channels.
        drop_path_rate: stochastic depth, linearly increasing over all blocks up to this value.
        layer_scale_init: initial layer scale (0 disables layer scale).
        drop_rate: dropout before the classifier.
        norm_layer: 'layernorm' or 'batchnorm'.
        act_layer: 'gelu', 'hardswish', ... or an ``nn.Module`` class.
        conv_bias: bias on the stem, downsampling and depth-wise convs (off in the BN variants).
        head_norm_first: normalise before pooling (the BN variants) instead of after.
        xca_norm_shortcut: the BN variants' SDTA wiring (see ``SDTAEncoder``).
        qkv_bias, attn_drop, proj_drop: XCA options.
        head_init_scale: multiplies the initial classifier weights and bias.
        output_stride: 32, or 16 / 8 for dense prediction: the downsamplings that would go
            below it run at stride 1 and every depth-wise conv after them is dilated (by 2,
            then 4), so the maps keep their size; same parameters, so ImageNet weights load.
        global_pool: the head's pooling, timm's names: 'avg' (the paper's), 'max', 'avgmax',
            or '' (no pooling, with ``num_classes=0``: ``forward`` returns the normalised map).
    """

    def __init__(
        self,
        depths: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (24, 48, 88, 168),
        heads: Sequence[int] = (8, 8, 8, 8),
        kernel_sizes: Sequence[int] = (3, 5, 7, 9),
        sdta_scales: Sequence[int] = (2, 2, 3, 4),
        sdta_blocks: Sequence[int] = (0, 1, 1, 1),
        sdta_pos_embed: Sequence[bool] = (False, True, False, False),
        *,
        in_chans: int = 3,
        num_classes: int = 1000,
        expand_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        layer_scale_init: float = 1e-6,
        drop_rate: float = 0.0,
        norm_layer: NormName = "layernorm",
        act_layer: ActLayer = "gelu",
        conv_bias: bool = True,
        head_norm_first: bool = False,
        xca_norm_shortcut: bool = False,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        head_init_scale: float = 1.0,
        output_stride: int = 32,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        depths = tuple(int(d) for d in depths)
        n = len(depths)
        if n == 0 or min(depths) < 0:
            raise ValueError(f"depths={depths} must list a non-negative number of blocks for at least one stage")
        strides = stage_strides(n, output_stride)
        dims = _per_stage("dims", dims, n)
        heads = _per_stage("heads", heads, n)
        kernel_sizes = _per_stage("kernel_sizes", kernel_sizes, n)
        sdta_scales = _per_stage("sdta_scales", sdta_scales, n)
        sdta_blocks = _per_stage("sdta_blocks", sdta_blocks, n)
        sdta_pos_embed = _per_stage("sdta_pos_embed", sdta_pos_embed, n)
        for i in range(n):
            if not 0 <= sdta_blocks[i] <= depths[i]:
                raise ValueError(f"stage {i}: sdta_blocks={sdta_blocks[i]} must be between 0 and depths={depths[i]}")
            if sdta_blocks[i] and dims[i] % heads[i]:
                raise ValueError(f"stage {i}: dims={dims[i]} is not divisible by heads={heads[i]}")
            if kernel_sizes[i] % 2 == 0:
                raise ValueError(f"stage {i}: kernel_sizes={kernel_sizes[i]} must be odd to keep the map size")
        if not 0.0 <= drop_path_rate < 1.0 or not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_path_rate={drop_path_rate} and drop_rate={drop_rate} must be in [0, 1)")

        check_pool_type(global_pool, num_classes)
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = dims[-1]
        self.drop_rate = drop_rate
        self.output_stride = output_stride
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4, bias=conv_bias),
            make_norm(norm_layer, dims[0], channels_last=False),
        )
        total = sum(depths)
        rates = [drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        block_kwargs = dict(expand_ratio=expand_ratio, norm_layer=norm_layer, act_layer=act_layer, layer_scale_init=layer_scale_init)
        sdta_kwargs = dict(qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        stages = []
        reductions, reduction, dilation = [], 1, 1
        for i in range(n):
            start = sum(depths[:i])
            reduction *= strides[i]
            reductions.append(reduction)
            downsample_dilation = dilation
            if i > 0 and strides[i] == 1:
                dilation *= 2
            stage = EdgeNeXtStage(
                dims[i - 1] if i else dims[0],
                dims[i],
                depth=depths[i],
                num_sdta=sdta_blocks[i],
                downsample=i > 0,
                kernel_size=kernel_sizes[i],
                num_heads=heads[i],
                scales=sdta_scales[i],
                use_pos_embed=bool(sdta_pos_embed[i]),
                drop_path_rates=rates[start : start + depths[i]],
                block_kwargs=block_kwargs,
                sdta_kwargs=sdta_kwargs,
                norm_layer=norm_layer,
                conv_bias=conv_bias,
                xca_norm_shortcut=xca_norm_shortcut,
                stride=strides[i],
                downsample_dilation=downsample_dilation,
                dilation=dilation,
            )
            stages.append(stage)
        self.stages = nn.Sequential(*stages)
        self.feature_info = [
            dict(num_chs=dims[i], reduction=reductions[i], module=f"stages.{i}", stage=i) for i in range(n)
        ]
        self.head = ClassifierHead(dims[-1], num_classes, norm_layer=norm_layer, norm_first=head_norm_first,
                                   drop_rate=drop_rate, global_pool=global_pool)
        self.pretrained_cfg = complete_pretrained_cfg(dict(DEFAULT_PRETRAINED_CFG), in_chans=in_chans,
                                                      num_classes=num_classes, output_stride=output_stride)
        self.apply(_init_weights)
        if isinstance(self.head.fc, nn.Linear):
            self.head.fc.weight.data.mul_(head_init_scale)
            self.head.fc.bias.data.mul_(head_init_scale)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map, ``(B, C, H/s, W/s)`` with s the output stride (before the head's norm)."""
        check_input(x, self.in_chans)
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, normalise and classify a ``forward_features`` map; ``pre_logits`` stops before the Linear."""
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's older name of ``pretrained_cfg`` (the same dict)."""
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg: dict[str, Any]) -> None:
        self.pretrained_cfg = cfg

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Union[int, Sequence[int], None] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[list[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]:
        """Stage outputs ``(B, C_i, H/s_i, W/s_i)`` for the stages in ``indices`` (timm's contract).

        ``indices``: an int n takes the last n stages, a sequence takes those stage indices
        (negative counts from the end), None takes all. ``norm`` normalises the last stage's
        map with the head's norm where it comes before pooling (the BatchNorm variants; the
        LayerNorm variants normalise the pooled vector, so their maps are returned as they
        are). ``output_fmt`` 'NHWC' returns channels-last maps. Returns ``(final_map,
        intermediates)``, the final map as ``forward_features`` gives it, or just the list when
        ``intermediates_only`` (which, like ``stop_early``, stops after the last index).
        """
        if output_fmt not in OUTPUT_FORMATS:
            raise ValueError(f"output_fmt={output_fmt!r} is not supported: use one of {', '.join(OUTPUT_FORMATS)}")
        take = resolve_indices(indices, len(self.stages))
        check_input(x, self.in_chans)
        x = self.stem(x)
        last_stage = len(self.stages) - 1
        last = max(take) if (intermediates_only or stop_early) else last_stage
        intermediates = []
        for i, stage in enumerate(self.stages):
            if i > last:
                break
            x = stage(x)
            if i in take:
                y = self.head.norm(x) if norm and i == last_stage and self.head.norm_first else x
                intermediates.append(y.permute(0, 2, 3, 1) if output_fmt == "NHWC" else y)  # (B, H, W, C)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self, indices: Union[int, Sequence[int], None] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop what ``forward_intermediates(x, indices)`` does not need; the kept stage indices.

        Stages after the last index go; ``prune_head`` removes the classifier and the pooling
        (``forward`` then returns the map), ``prune_norm`` the head's norm (also dropped when
        stages are, as it was sized for the last one). Used by ``feature_cls='getter'``.
        """
        take = resolve_indices(indices, len(self.stages))
        keep = max(take) + 1
        pruned_end = keep < len(self.stages)
        if pruned_end and not prune_head:
            raise ValueError(f"indices={indices} drop the last stage, which the classifier needs: pass prune_head=True")
        if pruned_end:
            self.stages = self.stages[:keep]
            self.feature_info = self.feature_info[:keep]
            self.num_features = self.head_hidden_size = self.feature_info[-1]["num_chs"]
        if prune_norm or pruned_end:
            self.head.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs (0: none);
        ``global_pool`` (when given) changes the pooling too, e.g. ``reset_classifier(0, '')`` for maps."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        pool = self.head.global_pool if global_pool is None else global_pool
        check_pool_type(pool, num_classes)
        self.head.global_pool = pool
        self.num_classes = num_classes
        device = next(self.parameters()).device
        fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        fc.apply(_init_weights)
        self.head.fc = fc.to(device)

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass to save activation memory (same outputs)."""
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups by name, for timm's layer-wise lr decay (``create_optimizer_v2(layer_decay=...)``)."""
        if coarse:
            return dict(stem=r"^stem", blocks=r"^stages\.(\d+)")
        return dict(stem=r"^stem", blocks=[(r"^stages\.(\d+)\.downsample", (0,)), (r"^stages\.(\d+)\.blocks\.(\d+)", None)])

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Names of parameters the paper's recipe exempts from weight decay besides norms and biases."""
        return {name for name, _ in self.named_parameters() if name.endswith(("gamma", "gamma_xca", "temperature"))}


def resolve_indices(indices: Union[int, Sequence[int], None], num_stages: int) -> list[int]:
    """Stage indices from an int (last n), a sequence (negative allowed) or None (all)."""
    if indices is None:
        return list(range(num_stages))
    if isinstance(indices, int):
        if not 0 < indices <= num_stages:
            raise ValueError(f"indices={indices}: take between 1 and {num_stages} stages")
        return list(range(num_stages - indices, num_stages))
    out = []
    for i in indices:
        j = i + num_stages if i < 0 else i
        if not 0 <= j < num_stages:
            raise ValueError(f"stage index {i} is out of range for {num_stages} stages")
        out.append(j)
    if not out:
        raise ValueError("indices is empty: name at least one stage")
    return sorted(set(out))


def complete_pretrained_cfg(cfg: dict[str, Any], *, in_chans: int, num_classes: int, output_stride: int = 32) -> dict[str, Any]:
    """``cfg`` with every key timm's configs carry, consistent with the model: input channels,
    classes, and ``pool_size`` (the last map's size at the configured input size)."""
    size = tuple(cfg.get("input_size") or DEFAULT_PRETRAINED_CFG["input_size"])[-2:]
    cfg.update(
        num_classes=num_classes,
        input_size=(in_chans, *size),
        pool_size=tuple(s // output_stride for s in size),
        min_input_size=(in_chans, MIN_INPUT_SIZE, MIN_INPUT_SIZE),
    )
    for key, value in DEFAULT_PRETRAINED_CFG.items():
        cfg.setdefault(key, value)
    return cfg


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
