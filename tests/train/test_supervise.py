"""``edgenext supervise``: re-runs a failing command, and stops at once on failures a retry would repeat."""

import sys

import pytest

from edgenext.cli.main import main
from edgenext.train import NonFiniteLossError
from edgenext.train.supervise import STOP_FILE_ENV, supervise


def script(body):
    return [sys.executable, "-c", f"import os, signal, sys\nfrom pathlib import Path\n{body}"]


def test_a_failing_command_runs_again_until_it_succeeds(tmp_path, caplog):
    tries = tmp_path / "tries"
    # fails twice (once killed by a signal), then succeeds
    cmd = script(f"p = Path({str(tries)!r}); n = len(p.read_text()) if p.exists() else 0; p.write_text('x' * (n + 1))\n"
                 "if n == 0: sys.exit(1)\n"
                 "if n == 1: os.kill(os.getpid(), signal.SIGKILL)")
    with caplog.at_level("INFO", logger="edgenext"):
        assert supervise(cmd, retries=3, delay=0) == 0
    assert tries.read_text() == "xxx"
    messages = [r.getMessage() for r in caplog.records]
    assert any("attempt 1 failed with exit code 1" in m for m in messages)
    assert any("attempt 2 failed with exit code 137" in m for m in messages)  # 128 + SIGKILL, as a shell says
    assert any("attempt 3 succeeded" in m for m in messages)


def test_it_gives_up_after_the_retries_with_the_last_exit_code(tmp_path):
    tries = tmp_path / "tries"
    cmd = script(f"open({str(tries)!r}, 'a').write('x'); sys.exit(7)")
    assert main(["supervise", "--retries", "2", "--delay", "0", "--", *cmd]) == 7
    assert tries.read_text() == "xxx"


def test_a_verdict_left_by_the_command_stops_it_at_once_even_through_a_launcher(tmp_path):
    # torchrun exits with 1 whatever its workers did: the worker's verdict in the stop file decides
    tries = tmp_path / "tries"
    cmd = script(f"open({str(tries)!r}, 'a').write('x')\n"
                 f"open(os.environ[{STOP_FILE_ENV!r}], 'a').write('3 the training loss became NaN or infinite\\n')\n"
                 "sys.exit(1)")
    assert supervise(cmd, retries=3, delay=0) == 3
    assert tries.read_text() == "x"


def test_train_leaves_a_verdict_for_bad_settings_and_nan_losses(tmp_path, monkeypatch):
    stop = tmp_path / "stop"
    monkeypatch.setenv(STOP_FILE_ENV, str(stop))
    assert main(["train", "--set", "epochs=0"]) == 2
    assert stop.read_text().startswith("2 edgenext train: epochs must be >= 1")
    stop.unlink()
    with pytest.raises(SystemExit):
        main(["train", "--no-such-flag"])
    assert stop.read_text().startswith("2 bad command-line arguments")
    stop.unlink()

    def nan(cfg):
        raise NonFiniteLossError("the training loss became nan at epoch 0, step 3")

    monkeypatch.setattr("edgenext.cli.train.fit", nan)
    assert main(["train", "--epochs", "1"]) == 3  # its own exit code
    assert stop.read_text().startswith("3 ")


def test_supervise_needs_a_command():
    assert main(["supervise", "--"]) == 2
