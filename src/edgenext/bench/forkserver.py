"""Fresh bench workers without paying Python's and PyTorch's start-up each time.

A bench worker must start clean: no runtime may have run in its process before (see ``isolate``).
A new interpreter gives that, at the price of importing torch and the worker's modules again: 2-4 s
of CPU per worker on a 2-core machine, several times what timing a small model takes. The fork
server pays it once: ``python -m edgenext.bench.forkserver`` imports torch, waits for requests on
its stdin, imports each request's modules (the target's and the caller's ``preload``: module-level
code only, nothing runs; they stay imported for later requests), and forks one child per request. The child is the clean worker: a copy of a process in which no runtime,
thread pool or allocator has done any work. No module the server imports may start a thread
(it checks before every fork, and declines when one did), so forking it is safe.

The server is started with the worker's environment (the thread counts OpenMP and MKL read when they
are loaded); each child also takes the caller's current environment before it imports anything else.
``Servers`` keeps one server per distinct environment. Linux only; ``EDGENEXT_BENCH_FORK=0`` turns it
off (every worker a new interpreter, as before).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Optional, Sequence

#: environment variables read when the server's libraries load (thread counts, instruction sets, PyTorch's
#: and Python's settings): a server serves callers whose values of these equal its own. The rest of the
#: caller's environment reaches each child before the request runs.
LOAD_TIME_ENV = ("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "GOTO", "ATEN_", "ONEDNN_", "DNNL_", "TORCH",
                 "PYTORCH_", "CUDA_", "LD_", "PYTHON", "EDGENEXT_WORKER_")
#: seconds a new server may take to import torch before the caller gives up on it
START_TIMEOUT_S = 180.0
#: servers kept alive at once (one per environment; a bench uses one)
MAX_SERVERS = 2


class ServerGone(RuntimeError):
    """The fork server could not take the request (it died, or declined): run a new interpreter instead."""


class Declined(ServerGone):
    """The server imported the request's modules and found a new thread: it cannot fork safely with them."""


def enabled() -> bool:
    """Whether workers are forked from a server here: Linux with ``os.fork``, unless ``EDGENEXT_BENCH_FORK=0``."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and os.environ.get("EDGENEXT_BENCH_FORK", "1").strip().lower() not in ("0", "false", "no", "off"))


def env_key(env: dict[str, str]) -> tuple:
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith(LOAD_TIME_ENV)))


class ForkServer:
    """One server process (started with ``env``) and the pipe to it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "edgenext.bench.forkserver"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, bufsize=1)
        self.lock = threading.Lock()
        self._reply(START_TIMEOUT_S)  # {"ready": pid}

    def _reply(self, timeout: Optional[float]) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise ServerGone("the fork server stopped answering" if ready else "the fork server did not answer in time")
        return json.loads(line)

    def run(self, modules: Sequence[str], request: Path, answer: Path, stderr: Path, env: dict[str, str],
            timeout: Optional[float]) -> tuple[int, bool]:
        """Import ``modules`` in the server, fork a child that serves ``request`` (``serve_request``): the
        child's exit code and whether it overran ``timeout``."""
        message = {"modules": list(modules), "request": str(request), "answer": str(answer), "stderr": str(stderr),
                   "env": env, "timeout": timeout}
        with self.lock:
            try:
                self.proc.stdin.write(json.dumps(message) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.close()
                raise ServerGone("the fork server is gone") from None
            # the server enforces the timeout; this one only notices a server that hangs or dies
            reply = self._reply(None if timeout is None else timeout + 60.0)
        if "declined" in reply:
            self.close()
            raise Declined(reply["declined"])
        return int(reply["code"]), bool(reply["timed_out"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the server exits at the end of its input
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class Servers:
    """The live servers of this process, one per environment (``env_key``), started on first use."""

    def __init__(self, factory: Callable[[dict], ForkServer] = ForkServer) -> None:
        self.factory = factory
        self.servers: dict[tuple, ForkServer] = {}
        self.lock = threading.Lock()
        #: module lists a server declined: their calls start new interpreters from then on
        self.declined: set[tuple[str, ...]] = set()
        #: environments (``env_key``) no server started with
        self.unstartable: set[tuple] = set()

    def forkable(self, modules: Sequence[str]) -> bool:
        return tuple(modules) not in self.declined

    def run(self, modules: Sequence[str], request: Path, answer: Path, stderr: Path, env: dict[str, str],
            timeout: Optional[float]) -> tuple[int, bool]:
        """``ForkServer.run`` on the server for ``env`` (started if needed; started again once if it is gone)."""
        for attempt in range(2):
            try:
                return self.get(env).run(modules, request, answer, stderr, env, timeout)
            except Declined:
                self.declined.add(tuple(modules))
                raise
            except ServerGone:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, env: dict[str, str]) -> ForkServer:
        """The live server for ``env``, started if there is none; ``ServerGone`` if one could not start with
        it before (it is tried once per process: a failed start costs as long as a worker)."""
        key = env_key(env)
        with self.lock:
            if key in self.unstartable:
                raise ServerGone("a fork server did not start with this environment")
            server = self.servers.pop(key, None)
            if server is not None and server.alive():
                self.servers[key] = server
                return server
            if server is not None:
                server.close()
            while len(self.servers) >= MAX_SERVERS:
                self.servers.pop(next(iter(self.servers))).close()
            try:
                server = self.factory(env)
            except ServerGone:
                self.unstartable.add(key)
                raise
            self.servers[key] = server
            return server

    def close(self) -> None:
        with self.lock:
            for server in self.servers.values():
                server.close()
            self.servers.clear()


SERVERS = Servers()
atexit.register(SERVERS.close)


# ----------------------------------------------------------------------------------------- the server side

def serve_request(request: Path, answer: Path) -> int:
    """Call the request's ``module:function(**kwargs)`` here, write ``["ok", result]`` or ``["error", message]``."""
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



def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _wait(pid: int, timeout: Optional[float]) -> tuple[int, bool]:
    """Wait for child ``pid`` at most ``timeout`` s (then kill it): its exit code (-N: signal N), timed out.

    The server sleeps in the kernel until the child ends (a pidfd): a server that woke up now and then to
    look would take a core from a worker timing on every core, and slow it."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # Linux < 5.3: look every few milliseconds
        fd = None
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return -signal.SIGKILL, True
            if fd is not None:
                select.select([fd], [], [], left)
            else:
                time.sleep(delay if left is None else min(delay, left))
                delay = min(delay * 2, 0.02)
    finally:
        if fd is not None:
            os.close(fd)


def _child(message: dict) -> None:
    """In the forked child: the caller's environment and output files, then the request; never returns."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(message["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(err, 2)
        os.close(null)
        os.close(err)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()
        os.environ.update(message["env"])
        code = serve_request(Path(message["request"]), Path(message["answer"]))
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the server's loop
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(lines, reply: Callable[[dict], None]) -> None:
    """The server's loop: one request per line, one reply per request."""
    import torch  # noqa: F401 - the import every worker needs; paid here once

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the caller and the child, not the server
    # NOTE: numpy's OpenBLAS starts its thread pool at import; it stops the pool before a fork (pthread_atfork)
    # and the child starts its own on first use. Threads beyond these are a module's: then no fork
    baseline = _threads()
    reply({"ready": os.getpid()})
    for line in lines:
        message = json.loads(line)
        for module in message["modules"]:
            try:
                importlib.import_module(module)  # its module-level code, in the server once
            except Exception:  # noqa: BLE001 - the child imports it again and reports the error
                pass
        if _threads() > baseline:  # an import started a thread: forking now could deadlock the child
            reply({"declined": f"importing {', '.join(message['modules'])} started threads in the fork server"})
            return
        pid = os.fork()
        if pid == 0:
            _child(message)
        code, timed_out = _wait(pid, message["timeout"])
        reply({"code": code, "timed_out": timed_out})


def main() -> int:
    out = sys.stdout

    def reply(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    serve(sys.stdin, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
