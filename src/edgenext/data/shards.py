"""WebDataset-style tar shards: finding them, indexing them, and reading one sample at a time.

A shard is a plain tar file; a sample is the run of consecutive members sharing a key (the
member's path up to the first dot of its file name): ``000042.jpg`` + ``000042.cls`` for
classification, ``000042.jpg`` + ``000042.json`` for detection, ``000042.jpg`` +
``000042.seg.png`` for segmentation (what ``edgenext shards`` writes; other WebDataset shards
with these extensions read the same).

Shards are read by *random access*: each shard has an index (member offsets and sizes: a
``NAME.tar.idx.json`` beside it, written by ``edgenext shards``; else built by one streaming pass
over the shard), so a sample is one seek and read (local files) or one range request (``s3://``,
``gs://``, ``https://``... through fsspec). ``pipe:CMD`` shards cannot seek: each loader process
copies such a shard once to a local spool file and reads it from there. Random access keeps the
training loop's guarantees: the batch sampler plans each epoch from the seed (every sample once,
each process its own shards: ``ShardBatchSampler``) and a resumed run skips to the same batch.

Where the shards are (``--data`` / ``--train-dir`` / ``--val-dir``):
- a folder or URL prefix holding ``manifest.json`` (``edgenext shards`` writes one: splits, sample
  counts, checksums, class names), or the manifest's own path;
- a brace pattern ``train-{000000..001023}.tar`` (local path, ``file://``, URL, or ``pipe:CMD``);
  a ``manifest.json`` beside the first shard is read when there is one.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import logging
import os
import posixpath
import re
import subprocess
import tarfile
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator, Optional, Sequence

from tqdm import tqdm

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "edgenext-shards"
INDEX_SUFFIX = ".idx.json"

#: the members that hold a sample's image, in the order they are looked for
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "tif", "tiff", "gif")

Member = tuple[int, int]  # (offset of the data in the tar, size in bytes)
SampleIndex = tuple[str, dict[str, Member]]  # (key, {extension: member})

_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


class ShardError(ValueError):
    """Shards that cannot be found, read or understood; the message names the shard and what to do."""


def expand_braces(spec: str) -> list[str]:
    """``train-{000000..000003}.tar`` -> the four names (zero-padded to the lower bound's width);
    several brace groups multiply; a spec without braces is itself."""
    m = _BRACES.search(spec)
    if m is None:
        return [spec]
    lo, hi = m.group(1), m.group(2)
    if int(hi) < int(lo):
        raise ShardError(f"{spec}: the range {{{lo}..{hi}}} is empty (the upper bound is below the lower)")
    return [name for i in range(int(lo), int(hi) + 1)
            for name in expand_braces(spec[: m.start()] + str(i).zfill(len(lo)) + spec[m.end():])]


def is_url(location: str) -> bool:
    return "://" in location or location.startswith("pipe:")


def join(base: str, name: str) -> str:
    """``name`` relative to the folder or URL prefix ``base`` (absolute names and URLs are kept)."""
    if is_url(name) or os.path.isabs(name):
        return name
    if "://" in base:
        return base.rstrip("/") + "/" + name
    return os.path.join(base, name)


def looks_like_shards(location: Optional[str]) -> bool:
    """Whether a ``--data`` value names tar shards rather than an image folder (cheap: one stat at most)."""
    if not location:
        return False
    location = str(location)
    if location.startswith("pipe:") or _BRACES.search(location) or location.endswith((".tar", MANIFEST)):
        return True
    if "://" in location:
        return not location.startswith("file://") or os.path.isfile(os.path.join(location[7:], MANIFEST))
    return os.path.isfile(os.path.join(location, MANIFEST))


# --- opening and reading -----------------------------------------------------------------------------------------


def _fsspec():
    try:
        import fsspec
    except ImportError:
        raise ShardError("reading shards from a URL needs fsspec: pip install 'edgenext[shards]' "
                         "(and s3fs for s3://, gcsfs for gs://)") from None
    return fsspec


def open_binary(location: str) -> BinaryIO:
    """A seekable binary file: a local path, ``file://``, or any URL fsspec knows (range requests, no read-ahead)."""
    if location.startswith("file://"):
        location = location[len("file://"):]
    if "://" not in location:
        try:
            return open(location, "rb")
        except OSError as err:
            raise ShardError(f"{location}: cannot open ({err.strerror or err})") from None
    fsspec = _fsspec()
    try:
        return fsspec.open(location, "rb", cache_type="none").open()
    except ImportError as err:  # a protocol whose package is missing (s3fs, gcsfs...)
        raise ShardError(f"{location}: {err}") from None
    except FileNotFoundError:  # NOTE: fsspec's HTTP reports an unreachable host so too
        raise ShardError(f"{location}: not found (or the store is unreachable from here)") from None
    except Exception as err:  # noqa: BLE001 (network and credential errors come in each backend's own types)
        raise ShardError(f"{location}: cannot reach it ({type(err).__name__}: {err}); offline, or no "
                         f"credentials for this store?") from None


def read_small(location: str) -> bytes:
    """The whole of a small file (a manifest, an index) at a path or URL."""
    with open_binary(location) as f:
        return f.read()


def exists(location: str) -> bool:
    """Whether a file is there; a URL whose file system cannot be reached or needs a missing package is a
    ShardError saying so (not a silent "no")."""
    if location.startswith("pipe:"):
        return False
    if location.startswith("file://") or "://" not in location:
        return os.path.isfile(location[len("file://"):] if location.startswith("file://") else location)
    fsspec = _fsspec()
    try:
        return bool(fsspec.core.url_to_fs(location)[0].exists(location))
    except ImportError as err:  # fsspec knows the protocol, its package (s3fs, gcsfs...) is not installed
        raise ShardError(f"{location}: {err}") from None
    except Exception as err:  # noqa: BLE001 (network and credential errors come in each backend's own types)
        raise ShardError(f"{location}: cannot reach it ({type(err).__name__}: {err}); offline, or no "
                         f"credentials for this store?") from None


def spool_pipe(location: str, directory: Optional[str] = None) -> str:
    """Run ``pipe:CMD`` and keep its output in a local file (its path); a failing command is a ShardError."""
    command = location[len("pipe:"):]
    fd, path = tempfile.mkstemp(prefix="edgenext-shard-", suffix=".tar", dir=directory)
    with os.fdopen(fd, "wb") as out:
        proc = subprocess.run(command, shell=True, stdout=out, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        os.unlink(path)
        raise ShardError(f"{location}: the command exited with {proc.returncode}: "
                         f"{proc.stderr.decode(errors='replace').strip()[-500:]}")
    return path


def scan_tar(stream: BinaryIO, name: str = "shard") -> list[SampleIndex]:
    """The samples of a tar read front to back (no seeking): each key with its members' offsets and sizes."""
    samples: list[SampleIndex] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                folder, base = posixpath.split(info.name)
                stem, dot, ext = base.partition(".")
                if not dot or not stem or stem.startswith("_"):  # no extension, or a hidden / metadata member
                    continue
                key = posixpath.join(folder, stem)
                if not samples or samples[-1][0] != key:
                    samples.append((key, {}))
                samples[-1][1][ext.lower()] = (int(info.offset_data), int(info.size))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ShardError(f"{name}: not a readable tar file ({type(err).__name__}: {err}); a truncated download? "
                         f"re-write it with edgenext shards or fetch it again") from None
    return samples


@dataclass
class Shard:
    """One shard: where it is, how many samples it holds (None: unknown until indexed), its index."""

    location: str
    samples: Optional[int] = None
    index_location: Optional[str] = None  # the NAME.tar.idx.json written beside it, when there is one
    sha256: Optional[str] = None


@dataclass
class ShardSet:
    """The shards of one split and what the manifest says of them (class names, categories...)."""

    shards: list[Shard]
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # what the user gave, for messages

    @property
    def sizes(self) -> list[int]:
        return [int(s.samples or 0) for s in self.shards]

    def __len__(self) -> int:
        return sum(self.sizes)


def _split_names(manifest: dict) -> list[str]:
    return sorted(dict(manifest.get("splits") or {}))


def _read_manifest(location: str) -> dict:
    try:
        manifest = json.loads(read_small(location))
    except json.JSONDecodeError as err:
        raise ShardError(f"{location}: not a JSON manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ShardError(f"{location}: not a manifest of edgenext shards (format {manifest.get('format')!r} "
                         f"if a dict); write one with edgenext shards, or give the shards as a pattern")
    return manifest


def _from_manifest(manifest_location: str, manifest: dict, split: str, source: str) -> ShardSet:
    base = manifest_location[: -len(MANIFEST)] if manifest_location.endswith(MANIFEST) else manifest_location
    splits = dict(manifest.get("splits") or {})
    if split not in splits:
        raise ShardError(f"{source}: the manifest has no {split!r} split (it has {', '.join(_split_names(manifest)) or 'none'}); "
                         f"give --train-dir / --val-dir shard patterns, or write the split with edgenext shards")
    shards = [Shard(location=join(base, s["name"]), samples=int(s["samples"]), sha256=s.get("sha256"),
                    index_location=join(base, s["index"]) if s.get("index") else None)
              for s in splits[split]["shards"]]
    meta = {k: v for k, v in manifest.items() if k != "splits"}
    return ShardSet(shards=shards, meta=meta, source=source)


def resolve_shards(location: str, split: str = "train", *, progress: bool = True) -> ShardSet:
    """The shards of ``split`` that ``location`` names (see the module's docstring), every shard's sample
    count known: from the manifest, else by indexing each shard once (a progress bar)."""
    location = str(location)
    if not _BRACES.search(location) and not location.endswith(".tar") and not location.startswith("pipe:"):
        manifest_location = location if location.endswith(MANIFEST) else join(location, MANIFEST)
        if "://" in manifest_location and not manifest_location.startswith("file://"):
            # NOTE: a remote store says "missing" or "unreachable" only when read (HTTP's exists() hides errors)
            return _from_manifest(manifest_location, _read_manifest(manifest_location), split, location)
        if not exists(manifest_location):
            raise ShardError(f"{location}: no {MANIFEST} there; give a folder written by edgenext shards, its "
                             f"manifest, or a shard pattern such as 'train-{{000000..000099}}.tar'")
        return _from_manifest(manifest_location, _read_manifest(manifest_location), split, location)
    names = expand_braces(location)
    beside = join(posixpath.dirname(names[0]) if "://" in names[0] else os.path.dirname(names[0]), MANIFEST)
    listed: dict[str, Shard] = {}
    meta: dict[str, Any] = {}
    if not names[0].startswith("pipe:") and exists(beside):
        manifest = _read_manifest(beside)
        meta = {k: v for k, v in manifest.items() if k != "splits"}
        for name in _split_names(manifest):
            for shard in _from_manifest(beside, manifest, name, location).shards:
                listed[os.path.basename(shard.location)] = shard
    shards = []
    for name in names:  # the manifest's counts and indexes, under the locations given
        known = listed.get(os.path.basename(name))
        shards.append(Shard(location=name, samples=known.samples, index_location=known.index_location,
                            sha256=known.sha256) if known else Shard(location=name))
    unknown = [s for s in shards if s.samples is None]
    for shard in tqdm(unknown, desc=f"indexing {len(unknown)} shard(s)", disable=not progress or len(unknown) < 2,
                      leave=False):
        shard.samples = len(ShardReader.index_of(shard))
    return ShardSet(shards=shards, meta=meta, source=location)


class ShardReader:
    """Reads samples by (shard, position): keeps a few shards open and their indexes loaded, per process.

    Picklable (a DataLoader worker gets a copy without the open files and opens its own).
    """

    def __init__(self, shards: Sequence[Shard], *, max_open: int = 8, spool_dir: Optional[str] = None) -> None:
        self.shards = list(shards)
        self.max_open = max_open
        self.spool_dir = spool_dir
        self._indexes: dict[int, list[SampleIndex]] = {}
        self._open: OrderedDict[int, tuple[BinaryIO, Optional[str]]] = OrderedDict()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": OrderedDict(), "_indexes": {}}

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        while getattr(self, "_open", None):
            _, (f, spooled) = self._open.popitem(last=False)
            f.close()
            if spooled:
                os.unlink(spooled)

    @staticmethod
    def index_of(shard: Shard, spooled: Optional[str] = None) -> list[SampleIndex]:
        """A shard's index: its ``.idx.json`` when it has one, else one streaming pass over the shard."""
        if shard.index_location is not None:
            try:
                return [(key, {ext: (int(m[0]), int(m[1])) for ext, m in members.items()})
                        for key, members in json.loads(read_small(shard.index_location))]
            except (ShardError, json.JSONDecodeError, ValueError, TypeError) as err:
                log.warning("%s: unusable index (%s); indexing the shard itself", shard.index_location, err)
        if spooled is not None:
            with open(spooled, "rb") as f:
                return scan_tar(f, shard.location)
        if shard.location.startswith("pipe:"):
            proc = subprocess.Popen(shard.location[len("pipe:"):], shell=True, stdout=subprocess.PIPE)
            try:
                return scan_tar(proc.stdout, shard.location)
            finally:
                proc.stdout.close()
                proc.wait()
        with open_binary(shard.location) as f:
            return scan_tar(f, shard.location)

    def _file(self, s: int) -> BinaryIO:
        if s in self._open:
            self._open.move_to_end(s)
            return self._open[s][0]
        location = self.shards[s].location
        spooled = spool_pipe(location, self.spool_dir) if location.startswith("pipe:") else None
        f = open(spooled, "rb") if spooled else open_binary(location)
        self._open[s] = (f, spooled)
        if len(self._open) > self.max_open:
            _, (old, old_spool) = self._open.popitem(last=False)
            old.close()
            if old_spool:
                os.unlink(old_spool)
        return f

    def index(self, s: int) -> list[SampleIndex]:
        if s not in self._indexes:
            spooled = self._open[s][1] if s in self._open else None
            if spooled is None and self.shards[s].location.startswith("pipe:"):
                self._file(s)  # spool once, index and read from the copy
                spooled = self._open[s][1]
            self._indexes[s] = self.index_of(self.shards[s], spooled)
            expected = self.shards[s].samples
            if expected is not None and len(self._indexes[s]) != expected:
                raise ShardError(f"{self.shards[s].location}: holds {len(self._indexes[s])} samples, the manifest says "
                                 f"{expected}; the shard changed since it was written (re-run edgenext shards)")
        return self._indexes[s]

    def sample(self, s: int, j: int, exts: Optional[Sequence[str]] = None) -> tuple[str, dict[str, bytes]]:
        """Sample ``j`` of shard ``s``: its key and its members' bytes by extension (only ``exts``, when given)."""
        key, members = self.index(s)[j]
        f = self._file(s)
        out = {}
        for ext, (offset, size) in members.items():
            if exts is not None and ext not in exts:
                continue
            f.seek(offset)
            data = f.read(size)
            if len(data) != size:
                raise ShardError(f"{self.shards[s].location}: member {key}.{ext} is cut short ({len(data)} of {size} "
                                 f"bytes); the shard is truncated")
            out[ext] = data
        return key, out


class ShardSamples:
    """Global sample ``i`` of a ``ShardSet`` -> (shard, position) -> its members' bytes."""

    def __init__(self, shard_set: ShardSet, *, spool_dir: Optional[str] = None) -> None:
        self.shard_set = shard_set
        self.reader = ShardReader(shard_set.shards, spool_dir=spool_dir)
        self._starts = [0]
        for n in shard_set.sizes:
            self._starts.append(self._starts[-1] + n)
        if self._starts[-1] == 0:
            raise ShardError(f"{shard_set.source}: the shards hold no samples")

    def __len__(self) -> int:
        return self._starts[-1]

    @property
    def shard_sizes(self) -> list[int]:
        return self.shard_set.sizes

    def locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} of {len(self)}")
        s = bisect.bisect_right(self._starts, i) - 1
        return s, i - self._starts[s]

    def __getitem__(self, i: int) -> tuple[str, dict[str, bytes]]:
        return self.reader.sample(*self.locate(i))

    def key(self, i: int) -> str:
        s, j = self.locate(i)
        return self.reader.index(s)[j][0]

    def name(self, i: int, key: str) -> str:
        """``shard-location:key``: how messages name a sample."""
        return f"{self.shard_set.shards[self.locate(i)[0]].location}:{key}"

    def keys(self, exts: Sequence[str]) -> Iterator[tuple[int, str, dict[str, bytes]]]:
        """Every sample's key and the bytes of the members with these extensions only (one pass, in order)."""
        for s, shard in enumerate(self.shard_set.shards):
            for j in range(shard.samples or 0):
                key, members = self.reader.sample(s, j, exts)
                yield self._starts[s] + j, key, members


def image_member(members: dict[str, Any]) -> Optional[str]:
    """The extension of a sample's image member (None: it has none)."""
    return next((ext for ext in IMAGE_EXTENSIONS if ext in members), None)


def decode_image(data: bytes):
    """Image bytes as a fully decoded RGB PIL image (raises what PIL raises on a bad file)."""
    from PIL import Image

    from .datasets import to_rgb

    img = Image.open(io.BytesIO(data))
    img.load()
    return to_rgb(img)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
