"""Deployment: deploy-time fusion, export to edge runtimes, int8 quantisation, runtime wrappers."""

from .fusion import cpu_fast_path, fuse

__all__ = ["cpu_fast_path", "fuse"]
