"""Fixtures of the demo tests: small checkpoints of each task, their built sites (built once per test
run, shared by the xdist workers: conftest's ``built_once``), test images made here, the system Chromium driven
by Playwright, and the Python side every browser result is compared with (ONNX Runtime in Python,
with the evaluation transform of ``edgenext predict``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

#: a tiny classifier's run config (the digits demo's, shrunk): trains or saves in seconds
TINY = dict(model="edgenext_xx_small", model_kwargs=dict(depths=[1, 1, 1, 1], dims=[16, 32, 48, 64], heads=[2, 2, 2, 2]),
            data="digits", digits_size=32, input_size=48, multi_scale=False, eval_crop_pct=0.875, epochs=1,
            batch_size=16, lr=2e-3, warmup_epochs=0.5, workers=0, threads=1, train_limit=64, val_limit=32, hflip=0.0,
            amp=False, progress=False, tensorboard=False, plot=False)
DENSE_SIZE = 64
DIGIT_NAMES = ["background"] + [str(d) for d in range(10)]
#: the README's screenshots: written there when the tests run with EDGENEXT_SCREENSHOTS=benchmarks/demo
#: (else into a temporary folder, so a test run leaves the checkout as it was)
SCREENSHOTS_ENV = "EDGENEXT_SCREENSHOTS"


def chromium_path() -> str | None:
    """Debian's chromium (or any on PATH)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


@pytest.fixture(scope="session")
def ort_dist():
    from edgenext.demo.ort_web import ORT_WEB_VERSION, find_dist

    found = find_dist()
    if found is None:
        pytest.skip(f"no onnxruntime-web {ORT_WEB_VERSION} dist folder: run `npm ci --prefix web` (CI does)")
    return found


@pytest.fixture(scope="session")
def browser():
    """The system Chromium, headless, driven by Playwright (no browser is downloaded)."""
    path = chromium_path()
    if path is None:
        pytest.skip("no system Chromium (apt-get install chromium; CI installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, headless=True)
        yield chromium
        chromium.close()


def save_classifier(path: Path, randomize, seed: int = 3) -> Path:
    """A checkpoint as ``edgenext train`` writes it (run config, class names, weights) of a random tiny classifier."""
    from edgenext.train import TrainConfig, apply_overrides
    from edgenext.train.checkpoint import atomic_save
    from edgenext.train.classify import build_model

    cfg = apply_overrides(TrainConfig(), {**TINY, "output": str(path.parent / "run")}).validate()
    torch.manual_seed(seed)
    model = randomize(build_model(cfg, 10, load_finetune=False), seed).eval()
    atomic_save({"epoch": 0, "config": cfg.to_dict(), "class_names": [str(i) for i in range(10)],
                 "model_name": cfg.model, "model": model.state_dict()}, path)
    return path


def save_dense(path: Path, task: str, randomize, seed: int = 5) -> Path:
    """A checkpoint of ``edgenext train --task {task}`` (random weights) on EdgeNeXt-XXS at 64 px."""
    from edgenext.tasks import get_task
    from edgenext.train import TrainConfig

    torch.manual_seed(seed)
    options = {"output_stride": 16} if task == "segment" else {}
    model = randomize(get_task(task).network("edgenext_xx_small", len(DIGIT_NAMES), input_size=DENSE_SIZE, **options),
                      seed).eval()
    cfg = TrainConfig(task=task, model="edgenext_xx_small", input_size=DENSE_SIZE, task_kwargs=options).to_dict()
    torch.save({"model": model.state_dict(), "config": cfg, "class_names": DIGIT_NAMES, "task": task, "epoch": 0}, path)
    return path


def build_task_site(folder: Path, task: str, randomize) -> None:
    from edgenext.demo import build_site

    weights = (save_classifier(folder / "best.pth", randomize) if task == "classify"
               else save_dense(folder / "best.pth", task, randomize))
    build_site(folder / "site", weights=weights)


@pytest.fixture(scope="session")
def task_site(built_once, ort_dist, randomize):
    """``task_site(task)``: the folder of a built site of a small checkpoint of ``task`` (``site/``, ``best.pth``),
    built once per test run."""
    return lambda task: built_once(f"demo-{task}", lambda folder: build_task_site(folder, task, randomize))


def digit_image(index: int, size: tuple[int, int]) -> Image.Image:
    """scikit-learn's handwritten digit ``index`` (8x8, 0..16) as an RGB picture of ``size`` (width, height)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = (digits.images[index] * (255.0 / 16.0)).round().astype(np.uint8)
    picture = Image.fromarray(gray).resize(size, Image.BICUBIC).convert("RGB")  # bright ink on black, as trained
    tint = np.asarray(picture).astype(np.int16) + np.array([index % 7 * 5, 0, -(index % 5) * 5], dtype=np.int16)
    return Image.fromarray(np.clip(tint, 0, 255).astype(np.uint8))


def scene_image(index: int, size: int = 96) -> Image.Image:
    """A digit scene (the dense demos' data) as an RGB picture."""
    from edgenext.dense.data import DigitScenes

    scenes = DigitScenes("val", "boxes", image_size=size, num_scenes=index + 1, seed=0, digit_size=[20, 40])
    return Image.fromarray(scenes.render(index)["image"])


def write_png(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@pytest.fixture
def open_page(browser):
    """``open_page(url, width=1000, height=900)``: a new page at ``url`` once its model is loaded (or failed)."""
    pages = []

    def open_(url: str, width: int = 1000, height: int = 900):
        page = browser.new_page(viewport={"width": width, "height": height})
        pages.append(page)
        page.goto(url)
        page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=120_000)
        return page

    yield open_
    for page in pages:
        page.close()


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """``served(folder)``: the URL of ``folder`` on our isolating server (one server per folder)."""
    from edgenext.demo import serve_in_background

    servers: dict = {}

    def serve(folder: Path) -> str:
        if folder not in servers:
            servers[folder] = serve_in_background(folder)
        return servers[folder][1]

    yield serve
    for server, _ in servers.values():
        server.shutdown()
        server.server_close()


def page_results(page, count: int) -> list[dict]:
    """The page's machine-readable results once it holds ``count`` of them."""
    page.wait_for_function(f"edgenext.results.length >= {count}", timeout=120_000)
    return json.loads(page.get_attribute("#results", "data-results"))


def drop_files(page, paths) -> None:
    """Drop ``paths`` on the page's drop zone, as a user dragging files from their desktop does."""
    import base64

    files = [{"name": Path(p).name, "data": base64.b64encode(Path(p).read_bytes()).decode()} for p in paths]
    transfer = page.evaluate_handle("""(files) => {
        const dt = new DataTransfer();
        for (const f of files) {
            const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
            dt.items.add(new File([bytes], f.name, { type: 'image/png' }));
        }
        return dt;
    }""", files)
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


# -- the Python side: what `edgenext predict` computes, in ONNX Runtime -----------------------------
def python_classify(site: Path, image_path: Path) -> dict:
    """Top-5 of ``image_path`` from the site's model in ONNX Runtime, with ``edgenext predict``'s transform."""
    import onnxruntime as ort

    from edgenext.data import eval_transform_factory, load_image

    cfg = json.loads((site / "model.json").read_text())
    pre = cfg["preprocess"]
    side = cfg["input"]["shape"][2]
    x = eval_transform_factory(crop_pct=pre["crop_pct"], interpolation=pre["interpolation"], mean=pre["mean"],
                               std=pre["std"])(side)(load_image(image_path))[None].numpy()
    logits = ort.InferenceSession(str(site / "model.onnx")).run(None, {cfg["input"]["name"]: x})[0]
    probs = torch.from_numpy(logits).softmax(-1)[0]
    values, indices = probs.topk(5)
    return {"input": x, "top": [{"index": int(i), "prob": float(p)} for p, i in zip(values, indices)]}


def _dense_outputs(site: Path, image_path: Path) -> tuple[dict, list, tuple[int, int]]:
    """The site's dense model on the image resized (Pillow, bilinear) to its input, as the page does."""
    import onnxruntime as ort

    cfg = json.loads((site / "model.json").read_text())
    _, _, h, w = cfg["input"]["shape"]
    image = Image.open(image_path).convert("RGB")
    x = (np.asarray(image.resize((w, h), Image.BILINEAR), dtype=np.float32) / np.float32(255)).transpose(2, 0, 1)[None]
    outputs = ort.InferenceSession(str(site / "model.onnx")).run(None, {cfg["input"]["name"]: np.ascontiguousarray(x)})
    return cfg, outputs, image.size


def python_detect(site: Path, image_path: Path) -> list[dict]:
    """The detections of the site's detector with its own post-processing settings, boxes in image pixels."""
    from edgenext.dense.ssdlite import postprocess_detections

    cfg, (boxes, scores), (width, height) = _dense_outputs(site, image_path)
    found = postprocess_detections(boxes, scores, **cfg["postprocess"])[0]
    _, _, h, w = cfg["input"]["shape"]
    ratio = torch.tensor([width / w, height / h, width / w, height / h], dtype=torch.float32)
    return [{"index": int(i), "score": float(s), "box": (b * ratio).tolist()}
            for b, s, i in zip(found["boxes"], found["scores"], found["labels"])]


def python_segment(site: Path, image_path: Path) -> np.ndarray:
    """The class mask of the site's segmenter at the image's own size (logits upsampled, then arg-max)."""
    from edgenext.dense.training import logits_at

    _, (logits,), (width, height) = _dense_outputs(site, image_path)
    return logits_at(torch.from_numpy(logits), (height, width)).argmax(1)[0].numpy()


@pytest.fixture(scope="session")
def demo_kit(randomize, tmp_path_factory):
    """The helpers above, for test modules (they cannot import this conftest)."""
    from types import SimpleNamespace

    shots = os.environ.get(SCREENSHOTS_ENV)
    screenshots = Path(shots) if shots else tmp_path_factory.mktemp("screenshots")

    return SimpleNamespace(digit_image=digit_image, scene_image=scene_image, write_png=write_png,
                           page_results=page_results, drop_files=drop_files, python_classify=python_classify,
                           python_detect=python_detect, python_segment=python_segment, screenshots=screenshots,
                           save_classifier=lambda path: save_classifier(path, randomize), tiny=TINY)
