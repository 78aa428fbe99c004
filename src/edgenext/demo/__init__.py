"""EdgeNeXt in the browser: a static demo site that runs a checkpoint with ONNX Runtime Web.

``build_site`` writes the folder (page, exported model, its app config, the pinned ONNX Runtime
Web files), ``serve`` serves it cross-origin isolated; ``edgenext demo`` does both.
"""

from .ort_web import ORT_WEB_VERSION, OrtWebNotFound, find_dist, locate_dist
from .server import serve, serve_in_background
from .site import DemoSite, build_site

__all__ = ["DemoSite", "ORT_WEB_VERSION", "OrtWebNotFound", "build_site", "find_dist", "locate_dist", "serve",
           "serve_in_background"]
