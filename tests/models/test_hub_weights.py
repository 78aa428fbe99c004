"""``weights="hf-hub:ORG/REPO"``: timm's weights from a Hugging Face cache, offline; never a download."""

import json

import huggingface_hub
import pytest
import timm
import torch
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
from safetensors.torch import save_file

import edgenext
from edgenext.models import CheckpointError, WeightsDownloadError
from edgenext.models.hub import hub_files, parse_hub_name
from edgenext.inference.classify import load_model

NAME = "edgenext_xx_small"
REPO = "timm/edgenext_xx_small.in1k"
HUB = f"hf-hub:{REPO}"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TIMM_CONFIG = {
    "architecture": NAME,
    "num_classes": 1000,
    "pretrained_cfg": {"tag": "in1k", "input_size": [3, 256, 256], "test_input_size": [3, 288, 288], "crop_pct": 0.9,
                       "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache in tmp_path, offline mode on (set both ways: huggingface_hub
    reads its environment once, at import, so its constants are patched too)."""
    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def add_repo(cache, repo_id, files):
    """The cache layout huggingface_hub writes: models--ORG--NAME/{refs/main, snapshots/<commit>/<file>}."""
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = folder / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(COMMIT)
    for filename, write in files.items():
        write(snapshot / filename)
    return snapshot


def safetensors_of(state):
    return lambda path: save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def bin_of(state):
    return lambda path: torch.save(state, path)


def json_of(obj):
    return lambda path: path.write_text(json.dumps(obj))


@pytest.fixture
def timm_model(randomize):
    return randomize(timm.create_model(NAME, pretrained=False), seed=5).eval()


def test_timm_weights_from_the_cache_give_timm_logits(hub_cache, timm_model):
    add_repo(hub_cache, REPO, {"model.safetensors": safetensors_of(timm_model.state_dict()), "config.json": json_of(TIMM_CONFIG)})
    model = edgenext.create_model(NAME, weights=HUB).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), timm_model(x), atol=1e-5, rtol=1e-5)
    assert model.pretrained_cfg["crop_pct"] == 0.9 and model.pretrained_cfg["url"] == HUB


def test_load_model_takes_the_variant_and_settings_from_the_repo(hub_cache, timm_model):
    add_repo(hub_cache, REPO, {"model.safetensors": safetensors_of(timm_model.state_dict()), "config.json": json_of(TIMM_CONFIG)})
    loaded = load_model(weights=HUB)  # no model name: config.json's architecture
    assert loaded.crop_pct == 0.9 and loaded.input_size == 256 and len(loaded.class_names) == 1000
    assert loaded.class_names[0].startswith("n") and loaded.extra["source"] == HUB
    torch.testing.assert_close(loaded.model.stem[0].weight, timm_model.stem[0].weight)


def test_safetensors_is_preferred_and_pytorch_model_bin_is_the_fallback(hub_cache, cached_model):
    first = cached_model(NAME).state_dict()
    second = {k: v + 1 if v.is_floating_point() else v for k, v in first.items()}
    add_repo(hub_cache, REPO, {"model.safetensors": safetensors_of(first), "pytorch_model.bin": bin_of(second)})
    add_repo(hub_cache, "someone/bin-only", {"pytorch_model.bin": bin_of(second)})
    both = edgenext.create_model(NAME, weights=HUB)
    torch.testing.assert_close(both.stem[0].weight, first["stem.0.weight"])
    assert hub_files(HUB).weights.name == "model.safetensors"
    bin_only = edgenext.create_model(NAME, weights="hf-hub:someone/bin-only")
    torch.testing.assert_close(bin_only.stem[0].weight, second["stem.0.weight"])
    assert bin_only.pretrained_cfg["crop_pct"] == 0.875  # no config.json: the defaults


def test_not_cached_while_offline_says_how_to_get_it(hub_cache):
    with pytest.raises(WeightsDownloadError) as info:
        edgenext.create_model("edgenext_small", weights="hf-hub:timm/edgenext_small.usi_in1k")
    message = str(info.value)
    assert "hf-hub:timm/edgenext_small.usi_in1k" in message and "not in the local Hugging Face cache" in message
    assert "huggingface-cli download timm/edgenext_small.usi_in1k" in message and "weights='/path/to/" in message


def test_a_foreign_repo_names_the_hub_name(hub_cache):
    add_repo(hub_cache, "timm/resnet18.a1_in1k", {"model.safetensors": safetensors_of({"conv1.weight": torch.zeros(4, 3, 7, 7)})})
    with pytest.raises(CheckpointError, match=r"hf-hub:timm/resnet18\.a1_in1k.*not an EdgeNeXt checkpoint"):
        edgenext.create_model(NAME, weights="hf-hub:timm/resnet18.a1_in1k")


@pytest.mark.parametrize("name", ["hf-hub:", "hf-hub:edgenext_small", "hf-hub:a/b/c", "hf-hub:/x"])
def test_malformed_hub_names(name):
    with pytest.raises(ValueError, match="hf-hub:ORG/NAME"):
        parse_hub_name(name)


def test_revision_after_at():
    assert parse_hub_name("hf-hub:timm/edgenext_small.usi_in1k@abc") == ("timm/edgenext_small.usi_in1k", "abc")
    assert parse_hub_name(HUB) == (REPO, None)


def _fake_hub(monkeypatch, tmp_path, online):
    """Replace hf_hub_download: an empty cache, and ``online(filename)`` for what the Hub answers."""
    calls = []

    def download(repo_id, filename, *, revision=None, cache_dir=None, local_files_only=False):
        calls.append((filename, "cache" if local_files_only else "hub"))
        if local_files_only:
            raise LocalEntryNotFoundError(f"{filename} not cached")
        return online(filename)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return calls


def test_online_order_cache_first_then_safetensors_then_bin(monkeypatch, tmp_path, cached_model):
    weights = tmp_path / "pytorch_model.bin"
    torch.save(cached_model(NAME).state_dict(), weights)

    def online(filename):
        if filename == "pytorch_model.bin":
            return str(weights)
        raise EntryNotFoundError(f"{filename} not in the repo")

    calls = _fake_hub(monkeypatch, tmp_path, online)
    model = edgenext.create_model(NAME, weights="hf-hub:someone/edgenext")
    torch.testing.assert_close(model.stem[0].weight, cached_model(NAME).stem[0].weight)
    assert calls[:4] == [("model.safetensors", "cache"), ("pytorch_model.bin", "cache"),
                         ("model.safetensors", "hub"), ("pytorch_model.bin", "hub")]


def test_a_failed_download_names_the_repo(monkeypatch, tmp_path):
    def online(filename):
        raise LocalEntryNotFoundError("connection refused")

    _fake_hub(monkeypatch, tmp_path, online)
    with pytest.raises(WeightsDownloadError, match=r"(?s)hf-hub:someone/edgenext: not in the local cache and the download failed.*weights="):
        edgenext.create_model(NAME, weights="hf-hub:someone/edgenext")


def test_cli_predict_with_hub_weights(hub_cache, timm_model, tmp_path, capsys):
    from PIL import Image

    from edgenext.cli.main import main

    add_repo(hub_cache, REPO, {"model.safetensors": safetensors_of(timm_model.state_dict()), "config.json": json_of(TIMM_CONFIG)})
    Image.new("RGB", (64, 48), (10, 200, 10)).save(tmp_path / "img.png")
    assert main(["predict", str(tmp_path / "img.png"), "--weights", HUB, "--input-size", "64", "--json", "--top-k", "2"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert len(result["top"]) == 2 and all(t["label"].startswith("n") for t in result["top"])
