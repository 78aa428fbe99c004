"""Deploy-time fusion: an EdgeNeXt turned into an inference-only model with the same outputs.

``fold``: the algebra (per-channel affines merged into the neighbouring conv/linear);
``modules``: the channels-last inference modules; ``convert``: ``fuse``, which builds them from
a trained model; ``cpu``: ``cpu_fast_path``, the fused MLPs on oneDNN kernels (CPU eager).
"""

from .convert import fuse
from .cpu import cpu_fast_path, mkldnn_available
from .modules import FusedEdgeNeXt

__all__ = ["FusedEdgeNeXt", "cpu_fast_path", "fuse", "mkldnn_available"]
