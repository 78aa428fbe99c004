"""End-to-end runs on a tiny model: exact resume, NaN stop, corrupt images, fine-tuning, distillation."""

import json
import warnings

import pytest
import torch

import edgenext
from edgenext.models.weights import ours_to_official
from edgenext.train import NonFiniteLossError, load_training_checkpoint
from edgenext.tasks import fit
from edgenext.train import runner as runner_mod
from edgenext.train.classify import build_model

TIMING = ("images_per_s", "epoch_time_s")


def records(out):
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# every random stream in play: multi-scale batches, crops, colour jitter, mixup/cutmix, drop path, EMA, a loader worker
AUGMENTED = dict(epochs=2, augment=True, color_jitter=0.4, crop_scale=[0.5, 1.0], mixup=0.8, cutmix=1.0, drop_path=0.1,
                 ema=True, ema_decay=0.9, workers=1, train_limit=48, val_limit=16, plot=True, multi_scale=True,
                 scales=[32, 40, 48])


@pytest.fixture(scope="module")
def whole(tiny_config_at, tmp_path_factory):
    """The uninterrupted run the interrupted ones must end exactly like."""
    return fit(tiny_config_at(tmp_path_factory.mktemp("whole") / "run", **AUGMENTED))


def assert_same_end(whole, resumed):
    a = load_training_checkpoint(whole.output_dir / "last.pth")
    b = load_training_checkpoint(resumed.output_dir / "last.pth")
    assert_same_weights(a["model"], b["model"])
    assert_same_weights(a["model_ema"], b["model_ema"])
    assert records(whole.output_dir) == records(resumed.output_dir)
    assert a["best"] == b["best"] and (resumed.output_dir / "best.pth").is_file()


@pytest.mark.slow
def test_interrupted_and_resumed_run_ends_exactly_like_an_uninterrupted_one(whole, tiny_config, tmp_path, monkeypatch):
    real = runner_mod.train_one_epoch

    def crash_at_epoch_1(parts, loader, epoch, **kw):
        if epoch == 1:
            raise KeyboardInterrupt  # as if the machine went down after epoch 0 was saved
        return real(parts, loader, epoch, **kw)

    monkeypatch.setattr(runner_mod, "train_one_epoch", crash_at_epoch_1)
    cfg = tiny_config(output=str(tmp_path / "split"), **AUGMENTED)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg)
    assert load_training_checkpoint(tmp_path / "split" / "last.pth")["epoch"] == 0
    monkeypatch.setattr(runner_mod, "train_one_epoch", real)
    resumed = fit(cfg)  # the same command again: resumes automatically
    assert [r["epoch"] for r in resumed.history] == [1]
    assert_same_end(whole, resumed)
    assert (resumed.output_dir / "curves.png").stat().st_size > 0


@pytest.mark.slow
def test_a_run_resumed_from_a_mid_epoch_checkpoint_ends_exactly_like_an_uninterrupted_one(
        whole, tiny_config, tmp_path, monkeypatch, crash_after_mid_epoch_checkpoint):
    # augmentation is a function of (seed, epoch, position): the loader worker of the resumed run, which starts
    # at the checkpoint's batch, augments those batches exactly as the uninterrupted run's worker did
    saved_in_epoch_1 = crash_after_mid_epoch_checkpoint
    cfg = tiny_config(output=str(tmp_path / "split"), checkpoint_every=2, **AUGMENTED)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg)
    ckpt = load_training_checkpoint(tmp_path / "split" / "last.pth")
    assert ckpt["epoch"] == 0 and ckpt["in_epoch"]["epoch"] == 1 and ckpt["in_epoch"]["batches"] == saved_in_epoch_1[0] > 0
    monkeypatch.undo()
    resumed = fit(cfg)  # the same command again: resumes automatically, at the checkpoint's batch
    assert [r["epoch"] for r in resumed.history] == [1]
    assert_same_end(whole, resumed)


@pytest.mark.slow
def test_rerunning_without_output_continues_the_unfinished_run(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = runner_mod.train_one_epoch

    def crash(parts, loader, epoch, **kw):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(parts, loader, epoch, **kw)

    monkeypatch.setattr(runner_mod, "train_one_epoch", crash)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(output=None))
    monkeypatch.setattr(runner_mod, "train_one_epoch", real)
    result = fit(tiny_config(output=None))
    assert [r["epoch"] for r in result.history] == [1]
    assert len(list((tmp_path / "runs").iterdir())) == 1
    again = fit(tiny_config(output=None))  # finished runs are not resumed: a new folder
    assert again.output_dir != result.output_dir and len(again.history) == 2


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_config, monkeypatch):
    cfg = tiny_config(epochs=3)
    real = runner_mod.train_one_epoch

    def poison_epoch_1(parts, loader, epoch, **kw):
        if epoch == 1:
            parts.model.head.fc.weight.data.fill_(float("nan"))
        return real(parts, loader, epoch, **kw)

    monkeypatch.setattr(runner_mod, "train_one_epoch", poison_epoch_1)
    with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 1"):
        fit(cfg)
    ckpt = load_training_checkpoint(cfg.output + "/last.pth")
    assert ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert len(records(runner_mod.Path(cfg.output))) == 1


def test_corrupt_images_are_skipped_and_counted_in_the_epoch_summary(tiny_config, image_folder):
    (image_folder / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (image_folder / "val" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        result = fit(tiny_config(data=str(image_folder), epochs=1, batch_size=4, train_limit=None, val_limit=None))
    (row,) = result.history
    assert row["train_skipped"] == 1 and row["val_skipped"] == 1
    assert row["train_images"] == 8 and 0.0 <= row["val_top1"] <= 100.0
    # with mixup (which pairs images up) a skipped image must not leave an odd batch behind
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the same two files again
        mixed = fit(tiny_config(data=str(image_folder), epochs=2, batch_size=3, mixup=0.8, train_limit=None,
                                val_limit=None, output=str(image_folder.parent / "mixed")))
    assert all(r["train_images"] % 2 == 0 for r in mixed.history)


def test_missing_data_folder_is_a_clear_error(tiny_config, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        fit(tiny_config(data=str(tmp_path / "nowhere")))


TINY = dict(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), heads=(2, 2, 2, 2))


@pytest.mark.parametrize("fmt", ["official", "timm", "ours_training", "safetensors"])
def test_finetune_loads_every_checkpoint_format_and_reinitialises_the_head(tiny_config, tmp_path, fmt):
    source = edgenext.create_model("edgenext_xx_small", num_classes=7, **TINY)
    state = source.state_dict()
    path = tmp_path / f"src.{'safetensors' if fmt == 'safetensors' else 'pth'}"
    if fmt == "official":
        torch.save({"model": ours_to_official(state)}, path)
    elif fmt == "timm":
        torch.save(state, path)
    elif fmt == "ours_training":
        torch.save({"model": state, "model_ema": state, "epoch": 3, "class_names": [str(i) for i in range(7)]}, path)
    else:
        edgenext.save_weights(source, path)
    model = build_model(tiny_config(finetune=str(path)), num_classes=3)
    got = model.state_dict()
    assert got["head.fc.weight"].shape == (3, 64)
    for k, v in state.items():
        if not k.startswith("head.fc."):
            assert torch.equal(got[k], v), k


def test_finetune_run_and_distillation_from_a_trained_teacher(tiny_config, image_folder, tmp_path):
    pre = fit(tiny_config(output=str(tmp_path / "pre"), epochs=1))  # 10 digit classes
    cfg = tiny_config(output=str(tmp_path / "ft"), data=str(image_folder), epochs=1, batch_size=4, train_limit=None,
                      val_limit=None, finetune=str(pre.best_checkpoint))
    ft = fit(cfg)
    assert load_training_checkpoint(ft.output_dir / "best.pth")["class_names"] == ["cat", "dog"]
    student = fit(tiny_config(output=str(tmp_path / "kd"), data=str(image_folder), epochs=1, batch_size=4,
                              train_limit=None, val_limit=None, teacher_weights=str(ft.best_checkpoint), distill_tau=2.0))
    assert torch.isfinite(torch.tensor(student.history[0]["train_loss"]))


def test_gradient_accumulation_matches_the_larger_batch(tiny_config, tmp_path):
    common = dict(epochs=1, augment=False, ema=False, label_smoothing=0.0, train_limit=32, warmup_epochs=0)
    big = fit(tiny_config(output=str(tmp_path / "big"), batch_size=16, **common))
    acc = fit(tiny_config(output=str(tmp_path / "acc"), batch_size=8, accum_steps=2, **common))
    a = load_training_checkpoint(big.output_dir / "last.pth")["model"]
    b = load_training_checkpoint(acc.output_dir / "last.pth")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)


def test_mixed_precision_bf16_on_cpu(tiny_config, monkeypatch):
    from edgenext.train import setup as builders

    # amp gives bf16 only on CPUs with native bf16: pretend this is one, so the bf16 path runs everywhere
    monkeypatch.setattr(builders, "native_bf16", lambda: (True, "native bf16 (test)"))
    assert builders.amp_settings(tiny_config(amp=True), torch.device("cpu"))[0] == torch.bfloat16
    result = fit(tiny_config(amp=True, epochs=1, train_limit=32, val_limit=16))
    row = result.history[0]
    assert torch.isfinite(torch.tensor(row["train_loss"])) and 0.0 <= row["val_top1"] <= 100.0
