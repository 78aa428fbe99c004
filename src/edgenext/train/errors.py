"""Errors of a training run that the command line maps to exit codes (kept free of heavy imports)."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stops before the weights are touched."""
