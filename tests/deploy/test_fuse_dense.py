"""fuse for features_only backbones (output stride 32 / 16 / 8) and fuse_dense for SSDLite and
DeepLabv3: the same outputs as the training models, and fused dense exports that pass parity
against the unfused model in ExecuTorch and OpenVINO (ONNX Runtime: tests/dense/test_export_bench.py;
LiteRT and MNN: test_litert_mnn.py; ncnn: test_ncnn.py)."""

import pytest
import torch

import edgenext
from edgenext.deploy import fuse, fuse_dense
from edgenext.deploy.formats import FORMATS
from edgenext.deploy.fusion import FusedEdgeNeXtFeatures, fold_conv_batchnorms
from edgenext.dense.deeplabv3 import deeplabv3
from edgenext.dense.ssdlite import SSDLiteRaw, ssdlite
from edgenext.dense.timed import DetectionNetwork, SegmentationNetwork
from edgenext.tasks import get_task

TOL = 1e-5
DENSE_TOL = 1e-4


@pytest.mark.parametrize("output_stride", [32, 16, 8])
@pytest.mark.parametrize("name", edgenext.list_models())
def test_fused_features_only_backbones_give_the_same_maps(name, output_stride, randomized):
    model = randomized(edgenext.create_model(name, features_only=True, output_stride=output_stride))
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x)
        for size in ((64, 96), None):  # positional encodings precomputed, or computed per call
            fused = fuse(model, size)
            assert isinstance(fused, FusedEdgeNeXtFeatures) and fused.reductions == model.reductions
            got = fused(x)
            assert [g.shape for g in got] == [w.shape for w in want]
            assert max((g - w).abs().max().item() for g, w in zip(got, want)) < TOL
    # the dilated stages keep their dilation, and the stride-1 downsampling its padding
    if output_stride < 32:
        dilations = {m.dilation for m in fused.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
        assert max(d[0] for d in dilations) == 32 // output_stride


def test_a_truncated_backbone_fuses_to_its_stages(randomized):
    model = randomized(edgenext.create_model("edgenext_x_small", features_only=True, out_indices=(0, 1),
                                              output_stride=8))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert all((a - b).abs().max() < TOL for a, b in zip(fuse(model, 64)(x), model(x)))


@pytest.mark.parametrize("name", edgenext.list_models())
def test_fused_ssdlite_and_deeplabv3_equal_the_training_models(name, randomized):
    torch.manual_seed(0)
    detector = randomized(ssdlite(name, 5, image_size=128))
    raw = SSDLiteRaw(detector).eval()
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        boxes, scores = raw(x)
        fused_raw = fuse_dense(raw)
        got_boxes, got_scores = fused_raw(x)
        assert (got_boxes - boxes).abs().max() < DENSE_TOL and (got_scores - scores).abs().max() < DENSE_TOL
        # the SSDLite itself: its backbone and heads fused (the transform still normalises)
        fused_det = fuse_dense(detector)
        normalized = (x - raw.normalize.mean) / raw.normalize.std
        want = detector.head(list(detector.backbone(normalized).values()))
        got = fused_det.head(list(fused_det.backbone(normalized).values()))
        assert all((got[k] - want[k]).abs().max() < DENSE_TOL for k in want)
        # the bench's network on a normalised tensor: the same numbers as the head above
        timed = DetectionNetwork(detector).eval()
        assert all((g - w).abs().max() < DENSE_TOL for g, w in zip(fuse_dense(timed, 128)(normalized), timed(normalized)))
        for os_ in (16, 8):
            segmenter = randomized(deeplabv3(name, 5, output_stride=os_))
            y = torch.rand(1, 3, 80, 96, generator=torch.Generator().manual_seed(3))
            want = segmenter(y)
            assert (fuse_dense(segmenter, (80, 96))(y) - want).abs().max() < DENSE_TOL * max(1.0, want.abs().max())
            timed = SegmentationNetwork(segmenter).eval()
            assert (fuse_dense(timed, (80, 96))(y) - timed(y)).abs().max() < DENSE_TOL * max(1.0, want.abs().max())
    for fused in (fused_raw, fused_det):
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.modules())
        assert not any(p.requires_grad for p in fused.parameters())
    # the originals are untouched: still training-layout modules with their BatchNorms
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in detector.modules())
    assert type(raw.normalize).__name__ == "Normalize" and type(segmenter.normalize).__name__ == "Normalize"


def test_fold_conv_batchnorms_folds_conv_bn_pairs_only(randomized):
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.BatchNorm2d(4))  # the last BN follows a ReLU: not foldable
    randomized(seq)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = seq(x)
        assert fold_conv_batchnorms(seq) == 1
        assert (seq(x) - want).abs().max() < TOL
    assert isinstance(seq[1], torch.nn.Identity) and isinstance(seq[3], torch.nn.BatchNorm2d)


def test_fuse_dense_refuses_other_models():
    with pytest.raises(ValueError, match="SSDLite, SSDLiteRaw or DeepLabV3"):
        fuse_dense(torch.nn.Conv2d(3, 3, 1))


#: ONNX Runtime is not here: tests/dense/test_export_bench.py exports a fused detector and segmenter to
#: ONNX (full-depth edgenext_xx_small), checks them against the unfused models at batch 1 and 2, and that
#: no BatchNorm is left in the graph; a second pair of ONNX exports would prove nothing more
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["executorch", "openvino"])
@pytest.mark.parametrize("task", ["detect", "segment"])
def test_fused_dense_exports_pass_parity_against_the_unfused_model(task, fmt, tmp_path, dense_parity_model):
    if not FORMATS[fmt].installed:
        pytest.skip(f"{fmt} is not installed")
    model, size = dense_parity_model(task)  # conftest's: every block kind on a shallow backbone
    # OpenVINO converts a symbolic batch in twice the time: its dynamic batch is the segmenter's to check
    batch = 1 if (task, fmt) == ("detect", "openvino") else None
    result = get_task(task).export_model(model, fmt, tmp_path / f"model{FORMATS[fmt].suffix}", input_size=size,
                                         batch=batch)
    assert result.max_abs_diff is not None and result.max_abs_diff < DENSE_TOL
    # a mobile runtime's static program is checked at batch 1, the others at 1 and 2 (a dynamic batch)
    assert result.details["batches"] == ([1] if FORMATS[fmt].static_batch or batch else [1, 2])
