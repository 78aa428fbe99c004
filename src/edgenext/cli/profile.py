"""``edgenext profile``: parameters and MAdds of the variants (or of their detectors / segmenters)
beside the paper's figures."""

from __future__ import annotations

import argparse
import json
from typing import Any, Optional

from tqdm import tqdm

from ..bench.profile import profile_variant
from ..models import list_models
from .options import add_input_size, add_task

#: classification defaults (detect / segment: one backbone, the paper's sizes and class counts)
CLASSIFY_INPUT_SIZE = 256
CLASSIFY_NUM_CLASSES = 1000
DENSE_BACKBONE = "edgenext_small"


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
                   help=f"variant name, or 'all' (default: all; detect / segment: {DENSE_BACKBONE})")
    add_input_size(p, help=f"input side N, or HEIGHT WIDTH (default {CLASSIFY_INPUT_SIZE}, the paper's; "
                           "detect / segment: 320 / 512)")
    p.add_argument("--num-classes", type=int, default=None,
                   help=f"classifier size (default {CLASSIFY_NUM_CLASSES}; detect / segment: classes with the "
                   "background, default 81 / 21)")
    p.add_argument("--json", action="store_true", help="print a JSON list of rows instead of a table")
    p.set_defaults(func=run)


def _fmt_m(value: Optional[int]) -> str:
    return f"{value / 1e6:.2f}M" if value is not None else "-"


def _fmt_g(value: Optional[int]) -> str:
    return f"{value / 1e9:.2f}G" if value is not None else "-"


def _fmt_pct(value: Optional[float]) -> str:
    return f"{value:+.1f}%" if value is not None else "-"


def _names(model: Optional[str], default: str) -> list[str]:
    model = model or default
    return list_models() if model == "all" else [model]


def _progress(names: list[str]):
    return tqdm(names, desc="profiling", leave=False, disable=len(names) < 2)


def run(args: argparse.Namespace) -> int:
    if args.task != "classify":
        return _run_dense(args)
    size = args.input_size or CLASSIFY_INPUT_SIZE
    num_classes = args.num_classes or CLASSIFY_NUM_CLASSES
    rows = [profile_variant(n, size, num_classes) for n in _progress(_names(args.model, "all"))]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<26}{'params':>11}{'paper':>11}  {'MAdds':>10}{'paper':>10}{'diff':>9}")
    for r in rows:
        paper_p = f"{r['paper_params']:,}" if r["paper_params"] is not None else "-"
        diff = f"{r['madds_diff_pct']:+.3f}%" if r["madds_diff_pct"] is not None else "-"
        print(f"{r['model']:<26}{r['params']:>11,}{paper_p:>11}  {_fmt_m(r['madds']):>10}{_fmt_m(r['paper_madds']):>10}{diff:>9}")
    return 0


def _run_dense(args: argparse.Namespace) -> int:
    from ..bench.dense import profile_dense_row

    names = _names(args.model, DENSE_BACKBONE)
    rows = [profile_dense_row(args.task, n, args.input_size, args.num_classes) for n in _progress(names)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(_dense_table(rows))
    return 0


def _dense_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'model':<34}{'input':>9}{'params':>9}{'paper':>8}{'diff':>8}  {'MAdds':>8}{'paper':>8}{'diff':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        size = "x".join(map(str, r["input_size"]))
        lines.append(f"{r['model']:<34}{size:>9}{_fmt_m(r['params']):>9}{_fmt_m(r['paper_params']):>8}"
                     f"{_fmt_pct(r['params_diff_pct']):>8}  {_fmt_g(r['madds']):>8}{_fmt_g(r['paper_madds']):>8}"
                     f"{_fmt_pct(r['madds_diff_pct']):>8}")
    peer = rows[0]["mobilevit_s"]
    lines.append(f"{rows[0]['head'] + '_mobilevit_s (paper)':<34}{'x'.join(map(str, peer['input_size'])):>9}"
                 f"{_fmt_m(peer['params']):>9}{'':>16}  {_fmt_g(peer['madds']):>8}")
    return "\n".join(lines)
