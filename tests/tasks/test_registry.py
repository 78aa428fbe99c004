"""The task registry is the commands' only seam: a task defined in this file alone trains,
evaluates and predicts through ``edgenext train / eval / predict --task``, and the built-in tasks
are found the same way."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from edgenext.cli.main import main
from edgenext.data import DigitsDataset, SkipCounter, load_image
from edgenext.tasks import TaskSpec, get_task, register_task, resolve_task, task_names, unregister_task
from edgenext.train.training_task import TaskData, TrainingTask

SIDE = 16


class MeanDigit(nn.Module):
    """A constant: the model predicts one number for every image (what it learns is the mean label)."""

    def __init__(self) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(x.shape[0])


def _image_tensor(img: Image.Image) -> torch.Tensor:
    pixels = np.asarray(img.convert("RGB").resize((SIDE, SIDE)), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1)  # HWC -> CHW


def _to_tensor(storage_size: int):
    """DigitsDataset's transform factory: every image at SIDE, whatever its stored size."""
    return _image_tensor


def _mae(model: nn.Module, loader) -> dict[str, float]:
    total, count, skipped = 0.0, 0, 0
    with torch.no_grad():
        for images, labels, bad in loader:
            total += float((model(images) - labels.float()).abs().sum())
            count += len(labels)
            skipped += bad
    mae = total / max(count, 1)
    return {"score": -mae, "mae": mae, "loss": mae, "skipped": skipped, "count": count}


class CountTraining(TrainingTask):
    name = "count"
    metric = "score"
    log_keys = ("score", "loss")

    def build_data(self) -> TaskData:
        train = DigitsDataset("train", _to_tensor, image_size=SIDE)
        val = DigitsDataset("val", _to_tensor, image_size=SIDE)
        return TaskData(train=train, val=val, class_names=["count"], collate=SkipCounter())

    def build_model(self, num_classes: int, *, load_finetune: bool = True) -> nn.Module:
        return MeanDigit()

    def placeholder_batch(self, model, device):
        return torch.zeros(1, 3, SIDE, SIDE, device=device), torch.zeros(1, dtype=torch.long, device=device)

    def loss(self, model, inputs, targets):
        return ((model(inputs) - targets.float()) ** 2).mean()

    def evaluate(self, model, loader, *, device, dist, amp_dtype=None, progress=False) -> dict[str, float]:
        return _mae(model, loader)


@register_task
class Count(TaskSpec):
    name = "count"
    title = "counting"
    summary = "count (a test's toy task)"
    metric = "score"

    def training(self, cfg):
        return CountTraining(cfg)

    def default_recipe(self, model: str, demo: bool) -> str:
        return "digits"

    def _model(self, opts) -> MeanDigit:
        state = torch.load(opts.weights, weights_only=True)
        model = MeanDigit()
        model.load_state_dict(state["model"])
        return model.eval()

    def evaluate(self, opts, checkpoint) -> dict[str, Any]:
        val = DigitsDataset("val", _to_tensor, image_size=SIDE)
        loader = torch.utils.data.DataLoader(val, batch_size=64, collate_fn=SkipCounter())
        return {"task": self.name, **_mae(self._model(opts), loader)}

    def eval_summary(self, metrics) -> str:
        return f"mean absolute error {metrics['mae']:.3f} ({metrics['count']} images)"

    @torch.no_grad()
    def predict(self, opts, checkpoint) -> list[dict[str, Any]]:
        model = self._model(opts)
        out = []
        for path in opts.images:
            try:
                image = _image_tensor(load_image(path))
            except OSError as err:
                out.append({"image": str(path), "error": str(err)})
                continue
            out.append({"image": str(path), "count": float(model(image[None])[0])})
        return out

    def describe_prediction(self, result, opts) -> str:
        return f"about {result['count']:.2f}"


unregister_task("count")  # registered again by the fixture, for the tests that use it only


@pytest.fixture
def count_task():
    register_task(Count)
    yield get_task("count")
    unregister_task("count")


def test_a_task_from_this_file_trains_evaluates_and_predicts_through_the_cli(count_task, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", "count", "--epochs", "2", "--workers", "0", "--batch-size", "128",
                 "--set", "lr=0.5", "--set", "warmup_epochs=0", "--set", "ema=false", "--set", "plot=false",
                 "--set", "tensorboard=false", "--no-progress", "--output", str(run)]) == 0
    ckpt = torch.load(run / "best.pth", weights_only=True)
    assert ckpt["config"]["task"] == "count" and set(ckpt["model"]) == {"value"}
    learnt = float(ckpt["model"]["value"])
    assert 3.0 < learnt < 6.0  # the digits' mean label is 4.5: the constant moved from 0 towards it
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and "val_score" in log[-1]
    capsys.readouterr()

    # eval and predict find the task in the checkpoint: no --task needed
    assert main(["eval", "--weights", str(run / "best.pth"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["task"] == "count" and metrics["count"] == len(DigitsDataset("val", image_size=8))
    assert metrics["mae"] == pytest.approx(-max(r["val_score"] for r in log), rel=1e-5)
    image = tmp_path / "digit.png"
    Image.new("RGB", (20, 20), (10, 200, 30)).save(image)
    assert main(["predict", str(image), str(tmp_path / "missing.png"), "--weights", str(run / "best.pth")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{image}: about {learnt:.2f}" and lines[1].startswith(f"{tmp_path / 'missing.png'}: unreadable")


def test_an_unknown_task_is_refused_with_the_registered_ones(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--task", "keypoints"])
    assert "invalid choice: 'keypoints'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown task 'keypoints': choose one of classify, detect, segment"):
        get_task("keypoints")


def test_the_built_in_tasks_are_registered_in_cli_order():
    assert task_names()[:3] == ("classify", "detect", "segment")
    assert [get_task(n).metric for n in ("classify", "detect", "segment")] == ["top1", "map", "miou"]
    assert get_task("detect").multi_output and not get_task("classify").multi_output


def test_weights_name_their_task_and_anything_else_is_the_default(tmp_path):
    path = tmp_path / "run.pth"
    torch.save({"model": {}, "config": {"task": "segment", "model": "edgenext_xx_small"}}, path)
    task, peeked = resolve_task(None, path)
    assert task.name == "segment" and peeked is not None and peeked.path == path
    old = tmp_path / "old.pth"  # a run from before the dense tasks: no task in its config
    torch.save({"model": {}, "config": {"model": "edgenext_xx_small"}}, old)
    assert resolve_task(None, old)[0].name == "classify"
    assert resolve_task(None, None) == (get_task("classify"), None)
    assert resolve_task("detect", path)[0].name == "detect"  # --task wins
