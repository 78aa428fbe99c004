"""What the int8 paths of several formats share: how calibration images are cut into batches.

Each runtime has its own quantiser (they disagree on what an int8 graph looks like); it lives
in its format's module. All of them start from the ``fuse``d model, so folded BatchNorms and
layer scales are quantised once.
"""

from __future__ import annotations

import torch

#: images per forward pass while calibrating (PT2E, NNCF)
CALIBRATION_BATCH = 32
#: calibration images of an int8 export when none are given (the digits training split)
DEFAULT_CALIBRATION_IMAGES = 128


def require_calibration(calibration: torch.Tensor | None, what: str) -> torch.Tensor:
    """``calibration`` if it holds images, else a ``ValueError`` saying how to make some."""
    if calibration is None:
        raise ValueError(f"{what} needs calibration images (calibration_tensor('digits' | DIR, ...))")
    if len(calibration) == 0:
        raise ValueError("no calibration images were given")
    return calibration


def static_batches(calibration: torch.Tensor, batch: int) -> list[torch.Tensor]:
    """``calibration`` cut into batches of exactly ``batch`` (a static-shape program's), the
    images repeated where fewer than one batch are given and the last partial batch dropped."""
    if len(calibration) == 0:
        raise ValueError("no calibration images were given")
    if len(calibration) < batch:
        calibration = calibration.repeat((batch + len(calibration) - 1) // len(calibration), 1, 1, 1)
    return [calibration[i : i + batch] for i in range(0, len(calibration) - batch + 1, batch)]
