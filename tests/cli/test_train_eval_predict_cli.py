"""``edgenext train``, ``eval`` and ``predict`` end to end on small image folders."""

import json

import pytest
import yaml
from PIL import Image

import edgenext
from edgenext.cli.main import main
from edgenext.inference.classify import IMAGENET_CLASSES, LoadedModel, folder_class_names, predict_images


def test_train_defaults_to_the_digits_demo(capsys):
    assert main(["train", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"] == "edgenext_xx_small" and cfg["data"] == "digits" and cfg["input_size"] == 64


def test_train_help_and_bad_override(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--finetune" in capsys.readouterr().out
    assert main(["train", "--set", "epoch=3", "--print-config"]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err


@pytest.mark.slow
def test_train_then_eval_and_predict_with_the_runs_class_names(tmp_path, image_folder, tiny_config, capsys):
    recipe = tiny_config(output=str(tmp_path / "run"), data=str(image_folder), epochs=1, batch_size=4,
                         train_limit=None, val_limit=None, plot=True, tensorboard=True).to_dict()
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    capsys.readouterr()
    assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--epochs", "2"]) == 0
    trained = tmp_path / "run"
    err = capsys.readouterr().err
    summaries = [line for line in err.splitlines() if "done: best val top1" in line]
    assert len(summaries) == 1, err[-2000:]  # said once, by the library
    assert summaries[0].startswith("edgenext: ") and "best.pth" in summaries[0] and "curves.png" in summaries[0]
    assert (trained / "curves.png").stat().st_size > 0
    assert any((trained / "tensorboard").iterdir())
    rows = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    for key in ("train_loss", "lr", "val_top1", "val_top5", "val_loss", "ema_val_top1", "ema_val_top5", "ema_val_loss"):
        assert key in rows[0]
    assert yaml.safe_load((trained / "config.yaml").read_text())["epochs"] == 2

    assert main(["eval", str(image_folder / "val"), "--weights", str(trained / "best.pth"), "--json", "--workers", "0"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["count"] == 8 and 0 <= metrics["top1"] <= 100 and metrics["top5"] == 100.0
    assert metrics["input_size"] == 32 and metrics["crop_pct"] == 1.0

    images = [str(p) for p in sorted((image_folder / "val" / "dog").iterdir())[:2]]
    assert main(["predict", *images, "--weights", str(trained / "last.pth"), "--json", "--top-k", "3"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert len(preds) == 2
    for p in preds:
        assert [t["label"] for t in p["top"]] in (["cat", "dog"], ["dog", "cat"])  # top-k capped at 2 classes
        assert sum(t["prob"] for t in p["top"]) == pytest.approx(1.0, abs=1e-5)


def test_predict_reports_unreadable_images(tmp_path, capsys):
    model = edgenext.EdgeNeXt(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), heads=(2, 2, 2, 2), num_classes=3).eval()
    loaded = LoadedModel(model, ["a", "b", "c"], ["a", "b", "c"], 32, 1.0, "bicubic", (0.5,) * 3, (0.5,) * 3)
    good, bad = tmp_path / "ok.png", tmp_path / "bad.jpg"
    Image.new("RGB", (50, 40), (200, 10, 10)).save(good)
    bad.write_bytes(b"nope")
    res = predict_images(loaded, [str(good), str(bad)], top_k=2)
    assert len(res[0]["top"]) == 2 and "error" in res[1]


def test_imagenet_folders_map_to_imagenet_indices(tmp_path):
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    wnids = [info.index_to_label_name(i) for i in (1, 207, 980)]
    for w in wnids:
        (tmp_path / w).mkdir()
        Image.new("RGB", (40, 40)).save(tmp_path / w / "x.jpg")
    model = edgenext.EdgeNeXt(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), heads=(2, 2, 2, 2), num_classes=IMAGENET_CLASSES)
    names = list(info.label_names())
    loaded = LoadedModel(model.eval(), names, [info.index_to_description(i) for i in range(1000)], 32, 0.875, "bicubic",
                         (0.5,) * 3, (0.5,) * 3)
    order = folder_class_names(loaded, tmp_path)
    assert [order.index(w) for w in wnids] == [1, 207, 980]
    from edgenext.data import ImageFolderDataset

    assert ImageFolderDataset(tmp_path, class_names=order).targets == [1, 207, 980]
    (tmp_path / "not_a_wnid").mkdir()
    with pytest.raises(ValueError, match="not classes of this model"):
        folder_class_names(loaded, tmp_path)
    res = predict_images(loaded, [str(tmp_path / wnids[0] / "x.jpg")], top_k=3)
    assert all(t["label"].startswith("n") and t["description"] for t in res[0]["top"])
    assert sum(t["prob"] for t in res[0]["top"]) <= 1.0 + 1e-6


def test_eval_of_a_missing_folder_names_it(tmp_path, capsys):
    from edgenext.cli.main import main as cli_main

    assert cli_main(["eval", str(tmp_path / "nope"), "--model", "edgenext_xx_small"]) == 2
    assert "nope: no such folder" in capsys.readouterr().err
