"""Reading, converting, loading and saving EdgeNeXt weights.

Formats understood (auto-detected):
- the official release: a dict with ``model`` / ``model_ema`` (EMA preferred, those are the
  evaluated weights) or ``state_dict`` (USI releases), in the official key layout;
- bare state dicts in the official layout or in timm's layout (which is ours);
- our own files: ``torch.save(model.state_dict())``, training checkpoints, ``.safetensors``.

Nothing here unpickles code: ``torch.load(weights_only=True)`` or safetensors only.
This module is a leaf: it knows checkpoint formats, not the registered variants (the
registry passes a ``guess_variant`` callback for its "this checkpoint looks like ..." hint).
Every ``CheckpointError`` names the file, URL or hub name it is about.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.error import URLError

import torch
from torch import nn

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
StateDict = dict[str, torch.Tensor]

#: keys under which checkpoint dicts hold weights, in order of preference (EMA first)
_CONTAINER_KEYS_EMA_FIRST = ("model_ema", "state_dict_ema", "model", "state_dict")
_CONTAINER_KEYS_RAW_FIRST = ("model", "state_dict", "model_ema", "state_dict_ema")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_MAX_LISTED_KEYS = 12


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message says why."""


class WeightsDownloadError(RuntimeError):
    """Released weights could not be downloaded (offline, URL gone, ...)."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read once: what it is called in messages, its local file and what it holds.

    ``content`` is whatever the file holds (a state dict, an official release dict, a training
    checkpoint of ``edgenext train``, ...). ``architecture`` and ``pretrained_cfg`` are what a
    hub repository records beside its weights (timm's ``config.json``), empty otherwise.
    """

    source: str
    path: Path
    content: Any
    architecture: Optional[str] = None
    pretrained_cfg: dict[str, Any] = field(default_factory=dict)

    def state_dict(self, *, prefer_ema: bool = True) -> StateDict:
        """The weights, in our layout."""
        return to_our_layout(extract_state_dict(self.content, source=self.source, prefer_ema=prefer_ema), source=self.source)


def open_checkpoint(path: PathLike, *, source: Optional[str] = None) -> Checkpoint:
    """Read a local checkpoint file once; ``source`` (default: the path) names it in every error."""
    return Checkpoint(source=source or str(path), path=Path(path), content=read_checkpoint(path, source=source))


def read_checkpoint(path: PathLike, *, source: Optional[str] = None, mmap: bool = False) -> Any:
    """Load a checkpoint file without running code: safetensors, or ``torch.load(weights_only=True)``.

    ``source`` names the file in errors (default: the path). ``mmap=True`` maps tensor storages
    instead of reading them (torch's zip format only): for looking at the small entries of a big file.
    """
    path = Path(path)
    label = source or str(path)
    if not path.is_file():
        raise CheckpointError(f"{label}: no such checkpoint file")
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        return _read_safetensors(path, label)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Weights only load failed" in str(err):
            raise CheckpointError(
                f"{label}: refused to load: the file holds Python objects other than tensors and plain "
                f"containers, and unpickling them could run code. Only weights are accepted; if you trust "
                f"the file, re-save its state dict (torch.save(model.state_dict(), ...)) where it was made."
            ) from None
        raise CheckpointError(f"{label}: not a PyTorch checkpoint ({err})") from None
    except Exception as err:  # noqa: BLE001 - the restricted unpickler fails in many ways on garbage
        raise CheckpointError(f"{label}: truncated, corrupt or not a PyTorch checkpoint ({type(err).__name__}: {err})") from None


def _looks_like_safetensors(path: Path) -> bool:
    # safetensors: an 8-byte little-endian header length, then the JSON header
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def _read_safetensors(path: Path, label: str) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{label}: truncated or corrupt safetensors file ({err})") from None


def extract_state_dict(obj: Any, *, source: str = "checkpoint", prefer_ema: bool = True) -> StateDict:
    """The weights inside a loaded checkpoint: bare dict, or under model_ema / model / state_dict."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: holds a {type(obj).__name__}, not a dict of weights")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    else:
        keys = _CONTAINER_KEYS_EMA_FIRST if prefer_ema else _CONTAINER_KEYS_RAW_FIRST
        found = next((k for k in keys if isinstance(obj.get(k), Mapping) and obj.get(k)), None)
        if found is None:
            listed = ", ".join(sorted(map(str, obj))[:_MAX_LISTED_KEYS])
            raise CheckpointError(
                f"{source}: no weights found; expected a state dict or a dict with one of "
                f"{', '.join(keys)}; top-level keys: {listed or '(empty)'}"
            )
        state = obj[found]
        log.debug("%s: using the weights under %r", source, found)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not tensors: {', '.join(map(str, bad[:_MAX_LISTED_KEYS]))}")
    return {_strip_wrappers(k): v for k, v in state.items()}


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


# Official release layout <-> ours (timm's). Block-internal renames apply inside blocks only.
_OFFICIAL_TO_OURS = (
    (r"^downsample_layers\.0\.(\d+)\.", r"stem.\1."),
    (r"^downsample_layers\.(\d+)\.(\d+)\.", r"stages.\1.downsample.\2."),
    (r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2."),
    (r"^norm\.", "head.norm."),
    (r"^head\.", "head.fc."),
)
_OURS_TO_OFFICIAL = (
    (r"^stem\.(\d+)\.", r"downsample_layers.0.\1."),
    (r"^stages\.(\d+)\.downsample\.(\d+)\.", r"downsample_layers.\1.\2."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2."),
    (r"^head\.norm\.", "norm."),
    (r"^head\.fc\.", "head."),
)
_BLOCK_RENAMES = (("dwconv.", "conv_dw."), ("pwconv1.", "mlp.fc1."), ("pwconv2.", "mlp.fc2."))


def _rename(key: str, rules: tuple[tuple[str, str], ...]) -> str:
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key, count=1)
        if n:
            return new
    return key


def _rename_in_blocks(key: str, renames: tuple[tuple[str, str], ...]) -> str:
    """Apply (old prefix, new prefix) renames to the part of ``key`` after ``.blocks.<j>.``."""
    if ".blocks." not in key:
        return key
    head, _, tail = key.partition(".blocks.")
    index, _, rest = tail.partition(".")
    for old, new in renames:
        if rest.startswith(old):
            rest = new + rest[len(old) :]
            break
    return f"{head}.blocks.{index}.{rest}"


def official_to_ours(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename an official-release state dict to our (= timm's) layout."""
    return {_rename_in_blocks(_rename(k, _OFFICIAL_TO_OURS), _BLOCK_RENAMES): v for k, v in state.items()}


def ours_to_official(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename one of our state dicts to the official release's layout."""
    inverse = tuple((new, old) for old, new in _BLOCK_RENAMES)
    return {_rename(_rename_in_blocks(k, inverse), _OURS_TO_OFFICIAL): v for k, v in state.items()}


def detect_layout(state: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> str:
    """'official' or 'edgenext' (ours, shared with timm); CheckpointError naming ``source`` for anything else."""
    keys = list(state)
    if any(k.startswith("downsample_layers.") for k in keys):
        return "official"
    if any(k.startswith("stem.") for k in keys) and any(k.startswith("stages.") for k in keys):
        return "edgenext"
    raise CheckpointError(
        f"{source}: not an EdgeNeXt checkpoint: expected keys starting with 'downsample_layers.' (official release) or "
        f"'stem.'/'stages.' (timm / edgenext); first keys: {', '.join(keys[:6]) or '(none)'}"
    )


def to_our_layout(state: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> StateDict:
    """Any supported layout, converted to ours."""
    return official_to_ours(state) if detect_layout(state, source=source) == "official" else dict(state)


def checkpoint_num_classes(state: Mapping[str, torch.Tensor]) -> int | None:
    """Number of classes of the checkpoint's classifier (our layout), None when it has none."""
    weight = state.get("head.fc.weight")
    return int(weight.shape[0]) if weight is not None else None


VariantGuesser = Callable[[Mapping[str, torch.Tensor]], Optional[str]]

#: the first convolution, whose input channels follow the model's ``in_chans``
FIRST_CONV = "stem.0.weight"


def adapt_first_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first-conv weight ``(O, I, k, k)`` made to read ``in_chans`` channels, as timm does.

    One channel: the sum over the I input channels, so a gray image gives exactly what its
    I-channel copy gave. More or other: the channels repeated cyclically and scaled by
    I / in_chans, so an input whose channels are all equal gives the same response.
    """
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    have = weight.shape[1]
    if in_chans == have:
        return weight
    dtype = weight.dtype
    w = weight.float()
    if in_chans == 1:
        w = w.sum(dim=1, keepdim=True)
    else:
        repeats = -(-in_chans // have)  # ceil
        w = w.repeat(1, repeats, 1, 1)[:, :in_chans] * (have / in_chans)
    return w.to(dtype)


def load_state_dict_into(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str = "checkpoint",
    guess_variant: Optional[VariantGuesser] = None,
) -> None:
    """Strictly load ``state`` (our layout) into ``model``; a classifier of another size is re-initialised.

    On a mismatch, ``guess_variant(state)`` (when given) may name the variant the weights fit,
    and the error suggests creating that one instead.
    """
    state = dict(state)
    own = model.state_dict()
    want_in, have_in = own.get(FIRST_CONV), state.get(FIRST_CONV)
    if want_in is not None and have_in is not None and want_in.shape != have_in.shape \
            and want_in.shape[:1] + want_in.shape[2:] == have_in.shape[:1] + have_in.shape[2:]:
        log.info("%s: first conv adapted from %d to %d input channels", source, have_in.shape[1], want_in.shape[1])
        state[FIRST_CONV] = adapt_first_conv(have_in, want_in.shape[1])
    head_keys = [k for k in state if k.startswith("head.fc.")]
    want, have = own.get("head.fc.weight"), state.get("head.fc.weight")
    # only the number of classes may differ; another feature width means another variant
    same_width = have is not None and have.shape[1:] == (want.shape[1:] if want is not None else have.shape[1:])
    if head_keys and same_width and (want is None or want.shape != have.shape):
        if want is None:
            log.warning("%s: classifier (%d classes) dropped: the model has num_classes=0", source, have.shape[0])
        else:
            log.warning(
                "%s: classifier has %d classes, the model %d: loaded everything else, head re-initialised",
                source, have.shape[0], want.shape[0],
            )
        for key in head_keys:
            del state[key]
        state.update({k: v for k, v in own.items() if k.startswith("head.fc.")})
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        guess = guess_variant(state) if guess_variant is not None else None
        raise CheckpointError(_mismatch_message(source, model, guess, missing, unexpected, mismatched, own, state))
    model.load_state_dict(state, strict=True)


def _mismatch_message(source, model, guess, missing, unexpected, mismatched, own, state) -> str:
    def listed(keys):
        more = f" ... and {len(keys) - _MAX_LISTED_KEYS} more" if len(keys) > _MAX_LISTED_KEYS else ""
        return ", ".join(keys[:_MAX_LISTED_KEYS]) + more

    parts = [f"{source} does not fit this {type(model).__name__}:"]
    if guess:
        parts.append(f"the checkpoint looks like {guess}: create that variant instead")
    if missing:
        parts.append(f"missing keys ({len(missing)}): {listed(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {listed(unexpected)}")
    if mismatched:
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched]
        parts.append(f"shape mismatches, checkpoint vs model ({len(mismatched)}): {listed(shapes)}")
    return "\n  ".join(parts)


def load_weights_file(path: PathLike, *, prefer_ema: bool = True) -> StateDict:
    """Read a checkpoint file of any supported format and return its weights in our layout."""
    return open_checkpoint(path).state_dict(prefer_ema=prefer_ema)


def save_weights(model: nn.Module, path: PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """Save ``model``'s weights to ``path`` (.safetensors, else torch.save), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, tmp, metadata={"format": "pt", **(metadata or {})})
        else:
            torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def download_weights(url: str, file_name: str | None = None, *, progress: bool = True) -> Path:
    """Download ``url`` into torch's hub cache (once) and return the local path."""
    cache_dir = Path(torch.hub.get_dir()) / "checkpoints"
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / (file_name or os.path.basename(url.split("?")[0]))
    if target.is_file():
        return target
    try:
        torch.hub.download_url_to_file(url, str(target), progress=progress)
    except (URLError, OSError, TimeoutError) as err:
        raise WeightsDownloadError(
            f"could not download {url} ({err}). If this machine is offline, download the file elsewhere, "
            f"then pass it: create_model(..., weights='/path/to/{target.name}') or place it at {target}"
        ) from None
    return target
