import torch


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move the parameters that start at trivial values (layer scales 1e-6, temperatures 1,
    BatchNorm statistics 0/1) to random values, so that every block changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("gamma", "gamma_xca")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif name.endswith("temperature"):
                p.copy_(torch.rand(p.shape, generator=g) * 1.5 + 0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=g) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.5)
                module.weight.copy_(torch.rand(module.weight.shape, generator=g) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.1)
    return model


import pytest  # noqa: E402


@pytest.fixture
def randomize():
    return randomize_


_MODEL_CACHE: dict = {}


@pytest.fixture(scope="session")
def cached_model():
    """A randomised eval-mode model per (variant, num_classes), built once per session.
    Tests must not modify it."""
    import edgenext

    def get(name: str, num_classes: int = 1000):
        key = (name, num_classes)
        if key not in _MODEL_CACHE:
            _MODEL_CACHE[key] = randomize_(edgenext.create_model(name, num_classes=num_classes), seed=1).eval()
        return _MODEL_CACHE[key]

    return get
