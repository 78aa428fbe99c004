"""Measuring models: parameters, multiply-adds (and, later, latency and throughput)."""
