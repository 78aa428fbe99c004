"""The demo page in a real browser (the system Chromium, headless) gives the numbers ONNX Runtime gives
in Python on the same files: the same input tensor, top-5, boxes and masks."""

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def classify_page(task_site, served, browser, demo_kit, tmp_path_factory):
    site = task_site("classify") / "site"
    images = tmp_path_factory.mktemp("classify-images")
    # sizes that exercise the resize (down and up, portrait and landscape) and an odd center crop
    paths = [demo_kit.write_png(demo_kit.digit_image(i, size), images / f"digit{i}.png")
             for i, size in enumerate([(40, 52), (97, 61), (48, 48), (300, 211)])]
    for path in paths:  # served beside the page, for the preprocessing hook
        (site / "test-images").mkdir(exist_ok=True)
        (site / "test-images" / path.name).write_bytes(path.read_bytes())
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(served(site))
    page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=120_000)
    yield site, page, paths
    page.close()


def test_the_page_loads_the_model_and_describes_it(classify_page):
    site, page, _ = classify_page
    assert page.evaluate("document.body.dataset.state") == "ready", page.inner_text("#messages")
    info = page.inner_text("#info")
    assert "edgenext_xx_small" in info and "48 x 48 px" in info and "classify" in info and "M" in info
    assert page.evaluate("edgenext.backend") in ("wasm", "webgpu")
    assert page.evaluate("crossOriginIsolated")  # our server sends COOP / COEP


def test_the_pages_input_tensor_is_pythons_bit_for_bit(classify_page, demo_kit):
    site, page, paths = classify_page
    for path in paths:
        js = np.asarray(page.evaluate(f"edgenext.preprocessUrl('test-images/{path.name}')"), dtype=np.float32)
        py = demo_kit.python_classify(site, path)["input"].ravel()
        assert js.shape == py.shape and np.array_equal(js, py), (path.name, float(np.abs(js - py).max()))


def test_classify_top5_equals_onnxruntime_in_python(classify_page, demo_kit):
    site, page, paths = classify_page
    page.set_input_files("#files", [str(p) for p in paths])  # several at once
    results = demo_kit.page_results(page, len(paths))
    assert [r["name"] for r in results] == [p.name for p in paths]
    for result, path in zip(results, paths):
        expected = demo_kit.python_classify(site, path)["top"]
        assert [t["index"] for t in result["top"]] == [t["index"] for t in expected]
        assert np.allclose([t["prob"] for t in result["top"]], [t["prob"] for t in expected], atol=1e-4, rtol=0)
        assert result["latency_ms"] > 0 and result["backend"] in ("wasm", "webgpu")
    assert page.locator("#results article").count() == len(paths)
    assert "ms in the model" in page.inner_text("#results")


def _unmatched(found: list, expected: list) -> list:
    """Python's detections with no page detection of the same class, score within 1e-4 and box within
    0.5 px (one-to-one; the order may differ where two scores are within float32 rounding)."""
    free = list(found)
    missing = []
    for want in expected:
        match = next((d for d in free if d["index"] == want["index"] and abs(d["score"] - want["score"]) <= 1e-4
                      and np.abs(np.subtract(d["box"], want["box"])).max() <= 0.5), None)
        if match is None:
            missing.append(want)
        else:
            free.remove(match)
    return missing


def test_detect_boxes_and_scores_equal_onnxruntime_in_python(task_site, served, open_page, demo_kit, tmp_path):
    site = task_site("detect") / "site"
    paths = [demo_kit.write_png(demo_kit.scene_image(i, size), tmp_path / f"scene{i}.png")
             for i, size in enumerate([96, 64, 150])]
    page = open_page(served(site))
    assert page.evaluate("document.body.dataset.state") == "ready", page.inner_text("#messages")
    page.set_input_files("#files", [str(p) for p in paths])
    results = demo_kit.page_results(page, len(paths))
    for result, path in zip(results, paths):
        expected = demo_kit.python_detect(site, path)
        found = result["detections"]
        assert expected, "the random detector should find something above its threshold"
        assert len(found) == len(expected)
        unmatched = _unmatched(found, expected)
        assert not unmatched, f"{path.name}: {len(unmatched)} of Python's detections not on the page, e.g. {unmatched[0]}"
    assert page.is_visible("#score") and not page.is_visible("#opacity")
    page.fill("#score", "0.12")  # the slider redraws every picture at the new threshold
    page.dispatch_event("#score", "input")
    assert page.inner_text("#score-value") == "0.12"
    demo_kit.screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(demo_kit.screenshots / "detect.png"))


def test_segment_masks_agree_with_onnxruntime_in_python(task_site, served, open_page, demo_kit, tmp_path):
    site = task_site("segment") / "site"
    paths = [demo_kit.write_png(demo_kit.scene_image(i + 3, size), tmp_path / f"scene{i}.png")
             for i, size in enumerate([96, 80])]
    page = open_page(served(site))
    assert page.evaluate("document.body.dataset.state") == "ready", page.inner_text("#messages")
    page.set_input_files("#files", [str(p) for p in paths])
    demo_kit.page_results(page, len(paths))
    for i, path in enumerate(paths):
        mask = np.asarray(page.evaluate(f"Array.from(edgenext.results[{i}].mask)"))
        expected = demo_kit.python_segment(site, path)
        assert mask.size == expected.size
        agreement = float((mask.reshape(expected.shape) == expected).mean())
        assert agreement >= 0.999, agreement
    assert page.is_visible("#opacity") and not page.is_visible("#score")
    page.fill("#opacity", "0.8")
    page.dispatch_event("#opacity", "input")
    legend = page.inner_text("#results article")
    assert "% of pixels" in legend
    demo_kit.screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(demo_kit.screenshots / "segment.png"))


def test_an_int8_site_runs_in_onnx_runtime_web(task_site, served, open_page, demo_kit, tmp_path):
    import json

    import onnxruntime as ort

    from edgenext.demo import build_site

    site = build_site(tmp_path / "int8", weights=task_site("classify") / "best.pth", precision="int8").folder
    assert json.loads((site / "model.json").read_text())["precision"] == "int8"
    digit = demo_kit.write_png(demo_kit.digit_image(2, (64, 64)), tmp_path / "digit.png")
    page = open_page(served(site))
    assert page.evaluate("document.body.dataset.state") == "ready", page.inner_text("#messages")
    page.set_input_files("#files", [str(digit)])
    top = demo_kit.page_results(page, 1)[0]["top"]
    x = demo_kit.python_classify(site, digit)["input"]
    logits = ort.InferenceSession(str(site / "model.onnx")).run(None, {"input": x})[0][0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    # NOTE: ONNX Runtime Web's int8 kernels are not native ONNX Runtime's: about 1e-3 apart, not 1e-4
    assert all(abs(t["prob"] - probs[t["index"]]) < 1e-2 for t in top)
