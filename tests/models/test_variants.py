"""Every registered variant: shapes, gradients, and the paper's parameter and MAdds counts."""

import pytest
import torch

import edgenext
from edgenext.bench.profile import count_madds
from edgenext.constants import PAPER_MADDS_M, PAPER_PARAMS
from edgenext.models import EdgeNeXt, build_meta_model, count_params, get_variant

VARIANTS = edgenext.list_models()


def test_registry_lists_the_seven_released_variants():
    assert VARIANTS == sorted(PAPER_PARAMS)
    assert edgenext.list_models("*bn_hs") == ["edgenext_small_bn_hs", "edgenext_x_small_bn_hs", "edgenext_xx_small_bn_hs"]


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count_equals_the_reference(name, cached_model):
    assert count_params(cached_model(name)) == PAPER_PARAMS[name]


@pytest.mark.parametrize("name", VARIANTS)
def test_madds_match_the_paper_within_one_percent(name, cached_model):
    madds = count_madds(cached_model(name), 256)
    paper = PAPER_MADDS_M[name] * 1e6
    assert abs(madds - paper) / paper < 0.01
    # with the paper's counting convention the figures agree to the paper's rounding
    assert abs(madds - paper) < 0.01e6


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_shapes(name, cached_model):
    model = cached_model(name)
    for size in [(32, 32), (64, 96), (100, 77), (224, 320)]:
        x = torch.randn(2 if size[0] < 200 else 1, 3, *size)
        with torch.no_grad():
            feats = model.forward_features(x)
            logits = model.forward_head(feats)
            pooled = model.forward_head(feats, pre_logits=True)
        # stem: floor(/4); each downsampling: floor(/2)
        h, w = size[0] // 4, size[1] // 4
        for _ in range(3):
            h, w = h // 2, w // 2
        assert feats.shape == (x.shape[0], model.num_features, h, w), size
        assert logits.shape == (x.shape[0], 1000)
        assert pooled.shape == (x.shape[0], model.num_features)
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_every_parameter_receives_a_gradient(name, randomize):
    model = randomize(edgenext.create_model(name, num_classes=5)).train()
    x = torch.randn(2, 3, 64, 64)
    torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 3])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} got a zero gradient"


def test_bn_hs_variants_are_the_same_class_with_other_layers():
    ln = edgenext.create_model("edgenext_small")
    bn = edgenext.create_model("edgenext_small_bn_hs")
    assert type(ln) is type(bn) is EdgeNeXt
    assert isinstance(bn.stages[2].blocks[0].mlp.act, torch.nn.Hardswish)
    assert isinstance(ln.stages[2].blocks[0].mlp.act, torch.nn.GELU)
    assert bn.stem[0].bias is None and ln.stem[0].bias is not None


def test_sdta_splits_follow_the_paper():
    model = edgenext.create_model("edgenext_xx_small")
    sdta = model.stages[2].blocks[-1]
    # 88 channels, 3 scales -> groups 30, 30, 28; two 3x3 depth-wise convs, the last group untouched
    assert sdta.width == 30 and len(sdta.convs) == 2
    assert [type(b).__name__ for b in model.stages[1].blocks] == ["ConvEncoder", "SDTAEncoder"]
    assert model.stages[1].blocks[-1].pos_embd is not None
    assert all(b.pos_embd is None for i in (2, 3) for b in model.stages[i].blocks if hasattr(b, "pos_embd"))


def test_a_new_size_is_a_few_constructor_arguments():
    model = EdgeNeXt(depths=(1, 1, 2, 1), dims=(16, 32, 48, 64), heads=(2, 2, 2, 2), num_classes=10, drop_path_rate=0.1)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert model.stages[2].blocks[1].drop_path.drop_prob == pytest.approx(0.1 * 3 / 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dims=(24, 48, 88)), "dims has 3 entries"),
        (dict(heads=(4, 5, 4, 4)), "not divisible by heads"),
        (dict(sdta_blocks=(0, 4, 1, 1), depths=(2, 2, 6, 2)), "sdta_blocks=4"),
        (dict(kernel_sizes=(3, 4, 7, 9)), "must be odd"),
        (dict(norm_layer="groupnorm"), "norm_layer='groupnorm'"),
        (dict(act_layer="swishy"), "act_layer='swishy'"),
        (dict(sdta_scales=(2, 2, 3, 50)), "cannot split 168 channels"),
        (dict(drop_path_rate=1.5), "drop_path_rate=1.5"),
    ],
)
def test_bad_configuration_gets_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EdgeNeXt(**kwargs)


def test_bad_inputs_get_clear_errors():
    model = edgenext.create_model("edgenext_xx_small").eval()
    with pytest.raises(ValueError, match="at least 32x32"):
        model(torch.randn(1, 3, 31, 64))
    with pytest.raises(ValueError, match="3 input channels, got 1"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="batch, channels, height, width"):
        model(torch.randn(3, 64, 64))


def test_unknown_names_and_options_get_clear_errors():
    with pytest.raises(ValueError, match="Did you mean edgenext_small"):
        edgenext.create_model("edgenext_smal")
    with pytest.raises(ValueError, match="no release tagged 'usi'"):
        edgenext.create_model("edgenext_xx_small.usi")
    with pytest.raises(ValueError, match="unknown option"):
        edgenext.create_model("edgenext_xx_small", depth=(1, 1, 1, 1))


def test_overrides_and_release_tags():
    model = edgenext.create_model("edgenext_small.usi", drop_path_rate=0.1, num_classes=0)
    assert model.pretrained_cfg["crop_pct"] == 0.95
    assert model.pretrained_cfg["url"].endswith("edgenext_small_usi.pth")
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 304)
    cfg = edgenext.create_model("edgenext_xx_small").pretrained_cfg
    assert cfg["input_size"] == (3, 256, 256) and cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 0.875


def test_meta_models_cost_nothing_and_count_the_same():
    assert count_params(build_meta_model("edgenext_base")) == PAPER_PARAMS["edgenext_base"]
    assert get_variant("edgenext_base")[0].default_release.top1 == 82.47


def test_stochastic_depth_drops_whole_samples_and_keeps_the_expectation():
    from edgenext.models.layers import StochasticDepth

    layer = StochasticDepth(0.25)
    x = torch.ones(4000, 3, 2, 2)
    assert layer.eval()(x) is x  # the identity at inference
    torch.manual_seed(0)
    y = layer.train()(x)
    per_sample = y.flatten(1)
    # each sample is either dropped whole or kept whole and scaled by 1 / keep
    assert per_sample.unique().tolist() == pytest.approx([0.0, 1 / 0.75])
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)
    kept = (per_sample[:, 0] > 0).float().mean().item()
    assert abs(kept - 0.75) < 0.03 and abs(y.mean().item() - 1.0) < 0.04
    # the blocks use it where drop_path > 0: the model no longer needs timm for it
    model = edgenext.create_model("edgenext_xx_small", drop_path_rate=0.1)
    assert any(isinstance(m, StochasticDepth) for m in model.modules())
    with pytest.raises(ValueError, match="drop_prob"):
        StochasticDepth(1.0)
