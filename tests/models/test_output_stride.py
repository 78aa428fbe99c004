"""Output stride 8 / 16 / 32: stride-1 downsampling with dilated depth-wise convs, same weights."""

import pytest
import torch

import edgenext
from edgenext.models.blocks import ConvEncoder, SDTAEncoder
from edgenext.models.edgenext import stage_map_sizes

VARIANTS = edgenext.list_models()
EXPECTED_REDUCTIONS = {8: [4, 8, 8, 8], 16: [4, 8, 16, 16], 32: [4, 8, 16, 32]}


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_map_sizes_and_reported_strides(name, output_stride):
    with torch.device("meta"):
        feats = edgenext.create_model(name, features_only=True, output_stride=output_stride)
        outs = feats(torch.empty(2, 3, 64, 96))
    assert feats.reductions == EXPECTED_REDUCTIONS[output_stride]
    assert [tuple(o.shape) for o in outs] == [(2, c, 64 // r, 96 // r) for c, r in zip(feats.channels, feats.reductions)]
    assert [tuple(o.shape[2:]) for o in outs] == stage_map_sizes((64, 96), output_stride=output_stride)


def test_odd_sizes_floor_like_stride_32():
    with torch.device("meta"):
        feats = edgenext.create_model("edgenext_xx_small", features_only=True, output_stride=16)
        outs = feats(torch.empty(1, 3, 100, 77))
    assert [tuple(o.shape[2:]) for o in outs] == [(25, 19), (12, 9), (6, 4), (6, 4)]


@pytest.mark.parametrize("name", VARIANTS)
def test_output_stride_32_is_the_plain_backbone_bit_for_bit(name, cached_model):
    plain = cached_model(name)
    model = edgenext.create_model(name, output_stride=32)
    model.load_state_dict(plain.state_dict(), strict=True)
    model.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), plain.forward_features(x))
        assert torch.equal(model(x), plain(x))
    # "today's backbone": plain stride-2 2x2 downsampling, undilated depth-wise convs
    downs = [s.downsample[1] for s in model.stages[1:]]
    assert all(type(c) is torch.nn.Conv2d and c.stride == (2, 2) and c.padding == (0, 0) for c in downs)
    dw = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert dw and all(c.dilation == (1, 1) and c.padding == (c.kernel_size[0] // 2,) * 2 for c in dw)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("output_stride", [8, 16])
def test_stride_32_weights_load_strictly(name, output_stride):
    with torch.device("meta"):
        state = edgenext.create_model(name).state_dict()
        model = edgenext.create_model(name, output_stride=output_stride)
        feats = edgenext.create_model(name, features_only=True, output_stride=output_stride)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    feats.load_state_dict({k: v for k, v in state.items() if not k.startswith("head.")}, strict=True)


def test_stride_32_weights_give_finite_outputs_at_stride_8(cached_model):
    model = edgenext.create_model("edgenext_xx_small_bn_hs", output_stride=8)
    model.load_state_dict(cached_model("edgenext_xx_small_bn_hs").state_dict(), strict=True)
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_gradients_reach_every_parameter_at_stride_16(name, randomize):
    torch.manual_seed(0)
    model = randomize(edgenext.create_model(name, num_classes=3, output_stride=16)).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 2]))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad


def test_bad_output_stride_is_a_clear_error():
    with pytest.raises(ValueError, match="output_stride=4"):
        edgenext.create_model("edgenext_xx_small", output_stride=4)


def test_stride_one_downsampling_keeps_the_stride_two_alignment(cached_model):
    """The stride-1 2x2 conv at every second position (dilation 1) or every fourth (dilation 2,
    input already at twice the resolution) gives exactly the stride-2 conv's outputs."""
    plain = cached_model("edgenext_x_small")
    os16 = edgenext.create_model("edgenext_x_small", output_stride=16)
    os8 = edgenext.create_model("edgenext_x_small", output_stride=8)
    os16.load_state_dict(plain.state_dict())
    os8.load_state_dict(plain.state_dict())
    conv32, conv16, conv8 = (m.stages[3].downsample[1] for m in (plain, os16, os8))
    x = torch.randn(1, conv32.in_channels, 9, 7)
    with torch.no_grad():
        ref = conv32(x)
        torch.testing.assert_close(conv16(x)[..., ::2, ::2][..., : ref.shape[2], : ref.shape[3]], ref, rtol=1e-5, atol=1e-6)
        y = torch.zeros(1, x.shape[1], 18, 14)
        y[..., ::2, ::2] = x  # the same map at twice the resolution (zeros between)
        torch.testing.assert_close(conv8(y)[..., ::4, ::4][..., : ref.shape[2], : ref.shape[3]], ref, rtol=1e-5, atol=1e-6)
    assert conv16.dilation == (1, 1) and conv8.dilation == (2, 2)


@pytest.mark.parametrize("dilation", [2, 4])
def test_dilated_blocks_act_on_each_sub_lattice_like_the_plain_blocks(dilation, randomize):
    """A conv encoder dilated by d, read every d-th pixel, is the plain encoder on that sub-map;
    the same for the SDTA split convs (the attention mixes all tokens, so only the convs)."""
    torch.manual_seed(0)
    plain = randomize(torch.nn.Sequential(ConvEncoder(16, kernel_size=5), SDTAEncoder(16, num_heads=2, scales=3))).eval()
    dilated = torch.nn.Sequential(ConvEncoder(16, kernel_size=5, dilation=dilation), SDTAEncoder(16, num_heads=2, scales=3, dilation=dilation))
    dilated.load_state_dict(plain.state_dict())
    dilated.eval()
    x = torch.randn(2, 16, 10 * dilation, 7 * dilation)
    with torch.no_grad():
        sub = x[..., ::dilation, ::dilation]
        torch.testing.assert_close(dilated[0](x)[..., ::dilation, ::dilation], plain[0](sub), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            dilated[1]._split_convs(x)[..., ::dilation, ::dilation], plain[1]._split_convs(sub), rtol=1e-5, atol=1e-5
        )
        assert dilated[1](x).shape == x.shape


def test_model_records_its_output_stride():
    assert edgenext.create_model("edgenext_xx_small", output_stride=8).output_stride == 8
    assert edgenext.create_model("edgenext_xx_small").output_stride == 32
