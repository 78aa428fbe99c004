"""``edgenext supervise``: run a training command again (it resumes from its last checkpoint) when it fails."""

from __future__ import annotations

import argparse

from ..train.supervise import supervise


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "supervise",
        help="re-run a failed training command (it resumes from its last checkpoint)",
        description="Run COMMAND; when it fails, run it again after --delay seconds, at most --retries times. "
        "Re-running an `edgenext train` command resumes it from last.pth exactly (--set checkpoint_every=N bounds "
        "the work lost). Put it outside torchrun, one per node: edgenext supervise --retries 3 -- torchrun "
        "--nnodes=2 ... -m edgenext train ... . Failures a retry would repeat (a bad setting or data set, a NaN "
        "loss) stop it at once; it exits with the last attempt's exit code.",
    )
    p.add_argument("--retries", type=int, default=3, help="how many times to run the command again (default 3)")
    p.add_argument("--delay", type=float, default=10.0,
                   help="seconds to wait before each retry (default 10: the other nodes' agents notice the failure "
                   "and the rendezvous port is freed)")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...",
                   help="the command to run, after --")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return supervise(command, retries=args.retries, delay=args.delay)
