"""Tar shards: folder -> shards -> the same samples, every way of naming shards, resumable writing,
bad shards, and each DDP process reading its own shards, every sample once per epoch."""

import io
import json
import shutil
import tarfile
import warnings

import numpy as np
import pytest
from PIL import Image

from edgenext.cli.main import main
from edgenext.data import ImageFolderDataset, SkippedSample
from edgenext.data import shard_writer
from edgenext.data.sampler import ShardBatchSampler
from edgenext.data.shard_datasets import ShardImageDataset
from edgenext.data.shards import ShardError, expand_braces, looks_like_shards, resolve_shards

CLASSES = ("ant", "bee", "cat")


def pixels_by_label(dataset, class_names):
    """Every sample as (class name, pixel bytes), sorted: what a dataset holds, whatever its order."""
    out = []
    for i in range(len(dataset)):
        image, label = dataset[i]
        out.append((class_names[label], np.asarray(image).tobytes()))
    return sorted(out)


@pytest.fixture(scope="module")
def written(tmp_path_factory, folder_writer):
    root = tmp_path_factory.mktemp("shards")
    folder_writer(root / "folder", classes=CLASSES, per_class=5, size=24)
    assert main(["shards", str(root / "folder"), str(root / "out"), "--shard-size", "4", "--no-progress"]) == 0
    return root


def test_folder_to_shards_gives_the_same_images_and_labels(written):
    manifest = json.loads((written / "out" / "manifest.json").read_text())
    assert manifest["class_names"] == list(CLASSES) and manifest["splits"]["train"]["samples"] == 15
    assert [s["samples"] for s in manifest["splits"]["train"]["shards"]] == [4, 4, 4, 3]
    for split in ("train", "val"):
        folder = ImageFolderDataset(written / "folder" / split)
        shards = ShardImageDataset(resolve_shards(str(written / "out"), split))
        assert shards.class_names == folder.class_names and len(shards) == len(folder)
        assert pixels_by_label(shards, shards.class_names) == pixels_by_label(folder, folder.class_names)
    for entry in manifest["splits"]["val"]["shards"]:  # the recorded checksums are the files'
        assert shard_writer.sha256_file(str(written / "out" / entry["name"])) == entry["sha256"]


def test_shards_are_dealt_a_shuffled_mix_of_classes(written):
    first = ShardImageDataset(resolve_shards(str(written / "out"), "train"))
    labels = [first[i][1] for i in range(4)]  # shard 0: from a class-sorted folder, not one class
    assert len(set(labels)) > 1


def test_every_way_of_naming_shards_reads_the_same_samples(written, tmp_path):
    out = written / "out"
    reference = pixels_by_label(ShardImageDataset(resolve_shards(str(out), "train")), list(CLASSES))
    pattern = str(out / "train-{000000..000003}.tar")
    assert expand_braces(pattern)[-1].endswith("train-000003.tar") and looks_like_shards(pattern)
    # a pattern: the manifest beside the shards gives the counts, the class names and the indexes
    assert pixels_by_label(ShardImageDataset(resolve_shards(pattern)), list(CLASSES)) == reference
    # the manifest's path, and a file:// URL of the folder
    assert pixels_by_label(ShardImageDataset(resolve_shards(str(out / "manifest.json"))), list(CLASSES)) == reference
    assert pixels_by_label(ShardImageDataset(resolve_shards(f"file://{out}")), list(CLASSES)) == reference
    # pipe: a command writing the shard to stdout (no manifest, no index: indexed from the stream)
    piped = resolve_shards("pipe:cat " + str(out / "train-{000000..000003}.tar"))
    assert piped.sizes == [4, 4, 4, 3]
    assert pixels_by_label(ShardImageDataset(piped, class_names=list(CLASSES)), list(CLASSES)) == reference
    # an object store through fsspec (its in-memory file system stands in for s3:// / gs:// / https://)
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    for path in out.iterdir():
        fs.pipe(f"/shards-test/{path.name}", path.read_bytes())
    remote = resolve_shards("memory://shards-test/")
    assert remote.shards[0].location == "memory://shards-test/train-000000.tar"
    assert pixels_by_label(ShardImageDataset(remote), list(CLASSES)) == reference
    with pytest.raises(ShardError, match="memory://elsewhere/manifest.json: not found"):
        resolve_shards("memory://elsewhere/")
    # a foreign shard: written by plain tarfile, no manifest or index, class names given
    foreign = tmp_path / "foreign-000000.tar"
    with tarfile.open(foreign, "w") as tar:
        for key, label in (("x/one", 2), ("x/two", 0)):
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (label * 50, 0, 0)).save(buf, format="PNG")
            for ext, data in (("png", buf.getvalue()), ("cls", str(label).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with pytest.warns(UserWarning, match="naming the 3 classes by index"):
        ds = ShardImageDataset(resolve_shards(str(foreign)))
    assert [ds[i][1] for i in range(2)] == [2, 0] and np.asarray(ds[0][0])[0, 0, 0] == 100


def test_an_interrupted_write_continues_to_the_same_bytes(written, tmp_path, monkeypatch):
    real, calls = shard_writer._write_shard, []

    def crash_on_third(path, members):
        calls.append(path.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, members)

    monkeypatch.setattr(shard_writer, "_write_shard", crash_on_third)
    args = ["shards", str(written / "folder"), str(tmp_path / "out"), "--shard-size", "4", "--no-progress"]
    assert main(args) == 130
    assert (tmp_path / "out" / ".progress.json").is_file() and not (tmp_path / "out" / "manifest.json").exists()
    monkeypatch.setattr(shard_writer, "_write_shard", lambda path, members: calls.append(path.name) or real(path, members))
    assert main(args) == 0
    assert calls.count("train-000000.tar") == 1 and calls.count("train-000002.tar") == 2  # kept, then redone
    for path in (written / "out").iterdir():
        assert (tmp_path / "out" / path.name).read_bytes() == path.read_bytes(), path.name
    assert main(args[:-3] + ["--shard-size", "5"]) == 2  # other settings over finished shards: refused


def test_truncated_shard_and_corrupt_image_are_reported(written, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(written / "out", out)
    data = (out / "train-000001.tar").read_bytes()
    (out / "train-000001.tar").write_bytes(data[: len(data) // 3])
    ds = ShardImageDataset(resolve_shards(str(out), "train"))
    with pytest.raises(ShardError, match="train-000001.tar: member .* is cut short"):
        [ds[i] for i in range(len(ds))]
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(out / "train-000001.tar", bare / "train-000001.tar")
    with pytest.raises(ShardError, match="train-000001.tar: not a readable tar file"):
        resolve_shards(str(bare / "train-000001.tar"))
    # a corrupt image inside a good shard: skipped with a warning, like a bad file in a folder
    bad = tmp_path / "bad-000000.tar"
    with tarfile.open(bad, "w") as tar:
        for name, data in (("k.jpg", b"not a jpeg"), ("k.cls", b"1")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = ShardImageDataset(resolve_shards(str(bad)), class_names=["a", "b"])
    with pytest.warns(UserWarning, match="skipping unreadable sample .*bad-000000.tar:k"):
        image, label = ds[0]
    assert isinstance(image, SkippedSample) and label == 1
    with pytest.raises(ShardError, match="no manifest.json there"):
        resolve_shards(str(tmp_path))


@pytest.mark.parametrize("sizes,scales", [([6] * 8, None), ([5, 7, 6, 6, 5, 7], (24, 32, 40))])
def test_each_process_reads_its_own_shards_and_every_sample_once(sizes, scales):
    starts = np.cumsum([0] + sizes)
    shard_of = {i: s for s in range(len(sizes)) for i in range(starts[s], starts[s + 1])}
    for epoch in range(3):
        seen, shards, lengths = [], [], []
        for rank in range(2):
            sampler = ShardBatchSampler(sizes, 4, base_size=32, sizes=scales, seed=7, rank=rank, world_size=2, window=2)
            sampler.set_epoch(epoch)
            batches = list(sampler)
            lengths.append(len(batches))
            assert len(batches) == len(sampler)
            mine = [i for b in batches for i, _ in b]
            assert {shard_of[i] for i in mine} <= set(sampler.shards_of(rank))
            seen += mine
            shards.append(set(sampler.shards_of(rank)))
        assert lengths[0] == lengths[1]  # DDP: the same number of steps on both
        assert not shards[0] & shards[1]
        assert len(seen) == len(set(seen))  # never twice
        if len(set(sizes)) == 1:
            assert sorted(seen) == list(range(sum(sizes)))  # equal shards: every sample exactly once
        else:
            assert sum(sizes) - len(seen) <= max(sizes)  # the longer stream's tail sits the epoch out
    first = ShardBatchSampler(sizes, 4, base_size=32, seed=7, world_size=2)
    second = ShardBatchSampler(sizes, 4, base_size=32, seed=7, world_size=2)
    second.set_epoch(1)
    assert first.shards_of(0) != second.shards_of(0) or first.shards_of(1) != second.shards_of(1)
    with pytest.raises(ValueError, match="1 shard.* cannot give each of 2 processes"):
        ShardBatchSampler([10], 2, base_size=32, world_size=2)
