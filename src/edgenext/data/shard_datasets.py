"""Classification samples from tar shards: an image member and a ``.cls`` class index per sample."""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

from PIL import Image
from torch.utils.data import Dataset

from .datasets import Index, SkippedSample, TransformFactory, _PerSizeTransform, _split_index
from .shards import ShardError, ShardSamples, ShardSet, decode_image, image_member

#: what a bad sample raises while it is decoded (PIL raises SyntaxError for some malformed headers)
BAD_SAMPLE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class ShardImageDataset(Dataset):
    """``ImageFolderDataset``'s counterpart for shards: ``dataset[i]`` / ``dataset[(i, size)]`` is ``(image, label)``.

    Class names come from the shards' manifest (``class_names``), else ``class_names`` given, else the
    indices as names (``num_classes`` of them, else 1 + the largest index found... which needs a pass
    over the labels: give the names instead). A sample whose image does not decode, or that has no
    image member, becomes a ``SkippedSample`` (one warning each) like an unreadable file in a folder;
    one without a ``.cls`` member is an error naming it (a label cannot be guessed).
    """

    def __init__(
        self,
        shard_set: ShardSet,
        transform_factory: Optional[TransformFactory] = None,
        *,
        default_size: int = 224,
        class_names: Optional[Sequence[str]] = None,
        spool_dir: Optional[str] = None,
    ) -> None:
        self.samples = ShardSamples(shard_set, spool_dir=spool_dir)
        names = class_names if class_names is not None else shard_set.meta.get("class_names")
        if names is None:
            largest = max(self._label(i, members.get("cls"), key) for i, key, members in self.samples.keys(("cls",)))
            names = [str(c) for c in range(largest + 1)]
            warnings.warn(f"{shard_set.source}: no class names in a manifest; naming the {len(names)} classes by "
                          f"index (write the shards with edgenext shards to keep the names)", stacklevel=2)
        self.class_names = list(names)
        self.per_size_transform = _PerSizeTransform(transform_factory, default_size)

    @property
    def shard_sizes(self) -> list[int]:
        """Samples per shard, in order: what ``ShardBatchSampler`` deals out to the processes."""
        return self.samples.shard_sizes

    def __len__(self) -> int:
        return len(self.samples)

    def _label(self, i: int, data: Optional[bytes], key: str) -> int:
        if data is None:
            raise ShardError(f"{self.samples.name(i, key)}: the sample has no .cls member (its class index); "
                             f"classification shards need one")
        try:
            return int(data.decode().strip())
        except (UnicodeDecodeError, ValueError):
            raise ShardError(f"{self.samples.name(i, key)}.cls: {data[:40]!r} is not a class index") from None

    def __getitem__(self, index: Index) -> tuple[Any, int]:
        i, size = _split_index(index)
        key, members = self.samples[i]
        label = self._label(i, members.get("cls"), key)
        if not 0 <= label < len(self.class_names):
            raise ShardError(f"{self.samples.name(i, key)}.cls: class {label} is outside 0..{len(self.class_names) - 1} "
                             f"({len(self.class_names)} classes in the manifest)")
        ext = image_member(members)
        name = self.samples.name(i, key)
        try:
            if ext is None:
                raise ValueError(f"no image member (found {', '.join(sorted(members)) or 'none'})")
            img = decode_image(members[ext])
        except BAD_SAMPLE_ERRORS as err:
            reason = f"{type(err).__name__}: {err}"
            warnings.warn(f"skipping unreadable sample {name} ({reason})", stacklevel=2)
            return SkippedSample(name, reason), label
        return self.per_size_transform(img, size), label

