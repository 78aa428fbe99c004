"""Writing tar shards (``edgenext shards``): resumable, reproducible, with a manifest of counts and checksums.

Samples are dealt to shards in a seeded random order (so a class-sorted folder becomes shards that
each hold every class: what the training loader's shard-window shuffle assumes), ``shard_size``
per shard, the last one shorter. Each shard is written to a temporary file, indexed
(``NAME.tar.idx.json``: every member's offset and size), checksummed and renamed into place; a
``.progress.json`` records finished shards, so an interrupted run continues where it stopped when the
same command is run again. Members carry no time stamps or owners: the same source, settings and
seed give byte-identical shards.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_write
from .shards import FORMAT, INDEX_SUFFIX, MANIFEST, scan_tar, sha256_file

log = logging.getLogger(__name__)

PROGRESS = ".progress.json"
VERSION = 1


@dataclass
class SplitSource:
    """One split to write: ``count`` samples, ``read(i)`` giving sample ``i``'s members (extension -> bytes;
    an ``OSError`` leaves the sample out with a warning), ``describe(i)`` naming it in messages."""

    name: str
    count: int
    read: Callable[[int], dict[str, bytes]]
    describe: Callable[[int], str]


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
    tar.addfile(info, io.BytesIO(data))


def _write_shard(path: Path, members: list[tuple[str, dict[str, bytes]]]) -> dict[str, Any]:
    """One shard (temporary file, index, checksum, rename); its manifest entry."""
    tmp = path.with_name(f".{path.name}.partial")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for key, parts in members:
            for ext in sorted(parts):
                _add(tar, f"{key}.{ext}", parts[ext])
    with open(tmp, "rb") as f:
        index = scan_tar(f, str(tmp))
    index_path = path.with_name(path.name + INDEX_SUFFIX)
    _atomic_write(index_path, json.dumps([[k, {e: list(m) for e, m in ms.items()}] for k, ms in index]).encode())
    entry = {"name": path.name, "samples": len(index), "bytes": tmp.stat().st_size, "sha256": sha256_file(str(tmp)),
             "index": index_path.name}
    os.replace(tmp, path)
    return entry


def write_shards(dst: os.PathLike, splits: Sequence[SplitSource], *, task: str, meta: dict[str, Any], shard_size: int,
                 seed: int = 0, source: str = "", progress: bool = True) -> dict[str, Any]:
    """Write every split's shards into ``dst`` (``<split>-000000.tar`` ...) and ``manifest.json``; returns the manifest.

    Run again after an interruption with the same arguments, it keeps the finished shards (checked against
    their recorded size) and writes the rest; with other arguments over unfinished shards it refuses.
    """
    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1 sample, got {shard_size}")
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    settings = {"task": task, "shard_size": int(shard_size), "seed": int(seed), "source": source,
                "splits": {s.name: s.count for s in splits}}
    done = _read_progress(dst, settings)
    for stale in dst.glob(".*.partial"):
        stale.unlink()  # a shard an interrupted run was writing
    manifest_splits = {}
    for split in splits:
        entries = done.setdefault(split.name, {})
        order = np.random.default_rng((seed, zlib.crc32(split.name.encode()))).permutation(split.count)
        n_shards = max(1, -(-split.count // shard_size))
        finished = sum(entries[str(k)]["samples"] for k in range(n_shards) if str(k) in entries)
        left_out = 0
        bar = tqdm(total=split.count, initial=finished, desc=f"{split.name} shards", unit="img", disable=not progress)
        for k in range(n_shards):
            path = dst / f"{split.name}-{k:06d}.tar"
            entry = entries.get(str(k))
            if entry is not None and path.is_file() and path.stat().st_size == entry["bytes"]:
                continue
            members = []
            for i in order[k * shard_size : (k + 1) * shard_size]:
                try:
                    members.append((f"{int(i):08d}", split.read(int(i))))
                except OSError as err:
                    left_out += 1
                    warnings.warn(f"left out {split.describe(int(i))}: {err}", stacklevel=2)
                bar.update(1)
            entries[str(k)] = _write_shard(path, members)
            _atomic_write(dst / PROGRESS, json.dumps({"settings": settings, "done": done}).encode())
        bar.close()
        shards = [entries[str(k)] for k in range(n_shards)]
        manifest_splits[split.name] = {"samples": sum(s["samples"] for s in shards), "shards": shards}
        if left_out:
            log.warning("%s: %d sample(s) left out (unreadable)", split.name, left_out)
    manifest = {"format": FORMAT, "version": VERSION, "task": task, **meta, "settings": settings,
                "splits": manifest_splits}
    _atomic_write(dst / MANIFEST, json.dumps(manifest, indent=1).encode())
    (dst / PROGRESS).unlink(missing_ok=True)
    return manifest


def _read_progress(dst: Path, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The shards an interrupted run with the same settings finished (split -> shard number -> entry)."""
    path = dst / PROGRESS
    if not path.is_file():
        manifest = dst / MANIFEST
        if manifest.is_file():
            old = json.loads(manifest.read_text()).get("settings")
            if old != settings:
                raise ValueError(f"{dst} already holds shards written with other settings ({old}); "
                                 f"write into an empty folder")
            return {name: {str(k): e for k, e in enumerate(split["shards"])}
                    for name, split in json.loads(manifest.read_text())["splits"].items()}
        return {}
    state = json.loads(path.read_text())
    if state.get("settings") != settings:
        raise ValueError(f"{dst} holds an unfinished run of edgenext shards with other settings "
                         f"({state.get('settings')}); run that command again to finish it, or write into an empty folder")
    return dict(state.get("done") or {})


def read_file(path: os.PathLike) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def image_ext(path: os.PathLike) -> str:
    """The member extension of an image file (``jpeg`` stays ``jpeg``: readers look for every image extension)."""
    return Path(path).suffix.lower().lstrip(".") or "jpg"


def mask_png(mask: np.ndarray) -> bytes:
    """A class-index mask as PNG bytes: 8-bit when every index fits, else 16-bit."""
    from PIL import Image

    if mask.min() < 0 or mask.max() > 65535:
        raise ValueError(f"mask values {mask.min()}..{mask.max()} do not fit a 16-bit PNG")
    img = Image.fromarray(mask.astype(np.uint8), mode="L") if mask.max() < 256 else Image.fromarray(mask.astype(np.uint16))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def folder_splits(root: os.PathLike, splits: Sequence[str] = ("train", "val")) -> tuple[list[SplitSource], list[str]]:
    """Classification sources: ``root/<split>/<class>/*`` for each split present (``root/<class>/*`` alone: one
    ``train`` split); the class names are the training split's (the others must use the same)."""
    from .datasets import ImageFolderDataset

    root = Path(root)
    present = [s for s in splits if (root / s).is_dir()]
    folders = {s: root / s for s in present} if present else {"train": root}
    sources, class_names = [], None
    for name, folder in folders.items():
        dataset = ImageFolderDataset(folder, class_names=class_names)
        class_names = class_names or list(dataset.class_names)
        samples = list(dataset.samples)
        sources.append(SplitSource(
            name=name, count=len(samples),
            read=lambda i, s=samples: {image_ext(s[i][0]): read_file(s[i][0]), "cls": str(s[i][1]).encode()},
            describe=lambda i, s=samples: str(s[i][0])))
    return sources, list(class_names or [])
