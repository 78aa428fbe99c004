"""The app config written beside every export: the evaluation transform timm builds for the model,
the engine's own input/output names, and the outputs the export checked."""

import json

import pytest

from edgenext.cli.main import main
from edgenext.deploy.app_config import app_config_path, engine_names
from edgenext.deploy.formats import FORMATS


def _timm_eval_transform(model_name: str):
    """The evaluation transform timm builds from our ``model_name``'s pretrained config: (resize, crop)
    sizes, mean, std, interpolation."""
    from timm.data import create_transform, resolve_data_config
    from torchvision import transforms as T

    from edgenext import create_model

    cfg = resolve_data_config({}, model=create_model(model_name))
    steps = create_transform(**cfg).transforms
    resize = next(t for t in steps if isinstance(t, T.Resize))
    crop = next(t for t in steps if isinstance(t, T.CenterCrop))
    return resize.size, list(crop.size), list(cfg["mean"]), list(cfg["std"]), cfg["interpolation"]


def test_a_classifier_export_writes_timms_evaluation_transform(tmp_path):
    # the config does not depend on the format: TorchScript writes the 256 px classifier in a second
    out = tmp_path / "model.pt"
    assert main(["export", "--model", "edgenext_xx_small", "--format", "torchscript", "--output", str(out)]) == 0
    app = json.loads((tmp_path / "model.json").read_text())
    resize, crop, mean, std, interpolation = _timm_eval_transform("edgenext_xx_small")
    pre = app["preprocess"]
    assert pre["resize_short_side"] == resize and pre["center_crop"] == crop == [256, 256]
    assert pre["mean"] == pytest.approx(mean) and pre["std"] == pytest.approx(std)
    assert pre["interpolation"] == interpolation and not pre["normalised_in_graph"]
    assert app["input"] == {"name": "input", "shape": [1, 3, 256, 256], "layout": "NCHW", "dtype": "float32",
                            "color": "RGB"}
    assert len(app["labels"]) == 1000 and app["labels"][0].startswith("tench")
    assert app["files"] == ["model.pt"]


@pytest.mark.skipif(not FORMATS["ncnn"].installed, reason="ncnn is not installed")
def test_a_segmenter_export_records_its_checked_outputs(tmp_path):
    # ncnn: the quickest converter of a dense graph (a few seconds), and one that renames the outputs
    out = tmp_path / "seg.param"
    assert main(["export", "--task", "segment", "--model", "edgenext_xx_small", "--num-classes", "4",
                 "--input-size", "64", "--format", "ncnn", "--output", str(out)]) == 0
    app = json.loads((tmp_path / "seg.json").read_text())
    assert app["outputs"] == [{"name": "out0", "role": "logits", "shape": [1, 4, 64, 64]}]  # ncnn's own name
    assert app["preprocess"]["resize"] == [64, 64] and app["preprocess"]["normalised_in_graph"]
    assert app["labels"] is None  # random weights: no classes to name


def test_engine_names_and_the_path_beside_the_model():
    assert engine_names("ncnn", "input", ["boxes", "scores"]) == ("in0", ["out0", "out1"])
    assert engine_names("litert", "input", ["logits"]) == ("args_0", ["output_0"])
    assert engine_names("onnx", "input", ["logits"]) == ("input", ["logits"])
    assert app_config_path("a/model.param") == app_config_path("a/model.tflite")
    with pytest.raises(ValueError, match="json"):
        app_config_path("model.json")
