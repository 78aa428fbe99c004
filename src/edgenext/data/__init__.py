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
from .transforms import eval_transform_factory, train_transform_factory

__all__ = [
    "DigitsDataset",
    "ImageFolderDataset",
    "MultiScaleBatchSampler",
    "ShardedBatchSampler",
    "SkipCounter",
    "SkippedSample",
    "SubsetDataset",
    "eval_transform_factory",
    "load_image",
    "scaled_batch_size",
    "to_rgb",
    "train_transform_factory",
]
