"""``edgenext models``: the registered variants and their released weights."""

from __future__ import annotations

import argparse
import json

from ..models import build_meta_model, count_params, describe_variants, list_models


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the variants and their released weights",
        description="List the registered EdgeNeXt variants, their size and the released ImageNet weights "
        "(load one with create_model('NAME.TAG', pretrained=True)).",
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. '*bn_hs' (default: all)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = set(list_models(args.pattern))
    if not names:
        raise ValueError(f"no model matches {args.pattern!r}; available: {', '.join(list_models())}")
    rows = [r for r in describe_variants() if r["name"] in names]
    for row in rows:
        row["params"] = count_params(build_meta_model(row["name"]))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<26}{'params':>11}  {'norm/act':<20}{'released weights (top-1, crop)'}")
    for row in rows:
        releases = ", ".join(f"{r['name']} ({r['top1']:.2f}, {r['crop_pct']})" for r in row["releases"])
        print(f"{row['name']:<26}{row['params']:>11,}  {row['norm'] + '/' + row['act']:<20}{releases}")
    return 0
