"""Training checkpoints: atomic writes, RNG state as tensors, resume look-up.

Everything saved is a tensor or a plain Python container, so checkpoints load with
``torch.load(weights_only=True)`` (and ``create_model(weights=...)`` reads their
``model`` / ``model_ema`` weights like any other checkpoint).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..atomic import atomic_write
from ..models.weights import CheckpointError, read_checkpoint

LAST = "last.pth"
BEST = "best.pth"

PathLike = Union[str, os.PathLike]


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, flushed, then renamed over ``path``:
    a crash mid-write leaves the previous file intact."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), NumPy and Python RNG states, as tensors and plain numbers."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_version), "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        ("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_training_checkpoint(path: PathLike, *, mmap: bool = False) -> dict[str, Any]:
    """A checkpoint written by ``edgenext train`` (``weights_only`` loading).

    ``mmap=True`` maps the tensors' storage instead of reading it: the config, epoch and other
    plain entries are available at once, the weights are only read from disk if touched.
    """
    obj = read_checkpoint(path, mmap=mmap)
    if not isinstance(obj, dict) or "model" not in obj or "epoch" not in obj:
        raise CheckpointError(f"{path}: not a training checkpoint of edgenext train (needs 'model' and 'epoch'); "
                              f"to start from plain weights use --finetune")
    return obj


def find_checkpoint(output_dir: PathLike) -> Optional[Path]:
    """The run's last checkpoint in ``output_dir``, if any."""
    path = Path(output_dir) / LAST
    return path if path.is_file() else None


def find_unfinished_run(runs_root: PathLike, prefix: str, config: dict[str, Any]) -> Optional[Path]:
    """The newest ``runs_root/prefix-*`` folder whose checkpoint is unfinished and whose config matches.

    Lets a crashed run started without ``--output`` (time-stamped folder) continue when the
    same command is run again.

    Each candidate's ``last.pth`` is opened with ``mmap=True``: only the pickled structure
    (config, epoch, the optimizer's and sampler's small entries) is parsed, while the tensor
    storages (weights, EMA weights, optimizer moments: almost all of the file) are memory-mapped
    and never read, so looking through many runs of a large model costs little I/O or memory.
    Config and epoch both come from that one file (rather than the folder's ``config.yaml``
    plus the checkpoint): it is the file a resume continues from, and a folder whose
    ``config.yaml`` was written but whose first epoch never finished has nothing to resume.
    """
    root = Path(runs_root)
    if not root.is_dir():
        return None
    for folder in sorted(root.glob(f"{prefix}-*"), key=lambda p: p.name, reverse=True):
        ckpt = find_checkpoint(folder)
        if ckpt is None:
            continue
        try:
            saved = load_training_checkpoint(ckpt, mmap=True)
        except CheckpointError:
            continue
        saved_cfg = dict(saved.get("config", {}))
        want = dict(config)
        for key in ("output", "resume", "progress", "checkpoint_every"):  # settings that do not change the result
            saved_cfg.pop(key, None)
            want.pop(key, None)
        if saved_cfg == want and int(saved["epoch"]) + 1 < int(want.get("epochs", 0)):
            return folder
    return None
