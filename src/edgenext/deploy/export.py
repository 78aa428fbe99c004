"""One entry point for every export format: write the file, run it, compare with eager PyTorch.

``export_model`` fuses the model first (the default) so every runtime gets the folded,
channels-last graph, writes the format, loads the result in its runtime and reports the
max-abs difference against the *unfused* eager model on a fixed input. Above the tolerance
(1e-4 in fp32) it raises: a silently wrong export is worse than none. A reduced precision
(bf16, int8) reports the difference without bounding it, and its price in top-1
(``accuracy.measure_precision``: the digits top-1 change and the agreement with fp32).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ..constants import DEFAULT_PRETRAINED_CFG
from ..models.edgenext import InputSize, input_hw
from .accuracy import PrecisionCheck, eval_settings, measure_precision
from .calibration import calibration_tensor
from .common import FP32_TOLERANCE, example_input, max_abs_diff
from .formats import export_format
from .fusion import fuse
from .precision import check_precision, require_precision

#: calibration images of an int8 export when none are given (the digits training split)
DEFAULT_CALIBRATION_IMAGES = 128

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
    precision: str = "fp32"
    #: a reduced precision's top-1 figures (``accuracy.PrecisionAccuracy.to_dict``); None for fp32
    accuracy: Optional[dict] = None

    def parity_line(self) -> str:
        name = self.format if self.precision == "fp32" else f"{self.format} {self.precision}"
        if self.max_abs_diff is None:
            return f"{name}: {self.path} ({self.size_bytes / 1e6:.2f} MB): {self.check}"
        bound = f"tolerance {self.tolerance:.0e}" if self.precision == "fp32" else "fp32's tolerance does not apply"
        return (
            f"{name}: {self.path} ({self.size_bytes / 1e6:.2f} MB): max |exported - eager| = "
            f"{self.max_abs_diff:.3e} ({bound}, {self.check})"
        )

    def report_lines(self) -> list[str]:
        """The parity line, then a reduced precision's top-1 lines."""
        lines = [self.parity_line()]
        if self.accuracy is not None:
            from .accuracy import PrecisionAccuracy

            fields = {k: v for k, v in self.accuracy.items() if k != "digits_top1_change"}
            lines += PrecisionAccuracy(**fields).lines()
        return lines

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
    precision: str = "fp32",
    calibration: Optional[torch.Tensor] = None,
    check: Optional[PrecisionCheck] = None,
) -> ExportResult:
    """Export ``model`` (an ``EdgeNeXt``) to ``fmt`` at ``output`` and check it in its runtime.

    ``input_size``: a side or ``(height, width)``. ``batch=None`` exports a dynamic batch axis
    where the format supports it (ExecuTorch and Core ML default to batch 1). Raises
    ``ParityError`` above ``tolerance`` (fp32 only).

    ``precision``: ``fp32``, ``bf16`` or ``int8`` (``precision.precision_unavailable`` says
    where each runs); int8 calibrates on ``calibration`` (default: ``DEFAULT_CALIBRATION_IMAGES``
    of the digits training split, preprocessed with the model's evaluation settings). A reduced
    precision measured on ``check`` (``accuracy.precision_check``) reports its top-1 in ``accuracy``.
    """
    spec = export_format(fmt)
    check_precision(precision)
    require_precision(spec.name, precision)
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be a positive integer or None (dynamic), got {batch}")
    size = input_hw(input_size)
    model = model.eval()
    deployed = fuse(model, size) if fused else model
    if spec.static_batch and batch is None:
        batch = 1  # mobile runtimes: a static batch-1 program unless asked otherwise
    if precision == "int8" and calibration is None:
        settings = eval_settings(getattr(model, "pretrained_cfg", DEFAULT_PRETRAINED_CFG))
        calibration = calibration_tensor("digits", size, DEFAULT_CALIBRATION_IMAGES, crop_pct=settings.crop_pct,
                                         interpolation=settings.interpolation, mean=settings.mean, std=settings.std)
    reduced = {} if precision == "fp32" else {"precision": precision, "calibration": calibration}
    start = time.perf_counter()
    path = Path(spec.writer(deployed, Path(output), input_size=size, batch=batch, **reduced))
    seconds = time.perf_counter() - start
    x = example_input(batch or 3, size, getattr(model, "in_chans", 3), seed=1)  # 3: not the traced batch
    with torch.no_grad():
        reference = model(x)
    if not spec.can_run():
        return _structural_result(spec.name, path, spec.describe(path), list(reference.shape), tolerance, seconds)
    runner = spec.runner(path, **({"precision": precision} if reduced else {}))
    diff = max_abs_diff(runner(x), reference)
    where = f"batch {x.shape[0]}, fixed seeded input"
    result = ExportResult(spec.name, str(path), size_bytes(path), diff, tolerance, where, seconds, precision=precision)
    if precision == "fp32" and diff > tolerance:
        raise ParityError(f"{spec.name} export differs from eager PyTorch: {result.parity_line()}")
    if precision != "fp32" and check is not None:
        result.accuracy = measure_precision(model, runner, precision, check, batch=batch).to_dict()
    return result


def _structural_result(fmt: str, path: Path, shapes: dict[str, list[int]], expected: list[int], tolerance: float,
                       seconds: float) -> ExportResult:
    """Where the runtime cannot run (Core ML off macOS): the saved output must be the logits' shape."""
    if shapes.get(next(reversed(shapes))) not in (expected, []):
        raise ParityError(f"{fmt} file outputs {shapes}, expected logits of shape {expected}")
    check = f"structural only (its runtime cannot run on this machine): {shapes}"
    return ExportResult(fmt, str(path), size_bytes(path), None, tolerance, check, seconds, {"shapes": shapes})
