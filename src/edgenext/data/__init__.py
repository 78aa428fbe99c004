"""Data: image folders with robust loading, the digits demo set, transforms, samplers."""

from .datasets import (
    DigitsDataset,
    ImageFolderDataset,
    SkipCounter,
    SkippedSample,
    SubsetDataset,
    load_image,
    to_rgb,
)
from .sampler import MultiScaleBatchSampler, ShardedBatchSampler, scaled_batch_size
from .seeding import SeededSamples, epoch_sample_seeds, seeded_randomness
from .transforms import eval_transform_factory, train_transform_factory

__all__ = [
    "DigitsDataset",
    "ImageFolderDataset",
    "MultiScaleBatchSampler",
    "SeededSamples",
    "ShardedBatchSampler",
    "SkipCounter",
    "SkippedSample",
    "SubsetDataset",
    "epoch_sample_seeds",
    "eval_transform_factory",
    "load_image",
    "scaled_batch_size",
    "seeded_randomness",
    "to_rgb",
    "train_transform_factory",
]
