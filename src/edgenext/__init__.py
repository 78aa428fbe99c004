"""edgenext: EdgeNeXt (Maaz et al., 2022), every variant, exact to the paper.

>>> import edgenext
>>> model = edgenext.create_model("edgenext_xx_small")
>>> edgenext.profile(model)["params"]
1327216

The names below are imported on first use: ``edgenext --help`` and ``edgenext supervise`` start
without importing PyTorch.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes

__version__ = "0.1.0"

#: each public name and the module it comes from
_SOURCES = {
    "CheckpointError": ".models",
    "EdgeNeXt": ".models",
    "EdgeNeXtFeatures": ".models",
    "WeightsDownloadError": ".models",
    "create_model": ".models",
    "list_models": ".models",
    "load_weights_file": ".models",
    "profile": ".models.profile",
    "save_weights": ".models",
}

__all__ = [
    "CheckpointError",
    "EdgeNeXt",
    "EdgeNeXtFeatures",
    "WeightsDownloadError",
    "create_model",
    "list_models",
    "load_weights_file",
    "profile",
    "save_weights",
]

if TYPE_CHECKING:
    from .models import (CheckpointError, EdgeNeXt, EdgeNeXtFeatures, WeightsDownloadError, create_model,
                         list_models, load_weights_file, save_weights)
    from .models.profile import profile


__getattr__, __dir__ = lazy_attributes(__name__, _SOURCES)
