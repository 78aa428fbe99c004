"""Parameter and multiply-add counts, counted the way the paper did (fvcore at 256x256).

``edgenext.profile`` and every task's profile rows count with ``count_madds``; it sits beside the
network so that everything above (tasks, bench, the top-level package) can import it cheaply
(fvcore itself is imported on the first count)."""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch
from torch import nn

from ..constants import DEFAULT_PRETRAINED_CFG, PAPER_MADDS_M, PAPER_PARAMS
from .edgenext import InputSize, input_hw

#: the input (height, width) and classifier size the paper's figures are counted at
PAPER_INPUT = tuple(DEFAULT_PRETRAINED_CFG["input_size"][1:])
PAPER_CLASSES = DEFAULT_PRETRAINED_CFG["num_classes"]


def count_madds(model: nn.Module, input_size: InputSize = 256, in_chans: int = 3, *, paper_convention: bool = True) -> int:
    """fvcore's multiply-add count (one multiply-add = 1) for one image of ``input_size`` (a
    side or ``(height, width)``).

    ``paper_convention``: leave out the channels-first LayerNorms (stem, downsampling). The
    reference implementation computes those from elementary ops that fvcore does not count,
    so the paper's figures exclude them; with it, our counts equal the paper's.
    """
    return _count_madds(model, input_hw(input_size), in_chans, paper_convention)


def _count_madds(model: nn.Module, size: tuple[int, int], in_chans: int, paper_convention: bool) -> int:
    import warnings

    from .layers import LayerNorm2d

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import trips torch.jit deprecation warnings
        from fvcore.nn import FlopCountAnalysis

    param = next(model.parameters())
    x = torch.zeros(1, in_chans, *size, dtype=param.dtype, device=param.device)
    was_training = model.training
    model.eval()
    # fvcore logs every op it does not count (GELU, softmax, ...): not errors, keep them quiet
    fvcore_logger = logging.getLogger("fvcore.nn.jit_analysis")
    level = fvcore_logger.level
    fvcore_logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = FlopCountAnalysis(model, x)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            total = analysis.total()
            if paper_convention:
                by_module = analysis.by_module()
                total -= sum(by_module.get(n, 0) for n, m in model.named_modules() if isinstance(m, LayerNorm2d))
            return int(total)
    finally:
        fvcore_logger.setLevel(level)
        model.train(was_training)


def profile(model: nn.Module, input_size: InputSize = 256) -> dict[str, Any]:
    """Parameters and fvcore MAdds of ``model`` at ``input_size`` (an int or (height, width))."""
    return _profile(model, input_hw(input_size))


def _profile(model: nn.Module, size: tuple[int, int]) -> dict[str, Any]:
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "madds": _count_madds(model, size, getattr(model, "in_chans", 3), True),
        "input_size": list(size),
    }


def profile_variant(name: str, input_size: InputSize = 256, num_classes: int = PAPER_CLASSES) -> dict[str, Any]:
    """``profile`` of a registered variant, beside the paper's figures where it has them."""
    from .registry import create_model

    size = input_hw(input_size)
    model = create_model(name, num_classes=num_classes)
    row: dict[str, Any] = {"model": name, **_profile(model, size)}
    paper_params = PAPER_PARAMS.get(name) if num_classes == PAPER_CLASSES else None
    paper_madds = PAPER_MADDS_M.get(name) if size == PAPER_INPUT and num_classes == PAPER_CLASSES else None
    row["paper_params"] = paper_params
    row["paper_madds"] = int(round(paper_madds * 1e6)) if paper_madds is not None else None
    row["params_match"] = paper_params == row["params"] if paper_params is not None else None
    row["madds_diff_pct"] = diff_pct(row["madds"], row["paper_madds"])
    return row


def diff_pct(value: int, paper: Optional[int]) -> Optional[float]:
    """How far ``value`` is from the paper's figure ``paper``, in % (None without one)."""
    return round(100.0 * (value - paper) / paper, 3) if paper else None
