"""Run one measurement in a fresh Python process.

Timing one runtime in the process where another already ran is biased: OpenVINO's and
XNNPACK's worker threads keep spinning after a call, allocators and caches stay warm for
whoever comes next. ``run_isolated`` calls ``module:function(**kwargs)`` in a process where
nothing has run yet, with the thread count in its environment before anything is imported,
and returns its result: a child forked from the fork server (``forkserver``: torch imported
once, nothing run), or where that is off or unavailable a new interpreter (``python -m
edgenext.bench.isolate``). Arguments and result travel as JSON files, so both must be JSON
values (numbers, strings, lists, dicts).
An exception in the worker comes back as ``IsolatedError`` with the worker's traceback; a
worker that dies or overruns ``timeout`` is stopped and reported.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

from . import forkserver

log = logging.getLogger(__name__)

#: environment a worker starts with: every threading runtime gets the same count
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class IsolatedError(RuntimeError):
    """The isolated call failed; the message carries the worker's error and traceback."""


def run_isolated(target: str, kwargs: Optional[dict[str, Any]] = None, *, threads: Optional[int] = None,
                 timeout: Optional[float] = None, preload: Sequence[str] = ()) -> Any:
    """``module:function(**kwargs)`` in a fresh process with ``threads`` CPU threads; its result.

    ``target`` must be importable by name (``"edgenext.bench.worker:time_candidate"``). ``preload``:
    modules the call imports that start no thread when imported (timm, not ONNX Runtime): a fork
    server imports them once for every worker it forks.
    """
    if ":" not in target:
        raise ValueError(f"target {target!r} must be 'package.module:function'")
    env = dict(os.environ)
    if threads is not None:
        env.update({var: str(threads) for var in _THREAD_VARS})
        env["EDGENEXT_WORKER_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="edgenext-worker-") as tmp:
        request, answer, errors = Path(tmp) / "request.json", Path(tmp) / "answer.json", Path(tmp) / "stderr.txt"
        request.write_text(json.dumps({"target": target, "kwargs": dict(kwargs or {})}))
        modules = (target.partition(":")[0], *preload)
        code, timed_out = _run_worker(modules, request, answer, errors, env, timeout)
        if timed_out:
            raise IsolatedError(f"{target} did not finish within {timeout} s; the worker was stopped")
        if not answer.exists():
            stderr = errors.read_text(errors="replace") if errors.exists() else ""
            tail = "\n".join(_informative(stderr.splitlines())[-15:])
            raise IsolatedError(f"{target}: the worker process died ({_exit_reason(code)}) before "
                                f"answering:\n{tail}")
        status, value = json.loads(answer.read_text())
    if status == "error":
        raise IsolatedError(f"{target} failed in its worker process: {value}")
    return value


def _run_worker(modules: Sequence[str], request: Path, answer: Path, errors: Path, env: dict[str, str],
                timeout: Optional[float]) -> tuple[int, bool]:
    """Serve ``request`` in a fresh process: (exit code, whether it overran ``timeout`` and was stopped)."""
    if forkserver.enabled() and forkserver.SERVERS.forkable(modules):
        try:
            return forkserver.SERVERS.run(modules, request, answer, errors, env, timeout)
        except forkserver.ServerGone as gone:
            log.debug("fork server unavailable (%s): starting a new interpreter", gone)
            answer.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "edgenext.bench.isolate", str(request), str(answer)]
    with open(errors, "w") as err:
        try:
            return subprocess.run(cmd, env=env, timeout=timeout, stdout=subprocess.DEVNULL, stderr=err).returncode, False
        except subprocess.TimeoutExpired:
            return -signal.SIGKILL, True


#: glog-style lines ("W1201 05:30:09.327 ..."): warnings PyTorch prints at import, never the reason a worker died
_GLOG_LINE = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d")


def _informative(lines: list[str]) -> list[str]:
    return [line for line in lines if line.strip() and not _GLOG_LINE.match(line)]


def _exit_reason(code: int) -> str:
    """"exit code 3", or for a signal its name: "killed by SIGSEGV (exit code -11)"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name} (exit code {code})"
        except ValueError:
            pass
    return f"exit code {code}"


if __name__ == "__main__":
    sys.exit(forkserver.serve_request(Path(sys.argv[1]), Path(sys.argv[2])))
