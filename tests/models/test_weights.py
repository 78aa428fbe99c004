"""Every checkpoint format loads (and round-trips); every bad checkpoint gets a clear error."""

import logging
import os
import pickle
import urllib.error

import pytest
import torch
from safetensors.torch import save_file

import edgenext
from edgenext.models import CheckpointError, WeightsDownloadError, ours_to_official, save_weights

NAME = "edgenext_xx_small"


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(0)
    model = edgenext.create_model(NAME).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("gamma", "gamma_xca")):
                p.normal_(0, 0.5)
    return model


def _same(a, b):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), atol=1e-6, rtol=0)


def _ema_copy(model):
    ema = edgenext.create_model(NAME)
    ema.load_state_dict({k: v + 0.01 if v.is_floating_point() else v for k, v in model.state_dict().items()})
    return ema


FORMATS = {
    "bare_ours": lambda m: m.state_dict(),
    "bare_official": lambda m: ours_to_official(m.state_dict()),
    "official_release": lambda m: {"model": ours_to_official(_ema_copy(m).state_dict()), "model_ema": ours_to_official(m.state_dict()),
                                   "optimizer": {"state": {}, "param_groups": []}, "epoch": 299},
    "official_usi": lambda m: {"state_dict": ours_to_official(m.state_dict())},
    "training_checkpoint": lambda m: {"model": _ema_copy(m).state_dict(), "model_ema": m.state_dict(), "epoch": 3},
    "ddp_prefixed": lambda m: {f"module.{k}": v for k, v in m.state_dict().items()},
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_loads(fmt, source, tmp_path):
    path = tmp_path / f"{fmt}.pth"
    torch.save(FORMATS[fmt](source), path)
    _same(edgenext.create_model(NAME, weights=path), source)
    _same(edgenext.create_model(NAME, weights=str(path)), source)


def test_raw_weights_instead_of_ema_on_request(source, tmp_path):
    path = tmp_path / "release.pth"
    torch.save(FORMATS["official_release"](source), path)
    raw = edgenext.create_model(NAME, weights=path, prefer_ema=False)
    _same(raw, _ema_copy(source))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_save_weights_round_trips(suffix, source, tmp_path):
    path = save_weights(source, tmp_path / f"w{suffix}")
    _same(edgenext.create_model(NAME, weights=path), source)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_safetensors_without_the_suffix_is_recognised(source, tmp_path):
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "weights.bin"))
    _same(edgenext.create_model(NAME, weights=tmp_path / "weights.bin"), source)


def test_bn_variant_round_trips_with_buffers(tmp_path, randomize):
    model = randomize(edgenext.create_model("edgenext_xx_small_bn_hs")).eval()
    path = save_weights(model, tmp_path / "bn.safetensors")
    _same(edgenext.create_model("edgenext_xx_small_bn_hs", weights=path), model)


def test_other_head_size_is_reinitialised_with_one_message(source, tmp_path, caplog):
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    with caplog.at_level(logging.WARNING, logger="edgenext"):
        model = edgenext.create_model(NAME, weights=path, num_classes=10)
    assert model.head.fc.weight.shape == (10, 168)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "1000 classes" in messages[0] and "re-initialised" in messages[0]
    torch.testing.assert_close(model.stem[0].weight, source.stem[0].weight)
    torch.testing.assert_close(model.head.norm.weight, source.head.norm.weight)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval().forward_head(model.forward_features(x), pre_logits=True),
                                   source.forward_head(source.forward_features(x), pre_logits=True))


def test_num_classes_defaults_to_the_checkpoints(tmp_path):
    model = edgenext.create_model(NAME, num_classes=10)
    save_weights(model, tmp_path / "ft.pth")
    assert edgenext.create_model(NAME, weights=tmp_path / "ft.pth").num_classes == 10
    assert edgenext.create_model(NAME, weights=tmp_path / "ft.pth", num_classes=0).num_classes == 0


def test_features_only_model_loads_the_backbone(source, tmp_path):
    torch.save(source.state_dict(), tmp_path / "w.pth")
    feats = edgenext.create_model(NAME, weights=tmp_path / "w.pth", features_only=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(feats(x)[-1], source.forward_features(x))


def test_truncated_file(source, tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(source.state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth: truncated, corrupt or not a PyTorch checkpoint"):
        edgenext.create_model(NAME, weights=path)


def test_truncated_safetensors(source, tmp_path):
    path = save_weights(source, tmp_path / "cut.safetensors")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: truncated or corrupt safetensors"):
        edgenext.create_model(NAME, weights=path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n" * 10)
    with pytest.raises(CheckpointError, match="notes.pth"):
        edgenext.create_model(NAME, weights=path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        edgenext.create_model(NAME, weights=tmp_path / "nope.pth")


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": _Payload()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="refused to load.*could run code"):
        edgenext.create_model(NAME, weights=path)


def test_foreign_checkpoint(tmp_path):
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match="resnet.pth: not an EdgeNeXt checkpoint.*conv1.weight"):
        edgenext.create_model(NAME, weights=tmp_path / "resnet.pth")


def test_another_networks_state_dict_names_the_file(tmp_path):
    import torchvision

    path = tmp_path / "other.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        edgenext.create_model(NAME, weights=str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: not an EdgeNeXt checkpoint") and "conv1.weight" in message


def _truncated(path, model):
    torch.save(model.state_dict(), path)
    path.write_bytes(path.read_bytes()[:2000])


def _wrong_variant(path, model):
    torch.save(edgenext.create_model("edgenext_x_small").state_dict(), path)


def _missing_key(path, model):
    state = dict(model.state_dict())
    del state["stem.0.weight"]
    torch.save(state, path)


BAD_FILES = {
    "missing": lambda path, model: None,
    "text": lambda path, model: path.write_text("not weights\n" * 20),
    "truncated": _truncated,
    "truncated_safetensors": lambda path, model: path.write_bytes(save_weights(model, path.with_suffix(".safetensors")).read_bytes()[:500]),
    "code": lambda path, model: torch.save({"model": _Payload()}, path, pickle_module=pickle),
    "foreign": lambda path, model: torch.save({"fc.weight": torch.zeros(2, 2)}, path),
    "no_weights": lambda path, model: torch.save({"epoch": 1}, path),
    "a_list": lambda path, model: torch.save([torch.zeros(1)], path),
    "non_tensor_entries": lambda path, model: torch.save({"model": {"stem.0.weight": torch.zeros(1), "note": {"a": 1}}}, path),
    "missing_key": _missing_key,
    "wrong_variant": _wrong_variant,
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_every_checkpoint_error_names_its_file(case, source, tmp_path):
    path = tmp_path / f"bad_{case}.pth"
    BAD_FILES[case](path, source)
    with pytest.raises(CheckpointError) as info:
        edgenext.create_model(NAME, weights=path)
    assert str(path) in str(info.value)


def test_a_released_checkpoints_error_names_its_url(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "edgenext_xx_small.pth"
    cached.parent.mkdir(parents=True)
    torch.save({"fc.weight": torch.zeros(2, 2)}, cached)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("downloaded although cached"))
    with pytest.raises(CheckpointError, match=r"releases/download/v1\.0/edgenext_xx_small\.pth \(cached as .*not an EdgeNeXt"):
        edgenext.create_model(NAME, pretrained=True)


def test_weights_module_is_a_leaf():
    """Weight loading must not reach back into the registry (no import circle)."""
    import ast
    import inspect

    from edgenext.models import weights

    tree = ast.parse(inspect.getsource(weights))
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0}
    assert imported == set(), f"weights.py imports {imported} from the package"


def test_mismatch_hint_comes_from_the_guesser(source):
    from edgenext.models.weights import load_state_dict_into

    small = edgenext.create_model("edgenext_x_small")
    with pytest.raises(CheckpointError) as plain:
        load_state_dict_into(small, source.state_dict(), source="a.pth")
    assert "looks like" not in str(plain.value) and str(plain.value).startswith("a.pth does not fit")
    with pytest.raises(CheckpointError, match="(?s)a.pth does not fit.*looks like edgenext_xx_small: create that variant"):
        load_state_dict_into(small, source.state_dict(), source="a.pth", guess_variant=edgenext.models.guess_variant)


def test_an_already_read_checkpoint_is_not_read_again(source, tmp_path, monkeypatch):
    from edgenext.models import read_weights

    torch.save({"model": source.state_dict(), "epoch": 1}, tmp_path / "w.pth")
    checkpoint = read_weights(tmp_path / "w.pth")
    assert checkpoint.source == str(tmp_path / "w.pth") and checkpoint.content["epoch"] == 1
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read the file again"))
    _same(edgenext.create_model(NAME, weights=checkpoint), source)


def test_dict_without_weights(tmp_path):
    torch.save({"epoch": 3, "args": {"lr": 0.1}}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointError, match="no weights found.*top-level keys: args, epoch"):
        edgenext.create_model(NAME, weights=tmp_path / "meta.pth")


def test_missing_and_unexpected_keys_are_listed(source, tmp_path):
    state = dict(source.state_dict())
    del state["stages.2.blocks.0.gamma"]
    state["stages.2.blocks.0.extra"] = torch.zeros(3)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match=r"(?s)missing keys \(1\): stages\.2\.blocks\.0\.gamma.*unexpected keys \(1\): stages\.2\.blocks\.0\.extra"):
        edgenext.create_model(NAME, weights=tmp_path / "w.pth")


def test_wrong_variant_is_named(tmp_path):
    torch.save(edgenext.create_model("edgenext_x_small").state_dict(), tmp_path / "xs.pth")
    with pytest.raises(CheckpointError, match="(?s)looks like edgenext_x_small: create that variant.*shape mismatches"):
        edgenext.create_model(NAME, weights=tmp_path / "xs.pth")


def test_pretrained_offline_names_the_url(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsDownloadError, match=r"releases/download/v1\.0/edgenext_xx_small\.pth.*weights="):
        edgenext.create_model(NAME, pretrained=True)


def test_pretrained_uses_the_hub_cache(monkeypatch, tmp_path, source):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "edgenext_small_usi.pth"
    cached.parent.mkdir(parents=True)
    small = edgenext.create_model("edgenext_small")
    torch.save({"state_dict": ours_to_official(small.state_dict())}, cached)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("downloaded although cached"))
    model = edgenext.create_model("edgenext_small.usi", pretrained=True)
    assert model.pretrained_cfg["crop_pct"] == 0.95 and model.pretrained_cfg["tag"] == "usi"
    torch.testing.assert_close(model.stem[0].weight, small.stem[0].weight)


def test_pretrained_and_weights_together_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="either pretrained=True"):
        edgenext.create_model(NAME, pretrained=True, weights=tmp_path / "x.pth")
