"""What detection and segmentation share: a network on the EdgeNeXt backbone, trained by
``edgenext train --task ...``, whose checkpoint rebuilds it; loading, the options they refuse,
and their multi-output export graph. Each task fills in its network and its graph."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Sequence, Union

from torch import nn

from ..device import resolve_device
from ..models import Checkpoint, read_weights
from ..models.edgenext import InputSize
from ..models.weights import CheckpointError, PathLike
from ..models.run_config import run_config
from .base import TaskSpec
from .registry import get_task, recorded_task

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from ..deploy.dense_precision import DenseCheck
    from ..deploy.export import ExportResult
    from ..inference.dense import LoadedDense
    from .efficiency import BenchPlan

#: constructor options of a run's network that only matter while training (stochastic depth)
_TRAINING_ONLY = ("drop_path_rate",)
EVAL_BATCH = 8


class DenseTask(TaskSpec):
    """A detector or segmenter: a head on the EdgeNeXt backbone, in torchvision's conventions."""

    multi_output = True
    #: a reduced precision reports its box mAP / mIoU change on the digit scenes (deploy.dense_precision)
    export_precisions = ("fp32", "fp16", "bf16", "int8")
    #: the digit scenes' targets this task trains and is scored on ("boxes" or "mask")
    scene_targets: "ClassVar[str]"
    #: the metric a reduced-precision export is scored with (its name, in points)
    precision_metric: "ClassVar[str]"
    #: the backbone of ``profile`` / ``bench`` / an export of ``--model`` without ``--weights``
    default_backbone = "edgenext_small"
    #: what ``predict`` writes into ``--output`` besides the drawn pictures (for its last line)
    written_besides_pictures = ""

    @abc.abstractmethod
    def network(self, backbone: str, num_classes: Optional[int] = None, *,
                input_size: Optional[InputSize] = None, **options: Any) -> nn.Module:
        """The untrained model on ``backbone`` (nothing downloaded), with the paper's class count by default."""

    @abc.abstractmethod
    def export_graph(self, model: nn.Module, input_size: Optional[InputSize]) -> tuple[nn.Module, tuple[str, ...],
                                                                                          tuple[int, int]]:
        """What an export of ``model`` writes: the module, the names of its outputs, and its ``(height, width)``."""

    @abc.abstractmethod
    def check_eval_size(self, side: tuple[int, int]) -> Optional[int]:
        """``--input-size`` of eval / predict for this task (None: the model's own), or a ValueError."""

    # -- checkpoints -------------------------------------------------------------------------
    def network_of_run(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        """The untrained network a run's config describes (its head options, without training-only ones)."""
        options = {k: v for k, v in dict(config.get("task_kwargs") or {}).items() if k not in _TRAINING_ONLY}
        return self.network(config["model"], num_classes, input_size=config["input_size"], **options)

    def load(self, weights: Union[PathLike, Checkpoint], device: Any = "cpu") -> "LoadedDense":
        """The trained model of a checkpoint of ``edgenext train --task <this task>``, in eval mode;
        ``CheckpointError`` naming the file for anything else (another task's, a foreign file)."""
        checkpoint = weights if isinstance(weights, Checkpoint) else read_weights(weights)
        found = recorded_task(run_config(checkpoint.content))
        if found is None:
            raise CheckpointError(
                f"{checkpoint.source}: not a checkpoint of edgenext train (it records no run config beside its "
                f"weights); --task {self.name} needs the best.pth or last.pth of edgenext train --task {self.name}")
        if found != self.name:
            raise CheckpointError(f"{checkpoint.source}: {_describe(found)}, but --task {self.name} was asked for; "
                                  f"use --task {found} (or leave --task out)")
        from ..inference.dense import load_run_model  # torchvision & co: imported when a model is loaded

        return load_run_model(checkpoint, self.network_of_run, task=self.name, title=self.title, device=device)

    def _load_for(self, opts: Any, checkpoint: Optional[Checkpoint], device: Any) -> "LoadedDense":
        """``--weights`` (the peeked checkpoint when there is one); checks ``--model`` against its backbone."""
        loaded = self.load(checkpoint if checkpoint is not None else opts.weights, device)
        backbone = loaded.config.get("model")
        if opts.model is not None and opts.model != backbone:
            raise ValueError(f"--model {opts.model}: the {self.name} model of {opts.weights} is built on {backbone}; "
                             "leave --model out")
        return loaded

    def _eval_size(self, opts: Any) -> Optional[int]:
        """``--input-size`` of eval / predict; also refuses the classification-only options, before loading."""
        if opts.weights is None:
            raise ValueError(f"--task {self.name} needs --weights: a checkpoint of edgenext train --task {self.name}")
        if opts.pretrained:
            raise ValueError(f"--pretrained is for classification; --task {self.name} loads a checkpoint of "
                             "edgenext train")
        if opts.crop_pct is not None:
            raise ValueError(f"--crop-pct is for classification (center crops); --task {self.name} does not crop")
        return None if opts.input_size is None else self.check_eval_size(tuple(opts.input_size))

    def _loaded(self, opts: Any, checkpoint: Optional[Checkpoint]) -> tuple["LoadedDense", Optional[int], Any]:
        eval_size = self._eval_size(opts)
        device = resolve_device(opts.device)
        return self._load_for(opts, checkpoint, device), eval_size, device

    def predict_footer(self, results, opts: Any) -> list[str]:
        written = sum("error" not in r for r in results)
        return [f"{written} picture(s) written to {opts.output}{self.written_besides_pictures}"]

    def _check_predict(self, opts: Any) -> None:
        if opts.output is None:
            raise ValueError(f"--task {self.name} writes pictures: give --output DIR")

    # -- export -------------------------------------------------------------------------------
    def export(self, opts: Any, checkpoint: Optional[Checkpoint]) -> "ExportResult":
        from ..deploy.app_config import app_config, dense_preprocess, write_app_config

        model, size, labels = self._model_to_export(opts, checkpoint)
        precision = getattr(opts, "precision", "fp32")
        hw = self.export_graph(model, size)[2]  # the size the graph is written at
        calibration = check = None
        if precision != "fp32":
            calibration, check = self._precision_inputs(opts, checkpoint, hw, precision)
        result = self.export_model(model, opts.format, opts.output, input_size=size, batch=opts.batch,
                                   fused=not getattr(opts, "no_fuse", False), layout=getattr(opts, "layout", None),
                                   precision=precision, calibration=calibration, check=check)
        write_app_config(result, app_config(result, task=self.name, model=getattr(opts, "model", None), input_hw=hw,
                                            preprocess=dense_preprocess(hw), labels=labels,
                                            params=sum(p.numel() for p in model.parameters()),
                                            postprocess=self.postprocess_settings(model)))
        return result

    def _precision_inputs(self, opts: Any, checkpoint: Optional[Checkpoint], hw: tuple[int, int], precision: str):
        """A reduced precision's calibration (int8: the digit scenes' training split, or the
        ``--calibration`` folder) and its check (a digit-scenes run's own validation scenes; None
        for a model of other data, whose price the scenes would not measure)."""
        from ..deploy.calibration import calibration_tensor
        from ..deploy.dense_precision import (DENSE_CALIBRATION_SCENES, DENSE_CHECK_SCENES, digit_scene_calibration,
                                              digit_scene_check)

        config: dict[str, Any] = {}
        if opts.weights is not None:
            config = run_config((checkpoint if checkpoint is not None else read_weights(opts.weights)).content) or {}
        scenes = {**dict(config.get("data_kwargs") or {}), "seed": config.get("seed", 0),
                  "image_size": config.get("input_size") or hw[0]}
        calibration = None
        if precision == "int8":
            folder = getattr(opts, "calibration", "digits")
            calibration = (digit_scene_calibration(self.name, hw, scenes) if folder in (None, "digits") else
                           calibration_tensor(folder, hw, DENSE_CALIBRATION_SCENES, crop_pct=1.0,
                                              interpolation="bilinear", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)))
        if not (config.get("data") == "digits" and not config.get("train_dir")):
            return calibration, None
        count = min(int(scenes.get("val_scenes") or DENSE_CHECK_SCENES), DENSE_CHECK_SCENES)
        return calibration, digit_scene_check(self.name, hw, scenes, count)

    @abc.abstractmethod
    def score_precision(self, outputs: Sequence["torch.Tensor"], targets: Sequence[Any],
                        settings: "Mapping[str, Any]") -> float:
        """``precision_metric`` of this task's export-graph outputs over the scenes against ``targets``
        (``settings``: ``postprocess_settings``)."""

    def precision_agreement(self, want: Sequence["torch.Tensor"], got: Sequence["torch.Tensor"]) -> Optional[float]:
        """How often an export's answers are eager fp32's, in percent (None: no such figure for this task)."""
        return None

    def postprocess_settings(self, model: nn.Module) -> Optional[dict[str, Any]]:
        """What an app applies to the exported outputs with ``model``'s settings (None: nothing to set)."""
        return None

    def export_model(self, model: nn.Module, fmt: str, output: Union[str, "Path"], *,
                     input_size: Optional[InputSize] = None, batch: Optional[int] = None,
                     fused: bool = True, layout: Optional[str] = None, precision: str = "fp32",
                     calibration: Optional["torch.Tensor"] = None, check: Optional["DenseCheck"] = None
                     ) -> "ExportResult":
        """Write this task's export graph of ``model`` in ``fmt`` at ``output`` and check every output
        against the unfused model in eager PyTorch (``edgenext.deploy.export.export_network``: batch 1
        and 2 when dynamic). ``input_size``: None for the model's own (a detector's is fixed by its
        anchors). ``fused``: write ``fuse_dense``'s graph (backbone fused, head BatchNorms and input
        normalisation folded), else the training graph. ``layout``: the fused backbone's (default: the
        format's). ``precision``: one of ``export_precisions``; int8 calibrates on ``calibration``
        (default: the digit scenes' training split), and a reduced precision checked on ``check``
        (``dense_precision.digit_scene_check``) reports its box mAP / mIoU change in ``accuracy``."""
        from ..deploy.dense_precision import digit_scene_calibration, measure_dense_precision
        from ..deploy.export import export_network
        from ..deploy.fusion import fuse_dense

        # NOTE: export_network validates the request (a multi-output graph, the precision) before writing anything
        module, names, hw = self.export_graph(model, input_size)
        written = fuse_dense(module, hw) if fused else module
        if precision == "int8" and calibration is None:
            calibration = digit_scene_calibration(self.name, hw)
        settings = self.postprocess_settings(model)

        def measure(runner, static_batch):
            return measure_dense_precision(self.name, module, runner.outputs, precision, check, batch=static_batch,
                                           settings=settings).to_dict()

        return export_network(written, fmt, output, input_size=hw, output_names=names, batch=batch,
                              reference=module, layout=layout, precision=precision, calibration=calibration,
                              precisions=self.export_precisions, measure=measure if check is not None else None)

    def _model_to_export(self, opts: Any, checkpoint: Optional[Checkpoint]
                         ) -> tuple[nn.Module, Optional[InputSize], Optional[list[str]]]:
        """The model to export, the input size asked for (None: the model's own) and its class names
        (None: random weights, no classes)."""
        if opts.pretrained:
            raise ValueError(f"--pretrained is for classification; --task {self.name} exports --model BACKBONE "
                             f"(random weights) or --weights, a checkpoint of edgenext train --task {self.name}")
        if opts.weights is not None:
            if opts.num_classes is not None:
                raise ValueError(f"--num-classes: {opts.weights} records its classes; leave --num-classes out")
            loaded = self._load_for(opts, checkpoint, "cpu")
            return loaded.model, opts.input_size or loaded.input_size or None, list(loaded.class_names)
        if opts.model is None:
            raise ValueError(f"--task {self.name} needs --model BACKBONE (e.g. {self.default_backbone}, random "
                             f"weights) or --weights, a checkpoint of edgenext train --task {self.name}")
        return self.network(opts.model, opts.num_classes, input_size=opts.input_size).eval(), opts.input_size, None

    # -- efficiency (profile, bench) --
    #: names our rows: "<head_name>_<backbone>" (ssdlite_edgenext_small)
    head_name: "ClassVar[str]"
    #: the input side the paper measures the network at: profile's and bench's default
    paper_input_size: "ClassVar[int]"
    #: the bench's default peers: torchvision's models of the task on MobileNetV3-Large
    bench_peers: "ClassVar[tuple[str, ...]]"
    #: what a bench row times (the bench table's header says it)
    bench_timed: "ClassVar[str]"
    #: the outputs of the timed network (``timed_network``), as its export names them
    bench_outputs: "ClassVar[tuple[str, ...]]"
    #: the runtimes ours and the peers are benched in (the int8 / bf16 paths are the classifier's)
    bench_runtimes = ("eager", "onnxruntime", "openvino", "executorch", "litert", "ncnn", "mnn")
    #: the paper's rival inside the same head, built by our builder on timm's backbone (random weights):
    #: benched beside ours as a second backbone (its rows: ``<head>_mobilevit_s``)
    bench_rival = "mobilevit_s"

    @abc.abstractmethod
    def paper_figures(self) -> "Mapping[str, Mapping[str, float]]":
        """The paper's ``params`` and ``madds`` of the network at ``paper_input_size`` with its class count, by
        backbone: ``edgenext_small`` and the paper's rival ``mobilevit_s``."""

    @abc.abstractmethod
    def timed_network(self, model: nn.Module) -> nn.Module:
        """The part of ``model`` (this task's network) that profile counts and bench times, on a normalised tensor."""

    @abc.abstractmethod
    def torchvision_network(self, name: str) -> nn.Module:
        """The timed network of torchvision's model ``name`` (random weights, the paper's class count); a
        ValueError naming the models it knows for any other name."""

    def profile_rows(self, model: Optional[str], input_size: Optional[tuple[int, int]],
                     num_classes: Optional[int]) -> list[dict[str, Any]]:
        from .efficiency import profile_models

        return profile_models(model, self.default_backbone, lambda name: self.profile_row(name, input_size, num_classes))

    def profile_row(self, backbone: str, input_size: Optional[InputSize] = None, num_classes: Optional[int] = None,
                    **options: Any) -> dict[str, Any]:
        """Params and fvcore MAdds (``edgenext.profile``'s convention) of the network on ``backbone``, beside the paper's.

        ``input_size`` defaults to ``paper_input_size``; the paper's figures are given at that size with
        the paper's class count (``num_classes`` None), else None. ``options`` go to ``network``. Only
        the timed network is counted (backbone and head on a tensor), not anchors, box decoding or NMS.
        The keys of the classification rows (``model``, ``params``, ``madds``, ``input_size``,
        ``paper_params``, ``paper_madds``, ``params_match``, ``madds_diff_pct``) plus ``mobilevit_s`` (the
        paper's MobileViT-S figures and size), ``task``, ``head`` and ``params_diff_pct``. ``params_match``
        is None: the paper gives these sizes to 0.1M, so only the difference says how close they are.
        """
        from ..models.edgenext import input_hw
        from ..models.profile import count_madds, diff_pct

        side = self.paper_input_size
        size = input_hw(input_size if input_size is not None else side)
        model = self.network(backbone, num_classes, input_size=size, **options)
        figures = self.paper_figures()
        paper = figures.get(backbone) if size == (side, side) and num_classes is None else None
        params, madds = sum(p.numel() for p in model.parameters()), count_madds(self.timed_network(model), size)
        paper_params, paper_madds = (int(paper["params"]), int(paper["madds"])) if paper else (None, None)
        rival = figures["mobilevit_s"]
        return {"model": f"{self.head_name}_{backbone}", "params": params, "madds": madds, "input_size": list(size),
                "paper_params": paper_params, "paper_madds": paper_madds,
                "mobilevit_s": {"params": int(rival["params"]), "madds": int(rival["madds"]), "input_size": [side, side]},
                "task": self.name, "head": self.head_name, "params_match": None,
                "params_diff_pct": diff_pct(params, paper_params), "madds_diff_pct": diff_pct(madds, paper_madds)}

    def profile_table(self, rows: "Sequence[dict[str, Any]]") -> str:
        from .efficiency import fmt_g, fmt_m

        def pct(value: Optional[float]) -> str:
            return f"{value:+.1f}%" if value is not None else "-"

        head = f"{'model':<34}{'input':>9}{'params':>9}{'paper':>8}{'diff':>8}  {'MAdds':>8}{'paper':>8}{'diff':>8}"
        lines = [head, "-" * len(head)]
        for r in rows:
            size = "x".join(map(str, r["input_size"]))
            lines.append(f"{r['model']:<34}{size:>9}{fmt_m(r['params']):>9}{fmt_m(r['paper_params']):>8}"
                         f"{pct(r['params_diff_pct']):>8}  {fmt_g(r['madds']):>8}{fmt_g(r['paper_madds']):>8}"
                         f"{pct(r['madds_diff_pct']):>8}")
        rival = rows[0]["mobilevit_s"]
        lines.append(f"{rows[0]['head'] + '_mobilevit_s (paper)':<34}{'x'.join(map(str, rival['input_size'])):>9}"
                     f"{fmt_m(rival['params']):>9}{'':>16}  {fmt_g(rival['madds']):>8}")
        return "\n".join(lines)

    def bench_plan(self) -> "BenchPlan":
        """Ours on ``default_backbone`` and on the paper's rival backbone (``bench_rival``, MobileViT-S in the same
        head), beside torchvision's MobileNetV3 model, batch 1 at the paper's size, fp32."""
        from .efficiency import BenchPlan

        return BenchPlan(
            models=(self.default_backbone, self.bench_rival), peers=self.bench_peers, peer_impl="torchvision",
            runtimes=self.bench_runtimes, peer_runtimes=self.bench_runtimes, default_peer_runtimes=self.bench_runtimes,
            batches=(1,), input_size=self.paper_input_size, build_ours=self._bench_ours,
            build_peer=lambda name, input_size: self.torchvision_network(name), precisions=("fp32",),
            timed=self.bench_timed, row_prefix=f"{self.head_name}_", output_names=self.bench_outputs,
            reference="first_peer", fuse_ours=_fuse_dense, plots=True,
            # the heads' ops and the rival backbone: torchvision and timm (which imports torchvision)
            ours_preload=("timm",), peer_preload=("torchvision",))

    def _bench_ours(self, backbone: str, input_size: tuple[int, int]) -> nn.Module:
        return self.timed_network(self.network(backbone, input_size=input_size)).eval()


def _fuse_dense(module: nn.Module, input_size: tuple[int, int]) -> nn.Module:
    from ..deploy.fusion import fuse_dense

    return fuse_dense(module, input_size)


def _describe(task: str) -> str:
    try:
        title = get_task(task).title
    except ValueError:  # a checkpoint of a task this installation does not have
        title = task
    return f"a {title} checkpoint (edgenext train --task {task})"


def load_dense_model(weights: Union[PathLike, Checkpoint], *, task: Optional[str] = None,
                     device: Any = "cpu") -> "LoadedDense":
    """A detector or segmenter from a checkpoint of ``edgenext train --task detect|segment``, in eval mode.

    ``task``: the task to insist on (a checkpoint of another is an error naming it); None takes the
    checkpoint's. ``weights``: a path or URL (read once, ``weights_only``), or a ``Checkpoint``
    already read. Raises ``CheckpointError`` naming the file for anything that is not such a
    checkpoint: a classification run's, a foreign file, another task's, or weights that do not fit.
    """
    checkpoint = weights if isinstance(weights, Checkpoint) else read_weights(weights)
    found = recorded_task(run_config(checkpoint.content))
    spec = get_task(task or found) if (task or found) else None
    if spec is None or not hasattr(spec, "load"):
        if found is None:
            raise CheckpointError(f"{checkpoint.source}: not a checkpoint of edgenext train (it records no run "
                                  "config beside its weights); give the best.pth or last.pth of edgenext train "
                                  "--task detect|segment")
        raise CheckpointError(f"{checkpoint.source}: {_describe(found)}, not a detection or segmentation one; "
                              f"use it with --task {found}")
    return spec.load(checkpoint, device)
