"""AdamW with the paper's weight-decay exemptions, linear lr scaling, per-step cosine schedule."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch
from timm.scheduler import CosineLRScheduler
from torch import nn


LrScales = Sequence[tuple[Sequence[str], float]]


def param_groups(model: nn.Module, weight_decay: float, skip: Iterable[str] = (), *,
                 lr_scales: Optional[LrScales] = None) -> list[dict]:
    """Decayed weights and the exempt ones (norms, biases, layer scales, temperatures), per lr factor.

    Every 0-d / 1-d parameter (norm weights, biases, layer scales) is exempt, plus the names
    the model lists in ``no_weight_decay()`` (EdgeNeXt: ``gamma``, ``gamma_xca``, and the XCA
    ``temperature``, which is 3-d) and those in ``skip``. ``lr_scales`` gives parameter-name
    prefixes and their lr factor (``[(("head.",), 10.0)]``); a group then carries ``lr_scale``,
    which ``build_optimizer`` multiplies into its lr. Frozen parameters are left out.
    """
    named_skip = set(skip)
    if hasattr(model, "no_weight_decay"):
        named_skip |= set(model.no_weight_decay())
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim <= 1 or name in named_skip or name.endswith(".bias")
        scale = next((f for prefixes, f in (lr_scales or ()) if name.startswith(tuple(prefixes))), 1.0)
        groups.setdefault((scale, exempt), []).append(param)
    out = []
    for (scale, exempt), params in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        group = {"params": params, "weight_decay": 0.0 if exempt else weight_decay}
        if scale != 1.0:
            group["lr_scale"] = scale
        out.append(group)
    return out


def scaled_lr(base_lr: float, global_batch: int, base_batch: int = 4096) -> float:
    """The linear scaling rule: ``base_lr`` is the lr at ``base_batch`` images per update."""
    return base_lr * global_batch / base_batch


#: AdamW kernels: one fused kernel for all tensors, multi-tensor (foreach) ops, or a Python loop per tensor
ADAMW_IMPLS = ("fused", "foreach", "loop")


def adamw_impl_kwargs(impl: str) -> dict[str, bool]:
    """``torch.optim.AdamW``'s keyword for kernel ``impl`` ("fused", "foreach" or "loop")."""
    if impl not in ADAMW_IMPLS:
        raise ValueError(f"AdamW kernel {impl!r} is not one of {', '.join(ADAMW_IMPLS)}")
    return {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}


def adamw_kernel(optimizer: torch.optim.Optimizer) -> str:
    """The kernel ``optimizer`` steps with, in ``ADAMW_IMPLS``' words (for logs and bench rows).

    An AdamW built without a choice (``torch.optim.AdamW(params)``, as timm's users write it) says
    so: "<kernel> (torch default)", torch taking foreach for CUDA tensors and the loop otherwise."""
    group = optimizer.param_groups[0]
    if group.get("fused"):
        return "fused"
    if group.get("foreach") is not None:
        return "foreach" if group["foreach"] else "loop"
    on_cuda = all(p.is_cuda for p in group["params"])
    return f"{'foreach' if on_cuda else 'loop'} (torch default)"


def build_optimizer(
    model: nn.Module, *, lr: float, weight_decay: float, eps: float = 1e-8, betas: tuple[float, float] = (0.9, 0.999),
    lr_scales: Optional[LrScales] = None, impl: str = "auto",
) -> torch.optim.AdamW:
    """AdamW over ``param_groups``; a group's ``lr_scale`` multiplies its lr (the schedule scales each group alike).

    ``impl`` picks the kernel (``ADAMW_IMPLS``); "auto" takes the fused one, and the multi-tensor
    one where this torch has no fused kernel for the parameters' device. All compute the same
    update up to float rounding.
    """
    groups = param_groups(model, weight_decay, lr_scales=lr_scales)
    for group in groups:
        if "lr_scale" in group:
            group["lr"] = lr * group.pop("lr_scale")
    if impl != "auto":
        return torch.optim.AdamW(groups, lr=lr, eps=eps, betas=tuple(betas), **adamw_impl_kwargs(impl))
    try:
        return torch.optim.AdamW(groups, lr=lr, eps=eps, betas=tuple(betas), fused=True)
    except RuntimeError:  # no fused kernel for this device (torch raises when asked for one)
        return torch.optim.AdamW(groups, lr=lr, eps=eps, betas=tuple(betas), foreach=True)


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, epochs: int, warmup_epochs: float, min_lr: float, warmup_lr: float = 0.0
) -> CosineLRScheduler:
    """Linear warm-up from ``warmup_lr`` over ``warmup_epochs``, then cosine down to ``min_lr``.

    Time is counted in (fractional) epochs and the schedule is a pure function of it, so the
    engine sets the lr before every update with ``scheduler.step(epoch + i / steps)``: the
    lr changes per step even when multi-scale batching varies the steps per epoch, and a
    resumed run needs nothing but its position.
    """
    return CosineLRScheduler(
        optimizer,
        t_initial=max(epochs - warmup_epochs, 1e-8),
        lr_min=min_lr,
        warmup_t=warmup_epochs,
        warmup_lr_init=warmup_lr,
        warmup_prefix=True,  # the cosine starts after the warm-up, at the full lr
        t_in_epochs=True,
    )
