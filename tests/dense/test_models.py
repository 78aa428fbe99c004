"""SSDLite and DeepLabv3 on EdgeNeXt: sizes against the paper, anchors against ml-cvnets'
formula, train / eval behaviour, export outputs, freezing and backbone weights."""

import itertools
import math

import pytest
import torch
from torchvision.models.detection.image_list import ImageList

import edgenext
from edgenext.constants import IMAGENET_MEAN, IMAGENET_STD
from edgenext.tasks import get_task
from edgenext.dense import SSDLiteRaw, deeplabv3, postprocess_detections, ssdlite
from edgenext.models import get_variant, ours_to_official, save_weights

VARIANTS = edgenext.list_models()


def within(value, target, pct):
    return abs(value - target) <= pct / 100 * target


@pytest.mark.slow
def test_ssdlite_edgenext_small_matches_the_paper_size():
    row = get_task("detect").profile_row("edgenext_small")  # 81 classes (COCO's 80 + background), 320x320
    assert row["input_size"] == [320, 320]
    assert within(row["params"], 6.2e6, 2) and within(row["madds"], 2.1e9, 2), row
    assert (row["paper_params"], row["paper_madds"]) == (6_200_000, 2_100_000_000)


@pytest.mark.slow
def test_deeplabv3_edgenext_small_matches_the_paper_size():
    row = get_task("segment").profile_row("edgenext_small")  # 21 classes (VOC's 20 + background), 512x512
    assert row["input_size"] == [512, 512]
    assert within(row["params"], 6.5e6, 5) and within(row["madds"], 8.7e9, 5), row
    # ml-cvnets' own ASPP width (256) overshoots: it is not the paper's configuration
    wide = get_task("segment").profile_row("edgenext_small", aspp_channels=256)
    assert not within(wide["params"], 6.5e6, 5)


def mlcvnets_anchors(image_hw, map_sizes, aspect_ratios, min_ratio=0.1, max_ratio=1.05):
    """ml-cvnets v0.1's SSDAnchorGenerator, written out: per map, per cell (row-major), boxes of
    size s_k, sqrt(s_k s_k+1), then (s_k sqrt(r), s_k / sqrt(r)) and its transpose per ratio r,
    centred at ((x + 0.5) / f_w, (y + 0.5) / f_h), clamped to [0, 1] in centre form; returned in
    (x1, y1, x2, y2) image pixels."""
    n = len(map_sizes)
    scales = [min_ratio + (max_ratio - min_ratio) * k / n for k in range(n + 1)]
    boxes = []
    for k, ((fh, fw), ratios) in enumerate(zip(map_sizes, aspect_ratios)):
        s, s_big = scales[k], math.sqrt(scales[k] * scales[k + 1])
        for y, x in itertools.product(range(fh), range(fw)):
            cx, cy = (x + 0.5) / fw, (y + 0.5) / fh
            cell = [(cx, cy, s, s), (cx, cy, s_big, s_big)]
            for r in ratios:
                cell += [(cx, cy, s * math.sqrt(r), s / math.sqrt(r)), (cx, cy, s / math.sqrt(r), s * math.sqrt(r))]
            boxes += [tuple(min(max(v, 0.0), 1.0) for v in b) for b in cell]
    t = torch.tensor(boxes, dtype=torch.float64)
    h, w = image_hw
    scale = torch.tensor([w, h], dtype=torch.float64)
    return torch.cat([(t[:, :2] - t[:, 2:] / 2) * scale, (t[:, :2] + t[:, 2:] / 2) * scale], dim=1)


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return ssdlite("edgenext_xx_small", num_classes=5, image_size=128)


def test_3232_anchors_at_320_equal_to_the_mlcvnets_formula():
    model = ssdlite("edgenext_xx_small")
    anchors = model.anchors()
    assert anchors.shape == (3232, 4)
    ref = mlcvnets_anchors((320, 320), [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)], [(2, 3)] * 5 + [(2,)])
    torch.testing.assert_close(anchors.double(), ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize("image_size", [320, (200, 296)])
def test_anchors_follow_the_real_feature_maps(image_size):
    model = ssdlite("edgenext_xx_small", image_size=image_size).eval()
    h, w = model.image_size
    x = torch.zeros(1, 3, h, w)
    with torch.no_grad():
        maps = list(model.backbone(x).values())
        head = model.head(maps)
    real = model.anchor_generator(ImageList(x, [(h, w)]), maps)[0]
    assert [tuple(m.shape[-2:]) for m in maps] == model.backbone.map_sizes((h, w))
    torch.testing.assert_close(model.anchors(), real)
    assert head["bbox_regression"].shape == (1, real.shape[0], 4)
    assert head["cls_logits"].shape == (1, real.shape[0], 81)


def test_ssd_settings_are_mlcvnets(detector):
    assert detector.box_coder.weights == (10.0, 10.0, 5.0, 5.0)  # variances 0.1 / 0.2
    assert detector.proposal_matcher.high_threshold == 0.5
    assert detector.nms_thresh == 0.5 and detector.neg_to_pos_ratio == 3
    assert detector.backbone.out_channels == [88, 168, 256, 128, 128, 64]
    # projection only where the widths differ (the first two levels), pooled level a single 1x1
    assert [len(level) for level in detector.head.levels[:5]] == [3, 3, 2, 2, 2]
    assert isinstance(detector.head.levels[5], torch.nn.Conv2d) and detector.head.levels[5].kernel_size == (1, 1)


def test_the_transform_normalises_once_and_does_not_resize_an_image_at_size(detector):
    image = torch.rand(3, 128, 128)
    detector.eval()
    images, _ = detector.transform([image])
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(images.tensors[0], (image - mean) / std)


def detection_batch():
    """Two images with a box at the scale of each of the six levels (13 to 114 pixels at 128)."""
    images = [torch.rand(3, 128, 128), torch.rand(3, 96, 160)]
    targets = [
        dict(boxes=torch.tensor([[10.0, 10, 23, 23], [60, 60, 93, 93], [27, 27, 101, 101]]), labels=torch.tensor([1, 3, 2])),
        # the second image is 160x96: its boxes are scaled by (128/160, 128/96) on the way in
        dict(boxes=torch.tensor([[6.0, 4, 72, 43], [21, 13, 139, 83], [9, 5, 151, 91]]), labels=torch.tensor([4, 1, 2])),
    ]
    return images, targets


def test_ssdlite_train_mode_returns_finite_losses_and_every_parameter_learns():
    torch.manual_seed(0)
    model = ssdlite("edgenext_xx_small_bn_hs", num_classes=5, image_size=128).train()
    losses = model(*detection_batch())
    assert set(losses) == {"bbox_regression", "classification"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None for g in grads.values())
    # NOTE: ml-cvnets' extra blocks put a train-mode BN after the 1x1 conv that follows the
    # depth-wise conv's BN: that BN's per-channel shift is removed again, so its bias has no gradient.
    cancelled = {n for n in grads if n.startswith("backbone.extra.") and n.endswith(".0.1.bias")}
    assert len(cancelled) == 3 and all(grads[n].abs().max() < 1e-5 for n in cancelled)
    assert not [n for n, g in grads.items() if n not in cancelled and not g.abs().sum() > 0]


def test_ssdlite_eval_detections_are_in_input_image_coordinates(detector):
    images, _ = detection_batch()
    detector.eval()
    with torch.no_grad():
        detections = detector(images)
    assert len(detections) == 2
    for image, det in zip(images, detections):
        h, w = image.shape[-2:]
        n = det["boxes"].shape[0]
        assert 0 < n <= 200 * 4 and det["scores"].shape == det["labels"].shape == (n,)
        assert det["labels"].min() >= 1 and det["labels"].max() <= 4  # 0 is the background
        assert (det["scores"] > 0.05).all() and (det["scores"] <= 1).all()
        boxes = det["boxes"]
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= h).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert detections[1]["boxes"][:, 2].max() > 128  # mapped back to the 160-wide image, not 128


def test_raw_outputs_with_postprocessing_equal_the_eval_detections(detector):
    detector.eval()
    raw = SSDLiteRaw(detector)
    images = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        boxes, scores = raw(images)
        detections = detector(list(images))
    assert boxes.shape == (2, 520, 4) and scores.shape == (2, 520, 5)
    torch.testing.assert_close(scores.sum(-1), torch.ones(2, 520))
    for mine, ref in zip(postprocess_detections(boxes.numpy(), scores.numpy()), detections):
        assert torch.equal(mine["labels"], ref["labels"])
        torch.testing.assert_close(mine["boxes"], ref["boxes"], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(mine["scores"], ref["scores"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="128x128"):
        raw(torch.rand(1, 3, 96, 128))


def test_postprocess_thresholds_and_suppresses_per_class():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]])
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.0, 0.7], [0.995, 0.005, 0.0]])
    (det,) = postprocess_detections(boxes, scores, score_thresh=0.01, nms_thresh=0.5)
    # box 1 overlaps box 0 (IoU 0.81) in the same class: suppressed; box 2 is another class: kept
    assert det["labels"].tolist() == [1, 2] and det["scores"].tolist() == pytest.approx([0.9, 0.7])
    assert postprocess_detections(boxes, scores, detections_per_img=1)[0]["labels"].tolist() == [1]


def test_postprocess_defaults_are_ml_cvnets_per_class_nms_then_200_per_class():
    # ml-cvnets v0.1's SSD.predict: per class, probabilities > 0.05, torchvision NMS at 0.5, the first
    # 200 survivors; no cap per image. Reference written here class by class with torchvision's nms.
    from torchvision.ops import nms

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(3000, 2, generator=g) * 300
    boxes = torch.cat([xy, xy + 5 + torch.rand(3000, 2, generator=g) * 40], 1)
    scores = torch.softmax(torch.randn(3000, 4, generator=g) * 3, -1)
    (det,) = postprocess_detections(boxes, scores)
    expected = []
    for c in range(1, 4):
        keep = scores[:, c] > 0.05
        b, s = boxes[keep], scores[keep, c]
        k = nms(b, s, 0.5)[:200]
        expected += [(c, float(v)) for v in s[k]]
    assert len(expected) > 400  # each class hits the cap, so the cap is what is tested
    got = sorted(zip(det["labels"].tolist(), det["scores"].tolist()))
    assert got == sorted(expected)
    assert det["scores"].tolist() == sorted(det["scores"].tolist(), reverse=True)


def test_deeplabv3_train_loss_ignores_255_and_every_parameter_learns():
    torch.manual_seed(0)
    model = deeplabv3("edgenext_xx_small_bn_hs", num_classes=4).train()
    images = torch.rand(2, 3, 64, 80)
    masks = torch.randint(0, 4, (2, 64, 80))
    masks[:, :20] = 255
    out = model(images, masks)
    assert set(out) == {"loss"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    torch.manual_seed(1)
    loss = model(images, masks)["loss"]
    torch.manual_seed(1)  # the same dropout
    logits = model.logits(images)
    keep = masks != 255
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[keep], masks[keep]))
    with pytest.raises(ValueError, match="needs masks"):
        model(images)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_deeplabv3_eval_logits_at_the_input_size(output_stride):
    model = deeplabv3("edgenext_xx_small", num_classes=3, output_stride=output_stride).eval()
    assert model.backbone.reductions == [output_stride]
    rate = model.head.aspp.convs[1][0].dilation[0]
    assert rate == 6 * 16 // output_stride
    assert model.head.aspp.project[-1].p == 0.1 and model.head.dropout.p == 0.1
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 70, 90))
    assert logits.shape == (2, 3, 70, 90) and torch.isfinite(logits).all()


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def train_step(model, batch):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    out = model(*batch)
    sum(out.values()).backward()
    opt.step()


def test_freezing_the_backbone_keeps_its_weights_and_statistics():
    torch.manual_seed(0)
    model = ssdlite("edgenext_xx_small_bn_hs", num_classes=5, image_size=128, freeze_backbone=True)
    assert not any(p.requires_grad for p in model.backbone.body.parameters())
    before, extra_before = snapshot(model.backbone.body), snapshot(model.backbone.extra)
    train_step(model, detection_batch())
    after = snapshot(model.backbone.body)
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats included
    assert any(not torch.equal(v, model.backbone.extra.state_dict()[k]) for k, v in extra_before.items())


def test_freezing_the_first_stages():
    torch.manual_seed(0)
    model = deeplabv3("edgenext_xx_small_bn_hs", num_classes=3, freeze_stages=2)
    body = model.backbone
    frozen = [body.stem, body.stages[0], body.stages[1]]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in body.stages[2].parameters())
    before = [snapshot(m) for m in frozen]
    stage2 = snapshot(body.stages[2])
    train_step(model, (torch.rand(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))))
    assert all(torch.equal(b[k], m.state_dict()[k]) for b, m in zip(before, frozen) for k in b)
    assert any(not torch.equal(v, body.stages[2].state_dict()[k]) for k, v in stage2.items())
    with pytest.raises(ValueError, match="freeze_stages=5"):
        deeplabv3("edgenext_xx_small", freeze_stages=5)


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_is_a_backbone(name):
    with torch.device("meta"):
        det = ssdlite(name).eval()
        seg = deeplabv3(name).eval()
        heads = det.head(list(det.backbone(torch.empty(2, 3, 320, 320)).values()))
        logits = seg(torch.empty(2, 3, 96, 128))
    channels = get_variant(name)[0].config["dims"]
    assert det.backbone.out_channels == [channels[2], channels[3], 256, 128, 128, 64]
    assert heads["bbox_regression"].shape == (2, 3232, 4) and heads["cls_logits"].shape == (2, 3232, 81)
    assert logits.shape == (2, 21, 96, 128) and seg.output_stride == 16


@pytest.mark.parametrize("with_classifier", [True, False])
def test_backbone_weights_load_from_a_classifier_checkpoint(tmp_path, randomize, with_classifier):
    source = randomize(edgenext.create_model("edgenext_xx_small", num_classes=10 if with_classifier else 0), seed=3)
    path = save_weights(source, tmp_path / "backbone.safetensors")
    official = tmp_path / "official.pth"
    torch.save({"model": ours_to_official(source.state_dict())}, official)
    for weights in (path, official):
        model = ssdlite("edgenext_xx_small", backbone_weights=weights, image_size=128)
        body = model.backbone.body.state_dict()
        assert body and all(torch.equal(v, source.state_dict()[k]) for k, v in body.items())
        seg = deeplabv3("edgenext_xx_small", backbone_weights=weights, output_stride=8)
        assert all(torch.equal(v, source.state_dict()[k]) for k, v in seg.backbone.state_dict().items())


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="background"):
        ssdlite("edgenext_xx_small", num_classes=1)
    with pytest.raises(ValueError, match="output_stride=32"):
        deeplabv3("edgenext_xx_small", output_stride=32)
    with pytest.raises(ValueError, match="proj_channels"):
        ssdlite("edgenext_xx_small", proj_channels=(64, 64))
    # a bench peer that is not one of torchvision's SSDs: the error names those it knows
    with pytest.raises(ValueError, match="ssdlite320_mobilenet_v3_large"):
        get_task("detect").torchvision_network("fasterrcnn_resnet50_fpn")
