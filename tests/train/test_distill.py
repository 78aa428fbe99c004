"""The distillation loss."""

import pytest
import torch
from torch import nn

from edgenext.train import DistillationLoss


def test_distillation_mixes_hard_and_soft_terms():
    torch.manual_seed(0)
    logits, teacher = torch.randn(6, 5, requires_grad=True), torch.randn(6, 5)
    targets = torch.randint(0, 5, (6,))
    ce = nn.CrossEntropyLoss()
    assert DistillationLoss(ce, alpha=0.0)(logits, targets, teacher).item() == pytest.approx(ce(logits, targets).item())
    assert DistillationLoss(ce, alpha=1.0, tau=2.0)(teacher, targets, teacher).item() == pytest.approx(0.0, abs=1e-6)
    loss = DistillationLoss(ce, alpha=0.5, tau=2.0)(logits, targets, teacher)
    kl = nn.functional.kl_div(
        nn.functional.log_softmax(logits / 2, -1), nn.functional.softmax(teacher / 2, -1), reduction="batchmean"
    )
    assert loss.item() == pytest.approx(0.5 * ce(logits, targets).item() + 0.5 * 4 * kl.item(), rel=1e-5)
    loss.backward()
    assert logits.grad.abs().sum() > 0


def test_teacher_with_other_classes_is_rejected():
    with pytest.raises(ValueError, match="same classes"):
        DistillationLoss(nn.CrossEntropyLoss(), alpha=0.5)(torch.randn(2, 5), torch.zeros(2, dtype=torch.long), torch.randn(2, 7))
