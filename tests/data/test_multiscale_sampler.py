"""The multi-scale batch sampler: exact len, constant pixels, determinism, sharding."""

import numpy as np
import pytest

from edgenext.data import MultiScaleBatchSampler, ShardedBatchSampler, scaled_batch_size

PAPER_SIZES = (160, 192, 256, 288, 320)


def make(n=1000, batch=32, rank=0, world=1, seed=0, **kw):
    return MultiScaleBatchSampler(n, batch, base_size=256, sizes=PAPER_SIZES, seed=seed, rank=rank, world_size=world, **kw)


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("epoch", [0, 1, 7])
def test_len_is_exact(world, epoch):
    sampler = make(world=world)
    sampler.set_epoch(epoch)
    assert len(list(sampler)) == len(sampler)


def test_batches_keep_pixels_about_constant_and_never_exceed_the_base_batch_above_the_base():
    base = 32 * 256 * 256
    for size in PAPER_SIZES:
        b = scaled_batch_size(32, 256, size)
        if size >= 256:
            assert b <= 32
        assert abs(b * size * size - base) <= size * size  # within one image of the base pixel budget
    sampler = make()
    for batch in list(sampler)[:-1]:
        sizes = {s for _, s in batch}
        assert len(sizes) == 1
        size = sizes.pop()
        assert len(batch) == scaled_batch_size(32, 256, size)
    assert {s for b in sampler for _, s in b} == set(PAPER_SIZES)


def test_deterministic_per_seed_and_epoch():
    a, b = make(seed=3), make(seed=3)
    for epoch in (0, 4):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert list(a) == list(b)
    a.set_epoch(1)
    b.set_epoch(2)
    assert list(a) != list(b)
    assert list(make(seed=1)) != list(make(seed=2))


def test_state_dict_round_trip():
    a = make(seed=5)
    a.set_epoch(9)
    b = make(seed=0)
    b.load_state_dict(a.state_dict())
    assert list(a) == list(b)


@pytest.mark.parametrize("world", [2, 4])
def test_shards_are_disjoint_equal_and_together_form_the_single_process_batches(world):
    n = 1001
    shards = [list(make(n=n, batch=8, rank=r, world=world)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1
    for step in zip(*shards):
        assert len({len(b) for b in step}) == 1  # same batch size on every process
        assert len({b[0][1] for b in step}) == 1  # same input size on every process
    seen = [i for shard in shards for batch in shard for i, _ in batch]
    assert len(seen) == len(set(seen))
    assert n - len(seen) < world  # all but a remainder smaller than the number of processes
    # without multi-scale, the union over processes is exactly one process's batch at batch * world
    single = MultiScaleBatchSampler(n, 8 * world, base_size=256, seed=0)
    split = [MultiScaleBatchSampler(n, 8, base_size=256, seed=0, rank=r, world_size=world) for r in range(world)]
    batches = list(zip(single, *split))
    for whole, *parts in batches[:-1]:  # the last, partial batch is shared out in equal parts
        assert [i for p in parts for i, _ in p] == [i for i, _ in whole]


def test_multiple_of_and_drop_last():
    sampler = make(n=333, batch=15, multiple_of=2, drop_last=True)
    assert all(len(b) % 2 == 0 for b in sampler)
    assert all(len(b) == scaled_batch_size(15, 256, b[0][1], 2) for b in sampler)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="rank"):
        make(rank=2, world=2)
    with pytest.raises(ValueError, match="cannot fill"):
        make(n=1, world=2)


def test_sharded_eval_sampler_covers_every_sample_once():
    n, world = 103, 3
    seen = [i for r in range(world) for b in ShardedBatchSampler(n, 10, rank=r, world_size=world) for i in b]
    assert sorted(seen) == list(range(n))
    assert len(ShardedBatchSampler(n, 10, rank=0, world_size=world)) == 4


@pytest.mark.parametrize("world", [1, 2])
def test_a_mid_epoch_start_yields_the_rest_of_the_epoch_exactly(world):
    whole = make(n=300, world=world, rank=world - 1, sample_seeds=True)
    whole.set_epoch(3)
    batches = list(whole)
    rest = make(n=300, world=world, rank=world - 1, sample_seeds=True)
    rest.set_epoch(3, start_batch=4)
    assert len(rest) == len(batches) - 4 and list(rest) == batches[4:]
    rest.set_epoch(4)  # the next epoch is whole again
    assert len(list(rest)) == len(rest) and len(rest) > len(batches) - 4


def test_sample_seeds_follow_the_sample_position_not_the_process():
    single = MultiScaleBatchSampler(64, 16, base_size=32, seed=1, sample_seeds=True)
    split = [MultiScaleBatchSampler(64, 8, base_size=32, seed=1, rank=r, world_size=2, sample_seeds=True) for r in (0, 1)]
    for whole, *parts in zip(single, *split):
        assert [t for p in parts for t in p] == whole  # same (index, size, seed) triples
    seeds = [s for b in single for _, _, s in b]
    assert len(set(seeds)) == len(seeds)
    single.set_epoch(1)
    assert not set(seeds) & {s for b in single for _, _, s in b}  # a new epoch, new augmentations
    plain = MultiScaleBatchSampler(64, 16, base_size=32, seed=1)
    assert [[(i, size) for i, size, _ in b] for b in MultiScaleBatchSampler(64, 16, base_size=32, seed=1, sample_seeds=True)] \
        == list(plain)


def test_epoch_order_is_the_one_method_a_subclass_overrides():
    class Reversed(MultiScaleBatchSampler):
        def epoch_order(self):
            return np.arange(self.num_samples)[::-1]

    sampler = Reversed(10, 4, base_size=32, sample_seeds=True)
    sampler.set_epoch(0, start_batch=1)
    assert [[i for i, _, _ in b] for b in sampler] == [[5, 4, 3, 2], [1, 0]]
