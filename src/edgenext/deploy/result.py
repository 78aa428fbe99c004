"""What an export reports: ``ExportResult`` (the ``edgenext export --json`` object) and ``ParityError``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from .dense_precision import DenseAccuracy
from .precision_accuracy import PrecisionAccuracy


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
    #: a reduced precision's measured price: a classifier's top-1 figures (``PrecisionAccuracy.to_dict``),
    #: a detector's / segmenter's (``DenseAccuracy.to_dict``); None for fp32
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
        if self.accuracy is not None and "metric" in self.accuracy:  # a detector's or segmenter's
            lines += DenseAccuracy.from_dict(self.accuracy).lines()
        elif self.accuracy is not None:
            fields = {k: v for k, v in self.accuracy.items() if k != "digits_top1_change"}
            lines += PrecisionAccuracy(**fields).lines()
        return lines

    def to_dict(self) -> dict:
        return asdict(self)


def weights_beside(path: Path) -> Optional[Path]:
    """The ``.bin`` weights written beside OpenVINO's ``.xml`` or ncnn's ``.param``, where there are some."""
    weights = path.with_suffix(".bin")
    return weights if path.suffix in (".xml", ".param") and weights.exists() else None


def size_bytes(path: Path) -> int:
    """What an export occupies on disk: a file, a folder (Core ML), or OpenVINO's .xml or ncnn's .param with its .bin."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    weights = weights_beside(path)
    return path.stat().st_size + (weights.stat().st_size if weights is not None else 0)
