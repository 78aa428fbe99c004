"""Building a demo site without a browser: its files, the page's config, the pinned ONNX Runtime Web
(found, downloaded and checked, or a clear error), the isolating server and the command line."""

import hashlib
import base64
import io
import json
import tarfile
import urllib.error
import urllib.request

import pytest

from edgenext.cli.main import main
from edgenext.demo import ort_web
from edgenext.demo.server import ISOLATION_HEADERS, serve_in_background
from edgenext.demo.site import STATIC_FILES, build_site


def test_a_site_holds_the_page_the_model_its_config_and_only_the_runtime_files_it_loads(task_site):
    site = task_site("classify") / "site"
    for name in (*STATIC_FILES, "model.onnx", "model.json"):
        assert (site / name).is_file(), name
    assert sorted(p.name for p in (site / "ort").iterdir()) == sorted(ort_web.SITE_FILES)
    cfg = json.loads((site / "model.json").read_text())
    assert cfg["edgenext_app_config"] == 1 and cfg["task"] == "classify" and cfg["labels"] == [str(i) for i in range(10)]
    assert cfg["input"]["shape"] == [1, 3, 48, 48] and cfg["preprocess"]["resize_short_side"] == 54  # floor(48 / 0.875)
    assert cfg["params"] > 0 and cfg["postprocess"] is None
    demo = cfg["demo"]
    assert demo["title"] == "edgenext_xx_small" and demo["ort_base"] == "ort/" and demo["ort_version"] == ort_web.ORT_WEB_VERSION
    assert set(demo["ort_scripts"].values()) <= set(ort_web.SITE_FILES)


def test_a_detectors_config_carries_its_post_processing(task_site):
    cfg = json.loads((task_site("detect") / "site" / "model.json").read_text())
    assert cfg["postprocess"] == {"score_thresh": 0.05, "nms_thresh": 0.5, "detections_per_class": 200,
                                  "detections_per_img": 0, "topk_candidates": 0}
    assert [o["role"] for o in cfg["outputs"]] == ["boxes", "scores"] and cfg["demo"]["display_score"] == 0.3
    assert cfg["preprocess"]["resize"] == [64, 64] and cfg["preprocess"]["normalised_in_graph"]


@pytest.mark.slow
def test_the_cdn_runtime_copies_nothing_and_points_at_the_pinned_version(tmp_path, demo_kit, monkeypatch):
    monkeypatch.setattr(ort_web, "locate_dist", lambda *a, **k: pytest.fail("a CDN site needs no local runtime"))
    site = build_site(tmp_path / "site", weights=demo_kit.save_classifier(tmp_path / "best.pth"), runtime="cdn")
    assert not (site.folder / "ort").exists()
    assert site.config["demo"]["ort_base"] == f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ort_web.ORT_WEB_VERSION}/dist/"


def test_a_non_empty_folder_that_is_not_a_site_is_left_alone(tmp_path, ort_dist):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="holds no demo site"):
        build_site(tmp_path, model="edgenext_xx_small")
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_bad_choices_are_named(tmp_path):
    with pytest.raises(ValueError, match="--runtime 'server'"):
        build_site(tmp_path / "s", model="edgenext_xx_small", runtime="server")
    with pytest.raises(ValueError, match="--weights"):
        build_site(tmp_path / "s")


def _tarball(files: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_the_download_is_checked_against_the_pinned_integrity_and_cached(tmp_path, monkeypatch):
    data = _tarball({name: name.encode() for name in ort_web.SITE_FILES})
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(data))
    with pytest.raises(ort_web.OrtWebNotFound, match="corrupt or tampered"):
        ort_web.fetch_dist(target=tmp_path / "a")  # the real pin does not match these bytes
    monkeypatch.setattr(ort_web, "ORT_WEB_INTEGRITY", integrity)
    monkeypatch.setattr(ort_web.verify_integrity, "__defaults__", (integrity,))
    folder = ort_web.fetch_dist(target=tmp_path / "b")
    assert ort_web.missing_files(folder) == [] and (folder / "ort.wasm.min.js").read_bytes() == b"ort.wasm.min.js"


def test_offline_without_a_runtime_the_error_says_what_to_do(tmp_path, monkeypatch):
    def unreachable(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(ort_web.OrtWebNotFound) as err:
        ort_web.fetch_dist(target=tmp_path / "cache")
    assert "npm ci --prefix web" in str(err.value) and "--ort-dist" in str(err.value) and "--runtime cdn" in str(err.value)


def test_a_named_folder_without_the_runtime_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv(ort_web.ENV_VAR, str(tmp_path))
    with pytest.raises(ort_web.OrtWebNotFound, match=r"\$EDGENEXT_ORT_WEB .*ort.wasm.min.js"):
        ort_web.find_dist()


def test_the_server_isolates_the_page(task_site):
    server, url = serve_in_background(task_site("classify") / "site")
    try:
        with urllib.request.urlopen(url) as response:
            assert all(response.headers[k] == v for k, v in ISOLATION_HEADERS.items())
            assert b"demo.js" in response.read()
        with urllib.request.urlopen(url + "ort/ort-wasm-simd-threaded.wasm") as response:
            assert response.headers["Content-Type"] == "application/wasm"
    finally:
        server.shutdown()
        server.server_close()


def test_the_command_explains_itself(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--weights", "--pretrained", "--output", "--port", "--no-serve", "--precision", "--runtime",
                   "--ort-dist"):
        assert option in text
    assert "cross-origin isolation" in text and "python -m http.server" in text
