"""Knowledge distillation: soft-target KL divergence with a temperature (Hinton et al.).

The USI-trained releases of EdgeNeXt were distilled this way from a stronger teacher.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class DistillationLoss(nn.Module):
    """``(1 - alpha) * base(student, targets) + alpha * tau^2 * KL(teacher/tau || student/tau)``.

    The ``tau^2`` factor keeps the soft term's gradients on the scale of the hard term's
    whatever the temperature. ``teacher_logits=None`` gives the base loss alone.
    """

    def __init__(self, base: nn.Module, *, alpha: float = 0.5, tau: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0 or tau <= 0:
            raise ValueError(f"alpha must be in [0, 1] and tau > 0, got alpha={alpha}, tau={tau}")
        self.base, self.alpha, self.tau = base, alpha, tau

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, teacher_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        hard = self.base(logits, targets)
        if teacher_logits is None or self.alpha == 0.0:
            return hard
        if teacher_logits.shape != logits.shape:
            raise ValueError(
                f"teacher gives {tuple(teacher_logits.shape)} logits, the student {tuple(logits.shape)}: "
                f"the teacher must predict the same classes"
            )
        log_p_student = F.log_softmax(logits.float() / self.tau, dim=-1)
        log_p_teacher = F.log_softmax(teacher_logits.float() / self.tau, dim=-1)
        soft = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * self.tau**2
        return (1.0 - self.alpha) * hard + self.alpha * soft
