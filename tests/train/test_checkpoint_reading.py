"""What a checkpoint of ``edgenext train`` records is read once, by one function, the same way everywhere."""

import pytest
import torch
from PIL import Image

import edgenext
from edgenext.train.classify import build_model
from edgenext.train.checkpoint import atomic_save, find_unfinished_run
from edgenext.inference.classify import LoadedModel, eval_side, evaluate_folder, load_model, predict_images
from edgenext.models.run_config import model_overrides, run_config


def _save_run_checkpoint(cfg, path, *, epoch=0, classes=("cat", "dog", "fox")):
    """A best.pth as the runner writes it: the run's config, class names and weights."""
    model = build_model(cfg, len(classes), load_finetune=False)
    atomic_save({"epoch": epoch, "config": cfg.to_dict(), "class_names": list(classes), "model_name": cfg.model,
                 "model": model.state_dict()}, path)
    return model


def test_model_overrides_for_training_and_for_inference():
    cfg = {"model_kwargs": {"dims": [16, 32, 48, 64], "drop_path_rate": 0.3}, "drop_path": 0.1}
    assert model_overrides(cfg, training=True) == {"dims": [16, 32, 48, 64], "drop_path_rate": 0.3}
    assert model_overrides({**cfg, "model_kwargs": {"dims": [8]}}, training=True) == {"dims": [8], "drop_path_rate": 0.1}
    assert model_overrides(cfg, training=False) == {"dims": [16, 32, 48, 64]}
    assert model_overrides({}, training=False) == {}
    with pytest.raises(ValueError, match="model_kwargs must be a mapping"):
        model_overrides({"model_kwargs": [1, 2]}, training=False)


def test_run_config_recognises_only_training_checkpoints():
    assert run_config({"config": {"model": "edgenext_small"}, "model": {}}) == {"model": "edgenext_small"}
    assert run_config({"stem.0.weight": torch.zeros(1)}) is None
    assert run_config({"config": "text", "model": {}}) is None


def test_load_model_reads_the_checkpoint_once_and_builds_what_training_built(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config(drop_path=0.2)
    trained = _save_run_checkpoint(cfg, tmp_path / "best.pth", epoch=4)
    reads = []
    real_load = torch.load

    def counting_load(*args, **kwargs):
        reads.append(args[0])
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    loaded = load_model(weights=str(tmp_path / "best.pth"))  # no model name: the checkpoint's
    assert len(reads) == 1
    assert loaded.class_names == ["cat", "dog", "fox"] and loaded.input_size == cfg.input_size
    assert loaded.crop_pct == cfg.eval_crop_pct and loaded.extra == {"trained": True, "epoch": 4, "source": str(tmp_path / "best.pth")}
    assert [s.blocks.__len__() for s in loaded.model.stages] == [1, 1, 1, 1]  # the run's model_kwargs
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), trained.eval()(x))


def test_another_head_size_gets_index_names(tiny_config, tmp_path):
    _save_run_checkpoint(tiny_config(), tmp_path / "best.pth")
    loaded = load_model(weights=str(tmp_path / "best.pth"), num_classes=5)
    assert loaded.model.num_classes == 5 and loaded.class_names == ["0", "1", "2", "3", "4"]


def test_a_plain_state_dict_needs_a_model_name(tmp_path):
    torch.save(edgenext.create_model("edgenext_xx_small", num_classes=4).state_dict(), tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"w\.pth: not a checkpoint of edgenext train, so give --model"):
        load_model(weights=str(tmp_path / "w.pth"))
    loaded = load_model("edgenext_xx_small", str(tmp_path / "w.pth"))
    assert loaded.class_names == ["0", "1", "2", "3"] and loaded.extra["trained"] is False
    with pytest.raises(ValueError, match="give --model NAME"):
        load_model()


def test_input_sizes_are_sides_or_square_pairs(tmp_path):
    assert eval_side(64) == 64 and eval_side((96, 96)) == 96 and eval_side([48, 48]) == 48
    with pytest.raises(ValueError, match="64x96: evaluation uses square center crops"):
        eval_side((64, 96))
    with pytest.raises(ValueError, match="minimum"):
        eval_side(16)
    model = edgenext.EdgeNeXt(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), heads=(2, 2, 2, 2), num_classes=2).eval()
    loaded = LoadedModel(model, ["a", "b"], ["a", "b"], 32, 1.0, "bicubic", (0.5,) * 3, (0.5,) * 3)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / name / "x.png")
    assert evaluate_folder(loaded, str(tmp_path), workers=0, input_size=(48, 48))["input_size"] == 48
    with pytest.raises(ValueError, match="square"):
        predict_images(loaded, [str(tmp_path / "a" / "x.png")], input_size=(32, 64))
    res = predict_images(loaded, [str(tmp_path / "a" / "x.png")], input_size=(64, 64))
    assert sum(t["prob"] for t in res[0]["top"]) == pytest.approx(1.0, abs=1e-5)


def test_find_unfinished_run_maps_instead_of_reading_the_weights(tiny_config, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    cfg = tiny_config(epochs=3)
    want = cfg.to_dict()
    _save_run_checkpoint(cfg, runs / "m-digits-20240101-000000" / "last.pth", epoch=0)  # unfinished
    _save_run_checkpoint(cfg, runs / "m-digits-20240102-000000" / "last.pth", epoch=2)  # finished, newer
    other = tiny_config(epochs=3, lr=0.5)
    _save_run_checkpoint(other, runs / "m-digits-20240103-000000" / "last.pth", epoch=0)  # another config
    (runs / "m-digits-20240104-000000").mkdir()
    (runs / "m-digits-20240104-000000" / "last.pth").write_bytes(b"garbage")  # unreadable: skipped
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("mmap"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert find_unfinished_run(runs, "m-digits", want) == runs / "m-digits-20240101-000000"
    assert calls and all(calls)  # every candidate memory-mapped, none read in full
    assert find_unfinished_run(runs, "m-digits", other.to_dict()) == runs / "m-digits-20240103-000000"
    assert find_unfinished_run(runs, "m-digits", tiny_config(epochs=3, seed=7).to_dict()) is None
    assert find_unfinished_run(tmp_path / "nowhere", "m-digits", want) is None


def test_cli_eval_refuses_a_non_square_size_before_loading(tmp_path, capsys, monkeypatch):
    from edgenext.cli.main import main
    from edgenext.models import loading

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("loaded before checking"))
    assert main(["eval", str(tmp_path), "--model", "edgenext_xx_small", "--input-size", "64", "96"]) == 2
    assert "64x96: evaluation uses square center crops" in capsys.readouterr().err
