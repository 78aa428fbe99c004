"""Build a demo site: a static folder that runs a checkpoint in the visitor's browser.

The folder holds ``index.html``, ``demo.js`` and ``demo.css`` (package data, no build step), the
model exported by the project's one export path (``TaskSpec.export``: fused, ONNX, checked against
eager PyTorch) as ``model.onnx``, its app config ``model.json`` (the exporter's schema: task, input,
preprocessing, outputs, labels, parameter count, post-processing) with a ``demo`` entry added for
the page, and the pinned ONNX Runtime Web files under ``ort/`` (or their CDN address). Any static
host serves it; ``edgenext.demo.server`` serves it cross-origin isolated.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Union

from ..deploy.app_config import app_config_path
from ..deploy.request import validate_export
from ..deploy.result import ExportResult
from ..models.run_config import run_config
from ..tasks import resolve_task
from .ort_web import CDN_URL, ENTRY_POINTS, ORT_WEB_VERSION, copy_site_files, locate_dist

#: the page's own files (package data under edgenext/demo/static/)
STATIC_FILES = ("index.html", "demo.js", "demo.css")
MODEL_FILE = "model.onnx"
ORT_FOLDER = "ort"
RUNTIMES = ("local", "cdn")
PRECISIONS = ("fp32", "int8")
#: the largest image the page decodes (a side, and pixels in all): above, a message instead of a crash
MAX_SIDE = 8192
MAX_PIXELS = 40_000_000
#: the score slider's starting value on a detector's page (``edgenext predict --task detect``'s threshold)
DISPLAY_SCORE = 0.3

PathLike = Union[str, Path]


@dataclass
class DemoSite:
    """A built site: its ``folder``, the ``config`` the page reads, the checked ``export`` and where
    ONNX Runtime Web comes from (``ort_source``: the dist folder copied, or the CDN address)."""

    folder: Path
    config: dict[str, Any]
    export: ExportResult
    runtime: str
    ort_source: str

    def summary_lines(self) -> list[str]:
        """What ``edgenext demo`` prints about the site."""
        cfg = self.config
        size = "x".join(str(v) for v in cfg["input"]["shape"][2:])
        params = f", {cfg['params'] / 1e6:.2f} M parameters" if cfg.get("params") else ""
        return [f"demo site: {self.folder} ({cfg['task']}, {cfg['demo']['title']}, {size} px{params}, "
                f"{cfg['precision']})", self.export.parity_line(),
                f"ONNX Runtime Web {ORT_WEB_VERSION}: {self.ort_source}"]


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} {value!r}: choose one of {', '.join(choices)}")


def _prepare_folder(folder: Path) -> None:
    """Create ``folder``, refusing to write into a non-empty folder that is not a demo site already."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--output {folder}: a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "index.html").is_file():
        raise ValueError(f"--output {folder}: a non-empty folder that holds no demo site; give a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)


def _export_options(model: Optional[str], weights: Optional[PathLike], pretrained: bool, precision: str,
                    input_size: Any, output: Path) -> argparse.Namespace:
    """The options ``edgenext export`` would parse for this site's ONNX file (batch 1: one image at a time)."""
    return argparse.Namespace(model=model, weights=None if weights is None else str(weights), pretrained=pretrained,
                              num_classes=None, format="onnx", output=output, input_size=input_size, batch=1,
                              precision=precision, calibration="digits", agreement_images=None, no_fuse=False,
                              layout=None)


def _title(config: dict[str, Any], checkpoint_content: Optional[dict], weights: Optional[PathLike]) -> str:
    """The model's name on the page: the variant asked for, else the one the checkpoint records."""
    recorded = run_config(checkpoint_content) if checkpoint_content is not None else None
    name = config.get("model") or (recorded or {}).get("model")
    if name is None and weights is not None:
        name = Path(str(weights)).stem
    return str(name or "EdgeNeXt")


def demo_entry(config: dict[str, Any], *, title: str, runtime: str, source: Optional[PathLike]) -> dict[str, Any]:
    """The ``demo`` entry of the page's config: what the page needs beyond the app config."""
    return {
        "title": title,
        "source": None if source is None else Path(str(source)).name,
        "runtime": runtime,
        "ort_version": ORT_WEB_VERSION,
        "ort_base": f"{ORT_FOLDER}/" if runtime == "local" else CDN_URL,
        "ort_scripts": {backend: files[0] for backend, files in ENTRY_POINTS.items()},
        "model_file": MODEL_FILE,
        "max_side": MAX_SIDE,
        "max_pixels": MAX_PIXELS,
        # a detector's post-processing has a score threshold: the slider starts at the display score
        "display_score": DISPLAY_SCORE if (config.get("postprocess") or {}).get("score_thresh") is not None else None,
    }


def copy_static(folder: Path) -> None:
    """Copy the page's own files (package data) into ``folder``."""
    static = resources.files("edgenext.demo") / "static"
    for name in STATIC_FILES:
        (folder / name).write_bytes((static / name).read_bytes())


def build_site(
    output: PathLike,
    *,
    weights: Optional[PathLike] = None,
    model: Optional[str] = None,
    pretrained: bool = False,
    task: Optional[str] = None,
    input_size: Any = None,
    precision: str = "fp32",
    runtime: str = "local",
    ort_dist: Optional[PathLike] = None,
    download: bool = True,
) -> DemoSite:
    """Build the demo site of a model in ``output``.

    The model: ``weights`` (a checkpoint of ``edgenext train`` names its task, model, input size and
    classes; or any checkpoint ``create_model`` reads, with ``model``), or ``model`` with
    ``pretrained``. It is exported through ``edgenext export``'s path (``precision`` fp32 or int8,
    batch 1) and checked there. ``runtime``: ``local`` copies the pinned ONNX Runtime Web files
    (found by ``ort_web.locate_dist(ort_dist)``, downloaded when ``download`` and found nowhere),
    ``cdn`` points the page at jsDelivr. Looks for ONNX Runtime Web before exporting, so a missing
    runtime fails at once.
    """
    _check_choice("--runtime", runtime, RUNTIMES)
    _check_choice("--precision", precision, PRECISIONS)
    if weights is None and model is None:
        raise ValueError("give --weights CHECKPOINT (e.g. runs/<run>/best.pth) or --model NAME [--pretrained]")
    dist = locate_dist(ort_dist, download=download) if runtime == "local" else None
    spec, checkpoint = resolve_task(task, weights)
    validate_export("onnx", precision, batch=1, multi_output=spec.multi_output, precisions=spec.export_precisions,
                    task=spec.name)
    folder = Path(output)
    _prepare_folder(folder)
    result = spec.export(_export_options(model, weights, pretrained, precision, input_size, folder / MODEL_FILE),
                         checkpoint)
    config_path = app_config_path(folder / MODEL_FILE)
    config = json.loads(config_path.read_text())
    title = _title(config, checkpoint.content if checkpoint is not None else None, weights)
    config["demo"] = demo_entry(config, title=title, runtime=runtime, source=weights)
    config_path.write_text(json.dumps(config, indent=1) + "\n")
    copy_static(folder)
    if dist is not None:
        copy_site_files(dist, folder / ORT_FOLDER)
    elif (folder / ORT_FOLDER).is_dir():
        shutil.rmtree(folder / ORT_FOLDER)  # a rebuilt site that now loads the CDN's copy
    return DemoSite(folder=folder, config=config, export=result, runtime=runtime,
                    ort_source=str(dist) if dist is not None else CDN_URL)
