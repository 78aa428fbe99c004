"""Two gloo processes under torchrun train to the same weights as one process with the same global batch."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from edgenext.train import load_training_checkpoint
from edgenext.tasks import fit

# deterministic: no augmentation, no drop path, no mixup (each process draws its own random streams)
DETERMINISTIC = dict(augment=False, drop_path=0.0, mixup=0.0, cutmix=0.0, epochs=2, train_limit=32, val_limit=30,
                     ema=True, ema_decay=0.9)


@pytest.mark.slow
def test_two_process_run_matches_one_process_run(tiny_config, tmp_path):
    single = fit(tiny_config(output=str(tmp_path / "one"), batch_size=16, **DETERMINISTIC))

    recipe = tiny_config(output=str(tmp_path / "two"), batch_size=8, **DETERMINISTIC).to_dict()
    recipe.pop("threads")  # torchrun sets OMP_NUM_THREADS=1 per process
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(recipe))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "edgenext", "train", "--config", str(tmp_path / "two.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stderr.count("edgenext: done: best val top1") == 1, proc.stderr[-3000:]  # rank 0 reports, once

    a = load_training_checkpoint(single.output_dir / "last.pth")
    b = load_training_checkpoint(tmp_path / "two" / "last.pth")
    assert len(b["rng"]) == 2  # one random state per process
    for key in ("model", "model_ema"):
        for name, value in a[key].items():
            torch.testing.assert_close(b[key][name], value, rtol=0, atol=1e-5, msg=f"{key}.{name}")
    one = [json.loads(x) for x in (single.output_dir / "log.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    for r1, r2 in zip(one, two, strict=True):  # distributed evaluation sums to the same metrics
        assert r1["val_top1"] == pytest.approx(r2["val_top1"]) and r1["val_loss"] == pytest.approx(r2["val_loss"], abs=1e-4)
        assert r1["train_loss"] == pytest.approx(r2["train_loss"], abs=1e-4)
        assert r2["train_images"] == 32
