"""Datasets: the digits demo split, mode conversion, corrupt files, clear errors."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from edgenext.data import DigitsDataset, ImageFolderDataset, SkipCounter, SkippedSample, eval_transform_factory


def test_digits_split_is_fixed_stratified_and_disjoint():
    train, val = DigitsDataset("train"), DigitsDataset("val")
    assert len(train) + len(val) == 1797 and len(val) == 360
    assert train.class_names == [str(i) for i in range(10)]
    assert set(np.bincount(val.targets)) <= {35, 36, 37}  # stratified: about 36 per digit
    img, target = train[0]
    assert img.size == (64, 64) and img.mode == "RGB" and 0 <= target < 10
    again = DigitsDataset("train")
    assert train.targets == again.targets
    assert np.array_equal(np.asarray(train.images[5]), np.asarray(again.images[5]))
    train_px = {np.asarray(i).tobytes() for i in train.images}
    assert sum(np.asarray(i).tobytes() in train_px for i in val.images) <= 5  # a few digits are exact duplicates


def test_transform_follows_the_requested_size():
    ds = DigitsDataset("val", eval_transform_factory(crop_pct=1.0), image_size=32)
    assert ds[0][0].shape == (3, 32, 32)
    assert ds[(0, 48)][0].shape == (3, 48, 48)


def test_grayscale_cmyk_alpha_palette_and_16bit_images_become_rgb(tmp_path):
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    Image.new("L", (40, 30), 128).save(folder / "gray.png")
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(folder / "cmyk.jpg")
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    rgba.save(folder / "alpha.png")
    pal = Image.new("P", (40, 30), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.save(folder / "pal.png", transparency=0)
    Image.fromarray(np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50).save(folder / "deep.tif")
    ds = ImageFolderDataset(tmp_path / "train", eval_transform_factory(crop_pct=1.0), default_size=32)
    assert len(ds) == 5
    for i in range(len(ds)):
        x, _ = ds[i]
        assert x.shape == (3, 32, 32) and torch.isfinite(x).all()
    # fully transparent pixels are composited on white, not shown as their hidden colour
    alpha = ImageFolderDataset(tmp_path / "train")
    img = next(alpha[i][0] for i in range(len(alpha)) if alpha.samples[i][0].endswith("alpha.png"))
    assert img.getpixel((0, 0)) == (255, 255, 255)


def test_corrupt_images_are_skipped_with_a_warning_and_counted(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    Image.new("RGB", (40, 40), (10, 20, 30)).save(folder / "good.png")
    (folder / "garbage.jpg").write_bytes(b"this is not an image")
    good = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "empty.png").write_bytes(b"")
    ds = ImageFolderDataset(tmp_path, eval_transform_factory(crop_pct=1.0), default_size=32)
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        items = [ds[i] for i in range(len(ds))]
    assert sum(isinstance(x, SkippedSample) for x, _ in items) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(DataLoader(ds, batch_size=4, collate_fn=SkipCounter()))
    images, targets, skipped = batches[0]
    assert images.shape == (1, 3, 32, 32) and targets.tolist() == [0] and skipped == 3


def test_missing_empty_and_imageless_folders_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        ImageFolderDataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="no class sub-folders"):
        ImageFolderDataset(tmp_path)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no images"):
        ImageFolderDataset(tmp_path)


def test_validation_folder_uses_the_training_class_order(tmp_path):
    for name in ("b", "c"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "x.png")
    ds = ImageFolderDataset(tmp_path, class_names=["a", "b", "c"])
    assert ds.targets == [1, 2]
    with pytest.raises(ValueError, match="not among"):
        ImageFolderDataset(tmp_path, class_names=["a", "b"])
