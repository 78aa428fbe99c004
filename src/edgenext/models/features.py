"""Feature-extraction wrappers of ``EdgeNeXt`` (``create_model(..., features_only=True)``).

Two classes, as in timm: ``EdgeNeXtFeatures`` (the default) shares the classifier's stem and
stages and returns the maps of ``out_indices``; ``EdgeNeXtFeatureGetter``
(``feature_cls='getter'``) prunes a whole model and calls its ``forward_intermediates``, so
it can also normalise the last map and return channels-last maps. Both carry a
``FeatureInfo`` with timm's accessors (``channels()``, ``reduction()``, ``module_name()``,
``get_dicts()``).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch
from torch import nn

from .edgenext import EdgeNeXt, OUTPUT_FORMATS, check_input, resolve_indices

Index = Union[int, Sequence[int], None]

#: feature_cls values create_model takes
FEATURE_CLASSES = ("default", "getter")


class FeatureInfo:
    """Channels, reduction and module name of each stage, and which stages a model returns.

    Accessors without ``idx`` answer for the returned stages (``out_indices``); an int or a
    sequence ``idx`` names stages of the whole network. As in timm, indexing, ``len`` and
    iteration go over every stage's dict (returned or not).
    """

    def __init__(self, info: Sequence[dict[str, Any]], out_indices: Sequence[int]) -> None:
        self.info = [dict(d, index=i) for i, d in enumerate(info)]
        self.out_indices = tuple(out_indices)

    def get(self, key: str, idx: Index = None) -> Union[Any, list[Any]]:
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, int):
            return self.info[idx][key]
        return [self.info[i][key] for i in idx]

    def get_dicts(self, keys: Optional[Sequence[str]] = None, idx: Index = None) -> Union[dict, list[dict]]:
        def pick(i: int) -> dict[str, Any]:
            return dict(self.info[i]) if keys is None else {k: self.info[i][k] for k in keys}

        if isinstance(idx, int):
            return pick(idx)
        return [pick(i) for i in (self.out_indices if idx is None else idx)]

    def channels(self, idx: Index = None) -> Union[int, list[int]]:
        return self.get("num_chs", idx)

    def reduction(self, idx: Index = None) -> Union[int, list[int]]:
        return self.get("reduction", idx)

    def module_name(self, idx: Index = None) -> Union[str, list[str]]:
        return self.get("module", idx)

    def from_other(self, out_indices: Sequence[int]) -> "FeatureInfo":
        return FeatureInfo(self.info, out_indices)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo(channels={self.channels()}, reduction={self.reduction()}, out_indices={self.out_indices})"


class StageMaps:
    """What a backbone of stage maps tells its heads, from its ``feature_info``: each output's
    ``channels`` and ``reductions`` (shared by ``EdgeNeXtFeatures`` and its fused form)."""

    feature_info: FeatureInfo

    @property
    def channels(self) -> list[int]:
        return self.feature_info.channels()

    @property
    def reductions(self) -> list[int]:
        return self.feature_info.reduction()

    def stage_maps(self, x: torch.Tensor, view: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
                   ) -> list[torch.Tensor]:
        """``self.stem``, then ``self.stages`` in turn; the output of each stage in ``self.out_indices``
        (through ``view`` if given: a channels-last backbone's NCHW view)."""
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x if view is None else view(x))
        return outs


class EdgeNeXtFeatures(StageMaps, nn.Module):
    """The backbone of an ``EdgeNeXt`` returning the maps of the stages in ``out_indices``.

    Parameter names are the classifier's (``stem.*``, ``stages.*``), so backbone weights
    move between the two. ``feature_info`` has each output's channels and reduction.
    """

    def __init__(self, model: EdgeNeXt, out_indices: Index = (0, 1, 2, 3)) -> None:
        super().__init__()
        self.out_indices = tuple(resolve_indices(out_indices, len(model.stages)))
        self.in_chans = model.in_chans
        self.stem = model.stem
        self.stages = nn.Sequential(*list(model.stages)[: max(self.out_indices) + 1])
        self.feature_info = FeatureInfo(model.feature_info, self.out_indices)
        self.pretrained_cfg = dict(model.pretrained_cfg)

    @property
    def default_cfg(self) -> dict[str, Any]:
        return self.pretrained_cfg

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enable

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_input(x, self.in_chans)
        return self.stage_maps(x)


class EdgeNeXtFeatureGetter(nn.Module):
    """A whole ``EdgeNeXt``, pruned to ``out_indices``, returning ``forward_intermediates``' maps.

    ``norm``: normalise the last stage's map with the head's norm where the network has one
    before pooling (the BatchNorm variants); ``output_fmt``: 'NCHW' or 'NHWC'.
    Parameter names carry the ``model.`` prefix (timm's ``FeatureGetterNet`` layout).
    """

    def __init__(self, model: EdgeNeXt, out_indices: Index = (0, 1, 2, 3), *, norm: bool = False,
                 output_fmt: str = "NCHW") -> None:
        super().__init__()
        if output_fmt not in OUTPUT_FORMATS:
            raise ValueError(f"output_fmt={output_fmt!r} is not supported: use one of {', '.join(OUTPUT_FORMATS)}")
        self.out_indices = tuple(model.prune_intermediate_layers(out_indices, prune_norm=not norm))
        self.model = model
        self.norm = norm
        self.output_fmt = output_fmt
        self.feature_info = FeatureInfo(model.feature_info, self.out_indices)
        self.pretrained_cfg = dict(model.pretrained_cfg)

    @property
    def default_cfg(self) -> dict[str, Any]:
        return self.pretrained_cfg

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.model.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, self.out_indices, norm=self.norm, output_fmt=self.output_fmt,
                                                intermediates_only=True)


def feature_model(model: EdgeNeXt, out_indices: Index, feature_cls: Optional[str] = None,
                  **kwargs: Any) -> Union[EdgeNeXtFeatures, EdgeNeXtFeatureGetter]:
    """The ``features_only`` wrapper ``feature_cls`` names (None / 'default', or 'getter')."""
    kind = feature_cls or "default"
    if kind not in FEATURE_CLASSES:
        raise ValueError(f"feature_cls={feature_cls!r} is not supported: use one of {', '.join(FEATURE_CLASSES)}")
    if kind == "getter":
        return EdgeNeXtFeatureGetter(model, out_indices, **kwargs)
    if kwargs:
        raise ValueError(f"{', '.join(sorted(kwargs))} only apply with feature_cls='getter'")
    return EdgeNeXtFeatures(model, out_indices)
