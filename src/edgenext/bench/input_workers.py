"""The measurements of the input-pipeline bench (``input_pipeline.py``), each run in its own process by
``isolate.run_isolated``: one training loader (ours over an image folder or tar shards, or timm's) at a worker
count, one JPEG decoder, and the decoders' agreement (pixels and the augmented tensors)."""

from __future__ import annotations

import io
import random
import time
from typing import Any, Callable

from torch.utils.data import Dataset

#: the loaders timed, and what each is
LOADERS = {
    "folder": "ours: ImageFolderDataset + the recipe's train transform + MultiScaleBatchSampler + DataLoader "
              "(train.setup.build_train_loader, as edgenext train builds it; one input size)",
    "shards": "ours: ShardImageDataset over tar shards of the same images (written by edgenext shards' "
              "write_shards) + ShardBatchSampler, same transform and DataLoader",
    "timm": "timm.data.create_dataset (folder reader) + create_loader(is_training=True) with the same recipe "
            "values; use_prefetcher=False, so normalisation runs on the CPU as ours does; with our posterize fix "
            "(data.transforms: as is, timm's RandAugment raises on Pillow 13 at magnitude 10)",
}
#: the decoders timed (JPEG bytes already in memory -> an RGB image the transforms take)
DECODERS = {
    "pil": "Pillow: Image.open + load + RGB (data.datasets.load_image / data.shards.decode_image)",
    "torchvision": "torchvision.io.decode_jpeg (libjpeg-turbo) to a CHW uint8 tensor, then a PIL image for the "
                   "PIL-based transforms (timm's RandAugment)",
    "torchvision_tensor": "torchvision.io.decode_jpeg alone: the figure a tensor-only transform pipeline would get",
}


class Repeated(Dataset):
    """``dataset`` ``times`` over (index ``i`` is sample ``i % len``), so one epoch holds every timed batch;
    keeps the attributes the loaders read (``shard_sizes`` for ``ShardBatchSampler``, timm's ``transform``)."""

    def __init__(self, dataset: Any, times: int) -> None:
        self.dataset, self.times, self.n = dataset, int(times), len(dataset)
        if hasattr(dataset, "shard_sizes"):
            self.shard_sizes = list(dataset.shard_sizes) * self.times

    @property
    def transform(self) -> Any:
        return self.dataset.transform

    @transform.setter
    def transform(self, value: Any) -> None:
        self.dataset.transform = value

    def __len__(self) -> int:
        return self.n * self.times

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (tuple, list)):  # our samplers' (index, size)
            return self.dataset[(int(index[0]) % self.n, index[1])]
        return self.dataset[int(index) % self.n]


def recipe_config(recipe: str, batch: int, input_size: int, workers: int = 0):
    """The recipe's ``TrainConfig`` at one batch size, one input size (no multi-scale) and ``workers``."""
    from ..train.config import load_config

    return load_config(recipe, {"batch_size": batch, "input_size": input_size, "workers": workers,
                                "multi_scale": False})


def _our_loader(kind: str, location: str, cfg: Any, times: int) -> Any:
    from ..data import ImageFolderDataset, SkipCounter
    from ..data.shard_datasets import ShardImageDataset
    from ..data.shards import resolve_shards
    from ..train.classify import _train_factory
    from ..train.distributed import DistInfo
    from ..train.setup import build_train_loader

    factory = _train_factory(cfg)
    if kind == "folder":
        dataset = ImageFolderDataset(location, factory, default_size=cfg.input_size)
    else:
        dataset = ShardImageDataset(resolve_shards(location, "train", progress=False), factory,
                                    default_size=cfg.input_size)
    loader, _ = build_train_loader(cfg, Repeated(dataset, times), DistInfo(), collate=SkipCounter(), drop_last=True)
    return loader


def _timm_loader(location: str, cfg: Any, times: int) -> Any:
    from timm.data import create_dataset, create_loader

    from ..data import transforms  # noqa: F401 - registers the posterize that Pillow 13 does not raise in

    dataset = create_dataset("", root=location, search_split=False, is_training=True)
    s = cfg.input_size
    return create_loader(
        Repeated(dataset, times), input_size=(3, s, s), batch_size=cfg.batch_size, is_training=True,
        use_prefetcher=False, no_aug=not cfg.augment, scale=tuple(cfg.crop_scale), hflip=cfg.hflip,
        color_jitter=cfg.color_jitter, auto_augment=cfg.rand_augment or None, interpolation=cfg.interpolation,
        mean=tuple(cfg.mean), std=tuple(cfg.std), re_prob=cfg.reprob, re_mode="pixel", num_workers=cfg.workers,
        persistent_workers=False, pin_memory=False)


def time_loader(loader: str, location: str, recipe: str, batch: int, input_size: int, workers: int, batches: int,
                samples: int, seed: int = 0) -> dict[str, Any]:
    """Worker: build ``loader`` over ``location`` (``samples`` images) with ``workers`` loader processes, let
    the first ``max(1, workers)`` batches pass (worker start-up, every worker's first batch), then time
    ``batches`` batches; images/s."""
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    cfg = recipe_config(recipe, batch, input_size, workers)
    warmup = max(1, workers)
    times = -(-(warmup + batches) * batch // samples)
    data = _timm_loader(location, cfg, times) if loader == "timm" else _our_loader(loader, location, cfg, times)
    it = iter(data)
    start = time.perf_counter()
    for _ in range(warmup):
        next(it)
    first = time.perf_counter() - start
    images, start = 0, time.perf_counter()
    for _ in range(batches):
        x = next(it)[0]
        images += int(x.shape[0])
    elapsed = time.perf_counter() - start
    shape = list(x.shape)
    del it
    return {"throughput_img_s": images / elapsed, "images": images, "first_batches_s": first, "batch_shape": shape}


def decode_function(decoder: str) -> Callable[[bytes], Any]:
    """JPEG bytes -> what ``decoder`` gives the transforms (an RGB PIL image, or a CHW tensor)."""
    if decoder == "pil":
        from PIL import Image

        from ..data.datasets import to_rgb

        def pillow(data: bytes) -> Any:
            img = Image.open(io.BytesIO(data))
            img.load()
            return to_rgb(img)

        return pillow
    if decoder not in DECODERS:
        raise ValueError(f"decoder {decoder!r} is not one of {', '.join(DECODERS)}")
    import torch
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg

    def tensor(data: bytes) -> Any:
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)

    if decoder == "torchvision_tensor":
        return tensor
    return lambda data: Image.fromarray(tensor(data).permute(1, 2, 0).numpy())


def _read_all(files: list[str]) -> list[bytes]:
    out = []
    for path in files:
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def time_decode(decoder: str, files: list[str], passes: int = 1) -> dict[str, Any]:
    """Worker: decode every file (bytes read beforehand: no disk) ``passes`` times after one warm-up file; images/s."""
    decode = decode_function(decoder)
    datas = _read_all(files)
    decode(datas[0])
    start = time.perf_counter()
    for _ in range(passes):
        for data in datas:
            decode(data)
    elapsed = time.perf_counter() - start
    return {"throughput_img_s": passes * len(datas) / elapsed, "images": passes * len(datas)}


def decoder_agreement(files: list[str], recipe: str, input_size: int, seed: int = 0) -> dict[str, Any]:
    """Worker: the largest per-pixel difference between Pillow's and torchvision's RGB decodes of ``files``
    (0-255 levels), and between the recipe's train transform of each (same seed per image) in its output
    units (normalised) and in 8-bit levels of the input."""
    import numpy as np
    import torch

    from ..data.transforms import train_transform_factory

    cfg = recipe_config(recipe, 1, input_size)
    transform = train_transform_factory(augment=cfg.augment, crop_scale=cfg.crop_scale, hflip=cfg.hflip,
                                        color_jitter=cfg.color_jitter, rand_augment=cfg.rand_augment,
                                        reprob=cfg.reprob, interpolation=cfg.interpolation, mean=cfg.mean,
                                        std=cfg.std)(input_size)
    pil, tv = decode_function("pil"), decode_function("torchvision")
    pixel, out, differing = 0, 0.0, 0
    for k, data in enumerate(_read_all(files)):
        a, b = pil(data), tv(data)
        diff = int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())
        pixel = max(pixel, diff)
        differing += diff > 0
        outputs = []
        for img in (a, b):
            torch.manual_seed(seed + k)
            random.seed(seed + k)
            np.random.seed(seed + k)
            outputs.append(transform(img))
        out = max(out, float((outputs[0] - outputs[1]).abs().max()))
    levels = out * float(min(cfg.std)) * 255.0
    return {"images": len(files), "max_abs_pixel_diff": pixel, "images_differing": differing,
            "max_abs_output_diff": out, "max_abs_output_diff_levels": levels}
