"""What an export is checked with: fixed example inputs, the fp32 tolerance, the max-abs difference.

Inside ``deploy/`` an input size is always ``(height, width)``: the public entry points
(``fuse``, ``export_model``, ``quantize_executorch``, ``calibration_tensor``) normalise what
the user gave once, with ``edgenext.models.edgenext.input_hw``, and pass the pair on.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

# fp32 exports must reproduce eager PyTorch to this max-abs difference (the bound).
FP32_TOLERANCE = 1e-4

HW = tuple[int, int]  # (height, width), already checked by input_hw


def example_input(batch: int, size: HW, in_chans: int = 3, seed: int = 0) -> torch.Tensor:
    """A fixed, seeded ``(batch, in_chans, height, width)`` input: parity lines are reproducible run to run."""
    height, width = size
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, in_chans, height, width, generator=gen)


def example_images(batch: int, size: HW, in_chans: int = 3, seed: int = 0) -> torch.Tensor:
    """A fixed, seeded batch of images in [0, 1]: what the detectors and segmenters take."""
    height, width = size
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, in_chans, height, width, generator=gen)


def as_outputs(out: Union[torch.Tensor, Sequence[torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """A module's output as a tuple of tensors (a single tensor is a one-tuple)."""
    return (out,) if isinstance(out, torch.Tensor) else tuple(out)


def max_abs_diff(a: Union[torch.Tensor, np.ndarray], b: Union[torch.Tensor, np.ndarray]) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    if a.shape != b.shape:
        raise RuntimeError(f"exported model returned shape {a.shape}, eager PyTorch {b.shape}")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
