"""The EdgeNeXt network, its registered variants and weight loading."""

from .edgenext import EdgeNeXt
from .features import EdgeNeXtFeatureGetter, EdgeNeXtFeatures, FeatureInfo
from .registry import (
    Release,
    build_meta_model,
    count_params,
    create_model,
    describe_variants,
    get_variant,
    guess_variant,
    list_models,
    read_weights,
)
from .weights import (
    Checkpoint,
    CheckpointError,
    WeightsDownloadError,
    load_weights_file,
    official_to_ours,
    ours_to_official,
    save_weights,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "EdgeNeXt",
    "EdgeNeXtFeatureGetter",
    "EdgeNeXtFeatures",
    "FeatureInfo",
    "Release",
    "WeightsDownloadError",
    "build_meta_model",
    "count_params",
    "create_model",
    "describe_variants",
    "get_variant",
    "guess_variant",
    "list_models",
    "load_weights_file",
    "official_to_ours",
    "ours_to_official",
    "read_weights",
    "save_weights",
]
