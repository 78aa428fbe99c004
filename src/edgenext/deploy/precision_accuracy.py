"""The measured price of a reduced-precision export: top-1 against eager fp32.

Two figures, both from the exported file running in its runtime:
  * the top-1 change on the digits model: for a checkpoint that ``edgenext train`` trained on
    the built-in digits, top-1 of eager fp32 and of the export on the run's validation split;
  * top-1 agreement with fp32 on an image folder (default: the digits validation images):
    the share of images whose predicted class is the eager fp32 model's, labels not needed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from .parity import HW

Predict = Callable[[torch.Tensor], torch.Tensor]

#: at most this many images of an agreement folder are used
AGREEMENT_LIMIT = 1000
DIGITS_CLASSES = 10


@dataclass(frozen=True)
class EvalSettings:
    """How the model's inputs are preprocessed (a checkpoint's or the variant's evaluation settings)."""

    crop_pct: float
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class PrecisionCheck:
    """The images a reduced-precision export is measured on: ``agreement`` (``(N, C, H, W)``,
    described by ``agreement_source``) and, for a digits model, the labelled validation split."""

    agreement: torch.Tensor
    agreement_source: str
    digits: Optional[tuple[torch.Tensor, torch.Tensor]] = None


@dataclass(frozen=True)
class PrecisionAccuracy:
    precision: str
    agreement: float  # percent of images whose top-1 is eager fp32's
    agreement_images: int
    agreement_source: str
    digits_top1_fp32: Optional[float] = None  # percent; None: not a digits model
    digits_top1_export: Optional[float] = None

    @property
    def digits_top1_change(self) -> Optional[float]:
        """Export minus eager fp32, in top-1 points (negative: the export loses accuracy)."""
        if self.digits_top1_fp32 is None or self.digits_top1_export is None:
            return None
        return self.digits_top1_export - self.digits_top1_fp32

    def lines(self) -> list[str]:
        out = []
        if self.digits_top1_change is not None:
            out.append(f"{self.precision} top-1 on the digits validation split: {self.digits_top1_export:.2f}% vs "
                       f"eager fp32 {self.digits_top1_fp32:.2f}% (change {self.digits_top1_change:+.2f} points)")
        out.append(f"{self.precision} top-1 agreement with eager fp32: {self.agreement:.2f}% of "
                   f"{self.agreement_images} images ({self.agreement_source})")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "digits_top1_change": self.digits_top1_change}


def run_chunked(outputs: Callable[[torch.Tensor], Sequence[torch.Tensor]], x: torch.Tensor,
                batch: Optional[int] = None, chunk: int = 32) -> list[torch.Tensor]:
    """Every output of ``outputs`` over ``x`` in chunks, concatenated: of ``chunk`` images for a
    dynamic batch, of exactly ``batch`` for a static-batch program (the last chunk padded with its
    first image, the padding's outputs dropped)."""
    size = batch or chunk
    parts = []
    with torch.no_grad():
        for i in range(0, len(x), size):
            xb = x[i : i + size]
            real = len(xb)
            if batch is not None and real < batch:
                xb = torch.cat([xb, xb[:1].expand(batch - real, *xb.shape[1:])])
            parts.append([torch.as_tensor(o)[:real].float() for o in outputs(xb.contiguous())])
    return [torch.cat([p[k] for p in parts]) for k in range(len(parts[0]))]


def predict_logits(predict: Predict, x: torch.Tensor, batch: Optional[int] = None, chunk: int = 32) -> torch.Tensor:
    """``predict`` over ``x`` (``run_chunked`` with its one output)."""
    return run_chunked(lambda xb: (predict(xb),), x, batch, chunk)[0]


def top1_agreement(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Percent of rows where two ``(N, classes)`` logits agree on the arg-max class."""
    if reference.shape != candidate.shape or reference.ndim != 2:
        raise ValueError(f"agreement needs two (N, classes) logits of one shape, got {tuple(reference.shape)} "
                         f"and {tuple(candidate.shape)}")
    return 100.0 * int((reference.argmax(-1) == candidate.argmax(-1)).sum()) / len(reference)


def top1_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent of ``(N, classes)`` logits against ``(N,)`` labels."""
    if len(logits) != len(labels):
        raise ValueError(f"{len(logits)} predictions for {len(labels)} labels")
    return 100.0 * int((logits.argmax(-1) == labels).sum()) / len(labels)


def measure_precision(
    model: nn.Module, exported: Predict, precision: str, check: PrecisionCheck, *, batch: Optional[int] = None
) -> PrecisionAccuracy:
    """Top-1 of ``exported`` (the file in its runtime; a static ``batch`` where it has one)
    against eager fp32 ``model`` on ``check``'s images."""
    model = model.eval()
    agreement = top1_agreement(predict_logits(model, check.agreement), predict_logits(exported, check.agreement, batch))
    fp32 = export = None
    if check.digits is not None:
        x, y = check.digits
        fp32 = top1_accuracy(predict_logits(model, x), y)
        export = top1_accuracy(predict_logits(exported, x, batch), y)
    return PrecisionAccuracy(precision, agreement, len(check.agreement), check.agreement_source, fp32, export)


def is_digits_run(run_config: Optional[Mapping[str, Any]], num_classes: int) -> bool:
    """Whether a checkpoint's run config (``train.run_config.run_config``) is that of a model
    trained on the built-in digits (its ``data`` is ``digits``, 10 classes). The caller knows
    the model is a classifier (only the classification task measures top-1)."""
    return run_config is not None and str(run_config.get("data")) == "digits" and num_classes == DIGITS_CLASSES


def digits_storage(run_config: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """``digits_tensors``' ``image_size`` and ``val_fraction`` as a digits run recorded them."""
    run = dict(run_config or {})
    return {"image_size": int(run.get("digits_size", 64)), "val_fraction": float(run.get("digits_val_fraction", 0.2))}


def precision_check(
    size: HW,
    settings: EvalSettings,
    *,
    agreement_images: Optional[str] = None,
    digits_run: Optional[Mapping[str, Any]] = None,
    limit: int = AGREEMENT_LIMIT,
) -> PrecisionCheck:
    """The images to measure an export on at ``size``, preprocessed with ``settings``: the
    folder ``agreement_images`` (else the digits validation images) and, when ``digits_run`` is
    the run config of a digits model, its validation split (its storage size and split)."""
    # NOTE: lazy: the image pipeline imports torchvision and timm, seconds that `edgenext --help` and `edgenext
    # demo` (whose site writer reads this module) would pay at start
    from .calibration import calibration_tensor, digits_tensors

    kwargs = dict(crop_pct=settings.crop_pct, interpolation=settings.interpolation, mean=settings.mean,
                  std=settings.std)
    digits = digits_tensors("val", size, **kwargs, **digits_storage(digits_run)) if digits_run is not None else None
    if agreement_images is not None:
        images = calibration_tensor(agreement_images, size, limit, **kwargs)
        source = str(agreement_images)
    else:
        images = digits[0] if digits is not None else digits_tensors("val", size, limit=limit, **kwargs)[0]
        source = "the digits validation images"
    return PrecisionCheck(images, source, digits)


def eval_settings(cfg: Mapping[str, Any]) -> EvalSettings:
    """``EvalSettings`` from a pretrained config (``crop_pct``, ``interpolation``, ``mean``, ``std``)."""
    return EvalSettings(float(cfg["crop_pct"]), str(cfg["interpolation"]), tuple(cfg["mean"]), tuple(cfg["std"]))
