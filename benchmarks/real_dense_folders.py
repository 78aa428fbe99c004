"""Build a COCO-layout and a VOC-layout folder from real photos, then train, evaluate and predict
on them with the command line, as a user with their own data would.

Objects are real photos (one ImageNet class folder each, e.g. ../shared/data/imagenet-samples)
cut to an ellipse and pasted onto other real photos as backgrounds, so every box and mask is
exact. Usage:

    python benchmarks/real_dense_folders.py IMAGE_ROOT OUT_DIR [--classes 3] [--scenes 48]

OUT_DIR/coco gets annotations/instances_{train,val}2017.json, train2017/, val2017/ (with
non-contiguous category ids, a crowd annotation and an image without objects, as real COCO
files have); OUT_DIR/voc gets JPEGImages/, SegmentationClass/ (palette PNGs with a 255 border)
and ImageSets/Segmentation/{train,val}.txt. The script then runs edgenext train / eval /
predict on both and prints what each command printed.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 160


def _photos(root: Path) -> dict[str, list[Path]]:
    folders = sorted(d for d in root.iterdir() if d.is_dir())
    return {d.name: sorted(p for p in d.iterdir() if p.is_file()) for d in folders}


def _scene(rng: random.Random, objects: list[tuple[int, Image.Image]], background: Image.Image):
    """Paste each (label, photo) as an ellipse; labels are distinct, so a box is the extent of its label's pixels
    (a later object may hide part of an earlier one: the box and mask show what stays visible)."""
    canvas = background.convert("RGB").resize((CANVAS, CANVAS))
    mask = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    for label, photo in objects:
        w, h = rng.randint(40, 80), rng.randint(40, 80)
        x, y = rng.randint(0, CANVAS - w), rng.randint(0, CANVAS - h)
        shape = Image.new("L", (w, h))
        ImageDraw.Draw(shape).ellipse((0, 0, w - 1, h - 1), fill=255)
        canvas.paste(photo.convert("RGB").resize((w, h)), (x, y), shape)
        mask[y:y + h, x:x + w][np.asarray(shape) > 0] = label
    boxes = []
    for label, _ in objects:
        ys, xs = np.nonzero(mask == label)
        if len(xs):
            boxes.append((label, [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]))
    return canvas, mask, boxes


def build(image_root: Path, out: Path, num_classes: int, scenes: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    photos = _photos(image_root)
    names = list(photos)[:num_classes]
    backgrounds = [p for name in list(photos)[num_classes:] for p in photos[name]]
    category_ids = [3 * i + 2 for i in range(num_classes)]  # non-contiguous, as COCO's are
    coco, voc = out / "coco", out / "voc"
    for d in (coco / "annotations", coco / "train2017", coco / "val2017", voc / "JPEGImages",
              voc / "SegmentationClass", voc / "ImageSets" / "Segmentation"):
        d.mkdir(parents=True, exist_ok=True)
    palette = [0, 0, 0] + [c for i in range(1, 256) for c in ((i * 73) % 256, (i * 151) % 256, (i * 199) % 256)]
    ids: dict[str, list[str]] = {"train": [], "val": []}
    for split in ("train", "val"):
        images, annotations = [], []
        for i in range(scenes if split == "train" else max(scenes // 4, 4)):
            k = rng.randint(0 if i % 7 == 0 else 1, 3)  # now and then a scene without objects
            objects = [(j + 1, Image.open(rng.choice(photos[names[j]]))) for j in rng.sample(range(num_classes), min(k, num_classes))]
            canvas, mask, boxes = _scene(rng, objects, Image.open(rng.choice(backgrounds)))
            stem = f"{split}_{i:04d}"
            canvas.save(coco / f"{split}2017" / f"{stem}.jpg", quality=92)
            canvas.save(voc / "JPEGImages" / f"{stem}.jpg", quality=92)
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": f"{stem}.jpg", "width": CANVAS, "height": CANVAS})
            for label, (x, y, w, h) in boxes:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category_ids[label - 1],
                                    "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            if split == "train" and i == 1 and boxes:  # a crowd region: left out of training, as COCO does
                annotations.append({**annotations[-1], "id": len(annotations) + 1, "iscrowd": 1})
            border = (mask > 0) & ~_eroded(mask > 0)
            voc_mask = mask.copy()
            voc_mask[border] = 255  # VOC outlines every object with "ignore"
            png = Image.fromarray(voc_mask, mode="P")
            png.putpalette(palette)
            png.save(voc / "SegmentationClass" / f"{stem}.png")
            ids[split].append(stem)
        categories = [{"id": cid, "name": photos[names[j]][0].stem.partition("_")[2] or names[j], "supercategory": "photo"}
                      for j, cid in enumerate(category_ids)]
        (coco / "annotations" / f"instances_{split}2017.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories}))
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids[split]) + "\n")
    return names


def _eroded(region: np.ndarray) -> np.ndarray:
    out = region.copy()
    out[1:] &= region[:-1]
    out[:-1] &= region[1:]
    out[:, 1:] &= region[:, :-1]
    out[:, :-1] &= region[:, 1:]
    return out


def _run(*args: str) -> None:
    cmd = [sys.executable, "-m", "edgenext", *args]
    print("$ edgenext " + " ".join(args), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print((proc.stdout + proc.stderr).strip()[-2500:], flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"edgenext {args[0]} failed ({proc.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image_root", type=Path, help="class folders of real photos (e.g. ../shared/data/imagenet-samples)")
    parser.add_argument("out", type=Path, help="where the two layouts and the runs go")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--scenes", type=int, default=48, help="training scenes (validation: a quarter)")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    names = build(args.image_root, args.out, args.classes, args.scenes)
    print(f"object classes: {', '.join(names)}; layouts in {args.out / 'coco'} and {args.out / 'voc'}")
    common = ["--model", "edgenext_xx_small", "--epochs", str(args.epochs), "--batch-size", "8", "--no-progress",
              "--set", "workers=0", "--set", "amp=false", "--set", "backbone_weights=null", "--set", "base_batch=8",
              "--set", "warmup_steps=2", "--set", "input_size=160",
              "--set", "data_kwargs={}"]  # no SBD masks here
    sample = sorted((args.out / "coco" / "val2017").iterdir())[:2]
    for task, data in (("detect", args.out / "coco"), ("segment", args.out / "voc")):
        run = args.out / f"run_{task}"
        _run("train", "--task", task, "--data", str(data), "--output", str(run), *common)
        _run("eval", str(data), "--weights", str(run / "best.pth"), "--json", "--workers", "0")
        _run("predict", *map(str, sample), "--weights", str(run / "best.pth"), "--output", str(args.out / f"pictures_{task}"))


if __name__ == "__main__":
    main()
