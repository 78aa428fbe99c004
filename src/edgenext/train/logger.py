"""Per-epoch records of a run: ``log.jsonl``, TensorBoard scalars and ``curves.png``."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

LOG_FILE = "log.jsonl"
CURVES_FILE = "curves.png"


def read_log(output_dir: Path) -> list[dict[str, Any]]:
    path = Path(output_dir) / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RunLogger:
    """Writes one record per epoch (rank 0 only; other processes pass ``enabled=False``)."""

    def __init__(self, output_dir: Path, *, enabled: bool = True, tensorboard: bool = True, plot: bool = True,
                 metric_keys: tuple[str, ...] = ("top1", "top5")) -> None:
        self.output_dir = Path(output_dir)
        self.enabled = enabled
        self.plot = plot
        self.metric_keys = metric_keys  # the task's validation metrics, drawn in the second panel
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed: no TensorBoard scalars (pip install tensorboard)")

    def truncate(self, first_epoch: int) -> None:
        """Drop records of epochs >= ``first_epoch`` (written after the checkpoint a resumed run starts from)."""
        if not self.enabled:
            return
        kept = [r for r in read_log(self.output_dir) if int(r.get("epoch", -1)) < first_epoch]
        path = self.output_dir / LOG_FILE
        if path.exists():
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def log_epoch(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.output_dir / LOG_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, record["epoch"])
            self.writer.flush()
        if self.plot:
            plot_curves(read_log(self.output_dir), self.output_dir / CURVES_FILE, metric_keys=self.metric_keys)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def plot_curves(records: list[dict[str, Any]], path: Path, *, metric_keys: tuple[str, ...] = ("top1", "top5")) -> Optional[Path]:
    """Losses, and the task's validation metrics (model and EMA), per epoch in two panels; rewritten whole each time."""
    if not records:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no curves.png (pip install matplotlib)")
        return None
    epochs = [r["epoch"] + 1 for r in records]  # 1-based, as the console reports them
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "val"), ("ema_val_loss", "val (EMA)")):
        if any(key in r for r in records):
            ax_loss.plot(epochs, [r.get(key, float("nan")) for r in records], marker=".", label=label)
    for name in metric_keys:
        for key, label in ((f"val_{name}", f"val {name}"), (f"ema_val_{name}", f"val {name} (EMA)")):
            if any(key in r for r in records):
                ax_acc.plot(epochs, [r.get(key, float("nan")) for r in records], marker=".", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", title="validation")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
