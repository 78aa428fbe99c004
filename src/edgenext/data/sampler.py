"""Batch samplers: the multi-scale training sampler and an exact sharded eval sampler.

Multi-scale training (paper, after MobileViT): each batch is drawn at one of a few input
sizes and its batch size is scaled by (base / size)^2, so every batch carries about the
same number of pixels. Unlike the official sampler, which keeps the base batch at sizes
above the base and so peaks in memory there, batches above the base size shrink.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np
from torch.utils.data import Sampler

from .seeding import epoch_sample_seeds


def scaled_batch_size(batch_size: int, base_size: int, size: int, multiple_of: int = 1) -> int:
    """Batch size at ``size`` keeping pixels per batch about those of ``batch_size`` at ``base_size``.

    Rounded down to a multiple of ``multiple_of`` (at least one multiple), so it never exceeds
    ``batch_size`` at sizes at or above the base.
    """
    scaled = int(batch_size * (base_size / size) ** 2)
    return max(multiple_of, scaled - scaled % multiple_of)


class MultiScaleBatchSampler(Sampler[list[tuple[int, ...]]]):
    """Yields this process's batches of ``(index, size)`` pairs, one size per batch
    (``(index, size, sample_seed)`` triples with ``sample_seeds=True``).

    The plan of an epoch (order of samples, size of each batch) depends only on ``seed`` and
    the epoch set by ``set_epoch``, and is the same on every process; process ``rank`` takes
    its contiguous share of each global batch, so the union over processes is the batch a
    single process would see with ``batch_size * world_size``. ``len()`` is exact.

    The order is ``epoch_order()``: a subclass that orders samples otherwise (by shard, say)
    overrides that one method and keeps the plan, the sample seeds and the mid-epoch start.
    The seed of the sample at position ``p`` of the epoch's order is a function of
    ``(seed, epoch, p)`` alone (``edgenext.data.seeding``), so its augmentation does not depend on
    the process, the loader worker, or whether the epoch was started in the middle:
    ``set_epoch(epoch, start_batch=k)`` yields the epoch's batches from the ``k``-th on, exactly
    as they come in the whole epoch (a run resumed from a mid-epoch checkpoint).

    Args:
        num_samples: dataset length.
        batch_size: per-process batch at ``base_size``.
        base_size: the reference input size.
        sizes: the sizes to draw from (uniformly); ``(base_size,)`` disables multi-scale.
        shuffle: reshuffle every epoch.
        drop_last: drop the last, incomplete global batch instead of sharing it out smaller.
        multiple_of: per-process batch sizes are multiples of this (mixup needs 2).
        sample_seeds: yield ``(index, size, sample_seed)`` triples, for ``edgenext.data.SeededSamples``.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        base_size: int,
        sizes: Optional[Sequence[int]] = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        multiple_of: int = 1,
        sample_seeds: bool = False,
    ) -> None:
        if batch_size < 1 or multiple_of < 1:
            raise ValueError(f"batch_size ({batch_size}) and multiple_of ({multiple_of}) must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        sizes = tuple(int(s) for s in (sizes or (base_size,)))
        if min(sizes) < 1:
            raise ValueError(f"sizes must be positive, got {sizes}")
        if num_samples < world_size * multiple_of:
            raise ValueError(
                f"{num_samples} samples cannot fill one batch on {world_size} process(es) "
                f"(need at least {world_size * multiple_of})"
            )
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.base_size = int(base_size)
        self.sizes = sizes
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.multiple_of = multiple_of
        self.sample_seeds = sample_seeds
        self.epoch = 0
        self.start_batch = 0
        self._plan_cache: tuple[int, list[tuple[int, int]]] | None = None

    def batch_size_at(self, size: int) -> int:
        return scaled_batch_size(self.batch_size, self.base_size, size, self.multiple_of)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """The epoch to plan, and the batch of its plan to start from (0: all of it)."""
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch}")
        self.epoch = int(epoch)
        self.start_batch = int(start_batch)

    def _rng(self, stream: int) -> np.random.Generator:
        # separate streams for the order and the sizes, both fixed by (seed, epoch)
        return np.random.default_rng((self.seed, self.epoch, stream))

    def plan(self) -> list[tuple[int, int]]:
        """``(size, per-process batch)`` of every batch of the current epoch."""
        if self._plan_cache is not None and self._plan_cache[0] == self.epoch:
            return self._plan_cache[1]
        rng = self._rng(1)
        plan, left = [], self.epoch_samples()
        while left > 0:
            size = self.sizes[int(rng.integers(len(self.sizes)))] if len(self.sizes) > 1 else self.sizes[0]
            per_rank = self.batch_size_at(size)
            if per_rank * self.world_size > left:
                if self.drop_last:
                    break
                # share what is left equally (same size on every process, a multiple of multiple_of)
                per_rank = left // self.world_size
                per_rank -= per_rank % self.multiple_of
                if per_rank == 0:
                    break
            plan.append((size, per_rank))
            left -= per_rank * self.world_size
        self._plan_cache = (self.epoch, plan)
        return plan

    def epoch_order(self) -> np.ndarray:
        """Every sample index once, in the order the current epoch trains on them (all processes alike)."""
        return self._rng(0).permutation(self.num_samples) if self.shuffle else np.arange(self.num_samples)

    def epoch_samples(self) -> int:
        """How many samples the current epoch's plan shares out (all of them here)."""
        return self.num_samples

    def __len__(self) -> int:
        """The batches still to come this epoch: the plan's, less the ``start_batch`` skipped."""
        return max(len(self.plan()) - self.start_batch, 0)

    def __iter__(self) -> Iterator[list[tuple[int, ...]]]:
        order = self.epoch_order()
        seeds = epoch_sample_seeds(self.seed, self.epoch, len(order)) if self.sample_seeds else None
        start = 0
        for b, (size, per_rank) in enumerate(self.plan()):
            first = start + self.rank * per_rank
            start += per_rank * self.world_size
            if b < self.start_batch:
                continue
            mine = order[first : first + per_rank]
            if seeds is None:
                yield [(int(i), size) for i in mine]
            else:
                yield [(int(i), size, int(s)) for i, s in zip(mine, seeds[first : first + per_rank])]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.seed = int(state["epoch"]), int(state["seed"])
        self._plan_cache = None


class ShardedBatchSampler(Sampler[list[int]]):
    """Evaluation batches of process ``rank``: every ``world_size``-th sample, in order.

    No padding or duplication (unlike ``DistributedSampler``), so summed metrics are exact;
    processes may get one batch more or less, which evaluation tolerates (no collectives in it).
    """

    def __init__(self, num_samples: int, batch_size: int, *, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.indices = list(range(rank, num_samples, world_size))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, len(self.indices), self.batch_size):
            yield self.indices[start : start + self.batch_size]


class ShardBatchSampler(MultiScaleBatchSampler):
    """Multi-scale training batches over tar shards, each process reading shards no other process reads.

    Every epoch the shards are permuted (from the seed and the epoch) and dealt to the processes in
    turn; each process's samples are shuffled within windows of ``window`` of its shards (so a loader
    keeps few shards open at a time: write shards already shuffled, as ``edgenext shards`` does), and
    each global batch is every process's next ``per_rank`` samples of its own stream.

    DDP needs the same number of batches on every process, so an epoch covers ``world_size`` times the
    shortest stream: every sample once when the shards divide evenly among the processes (shards of
    equal size, a multiple of ``world_size`` of them), else the samples beyond the shortest stream sit
    the epoch out (at most about one shard per process; the dealing changes every epoch).
    ``len()``, the plan and the resume position are exact, as for ``MultiScaleBatchSampler``.
    """

    def __init__(self, shard_sizes: Sequence[int], batch_size: int, *, window: int = 4, **kwargs) -> None:
        self.shard_sizes = [int(n) for n in shard_sizes]
        world_size = int(kwargs.get("world_size", 1))
        if len(self.shard_sizes) < world_size:
            raise ValueError(f"{len(self.shard_sizes)} shard(s) cannot give each of {world_size} processes its own: "
                             f"write at least {world_size} shards (edgenext shards --shard-size smaller)")
        if window < 1:
            raise ValueError(f"the shuffle window must be >= 1 shard, got {window}")
        self.window = int(window)
        self._streams_cache: tuple[tuple[int, int], list[np.ndarray]] | None = None
        super().__init__(sum(self.shard_sizes), batch_size, **kwargs)

    def shards_of(self, rank: int) -> list[int]:
        """The shards process ``rank`` reads in the current epoch, in its reading order."""
        n = len(self.shard_sizes)
        order = self._rng(2).permutation(n) if self.shuffle else np.arange(n)
        return [int(s) for s in order[rank :: self.world_size]]

    def _streams(self) -> list[np.ndarray]:
        key = (self.seed, self.epoch)
        if self._streams_cache is not None and self._streams_cache[0] == key:
            return self._streams_cache[1]
        starts = np.concatenate([[0], np.cumsum(self.shard_sizes)]).astype(np.int64)
        rng = self._rng(3)
        streams = []
        for rank in range(self.world_size):
            mine = self.shards_of(rank)
            parts = []
            for w in range(0, len(mine), self.window):
                window = np.concatenate([np.arange(starts[s], starts[s + 1]) for s in mine[w : w + self.window]])
                parts.append(rng.permutation(window) if self.shuffle else window)
            streams.append(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
        self._streams_cache = (key, streams)
        return streams

    def epoch_samples(self) -> int:
        return self.world_size * min(len(s) for s in self._streams())

    def epoch_order(self) -> np.ndarray:
        streams, taken, out = self._streams(), [0] * self.world_size, []
        for _, per_rank in self.plan():
            for rank in range(self.world_size):
                out.append(streams[rank][taken[rank] : taken[rank] + per_rank])
                taken[rank] += per_rank
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
