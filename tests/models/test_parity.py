"""Numerical parity with two references: timm's EdgeNeXt (a test-only dependency) and a plain
re-statement of the official implementation (tests/models/conftest.py), through every
checkpoint layout we load."""

import pytest
import timm
import torch

import edgenext
from edgenext.models import official_to_ours, ours_to_official

TIMM_VARIANTS = ["edgenext_xx_small", "edgenext_x_small", "edgenext_small", "edgenext_base"]
ATOL = 1e-5


def _timm_reference(name, randomize):
    torch.manual_seed(0)
    return randomize(timm.create_model(name, pretrained=False), seed=3).eval()


def _inputs():
    torch.manual_seed(1)
    # small maps (the stages' arithmetic is size-independent), one of them not square
    return [torch.randn(2, 3, 64, 64), torch.randn(1, 3, 64, 96)]


@pytest.mark.parametrize("name", TIMM_VARIANTS)
def test_timm_weights_give_timm_logits(name, randomize, tmp_path):
    ref = _timm_reference(name, randomize)
    ours = edgenext.create_model(name).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    # the same weights through the official layout, from a release-style file
    official = {"model": ours_to_official(ref.state_dict()), "model_ema": ours_to_official(ref.state_dict()), "epoch": 299}
    torch.save(official, tmp_path / "official.pth")
    via_official = edgenext.create_model(name, weights=tmp_path / "official.pth").eval()
    for x in _inputs():
        with torch.no_grad():
            expected = ref(x)
            assert expected.abs().max() > 0.1  # the layer scales make every block count
            torch.testing.assert_close(ours(x), expected, atol=ATOL, rtol=0)
            torch.testing.assert_close(via_official(x), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", edgenext.list_models())
def test_official_layout_gives_reference_logits(name, official_reference, randomize, tmp_path):
    """The reference built in the official layout (BN + Hard-Swish variants included)."""
    torch.manual_seed(0)
    ref = randomize(official_reference(name), seed=5).eval()
    torch.save(ref.state_dict(), tmp_path / "bare_official.pth")
    ours = edgenext.create_model(name, weights=tmp_path / "bare_official.pth").eval()
    for x in _inputs():
        with torch.no_grad():
            expected = ref(x)
            assert expected.abs().max() > 0.1
            torch.testing.assert_close(ours(x), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", edgenext.list_models())
def test_layout_conversion_is_a_bijection(name, official_reference):
    ref_keys = official_reference(name).state_dict()
    ours = edgenext.create_model(name).state_dict()
    converted = official_to_ours(ref_keys)
    assert set(converted) == set(ours)
    assert all(converted[k].shape == ours[k].shape for k in ours)
    assert set(ours_to_official(ours)) == set(ref_keys)


def test_train_mode_batchnorm_matches_reference(official_reference, randomize, tmp_path):
    """BatchNorm statistics are taken over the same values in our channels-last blocks."""
    name = "edgenext_xx_small_bn_hs"
    torch.manual_seed(0)
    ref = randomize(official_reference(name), seed=2).train()
    torch.save(ref.state_dict(), tmp_path / "w.pth")
    ours = edgenext.create_model(name, weights=tmp_path / "w.pth").train()
    x = torch.randn(4, 3, 64, 64)
    torch.testing.assert_close(ours(x), ref(x), atol=ATOL, rtol=0)
    ref_state = official_to_ours(ref.state_dict())
    for k, v in ours.state_dict().items():
        if k.endswith(("running_mean", "running_var")):
            torch.testing.assert_close(v, ref_state[k], atol=1e-5, rtol=1e-4)
