"""The CPU eager fast path: oneDNN linear kernels with the bias and activation fused in.

Profiling the fused model on CPU (PyTorch profiler, xx_small at 256) puts ~35% of the time in
``addmm`` (of which a sixth is copying the bias into the output before the GEMM) and ~20% in
the MLP's GELU, a separate pass over the widest tensor of each block. oneDNN's
``linear + eltwise`` primitive writes the activated output in one pass. These are the kernels
``torch.compile`` (inductor, freezing) picks for the same graph; here they are used eagerly,
so the speed-up needs no compilation. Outputs match the portable path to ~1e-7.

The ops are PyTorch's internal ``torch.ops.mkldnn._linear_pointwise``: when a build lacks them
(or the model is not fp32 on CPU) ``cpu_fast_path`` returns the model unchanged.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from .modules import FusedMlp

log = logging.getLogger(__name__)

# activation module -> (oneDNN post-op name, algorithm)
_POST_OPS: dict[type, tuple[str, str]] = {nn.Hardswish: ("hardswish", ""), nn.ReLU: ("relu", "")}


def _post_op(act: nn.Module) -> tuple[str, str] | None:
    if isinstance(act, nn.GELU):
        return ("gelu", act.approximate)  # 'none' (erf) or 'tanh', the names oneDNN takes too
    return _POST_OPS.get(type(act))


def mkldnn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class MkldnnMlp(nn.Module):
    """``FusedMlp`` computed by two oneDNN linears, the first with the activation as a post-op."""

    def __init__(self, mlp: FusedMlp, post_op: tuple[str, str]) -> None:
        super().__init__()
        self.w1 = nn.Parameter(mlp.fc1.weight.detach().clone(), requires_grad=False)
        self.b1 = nn.Parameter(mlp.fc1.bias.detach().clone(), requires_grad=False)
        self.w2 = nn.Parameter(mlp.fc2.weight.detach().clone(), requires_grad=False)
        self.b2 = nn.Parameter(mlp.fc2.bias.detach().clone(), requires_grad=False)
        self.attr, self.algorithm = post_op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.ops.mkldnn._linear_pointwise(x, self.w1, self.b1, self.attr, [], self.algorithm)
        return torch.ops.mkldnn._linear_pointwise(h, self.w2, self.b2, "none", [], "")


def cpu_fast_path(model: nn.Module) -> nn.Module:
    """A copy of a ``fuse``d model whose MLPs run as fused oneDNN kernels (fp32 CPU eager only).

    Not for export (the ops have no ONNX/ExecuTorch lowering): export the ``fuse`` output.
    """
    param = next(model.parameters())
    if not mkldnn_available() or param.device.type != "cpu" or param.dtype != torch.float32:
        log.debug("cpu_fast_path: oneDNN kernels unavailable for this model; returning it unchanged")
        return model
    fast = copy.deepcopy(model)
    replaced = 0
    for module in list(fast.modules()):
        for name, child in list(module.named_children()):
            post_op = _post_op(child.act) if isinstance(child, FusedMlp) else None
            if post_op is not None:
                setattr(module, name, MkldnnMlp(child, post_op))
                replaced += 1
    log.debug("cpu_fast_path: %d MLPs on oneDNN kernels", replaced)
    return fast.eval()
