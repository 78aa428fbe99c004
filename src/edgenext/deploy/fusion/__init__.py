"""Deploy-time fusion: an EdgeNeXt turned into an inference-only model with the same outputs.

``fold``: the algebra (per-channel affines merged into the neighbouring conv/linear);
``modules``: the channels-last inference modules; ``convert``: ``fuse``, which builds them from
a trained classifier or ``features_only`` backbone; ``dense``: ``fuse_dense``, the same for
SSDLite and DeepLabv3 (head BatchNorms and input normalisation folded too); ``cpu``:
``cpu_fast_path``, the fused MLPs on oneDNN kernels (CPU eager).
"""

from .convert import fuse
from .cpu import cpu_fast_path, mkldnn_available
from .dense import fold_conv_batchnorms, fuse_dense
from .modules import FusedEdgeNeXt, FusedEdgeNeXtFeatures

__all__ = [
    "FusedEdgeNeXt", "FusedEdgeNeXtFeatures", "cpu_fast_path", "fold_conv_batchnorms", "fuse", "fuse_dense", "mkldnn_available",
]
