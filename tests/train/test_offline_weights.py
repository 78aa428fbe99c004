"""Offline, a classification run that starts from remote weights (--finetune URL, a pretrained
--teacher) fails before it writes anything, naming the setting and the way on."""

import pytest

from edgenext.cli.main import main


@pytest.mark.parametrize("args, key", [
    (["--finetune", "https://example.invalid/edgenext_xx_small.pth"], "finetune=https://example.invalid"),
    (["--teacher", "edgenext_small"], "teacher=https://"),
])
def test_remote_weights_are_fetched_before_the_run_folder(tmp_path, capsys, offline, args, key):
    out = tmp_path / "run"
    assert main(["train", "--output", str(out), "--epochs", "1", "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert key in err and "could not download" in err
    assert ("--finetune FILE" if args[0] == "--finetune" else "--set teacher_weights=FILE") in err
    assert not out.exists()
