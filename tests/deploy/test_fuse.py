"""fuse(): output-identical inference models for every variant; the training model untouched."""

import copy

import pytest
import torch

import edgenext
from edgenext.deploy import fuse
from edgenext.deploy.fusion import FusedEdgeNeXt, cpu_fast_path, mkldnn_available

TOL = 1e-5


@pytest.mark.parametrize("name", edgenext.list_models())
def test_fuse_is_output_identical(name, cached_model):
    model = cached_model(name)  # randomised layer scales, temperatures and BatchNorm statistics
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(x)
        for input_size in (None, (64, 96)):
            fused = fuse(model, input_size)
            assert isinstance(fused, FusedEdgeNeXt) and not fused.training
            assert (fused(x) - reference).abs().max().item() < TOL
        # precomputed for one size, run at another: the encoding is computed on the fly
        y = torch.randn(1, 3, 96, 64)
        assert (fused(y) - model(y)).abs().max().item() < TOL


def test_fuse_folds_layer_scales_and_batchnorm(cached_model):
    fused = fuse(cached_model("edgenext_xx_small_bn_hs"), 64)
    names = [n for n, _ in fused.named_parameters()] + [n for n, _ in fused.named_buffers()]
    assert not any("gamma" in n or "running_mean" in n for n in names)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    assert not any(p.requires_grad for p in fused.parameters())


def test_fuse_leaves_the_training_model_unchanged(cached_model):
    model = cached_model("edgenext_xx_small")
    before = copy.deepcopy(model.state_dict())
    fuse(model, 64)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_fused_forward_features_matches(cached_model):
    model = cached_model("edgenext_x_small")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (fuse(model)(x) - model(x)).abs().max() < TOL
        assert (fuse(model).forward_features(x) - model.forward_features(x)).abs().max() < TOL


@pytest.mark.skipif(not mkldnn_available(), reason="this torch build has no oneDNN linear kernels")
@pytest.mark.parametrize("name", ["edgenext_xx_small", "edgenext_xx_small_bn_hs"])
def test_cpu_fast_path_is_output_identical(name, cached_model):
    model = cached_model(name)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (cpu_fast_path(fuse(model, 64))(x) - model(x)).abs().max().item() < TOL


def test_fuse_rejects_other_modules():
    with pytest.raises(ValueError, match="EdgeNeXt classifier"):
        fuse(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="32x32"):
        fuse(edgenext.create_model("edgenext_xx_small"), 16)
