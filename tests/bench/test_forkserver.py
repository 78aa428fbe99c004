"""The fork server behind ``run_isolated``: workers forked from one pre-imported process, each clean
(one thread, the caller's current environment and thread count), deaths and overruns reported as
before, and a new interpreter wherever forking is off or unsafe."""

import os
import signal
import subprocess
import sys

import pytest

from edgenext.bench import forkserver
from edgenext.bench.candidates import CandidateSpec, fork_preloads
from edgenext.bench.isolate import IsolatedError, run_isolated
from edgenext.optional import is_installed

pytestmark = pytest.mark.skipif(not forkserver.enabled(), reason="the fork server is Linux-only")


def test_workers_are_forked_children_of_one_server_and_start_with_one_thread():
    first, second = run_isolated("os:getppid", threads=1), run_isolated("os:getppid", threads=1)
    assert first == second != os.getpid()  # one server, not this process, started both
    assert run_isolated("os:getpid", threads=1) != run_isolated("os:getpid", threads=1) != first
    # nothing ran in the server before the fork: the child has the one thread fork leaves it
    assert run_isolated("threading:active_count", threads=1) == 1
    assert len(run_isolated("os:listdir", {"path": "/proc/self/task"}, threads=1)) == 1
    # the thread count is the caller's, per call: OpenMP reads it when torch loads, so 2 threads is another server
    assert run_isolated("torch:get_num_threads", threads=1) == 1
    assert run_isolated("torch:get_num_threads", threads=2) == 2
    assert run_isolated("os:getppid", threads=2) != first


def test_the_callers_environment_of_the_moment_reaches_the_child(monkeypatch):
    server = run_isolated("os:getppid", threads=1)
    monkeypatch.setenv("EDGENEXT_TEST_MARK", "first")
    assert run_isolated("os:getenv", {"key": "EDGENEXT_TEST_MARK"}, threads=1) == "first"
    monkeypatch.setenv("EDGENEXT_TEST_MARK", "second")
    assert run_isolated("os:getenv", {"key": "EDGENEXT_TEST_MARK"}, threads=1) == "second"
    monkeypatch.delenv("EDGENEXT_TEST_MARK")
    assert run_isolated("os:getenv", {"key": "EDGENEXT_TEST_MARK"}, threads=1) is None
    assert run_isolated("os:getppid", threads=1) == server  # the same server served them all


def test_a_child_that_dies_overruns_or_raises_is_reported_and_the_server_stays():
    server = run_isolated("os:getppid", threads=1)
    with pytest.raises(IsolatedError, match=r"os:abort: the worker process died \(killed by SIGABRT"):
        run_isolated("os:abort", threads=1)
    with pytest.raises(IsolatedError, match="did not finish within 1 s; the worker was stopped"):
        run_isolated("signal:pause", threads=1, timeout=1)
    with pytest.raises(IsolatedError, match="failed in its worker process: TypeError"):
        run_isolated("os:getenv", {"no_such_argument": 1}, threads=1)
    assert run_isolated("os:getppid", threads=1) == server


def test_a_killed_server_is_replaced():
    server = run_isolated("os:getppid", threads=1)
    os.kill(server, signal.SIGKILL)
    replacement = run_isolated("os:getppid", threads=1)
    assert replacement not in (server, os.getpid())


def test_a_module_that_starts_a_thread_runs_in_a_new_interpreter(tmp_path, monkeypatch):
    # forking a process with a second thread can deadlock the child: the server declines, the call runs anyway
    (tmp_path / "starts_a_thread.py").write_text(
        "import os, threading\n"
        "threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
        "def parent():\n    return os.getppid()\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    assert run_isolated("starts_a_thread:parent") == os.getpid()
    assert not forkserver.SERVERS.forkable(("starts_a_thread",))
    assert run_isolated("starts_a_thread:parent") == os.getpid()  # straight to an interpreter now
    assert run_isolated("os:getppid") != os.getpid()  # other calls still fork


def test_with_the_fork_server_off_each_worker_is_a_new_interpreter(monkeypatch):
    monkeypatch.setenv("EDGENEXT_BENCH_FORK", "0")
    assert not forkserver.enabled()
    assert run_isolated("os:getppid") == os.getpid()
    with pytest.raises(IsolatedError, match=r"killed by SIGABRT"):
        run_isolated("os:abort")
    with pytest.raises(IsolatedError, match="did not finish within 1 s"):
        run_isolated("signal:pause", timeout=1)


def test_servers_are_keyed_by_what_libraries_read_when_they_load():
    base = {"HOME": "/a", "OMP_NUM_THREADS": "1", "PYTEST_CURRENT_TEST": "x"}
    assert forkserver.env_key(base) == forkserver.env_key({**base, "HOME": "/b", "PYTEST_CURRENT_TEST": "y"})
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "PYTHONPATH", "TORCH_HOME"):
        assert forkserver.env_key(base) != forkserver.env_key({**base, var: "2"}), var


def test_a_server_that_cannot_start_is_tried_once_then_workers_start_new_interpreters(tmp_path):
    starts = []

    def broken(env):
        starts.append(env)
        raise forkserver.ServerGone("the fork server stopped answering")

    servers = forkserver.Servers(factory=broken)
    request, answer = tmp_path / "request.json", tmp_path / "answer.json"
    for _ in range(3):
        with pytest.raises(forkserver.ServerGone):
            servers.run(("os",), request, answer, tmp_path / "stderr.txt", {"OMP_NUM_THREADS": "1"}, None)
    assert len(starts) == 1


@pytest.mark.slow  # imports timm, torchvision and ExecuTorch's runtime in a new interpreter
def test_every_preload_a_bench_asks_for_starts_no_thread(tmp_path):
    # a preload that started a thread would make the server decline, and every such worker pay two starts
    from edgenext.tasks.registry import task_names

    preloads = {m for task in task_names() for impl in ("ours", "peer") for rt in ("eager", "executorch")
                for m in fork_preloads(CandidateSpec("m", impl, rt, task=task))}
    assert {"timm", "torchvision", "executorch.runtime"} <= preloads
    preloads = sorted(m for m in preloads if is_installed(m.partition(".")[0]))
    (tmp_path / "count.py").write_text(
        "import importlib, os, sys\nimport torch\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "for m in sys.argv[1:]:\n    importlib.import_module(m)\n"
        "print(before, len(os.listdir('/proc/self/task')))\n")
    done = subprocess.run([sys.executable, str(tmp_path / "count.py"), *preloads], capture_output=True, text=True,
                          check=True, env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    before, after = map(int, done.stdout.split()[-2:])
    assert after == before, (preloads, before, after)
