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
from . import supervise as supervise_cmd
from ..train.engine import NonFiniteLossError
from ..train.supervise import EXIT_ERROR, EXIT_NONFINITE, tell_supervisor

SUBCOMMANDS = (models_cmd, profile_cmd, train_cmd, eval_cmd, predict_cmd, export_cmd, bench_cmd, demo_cmd, shards_cmd,
               supervise_cmd)


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
    """Run a subcommand; exit codes: 0 done, 2 an error the message explains, 3 the training loss became
    NaN, 130 interrupted. Under ``edgenext supervise``, errors a retry would repeat (a bad argument,
    setting or data set: ``ValueError``; a NaN loss) also tell the supervisor not to retry."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        if exit_.code == EXIT_ERROR:
            tell_supervisor(EXIT_ERROR, "bad command-line arguments")
        raise
    configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except NonFiniteLossError as err:
        tell_supervisor(EXIT_NONFINITE, "the training loss became NaN or infinite")
        return _fail(args, err, EXIT_NONFINITE)
    except ValueError as err:
        tell_supervisor(EXIT_ERROR, f"edgenext {args.command}: {err}")
        return _fail(args, err, EXIT_ERROR)
    except (RuntimeError, OSError) as err:
        return _fail(args, err, EXIT_ERROR)
    except KeyboardInterrupt:
        print(f"edgenext {args.command}: interrupted", file=sys.stderr)
        return 130


def _fail(args: argparse.Namespace, err: Exception, code: int) -> int:
    if args.verbose:
        raise err
    print(f"edgenext {args.command}: error: {err}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
