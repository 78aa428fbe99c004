"""What a run's config says about its model: the one place a model's build is derived from a config.

Training (``train.classify.build_model``) and loading a trained checkpoint for evaluation,
prediction, export or distillation (``models.loading.load_model``) both build the network from
the same saved settings through ``model_overrides``, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

#: constructor options that only matter while training (stochastic depth is identity in eval mode)
TRAINING_ONLY = ("drop_path_rate",)


def model_overrides(config: Mapping[str, Any], *, training: bool) -> dict[str, Any]:
    """``create_model`` keyword overrides recorded in a run's config (``TrainConfig.to_dict()``).

    ``model_kwargs`` as saved; for training, ``drop_path_rate`` defaults to the recipe's
    ``drop_path``; for inference the training-only options are left out, so the network built
    from a checkpoint is the plain variant with the run's architecture changes.
    """
    kwargs = config.get("model_kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"model_kwargs must be a mapping of EdgeNeXt options, got {kwargs!r}")
    overrides = dict(kwargs)
    if training:
        overrides.setdefault("drop_path_rate", float(config.get("drop_path", 0.0)))
    else:
        for key in TRAINING_ONLY:
            overrides.pop(key, None)
    return overrides


def run_config(content: Any) -> Optional[dict[str, Any]]:
    """The run config a checkpoint of ``edgenext train`` records (best.pth / last.pth), else None."""
    if isinstance(content, Mapping) and isinstance(content.get("config"), Mapping) and "model" in content:
        return dict(content["config"])
    return None
