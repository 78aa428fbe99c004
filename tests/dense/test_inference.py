"""Evaluating and predicting with trained detectors and segmenters: ``load_dense_model``,
``evaluate_detector``, ``predict_detections`` and ``edgenext eval`` / ``predict --task detect|segment``."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

import edgenext
from edgenext.cli.main import main
from edgenext.dense import ssdlite
from edgenext.dense.data import DigitScenes, read_mask
from edgenext.inference.dense import LoadedDense, evaluate_detector, predict_detections
from edgenext.models import CheckpointError
from edgenext.tasks import build_task, resolve_task, train
from edgenext.tasks.dense_base import load_dense_model
from edgenext.train import TrainConfig, apply_overrides

SIZE = 64
SCENES = dict(digit_size=[16, 32])
VAL_SCENES = 8
DIGIT_NAMES = ["background"] + [str(d) for d in range(10)]


#: head options off their defaults, so rebuilding a model from its checkpoint must honour them
TASK_KWARGS = {"detect": dict(proj_channels=[96, 64, 64, 32, 32, 32]), "segment": dict(aspp_channels=32, output_stride=8)}


def _tiny_config(task: str, output) -> TrainConfig:
    transform = {"photometric": False} if task == "segment" else {"photometric": False, "iou_crop": False}
    return apply_overrides(TrainConfig(), dict(
        task=task, task_kwargs=TASK_KWARGS[task], model="edgenext_xx_small", data="digits", input_size=SIZE,
        multi_scale=False,
        data_kwargs=dict(num_scenes=16, val_scenes=VAL_SCENES, transform=transform, **SCENES),
        epochs=1, batch_size=8, lr=1e-3, warmup_epochs=0, workers=0, threads=1, amp=False, hflip=0.0,
        progress=False, tensorboard=False, plot=False, output=str(output), resume=False,
    )).validate()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny detection and one tiny segmentation run on digit scenes: {task: (config, best.pth)}."""
    out = {}
    for task in ("detect", "segment"):
        cfg = _tiny_config(task, tmp_path_factory.mktemp(task))
        result = train(cfg)
        out[task] = (cfg, result.best_checkpoint)
    return out


SCENE_TARGETS = {"detect": "boxes", "segment": "mask"}


def _val_scenes(task: str) -> DigitScenes:
    """The runs' validation scenes, rendered again (a scene is a function of seed, split and index)."""
    return DigitScenes("val", SCENE_TARGETS[task], image_size=SIZE, num_scenes=VAL_SCENES, seed=0, **SCENES)


def _recorded_score(best, key: str) -> float:
    """The validation figure of the weights best.pth holds, as the run logged it."""
    ckpt = torch.load(best, weights_only=True)
    prefix = "ema_val_" if ckpt["source"] == "ema" else "val_"
    return ckpt["metrics"][prefix + key]


def write_coco(root, scenes: DigitScenes, *, ext: str = "png", names=tuple(DIGIT_NAMES[1:])):
    """A COCO 2017 layout (val2017/ and annotations/instances_val2017.json) of the scenes; category
    id = label, so the contiguous labels are the scenes' own."""
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations = [], []
    for i in range(len(scenes)):
        scene = scenes.render(i)
        Image.fromarray(scene["image"]).save(root / "val2017" / f"{i}.{ext}")
        images.append(dict(id=i, file_name=f"{i}.{ext}", width=SIZE, height=SIZE))
        for box, label in zip(scene["boxes"].tolist(), scene["labels"].tolist()):
            x1, y1, x2, y2 = box
            annotations.append(dict(id=len(annotations) + 1, image_id=i, category_id=label,
                                    bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), iscrowd=0))
    categories = [dict(id=k + 1, name=n) for k, n in enumerate(names)]
    ann = root / "annotations" / "instances_val2017.json"
    ann.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return root / "val2017", ann


def write_voc(root, scenes: DigitScenes):
    """Pascal VOC's layout: JPEG photos, palette-PNG masks, the val split list."""
    voc = root / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    for i in range(len(scenes)):
        scene = scenes.render(i)
        Image.fromarray(scene["image"]).save(voc / "JPEGImages" / f"{i:06d}.jpg", quality=95)
        mask = Image.fromarray(scene["mask"].astype(np.uint8)).convert("P")
        mask.putpalette([v for c in range(256) for v in ((c * 40) % 256, (c * 90) % 256, (c * 150) % 256)])
        mask.save(voc / "SegmentationClass" / f"{i:06d}.png")
    (voc / "ImageSets/Segmentation/val.txt").write_text("".join(f"{i:06d}\n" for i in range(len(scenes))))
    return root


def write_paired(root, scenes: DigitScenes):
    """Lossless images and class-index masks with the same stems."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(len(scenes)):
        scene = scenes.render(i)
        Image.fromarray(scene["image"]).save(root / "images" / f"s{i}.png")
        Image.fromarray(scene["mask"].astype(np.uint8)).save(root / "masks" / f"s{i}.png")
    return root / "images", root / "masks"


@pytest.mark.slow
@pytest.mark.parametrize("task", ["detect", "segment"])
def test_load_dense_model_rebuilds_the_trained_network(runs, task):
    cfg, best = runs[task]
    ckpt = torch.load(best, weights_only=True)
    trained = build_task(cfg).build_model(len(ckpt["class_names"]), load_finetune=False)
    trained.load_state_dict(ckpt["model"])
    trained.eval()
    loaded = load_dense_model(best)
    assert loaded.task == task and loaded.class_names == DIGIT_NAMES and loaded.input_size == SIZE
    assert not loaded.model.training
    images = torch.stack([_val_scenes(task)[i][0] for i in range(3)])
    with torch.no_grad():
        if task == "detect":
            want, got = trained(list(images)), loaded.model(list(images))
            assert sum(len(d["boxes"]) for d in want) > 0
            for w, g in zip(want, got):
                for key in ("boxes", "scores", "labels"):
                    assert torch.equal(w[key], g[key])
        else:
            assert torch.equal(trained(images), loaded.model(images))


@pytest.mark.slow
def test_eval_detect_on_a_coco_folder_reproduces_the_runs_score(runs, tmp_path, capsys, monkeypatch):
    _, best = runs["detect"]
    images, ann = write_coco(tmp_path / "coco", _val_scenes("detect"))
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("mmap"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert main(["eval", str(tmp_path / "coco"), "--weights", str(best), "--json", "--workers", "0"]) == 0
    assert calls == [True]  # the task came from the checkpoint, read once (memory-mapped)
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["task"] == "detect"
    assert (metrics["count"], metrics["skipped"], metrics["images"]) == (VAL_SCENES, 0, VAL_SCENES)
    for key in ("map", "map50", "map75"):
        assert 0.0 <= metrics[key] <= 1.0
    # the same images, boxes and code as the run's own validation: the same figure
    assert metrics["map"] == pytest.approx(_recorded_score(best, "map"), abs=1e-9)

    args = ["eval", "--task", "detect", "--weights", str(best), "--val-images", str(images), "--val-ann", str(ann)]
    assert main(args + ["--workers", "0"]) == 0
    assert capsys.readouterr().out.startswith(f"COCO box AP {metrics['map']:.3f} AP50 {metrics['map50']:.3f}")


@pytest.mark.slow
def test_eval_detect_refuses_data_with_other_categories(runs, tmp_path):
    names = [f"digit {d}" for d in range(10)]
    images, ann = write_coco(tmp_path / "coco", _val_scenes("detect"), names=names)
    loaded = load_dense_model(runs["detect"][1])
    with pytest.raises(ValueError, match=r"instances_val2017\.json: its categories \(digit 0, .*not the classes"):
        evaluate_detector(loaded, images=images, ann=ann, workers=0, progress=False)


@pytest.mark.slow
def test_eval_segment_on_voc_and_paired_folders(runs, tmp_path, capsys):
    _, best = runs["segment"]
    scenes = _val_scenes("segment")
    assert main(["eval", str(write_voc(tmp_path / "voc", scenes)), "--weights", str(best), "--json", "--workers", "0"]) == 0
    voc = json.loads(capsys.readouterr().out)
    assert voc["task"] == "segment" and voc["count"] == VAL_SCENES
    assert 0.0 <= voc["miou"] <= 1.0 and 0.0 <= voc["pixel_acc"] <= 1.0 and voc["loss"] > 0

    images, masks = write_paired(tmp_path / "paired", scenes)
    args = ["eval", "--task", "segment", "--weights", str(best), "--val-images", str(images), "--val-masks", str(masks)]
    assert main(args + ["--json", "--workers", "0"]) == 0
    paired = json.loads(capsys.readouterr().out)
    # lossless copies of the run's validation scenes: the run's own figure
    assert paired["miou"] == pytest.approx(_recorded_score(best, "miou"), abs=1e-9)
    assert paired["pixel_acc"] == pytest.approx(_recorded_score(best, "pixel_acc"), abs=1e-9)


@pytest.mark.slow
def test_predict_detect_draws_each_image_and_maps_boxes_to_its_pixels(runs, tmp_path, capsys):
    _, best = runs["detect"]
    scene = _val_scenes("detect").render(0)["image"]
    Image.fromarray(scene).save(tmp_path / "small.png")
    Image.fromarray(scene).resize((2 * SIZE, 2 * SIZE), Image.NEAREST).save(tmp_path / "big.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 100, 3), dtype=np.uint8)).save(tmp_path / "wide.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    paths = [str(tmp_path / n) for n in ("small.png", "big.png", "wide.jpg", "broken.jpg")]
    out = tmp_path / "out"
    assert main(["predict", *paths, "--weights", str(best), "--output", str(out), "--score-thresh", "0", "--json"]) == 1
    small, big, wide, broken = json.loads(capsys.readouterr().out)
    assert broken["image"] == paths[3] and "error" in broken
    assert sorted(p.name for p in out.iterdir()) == ["big_boxes.jpg", "small_boxes.jpg", "wide_boxes.jpg"]
    for entry in (small, big, wide):
        assert entry["detections"]
        with Image.open(entry["picture"]) as picture:
            assert picture.size == (entry["width"], entry["height"])
        for d in entry["detections"]:
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 <= x2 <= entry["width"] and 0 <= y1 <= y2 <= entry["height"]
            assert DIGIT_NAMES[d["index"]] == d["label"] and 0 <= d["score"] <= 1
    # the network-sized picture gets the model's own detections; the 2x one is resized (antialiased, as
    # eval does) to the network's size, and its boxes come back doubled
    model = load_dense_model(best).model
    with torch.no_grad():
        want = model([torch.from_numpy(scene).permute(2, 0, 1) / 255.0])[0]  # HWC -> CHW
        big_pixels = torch.from_numpy(np.array(Image.open(paths[1]).convert("RGB"))).permute(2, 0, 1)
        shrunk = v2.functional.resize(big_pixels, [SIZE, SIZE], antialias=True)
        want_big = model([shrunk / 255.0])[0]
    assert torch.allclose(torch.tensor([d["box"] for d in small["detections"]]), want["boxes"], atol=1e-4)
    assert [d["score"] for d in big["detections"]] == pytest.approx(want_big["scores"].tolist(), abs=1e-6)
    assert torch.allclose(torch.tensor([d["box"] for d in big["detections"]]), 2 * want_big["boxes"], atol=1e-3)
    assert main(["predict", paths[0], "--weights", str(best), "--output", str(out), "--score-thresh", "0.99"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{paths[0]}: 0 object(s) at score >= 0.99: nothing" and str(out) in lines[-1]


@pytest.mark.slow
def test_predict_segment_writes_masks_in_image_pixels(runs, tmp_path, capsys):
    _, best = runs["segment"]
    image, _ = _val_scenes("segment")[0]
    Image.fromarray(_val_scenes("segment").render(0)["image"]).save(tmp_path / "scene.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(tmp_path / "odd.png")
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "scene.png"), str(tmp_path / "odd.png"), "--weights", str(best),
                 "--output", str(out), "--json"]) == 0
    scene, odd = json.loads(capsys.readouterr().out)
    for entry in (scene, odd):
        mask = read_mask(entry["mask"])
        assert mask.shape == (entry["height"], entry["width"])
        counts = np.bincount(mask.ravel(), minlength=len(DIGIT_NAMES))
        assert len(counts) == len(DIGIT_NAMES)
        assert {c["index"]: c["pixels"] for c in entry["classes"]} == {i: int(n) for i, n in enumerate(counts) if n}
        assert sum(c["fraction"] for c in entry["classes"]) == pytest.approx(1.0)
        with Image.open(entry["picture"]) as picture:
            assert picture.size == (entry["width"], entry["height"])
    loaded = load_dense_model(best)
    with torch.no_grad():
        want = loaded.model(image[None]).argmax(1)[0].numpy()
    assert np.array_equal(read_mask(scene["mask"]), want)


def _save_run_checkpoint(path, task: str, state, class_names):
    cfg = TrainConfig(task=task, model="edgenext_xx_small").to_dict()
    torch.save({"model": state, "config": cfg, "class_names": class_names, "task": task, "epoch": 0}, path)
    return path


def test_a_classification_checkpoint_is_refused_by_name(tmp_path, capsys):
    net = edgenext.create_model("edgenext_xx_small", num_classes=3)
    ckpt = _save_run_checkpoint(tmp_path / "classifier.pth", "classify", net.state_dict(), ["a", "b", "c"])
    task, peeked = resolve_task(None, ckpt)
    assert task.name == "classify" and peeked is not None and peeked.source == str(ckpt)
    assert main(["eval", str(tmp_path), "--task", "detect", "--weights", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert f"{ckpt}: a classification checkpoint (edgenext train --task classify)" in err and "--task classify" in err
    assert main(["predict", str(tmp_path / "x.png"), "--task", "segment", "--weights", str(ckpt), "--output",
                 str(tmp_path / "out")]) == 2
    assert f"{ckpt}: a classification checkpoint" in capsys.readouterr().err


def test_foreign_files_and_the_other_task_are_refused_by_name(tmp_path):
    bare = tmp_path / "bare.pth"
    torch.save({"weight": torch.zeros(2)}, bare)
    with pytest.raises(CheckpointError, match=r"bare\.pth: not a checkpoint of edgenext train"):
        load_dense_model(bare, task="detect")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is no checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pth: "):
        load_dense_model(junk)
    detector = _save_run_checkpoint(tmp_path / "det.pth", "detect", {"w": torch.zeros(1)}, DIGIT_NAMES)
    task, peeked = resolve_task(None, detector)
    assert task.name == "detect" and peeked is not None and peeked.source == str(detector)
    with pytest.raises(CheckpointError, match=r"det\.pth: a detection checkpoint .*--task segment was asked for"):
        load_dense_model(peeked, task="segment")
    with pytest.raises(CheckpointError, match=r"det\.pth: its weights do not fit the detection network"):
        load_dense_model(detector, task="detect")


@pytest.fixture
def tiny_detector():
    model = ssdlite("edgenext_xx_small", 3, image_size=SIZE).eval()
    return LoadedDense(model=model, task="detect", class_names=["background", "cat", "dog"], input_size=SIZE)


def test_predict_reports_unreadable_images_and_goes_on(tiny_detector, tmp_path):
    Image.new("RGB", (50, 30), (200, 30, 30)).save(tmp_path / "ok.png")
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    paths = [tmp_path / "bad.jpg", tmp_path / "missing.png", tmp_path / "ok.png"]
    bad, missing, ok = predict_detections(tiny_detector, paths, output_dir=tmp_path / "out", score_thresh=0.0)
    assert "error" in bad and "error" in missing and "error" not in ok
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ok_boxes.jpg"]
    with pytest.raises(ValueError, match="score_thresh is a probability"):
        predict_detections(tiny_detector, paths, output_dir=tmp_path / "out", score_thresh=1.5)


def test_dense_only_options_are_refused_for_classification(tmp_path, capsys):
    assert main(["eval", str(tmp_path), "--model", "edgenext_xx_small", "--val-ann", "x.json"]) == 2
    assert "--val-ann: for --task detect / segment" in capsys.readouterr().err
    assert main(["predict", "x.png", "--model", "edgenext_xx_small", "--output", str(tmp_path)]) == 2
    assert "--output: for --task detect / segment" in capsys.readouterr().err
    assert main(["eval", "--task", "segment"]) == 2
    assert "--task segment needs --weights" in capsys.readouterr().err


# -- what the official tools compute --------------------------------------------------------------

#: (width, height) of the COCO test images: squares, wide and tall ones, one large enough for "large" boxes
SHAPES = [(64, 64), (96, 48), (50, 130), (300, 200), (120, 90), (120, 90)]
CATEGORY_IDS = [3 * k + 2 for k in range(10)]  # sparse, ascending: label k + 1 <-> id 3k + 2


def _coco_images(root):
    """The validation scenes resized to SHAPES (the last image will have no annotation at all)."""
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    scenes = _val_scenes("detect")
    images = []
    for i, (w, h) in enumerate(SHAPES):
        Image.fromarray(scenes.render(i)["image"]).resize((w, h), Image.BILINEAR).save(root / "val2017" / f"{i}.png")
        images.append(dict(id=100 + i, file_name=f"{i}.png", width=w, height=h))
    return images


def _write_ann(root, images, annotations):
    categories = [dict(id=cid, name=DIGIT_NAMES[k + 1]) for k, cid in enumerate(CATEGORY_IDS)]
    ann = root / "annotations" / "instances_val2017.json"
    ann.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return ann


def _cocoeval(ann, detections_file) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(ann))
    evaluator = COCOeval(gt, gt.loadRes(str(detections_file)), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return [float(v) for v in evaluator.stats]


@pytest.mark.slow
def test_eval_detect_equals_pycocotools_cocoeval_on_the_annotation_file(runs, tmp_path, capsys):
    from edgenext.dense.metrics import COCO_STATS

    _, best = runs["detect"]
    root = tmp_path / "coco"
    images = _coco_images(root)
    first = tmp_path / "first.json"
    _write_ann(root, images, [])
    assert main(["eval", str(root), "--weights", str(best), "--workers", "0", "--save-detections", str(first)]) == 0
    capsys.readouterr()
    found = json.loads(first.read_text())
    assert {d["image_id"] for d in found} == {im["id"] for im in images}
    assert {d["category_id"] for d in found} <= set(CATEGORY_IDS)

    # the saved boxes are in each image's own pixels: the 300x200 image, resized here to the network's
    # square as eval does, run through the model, its boxes scaled back by (300/64, 200/64)
    model = load_dense_model(best).model
    pixels = torch.from_numpy(np.array(Image.open(root / "val2017" / "3.png").convert("RGB"))).permute(2, 0, 1)
    with torch.no_grad():
        want = model([v2.functional.resize(pixels, [SIZE, SIZE], antialias=True) / 255.0])[0]
    scale = torch.tensor([300 / SIZE, 200 / SIZE, 300 / SIZE, 200 / SIZE])
    want_xyxy = (want["boxes"] * scale).clamp(min=0)
    got = sorted((d for d in found if d["image_id"] == 103), key=lambda d: -d["score"])
    got_xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in got)])
    assert len(got) == len(want_xyxy) and torch.allclose(got_xyxy, want_xyxy, atol=2e-3)

    # ground truth made from the detections (so AP is neither 0 nor 1): per image the 3 best, moved a
    # little; a crowd region over the next best detections (ignored, not false positives), and a missed
    # object; the last image has no annotation
    annotations = []
    for im in images[:-1]:
        mine = sorted((d for d in found if d["image_id"] == im["id"]), key=lambda d: -d["score"])
        for k, d in enumerate(mine[:3]):
            x, y, w, h = d["bbox"]
            box = [x + 0.1 * w * (k - 1), y + 0.05 * h, w, h]
            annotations.append(dict(image_id=im["id"], category_id=d["category_id"], bbox=box, area=w * h, iscrowd=0))
        x, y, w, h = mine[3]["bbox"]
        crowd = [max(0.0, x - 0.2 * w), max(0.0, y - 0.2 * h), 1.4 * w, 1.4 * h]
        polygon = [crowd[0], crowd[1], crowd[0] + crowd[2], crowd[1], crowd[0] + crowd[2], crowd[1] + crowd[3],
                   crowd[0], crowd[1] + crowd[3]]
        annotations.append(dict(image_id=im["id"], category_id=mine[3]["category_id"], bbox=crowd,
                                segmentation=[polygon], area=crowd[2] * crowd[3], iscrowd=1))
        annotations.append(dict(image_id=im["id"], category_id=CATEGORY_IDS[0], bbox=[1, 1, 5, 4], area=20.0,
                                iscrowd=0))
    annotations.append(dict(image_id=103, category_id=CATEGORY_IDS[1], bbox=[20, 30, 150, 100], area=15000.0,
                            iscrowd=0))  # a large object (area > 96^2), so that APl / ARl are defined
    for n, a in enumerate(annotations):
        a["id"] = n + 1
    ann = _write_ann(root, images, annotations)
    saved = tmp_path / "detections.json"
    assert main(["eval", str(root), "--weights", str(best), "--workers", "0", "--json",
                 "--save-detections", str(saved)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    official = _cocoeval(ann, saved)
    assert [metrics[k] for k in COCO_STATS] == pytest.approx(official, abs=1e-4)
    assert 0.05 < metrics["map"] < 0.95 and metrics["map_large"] >= 0 and metrics["map_small"] >= 0
    assert metrics["postprocessing"] == dict(score_thresh=0.05, nms_thresh=0.5, detections_per_class=200,
                                             detections_per_img=0, topk_candidates=0)
    # the crowd regions count: as plain objects they would be missed and change the figures
    plain = [{**a, "iscrowd": 0} for a in annotations]
    assert _cocoeval(_write_ann(root, images, plain), saved) != pytest.approx(official, abs=1e-4)

    # predict on the same files gives the same boxes, scores and classes as eval saved
    paths = [str(root / "val2017" / im["file_name"]) for im in images]
    capsys.readouterr()  # pycocotools' own printing
    assert main(["predict", *paths, "--weights", str(best), "--output", str(tmp_path / "out"), "--json",
                 "--score-thresh", "0"]) == 0
    for im, entry in zip(images, json.loads(capsys.readouterr().out)):
        theirs = [d for d in found if d["image_id"] == im["id"]]
        assert len(entry["detections"]) == len(theirs)
        for d in entry["detections"]:  # each has its twin among eval's (ties in score make the order moot)
            x1, y1, x2, y2 = d["box"]
            twin = [t for t in theirs if t["category_id"] == CATEGORY_IDS[d["index"] - 1]
                    and abs(t["score"] - d["score"]) < 1e-5
                    and np.allclose(t["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=1e-3)]
            assert twin, d
            theirs.remove(twin[0])


def _voc_of_sizes(root, sizes):
    """A VOC val split of the segmentation scenes resized to ``sizes`` (w, h); masks by nearest neighbour."""
    voc = root / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    scenes = _val_scenes("segment")
    for i, (w, h) in enumerate(sizes):
        scene = scenes.render(i % len(scenes))
        Image.fromarray(scene["image"]).resize((w, h), Image.BILINEAR).save(voc / "JPEGImages" / f"{i:06d}.jpg",
                                                                           quality=95)
        mask = scene["mask"].astype(np.uint8)
        mask[:2] = 255  # an ignored border
        Image.fromarray(mask).resize((w, h), Image.NEAREST).save(voc / "SegmentationClass" / f"{i:06d}.png")
    (voc / "ImageSets/Segmentation/val.txt").write_text("".join(f"{i:06d}\n" for i in range(len(sizes))))
    return voc


@pytest.mark.slow
@pytest.mark.parametrize("input_size", [None, "48"])
def test_eval_segment_is_the_same_whatever_the_batch_and_equals_predicts_masks(runs, tmp_path, capsys, input_size):
    _, best = runs["segment"]
    sizes = [(64, 64), (90, 60), (90, 60), (50, 110), (130, 70), (64, 64), (77, 41), (90, 60), (40, 40)]
    voc = _voc_of_sizes(tmp_path, sizes)
    size_args = [] if input_size is None else ["--input-size", input_size]
    figures = []
    for batch in ("1", "8"):
        assert main(["eval", str(tmp_path), "--weights", str(best), "--json", "--workers", "0", "--batch-size", batch,
                     *size_args]) == 0
        figures.append(json.loads(capsys.readouterr().out))
    assert figures[0]["miou"] == pytest.approx(figures[1]["miou"], abs=1e-6)
    assert figures[0]["pixel_acc"] == pytest.approx(figures[1]["pixel_acc"], abs=1e-6)

    # VOC's mIoU, computed here from predict's masks at each image's original size
    images = sorted(str(p) for p in (voc / "JPEGImages").iterdir())
    assert main(["predict", *images, "--weights", str(best), "--output", str(tmp_path / "out"), "--json",
                 *size_args]) == 0
    n = len(DIGIT_NAMES)
    matrix = np.zeros((n, n), dtype=np.int64)
    for entry in json.loads(capsys.readouterr().out):
        pred = read_mask(entry["mask"])
        truth = read_mask(voc / "SegmentationClass" / (entry["image"].rsplit("/", 1)[1][:-4] + ".png"))
        assert pred.shape == truth.shape
        keep = truth != 255
        np.add.at(matrix, (truth[keep], pred[keep]), 1)
    tp = np.diag(matrix).astype(float)
    union = matrix.sum(0) + matrix.sum(1) - tp
    assert figures[0]["miou"] == pytest.approx(float(np.mean(tp[union > 0] / union[union > 0])), abs=1e-9)
    assert figures[0]["pixel_acc"] == pytest.approx(tp.sum() / matrix.sum(), abs=1e-9)


DENSE_PRECISIONS = [("detect", "onnx", "int8", ".onnx", "onnxruntime"), ("segment", "ncnn", "fp16", ".param", "ncnn")]


@pytest.mark.slow
@pytest.mark.parametrize("task, fmt, precision, suffix, package", DENSE_PRECISIONS)
def test_a_reduced_precision_dense_export_reports_its_metric_change_on_the_runs_scenes(
        runs, tmp_path, capsys, task, fmt, precision, suffix, package):
    """The eager fp32 figure is the one the run recorded on the same validation scenes (the check
    scores what training scored, through COCOeval / the confusion matrix), and the export's beside it."""
    pytest.importorskip(package)
    _, best = runs[task]
    out = tmp_path / f"m{suffix}"
    rc = main(["export", "--task", task, "--weights", str(best), "--format", fmt, "--precision", precision,
               "--output", str(out), "--json"])
    assert rc == 0
    accuracy = json.loads(capsys.readouterr().out)["accuracy"]
    key, metric = ("map", "box mAP") if task == "detect" else ("miou", "mIoU")
    assert accuracy["metric"] == metric and accuracy["precision"] == precision and accuracy["scenes"] == VAL_SCENES
    assert accuracy["fp32"] == pytest.approx(100 * _recorded_score(best, key), abs=1e-6)
    assert accuracy["change"] == pytest.approx(accuracy["export"] - accuracy["fp32"])
    assert abs(accuracy["change"]) <= 2.0, accuracy
    if task == "segment":
        assert accuracy["pixel_agreement"] >= 99.0, accuracy
