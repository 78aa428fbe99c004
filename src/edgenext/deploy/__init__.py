"""Deployment: deploy-time fusion, export to edge runtimes, int8 quantisation, runtime wrappers."""

from .fuse import fuse

__all__ = ["fuse"]
