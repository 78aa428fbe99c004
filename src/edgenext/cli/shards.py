"""``edgenext shards``: write a dataset as WebDataset-style tar shards that ``edgenext train --data`` reads."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..tasks import get_task
from .options import add_task

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "shards",
        help="write an image folder / COCO / VOC / paired dataset as tar shards (for clusters and object stores)",
        description="Write SRC's train and val splits into DST as <split>-000000.tar ... (WebDataset layout: "
        "KEY.jpg with KEY.cls (classify), KEY.json (detect: the COCO image entry and its annotations) or KEY.seg.png "
        "(segment: the class-index mask)), each with an index (NAME.tar.idx.json: member offsets) and DST/manifest.json "
        "(splits, sample counts, sha256 checksums, class names). Samples are dealt to shards in a seeded random order. "
        "Interrupted, the same command continues where it stopped. Train on the result with "
        "`edgenext train --data DST` (or a URL of a copy of DST: s3://, gs://, https://, with pip install "
        "'edgenext[shards]').",
        epilog="examples: edgenext shards imagenet/ /data/imagenet-shards --shard-size 1000 | "
        "edgenext shards coco/ coco-shards --task detect | "
        "edgenext shards --task segment --train-images img --train-masks masks --val-images vimg --val-masks vmasks out/",
    )
    p.add_argument("paths", nargs="+", metavar="SRC DST",
                   help="SRC: classify: a folder with train/<class>/* and val/<class>/* (or <class>/* alone: one train "
                   "split); detect: a COCO 2017 folder; segment: a Pascal VOC folder. Leave SRC out when the splits are "
                   "given with --train-images ... DST: the output folder")
    add_task(p)
    p.add_argument("--shard-size", type=int, default=1000, metavar="N",
                   help="samples per shard (default 1000; aim at 100 MB - 1 GB per shard; under DDP give every process "
                   "at least one shard, ideally many)")
    p.add_argument("--seed", type=int, default=0, help="seed of the order samples are dealt to shards (default 0)")
    for split in ("train", "val"):
        p.add_argument(f"--{split}-images", metavar="DIR", help=f"detect / segment: the {split} images folder")
        p.add_argument(f"--{split}-ann", metavar="JSON", help=f"detect: COCO annotations of --{split}-images")
        p.add_argument(f"--{split}-masks", metavar="DIR", help=f"segment: class-index masks of --{split}-images")
    p.add_argument("--num-classes", type=int, help="segment: number of classes (default: inferred from the masks)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.shard_writer import write_shards  # NOTE: lazy: the data pipeline imports torchvision and timm

    if len(args.paths) > 2:
        raise ValueError(f"edgenext shards takes SRC DST (or DST alone with --train-images ...), got {len(args.paths)} paths")
    args.source, dst = (args.paths[0], Path(args.paths[1])) if len(args.paths) == 2 else (None, Path(args.paths[0]))
    task = get_task(args.task)
    sources, meta = task.shard_sources(args)
    log.info("writing %s into %s, %d per shard", ", ".join(f"{s.name} ({s.count} samples)" for s in sources), dst,
             args.shard_size)
    manifest = write_shards(dst, sources, task=task.name, meta=meta, shard_size=args.shard_size, seed=args.seed,
                            source=str(args.source or [getattr(args, f"{s.name}_images") for s in sources]),
                            progress=args.progress)
    for name, split in manifest["splits"].items():
        size = sum(s["bytes"] for s in split["shards"])
        print(f"{name}: {split['samples']} samples in {len(split['shards'])} shard(s), {size / 1e6:.1f} MB")
    print(f"manifest: {dst / 'manifest.json'}; train with: edgenext train --task {task.name} --data {dst}")
    return 0
