"""Training on tar shards: every sample once per epoch, and a run resumed mid-epoch from shards ends exactly
like an uninterrupted one."""

import json

import pytest

from edgenext.cli.main import main
from edgenext.tasks import fit
from edgenext.train import load_training_checkpoint

# augmentation, mixup, drop path, multi-scale and a loader worker: every random stream of the loop in play
RECIPE = dict(epochs=2, augment=True, color_jitter=0.4, crop_scale=[0.5, 1.0], mixup=0.8, cutmix=1.0, drop_path=0.1,
              ema=True, ema_decay=0.9, workers=1, batch_size=4, multi_scale=True, scales=[32, 40],
              train_limit=None, val_limit=None, warmup_epochs=0.0, checkpoint_every=2,
              data_kwargs={"shuffle_shards": 2})


@pytest.fixture(scope="module")
def shards(tmp_path_factory, folder_writer):
    root = tmp_path_factory.mktemp("shard-training")
    folder_writer(root / "folder", classes=("a", "b", "c"), per_class=8, size=32)
    assert main(["shards", str(root / "folder"), str(root / "shards"), "--shard-size", "6", "--no-progress"]) == 0
    return root / "shards"


@pytest.fixture(scope="module")
def whole(shards, tiny_config_at, tmp_path_factory):
    return fit(tiny_config_at(tmp_path_factory.mktemp("whole") / "run", data=str(shards), **RECIPE))


def _records(out):
    return [{k: v for k, v in json.loads(line).items() if k not in ("images_per_s", "epoch_time_s")}
            for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_run_on_shards_resumed_mid_epoch_ends_exactly_like_an_uninterrupted_one(
        shards, whole, tiny_config, tmp_path, monkeypatch, crash_after_mid_epoch_checkpoint):
    assert [r["train_images"] for r in _records(whole.output_dir)] == [24, 24]  # 4 equal shards: each sample once
    saved = crash_after_mid_epoch_checkpoint  # one update after the mid-epoch checkpoint of epoch 1
    cfg = tiny_config(output=str(tmp_path / "split"), data=str(shards), **RECIPE)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg)
    assert load_training_checkpoint(tmp_path / "split" / "last.pth")["in_epoch"]["batches"] == saved[0] > 0
    monkeypatch.undo()
    resumed = fit(cfg)
    a = load_training_checkpoint(whole.output_dir / "last.pth")
    b = load_training_checkpoint(resumed.output_dir / "last.pth")
    for key in ("model", "model_ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert (a[key][name] == b[key][name]).all(), f"{key}.{name}"
    assert _records(whole.output_dir) == _records(resumed.output_dir)
