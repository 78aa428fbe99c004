"""What ``edgenext train --task segment`` trains on besides VOC's own masks (SBD when present, COCO's
images of VOC's classes), and what a first run on real data meets: offline backbone weights."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from edgenext.cli.main import main
from edgenext.dense.data import VOC_CLASSES, VOCSegmentation
from edgenext.dense.data.coco_voc import COCO_TO_VOC, CocoVOCSegmentation

#: COCO 2017's ids and names of the categories the tiny folder uses; "stop sign" is not a VOC class
CATEGORIES = [dict(id=1, name="person"), dict(id=3, name="car"), dict(id=18, name="dog"),
              dict(id=63, name="couch"), dict(id=13, name="stop sign")]
PERSON, CAR, DOG, SOFA = (VOC_CLASSES.index(n) for n in ("person", "car", "dog", "sofa"))


def rect(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def region(height, width, rows, cols):
    out = np.zeros((height, width), dtype=np.uint8)
    out[rows, cols] = 1
    return out


def compressed_rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def uncompressed_rle(mask):
    """COCO's crowd format: run lengths over the column-major pixels, starting with a run of zeros."""
    counts, value, run = [], 0, 0
    for v in mask.flatten(order="F"):
        if v != value:
            counts.append(run)
            value, run = v, 0
        run += 1
    return {"size": list(mask.shape), "counts": counts + [run]}


def ann(i, image_id, category_id, segmentation, crowd=0):
    return dict(id=i, image_id=image_id, category_id=category_id, segmentation=segmentation, iscrowd=crowd,
                bbox=[0, 0, 1, 1], area=1)


def write_coco(root, splits=("train",)):
    """A COCO 2017 folder: a.jpg (48x40) with polygon, compressed-RLE and non-VOC objects, b.jpg (32x24)
    with a crowd region under a couch, and three images that must be skipped (a non-VOC object only,
    no annotation, a crowd region only)."""
    sizes = {"a.jpg": (48, 40), "b.jpg": (32, 24), "c.jpg": (20, 16), "d.jpg": (20, 16), "e.jpg": (20, 16)}
    annotations = [
        ann(1, 1, 1, rect(4, 4, 20, 30)),  # person
        ann(2, 1, 3, rect(14, 20, 30, 36)),  # car, under the person where they overlap
        ann(3, 1, 18, compressed_rle(region(40, 48, slice(2, 9), slice(30, 45)))),  # dog
        ann(4, 1, 13, rect(36, 28, 46, 38)),  # stop sign: background
        ann(5, 2, 1, uncompressed_rle(region(24, 32, slice(0, 13), slice(0, 17))), crowd=1),
        ann(6, 2, 63, rect(8, 6, 28, 20)),  # couch, over the crowd region
        ann(7, 3, 13, rect(2, 2, 10, 10)),
        ann(8, 5, 1, uncompressed_rle(region(16, 20, slice(0, 8), slice(0, 8))), crowd=1),
    ]
    data = dict(images=[dict(id=i + 1, file_name=n, width=w, height=h) for i, (n, (w, h)) in enumerate(sizes.items())],
                annotations=annotations, categories=CATEGORIES)
    (root / "annotations").mkdir(parents=True)
    for split in splits:
        (root / f"{split}2017").mkdir()
        for name, size in sizes.items():
            Image.new("RGB", size, (120, 60, 30)).save(root / f"{split}2017" / name)
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return root


def write_voc(root, sbd=False):
    """A plain VOC2012 folder: two training and one validation image, palette masks of VOC classes."""
    voc = root / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    for i, name in enumerate(("a", "b", "c")):
        Image.new("RGB", (48, 40), (30 * i, 90, 20)).save(voc / "JPEGImages" / f"{name}.jpg")
        values = np.zeros((40, 48), dtype=np.uint8)
        values[5:30, 5 + 5 * i:40] = (PERSON, 1, 12)[i]
        values[4, 4:41] = 255
        mask = Image.fromarray(values, mode="P")
        mask.putpalette([(k * 37) % 256 for k in range(768)])
        mask.save(voc / "SegmentationClass" / f"{name}.png")
    if sbd:
        (voc / "SegmentationClassAug").mkdir()
        Image.fromarray(np.full((40, 48), 3, dtype=np.uint8)).save(voc / "SegmentationClassAug" / "a.png")
    (voc / "ImageSets/Segmentation/train.txt").write_text("a\nb\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text("c\n")
    return root


def mask_of(dataset, i):
    return dataset[i][1].as_subclass(torch.Tensor).numpy()


def test_the_category_map_is_ml_cvnets_one_to_one_onto_voc_s_20_classes():
    assert sorted(index for _, index in COCO_TO_VOC.values()) == list(range(1, 21))
    by_voc = {VOC_CLASSES[index]: (cid, name) for cid, (name, index) in COCO_TO_VOC.items()}
    assert by_voc["aeroplane"] == (5, "airplane") and by_voc["sofa"] == (63, "couch")
    assert by_voc["tvmonitor"] == (72, "tv") and by_voc["person"] == (1, "person")


def test_coco_masks_are_rendered_in_voc_classes_at_their_pixels(tmp_path):
    ds = CocoVOCSegmentation(write_coco(tmp_path / "coco"))
    assert [image.name for image, _ in ds.samples] == ["a.jpg", "b.jpg"]  # c, d, e: no non-crowd VOC object
    assert ds.stats == dict(images=5, added=2, skipped_without_voc=3, unusable_annotations=0, missing_images=0)
    assert ds.num_classes == 21 and ds.class_names == list(VOC_CLASSES)
    assert "2 COCO 2017 train images" in ds.summary()
    a = mask_of(ds, 0)
    assert a.shape == (40, 48) and a.dtype == np.int64
    assert a[10, 10] == PERSON and a[33, 25] == CAR
    assert a[25, 17] == PERSON  # person and car overlap: the earlier annotation keeps the pixel
    assert a[5, 35] == DOG  # compressed RLE
    assert a[33, 40] == 0 and a[38, 2] == 0  # a stop sign, and nothing
    b = mask_of(ds, 1)
    assert b.shape == (24, 32)
    assert b[3, 3] == 255  # the crowd region, where no instance is: ignored
    assert b[10, 12] == SOFA and b[18, 24] == SOFA  # the couch keeps its pixels inside the crowd region too
    assert b[22, 30] == 0
    assert set(np.unique(b)) == {0, SOFA, 255}


def test_coco_with_other_category_ids_is_refused(tmp_path):
    root = write_coco(tmp_path / "coco")
    ann_file = root / "annotations/instances_train2017.json"
    data = json.loads(ann_file.read_text())
    data["categories"][0]["name"] = "cat"
    ann_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="not COCO 2017's categories.*id 1 is 'cat'"):
        CocoVOCSegmentation(root)


def test_sbd_auto_uses_sbd_when_present_and_trains_without_it_otherwise(tmp_path):
    plain = write_voc(tmp_path / "plain")
    ds = VOCSegmentation(plain, "train", sbd="auto", num_classes=21)
    assert ds.sbd_found is False and [m.parent.name for _, m in ds.samples] == ["SegmentationClass"] * 2
    with pytest.raises(ValueError, match="SBD masks not found; sbd=true needs"):
        VOCSegmentation(plain, "train", sbd=True, num_classes=21)
    with pytest.raises(ValueError, match='sbd must be true, false or "auto"'):
        VOCSegmentation(plain, "train", sbd="yes", num_classes=21)
    with_sbd = VOCSegmentation(write_voc(tmp_path / "sbd", sbd=True), "train", sbd="auto", num_classes=21)
    assert with_sbd.sbd_found is True and with_sbd.samples[0][1].parent.name == "SegmentationClassAug"


TINY = ["--model", "edgenext_xx_small", "--input-size", "64", "--epochs", "1", "--batch-size", "2", "--workers", "0",
        "--no-progress", "--no-amp", "--set", "ema=false", "--set", "tensorboard=false", "--set", "plot=false",
        "--set", "threads=1"]


def test_default_voc_recipe_trains_on_a_plain_voc_folder_with_the_coco_supplement(tmp_path, capsys):
    voc, coco, out = write_voc(tmp_path / "voc"), write_coco(tmp_path / "coco"), tmp_path / "run"
    assert main(["train", "--task", "segment", "--data", str(voc), "--output", str(out), *TINY,
                 "--set", "backbone_weights=null", "--set", f"coco_supplement={coco}"]) == 0
    err = capsys.readouterr().err
    assert "sbd: absent" in err and "80.2 mIoU needs SBD's masks" in err  # the recipe's sbd: auto
    assert "coco supplement: 2 COCO 2017 train images of VOC's 20 classes added" in err
    assert "4 train / 1 val images" in err  # VOC's 2 and COCO's 2
    assert (out / "best.pth").is_file()


def test_sbd_asked_for_explicitly_is_an_error_when_absent(tmp_path, capsys):
    voc, out = write_voc(tmp_path / "voc"), tmp_path / "run"
    assert main(["train", "--task", "segment", "--data", str(voc), "--output", str(out), *TINY,
                 "--set", "backbone_weights=null", "--set", "data_kwargs={sbd: true}"]) == 2
    assert "SBD masks not found" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--task", "classify"], "a setting of --task segment, which classification does not read"),
    (["--task", "detect"], "a setting of --task segment, which --task detect does not read"),
    (["--task", "segment"], "the digit scenes have their own classes"),
])
def test_the_coco_supplement_is_refused_where_it_would_be_ignored(tmp_path, capsys, args, message):
    coco, out = write_coco(tmp_path / "coco"), tmp_path / "run"
    assert main(["train", *args, "--output", str(out), "--set", f"coco_supplement={coco}", "--no-progress"]) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_offline_default_recipes_fail_before_writing_and_name_the_way_without_weights(tmp_path, capsys, offline, task):
    data = write_coco(tmp_path / "coco", splits=("train", "val")) if task == "detect" else write_voc(tmp_path / "voc")
    out = tmp_path / "run"
    assert main(["train", "--task", task, "--data", str(data), "--output", str(out), "--no-progress",
                 "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "backbone_weights=pretrained: could not download https://" in err
    assert "--set backbone_weights=null" in err
    assert not out.exists()
    if task == "detect":  # the way named works
        assert main(["train", "--task", task, "--data", str(data), "--output", str(out), *TINY,
                     "--set", "backbone_weights=null"]) == 0
        assert (out / "best.pth").is_file()
