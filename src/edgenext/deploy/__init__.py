"""Deployment: deploy-time fusion, export to edge runtimes, int8 quantisation, runtime wrappers."""

from .fusion import cpu_fast_path, fuse, fuse_dense

__all__ = ["cpu_fast_path", "fuse", "fuse_dense"]
