"""Running an exported detector: ONNX Runtime's outputs turned into the eval-mode model's detections.

An exported detector (``edgenext export --task detect``) is ``SSDLiteRaw``: the network with box
decoding and softmax, ``boxes (N, A, 4)`` in input pixels and ``scores (N, A, C)``. The score
threshold and per-class NMS stay outside the graph (see the README, "Exporting a detector"):
``OnnxDetector`` / ``detect_onnx`` apply ``postprocess_detections`` to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from ..deploy.formats.onnx import OnnxRunner
from .ssdlite import RAW_OUTPUT_NAMES, postprocess_detections

Images = Union[torch.Tensor, Sequence[torch.Tensor]]


class OnnxDetector:
    """An ONNX file of ``SSDLiteRaw`` in ONNX Runtime, returning the eval-mode model's detections.

    ``detector(images)``: a ``(N, 3, H, W)`` batch or a list of ``(3, H, W)`` RGB float images in
    [0, 1], any size. Each is resized to the file's input size as ``SSDLite`` does (bilinear),
    the network runs, and ``postprocess_detections`` (score threshold, per-class NMS, the best
    ``detections_per_class`` per class; ``settings``: its other keywords) gives one
    ``{"boxes", "scores", "labels"}`` per image, boxes ``(x1, y1, x2, y2)`` in that image's pixels.
    """

    def __init__(
        self,
        path: Union[str, Path],
        *,
        threads: Optional[int] = None,
        **settings: Any,
    ) -> None:
        self.runtime = OnnxRunner(path, threads=threads)
        if self.runtime.output_names != RAW_OUTPUT_NAMES:
            raise ValueError(f"{path}: outputs {self.runtime.output_names}, not a detector's {RAW_OUTPUT_NAMES}; "
                             "export one with edgenext export --task detect")
        batch, _, height, width = self.runtime.input_shape
        self.batch = batch if isinstance(batch, int) else None  # None: dynamic
        self.image_size = (int(height), int(width))
        self.settings = settings

    def __call__(self, images: Images) -> list[dict[str, torch.Tensor]]:
        originals = [tuple(img.shape[-2:]) for img in images]
        batch = torch.stack([self._resize(img) for img in images])  # (N, 3, H, W) at the file's size
        boxes, scores = self._run(batch)
        results = postprocess_detections(boxes, scores, **self.settings)
        for found, (h0, w0) in zip(results, originals):
            found["boxes"] = _rescale(found["boxes"], self.image_size, (h0, w0))
        return results

    def _resize(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise ValueError(f"expected RGB float images (3, H, W) in [0, 1], got {image.dtype} of shape "
                             f"{tuple(image.shape)}")
        if tuple(image.shape[-2:]) == self.image_size:
            return image.float()
        # NOTE: SSDLite's own transform (torchvision's) resizes with these settings; normalising
        # before (it) or after (the exported graph) resizing is the same per-channel affine map
        return F.interpolate(image[None].float(), size=self.image_size, mode="bilinear", align_corners=False)[0]

    def _run(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batch is None:
            return self.runtime.outputs(batch)
        # a static-batch file: run it on chunks of its batch, the last one padded with its last image
        chunks = []
        for start in range(0, batch.shape[0], self.batch):
            chunk = batch[start:start + self.batch]
            pad = self.batch - chunk.shape[0]
            if pad:
                chunk = torch.cat([chunk, chunk[-1:].expand(pad, -1, -1, -1)])
            chunks.append([t[: self.batch - pad] for t in self.runtime.outputs(chunk)])
        return torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])


def _rescale(boxes: torch.Tensor, size: tuple[int, int], original: tuple[int, int]) -> torch.Tensor:
    """Boxes in pixels of ``size`` -> pixels of ``original`` (both ``(height, width)``), as torchvision does."""
    ratio_h = torch.tensor(original[0], dtype=torch.float32) / torch.tensor(size[0], dtype=torch.float32)
    ratio_w = torch.tensor(original[1], dtype=torch.float32) / torch.tensor(size[1], dtype=torch.float32)
    return boxes * torch.stack([ratio_w, ratio_h, ratio_w, ratio_h]).to(boxes.dtype)


def detect_onnx(
    path: Union[str, Path],
    images: Images,
    *,
    threads: Optional[int] = None,
    **settings: Any,
) -> list[dict[str, torch.Tensor]]:
    """Detections of the exported detector at ``path`` on ``images`` (see ``OnnxDetector``; ``settings``:
    ``postprocess_detections``' keywords, ml-cvnets' defaults when left out)."""
    detector = OnnxDetector(path, threads=threads, **settings)
    return detector(images)
