"""The EdgeNeXt network, its registered variants and weight loading."""

from .edgenext import EdgeNeXt, EdgeNeXtFeatures
from .registry import Release, build_meta_model, count_params, create_model, describe_variants, get_variant, list_models
from .weights import (
    CheckpointError,
    WeightsDownloadError,
    load_weights_file,
    official_to_ours,
    ours_to_official,
    save_weights,
)

__all__ = [
    "CheckpointError",
    "EdgeNeXt",
    "EdgeNeXtFeatures",
    "Release",
    "WeightsDownloadError",
    "build_meta_model",
    "count_params",
    "create_model",
    "describe_variants",
    "get_variant",
    "list_models",
    "load_weights_file",
    "official_to_ours",
    "ours_to_official",
    "save_weights",
]
