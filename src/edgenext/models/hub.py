"""Weights from the Hugging Face Hub (``hf-hub:timm/edgenext_small.usi_in1k``), local cache first.

The cache is looked at before the network, so a machine that once downloaded a repository
(with timm, ``huggingface-cli download`` or this package) loads it offline. Only the public
``huggingface_hub`` API is used; the files are read by ``weights.read_checkpoint`` like any
other (safetensors, or ``torch.load(weights_only=True)`` for ``pytorch_model.bin``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .weights import WeightsDownloadError

log = logging.getLogger(__name__)

HUB_PREFIX = "hf-hub:"
#: weight files looked for in a repository, in order of preference (safetensors runs no code at all)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class HubFiles:
    """A repository's weights file in the local cache, and its timm ``config.json`` ({} when absent)."""

    name: str  # as given, e.g. hf-hub:timm/edgenext_small.usi_in1k
    repo_id: str
    weights: Path
    config: dict[str, Any] = field(default_factory=dict)


def is_hub_name(weights: object) -> bool:
    return isinstance(weights, str) and weights.startswith(HUB_PREFIX)


def parse_hub_name(name: str) -> tuple[str, Optional[str]]:
    """``hf-hub:ORG/REPO[@REVISION]`` -> (repo id, revision or None)."""
    repo, _, revision = name[len(HUB_PREFIX):].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"{name!r}: give a Hugging Face repository as hf-hub:ORG/NAME, e.g. hf-hub:timm/edgenext_small.usi_in1k")
    return repo, revision or None


def _is_true(value: Optional[str]) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _offline() -> bool:
    # NOTE: huggingface_hub reads HF_HUB_OFFLINE / HF_HUB_CACHE once, at import; reading the
    # environment again here honours a setting made later in the process (notebooks, tests).
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or _is_true(os.environ.get("HF_HUB_OFFLINE"))


def _cache_dir() -> Optional[str]:
    return os.environ.get("HF_HUB_CACHE") or None  # None: huggingface_hub's own default


def _fetch(repo_id: str, filename: str, revision: Optional[str], *, local_only: bool) -> Optional[Path]:
    """The file's local path; None when the repository has no such file (or, with local_only, it is not cached)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=_cache_dir(), local_files_only=local_only))
    except HFValidationError as err:
        raise ValueError(f"hf-hub:{repo_id}: not a valid Hugging Face repository id ({err})") from None
    except LocalEntryNotFoundError:
        if local_only:
            return None
        raise  # online: the network failed; the caller says what to do
    except EntryNotFoundError:
        return None


def _not_available(name: str, repo_id: str, reason: str) -> WeightsDownloadError:
    return WeightsDownloadError(
        f"{name}: {reason}. Download it on a connected machine (e.g. huggingface-cli download {repo_id}, or "
        f"create_model(..., weights='{name}') there) and copy the Hugging Face cache (HF_HUB_CACHE, "
        f"~/.cache/huggingface/hub) here, or pass the file itself: weights='/path/to/model.safetensors'"
    )


def _find_weights(name: str, repo_id: str, revision: Optional[str]) -> Path:
    for filename in WEIGHT_FILES:
        path = _fetch(repo_id, filename, revision, local_only=True)
        if path is not None:
            log.debug("%s: using the cached %s", name, path)
            return path
    if _offline():
        raise _not_available(name, repo_id, "not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    for filename in WEIGHT_FILES:
        try:
            path = _fetch(repo_id, filename, revision, local_only=False)
        except RevisionNotFoundError:
            raise WeightsDownloadError(f"{name}: repository {repo_id} has no revision {revision!r}") from None
        except RepositoryNotFoundError:
            raise WeightsDownloadError(f"{name}: no repository {repo_id} on the Hugging Face Hub (or it is private or gated)") from None
        except (LocalEntryNotFoundError, OSError) as err:  # no connection, timeouts, HTTP errors
            raise _not_available(name, repo_id, f"not in the local cache and the download failed ({type(err).__name__}: {err})") from None
        if path is not None:
            return path
    raise WeightsDownloadError(f"{name}: repository {repo_id} holds none of {', '.join(WEIGHT_FILES)}")


def _read_config(weights: Path, repo_id: str, revision: Optional[str]) -> dict[str, Any]:
    """timm's ``config.json`` beside the weights (same snapshot), else fetched; {} when unavailable."""
    path: Optional[Path] = weights.parent / CONFIG_FILE
    if not path.is_file():
        path = _fetch(repo_id, CONFIG_FILE, revision, local_only=True)
    if path is None and not _offline():
        try:
            path = _fetch(repo_id, CONFIG_FILE, revision, local_only=False)
        except (OSError, ValueError) as err:  # the settings are optional: the defaults apply
            log.debug("hf-hub:%s: no %s (%s)", repo_id, CONFIG_FILE, err)
    if path is None:
        return {}
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        log.warning("hf-hub:%s: ignoring unreadable %s (%s)", repo_id, CONFIG_FILE, err)
        return {}
    return config if isinstance(config, dict) else {}


def hub_files(name: str) -> HubFiles:
    """The weights file (``model.safetensors``, else ``pytorch_model.bin``) and config of ``hf-hub:ORG/REPO[@REV]``.

    The local cache is tried first; the Hub only when the files are not cached and
    ``HF_HUB_OFFLINE`` is not set. ``WeightsDownloadError`` (naming the repository and how
    to get it) when they are neither cached nor downloadable.
    """
    repo_id, revision = parse_hub_name(name)
    weights = _find_weights(name, repo_id, revision)
    return HubFiles(name=name, repo_id=repo_id, weights=weights, config=_read_config(weights, repo_id, revision))
