"""Detection and segmentation data as tar shards: COCO / paired folders -> shards -> the same targets."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from edgenext.cli.main import main
from edgenext.data.shards import resolve_shards
from edgenext.dense.data import CocoDetection, PairedSegmentation
from edgenext.dense.data.shards import ShardDetection, ShardSegmentation


def _coco(root):
    images = root / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"{i}.png" for i in range(5)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(images / name)
    data = {
        "images": [dict(id=100 + i, file_name=n, width=40, height=30) for i, n in enumerate(names)],
        "categories": [dict(id=7, name="dog"), dict(id=3, name="cat")],
        "annotations": [
            dict(id=1, image_id=100, category_id=3, bbox=[2, 3, 10, 5], iscrowd=0, area=50),
            dict(id=2, image_id=101, category_id=7, bbox=[5, 5, 10, 10], iscrowd=0, area=100),
            dict(id=3, image_id=101, category_id=3, bbox=[0, 0, 40, 30], iscrowd=1, area=1200),
            dict(id=4, image_id=102, category_id=7, bbox=[30, 20, 20, 20], iscrowd=0, area=400),  # clipped
            dict(id=5, image_id=104, category_id=3, bbox=[1, 1, 4, 4], iscrowd=0, area=16),
        ],
    }
    (root / "ann.json").write_text(json.dumps(data))
    return images, root / "ann.json"


def _plain(target):
    return {k: (v.as_subclass(torch.Tensor) if isinstance(v, torch.Tensor) else v) for k, v in target.items()}


def test_coco_to_shards_gives_the_same_images_targets_and_ground_truth(tmp_path):
    images, ann = _coco(tmp_path)
    args = ["shards", "--task", "detect", "--train-images", str(images), "--train-ann", str(ann),
            "--val-images", str(images), "--val-ann", str(ann), str(tmp_path / "out"), "--shard-size", "2", "--no-progress"]
    assert main(args) == 0
    coco = CocoDetection(images, ann)
    shards = ShardDetection(resolve_shards(str(tmp_path / "out"), "val"))
    assert shards.class_names == coco.class_names and shards.label_to_category_id == coco.label_to_category_id
    assert {k: v for k, v in shards.stats.items()} == coco.stats
    assert shards.summary().startswith("shards out: 5 images (1 without boxes")
    by_id = {coco[i][1]["image_id"]: coco[i] for i in range(len(coco))}
    assert len(shards) == len(coco) and len(shards.shard_sizes) == 3
    for i in range(len(shards)):
        image, target = shards[i]
        ref_image, ref_target = by_id[target["image_id"]]
        assert np.array_equal(np.asarray(image), np.asarray(ref_image))
        got, want = _plain(target), _plain(ref_target)
        assert got.keys() == want.keys() and all(
            torch.equal(got[k], want[k]) if isinstance(got[k], torch.Tensor) else got[k] == want[k] for k in got)
    key = lambda a: a["id"]  # noqa: E731
    assert sorted(shards.ground_truth().dataset["annotations"], key=key) == \
        sorted(coco.ground_truth().dataset["annotations"], key=key)
    # the training split reads the same way, through the pattern of its shards
    train = ShardDetection(resolve_shards(str(tmp_path / "out" / "train-{000000..000002}.tar")))
    assert sorted(t["image_id"] for _, t in (train[i] for i in range(len(train)))) == sorted(by_id)


def test_paired_masks_to_shards_give_the_same_pairs(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(images / f"{i}.png")
        m = rng.integers(0, 4, (20, 24)).astype(np.uint8)
        m[0, :5] = 255
        Image.fromarray(m).save(masks / f"{i}.png")
    args = ["shards", "--task", "segment", "--train-images", str(images), "--train-masks", str(masks),
            str(tmp_path / "out"), "--shard-size", "2", "--no-progress"]
    assert main(args) == 0
    paired = PairedSegmentation(images, masks)
    shards = ShardSegmentation(resolve_shards(str(tmp_path / "out"), "train"))
    assert shards.num_classes == paired.num_classes == 4 and shards.class_names == paired.class_names
    want = sorted((np.asarray(im).tobytes(), m.numpy().tobytes()) for im, m in (paired[i] for i in range(5)))
    got = sorted((np.asarray(im).tobytes(), m.numpy().tobytes()) for im, m in (shards[i] for i in range(5)))
    assert got == want
    with pytest.raises(ValueError, match="no 'val' split"):
        resolve_shards(str(tmp_path / "out"), "val")


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_dense_training_data_come_from_shards_given_as_data(task, tmp_path):
    from edgenext.tasks import build_task, load_config

    if task == "detect":
        images, ann = _coco(tmp_path)
        files = ["--train-images", str(images), "--train-ann", str(ann), "--val-images", str(images), "--val-ann", str(ann)]
    else:
        for folder in ("images", "masks"):
            (tmp_path / folder).mkdir()
        for i in range(3):
            Image.new("RGB", (16, 12)).save(tmp_path / "images" / f"{i}.png")
            Image.fromarray(np.full((12, 16), i, dtype=np.uint8)).save(tmp_path / "masks" / f"{i}.png")
        files = [f"--{s}-{k}" if j == 0 else str(tmp_path / k) for s in ("train", "val") for k in ("images", "masks")
                 for j in (0, 1)]
    assert main(["shards", "--task", task, *files, str(tmp_path / "out"), "--no-progress"]) == 0
    cfg = load_config(None, {"task": task, "data": str(tmp_path / "out"), "model": "edgenext_xx_small",
                             "backbone_weights": None})
    spec = build_task(cfg)
    spec.check()  # a shard folder is not an image folder: no path complaints
    data = spec.build_data()
    kind = ShardDetection if task == "detect" else ShardSegmentation
    assert isinstance(data.train, kind) and isinstance(data.val, kind) and len(data.train) == (5 if task == "detect" else 3)
    assert data.class_names[-1] == ("dog" if task == "detect" else "2")
