"""Run one measurement in a fresh Python process.

Timing one runtime in the process where another already ran is biased: OpenVINO's and
XNNPACK's worker threads keep spinning after a call, allocators and caches stay warm for
whoever comes next. ``run_isolated`` starts a clean interpreter (``python -m
edgenext.bench.isolate``) with the thread count in its environment before anything is
imported, calls ``module:function(**kwargs)`` there and returns its result. Arguments and
result travel as JSON files, so both must be JSON values (numbers, strings, lists, dicts).
An exception in the worker comes back as ``IsolatedError`` with the worker's traceback; a
worker that dies or overruns ``timeout`` is stopped and reported.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Optional

#: environment a worker starts with: every threading runtime gets the same count
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class IsolatedError(RuntimeError):
    """The isolated call failed; the message carries the worker's error and traceback."""


def run_isolated(target: str, kwargs: Optional[dict[str, Any]] = None, *, threads: Optional[int] = None,
                 timeout: Optional[float] = None) -> Any:
    """``module:function(**kwargs)`` in a fresh process with ``threads`` CPU threads; its result.

    ``target`` must be importable by name (``"edgenext.bench.worker:time_candidate"``).
    """
    if ":" not in target:
        raise ValueError(f"target {target!r} must be 'package.module:function'")
    env = dict(os.environ)
    if threads is not None:
        env.update({var: str(threads) for var in _THREAD_VARS})
        env["EDGENEXT_WORKER_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="edgenext-worker-") as tmp:
        request, answer = Path(tmp) / "request.json", Path(tmp) / "answer.json"
        request.write_text(json.dumps({"target": target, "kwargs": dict(kwargs or {})}))
        cmd = [sys.executable, "-m", "edgenext.bench.isolate", str(request), str(answer)]
        try:
            done = subprocess.run(cmd, env=env, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        except subprocess.TimeoutExpired:
            raise IsolatedError(f"{target} did not finish within {timeout} s; the worker was stopped") from None
        if not answer.exists():
            tail = "\n".join(_informative(done.stderr.splitlines())[-15:])
            raise IsolatedError(f"{target}: the worker process died ({_exit_reason(done.returncode)}) before "
                                f"answering:\n{tail}")
        status, value = json.loads(answer.read_text())
    if status == "error":
        raise IsolatedError(f"{target} failed in its worker process: {value}")
    return value


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


def _serve(request: Path, answer: Path) -> int:
    spec = json.loads(request.read_text())
    try:
        threads = os.environ.get("EDGENEXT_WORKER_THREADS")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        module_name, _, func_name = spec["target"].partition(":")
        func = getattr(importlib.import_module(module_name), func_name)
        result = ["ok", func(**spec["kwargs"])]
    except Exception as err:  # noqa: BLE001 - everything goes back to the parent, named
        result = ["error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"]
    answer.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_serve(Path(sys.argv[1]), Path(sys.argv[2])))
