"""The model contract a timm user relies on (issue 10): configs, heads without pooling, feature
info, intermediates, pruning, FX tracing and first convs adapted to other input channels."""

import pytest
import torch
import torch.fx
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import edgenext
from edgenext.models import count_params
from edgenext.models.weights import adapt_first_conv

VARIANTS = edgenext.list_models()
BN_VARIANTS = [v for v in VARIANTS if v.endswith("_bn_hs")]
TIMM_CFG_KEYS = ("url", "num_classes", "input_size", "pool_size", "crop_pct", "interpolation", "mean", "std",
                 "first_conv", "classifier", "fixed_input_size", "min_input_size", "license", "architecture")
SIZE = (64, 96)


def _model(name, **kwargs):
    torch.manual_seed(0)
    model = edgenext.create_model(name, **kwargs).eval()
    # NOTE: random BatchNorm statistics, so the BN variants' eval-mode norms are not identities
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def _x(batch=2, chans=3):
    return torch.randn(batch, chans, *SIZE, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", VARIANTS)
def test_pretrained_cfg_has_timm_keys_and_default_cfg_is_it(name):
    model = _model(name)
    cfg = model.default_cfg
    assert cfg is model.pretrained_cfg
    assert all(k in cfg for k in TIMM_CFG_KEYS), sorted(set(TIMM_CFG_KEYS) - set(cfg))
    assert cfg["architecture"] == name and cfg["num_classes"] == 1000 and cfg["input_size"] == (3, 256, 256)
    state = model.state_dict()
    assert cfg["first_conv"] + ".weight" in state and cfg["classifier"] + ".weight" in state
    with torch.no_grad():
        fmap = model.forward_features(torch.randn(1, *cfg["input_size"]))
    assert tuple(fmap.shape[2:]) == cfg["pool_size"] == (8, 8)
    one = edgenext.create_model(name, in_chans=1, num_classes=7, output_stride=16)
    assert one.pretrained_cfg["input_size"] == (1, 256, 256) and one.pretrained_cfg["num_classes"] == 7
    assert one.pretrained_cfg["pool_size"] == (16, 16)


@pytest.mark.parametrize("name", VARIANTS)
def test_head_hidden_size_and_reset_classifier_to_features_and_maps(name):
    model = _model(name)
    x = _x()
    with torch.no_grad():
        fmap = model.forward_features(x)
        pre = model.forward_head(fmap, pre_logits=True)
        assert pre.shape == (2, model.head_hidden_size) and model.head_hidden_size == model.num_features
        model.reset_classifier(0)
        assert model.num_classes == 0
        torch.testing.assert_close(model(x), pre, rtol=0, atol=0)
        model.reset_classifier(0, "")
        unpooled = model(x)
    assert unpooled.shape == fmap.shape == (2, model.num_features, SIZE[0] // 32, SIZE[1] // 32)
    norm = model.head.norm
    if model.head.norm_first:  # BatchNorm before pooling: the map normalised as a map
        expected = norm(fmap)
    else:  # LayerNorm after pooling: each pixel's channels normalised
        expected = norm(fmap.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(unpooled, expected)
    # pooling off at creation time gives the same map
    fresh = _model(name, num_classes=0, global_pool="")
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), unpooled)


@pytest.mark.parametrize("name", ["edgenext_xx_small", "edgenext_xx_small_bn_hs"])
def test_pool_types_differ_and_bad_ones_are_named(name):
    x = _x()
    outs = {}
    for pool in ("avg", "max", "avgmax"):
        model = _model(name, global_pool=pool, num_classes=0)
        with torch.no_grad():
            outs[pool] = model(x)
    assert not torch.allclose(outs["avg"], outs["max"], atol=1e-3)
    assert not torch.allclose(outs["avgmax"], outs["avg"], atol=1e-3)
    with pytest.raises(ValueError, match="global_pool='catavgmax' is not supported.*'avgmax'"):
        edgenext.create_model(name, global_pool="catavgmax")
    with pytest.raises(ValueError, match="needs num_classes=0 .got num_classes=10"):
        edgenext.create_model(name, global_pool="", num_classes=10)
    with pytest.raises(ValueError, match="needs num_classes=0"):
        _model(name).reset_classifier(5, "")


def test_avgmax_is_the_mean_of_avg_and_max_pooling():
    model = _model("edgenext_xx_small", global_pool="avgmax", num_classes=0)
    model.head.norm = nn.Identity()
    with torch.no_grad():
        fmap = model.forward_features(_x())
        torch.testing.assert_close(model.forward_head(fmap), 0.5 * (fmap.mean((2, 3)) + fmap.amax((2, 3))))


@pytest.mark.parametrize("name", VARIANTS)
def test_feature_info_methods_agree_with_the_maps(name):
    feats = edgenext.create_model(name, features_only=True, out_indices=(1, 2, 3)).eval()
    info = feats.feature_info
    with torch.no_grad():
        outs = feats(_x())
    assert info.channels() == [o.shape[1] for o in outs]
    assert info.reduction() == [SIZE[0] // o.shape[2] for o in outs] == [8, 16, 32]
    assert info.module_name() == ["stages.1", "stages.2", "stages.3"]
    for module in info.module_name():
        assert isinstance(feats.get_submodule(module), nn.Module)
    assert info.channels(0) == feats.stem[0].out_channels and len(info) == 4
    assert info.get_dicts(keys=("num_chs", "reduction")) == [{"num_chs": c, "reduction": r}
                                                              for c, r in zip(info.channels(), info.reduction())]
    assert feats.channels == info.channels() and feats.reductions == info.reduction()
    # timm's own FeatureInfo accepts the classifier's list of dicts
    from timm.models import FeatureInfo

    assert FeatureInfo(edgenext.create_model(name).feature_info, (1, 2, 3)).channels() == info.channels()


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_intermediates_norm_and_nhwc(name):
    model = _model(name)
    x = _x()
    with torch.no_grad():
        final, plain = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        nhwc = model.forward_intermediates(x, indices=(0, -1), norm=True, output_fmt="NHWC", intermediates_only=True)
    assert [tuple(t.shape) for t in nhwc] == [tuple(plain[i].permute(0, 2, 3, 1).shape) for i in (0, 3)]
    torch.testing.assert_close(nhwc[0], plain[0].permute(0, 2, 3, 1))
    # norm=True: the head's norm where it precedes pooling (BN variants); LN variants normalise after
    last = model.head.norm(plain[3]) if model.head.norm_first else plain[3]
    torch.testing.assert_close(nhwc[1], last.permute(0, 2, 3, 1))
    if model.head.norm_first:
        assert not torch.allclose(nhwc[1], plain[3].permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match="output_fmt='NLC'"):
        model.forward_intermediates(x, output_fmt="NLC")


@pytest.mark.parametrize("name", VARIANTS)
def test_prune_intermediate_layers_then_forward(name):
    model = _model(name)
    x = _x()
    with torch.no_grad():
        want = model.forward_intermediates(x, indices=(1, 2), intermediates_only=True)
    params = count_params(model)
    assert model.prune_intermediate_layers((1, -2)) == [1, 2]
    assert len(model.stages) == 3 and count_params(model) < params
    assert model.num_classes == 0 and model.num_features == model.feature_info[-1]["num_chs"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), want[1])  # no pooling, no norm: the stage-2 map
        torch.testing.assert_close(model.forward_intermediates(x, (1, 2), intermediates_only=True), want)
    keep_head = _model(name)
    with pytest.raises(ValueError, match="prune_head=True"):
        keep_head.prune_intermediate_layers([2], prune_head=False)


@pytest.mark.parametrize("name", VARIANTS)
def test_getter_features(name):
    getter = _model(name, features_only=True, feature_cls="getter", out_indices=(1, 3),
                    feature_cfg=dict(norm=True, output_fmt="NHWC"))
    ref = _model(name)
    x = _x()
    with torch.no_grad():
        want = ref.forward_intermediates(x, (1, 3), norm=True, output_fmt="NHWC", intermediates_only=True)
        outs = getter(x)
    assert getter.feature_info.channels() == [o.shape[-1] for o in outs]
    for a, b in zip(outs, want):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="feature_cls='hook' is not supported"):
        edgenext.create_model(name, features_only=True, feature_cls="hook")


@pytest.mark.parametrize("name", VARIANTS)
def test_fx_symbolic_trace_and_feature_extractor_equal_eager(name):
    model = _model(name)
    x = _x()
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        eager = model(x)
        torch.testing.assert_close(traced(x), eager, rtol=0, atol=0)
        _, stages = model.forward_intermediates(x)
        extractor = create_feature_extractor(model, return_nodes={"stages.2": "s2", "head.fc": "logits"})
        out = extractor(x)
    torch.testing.assert_close(out["s2"], stages[2], rtol=0, atol=0)
    torch.testing.assert_close(out["logits"], eager, rtol=0, atol=0)
    # the input check survives tracing: it runs inside the traced graph
    with pytest.raises(ValueError, match="built for 3 input channels, got 1"):
        traced(torch.randn(1, 1, *SIZE))


def test_fx_traced_training_graph_reaches_every_parameter():
    model = edgenext.create_model("edgenext_xx_small_bn_hs", num_classes=5).train()
    traced = torch.fx.symbolic_trace(model)
    traced(torch.randn(2, 3, 64, 64)).mean().backward()
    missing = [n for n, p in traced.named_parameters() if p.grad is None]
    assert not missing and len(list(traced.parameters())) == len(list(model.parameters()))


def test_adapt_first_conv_follows_timm():
    w = torch.randn(8, 3, 4, 4)
    torch.testing.assert_close(adapt_first_conv(w, 1), w.sum(1, keepdim=True))
    four = adapt_first_conv(w, 4)
    torch.testing.assert_close(four, torch.cat([w, w[:, :1]], 1) * 0.75)
    assert adapt_first_conv(w, 3) is w
    with pytest.raises(ValueError, match="in_chans must be >= 1"):
        adapt_first_conv(w, 0)


@pytest.mark.parametrize("name", VARIANTS)
def test_other_input_channels_load_a_three_channel_checkpoint(name, tmp_path):
    three = _model(name)
    path = tmp_path / "rgb.pth"
    torch.save(three.state_dict(), path)
    gray = torch.randn(2, 1, *SIZE)
    one = edgenext.create_model(name, weights=path, in_chans=1).eval()
    six = edgenext.create_model(name, weights=path, in_chans=6).eval()
    four = edgenext.create_model(name, weights=path, in_chans=4).eval()
    with torch.no_grad():
        want = three(gray.expand(-1, 3, -1, -1))
        torch.testing.assert_close(one(gray), want, rtol=0, atol=1e-5)
        # six channels: each weight repeated twice at half scale, so equal channels answer alike
        torch.testing.assert_close(six(gray.expand(-1, 6, -1, -1)), want, rtol=0, atol=1e-5)
        assert four(torch.randn(2, 4, *SIZE)).shape == (2, 1000)
    assert one.pretrained_cfg["input_size"][0] == 1
    rest = {k: v for k, v in one.state_dict().items() if k != "stem.0.weight"}
    for k, v in rest.items():
        assert torch.equal(v, three.state_dict()[k]), k


def test_timm_layer_decay_uses_the_group_matcher():
    from timm.optim import create_optimizer_v2

    model = edgenext.create_model("edgenext_xx_small")
    opt = create_optimizer_v2(model, "adamw", lr=1e-3, layer_decay=0.7)
    scales = sorted({g.get("lr_scale", 1.0) for g in opt.param_groups})
    assert len(scales) > 3 and scales[-1] == 1.0  # deeper groups keep more of the lr
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == count_params(model)


def test_unpooled_and_getter_models_export_and_trace():
    x = torch.randn(1, 3, 64, 64)
    model = _model("edgenext_xx_small_bn_hs", num_classes=0, global_pool="")
    getter = _model("edgenext_xx_small", features_only=True, feature_cls="getter", out_indices=(2, 3))
    with torch.no_grad():
        torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), model(x), rtol=0, atol=0)
        torch.testing.assert_close(torch.jit.trace(model, x)(x), model(x), rtol=0, atol=0)
        exported = torch.export.export(getter, (x,)).module()(x)
        for a, b in zip(exported, getter(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
