"""What a task is: everything about one kind of problem that a command may need to know.

``edgenext train``, ``eval``, ``predict``, ``export``, ``profile`` and ``bench`` look a task up in
the registry (``registry.get_task``) and call it; none of them knows which task it holds. A
task is a ``TaskSpec`` subclass in its own module of ``edgenext.tasks``, registered with
``@register_task``. Commands hand it their parsed options (``opts``: an ``argparse.Namespace``
or any object with the same attributes) and, where ``--weights`` is a checkpoint of
``edgenext train``, that checkpoint already read (memory-mapped, ``checkpoint``), so a file is
read once. A task that does not support a command keeps the default here, which says so.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Sequence

if TYPE_CHECKING:
    from ..deploy.export import ExportResult
    from ..models import Checkpoint
    from ..train.config import TrainConfig
    from ..train.training_task import TrainingTask
    from .efficiency import BenchPlan


class TaskSpec(abc.ABC):
    """One kind of problem: its name and metric, its model, training, evaluation, prediction,
    export graph, profile rows and bench candidates."""

    name: ClassVar[str]  # the --task value and a checkpoint's config["task"]
    title: ClassVar[str]  # "classification": how messages name it
    summary: ClassVar[str]  # what --task help says of it, e.g. "detect (SSDLite)"
    order: ClassVar[int] = 100  # place among the --task choices (the default task first)
    metric: ClassVar[str]  # the metric that picks best.pth
    #: the export graph's outputs: one (logits) or several (a detector's boxes and scores);
    #: only formats that write multi-output graphs take the latter
    multi_output: ClassVar[bool] = False
    #: the precisions its export writes (reduced precisions need a top-1 to measure their price)
    export_precisions: ClassVar[tuple[str, ...]] = ("fp32",)

    # -- training ---------------------------------------------------------------------------
    @abc.abstractmethod
    def training(self, cfg: "TrainConfig") -> "TrainingTask":
        """The training seam of ``cfg`` (data, model, loss, evaluation) for the runner."""

    @abc.abstractmethod
    def default_recipe(self, model: str, demo: bool) -> str:
        """The built-in recipe ``edgenext train`` uses without ``--config``: the task's demo on the
        built-in digits when ``demo``, else the recipe for real data with ``model``."""

    def shard_sources(self, opts: Any) -> tuple[list[Any], dict[str, Any]]:
        """``edgenext shards``: the splits of ``opts.source`` (and the task's explicit file options) as
        ``data.shard_writer.SplitSource`` s, and what the manifest must say to read them back (class names...)."""
        raise ValueError(f"--task {self.name} has no shard layout")

    # -- evaluation and prediction ---------------------------------------------------------
    def evaluate(self, opts: Any, checkpoint: Optional["Checkpoint"]) -> dict[str, Any]:
        """``edgenext eval``: the metrics of ``opts.weights`` / ``opts.model`` on ``opts.data``."""
        raise ValueError(f"--task {self.name} has no evaluation")

    def eval_summary(self, metrics: dict[str, Any]) -> str:
        """One console line for ``evaluate``'s metrics."""
        return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())

    def predict(self, opts: Any, checkpoint: Optional["Checkpoint"]) -> list[dict[str, Any]]:
        """``edgenext predict``: one JSON-able entry per image of ``opts.images`` (``error`` for an unreadable one)."""
        raise ValueError(f"--task {self.name} has no prediction")

    def predict_lines(self, results: Sequence[dict[str, Any]], opts: Any) -> list[str]:
        """The console lines of ``predict``'s results: one per image, in order, then ``predict_footer``'s."""
        lines = [f"{r['image']}: unreadable ({r['error']})" if "error" in r else
                 f"{r['image']}: {self.describe_prediction(r, opts)}" for r in results]
        return lines + self.predict_footer(results, opts)

    def describe_prediction(self, result: dict[str, Any], opts: Any) -> str:
        """One image's prediction in words (after ``image: `` on the console)."""
        return ", ".join(f"{k} {v}" for k, v in result.items() if k != "image")

    def predict_footer(self, results: Sequence[dict[str, Any]], opts: Any) -> list[str]:
        """Lines after the images' (e.g. where the pictures went)."""
        return []

    # -- deployment ----------------------------------------------------------------------------
    def export(self, opts: Any, checkpoint: Optional["Checkpoint"]) -> "ExportResult":
        """``edgenext export``: the task's export graph written in ``opts.format`` and checked.
        Called after the request (format x precision x batch) was validated."""
        raise ValueError(f"--task {self.name} has no export")

    # -- efficiency ------------------------------------------------------------------------------
    def profile_rows(self, model: Optional[str], input_size: Optional[tuple[int, int]],
                     num_classes: Optional[int]) -> list[dict[str, Any]]:
        """``edgenext profile``'s rows: params and MAdds beside the paper's figures."""
        raise ValueError(f"--task {self.name} has no profile")

    def profile_table(self, rows: Sequence[dict[str, Any]]) -> str:
        """``profile_rows`` as the console table."""
        raise ValueError(f"--task {self.name} has no profile")

    def bench_plan(self) -> "BenchPlan":
        """What ``edgenext bench`` measures for this task (``tasks.efficiency.BenchPlan``)."""
        raise ValueError(f"--task {self.name} has no bench")


#: eval / predict options only a detector takes (its post-processing; eval's results file)
DETECTION_ONLY = ("min_score", "nms_iou", "per_class", "max_per_image", "save_detections")


def refuse_options(opts: Any, names: Sequence[str], why: str) -> None:
    """ValueError naming the options among ``names`` that ``opts`` sets (not None / False), with ``why``."""
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(opts, n, None) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: {why}")
