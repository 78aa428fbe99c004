"""JPEG test images for the training input-pipeline bench (``edgenext bench --data``), reproducible from a seed.

Writes ``OUT/train/<class>/NNNNN.jpg`` (and a small ``OUT/val``): photo-like content (smooth colour fields,
sinusoidal texture, shapes and sensor-like noise), so that the JPEGs carry about as many bytes per pixel as
ImageNet's (~0.5-1 byte/pixel at quality 90, 4:2:0 chroma) rather than the few a flat image compresses to.

    python benchmarks/input_pipeline_data.py /tmp/input-bench --images 400 --size 400 350
    edgenext bench --data /tmp/input-bench --batches 32 --rounds 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def photo_like(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """An RGB image with smooth regions, texture and edges: compresses like a photograph."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        a, b = rng.uniform(-1, 1, 2)
        img[..., c] = 128 + 60 * np.sin(a * x / 37 + b * y / 29 + rng.uniform(0, 6.3))
        for _ in range(3):  # texture at a few frequencies
            fx, fy = rng.uniform(0.02, 0.4, 2)
            img[..., c] += rng.uniform(5, 20) * np.sin(fx * x + fy * y + rng.uniform(0, 6.3))
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(4, 10))):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        x1, y1 = x0 + rng.integers(width // 10 + 1, width // 2 + 2), y0 + rng.integers(height // 10 + 1, height // 2 + 2)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    pil = pil.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.4, 1.0))))
    noise = rng.normal(0, 10, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(pil, np.float32) + noise, 0, 255).astype(np.uint8))


def write_images(out: Path, *, images: int = 400, classes: int = 2, size: tuple[int, int] = (400, 350),
                 quality: int = 90, val: int = 0, seed: int = 0) -> int:
    """``images`` training JPEGs (and ``val`` validation ones) dealt round-robin to ``classes`` class folders;
    sizes vary by up to +-15% around ``size`` (width, height) like real photos. Returns the bytes written."""
    rng = np.random.default_rng(seed)
    total = 0
    for split, count in (("train", images), ("val", val)):
        for i in range(count):
            folder = out / split / f"class{i % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            w, h = (int(s * rng.uniform(0.85, 1.15)) for s in size)
            path = folder / f"{i:05d}.jpg"
            photo_like(rng, w, h).save(path, quality=quality)
            total += path.stat().st_size
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="output folder (OUT/train/<class>/*.jpg)")
    p.add_argument("--images", type=int, default=400, help="training images (default 400)")
    p.add_argument("--val", type=int, default=0, help="validation images (default 0)")
    p.add_argument("--classes", type=int, default=2, help="class folders (default 2)")
    p.add_argument("--size", type=int, nargs=2, default=(400, 350), metavar=("W", "H"),
                   help="mean width and height (default 400 350, about ImageNet's mean)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    size = write_images(args.out, images=args.images, classes=args.classes, size=tuple(args.size),
                        quality=args.quality, val=args.val, seed=args.seed)
    print(f"{args.images} training JPEGs in {args.out / 'train'}, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
