"""``edgenext profile``: parameters and MAdds of the variants (or of their detectors / segmenters)
beside the paper's figures; the task's ``profile_rows`` / ``profile_table`` say what and how."""

from __future__ import annotations

import argparse
import json

from ..tasks import get_task
from .options import add_input_size, add_task


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="count parameters and MAdds (fvcore), beside the paper's figures",
        description="Count parameters and multiply-adds (fvcore, one multiply-add = 1, as in the paper) "
        "of one or all variants, and compare them with the paper's published figures. --task detect / segment: "
        "SSDLite / DeepLabv3 on the backbone, at the paper's 320 / 512 and with COCO's 81 / VOC's 21 classes "
        "(background included), beside the paper's EdgeNeXt-S and MobileViT-S figures.",
    )
    add_task(p)
    p.add_argument("--model", default=None,
                   help="variant name, or 'all' (default: all; detect / segment: the backbone, default edgenext_small)")
    add_input_size(p, help="input side N, or HEIGHT WIDTH (default 256, the paper's; detect / segment: 320 / 512)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classifier size (default 1000; detect / segment: classes with the background, default 81 / 21)")
    p.add_argument("--json", action="store_true", help="print a JSON list of rows instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = get_task(args.task)
    rows = spec.profile_rows(args.model, args.input_size, args.num_classes)
    print(json.dumps(rows, indent=2) if args.json else spec.profile_table(rows))
    return 0
