"""The issue's acceptance flow: ``edgenext demo --no-serve --output site --weights <digits run>/best.pth``,
the folder served by ``python -m http.server`` (no isolation headers: one thread), a digit image dropped
on the page in headless Chromium gives the top-5 of ``edgenext predict``. Also the README's screenshots
of the classifier's page, on a desktop and on a phone-width screen."""

import contextlib
import io
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from edgenext.cli.main import main

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, demo_kit):
    """A digits run of ``edgenext train`` (the demo's recipe, shrunk to seconds): its best.pth."""
    from edgenext.tasks import fit
    from edgenext.train import TrainConfig, apply_overrides

    out = tmp_path_factory.mktemp("digits-run")
    cfg = apply_overrides(TrainConfig(), {**demo_kit.tiny, "epochs": 3, "train_limit": 768, "output": str(out / "run")})
    fit(cfg.validate())
    return next(out.rglob("best.pth"))


@pytest.fixture
def http_server(tmp_path):
    """``http_server(folder)``: ``python -m http.server -d folder`` on a free port; its URL."""
    procs = []

    def start(folder) -> str:
        port = _free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(folder),
                                       str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}/"
        for _ in range(100):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url, timeout=1).close()
                return url
            time.sleep(0.1)
        raise RuntimeError("python -m http.server did not start")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def _predict(best, image) -> list[dict]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["predict", str(image), "--weights", str(best), "--json"]) == 0
    return json.loads(printed.getvalue())[0]["top"]


def test_a_dropped_digit_gets_the_top5_of_edgenext_predict(digits_run, ort_dist, http_server, open_page, demo_kit,
                                                           tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["demo", "--no-serve", "--output", "site", "--weights", str(digits_run)]) == 0
    digits = [demo_kit.write_png(demo_kit.digit_image(i, size), tmp_path / f"digit{i}.png")
              for i, size in ((3, (64, 64)), (17, (90, 70)))]
    page = open_page(http_server(tmp_path / "site"))
    assert page.evaluate("document.body.dataset.state") == "ready", page.inner_text("#messages")
    assert not page.evaluate("crossOriginIsolated") and page.evaluate("edgenext.threads") == 1
    assert "runs on one thread" in page.inner_text("#messages")  # said, not silent
    demo_kit.drop_files(page, digits)
    results = demo_kit.page_results(page, len(digits))
    for result, image in zip(results, digits):
        expected = _predict(digits_run, image)
        assert [t["label"] for t in result["top"]] == [t["label"] for t in expected]
        assert all(abs(a["prob"] - b["prob"]) <= 1e-4 for a, b in zip(result["top"], expected))
    demo_kit.screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(demo_kit.screenshots / "classify.png"))


def test_the_page_fits_a_phone_width_screen(task_site, served, open_page, demo_kit, tmp_path):
    site = task_site("classify") / "site"  # conftest's tiny classifier site, built once per run
    digit = demo_kit.write_png(demo_kit.digit_image(8, (64, 64)), tmp_path / "digit8.png")
    page = open_page(served(site), width=390, height=844)
    page.set_input_files("#files", [str(digit)])
    demo_kit.page_results(page, 1)
    # nothing wider than the screen: no sideways scrolling, the picture scaled to the column
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate("document.querySelector('#results canvas').getBoundingClientRect().width") <= 390
    page.screenshot(path=str(demo_kit.screenshots / "phone.png"), full_page=True)
