"""``edgenext`` command: dispatches to one module per subcommand."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from . import models as models_cmd
from . import profile as profile_cmd
from . import train as train_cmd
from . import eval as eval_cmd
from . import predict as predict_cmd
from . import export as export_cmd
from . import bench as bench_cmd
from . import demo as demo_cmd
from . import shards as shards_cmd

SUBCOMMANDS = (models_cmd, profile_cmd, train_cmd, eval_cmd, predict_cmd, export_cmd, bench_cmd, demo_cmd, shards_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgenext",
        description="EdgeNeXt: efficient CNN-Transformer backbones for mobile and edge vision.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each message (not at creation)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # logging.StreamHandler.__init__ assigns it
        pass


def configure_logging(verbose: bool = False) -> None:
    """Our messages on stderr as ``edgenext: ...``; other libraries' loggers (matplotlib's font-cache
    notice, ...) are left alone instead of being printed under our prefix by a root handler."""
    package = logging.getLogger("edgenext")
    if not any(getattr(h, "_edgenext", False) for h in package.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("edgenext: %(message)s"))
        handler._edgenext = True  # type: ignore[attr-defined]
        package.addHandler(handler)
    package.setLevel(logging.DEBUG if verbose else logging.INFO)
    # NOTE: some dependencies install a root handler on import; propagating would print every line twice
    package.propagate = False


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except (ValueError, RuntimeError, OSError) as err:
        if args.verbose:
            raise
        print(f"edgenext {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgenext {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
