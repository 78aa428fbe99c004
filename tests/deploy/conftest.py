import pytest
import torch
import torch.nn.functional as F

from edgenext import EdgeNeXt
from edgenext.deploy.calibration import calibration_tensor, digits_tensors, top1

DIGITS_SIZE = 32
DIGITS_CROP = 1.0  # the digits recipe's evaluation crop: the whole digit


def train_tiny_digits(side: int, depths, dims, epochs: int = 2, sdta_blocks=(0, 1, 1, 1)):
    """``(model, x_train, x_val, y_val)``: a small EdgeNeXt trained for a few seconds on scikit-learn's
    digits at ``side`` px (RGB, the whole digit), in eval mode."""
    torch.manual_seed(0)
    x_train, y_train = digits_tensors("train", side, crop_pct=DIGITS_CROP)
    x_val, y_val = digits_tensors("val", side, crop_pct=DIGITS_CROP)
    model = EdgeNeXt(depths=depths, dims=dims, heads=(2, 2, 2, 2), num_classes=10, sdta_blocks=sdta_blocks)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.05)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y_train))
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), x_train, x_val, y_val


@pytest.fixture(scope="session")
def tiny_digits(built_once):
    """``tiny_digits(side, depths, dims, epochs=2, sdta_blocks=(0, 1, 1, 1))``: ``train_tiny_digits``'s result,
    trained once per test run: whichever xdist worker asks first trains and saves the weights, the other
    loads them (the same model on both, and the seconds of training paid once)."""

    def get(side: int, depths, dims, epochs: int = 2, sdta_blocks=(0, 1, 1, 1)):
        label = "-".join("x".join(str(v) for v in part) for part in (depths, dims, sdta_blocks))
        folder = built_once(f"digits-{side}px-{epochs}ep-{label}", lambda out: torch.save(
            train_tiny_digits(side, depths, dims, epochs, sdta_blocks)[0].state_dict(), out / "model.pth"))
        model = EdgeNeXt(depths=depths, dims=dims, heads=(2, 2, 2, 2), num_classes=10, sdta_blocks=sdta_blocks)
        model.load_state_dict(torch.load(folder / "model.pth", weights_only=True))
        x_train, _ = digits_tensors("train", side, crop_pct=DIGITS_CROP)
        x_val, y_val = digits_tensors("val", side, crop_pct=DIGITS_CROP)
        return model.eval(), x_train, x_val, y_val

    return get


@pytest.fixture
def randomized(randomize):
    """``randomized(model, seed=0)``: conftest's randomisation (layer scales, temperatures, BatchNorm
    statistics) and the norms' affines off 1 and 0 too (LayerNorm and BatchNorm), so that a wrong
    fold or a wrong export shows in the output; the model in eval mode."""

    def apply(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
        randomize(model, seed)
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for m in model.modules():
                if hasattr(m, "normalized_shape") or isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    if getattr(m, "weight", None) is not None:
                        m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                        m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.3)
        return model.eval()

    return apply


@pytest.fixture(scope="session")
def digits_model(tiny_digits):
    """``(model, calibration, x_val, y_val, fp32_top1)``: a small EdgeNeXt trained for a few
    seconds on scikit-learn's digits (32x32 RGB), its calibration images (training split) and
    the validation split. One SDTA block (stage 2's, with the positional encoding), conv encoders
    elsewhere: each SDTA block costs ExecuTorch's int8 lowering about 15 s on 2 cores."""
    model, _, x_val, y_val = tiny_digits(DIGITS_SIZE, (1, 1, 2, 1), (16, 32, 48, 64), sdta_blocks=(0, 1, 0, 0))
    accuracy = top1(model, x_val, y_val)
    assert accuracy > 80.0, f"the digits model did not train ({accuracy:.1f}%)"
    return model, calibration_tensor("digits", DIGITS_SIZE, limit=64, crop_pct=DIGITS_CROP), x_val, y_val, accuracy


#: The export parity tests need every kind of block, not EdgeNeXt-XXS's twelve (converters take time per
#: graph node: ExecuTorch's lowering ~2.5 s per conv encoder, +5 s per SDTA block on 2 cores). With XXS's
#: sdta_blocks (0, 1, 1, 1) these depths keep stage 1's conv encoder and, in each later stage, a conv
#: encoder with its own kernel (5x5, 7x7, 9x9; dilated at output stride 16) and an SDTA block.
SHALLOW_XXS = dict(depths=(1, 2, 2, 2))


@pytest.fixture
def dense_parity_model(randomized):
    """``build(task) -> (model, input_size)``: a randomised SSDLite on the shallow edgenext_xx_small_bn_hs at
    96 px (size None: its own) or DeepLabv3 on the shallow edgenext_xx_small at OS 16, exported at 64 px."""
    from edgenext.dense.deeplabv3 import deeplabv3
    from edgenext.dense.ssdlite import ssdlite

    def build(task: str):
        torch.manual_seed(0)
        if task == "detect":
            return randomized(ssdlite("edgenext_xx_small_bn_hs", 4, image_size=96, backbone_kwargs=SHALLOW_XXS)), None
        return randomized(deeplabv3("edgenext_xx_small", 4, output_stride=16, backbone_kwargs=SHALLOW_XXS)), 64

    return build


@pytest.fixture
def shallow_backbone(randomized):
    """A randomised features_only edgenext_xx_small with ``SHALLOW_XXS``'s depths (its four maps' shapes)."""
    import edgenext

    return randomized(edgenext.create_model("edgenext_xx_small", features_only=True, **SHALLOW_XXS))
