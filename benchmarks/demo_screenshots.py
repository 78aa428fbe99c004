"""The README's screenshots of the browser demo, from trained runs (the tests' use tiny or random models).

Builds the demo site of each run given (``edgenext.demo.build_site``), serves it cross-origin
isolated, picks the images through the page's file input in the system Chromium (Playwright,
headless), waits for the results and writes ``<task>.png`` (and ``phone.png``: the classifier at a
390 px wide viewport) into ``--output``. The images: the digits validation split rendered as PNGs
(classify) and the validation digit scenes (detect, segment).

    edgenext train; edgenext train --task detect; edgenext train --task segment
    python benchmarks/demo_screenshots.py --classify runs/<digits>/best.pth \\
        --detect runs/<detect>/best.pth --segment runs/<segment>/best.pth --output benchmarks/demo
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from edgenext.demo import build_site, serve_in_background

#: images shown per task
COUNT = {"classify": 3, "detect": 2, "segment": 2}


def _images(task: str, folder: Path, side: int, weights: Path) -> list[Path]:
    """PNG files of validation images: digits (classify) or the run's own validation digit scenes
    (detect / segment: its recorded scene settings)."""
    from edgenext.dense.data import DigitScenes
    from edgenext.data.datasets import digits_split

    paths = []
    if task == "classify":
        digits, _ = digits_split("val")
        for i in range(COUNT[task]):
            pixels = np.asarray(digits[i * 7], dtype=np.float64)
            pixels = (255 * pixels / max(pixels.max(), 1e-6)).astype(np.uint8)
            paths.append(folder / f"digit{i}.png")
            Image.fromarray(pixels).convert("RGB").resize((side, side), Image.BICUBIC).save(paths[-1])
    else:
        config = torch.load(weights, map_location="cpu", weights_only=True)["config"]
        kwargs = {k: v for k, v in (config.get("data_kwargs") or {}).items()
                  if k not in ("num_scenes", "val_scenes", "transform", "cache")}
        scenes = DigitScenes("val", "boxes" if task == "detect" else "mask", image_size=int(config["input_size"]),
                             seed=int(config.get("seed", 0)), **kwargs)
        for i in range(COUNT[task]):
            paths.append(folder / f"scene{i}.png")
            Image.fromarray(scenes.render(i)["image"]).save(paths[-1])
    return paths


def shoot(page, task: str, images: list[Path], output: Path, name: str) -> None:
    page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=120_000)
    page.set_input_files("#files", [str(p) for p in images])
    page.wait_for_function(f"edgenext.results.length >= {len(images)}", timeout=300_000)
    page.screenshot(path=str(output / name), full_page=name == "phone.png")
    print(f"{task}: {output / name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for task in COUNT:
        parser.add_argument(f"--{task}", type=Path, metavar="BEST_PTH", help=f"a checkpoint of a {task} run")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/demo"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True)
        for task in COUNT:
            weights = getattr(args, task)
            if weights is None:
                continue
            site = build_site(Path(tmp) / task, weights=weights)
            side = site.config["input"]["shape"][-1]
            folder = Path(tmp) / f"{task}-images"
            folder.mkdir()
            images = _images(task, folder, max(side, 96), weights)
            server, url = serve_in_background(site.folder)
            try:
                views = [("desktop", 1000, 900, f"{task}.png")]
                if task == "classify":
                    views.append(("phone", 390, 844, "phone.png"))
                for _, width, height, name in views:
                    page = browser.new_page(viewport={"width": width, "height": height})
                    page.goto(url)
                    shoot(page, task, images[:1] if name == "phone.png" else images, args.output, name)
                    page.close()
            finally:
                server.shutdown()
                server.server_close()
        browser.close()


if __name__ == "__main__":
    main()
