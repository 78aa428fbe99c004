"""What ``edgenext profile`` and ``edgenext bench`` need from a task, and what the tasks share for it.

``BenchPlan``, which a task's ``bench_plan()`` returns: the bench (``edgenext.bench``) knows runtimes,
workers, timing and tables; the task knows its models, its peers and who implements them, the
network that is timed, and how its rows are compared. The bench asks the plan and never names a
task. ``profile_models`` and the ``fmt_*`` helpers serve the tasks' ``profile_rows`` / ``profile_table``.
This module registers nothing and imports nothing heavy, so ``edgenext.tasks`` stays cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

from torch import nn

from .registry import get_task

#: every runtime a bench row can run in, in table order: three in PyTorch (eager, our fused fold,
#: torch.compile), then the exported formats' runtimes (``edgenext.bench.candidates.RUNTIME_FORMATS``)
RUNTIMES = ("eager", "fused", "compiled", "onnxruntime", "openvino", "executorch", "litert", "ncnn", "mnn")

#: builds the timed network of a model name at an input ``(height, width)``, random weights, in eval mode
NetworkBuilder = Callable[[str, tuple[int, int]], nn.Module]


@dataclass(frozen=True)
class BenchPlan:
    """A task's bench: defaults, allowed values, the networks timed and the speed ratios of its rows."""

    #: our default models: variants, or the backbones of the task's network
    models: tuple[str, ...]
    #: every peer of the full sweep (``--full``), built by ``peer_impl``
    peers: tuple[str, ...]
    #: who implements the peers (a row's ``impl``): "timm", "torchvision", ...
    peer_impl: str
    #: runtimes of ours (``RUNTIMES`` names), table order: what --runtimes allows and its default
    runtimes: tuple[str, ...]
    #: runtimes the peers can run in: what --peer-runtimes allows, and ``--peer-runtimes all``
    peer_runtimes: tuple[str, ...]
    #: the peers' runtimes without --peer-runtimes
    default_peer_runtimes: tuple[str, ...]
    batches: tuple[int, ...]
    #: the default input side
    input_size: int
    #: our timed network of a model of ``models``
    build_ours: NetworkBuilder
    #: the timed network of a peer (its ValueError names the peers it knows for a name it cannot build)
    build_peer: NetworkBuilder
    #: None: every precision the runtimes offer (--precisions, else all this machine computes);
    #: a tuple: only these, whatever --precisions asks
    precisions: Optional[tuple[str, ...]] = None
    #: what a row times when it is not the whole model (the table's header says it; a row's "timed")
    timed: Optional[str] = None
    #: our row's name is ``row_prefix + model`` ("ssdlite_" + the backbone); "" names it by the model
    row_prefix: str = ""
    #: how ours is folded (``edgenext.deploy.fuse`` / ``fuse_dense``: ``(module, (h, w)) -> module``)
    #: before it is exported or run as the "fused" runtime; None: as built
    fuse_ours: Optional[Callable[[nn.Module, tuple[int, int]], nn.Module]] = None
    #: the names of the exported graph's outputs (None: the format's single output)
    output_names: Optional[tuple[str, ...]] = None
    #: our models that ``peer_impl`` implements too (timm's EdgeNeXt): each is benched as a peer in
    #: every runtime of ``peer_runtimes`` that ours or the peers run in, and rows get the ratio against
    #: it in the same runtime and precision
    twins: tuple[str, ...] = ()
    #: the eager peer a row's ``ratio_vs_<peer_impl>_eager`` compares with: its twin when measured,
    #: else the twin of our first model ("first_model") or the first peer ("first_peer")
    reference: Literal["first_model", "first_peer"] = "first_peer"
    #: the bench draws its plots (published top-1 against latency, every runtime per model)
    plots: bool = False
    #: the peers of the default (short) run; None: all of ``peers``
    short_peers: Optional[tuple[str, ...]] = None
    #: the peers' runtimes in the default (short) run; None: ``default_peer_runtimes`` (twins follow ours)
    short_peer_runtimes: Optional[tuple[str, ...]] = None
    #: the side a peer is timed at when --input-size is not given (its published top-1's), None: the run's
    peer_input_size: Optional[Callable[[str], Optional[int]]] = None
    #: modules a timing worker of ours / of a peer imports that start no thread when imported: the bench's
    #: fork server (``edgenext.bench.forkserver``) imports them once for all the workers it forks
    ours_preload: tuple[str, ...] = ()
    peer_preload: tuple[str, ...] = ("timm",)

    def row_name(self, model: str) -> str:
        """The ``model`` of our rows for ``model`` (a variant, or a backbone with the head's prefix)."""
        return f"{self.row_prefix}{model}"


def bench_plan(task: str) -> BenchPlan:
    """The bench plan of the task called ``task``; a ValueError for an unknown task or one without a bench."""
    return get_task(task).bench_plan()  # TaskSpec's default says the task has none


def profile_models(model: Optional[str], default: str, row: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    """``row`` of each model ``--model`` names (``default`` without one; "all": every variant), with a
    progress bar when there are several."""
    from tqdm import tqdm

    from ..models import list_models

    wanted = model or default
    names = list_models() if wanted == "all" else [wanted]
    return [row(name) for name in tqdm(names, desc="profiling", leave=False, disable=len(names) < 2)]


def fmt_m(value: Optional[int]) -> str:
    """A count in millions, "-" for none."""
    return f"{value / 1e6:.2f}M" if value is not None else "-"


def fmt_g(value: Optional[int]) -> str:
    """A count in billions, "-" for none."""
    return f"{value / 1e9:.2f}G" if value is not None else "-"

