"""Dense metrics: perfect predictions score 1, and small hand-computed cases give their known values."""

import pytest
import torch

from edgenext.dense.metrics import COCO_STATS, DetectionMetric, SegmentationMetric


def _targets():
    return [
        {"boxes": torch.tensor([[10.0, 10, 50, 60], [70, 20, 120, 90]]), "labels": torch.tensor([1, 2])},
        {"boxes": torch.tensor([[0.0, 0, 30, 30]]), "labels": torch.tensor([1])},
    ]


def test_perfect_detections_give_map_one():
    metric = DetectionMetric()
    targets = _targets()
    preds = [{**t, "scores": torch.ones(len(t["labels"]))} for t in targets]
    metric.update(preds, targets)
    result = metric.compute()
    assert set(result) == set(COCO_STATS)
    # boxes of 40x50, 50x70 and 30x30 pixels: all "medium" (32^2 < area < 96^2) but the last, "small"
    for key in ("map", "map50", "map75", "map_small", "map_medium", "mar100", "mar_small", "mar_medium"):
        assert result[key] == pytest.approx(1.0), key
    assert result["map_large"] == result["mar_large"] == -1.0  # no large object: undefined, as pycocotools says
    assert result["mar1"] == pytest.approx(1.0)


def test_one_hit_one_false_positive_one_miss_gives_the_coco_interpolated_value():
    # one class, two ground truths; ranked detections: an exact hit (0.9), then a false positive (0.8).
    # Precision is 1 up to recall 0.5 and recall never passes 0.5: COCO's 101-point interpolation
    # gives 51 of the 101 recall points (0.00 .. 0.50) a precision of 1, the rest 0.
    target = [{"boxes": torch.tensor([[10.0, 10, 50, 50], [100, 100, 150, 150]]), "labels": torch.tensor([1, 1])}]
    pred = [{"boxes": torch.tensor([[10.0, 10, 50, 50], [200, 10, 240, 40]]), "scores": torch.tensor([0.9, 0.8]),
             "labels": torch.tensor([1, 1])}]
    metric = DetectionMetric()
    metric.update(pred, target)
    result = metric.compute()
    assert result["map50"] == pytest.approx(51 / 101, abs=1e-6)
    assert result["map"] == pytest.approx(51 / 101, abs=1e-6)  # the hit is exact at every IoU threshold


def test_a_wrong_label_is_a_miss():
    target = [{"boxes": torch.tensor([[10.0, 10, 50, 50]]), "labels": torch.tensor([1])}]
    pred = [{"boxes": torch.tensor([[10.0, 10, 50, 50]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([2])}]
    metric = DetectionMetric()
    metric.update(pred, target)
    assert metric.compute()["map50"] == 0.0


def test_perfect_segmentation_gives_miou_one():
    masks = torch.randint(0, 4, (2, 16, 16))
    masks[0, :2] = 255
    metric = SegmentationMetric(4)
    metric.update(torch.nn.functional.one_hot(masks.clamp(max=3), 4).permute(0, 3, 1, 2).float(), masks)
    assert metric.compute() == pytest.approx({"miou": 1.0, "pixel_acc": 1.0})


def test_hand_computed_miou_over_the_dataset_confusion_matrix():
    # ground truth [[0, 0], [1, 1]] and [[255, 1]]; prediction [[0, 1], [1, 1]] and [[0, 1]]
    masks = [torch.tensor([[[0, 0], [1, 1]]]), torch.tensor([[[255, 1]]])]
    preds = [torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 1]]])]
    metric = SegmentationMetric(2)
    for p, m in zip(preds, masks):
        metric.update(p, m)
    # class 0: TP 1, FN 1 (one 0 predicted as 1), FP 0 -> 1/2; class 1: TP 3, FP 1, FN 0 -> 3/4; ignored pixel skipped
    assert metric.compute()["miou"] == pytest.approx((1 / 2 + 3 / 4) / 2)
    assert metric.compute()["pixel_acc"] == pytest.approx(4 / 5)
    assert metric.per_class_iou() == pytest.approx([0.5, 0.75])


def test_mismatched_shapes_are_an_error():
    with pytest.raises(ValueError, match="differs from mask shape"):
        SegmentationMetric(3).update(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 5, dtype=torch.long))


def _random_detections(seed: int, n_images: int = 6):
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for i in range(n_images):
        xy = torch.rand(5, 2, generator=g) * 80
        gt = torch.cat([xy, xy + 10 + torch.rand(5, 2, generator=g) * 40], 1)
        noisy = gt + torch.randn(5, 4, generator=g) * 3
        targets.append({"boxes": gt, "labels": torch.randint(1, 4, (5,), generator=g), "image_id": i})
        preds.append({"boxes": noisy, "scores": torch.rand(5, generator=g),
                      "labels": torch.where(torch.rand(5, generator=g) < 0.8, targets[-1]["labels"], 3)})
    return preds, targets


def _sharded_detection_metric(rank: int, world: int, port: int) -> dict:
    """This process's shard of ``_random_detections(0)`` scored by a ``DetectionMetric`` in a gloo group."""
    from datetime import timedelta

    import torch.distributed as dist

    # a timeout: a peer that never joins (or dies) fails the test instead of hanging it
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    try:
        preds, targets = _random_detections(0)
        metric = DetectionMetric()
        metric.update(preds[rank::world], targets[rank::world])  # disjoint shards, as ShardedBatchSampler's
        return metric.compute()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_detection_metric_gathers_a_sharded_evaluation_to_the_single_process_figures():
    import socket

    import torch.multiprocessing as mp

    preds, targets = _random_detections(0)
    single = DetectionMetric()
    single.update(preds, targets)
    expected = single.compute()
    assert 0.1 < expected["map50"] < 0.99
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # rank 0 is this process (which has torch and pycocotools imported already); only rank 1 is started
    peer = mp.get_context("spawn").Process(target=_sharded_detection_metric, args=(1, 2, port))
    peer.start()
    try:
        result = _sharded_detection_metric(0, 2, port)
    finally:
        peer.join(timeout=60)
    assert peer.exitcode == 0
    assert result == pytest.approx(expected, abs=1e-12)
