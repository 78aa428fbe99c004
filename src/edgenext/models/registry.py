"""The registered EdgeNeXt variants, their released weights, and ``create_model``."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from ..constants import DEFAULT_PRETRAINED_CFG, RELEASE_TOP1
from .edgenext import EdgeNeXt, complete_pretrained_cfg
from .features import EdgeNeXtFeatureGetter, EdgeNeXtFeatures, feature_model
from .hub import hub_files, is_hub_name
from .weights import (
    Checkpoint,
    PathLike,
    checkpoint_num_classes,
    download_weights,
    load_state_dict_into,
    open_checkpoint,
    read_checkpoint,
)

_RELEASES_URL = "https://github.com/mmaaz60/EdgeNeXt/releases/download"


@dataclass(frozen=True)
class Release:
    """A released checkpoint and the settings it was evaluated with."""

    tag: str
    url: str
    top1: float
    crop_pct: float = 0.875
    note: str = ""


@dataclass(frozen=True)
class Variant:
    name: str
    config: dict[str, Any]
    releases: tuple[Release, ...]

    @property
    def default_release(self) -> Release:
        return self.releases[0]


_BN_HS = dict(norm_layer="batchnorm", act_layer="hardswish", conv_bias=False, head_norm_first=True, xca_norm_shortcut=True)
_XX_SMALL = dict(depths=(2, 2, 6, 2), dims=(24, 48, 88, 168), heads=(4, 4, 4, 4))
_X_SMALL = dict(depths=(3, 3, 9, 3), dims=(32, 64, 100, 192), heads=(4, 4, 4, 4))
_SMALL = dict(depths=(3, 3, 9, 3), dims=(48, 96, 160, 304), heads=(8, 8, 8, 8))
_BASE = dict(depths=(3, 3, 9, 3), dims=(80, 160, 288, 584), heads=(8, 8, 8, 8))


def _release(version: str, file: str, tag: str = "in1k", crop_pct: float = 0.875, note: str = "") -> dict[str, Any]:
    return dict(tag=tag, url=f"{_RELEASES_URL}/{version}/{file}", crop_pct=crop_pct, note=note)


def _variant(name: str, config: dict[str, Any], *releases: dict[str, Any]) -> Variant:
    """A variant and its releases, each with its published top-1 (``constants.RELEASE_TOP1``)."""
    return Variant(name, config, tuple(Release(top1=RELEASE_TOP1[f"{name}.{r['tag']}"], **r) for r in releases))


_VARIANTS = {
    v.name: v
    for v in (
        _variant("edgenext_xx_small", _XX_SMALL, _release("v1.0", "edgenext_xx_small.pth")),
        _variant("edgenext_x_small", _X_SMALL, _release("v1.0", "edgenext_x_small.pth")),
        _variant(
            "edgenext_small",
            _SMALL,
            _release("v1.0", "edgenext_small.pth"),
            _release("v1.1", "edgenext_small_usi.pth", tag="usi", crop_pct=0.95, note="USI distillation"),
        ),
        _variant(
            "edgenext_base",
            _BASE,
            _release("v1.2", "edgenext_base.pth"),
            _release("v1.2", "edgenext_base_usi.pth", tag="usi", crop_pct=0.95, note="USI distillation"),
            _release("v1.21", "edgenext_base_IN21K.pth", tag="in21k_ft_in1k", note="ImageNet-21K pretraining"),
        ),
        _variant("edgenext_xx_small_bn_hs", {**_XX_SMALL, **_BN_HS}, _release("v1.0", "edgenext_xx_small_bn_hs.pth")),
        _variant("edgenext_x_small_bn_hs", {**_X_SMALL, **_BN_HS}, _release("v1.0", "edgenext_x_small_bn_hs.pth")),
        _variant("edgenext_small_bn_hs", {**_SMALL, **_BN_HS}, _release("v1.0", "edgenext_small_bn_hs.pth")),
    )
}


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered variants matching a shell-style ``pattern``."""
    return sorted(name for name in _VARIANTS if fnmatch.fnmatch(name, pattern))


def get_variant(name: str) -> tuple[Variant, Optional[Release]]:
    """The variant and, for ``name.tag``, the release with that tag."""
    base, _, tag = name.partition(".")
    if base not in _VARIANTS:
        close = difflib.get_close_matches(base, list(_VARIANTS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}")
    variant = _VARIANTS[base]
    if not tag:
        return variant, None
    for release in variant.releases:
        if release.tag == tag:
            return variant, release
    tags = ", ".join(f"{base}.{r.tag}" for r in variant.releases)
    raise ValueError(f"{base} has no release tagged {tag!r}; released: {tags}")


def build_meta_model(name: str) -> EdgeNeXt:
    """A variant built on the meta device (no memory, no init cost): for shapes and counts."""
    variant, _ = get_variant(name)
    with torch.device("meta"):
        return EdgeNeXt(**variant.config)


def guess_variant(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The registered variant whose weights (classifier aside) have exactly these shapes, if any."""
    shapes = {k: tuple(v.shape) for k, v in state.items() if not k.startswith("head.fc.")}
    for name in list_models():
        own = build_meta_model(name).state_dict()
        if {k: tuple(v.shape) for k, v in own.items() if not k.startswith("head.fc.")} == shapes:
            return name
    return None


def is_remote_weights(weights: PathLike) -> bool:
    """Whether ``read_weights`` downloads ``weights`` (an http(s) URL or ``hf-hub:`` name; once, into a cache)."""
    text = str(weights)
    return text.startswith(("http://", "https://")) or is_hub_name(text)


def read_weights(weights: PathLike) -> Checkpoint:
    """Read a checkpoint once, from a path, an http(s) URL (downloaded once into torch's hub cache)
    or ``hf-hub:ORG/REPO`` (the Hugging Face cache first, then the Hub).

    Its ``source`` (the path, URL or hub name as given) names it in every error. Pass the
    result to ``create_model(weights=...)`` to build a model without reading the file again.
    """
    text = str(weights)
    if is_hub_name(text):
        files = hub_files(text)
        pcfg = files.config.get("pretrained_cfg")
        return Checkpoint(
            source=text,
            path=files.weights,
            content=read_checkpoint(files.weights, source=f"{text} ({files.weights})"),
            architecture=files.config.get("architecture"),
            pretrained_cfg=dict(pcfg) if isinstance(pcfg, Mapping) else {},
        )
    if text.startswith(("http://", "https://")):
        local = download_weights(text)
        return open_checkpoint(local, source=f"{text} (cached as {local})")
    return open_checkpoint(weights)


def _pretrained_cfg(model: EdgeNeXt, variant: Variant, release: Optional[Release],
                    checkpoint: Optional[Checkpoint]) -> dict[str, Any]:
    cfg = dict(DEFAULT_PRETRAINED_CFG, architecture=variant.name)
    if release is not None:
        cfg.update(url=release.url, tag=release.tag, crop_pct=release.crop_pct)
    if checkpoint is not None and checkpoint.pretrained_cfg:
        # a hub repository's own evaluation settings (timm's config.json), for the keys we keep
        recorded = checkpoint.pretrained_cfg
        cfg.update({k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items() if k in cfg and k != "num_classes"})
        cfg["url"] = checkpoint.source
    return complete_pretrained_cfg(cfg, in_chans=model.in_chans, num_classes=model.num_classes,
                                   output_stride=model.output_stride)


def _build(variant: Variant, num_classes: int, overrides: dict[str, Any]) -> EdgeNeXt:
    allowed = set(inspect.signature(EdgeNeXt).parameters) - {"num_classes"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for {variant.name}; EdgeNeXt takes: {', '.join(sorted(allowed))}")
    return EdgeNeXt(**{**variant.config, **overrides}, num_classes=num_classes)


def create_model(
    name: str,
    *,
    pretrained: bool = False,
    weights: Union[PathLike, Checkpoint, None] = None,
    num_classes: Optional[int] = None,
    features_only: bool = False,
    out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
    feature_cls: Optional[str] = None,
    feature_cfg: Optional[dict[str, Any]] = None,
    prefer_ema: bool = True,
    **overrides: Any,
) -> Union[EdgeNeXt, EdgeNeXtFeatures, EdgeNeXtFeatureGetter]:
    """Create a registered variant, optionally with weights.

    Args:
        name: a variant (``edgenext_small``) or a variant and release tag (``edgenext_small.usi``).
        pretrained: load the variant's registered release (downloaded into torch's hub cache).
        weights: a checkpoint path, URL or ``hf-hub:ORG/REPO`` in the official, timm or our format
            (auto-detected), or a ``Checkpoint`` already read by ``read_weights`` (not read again).
        num_classes: classifier size; default 1000, or the checkpoint's when ``weights`` is given.
            A checkpoint whose classifier has another size loads everything else and the
            classifier is re-initialised (fine-tuning). 0 gives pooled features.
        features_only: return a backbone giving the stage maps: ``EdgeNeXtFeatures``, or with
            ``feature_cls='getter'`` an ``EdgeNeXtFeatureGetter`` (timm's two kinds).
        out_indices: the stages it returns (with ``features_only``; an int n: the last n).
        feature_cls: None / 'default' or 'getter'.
        feature_cfg: the getter's options: ``norm`` (bool), ``output_fmt`` ('NCHW' / 'NHWC').
        prefer_ema: for checkpoints holding both, load the EMA weights (the evaluated ones).
        **overrides: any ``EdgeNeXt`` constructor argument (``drop_path_rate=0.1``,
            ``global_pool=''``, ``in_chans=1``: a 3-channel checkpoint's first conv is adapted, ...).
    """
    variant, release = get_variant(name)
    if pretrained and weights is not None:
        raise ValueError("give either pretrained=True (the registered release) or weights=PATH, not both")
    if pretrained and release is None:
        release = variant.default_release
    checkpoint: Optional[Checkpoint] = None
    if isinstance(weights, Checkpoint):
        checkpoint = weights
    elif weights is not None or pretrained:
        checkpoint = read_weights(weights if weights is not None else release.url)
    state = checkpoint.state_dict(prefer_ema=prefer_ema) if checkpoint is not None else None
    if num_classes is None:
        num_classes = (checkpoint_num_classes(state) if state is not None else None)
        num_classes = 1000 if num_classes is None else num_classes
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    model = _build(variant, num_classes, overrides)
    if state is not None:
        load_state_dict_into(model, state, source=checkpoint.source, guess_variant=guess_variant)
    model.pretrained_cfg = _pretrained_cfg(model, variant, release, checkpoint)
    if features_only:
        return feature_model(model, out_indices, feature_cls, **dict(feature_cfg or {}))
    if feature_cls is not None or feature_cfg:
        raise ValueError("feature_cls and feature_cfg apply only with features_only=True")
    return model


def describe_variants() -> list[dict[str, Any]]:
    """One row per variant: name, architecture summary and releases (for ``edgenext models``)."""
    rows = []
    for name in list_models():
        variant = _VARIANTS[name]
        cfg = variant.config
        rows.append(
            dict(
                name=name,
                depths=list(cfg["depths"]),
                dims=list(cfg["dims"]),
                norm=cfg.get("norm_layer", "layernorm"),
                act=cfg.get("act_layer", "gelu"),
                releases=[
                    dict(name=f"{name}.{r.tag}", url=r.url, top1=r.top1, crop_pct=r.crop_pct, note=r.note)
                    for r in variant.releases
                ],
            )
        )
    return rows


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
