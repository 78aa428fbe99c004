"""``edgenext train`` checks what it can before it writes anything."""

import pytest

from edgenext.cli.main import main


@pytest.mark.parametrize("args, message", [
    (["--model", "edgenext_xx_smal"], "unknown model 'edgenext_xx_smal'"),
    (["--data", "no/such/folder"], "does not exist"),
    (["--set", "epochs=ten"], "'epochs': expected int"),
    (["--finetune", "missing.pth"], "finetune=missing.pth: no such file"),
    (["--input-size", "64", "96"], "square inputs"),
])
def test_a_bad_setting_fails_before_the_run_folder_exists(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--no-progress", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # no debris: nothing was written


def test_print_config_names_the_task_and_takes_the_recipe_from_the_package(capsys):
    assert main(["train", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "task: classify" in out and "model: edgenext_xx_small" in out and "data: digits" in out
