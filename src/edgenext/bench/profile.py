"""Parameter and multiply-add counts, counted the way the paper did (fvcore at 256x256)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from ..constants import PAPER_MADDS_M, PAPER_PARAMS

from ..models.edgenext import InputSize
from ..models.edgenext import input_hw as _hw


def count_madds(model: nn.Module, input_size: InputSize = 256, in_chans: int = 3, *, paper_convention: bool = True) -> int:
    """fvcore's multiply-add count (one multiply-add = 1) for one image of ``input_size``.

    ``paper_convention``: leave out the channels-first LayerNorms (stem, downsampling). The
    reference implementation computes those from elementary ops that fvcore does not count,
    so the paper's figures exclude them; with it, our counts equal the paper's.
    """
    import warnings

    from ..models.layers import LayerNorm2d

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import trips torch.jit deprecation warnings
        from fvcore.nn import FlopCountAnalysis

    height, width = _hw(input_size)
    param = next(model.parameters())
    x = torch.zeros(1, in_chans, height, width, dtype=param.dtype, device=param.device)
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
    height, width = _hw(input_size)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "madds": count_madds(model, (height, width), getattr(model, "in_chans", 3)),
        "input_size": [height, width],
    }


def profile_variant(name: str, input_size: InputSize = 256, num_classes: int = 1000) -> dict[str, Any]:
    """``profile`` of a registered variant, beside the paper's figures where it has them."""
    from ..models import create_model

    model = create_model(name, num_classes=num_classes)
    row: dict[str, Any] = {"model": name, **profile(model, input_size)}
    paper_params = PAPER_PARAMS.get(name) if num_classes == 1000 else None
    paper_madds = PAPER_MADDS_M.get(name) if _hw(input_size) == (256, 256) and num_classes == 1000 else None
    row["paper_params"] = paper_params
    row["paper_madds"] = int(round(paper_madds * 1e6)) if paper_madds is not None else None
    row["params_match"] = paper_params == row["params"] if paper_params is not None else None
    row["madds_diff_pct"] = (
        round(100.0 * (row["madds"] - row["paper_madds"]) / row["paper_madds"], 3) if paper_madds is not None else None
    )
    return row
