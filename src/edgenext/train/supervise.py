"""``supervise``: run a training command again, resuming from its last checkpoint, when it fails.

A run loses a process (a machine reboots, the OOM killer, a NIC resets): the command fails, and
running the same command again resumes from ``last.pth`` exactly (``checkpoint_every`` bounds
the work lost). ``supervise`` does that re-running: it runs the command, and on a failure runs it
again after ``delay`` seconds, up to ``retries`` times.

It sits outside ``torchrun`` (``edgenext supervise -- torchrun ... -m edgenext train ...``):
torchrun's own restarts (``--max-restarts``) re-spawn the workers inside an agent whose gloo
connections do not come back (pytorch/pytorch#167288), and they cannot restart a lost agent.
A whole new torchrun has no such state. On several machines each runs its own supervisor; the
new agents meet again through the c10d rendezvous on the same ``--rdzv_id`` and endpoint.

Failures a retry would repeat stop it: a bad setting, argument, data set or checkpoint (``edgenext``
exits with 2) and a loss that became NaN (exit code 3). Exit codes cannot carry that through
torchrun, which exits with 1 whatever its workers did, and 2 is also what ``edgenext`` gives a
runtime error; so the failing process says it itself: it writes the verdict into the file the
supervisor names in ``STOP_FILE_ENV`` (``tell_supervisor``), read after each attempt, with or
without torchrun. Everything else, a process killed by a signal, a lost peer, a CUDA or I/O
error, a download that failed, is retried.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

log = logging.getLogger(__name__)

#: The environment variable naming the file where a training process leaves a do-not-retry verdict.
STOP_FILE_ENV = "EDGENEXT_SUPERVISE_STOP_FILE"
#: ``edgenext``'s exit code for an error its message explains (a bad setting, argument or data set: a retry
#: would repeat those; but also a runtime error, which may not recur)
EXIT_ERROR = 2
#: ``edgenext train``'s exit code when the training loss became NaN or infinite
EXIT_NONFINITE = 3

_FORWARDED = (signal.SIGTERM, signal.SIGHUP)


def tell_supervisor(code: int, reason: str) -> None:
    """Leave the verdict "do not retry: ``reason``, exit ``code``" for a supervisor, if this process runs under one."""
    path = os.environ.get(STOP_FILE_ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{int(code)} {' '.join(reason.split())}\n")
    except OSError:
        pass  # the supervisor's folder is gone: nothing to tell


def supervise(command: Sequence[str], *, retries: int, delay: float = 10.0) -> int:
    """Run ``command`` until it succeeds, at most ``retries + 1`` times; returns the last exit code.

    A command killed by signal N counts as exit code 128 + N, as a shell reports it. SIGTERM or
    SIGHUP sent to the supervisor (a scheduler cancelling the job) reach the command and end the
    supervision; Ctrl-C reaches it through the terminal's process group and does the same.
    """
    if not command:
        raise ValueError("supervise: no command to run (give it after --)")
    if retries < 0 or delay < 0:
        raise ValueError(f"supervise: retries ({retries}) and delay ({delay}) must be >= 0")
    with tempfile.TemporaryDirectory(prefix="edgenext-supervise-") as folder:
        stop_file = Path(folder) / "stop"
        env = {**os.environ, STOP_FILE_ENV: str(stop_file)}
        for attempt in range(1, retries + 2):
            stop_file.unlink(missing_ok=True)
            log.info("supervise: attempt %d of %d: %s", attempt, retries + 1, shlex.join(command))
            start = time.monotonic()
            code, stopped = _run(command, env)
            took = time.monotonic() - start
            if code == 0:
                log.info("supervise: attempt %d succeeded after %.0f s", attempt, took)
                return 0
            verdict = _verdict(stop_file)
            if stopped:
                log.info("supervise: stopped by a signal; attempt %d exited with %d", attempt, code)
                return code
            if verdict is not None:
                log.info("supervise: attempt %d failed with exit code %d: %s; not retrying (it would fail again)",
                         attempt, code, verdict[1])
                return verdict[0]
            if attempt > retries:
                log.info("supervise: attempt %d failed with exit code %d; no retries left, giving up", attempt, code)
                return code
            log.info("supervise: attempt %d failed with exit code %d after %.0f s; running it again in %.0f s "
                     "(%d retr%s left)", attempt, code, took, delay,
                     retries - attempt + 1, "y" if retries - attempt + 1 == 1 else "ies")
            time.sleep(delay)
    return 1  # not reached


def _run(command: Sequence[str], env: dict[str, str]) -> tuple[int, bool]:
    """``command``'s exit code (128 + N when killed by signal N) and whether the supervisor was told to stop."""
    stopped: list[int] = []
    proc = subprocess.Popen(list(command), env=env)

    def forward(signum, frame):
        stopped.append(signum)
        if proc.poll() is None:
            proc.send_signal(signum)

    def interrupted(signum, frame):
        stopped.append(signum)  # the terminal sent SIGINT to the command too (same process group)

    handlers = _install({**{s: forward for s in _FORWARDED}, signal.SIGINT: interrupted})
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:  # a SIGINT before the handler was installed
                stopped.append(signal.SIGINT)
    finally:
        _install(handlers)
    return (code if code >= 0 else 128 - code), bool(stopped)


def _install(handlers: dict) -> dict:
    """Install signal handlers (main thread only; elsewhere none) and return the ones they replace."""
    previous = {}
    try:
        for signum, handler in handlers.items():
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread: run without forwarding
        pass
    return previous


def _verdict(stop_file: Path) -> Optional[tuple[int, str]]:
    """The first do-not-retry verdict a process of the last attempt left, if any."""
    try:
        lines = stop_file.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        code, _, reason = line.partition(" ")
        if code.isdigit():
            return int(code), reason or "no reason given"
    return None
