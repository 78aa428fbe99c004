"""The page's readable messages: a file that is not an image, an image too large to decode safely, a
model that does not load; and one thread, said on the page, where the host cannot isolate it."""

import shutil

import pytest
from PIL import Image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def classify_url(task_site, served):
    return served(task_site("classify") / "site")


def test_a_file_that_is_not_an_image_gets_a_message(classify_url, open_page, demo_kit, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\n")
    page = open_page(classify_url)
    page.set_input_files("#files", [str(notes)])
    results = demo_kit.page_results(page, 1)
    assert "notes.txt is not an image" in results[0]["error"]
    assert "notes.txt is not an image" in page.inner_text("#messages")


def test_a_huge_image_is_refused_before_it_is_decoded_and_the_page_goes_on(classify_url, open_page, demo_kit,
                                                                          tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("1", (12000, 12000)).save(huge)  # 144 megapixels, a few kB on disk
    digit = demo_kit.write_png(demo_kit.digit_image(5, (60, 60)), tmp_path / "digit.png")
    page = open_page(classify_url)
    page.set_input_files("#files", [str(huge), str(digit)])
    results = demo_kit.page_results(page, 2)
    message = page.inner_text("#messages")
    assert "huge.png is 12000 x 12000 px" in message and "8192 px a side" in message
    assert "error" in results[0] and results[1]["top"]  # the next image still runs


def test_a_model_that_does_not_load_says_so(task_site, served, open_page, tmp_path):
    site = tmp_path / "broken"
    shutil.copytree(task_site("classify") / "site", site, ignore=shutil.ignore_patterns("test-images"))
    (site / "model.onnx").write_bytes(b"this is not an ONNX file")
    page = open_page(served(site))
    assert page.evaluate("document.body.dataset.state") == "error"
    assert "could not be loaded by ONNX Runtime Web" in page.inner_text("#messages")


def test_a_missing_model_description_says_what_is_wrong(task_site, served, open_page, tmp_path):
    site = tmp_path / "no-config"
    shutil.copytree(task_site("classify") / "site", site, ignore=shutil.ignore_patterns("test-images", "ort"))
    (site / "model.json").unlink()
    page = open_page(served(site))
    assert page.evaluate("document.body.dataset.state") == "error"
    assert "model.json" in page.inner_text("#messages")


def test_the_drop_zone_is_reachable_from_the_keyboard(classify_url, open_page):
    page = open_page(classify_url)
    page.evaluate("document.getElementById('files').addEventListener('click', (e) => { window.picked = true; "
                  "e.preventDefault(); })")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "drop"
    page.keyboard.press("Enter")  # opens the file picker, as a click on the zone does
    assert page.evaluate("window.picked === true")
    page.keyboard.press("Tab")  # then the (visually hidden) file input, the camera button: native controls
    assert page.evaluate("document.activeElement.id") == "files"
    assert page.evaluate("document.getElementById('files').multiple")
