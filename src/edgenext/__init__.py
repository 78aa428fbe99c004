"""edgenext: EdgeNeXt (Maaz et al., 2022), every variant, exact to the paper.

>>> import edgenext
>>> model = edgenext.create_model("edgenext_xx_small")
>>> edgenext.profile(model)["params"]
1327216
"""

from .models.profile import profile
from .models import (
    CheckpointError,
    EdgeNeXt,
    EdgeNeXtFeatures,
    WeightsDownloadError,
    create_model,
    list_models,
    load_weights_file,
    save_weights,
)

__version__ = "0.1.0"

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
