"""Export, profile and bench of the detector and the segmenter (issue 8, points 2 and 6).

ONNX Runtime reproduces every raw output within 1e-4 at batch 1 and 2 (dynamic batch), an
exported detector run through ``detect_onnx`` gives the eval-mode model's detections, the
profile matches the paper's sizes, and the bench times ours beside torchvision's models.
Small models (EdgeNeXt-XXS, 128 px) keep each export to seconds.
"""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from edgenext.models.profile import profile_variant
from edgenext.bench.run import BenchSettings, bench_settings, run_bench
from edgenext.cli.main import main
from edgenext.deploy.formats import FORMATS
from edgenext.deploy.export import export_network
from edgenext.dense import SSDLiteRaw, deeplabv3, ssdlite
from edgenext.dense.export import OnnxDetector, detect_onnx
from edgenext.tasks import get_task
from edgenext.tasks.efficiency import bench_plan
from edgenext.train import TrainConfig

SIZE = 128
CLASSES = ("background", "one", "two", "three")
TOL = 1e-4
ORT = pytest.mark.skipif(not FORMATS["onnx"].installed, reason="onnxruntime is not installed")


def randomize_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Layer scales and BatchNorm statistics off their trivial starting values, so that every block
    changes the output (conftest's ``randomize`` fixture is per test; these models are per module)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("gamma", "gamma_xca")):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model


def _detector() -> torch.nn.Module:
    torch.manual_seed(0)
    model = randomize_(ssdlite("edgenext_xx_small", len(CLASSES), image_size=SIZE, score_thresh=0.5), seed=2).eval()
    # NOTE: sharper class scores, so that some pass 0.5: about 25 detections per test image, no
    # two scores closer than 1e-5 and none within 2e-4 of the threshold (runtimes differ by ~1e-7)
    with torch.no_grad():
        for level in model.head.levels:
            (level if isinstance(level, torch.nn.Conv2d) else level[-1]).weight.mul_(5)
    return model


def _segmenter() -> torch.nn.Module:
    torch.manual_seed(0)
    return randomize_(deeplabv3("edgenext_xx_small", 5), seed=3).eval()


def _images(batch: int, seed: int, size: int = SIZE) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _folded(path) -> bool:
    """The export went through ``fuse_dense``: no BatchNorm left in the ONNX graph (heads and ASPP folded)."""
    import onnx

    return "BatchNormalization" not in {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.fixture(scope="module")
def detector_export(tmp_path_factory):
    """A detector saved as a checkpoint of edgenext train, exported by ``edgenext export --weights`` alone."""
    tmp = tmp_path_factory.mktemp("detect")
    model = _detector()
    cfg = TrainConfig(task="detect", model="edgenext_xx_small", input_size=SIZE).to_dict()
    ckpt = tmp / "best.pth"
    torch.save({"model": model.state_dict(), "config": cfg, "class_names": list(CLASSES), "task": "detect",
                "epoch": 0}, ckpt)
    out = tmp / "detector.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", "--weights", str(ckpt), "--format", "onnx", "--output", str(out), "--json"]) == 0
    return model, out, json.loads(printed.getvalue())


@pytest.fixture(scope="module")
def segmenter_export(tmp_path_factory):
    model = _segmenter()
    out = tmp_path_factory.mktemp("segment") / "segmenter.onnx"
    return model, out, get_task("segment").export_model(model, "onnx", out, input_size=SIZE)


@ORT
@pytest.mark.slow
def test_detector_onnx_parity_at_batch_1_and_2(detector_export):
    from edgenext.deploy.formats.onnx import OnnxRunner

    model, path, result = detector_export
    assert {"format", "path", "size_bytes", "max_abs_diff", "tolerance", "check"} <= result.keys()
    assert result["details"]["batches"] == [1, 2] and result["max_abs_diff"] < TOL
    assert set(result["details"]["max_abs_diff"]) == {"boxes", "scores"} and _folded(path)
    runtime = OnnxRunner(path)
    assert runtime.output_names == ("boxes", "scores") and isinstance(runtime.input_shape[0], str)  # dynamic batch
    raw = SSDLiteRaw(model).eval()
    for batch in (1, 2):
        x = _images(batch, seed=10 + batch)
        with torch.no_grad():
            boxes, scores = raw(x)
        got_boxes, got_scores = runtime.outputs(x)
        anchors = model.anchors().shape[0]
        assert got_boxes.shape == (batch, anchors, 4) and got_scores.shape == (batch, anchors, len(CLASSES))
        assert (got_boxes - boxes).abs().max() < TOL and (got_scores - scores).abs().max() < TOL
        assert torch.allclose(got_scores.sum(-1), torch.ones(batch, anchors), atol=1e-5)  # softmax inside the graph


@ORT
@pytest.mark.slow
def test_segmenter_onnx_parity_at_batch_1_and_2(segmenter_export):
    from edgenext.deploy.formats.onnx import OnnxRunner

    model, path, result = segmenter_export
    assert result.details["batches"] == [1, 2] and result.max_abs_diff < TOL
    assert "max |exported - eager|" in result.parity_line() and "logits" in result.check and _folded(path)
    runtime = OnnxRunner(path)
    for batch in (1, 2):
        x = _images(batch, seed=20 + batch)
        with torch.no_grad():
            want = model(x)
        got = runtime(x)
        assert got.shape == (batch, 5, SIZE, SIZE) and (got - want).abs().max() < TOL


def _same_detections(got: dict, want: dict) -> None:
    assert len(want["boxes"]) > 0, "the test needs detections: raise the class-score spread"
    assert torch.equal(got["labels"], want["labels"])
    assert (got["boxes"] - want["boxes"]).abs().max() < TOL and (got["scores"] - want["scores"]).abs().max() < TOL


@ORT
@pytest.mark.slow
def test_detect_onnx_equals_eager_detections(detector_export):
    model, path, _ = detector_export
    gen = torch.Generator().manual_seed(5)
    # one image at the model's size, one that both resize (boxes come back in its own pixels)
    images = [torch.rand(3, SIZE, SIZE, generator=gen), torch.rand(3, 96, 150, generator=gen),
              torch.rand(3, SIZE, SIZE, generator=gen)]
    with torch.no_grad():
        want = model(images)
    got = detect_onnx(path, images, score_thresh=0.5)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        _same_detections(g, w)
    assert want[1]["boxes"][:, 0::2].max() <= 150 and want[1]["boxes"][:, 1::2].max() <= 96
    # a static-batch file is run in chunks of its batch, the last one padded: the same detections
    detector = OnnxDetector(path, score_thresh=0.5)
    detector.batch = 2
    for g, w in zip(detector(images), want):
        _same_detections(g, w)


def test_detector_exports_at_its_own_size_only(tmp_path):
    model = ssdlite("edgenext_xx_small", 3, image_size=SIZE)
    detect = get_task("detect")
    with pytest.raises(ValueError, match="resizes every image to 128x128"):
        detect.export_model(model, "onnx", tmp_path / "d.onnx", input_size=256)
    with pytest.raises(ValueError, match="exports to onnx, executorch, .*openvino"):
        detect.export_model(model, "torchscript", tmp_path / "d.pt")
    with pytest.raises(ValueError, match="exports an SSDLite"):
        detect.export_model(torch.nn.Conv2d(3, 3, 1), "onnx", tmp_path / "c.onnx")
    with pytest.raises(ValueError, match="exports a DeepLabV3"):
        get_task("segment").export_model(model, "onnx", tmp_path / "s.onnx")
    with pytest.raises(ValueError, match="returns 2 outputs but output_names names 1"):
        export_network(SSDLiteRaw(model), "onnx", tmp_path / "d.onnx", input_size=SIZE, output_names=("logits",))


def test_export_cli_refuses_what_a_dense_export_cannot_do(tmp_path, capsys):
    out = str(tmp_path / "m.pt")
    assert main(["export", "--task", "detect", "--model", "edgenext_xx_small", "--format", "torchscript",
                 "--output", out]) == 2
    assert "--task detect exports to onnx, executorch, " in capsys.readouterr().err
    assert main(["export", "--task", "segment", "--format", "onnx", "--output", out]) == 2
    assert "needs --model BACKBONE" in capsys.readouterr().err


CLASSIFY_KEYS = set(profile_variant("edgenext_xx_small", 64))


def test_profile_detect_json_matches_the_paper(capsys):
    assert main(["profile", "--task", "detect", "--model", "edgenext_small", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert CLASSIFY_KEYS <= row.keys() and row["model"] == "ssdlite_edgenext_small"
    assert row["input_size"] == [320, 320] and row["paper_params"] == 6_200_000 and row["paper_madds"] == 2_100_000_000
    assert abs(row["params"] / 6.2e6 - 1) < 0.02 and abs(row["madds"] / 2.1e9 - 1) < 0.02
    assert row["madds_diff_pct"] == pytest.approx(100 * (row["madds"] / 2.1e9 - 1), abs=1e-3)
    assert row["mobilevit_s"] == {"params": 5_700_000, "madds": 3_400_000_000, "input_size": [320, 320]}


def test_profile_segment_table_has_the_paper_columns(capsys):
    assert main(["profile", "--task", "segment", "--model", "edgenext_xx_small", "--input-size", "128"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "input", "params", "paper", "diff", "MAdds", "paper", "diff"]
    ours = next(line for line in lines if line.startswith("deeplabv3_edgenext_xx_small"))
    assert "128x128" in ours and ours.split()[3] == "-"  # no paper figure for XXS at 128
    peer = next(line for line in lines if line.startswith("deeplabv3_mobilevit_s (paper)"))
    assert "512x512" in peer and "6.40M" in peer and "13.70G" in peer


def test_bench_settings_follow_the_task():
    s = bench_settings("segment")
    # ours on EdgeNeXt-S, and the paper's rival MobileViT-S in the same head (our builder, timm's backbone)
    assert s.models == ("edgenext_small", "mobilevit_s") and s.peers == ("deeplabv3_mobilenet_v3_large",)
    assert s.input_size == 512 and s.batches == (1,)
    assert bench_settings("detect", input_size=(128, 128), batches=None).input_size == (128, 128)
    assert bench_settings().runtimes == BenchSettings().runtimes  # classify: unchanged
    with pytest.raises(ValueError, match="unknown runtimes"):
        run_bench(bench_settings("detect", runtimes=("fused",)))
    with pytest.raises(ValueError, match="unknown task"):
        bench_settings("pose")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["detect", "segment"])
def test_bench_times_ours_beside_torchvision(task, monkeypatch):
    monkeypatch.setattr(BenchSettings, "runs", lambda self, batch: (0, 1))  # one timed repetition
    ort = ["onnxruntime"] if FORMATS["onnx"].installed and task == "detect" else []
    settings = bench_settings(task, models=("edgenext_xx_small",), runtimes=("eager", *ort), peer_runtimes=("eager",),
                              input_size=SIZE, threads=1, quick=True)
    from edgenext.bench.run import machine_info

    # the measured GEMM peak is test_bench.py's subject: a given one spares a worker process here
    rows = run_bench(settings, machine=machine_info(settings, peaks={"fp32": 100.0}))
    peer = bench_plan(task).peers[0]
    head = "ssdlite" if task == "detect" else "deeplabv3"
    assert {(r["model"], r["impl"], r["runtime"]) for r in rows} == (
        {(f"{head}_edgenext_xx_small", "ours", r) for r in ("eager", *ort)} | {(peer, "torchvision", "eager")})
    for row in rows:
        assert not row.get("error") and row["batch"] == 1 and row["input_size"] == [SIZE, SIZE]
        assert row["latency_ms_median"] > 0 and row["madds"] > 0 and row["timed"] == get_task(task).bench_timed
        assert row["task"] == task and row["ratio_vs_torchvision_eager"] > 0
    ref = next(r for r in rows if r["impl"] == "torchvision")
    assert ref["ratio_vs_torchvision_eager"] == 1.0
    ours = next(r for r in rows if r["impl"] == "ours")
    # our network's MAdds are what profile counts (the timed graph is the profiled one)
    assert ours["madds"] == get_task(task).profile_row("edgenext_xx_small", SIZE)["madds"]
    assert np.isfinite([r["latency_ms_p90"] for r in rows]).all()


@pytest.mark.parametrize("task, params", [("detect", 5.7e6), ("segment", 6.4e6)])
def test_mobilevit_s_in_our_heads_has_the_papers_size(task, params, capsys):
    # the paper's rival built by our own builder on timm's MobileViT-S (its 1x1 expansion and classifier unused)
    assert main(["profile", "--task", task, "--model", "mobilevit_s", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["paper_params"] == params and abs(row["params"] / params - 1) < 0.01
    # fvcore counts MobileViT's attention lower than ml-cvnets' counter (its classifier: 1.86G vs the paper's 2.0G)
    assert row["madds"] < row["paper_madds"]


def test_fuse_dense_keeps_a_timm_backbone_and_folds_the_heads():
    from edgenext.dense.backbone import TimmStageMaps
    from edgenext.deploy import fuse_dense

    torch.manual_seed(0)
    model = SSDLiteRaw(ssdlite("mobilevit_xxs", 5, image_size=128)).eval()
    assert isinstance(model.backbone.body, TimmStageMaps) and model.backbone.body.reductions == [16, 32]
    with torch.no_grad():  # the anchors' map sizes, computed without running, are the real ones
        maps = model.backbone(torch.zeros(1, 3, 130, 98))
    assert [tuple(m.shape[-2:]) for m in maps.values()] == model.backbone.map_sizes((130, 98))
    fused = fuse_dense(model)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert all((a - b).abs().max() < 1e-4 for a, b in zip(fused(x), model(x)))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.head.modules())
    with pytest.raises(ValueError, match="random weights"):
        ssdlite("mobilevit_s", 5, backbone_weights="weights.pth")


def test_dense_bench_plot_uses_the_published_dense_metrics(tmp_path):
    from edgenext.bench.plot import metric_label, plot_summary, published_top1

    assert published_top1("ssdlite_edgenext_small")[0] == 27.9 and published_top1("deeplabv3_mobilevit_s")[0] == 79.1
    assert published_top1("deeplabv3_mobilenet_v3_large") is None  # torchvision's mIoU is not on VOC val
    assert metric_label(["ssdlite_mobilevit_s"]).startswith("COCO") and metric_label(["edgenext_small"]).startswith("Image")
    rows = [dict(model=m, impl=i, runtime="onnxruntime", precision="fp32", batch=1, latency_ms_median=t,
                 input_size=[320, 320], task="detect")
            for m, i, t in (("ssdlite_edgenext_small", "ours", 15.0), ("ssdlite_mobilevit_s", "ours", 20.0),
                            ("ssdlite320_mobilenet_v3_large", "torchvision", 8.0))]
    paths = plot_summary(rows, tmp_path / "dense.png", {"cpu": "test CPU"})
    assert [p.name for p in paths] == ["dense_pareto.png", "dense_runtimes.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
