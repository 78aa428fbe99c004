"""Training input pipeline throughput (``edgenext bench --data``): images/s of the loader alone, no model.

What is timed is what ``edgenext train`` feeds the network: JPEG decode, the recipe's augmentation (random-resized
crop, flip, RandAugment or colour jitter, erasing), to-tensor and normalisation, collation, over an image folder
and over tar shards of the same images, beside timm's own loader (``create_dataset`` + ``create_loader``) with the
same recipe values; in the main process (0 workers), with one loader worker (what one CPU core gives) and with N.
Beside them: Pillow's JPEG decode against torchvision's ``decode_jpeg`` on the same files (speed and exactness),
and the training step's images/s (``train_step.time_train_step``, ours, the recipe's model and precision), whose
ratio to one worker's images/s is the number of CPU cores it takes to keep that training step fed.

Every (candidate, round) runs in a fresh process (``isolate.run_isolated``); candidates alternate over rounds
and each row gives the median over rounds and the p10-p90 spread, as the other bench rows. The files are read
from the page cache after the first round: the figures are CPU cost, not disk or network bandwidth.
"""

from __future__ import annotations

import importlib
import logging
import statistics
from pathlib import Path
from typing import Any, Optional, Sequence

from .. import hardware
from .input_workers import DECODERS, LOADERS, recipe_config
from .isolate import run_isolated
from .progress import PhaseProgress
from .timing import percentile

log = logging.getLogger(__name__)

_WORKERS = "edgenext.bench.input_workers"
#: a decoder is chosen over Pillow only when this much faster (the noise of a shared machine is a few %)
DECODER_MARGIN = 1.05
#: JPEGs the decoder phase times and checks (a sample: decoding the folder many times over adds nothing)
DECODE_FILES = 200
AGREEMENT_FILES = 50


def folder_of(data: Path) -> Path:
    """The training images of ``--data``: ``DIR/train`` when there is one (``DIR/train/<class>/*``), else ``DIR``."""
    data = Path(data)
    if not data.is_dir():
        raise ValueError(f"{data}: no such folder; --data takes DIR/train/<class>/* (or DIR/<class>/*) of JPEGs")
    return data / "train" if (data / "train").is_dir() else data


def image_files(folder: Path) -> list[str]:
    """The JPEG files under ``folder``, sorted (the decoder phase's input)."""
    return sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))


def write_bench_shards(folder: Path, dst: Path, *, progress: bool = False) -> str:
    """Tar shards of ``folder``'s images in ``dst`` (``edgenext shards``' writer; at least four shards, at most
    1000 images each; a second call with the same folder reuses them); the location to read them from."""
    from ..data.shard_writer import folder_splits, write_shards

    sources, class_names = folder_splits(folder, splits=())
    count = sources[0].count
    write_shards(dst, sources, task="classify", meta={"class_names": class_names},
                 shard_size=max(1, min(1000, -(-count // 4))), source=str(folder), progress=progress)
    return str(dst)


def machine_line(device: str = "cpu") -> dict[str, Any]:
    """The machine the figures come from: CPU model, cores, ISA features, library versions."""
    import PIL
    import timm
    import torch
    import torchvision
    from PIL import features

    info = {"cpu": hardware.cpu_name(), "cores": hardware.cores(),
            "isa": sorted(f for f, on in hardware.isa_features().items() if on)
            + sorted(f for f in ("avx", "fma", "f16c") if f in hardware.cpu_flags()),
            "torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__,
            "pillow": PIL.__version__, "pillow_libjpeg": features.version("jpg"),
            "pillow_libjpeg_turbo": bool(features.check_feature("libjpeg_turbo")), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _call(target: str, kwargs: dict[str, Any], *, threads: int, timeout: float, isolated: bool) -> Any:
    """``target(**kwargs)`` in a fresh process (``run_isolated``), or here when not ``isolated`` (tests)."""
    if isolated:
        return run_isolated(target, kwargs, threads=threads, timeout=timeout)
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


def _timed(phase: str, candidates: Sequence[Any], rounds: int, call) -> dict[Any, list[dict[str, Any]]]:
    """``call(candidate)`` for every candidate in every round, the order rotating (and reversed on odd rounds)
    so that no candidate always follows the same one; the results per candidate."""
    runs: dict[Any, list[dict[str, Any]]] = {c: [] for c in candidates}
    with PhaseProgress(rounds * len(candidates), phase, "run") as bar:
        for r in range(rounds):
            order = list(candidates[r % len(candidates):]) + list(candidates[: r % len(candidates)])
            for c in (order if r % 2 == 0 else order[::-1]):
                runs[c].append(call(c))
                bar.set_postfix_str(f"{c}: {runs[c][-1]['throughput_img_s']:.1f} img/s")
                bar.update()
    return runs


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["throughput_img_s"] for r in results]
    return {"throughput_img_s": statistics.median(rates), "p10_img_s": percentile(rates, 10),
            "p90_img_s": percentile(rates, 90), "rounds": len(rates)}


def bench_decoders(files: Sequence[str], *, recipe: str, input_size: int, rounds: int,
                   isolated: bool = True) -> list[dict[str, Any]]:
    """Rows: each decoder's images/s (one process, one thread) and ``ratio_vs_pil``; then an ``agreement`` row
    (largest pixel difference, and of the augmented tensors) with the ``choice`` the margin rule makes."""
    files = list(files)[:DECODE_FILES]
    runs = _timed("decode", tuple(DECODERS), rounds, lambda d: _call(
        f"{_WORKERS}:time_decode", {"decoder": d, "files": files}, threads=1, timeout=600, isolated=isolated))
    rows = [{"phase": "decode", "candidate": d, "images": len(files), **_summary(runs[d])} for d in DECODERS]
    pil = rows[0]["throughput_img_s"]
    for row in rows:
        row["ratio_vs_pil"] = row["throughput_img_s"] / pil
    agree = _call(f"{_WORKERS}:decoder_agreement", {"files": files[:AGREEMENT_FILES], "recipe": recipe,
                  "input_size": input_size}, threads=1, timeout=600, isolated=isolated)
    faster = rows[1]["ratio_vs_pil"] >= DECODER_MARGIN
    exact = agree["max_abs_pixel_diff"] <= 1
    choice = "torchvision" if faster and exact else "pil"
    why = (f"torchvision's decode into the PIL image the transforms take is {rows[1]['ratio_vs_pil']:.2f}x Pillow's "
           f"(needs >= {DECODER_MARGIN:.2f}x), largest pixel difference {agree['max_abs_pixel_diff']} (needs <= 1)")
    rows.append({"phase": "decode_agreement", "candidate": "pil_vs_torchvision", **agree, "choice": choice,
                 "why": why})
    return rows


def bench_loaders(folder: Path, shards: Optional[str], *, recipe: str, batch: int, input_size: int,
                  workers: Sequence[int], rounds: int, batches: int, isolated: bool = True) -> list[dict[str, Any]]:
    """Rows: each loader's images/s at each worker count (``ratio_vs_timm``: over timm's at the same count)."""
    locations = {"folder": str(folder), "shards": shards, "timm": str(folder)}
    kinds = [k for k in LOADERS if locations[k] is not None]
    samples = len(image_files(folder))
    if samples < batch:
        raise ValueError(f"{folder}: {samples} images cannot fill one batch of {batch}; give --batches smaller")
    candidates = tuple(f"{k}/{w}" for k in kinds for w in workers)

    def call(c: str) -> dict[str, Any]:
        kind, w = c.split("/")
        return _call(f"{_WORKERS}:time_loader", {
            "loader": kind, "location": locations[kind], "recipe": recipe, "batch": batch, "input_size": input_size,
            "workers": int(w), "batches": batches, "samples": samples}, threads=1, timeout=900, isolated=isolated)

    runs = _timed("loaders", candidates, rounds, call)
    rows = []
    for c in candidates:
        kind, w = c.split("/")
        rows.append({"phase": "loader", "candidate": kind, "workers": int(w), "batch": batch,
                     "input_size": input_size, "timed_batches": batches, **_summary(runs[c])})
    timm = {r["workers"]: r["throughput_img_s"] for r in rows if r["candidate"] == "timm"}
    for row in rows:
        row["ratio_vs_timm"] = row["throughput_img_s"] / timm[row["workers"]] if row["workers"] in timm else None
    return rows


def bench_train_step(*, recipe: str, batch: int, input_size: int, threads: int, device: str, steps: int,
                     rounds: int, model: Optional[str] = None, isolated: bool = True) -> dict[str, Any]:
    """The row of ours' training step (``model``, default the recipe's, in the recipe's mixed precision on
    ``device``), rounds in fresh processes: ``train_step.time_train_step``."""
    import torch

    from ..train.setup import amp_dtype
    from .train_step import our_default_options

    cfg = recipe_config(recipe, batch, input_size)
    dtype, _ = amp_dtype(cfg.amp, torch.device(device))
    precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")
    model = model or cfg.model
    kwargs = {"model": model, "impl": "ours", "batch": batch, "input_size": [input_size, input_size],
              "steps": steps, "warmup": 2, "precision": precision, "device": device,
              "options": our_default_options(device)}
    runs = _timed("training step", ("ours",), rounds, lambda _: _call(
        "edgenext.bench.train_step:time_train_step", kwargs, threads=threads, timeout=1800, isolated=isolated))
    label = f"{'GPU' if device.startswith('cuda') else 'CPU'} training step"
    return {"phase": "train_step", "candidate": model, "label": label, "device": device, "precision": precision,
            "batch": batch, "input_size": input_size, "threads": threads, **_summary(runs["ours"])}


def cores_needed(rows: Sequence[dict[str, Any]], train: dict[str, Any]) -> list[dict[str, Any]]:
    """Per loader: CPU cores (one loader worker each) to keep ``train``'s step fed = train images/s / one
    worker's images/s; ``scaling``: the most workers' images/s over one worker's."""
    out = []
    for kind in dict.fromkeys(r["candidate"] for r in rows if r["phase"] == "loader"):
        by_workers = {r["workers"]: r["throughput_img_s"] for r in rows if r["phase"] == "loader" and r["candidate"] == kind}
        if 1 not in by_workers:
            continue
        most = max(by_workers)
        out.append({"phase": "cores_needed", "candidate": kind, "label": train["label"],
                    "train_img_s": train["throughput_img_s"], "per_worker_img_s": by_workers[1],
                    "cores_needed": train["throughput_img_s"] / by_workers[1],
                    "scaling": {"workers": most, "ratio_vs_one_worker": by_workers[most] / by_workers[1]}})
    return out


def bench_input(data: Path, *, shards: Optional[str] = None, workdir: Optional[Path] = None,
                recipe: str = "edgenext_small", batch: Optional[int] = None, input_size: Optional[int] = None,
                workers: Optional[Sequence[int]] = None, rounds: int = 3, batches: int = 8, train: bool = True,
                train_steps: int = 3, threads: Optional[int] = None, device: str = "cpu", model: Optional[str] = None,
                isolated: bool = True) -> list[dict[str, Any]]:
    """Every row of the input-pipeline bench (decode, loaders, training step, cores needed); see the module.

    ``data``: a folder of JPEGs (``DIR/train/<class>/*`` or ``DIR/<class>/*``); ``shards``: tar shards of the
    same images (default: written into ``workdir``, else a temporary folder). ``batch`` / ``input_size``:
    default the recipe's; ``workers``: default 0, 1 and the machine's cores; ``batches``: timed per process;
    ``model``: the training step's (default the recipe's); ``train=False``: no training step (nor cores figure);
    ``isolated=False``: every measurement in this process (quick tests; the figures are then not independent).
    """
    import tempfile

    from ..train.config import load_config

    base = load_config(recipe)
    batch, input_size = batch or base.batch_size, input_size or base.input_size
    if min(rounds, batches, train_steps) < 1:
        raise ValueError(f"rounds, batches and steps must be >= 1, got {rounds}, {batches}, {train_steps}")
    workers = tuple(dict.fromkeys(workers if workers is not None else (0, 1, hardware.cores())))
    folder = folder_of(data)
    files = image_files(folder)
    if not files:
        raise ValueError(f"{folder}: no JPEG files (.jpg / .jpeg); the bench times JPEG decoding, as ImageNet's")
    with tempfile.TemporaryDirectory(prefix="edgenext-input-bench-") as tmp:
        if shards is None:
            dst = Path(workdir or tmp) / "shards"
            log.info("writing tar shards of %s into %s", folder, dst)
            shards = write_bench_shards(folder, dst)
        settings = {"recipe": recipe, "rand_augment": base.rand_augment, "batch": batch, "input_size": input_size}
        rows = bench_decoders(files, recipe=recipe, input_size=input_size, rounds=rounds, isolated=isolated)
        rows += bench_loaders(folder, shards, recipe=recipe, batch=batch, input_size=input_size, workers=workers,
                              rounds=rounds, batches=batches, isolated=isolated)
    if train:
        step = bench_train_step(recipe=recipe, batch=batch, input_size=input_size,
                                threads=threads or hardware.cores(), device=device, steps=train_steps, rounds=rounds,
                                model=model, isolated=isolated)
        rows += [step, *cores_needed(rows, step)]
    return [{**settings, **row} for row in rows]


def format_input_table(rows: Sequence[dict[str, Any]], machine: dict[str, Any]) -> str:
    """The rows as text: the machine line, decoders, loaders, the training step and the cores it needs."""
    first = rows[0]
    lines = [f"machine: {machine['cpu']} ({machine['cores']} cores; {', '.join(machine['isa']) or 'no AVX2'}), "
             f"torch {machine['torch']}, torchvision {machine['torchvision']}, timm {machine['timm']}, Pillow "
             f"{machine['pillow']} (libjpeg {machine['pillow_libjpeg']})",
             f"recipe {first['recipe']} (RandAugment {first['rand_augment'] or 'off'}), batch {first['batch']} at "
             f"{first['input_size']} px", "", f"{'decoder (1 process, 1 thread)':<34}{'img/s':>9}{'p10-p90':>17}{'vs pil':>8}"]
    for r in rows:
        if r["phase"] == "decode":
            lines.append(f"{r['candidate']:<34}{r['throughput_img_s']:>9.1f}{_spread(r):>17}{r['ratio_vs_pil']:>7.2f}x")
        elif r["phase"] == "decode_agreement":
            lines.append(f"agreement on {r['images']} JPEGs: largest pixel difference {r['max_abs_pixel_diff']} "
                         f"({r['images_differing']} images differ), after the train transform "
                         f"{r['max_abs_output_diff']:.3g} ({r['max_abs_output_diff_levels']:.2f} levels); "
                         f"choice: {r['choice']} ({r['why']})")
    lines += ["", f"{'loader':<10}{'workers':>8}{'img/s':>9}{'p10-p90':>17}{'vs timm':>9}"]
    for r in rows:
        if r["phase"] == "loader":
            ratio = f"{r['ratio_vs_timm']:.2f}x" if r["ratio_vs_timm"] is not None else "-"
            lines.append(f"{r['candidate']:<10}{r['workers']:>8}{r['throughput_img_s']:>9.1f}{_spread(r):>17}{ratio:>9}")
    for r in rows:
        if r["phase"] == "train_step":
            lines += ["", f"{r['label']} ({r['candidate']}, {r['precision']}, batch {r['batch']} at {r['input_size']} "
                      f"px, {r['threads']} threads, {r['device']}): {r['throughput_img_s']:.1f} img/s ({_spread(r)})"]
        elif r["phase"] == "cores_needed":
            lines.append(f"cores to feed it, {r['candidate']}: {r['cores_needed']:.2f} ({r['train_img_s']:.1f} / "
                         f"{r['per_worker_img_s']:.1f} img/s per worker; {r['scaling']['workers']} workers give "
                         f"{r['scaling']['ratio_vs_one_worker']:.2f}x one)")
    return "\n".join(lines)


def _spread(row: dict[str, Any]) -> str:
    return f"{row['p10_img_s']:.1f}-{row['p90_img_s']:.1f}"
