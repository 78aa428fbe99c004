"""Per-sample seeds: a sample's augmentation depends on its seed alone, and the caller's streams are kept."""

import random

import numpy as np
import torch

from edgenext.data import SeededSamples, seeded_randomness


class Noisy(torch.utils.data.Dataset):
    """Draws from all three global streams, as torchvision / timm transforms do."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return index, torch.rand(1).item(), random.random(), float(np.random.rand())


def test_a_seeded_sample_is_the_same_whatever_came_before_and_the_callers_streams_go_on_undisturbed():
    data = SeededSamples(Noisy())
    torch.manual_seed(0)
    first = data[(1, 32, 123)]
    expected_next = torch.rand(1).item()
    torch.rand(5), random.random(), np.random.rand()  # a different history
    assert data[(1, 32, 123)] == first and data[(1, 32, 124)] != first
    torch.manual_seed(0)
    data[(2, 32, 7)]
    assert torch.rand(1).item() == expected_next  # the main process's stream (drop path, mixup) skipped nothing
    assert data[3][0] == 3 and data[3] != data[3]  # a plain index: unseeded, the stream as it is
    assert data[(2, 40)][0] == (2, 40)  # a pair reaches the dataset as it is
    state = torch.get_rng_state()
    with seeded_randomness(None):
        assert torch.equal(torch.get_rng_state(), state)
