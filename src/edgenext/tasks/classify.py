"""Image classification: EdgeNeXt itself, on image folders or the built-in digits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

from ..constants import MOBILE_MAP, PEER_EVAL_SIZE
from ..device import resolve_device
from .base import DETECTION_ONLY, TaskSpec, refuse_options
from .registry import register_task

if TYPE_CHECKING:
    from torch import nn

    from ..deploy.export import ExportResult
    from ..models import Checkpoint
    from .efficiency import BenchPlan

#: input side when neither --input-size nor a checkpoint of edgenext train gives one
DEFAULT_INPUT_SIZE = 256
EVAL_BATCH = 64
#: options of the dense tasks' eval / predict, refused here with a hint
_DENSE_EVAL_OPTIONS = ("val_images", "val_ann", "val_masks", *DETECTION_ONLY)
_DENSE_PREDICT_OPTIONS = ("output", "score_thresh", *DETECTION_ONLY)
_NOT_HERE = ("for --task detect / segment; this is a classification run (give --task, or a checkpoint of "
             "edgenext train --task detect|segment as --weights)")


@register_task
class Classification(TaskSpec):
    name = "classify"
    title = "classification"
    summary = "classify (EdgeNeXt classifier)"
    order = 0
    metric = "top1"
    export_precisions = ("fp32", "fp16", "bf16", "int8")

    def shard_sources(self, opts: Any) -> tuple[list[Any], dict[str, Any]]:
        from ..data.shard_writer import folder_splits

        refuse_options(opts, ("train_ann", "val_ann", "train_masks", "val_masks"), "classification shards are written "
                       "from an image folder: SRC/train/<class>/* and SRC/val/<class>/* (or SRC/<class>/*)")
        sources, class_names = folder_splits(opts.source)
        return sources, {"class_names": class_names}

    def training(self, cfg):
        from ..train.classify import ClassificationTask

        return ClassificationTask(cfg)

    def default_recipe(self, model: str, demo: bool) -> str:
        return "digits" if demo else model.partition(".")[0]  # a release tag (.usi) shares its variant's recipe

    def _load(self, opts: Any, device: Any):
        from ..models.loading import eval_side, load_model

        input_size = eval_side(opts.input_size) if opts.input_size is not None else None  # before any download
        return load_model(opts.model, opts.weights, pretrained=opts.pretrained, device=device), input_size

    def evaluate(self, opts: Any, checkpoint: Optional["Checkpoint"]) -> dict[str, Any]:
        from ..inference.classify import evaluate_folder

        refuse_options(opts, _DENSE_EVAL_OPTIONS, _NOT_HERE)
        if opts.data is None:
            raise ValueError("give the image folder to evaluate (FOLDER/<class>/<image>)")
        device = resolve_device(opts.device)
        loaded, input_size = self._load(opts, device)
        return evaluate_folder(loaded, opts.data, batch_size=opts.batch_size or EVAL_BATCH, workers=opts.workers,
                               input_size=input_size, crop_pct=opts.crop_pct, device=device)

    def eval_summary(self, metrics: dict[str, Any]) -> str:
        skipped = f", {metrics['skipped']} unreadable skipped" if metrics["skipped"] else ""
        return (f"Acc@1 {metrics['top1']:.3f} Acc@5 {metrics['top5']:.3f} loss {metrics['loss']:.4f} "
                f"({metrics['count']} images at {metrics['input_size']} px, crop {metrics['crop_pct']}{skipped})")

    def predict(self, opts: Any, checkpoint: Optional["Checkpoint"]) -> list[dict[str, Any]]:
        from ..inference.classify import predict_images

        refuse_options(opts, _DENSE_PREDICT_OPTIONS, _NOT_HERE)
        device = resolve_device(opts.device)
        loaded, input_size = self._load(opts, device)
        return predict_images(loaded, opts.images, top_k=opts.top_k, input_size=input_size, crop_pct=opts.crop_pct,
                              device=device)

    def describe_prediction(self, result: dict[str, Any], opts: Any) -> str:
        return ", ".join(f"{t['description']} {100 * t['prob']:.1f}%" for t in result["top"])

    def export(self, opts: Any, checkpoint: Optional["Checkpoint"]) -> "ExportResult":
        from ..deploy.export import export_model

        from ..deploy.app_config import app_config, classify_preprocess, write_app_config
        from ..models.edgenext import input_hw

        model, recorded, settings, labels = _export_model(opts)
        size = opts.input_size or recorded or DEFAULT_INPUT_SIZE
        reduced = {} if opts.precision == "fp32" else _reduced_precision(opts, checkpoint, model, size, settings)
        result = export_model(model, opts.format, opts.output, input_size=size, batch=opts.batch,
                              fused=not opts.no_fuse, precision=opts.precision, layout=getattr(opts, "layout", None),
                              **reduced)
        hw = input_hw(size)
        preprocess = classify_preprocess(hw, settings.crop_pct, settings.interpolation, settings.mean, settings.std)
        write_app_config(result, app_config(result, task=self.name, model=getattr(opts, "model", None), input_hw=hw,
                                            preprocess=preprocess, labels=labels,
                                            in_chans=getattr(model, "in_chans", 3),
                                            shapes={"logits": [1, model.num_classes]},
                                            params=sum(p.numel() for p in model.parameters())))
        return result

    # -- efficiency (profile, bench) --
    #: what a user would pick instead of EdgeNeXt: the bench's peers (timm's implementations, random weights)
    #: (--full / --peers all-mobile: the 2019-2022 peers and today's mobile models in timm, ``MOBILE_MAP``)
    bench_peers = ("mobilevit_xxs", "mobilevit_xs", "mobilevit_s", "mobilenetv3_large_100", *MOBILE_MAP)
    #: the default run's peers: the paper's nearest rival and the CNN that sets the mobile speed bar
    short_bench_peers = ("mobilevit_xxs", "mobilenetv3_large_100")
    #: our variants timm implements too (it has no _bn_hs ones): timm's EdgeNeXt is the direct rival
    timm_edgenext = ("edgenext_xx_small", "edgenext_x_small", "edgenext_small", "edgenext_base")

    def profile_rows(self, model: Optional[str], input_size: Optional[tuple[int, int]],
                     num_classes: Optional[int]) -> list[dict[str, Any]]:
        from ..models.profile import PAPER_CLASSES, profile_variant
        from .efficiency import profile_models

        size = input_size or DEFAULT_INPUT_SIZE
        classes = num_classes or PAPER_CLASSES
        return profile_models(model, "all", lambda name: profile_variant(name, size, classes))

    def profile_table(self, rows: Sequence[dict[str, Any]]) -> str:
        from .efficiency import fmt_m

        lines = [f"{'model':<26}{'params':>11}{'paper':>11}  {'MAdds':>10}{'paper':>10}{'diff':>9}"]
        for r in rows:
            paper_p = f"{r['paper_params']:,}" if r["paper_params"] is not None else "-"
            diff = f"{r['madds_diff_pct']:+.3f}%" if r["madds_diff_pct"] is not None else "-"
            lines.append(f"{r['model']:<26}{r['params']:>11,}{paper_p:>11}  {fmt_m(r['madds']):>10}"
                         f"{fmt_m(r['paper_madds']):>10}{diff:>9}")
        return "\n".join(lines)

    def bench_plan(self) -> "BenchPlan":
        """EdgeNeXt in every runtime and precision beside timm's EdgeNeXt, MobileViT and MobileNetV3."""
        from .efficiency import RUNTIMES, BenchPlan

        return BenchPlan(
            models=("edgenext_xx_small",), peers=self.bench_peers, peer_impl="timm", runtimes=RUNTIMES,
            peer_runtimes=tuple(r for r in RUNTIMES if r != "fused"),  # "fused" is our fold: timm's models have none
            # eager, and the two fastest exported paths on a desktop CPU
            default_peer_runtimes=("eager", "onnxruntime", "openvino"),
            batches=(1, 32), input_size=DEFAULT_INPUT_SIZE, build_ours=self._bench_ours, build_peer=self._bench_timm,
            fuse_ours=_fuse, twins=self.timm_edgenext, reference="first_model", plots=True,
            # the short run times the peers in the exported runtimes only: their eager batch-32 calls are the
            # slowest of the run, and the twin's eager rows are the reference anyway
            short_peers=self.short_bench_peers, short_peer_runtimes=("onnxruntime", "openvino"),
            peer_input_size=PEER_EVAL_SIZE.get)

    @staticmethod
    def _bench_ours(name: str, input_size: tuple[int, int]) -> "nn.Module":
        from ..models import create_model

        return create_model(name).eval()

    @staticmethod
    def _bench_timm(name: str, input_size: tuple[int, int]) -> "nn.Module":
        import timm

        from timm.utils import reparameterize_model

        # NOTE: FastViT, RepViT, MobileOne-style blocks timed reparameterised (one conv per branch set), as
        # their users deploy them; the other models have nothing to fold and come back as they are
        return reparameterize_model(timm.create_model(name, pretrained=False).eval())


def _export_model(opts: Any) -> tuple[Any, Optional[int], Any, list[str]]:
    """The classifier to export, the input side its checkpoint records (None: it records none), its
    evaluation preprocessing and the readable name of each class."""
    from ..deploy.precision_accuracy import EvalSettings, eval_settings
    from ..models.loading import load_model
    from ..models import create_model

    if opts.num_classes is not None:
        # NOTE: load_model keeps the checkpoint's head; a new head size needs create_model.
        if opts.model is None:
            raise ValueError("--num-classes builds --model NAME with a head of that size: give --model too "
                             "(a checkpoint of edgenext train records its classes: leave --num-classes out)")
        model = create_model(opts.model, pretrained=opts.pretrained, weights=opts.weights, num_classes=opts.num_classes)
        return model, None, eval_settings(model.pretrained_cfg), [str(i) for i in range(model.num_classes)]
    loaded = load_model(opts.model, opts.weights, pretrained=opts.pretrained)
    settings = EvalSettings(loaded.crop_pct, loaded.interpolation, tuple(loaded.mean), tuple(loaded.std))
    return (loaded.model, loaded.input_size if loaded.extra.get("trained") else None, settings,
            list(loaded.descriptions))


def _reduced_precision(opts: Any, checkpoint: Optional["Checkpoint"], model: Any, size: Any,
                       settings: Any) -> dict[str, Any]:
    """``export_model``'s ``calibration`` (int8) and ``check`` (the images its top-1 price is measured on)."""
    from ..deploy.precision_accuracy import digits_storage, is_digits_run, precision_check
    from ..deploy.calibration import calibration_tensor, digits_tensors
    from ..deploy.export import DEFAULT_CALIBRATION_IMAGES
    from ..models.edgenext import input_hw
    from ..models.run_config import run_config

    hw = input_hw(size)
    cfg = run_config(checkpoint.content) if checkpoint is not None else None
    digits_run = cfg if is_digits_run(cfg, model.num_classes) else None
    out: dict[str, Any] = {"check": precision_check(hw, settings, agreement_images=opts.agreement_images,
                                                    digits_run=digits_run)}
    if opts.precision == "int8":
        kwargs = dict(crop_pct=settings.crop_pct, interpolation=settings.interpolation, mean=settings.mean,
                      std=settings.std)
        if digits_run is not None and opts.calibration == "digits":  # the run's own training split
            out["calibration"] = digits_tensors("train", hw, limit=DEFAULT_CALIBRATION_IMAGES, **kwargs,
                                                **digits_storage(digits_run))[0]
        else:
            out["calibration"] = calibration_tensor(opts.calibration, hw, DEFAULT_CALIBRATION_IMAGES, **kwargs)
    return out


def _fuse(module: "nn.Module", input_size: tuple[int, int]) -> "nn.Module":
    from ..deploy import fuse

    return fuse(module, input_size)
