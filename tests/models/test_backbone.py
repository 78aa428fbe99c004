"""The backbone API that detectors and segmenters build on."""

import pytest
import torch

import edgenext

VARIANTS = edgenext.list_models()


@pytest.mark.parametrize("name", VARIANTS)
def test_feature_info_and_features_only(name):
    model = edgenext.create_model(name)
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    feats = edgenext.create_model(name, features_only=True, out_indices=(1, 2, 3)).eval()
    assert feats.reductions == [8, 16, 32]
    assert feats.channels == [f["num_chs"] for f in model.feature_info[1:]]
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        outs = feats(x)
    assert [tuple(o.shape) for o in outs] == [(2, c, 96 // r, 128 // r) for c, r in zip(feats.channels, feats.reductions)]
    assert not any(k.startswith("head") for k in feats.state_dict())


def test_features_only_stops_at_the_last_index():
    feats = edgenext.create_model("edgenext_xx_small", features_only=True, out_indices=(0, 1))
    assert len(feats.stages) == 2 and feats.channels == [24, 48]
    with pytest.raises(ValueError, match="out of range"):
        edgenext.create_model("edgenext_xx_small", features_only=True, out_indices=(4,))


def test_forward_intermediates(cached_model):
    model = cached_model("edgenext_x_small")
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        picked = model.forward_intermediates(x, indices=(0, -1), intermediates_only=True)
        torch.testing.assert_close(final, model.forward_features(x))
    assert [tuple(t.shape[1:]) for t in inter] == [(32, 16, 24), (64, 8, 12), (100, 4, 6), (192, 2, 3)]
    torch.testing.assert_close(last_two[0], inter[2])
    torch.testing.assert_close(picked[1], inter[3])
    torch.testing.assert_close(picked[0], inter[0])


def test_num_classes_zero_gives_pooled_features(cached_model):
    model = edgenext.create_model("edgenext_xx_small", num_classes=0)
    model.load_state_dict({k: v for k, v in cached_model("edgenext_xx_small").state_dict().items() if not k.startswith("head.fc")})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled = model.eval()(x)
        ref = cached_model("edgenext_xx_small")
        torch.testing.assert_close(pooled, ref.forward_head(ref.forward_features(x), pre_logits=True))
    assert pooled.shape == (2, 168)


def test_reset_classifier():
    model = edgenext.create_model("edgenext_xx_small")
    model.reset_classifier(12)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 12) and model.num_classes == 12
    model.reset_classifier(0)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 168)


@pytest.mark.parametrize("name", ["edgenext_xx_small", "edgenext_xx_small_bn_hs"])
def test_grad_checkpointing_changes_nothing(name, randomize):
    torch.manual_seed(0)
    model = randomize(edgenext.create_model(name, num_classes=4)).train()
    x = torch.randn(2, 3, 64, 64)
    target = torch.tensor([0, 3])

    def run():
        model.zero_grad()
        torch.manual_seed(1)
        out = model(x)
        torch.nn.functional.cross_entropy(out, target).backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    out_plain, grads_plain = run()
    model.set_grad_checkpointing(True)
    out_ckpt, grads_ckpt = run()
    torch.testing.assert_close(out_ckpt, out_plain, atol=1e-6, rtol=0)
    for n in grads_plain:
        torch.testing.assert_close(grads_ckpt[n], grads_plain[n], atol=1e-6, rtol=1e-5, msg=n)


def test_no_weight_decay_names_layer_scales_and_temperatures():
    names = edgenext.create_model("edgenext_xx_small").no_weight_decay()
    assert "stages.1.blocks.1.xca.temperature" in names and "stages.0.blocks.0.gamma" in names
    assert "stages.1.blocks.1.gamma_xca" in names and not any("fc1" in n for n in names)
