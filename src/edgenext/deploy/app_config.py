"""What a mobile or web app needs beside an exported model, in one small JSON shared by every format:
the task, the input (name, shape, layout, colour order), the preprocessing of the evaluation
transform (resize, crop, interpolation, scale, mean/std), the outputs and the class labels.

``edgenext export`` writes it next to the model as ``<stem>.json`` (``model.tflite`` ->
``model.json``; ncnn's ``model.param`` + ``model.bin`` -> ``model.json``). The schema is versioned by
``edgenext_app_config``; the README's "Deploying to a phone" section reads it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from .result import ExportResult, weights_beside

#: the schema's version, the first key of every file
APP_CONFIG_VERSION = 1
#: the network's input is RGB in [0, 1] once divided by 255
PIXEL_SCALE = 1.0 / 255.0


def app_config_path(model_path: Union[str, Path]) -> Path:
    """Where the app config of the model at ``model_path`` goes: ``<stem>.json`` beside it."""
    path = Path(model_path)
    if path.suffix == ".json":
        raise ValueError(f"{path}: a model file cannot be a .json (its app config would overwrite it)")
    return path.with_suffix(".json")


def classify_preprocess(input_hw: Sequence[int], crop_pct: float, interpolation: str, mean: Sequence[float],
                        std: Sequence[float]) -> dict[str, Any]:
    """The evaluation transform of a classifier (timm's): resize the short side to
    ``floor(side / crop_pct)``, center-crop ``input_hw``, scale to [0, 1], normalise."""
    height, width = (int(v) for v in input_hw)
    return {"resize_short_side": int(math.floor(max(height, width) / crop_pct)), "resize": None,
            "center_crop": [height, width], "crop_pct": float(crop_pct), "interpolation": interpolation,
            "scale": PIXEL_SCALE, "mean": [float(m) for m in mean], "std": [float(s) for s in std],
            "normalised_in_graph": False}


def dense_preprocess(input_hw: Sequence[int]) -> dict[str, Any]:
    """A detector's or segmenter's input: the whole image resized to ``input_hw`` (no letterbox, no
    crop), scaled to [0, 1]; the normalisation is inside the graph."""
    height, width = (int(v) for v in input_hw)
    return {"resize_short_side": None, "resize": [height, width], "center_crop": None, "crop_pct": None,
            "interpolation": "bilinear", "scale": PIXEL_SCALE, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
            "normalised_in_graph": True}


#: the engines that name their inputs and outputs themselves: (input name, output name of position i)
_ENGINE_NAMES = {
    "ncnn": ("in0", "out{}"),  # pnnx's blob names
    "litert": ("args_0", "output_{}"),  # litert-torch's default signature ("serving_default")
}


def engine_names(fmt: str, input_name: str, output_names: Sequence[str]) -> tuple[str, list[str]]:
    """The names an app passes to ``fmt``'s engine: ours (ONNX, MNN, OpenVINO, ...) or the engine's own."""
    if fmt not in _ENGINE_NAMES:
        return input_name, list(output_names)
    given_in, given_out = _ENGINE_NAMES[fmt]
    return given_in, [given_out.format(i) for i in range(len(output_names))]


def output_notes(task: str) -> str:
    """How an app reads the outputs of ``task``'s graph."""
    return {
        "classify": "logits (N, classes): softmax, then the top-k labels",
        "detect": "boxes (N, A, 4) x1,y1,x2,y2 in input pixels; scores (N, A, classes) softmax, class 0 the "
                  "background: keep scores above a threshold, then per-class NMS (not in the graph)",
        "segment": "logits (N, classes, H, W) at the input size: argmax over classes per pixel, class 0 the background",
    }.get(task, "one map (N, C, H, W) per output, in order")


def app_config(result: ExportResult, *, task: str, model: Optional[str], input_hw: Sequence[int],
               preprocess: dict[str, Any], labels: Optional[Sequence[str]], in_chans: int = 3,
               input_name: str = "input", shapes: Optional[dict[str, Sequence[int]]] = None,
               params: Optional[int] = None, postprocess: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The app config of a checked export (``result``). ``shapes``: each output's shape at batch 1
    (default: what the export recorded, ``details["shapes"]``, as multi-output exports do).
    ``params``: the model's parameter count (a page shows it); ``postprocess``: what an app applies to
    the outputs with the model's own settings (a detector's score threshold, NMS IoU and caps:
    ``SSDLite.selection()``). Both optional keys, None when not given (schema version 1 unchanged)."""
    height, width = (int(v) for v in input_hw)
    shapes = shapes if shapes is not None else (result.details.get("shapes") or {})
    path = Path(result.path)
    name_in, names_out = engine_names(result.format, input_name, list(shapes))
    weights = weights_beside(path)
    files = [path.name] + ([weights.name] if weights is not None else [])
    return {
        "edgenext_app_config": APP_CONFIG_VERSION,
        "task": task,
        "model": model,
        "format": result.format,
        "precision": result.precision,
        "files": files,
        "input": {"name": name_in, "shape": [1, in_chans, height, width], "layout": "NCHW", "dtype": "float32",
                  "color": "RGB"},
        "preprocess": preprocess,
        "outputs": [{"name": engine, "role": name, "shape": list(shape)}
                    for engine, (name, shape) in zip(names_out, shapes.items())],
        "output_notes": output_notes(task),
        "labels": None if labels is None else [str(label) for label in labels],
        "params": None if params is None else int(params),
        "postprocess": None if postprocess is None else dict(postprocess),
    }


def write_app_config(result: ExportResult, config: dict[str, Any]) -> Path:
    """Write ``config`` beside ``result``'s model and record where in ``result.details``."""
    path = app_config_path(result.path)
    path.write_text(json.dumps(config, indent=1) + "\n")
    result.details["app_config"] = str(path)
    return path
