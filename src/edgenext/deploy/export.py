"""One entry point for every export format: write the file, run it, compare with eager PyTorch.

``export_model`` fuses the model first (the default) so every runtime gets the folded,
channels-last graph, writes the format, loads the result in its runtime and reports the
max-abs difference against the *unfused* eager model on a fixed input. Above the tolerance
(1e-4 in fp32) it raises: a silently wrong export is worse than none.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ..models.edgenext import InputSize, input_hw
from .common import FP32_TOLERANCE, example_input, max_abs_diff
from .formats import export_format
from .fusion import fuse

log = logging.getLogger(__name__)


class ParityError(RuntimeError):
    """The exported model's outputs differ from eager PyTorch by more than the tolerance."""


@dataclass
class ExportResult:
    format: str
    path: str
    size_bytes: int
    max_abs_diff: Optional[float]  # None: the runtime cannot run here (Core ML off macOS)
    tolerance: float
    check: str  # how parity was checked
    seconds: float
    details: dict = field(default_factory=dict)

    def parity_line(self) -> str:
        if self.max_abs_diff is None:
            return f"{self.format}: {self.path} ({self.size_bytes / 1e6:.2f} MB): {self.check}"
        return (
            f"{self.format}: {self.path} ({self.size_bytes / 1e6:.2f} MB): max |exported - eager| = "
            f"{self.max_abs_diff:.3e} (tolerance {self.tolerance:.0e}, {self.check})"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def size_bytes(path: Path) -> int:
    """What an export occupies on disk: a file, a folder (Core ML), or OpenVINO's .xml with its .bin."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    size = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").exists():
        size += path.with_suffix(".bin").stat().st_size
    return size


def export_model(
    model: nn.Module,
    fmt: str,
    output: Union[str, Path],
    *,
    input_size: InputSize = 256,
    batch: Optional[int] = None,
    fused: bool = True,
    tolerance: float = FP32_TOLERANCE,
) -> ExportResult:
    """Export ``model`` (an ``EdgeNeXt``) to ``fmt`` at ``output`` and check it in its runtime.

    ``input_size``: a side or ``(height, width)``. ``batch=None`` exports a dynamic batch axis
    where the format supports it (ExecuTorch and Core ML default to batch 1). Raises
    ``ParityError`` above ``tolerance``.
    """
    spec = export_format(fmt)
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be a positive integer or None (dynamic), got {batch}")
    size = input_hw(input_size)
    model = model.eval()
    deployed = fuse(model, size) if fused else model
    if spec.static_batch and batch is None:
        batch = 1  # mobile runtimes: a static batch-1 program unless asked otherwise
    start = time.perf_counter()
    path = Path(spec.writer(deployed, Path(output), input_size=size, batch=batch))
    seconds = time.perf_counter() - start
    x = example_input(batch or 3, size, getattr(model, "in_chans", 3), seed=1)  # 3: not the traced batch
    with torch.no_grad():
        reference = model(x)
    if not spec.can_run():
        return _structural_result(spec.name, path, spec.describe(path), list(reference.shape), tolerance, seconds)
    diff = max_abs_diff(spec.runner(path)(x), reference)
    check = f"batch {x.shape[0]}, fixed seeded input"
    result = ExportResult(spec.name, str(path), size_bytes(path), diff, tolerance, check, seconds)
    if diff > tolerance:
        raise ParityError(f"{spec.name} export differs from eager PyTorch: {result.parity_line()}")
    return result


def _structural_result(fmt: str, path: Path, shapes: dict[str, list[int]], expected: list[int], tolerance: float,
                       seconds: float) -> ExportResult:
    """Where the runtime cannot run (Core ML off macOS): the saved output must be the logits' shape."""
    if shapes.get(next(reversed(shapes))) not in (expected, []):
        raise ParityError(f"{fmt} file outputs {shapes}, expected logits of shape {expected}")
    check = f"structural only (its runtime cannot run on this machine): {shapes}"
    return ExportResult(fmt, str(path), size_bytes(path), None, tolerance, check, seconds, {"shapes": shapes})
