"""``edgenext`` command: dispatches to one module per subcommand."""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module
from typing import Optional, Sequence

from ..train.errors import NonFiniteLossError
from ..train.supervise import EXIT_ERROR, EXIT_NONFINITE, tell_supervisor

#: the subcommands, in ``--help``'s order: each is the module of that name in this package, with its
#: ``add_parser(sub)``; a command line imports only its own (``edgenext supervise`` needs no PyTorch)
SUBCOMMANDS = ("models", "profile", "train", "eval", "predict", "export", "bench", "demo", "shards", "supervise")


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``edgenext`` parser with every subcommand, or with ``command``'s alone."""
    parser = argparse.ArgumentParser(
        prog="edgenext",
        description="EdgeNeXt: efficient CNN-Transformer backbones for mobile and edge vision.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS if command is None else (command,):
        import_module(f".{name}", __package__).add_parser(sub)
    return parser


def _command_of(argv: Sequence[str]) -> Optional[str]:
    """The subcommand ``argv`` names (the first word that is not an option: the top level's only option,
    -v, takes no value), or None when it names none of them (help, a typo: the full parser answers)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in SUBCOMMANDS else None


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
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
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
