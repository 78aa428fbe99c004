"""Dense-task data: COCO detection, VOC / paired segmentation, paired transforms, collate, digit scenes."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors

from edgenext.data import DigitsDataset, SkippedSample
from edgenext.data.datasets import digits_split
from edgenext.dense.data import (
    CocoDetection,
    DetectionTransform,
    DigitScenes,
    MaskFormatError,
    PairedSegmentation,
    SegmentationTransform,
    VOCSegmentation,
    detection_collate,
    find_coco2017,
    segmentation_collate,
)



def _write_coco(root):
    """A small COCO folder with every awkward case; returns (images_dir, ann_file)."""
    images = root / "images"
    images.mkdir(parents=True)
    Image.new("L", (40, 30), 90).save(images / "gray.png")
    Image.fromarray((np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50)).save(images / "deep.png")
    pal = Image.new("P", (40, 30), 1)
    pal.putpalette([0, 0, 0, 200, 10, 10] + [0, 0, 0] * 254)
    pal.save(images / "pal.png")
    Image.new("RGBA", (40, 30), (0, 255, 0, 128)).save(images / "rgba.png")
    (images / "corrupt.jpg").write_bytes(b"not a jpeg at all")
    Image.new("RGB", (40, 30), (5, 5, 5)).save(images / "empty.png")
    Image.new("RGB", (20, 20), (5, 5, 5)).save(images / "resized.png")  # the JSON says 40x30
    names = ["gray.png", "deep.png", "pal.png", "rgba.png", "missing.jpg", "corrupt.jpg", "empty.png", "resized.png"]
    data = {
        "images": [dict(id=10 + i, file_name=n, width=40, height=30) for i, n in enumerate(names)],
        "categories": [dict(id=7, name="dog"), dict(id=3, name="cat")],
        "annotations": [
            dict(id=1, image_id=10, category_id=3, bbox=[2, 3, 10, 5], iscrowd=0),
            dict(id=2, image_id=11, category_id=7, bbox=[5, 5, 10, 10], iscrowd=0),
            dict(id=3, image_id=11, category_id=3, bbox=[0, 0, 40, 30], iscrowd=1),
            dict(id=4, image_id=12, category_id=7, bbox=[30, 20, 20, 20], iscrowd=0),  # partly outside
            dict(id=5, image_id=13, category_id=3, bbox=[5, 5, 0, 4], iscrowd=0),  # zero area
            dict(id=6, image_id=13, category_id=7, bbox=[1, 1, 4, 4]),
            dict(id=7, image_id=14, category_id=3, bbox=[1, 1, 4, 4], iscrowd=0),
            dict(id=8, image_id=15, category_id=3, bbox=[1, 1, 4, 4], iscrowd=0),
            dict(id=9, image_id=17, category_id=3, bbox=[1, 1, 4, 4], iscrowd=0),
        ],
    }
    ann = root / "instances.json"
    ann.write_text(json.dumps(data))
    return images, ann


@pytest.fixture
def coco(tmp_path):
    images, ann = _write_coco(tmp_path)
    with pytest.warns(UserWarning, match="1 of 8 image files are missing"):
        ds = CocoDetection(images, ann)
    return ds


def test_coco_categories_are_mapped_to_contiguous_labels_and_back(coco):
    assert coco.num_classes == 3
    assert coco.class_names == ["background", "cat", "dog"]
    assert coco.label_to_category_id == {1: 3, 2: 7}
    assert coco.category_id_to_label == {3: 1, 7: 2}


def test_coco_counts_every_decision(coco):
    assert coco.stats == dict(images=8, annotations=9, boxes=7, crowd=1, clipped=1, empty_dropped=1,
                              orphan_annotations=0, images_without_boxes=1, missing_files=1)
    assert "1 crowd" in coco.summary() and "1 empty" in coco.summary()


def test_coco_boxes_are_xyxy_clipped_and_crowd_and_empty_are_left_out(coco):
    expected = {
        0: ([[2, 3, 12, 8]], [1]),
        1: ([[5, 5, 15, 15]], [2]),  # the crowd box is not a target
        2: ([[30, 20, 40, 30]], [2]),  # clipped to the 40x30 image
        3: ([[1, 1, 5, 5]], [2]),  # the zero-area box is dropped
        6: (np.zeros((0, 4)), []),  # kept, with empty targets
    }
    for i, (boxes, labels) in expected.items():
        image, target = coco[i]
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (40, 30)
        assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and tuple(target["boxes"].canvas_size) == (30, 40)
        assert torch.equal(target["boxes"].as_subclass(torch.Tensor), torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        assert target["labels"].tolist() == labels and target["labels"].dtype == torch.int64
        assert target["image_id"] == 10 + i


def test_coco_grayscale_16bit_palette_and_alpha_images_load(coco):
    gray, deep, pal, rgba = (coco[i][0] for i in range(4))
    assert gray.getpixel((0, 0)) == (90, 90, 90)
    assert deep.getpixel((0, 0)) == (0, 0, 0) and deep.getpixel((39, 29)) == (255, 255, 255)  # scaled, not clipped
    assert pal.getpixel((0, 0)) == (200, 10, 10)
    assert rgba.getpixel((0, 0)) == (127, 255, 127)  # half-transparent green over white


def test_coco_missing_corrupt_and_wrong_size_images_are_skipped_and_counted(coco):
    for i, reason in ((4, "FileNotFoundError"), (5, "UnidentifiedImageError"), (7, "differs from the annotation")):
        with pytest.warns(UserWarning, match="skipping image"):
            image, _ = coco[i]
        assert isinstance(image, SkippedSample) and reason in image.reason
    coco.transform = DetectionTransform(64, train=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(DataLoader(coco, batch_size=8, collate_fn=detection_collate))
    (images, targets, skipped), = batches
    assert skipped == 3 and images.shape == (5, 3, 64, 64) and len(targets) == 5
    assert images.dtype == torch.float32 and 0.0 <= images.min() and images.max() <= 1.0
    # resized from 40x30 to 64x64: x scales by 1.6, y by 64/30
    assert torch.allclose(targets[0]["boxes"], torch.tensor([[2 * 1.6, 3 * 64 / 30, 12 * 1.6, 8 * 64 / 30]]))
    assert targets[4]["boxes"].shape == (0, 4) and targets[4]["labels"].shape == (0,)
    assert [t["image_id"] for t in targets] == [10, 11, 12, 13, 16] and targets[0]["orig_size"] == (30, 40)


def test_coco_unknown_category_is_an_error_naming_the_file_and_the_id(tmp_path):
    images, _ = _write_coco(tmp_path)
    bad = tmp_path / "bad_instances.json"
    bad.write_text(json.dumps({
        "images": [dict(id=1, file_name="gray.png", width=40, height=30)],
        "categories": [dict(id=3, name="cat")],
        "annotations": [dict(id=5, image_id=1, category_id=42, bbox=[1, 1, 4, 4], iscrowd=0)],
    }))
    with pytest.raises(ValueError, match=r"bad_instances\.json.*category_id 42"):
        CocoDetection(images, bad)


def test_coco_multiscale_index_pair_sets_the_output_size(coco):
    coco.transform = DetectionTransform(64, train=False)
    assert coco[0][0].shape == (3, 64, 64)
    image, target = coco[(0, 32)]
    assert image.shape == (3, 32, 32) and torch.allclose(target["boxes"], torch.tensor([[1.6, 3.2, 9.6, 8.5333]]), atol=1e-3)


def test_find_coco2017_names_what_is_missing(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text("{}")
    with pytest.raises(ValueError, match=r"missing train2017/, annotations/instances_train2017\.json"):
        find_coco2017(tmp_path)
    found = find_coco2017(tmp_path, splits=("val",))
    assert found == {"val": (tmp_path / "val2017", tmp_path / "annotations" / "instances_val2017.json")}




def _palette_mask(values):
    mask = Image.fromarray(np.asarray(values, dtype=np.uint8), mode="P")
    mask.putpalette([(i * 37) % 256 for i in range(768)])
    return mask


def _mask_values(h=30, w=40):
    m = np.zeros((h, w), dtype=np.uint8)
    m[5:15, 5:20] = 1
    m[20:28, 25:38] = 15
    m[4, 4:21] = 255  # a VOC-style border
    return m


@pytest.fixture
def voc_root(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    for name in ("a", "b", "c"):
        Image.new("RGB", (40, 30), (100, 20, 20)).save(voc / "JPEGImages" / f"{name}.jpg")
        Image.fromarray(_mask_values()).save(voc / "SegmentationClassAug" / f"{name}.png")
    _palette_mask(_mask_values()).save(voc / "SegmentationClass" / "a.png")
    _palette_mask(np.where(_mask_values() == 15, 3, _mask_values())).save(voc / "SegmentationClass" / "b.png")
    (voc / "ImageSets/Segmentation/train.txt").write_text("a\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text("b\n")
    return tmp_path


def test_voc_palette_masks_are_class_indices_and_num_classes_is_inferred(voc_root):
    ds = VOCSegmentation(voc_root, "train")
    assert len(ds) == 1 and ds.num_classes == 16
    assert "largest class index 15" in ds.num_classes_source and "1 masks" in ds.num_classes_source
    image, mask = ds[0]
    assert image.size == (40, 30) and isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64
    assert torch.equal(mask.as_subclass(torch.Tensor), torch.from_numpy(_mask_values().astype(np.int64)))
    val = VOCSegmentation(voc_root / "VOCdevkit" / "VOC2012", "val", num_classes=21)
    assert val.num_classes_source == "given: 21 classes" and val.class_names[15] == "person"
    assert set(torch.unique(val[0][1]).tolist()) == {0, 1, 3, 255}


def test_voc_sbd_masks_extend_training_without_validation_ids(voc_root):
    ds = VOCSegmentation(voc_root, "train", sbd=True, num_classes=21)
    assert sorted(p.stem for p, _ in ds.samples) == ["a", "c"]
    assert all(m.parent.name == "SegmentationClassAug" for _, m in ds.samples)
    assert ds.stats["val_ids_excluded"] == 1
    with pytest.raises(ValueError, match="available splits: .*train"):
        VOCSegmentation(voc_root, "trainval")


def test_voc_missing_image_is_announced_then_skipped(voc_root):
    (voc_root / "VOCdevkit/VOC2012/JPEGImages/a.jpg").unlink()
    with pytest.warns(UserWarning, match="1 of 1 images of the train split are missing"):
        ds = VOCSegmentation(voc_root, "train", num_classes=21)
    with pytest.warns(UserWarning, match="skipping sample"):
        image, _ = ds[0]
    assert isinstance(image, SkippedSample) and "a.jpg" in image.path


@pytest.fixture
def paired(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    Image.new("L", (40, 30), 50).save(images / "gray.png")
    Image.fromarray(np.full((30, 40), 40000, dtype=np.uint16)).save(images / "deep.png")
    Image.new("RGBA", (40, 30), (0, 0, 255, 255)).save(images / "alpha.png")
    Image.new("P", (40, 30), 0).save(images / "pal.png")
    for i, stem in enumerate(("gray", "deep", "alpha", "pal")):
        m = np.zeros((30, 40), dtype=np.uint8)
        m[:10, :10] = i + 1
        Image.fromarray(m).save(masks / f"{stem}.png")
    return images, masks


def test_paired_layout_loads_every_image_mode_and_infers_classes(paired):
    ds = PairedSegmentation(*paired, transform=SegmentationTransform(32, train=False, eval_size=24))
    assert ds.num_classes == 5 and "largest class index 4 in 4 masks" in ds.num_classes_source
    images, masks, skipped = segmentation_collate([ds[i] for i in range(len(ds))])
    # the image's short side resized for the network; the mask kept at the original size, where eval scores
    assert skipped == 0 and images.shape == (4, 3, 24, 32) and masks.shape == (4, 30, 40)
    assert masks.dtype == torch.int64 and set(torch.unique(masks).tolist()) == {0, 1, 2, 3, 4}


def test_paired_layout_errors_name_the_file(paired):
    images, masks = paired
    Image.new("L", (41, 30), 0).save(masks / "gray.png")
    ds = PairedSegmentation(images, masks, num_classes=5)
    with pytest.raises(ValueError, match=r"gray\.png: mask is 41x30 but its image gray\.png is 40x30"):
        ds[[p.stem for p, _ in ds.samples].index("gray")]
    Image.new("RGB", (40, 30), (1, 2, 3)).save(masks / "gray.png")
    with pytest.raises(MaskFormatError, match=r"gray\.png: a mask must hold one class index"):
        PairedSegmentation(images, masks)
    small = PairedSegmentation(images, masks, num_classes=3)
    with pytest.raises(ValueError, match=r"pal\.png: class index 4 is outside 0\.\.2"):
        small[[p.stem for p, _ in small.samples].index("pal")]
    (masks / "pal.png").unlink()
    with pytest.raises(ValueError, match="no mask for 1 image"):
        PairedSegmentation(images, masks)


def test_unreadable_segmentation_image_is_skipped_and_counted(paired):
    images, masks = paired
    (images / "gray.png").write_bytes(b"garbage")
    ds = PairedSegmentation(images, masks, transform=SegmentationTransform(16, train=False, eval_size=16))
    with pytest.warns(UserWarning, match="skipping sample"):
        batch = [ds[i] for i in range(len(ds))]
    images_t, masks_t, skipped = segmentation_collate(batch)
    assert skipped == 1 and images_t.shape[0] == masks_t.shape[0] == 3


def test_segmentation_collate_keeps_images_of_other_sizes_apart_unpadded(paired):
    ds = PairedSegmentation(*paired)
    small = (Image.new("RGB", (8, 6)), tv_tensors.Mask(torch.ones(6, 8, dtype=torch.int64)))
    images, masks, _ = segmentation_collate([ds[0], small])
    assert [tuple(x.shape) for x in images] == [(3, 30, 40), (3, 6, 8)]
    assert [tuple(m.shape) for m in masks] == [(30, 40), (6, 8)] and (masks[1] == 1).all()
    images, masks, _ = segmentation_collate([ds[0], ds[1]])  # one size: one batch tensor
    assert images.shape == (2, 3, 30, 40) and masks.shape == (2, 30, 40)




def _box_image(box, size=(60, 40)):
    """A dark image with a bright rectangle exactly at ``box`` (xyxy), and its detection target."""
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    x1, y1, x2, y2 = box
    arr[y1:y2, x1:x2] = 255
    target = dict(boxes=tv_tensors.BoundingBoxes(torch.tensor([box], dtype=torch.float32), format="XYXY",
                                                 canvas_size=(size[1], size[0])), labels=torch.tensor([1]))
    return Image.fromarray(arr), target


def test_detection_flip_moves_the_box_with_the_image():
    image, target = _box_image((5, 10, 20, 30))
    t = DetectionTransform(60, train=True, photometric=False, iou_crop=False, hflip=1.0)
    out, tgt = t(image, target, size=None)
    assert out.shape == (3, 60, 60) and out.dtype == torch.float32
    assert torch.allclose(tgt["boxes"], torch.tensor([[40.0, 15.0, 55.0, 45.0]]))  # x -> 60 - x, y * 1.5
    assert out[:, 16:44, 41:54].min() > 0.9 and out[:, :, :39].max() < 0.1


@pytest.mark.parametrize("seed", range(6))
def test_detection_train_pipeline_keeps_boxes_on_their_objects(seed):
    torch.manual_seed(seed)
    image, target = _box_image((10, 8, 40, 30))
    out, tgt = DetectionTransform(48, train=True, photometric=False)(image, target)
    assert out.shape == (3, 48, 48) and tgt["labels"].tolist() == [1]  # the crop keeps the centre of the only box
    for x1, y1, x2, y2 in tgt["boxes"].round().int().tolist():
        inside = out[:, y1 + 1:y2 - 1, x1 + 1:x2 - 1]
        assert inside.numel() and inside.min() > 0.8
        assert out.mean() * out.numel() <= out[:, y1:y2, x1:x2].sum() + 0.05 * out.numel()  # nothing bright outside


def test_detection_train_handles_images_without_boxes():
    image = Image.new("RGB", (30, 20))
    target = dict(boxes=tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(20, 30)),
                  labels=torch.zeros(0, dtype=torch.int64))
    out, tgt = DetectionTransform(32)(image, target)
    assert out.shape == (3, 32, 32) and tgt["boxes"].shape == (0, 4)


def test_segmentation_train_keeps_mask_aligned_and_pads_with_ignore():
    torch.manual_seed(0)
    classes = np.repeat(np.arange(6, dtype=np.uint8), 10)[None, :].repeat(40, 0)  # 40x60, vertical stripes
    image = Image.fromarray(np.stack([classes * 40] * 3, -1))
    t = SegmentationTransform(96, train=True, scale_range=(0.5, 0.9), photometric=False)
    for _ in range(5):
        out, mask = t(image, tv_tensors.Mask(torch.from_numpy(classes.astype(np.int64))))
        assert out.shape == (3, 96, 96) and mask.shape == (96, 96) and mask.dtype == torch.int64
        pad = mask == 255
        assert pad.any()  # a short side of at most 0.9 * 96 never fills the crop
        assert (out[:, pad] == 0).all()
        valid = ~pad
        agree = (out[0][valid] * 255 / 40).round() == mask[valid]
        assert agree.float().mean() > 0.9  # only the resampled stripe edges may differ


def test_normalize_uses_imagenet_statistics():
    image, target = _box_image((5, 10, 20, 30))
    plain, _ = DetectionTransform(32, train=False)(image, dict(target))
    norm, _ = DetectionTransform(32, train=False, normalize=True)(image, dict(target))
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    assert torch.allclose(norm, (plain - mean) / std, atol=1e-5)




def test_digit_scene_boxes_and_masks_are_exact():
    ds = DigitScenes("train", "boxes", num_scenes=30)
    counts = 0
    for i in range(len(ds)):
        s = ds.render(i)
        mask, boxes, labels = s["mask"], s["boxes"].astype(int), s["labels"]
        assert len(boxes) == len(labels) == len(s["digits"]) >= 1
        covered = np.zeros_like(mask, dtype=bool)
        for (x1, y1, x2, y2), label in zip(boxes, labels):
            region = mask[y1:y2, x1:x2] == label
            # tight: ink on all four edges of the box, and the box holds only its digit or background
            assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any()
            assert set(np.unique(mask[y1:y2, x1:x2])) <= {0, label}
            covered[y1:y2, x1:x2] = True
        assert (mask[~covered] == 0).all()  # no ink outside the boxes
        assert sorted(set(np.unique(mask)) - {0}) == sorted(set(labels.tolist()))
        assert np.array_equal(labels, ds.digit_labels[s["digits"]] + 1)
        # ink is drawn: ink pixels are brighter than the background's corner pixels on average
        assert s["image"][mask > 0].mean() > s["image"][mask == 0].mean() + 40
        counts += len(labels)
    assert counts > 60  # about 2.5 digits a scene


def test_digit_scenes_are_deterministic_per_index_and_seed():
    a, b = DigitScenes("train", num_scenes=10), DigitScenes("train", num_scenes=10)
    for i in (7, 2, 7):  # order does not matter
        ra, rb = a.render(i), b.render(i)
        assert all(np.array_equal(ra[k], rb[k]) for k in ra)
    other = DigitScenes("train", num_scenes=10, seed=1)
    assert not np.array_equal(a.render(2)["image"], other.render(2)["image"])
    val = DigitScenes("val", num_scenes=10)
    assert not np.array_equal(a.render(2)["image"], val.render(2)["image"])


@pytest.mark.parametrize("targets", ["boxes", "mask"])
def test_cached_digit_scenes_are_the_rendered_ones_and_survive_their_consumers(targets):
    plain = DigitScenes("train", targets, num_scenes=4)
    cached = DigitScenes("train", targets, num_scenes=4, cache=True)
    for i in (1, 3, 1, 3):  # the second visit comes from the cache
        (x, y), (u, v) = plain[i], cached[i]
        assert torch.equal(x, u)
        if targets == "mask":
            assert v.dtype == torch.int64 and torch.equal(y, v)
            v.fill_(7)  # a consumer writing into what it was given must not reach the cache
        else:
            assert all(torch.equal(y[k], v[k]) for k in ("boxes", "labels"))
            v["boxes"].zero_()
            v["labels"].zero_()
        u.zero_()
    assert sorted(cached._cache) == [1, 3]


def test_digit_scenes_use_the_classification_demo_split():
    train, val = DigitScenes("train"), DigitScenes("val")
    assert train.digit_labels.tolist() == DigitsDataset("train").targets
    assert val.digit_labels.tolist() == DigitsDataset("val").targets
    assert np.array_equal(val.digits, digits_split("val")[0])
    train_px = {d.tobytes() for d in train.digits}
    used = np.concatenate([val.render(i)["digits"] for i in range(40)])
    assert used.max() < len(val.digits) and len(set(used.tolist())) > 50
    # NOTE: load_digits holds a few exact duplicate scans, so allow a handful of coincidences
    assert sum(val.digits[d].tobytes() in train_px for d in set(used.tolist())) <= 2


def test_digit_scenes_items_collate_for_both_tasks():
    det = DigitScenes("val", "boxes", image_size=96, num_scenes=6)
    images, targets, skipped = detection_collate([det[i] for i in range(4)])
    assert images.shape == (4, 3, 96, 96) and skipped == 0 and 0 <= images.min() and images.max() <= 1
    assert all(t["boxes"].dtype == torch.float32 and t["labels"].min() >= 1 and t["labels"].max() <= 10 for t in targets)
    seg = DigitScenes("val", "mask", image_size=96, num_scenes=6)
    assert seg.num_classes == det.num_classes == 11 and seg.class_names[1] == "0"
    images, masks, _ = segmentation_collate([seg[i] for i in range(4)])
    assert masks.shape == (4, 96, 96) and masks.dtype == torch.int64 and masks.max() <= 10
    img64, mask64 = seg[(0, 64)]
    assert img64.shape == (3, 64, 64) and mask64.shape == (64, 64)
    box_scaled = det[(0, 48)][1]["boxes"]
    assert torch.allclose(box_scaled, det[0][1]["boxes"] / 2)


def test_digit_scenes_take_a_paired_transform_and_the_sampler_size():
    torch.manual_seed(0)
    ds = DigitScenes("train", "boxes", num_scenes=4, transform=DetectionTransform(64, train=True, hflip=0.0))
    image, target = ds[(1, 80)]
    assert image.shape == (3, 80, 80) and len(target["boxes"]) == len(target["labels"]) >= 1
    assert (target["boxes"] >= 0).all() and (target["boxes"] <= 80).all()
    seg = DigitScenes("train", "mask", num_scenes=4, transform=SegmentationTransform(64, train=False, eval_size=32))
    image, mask = seg[0]
    assert image.shape == (3, 32, 32) and mask.shape == (128, 128) and set(mask.unique().tolist()) <= set(range(11))


def test_digit_scenes_reject_bad_settings():
    with pytest.raises(ValueError, match="digit_size"):
        DigitScenes(image_size=32, digit_size=(24, 56))
    with pytest.raises(ValueError, match="targets must be one of 'boxes', 'mask'"):
        DigitScenes(targets="classes")


def test_ssd_photometric_distort_is_ml_cvnets_gain_offset_hsv_and_channel_swap():
    from edgenext.dense.data.transforms import SSDPhotometricDistort

    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (3, 16, 20), generator=g, dtype=torch.uint8)
    image = tv_tensors.Image(pixels)
    t = SSDPhotometricDistort()
    none = dict(alpha=1.0, beta=0.0, gamma=1.0, delta=0.0, alpha_after=1.0, order=None)

    def run(**changes):
        return t.transform(image, {**none, **changes}).as_subclass(torch.Tensor).long()

    x = pixels.long()
    assert torch.equal(run(), x)
    # contrast is a gain and brightness an offset of beta x 255 (not torchvision's blend / factor), clipped, truncated
    assert torch.equal(run(alpha=1.3), (x * 1.3).clamp(0, 255).floor().long())
    assert torch.equal(run(beta=-0.1 * 255), (x - 25.5).clamp(0, 255).floor().long())
    assert torch.equal(run(alpha_after=0.7), (x * 0.7).floor().long())
    # saturation scales HSV's S: at 0 every channel becomes the value (the max channel)
    gray = run(gamma=0.0)
    assert torch.equal(gray[0], x.max(0).values) and torch.equal(gray[1], gray[0]) and torch.equal(gray[2], gray[0])
    assert (run(delta=360.0) - x).abs().max() <= 1  # a full turn of hue: the same colours
    assert torch.equal(run(order=torch.tensor([2, 1, 0])), x.flip(0))
    # the draws: hue in whole units of OpenCV's 8-bit hue (2 degrees), at most 0.05 x 255 of them
    torch.manual_seed(0)
    deltas = {SSDPhotometricDistort(p=1.0).make_params([image])["delta"] for _ in range(200)}
    assert all(d % 2 == 0 and abs(d) <= 2 * 12 for d in deltas) and len(deltas) > 10
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[1.0, 2, 8, 9]]), format="XYXY", canvas_size=(16, 20))
    assert torch.equal(t.transform(boxes, {**none, "alpha": 2.0}), boxes)


def test_detection_train_pipeline_is_ml_cvnets_order_by_default():
    from edgenext.dense.data.transforms import SSD_CROP_OPTIONS, SSDPhotometricDistort

    steps = DetectionTransform(64)._pipeline(64, True).transforms
    kinds = [type(s).__name__ for s in steps]
    assert kinds[:5] == ["ToImage", "RandomIoUCrop", "SSDPhotometricDistort", "RandomHorizontalFlip", "Resize"]
    assert steps[1].options == SSD_CROP_OPTIONS  # 1.0: uncropped, one draw in six, as ml-cvnets' 0.0
    old = [type(s).__name__ for s in DetectionTransform(64, style="torchvision")._pipeline(64, True).transforms]
    assert old[:4] == ["ToImage", "RandomPhotometricDistort", "RandomIoUCrop", "RandomHorizontalFlip"]
    assert not any(isinstance(s, SSDPhotometricDistort) for s in DetectionTransform(64, photometric=False)._pipeline(64, True).transforms)
    with pytest.raises(ValueError, match="style 'detectron'"):
        DetectionTransform(64, style="detectron")
