"""``edgenext profile``: parameters and MAdds of the variants beside the paper's figures."""

from __future__ import annotations

import argparse
import json

from tqdm import tqdm

from ..bench.profile import profile_variant
from ..models import list_models
from .options import add_input_size


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="count parameters and MAdds (fvcore), beside the paper's figures",
        description="Count parameters and multiply-adds (fvcore, one multiply-add = 1, as in the paper) "
        "of one or all variants, and compare them with the paper's published figures.",
    )
    p.add_argument("--model", default="all", help="variant name, or 'all' (default)")
    add_input_size(p, default=256, help="input side N, or HEIGHT WIDTH; the paper's figures are at 256")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier size (default 1000)")
    p.add_argument("--json", action="store_true", help="print a JSON list of rows instead of a table")
    p.set_defaults(func=run)


def _fmt_m(value: int | None) -> str:
    return f"{value / 1e6:.2f}M" if value is not None else "-"


def run(args: argparse.Namespace) -> int:
    names = list_models() if args.model == "all" else [args.model]
    rows = [profile_variant(n, args.input_size, args.num_classes) for n in tqdm(names, desc="profiling", leave=False, disable=len(names) < 2)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<26}{'params':>11}{'paper':>11}  {'MAdds':>10}{'paper':>10}{'diff':>9}")
    for r in rows:
        paper_p = f"{r['paper_params']:,}" if r["paper_params"] is not None else "-"
        diff = f"{r['madds_diff_pct']:+.3f}%" if r["madds_diff_pct"] is not None else "-"
        print(f"{r['model']:<26}{r['params']:>11,}{paper_p:>11}  {_fmt_m(r['madds']):>10}{_fmt_m(r['paper_madds']):>10}{diff:>9}")
    return 0
