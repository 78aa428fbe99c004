"""Per-sample random seeds: augmentation as a function of (seed, epoch, position in the epoch).

A training sample's random crop, flip, colour jitter or RandAugment draw depends only on the
seed the batch sampler hands out with it, never on which loader worker decodes it or on what
that worker decoded before. So a run resumed in the middle of an epoch (the sampler skipping
the batches already trained on) sees exactly the augmentations an uninterrupted run would,
with any number of loader workers, and a process of a DDP run augments its share of a global
batch as a single process with the whole batch would.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator, Optional, Union

import numpy as np
import torch
from torch.utils.data import Dataset

#: A sample index as the batch samplers give it: ``i``, ``(i, size)`` or ``(i, size, sample_seed)``.
SampleIndex = Union[int, tuple[int, int], tuple[int, int, int]]

_SEED_STREAM = 2  # the sampler's order is stream 0 and its batch sizes stream 1 of (seed, epoch)


def epoch_sample_seeds(seed: int, epoch: int, count: int) -> np.ndarray:
    """``count`` sample seeds of epoch ``epoch``: entry ``p`` seeds the sample at position ``p`` of the epoch."""
    rng = np.random.default_rng((int(seed), int(epoch), _SEED_STREAM))
    return rng.integers(0, 2**63 - 1, size=count, dtype=np.int64)


@contextlib.contextmanager
def seeded_randomness(seed: Optional[int]) -> Iterator[None]:
    """torch's CPU, Python's and NumPy's global random streams seeded from ``seed`` inside the block,
    and put back as they were after it (so in the main process, with ``workers=0``, the training
    step's own streams, drop path and mixup, are not disturbed). ``None``: the streams as they are."""
    if seed is None:
        yield
        return
    seed = int(seed)
    saved = torch.default_generator.get_state(), random.getstate(), np.random.get_state()
    # NOTE: the default generator alone: torch.manual_seed would also seed (and initialise) CUDA
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        torch.default_generator.set_state(saved[0])
        random.setstate(saved[1])
        np.random.set_state(saved[2])


def split_sample_index(index: SampleIndex) -> tuple[Any, Optional[int]]:
    """``(index the dataset takes, sample seed or None)``: the seed is split off a triple, the rest kept."""
    if isinstance(index, (tuple, list)) and len(index) == 3:
        return (int(index[0]), int(index[1])), int(index[2])
    return index, None


class SeededSamples(Dataset):
    """``dataset`` with each sample loaded and transformed under its own seed.

    Takes the batch sampler's ``(index, size, sample_seed)`` triples and hands the dataset
    ``(index, size)`` inside ``seeded_randomness(sample_seed)``; plain ints and pairs pass
    through unseeded. Any map-style dataset works unchanged: the training loader wraps it.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: SampleIndex) -> Any:
        inner, seed = split_sample_index(index)
        with seeded_randomness(seed):
            return self.dataset[inner]

    def __getattr__(self, name: str) -> Any:
        # the wrapped set's attributes (class_names, targets...) for code that reads them off the loader
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
