"""A wheel of the package, installed outside the source tree, trains with its built-in recipe."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_install_trains_from_outside_the_source_tree(tmp_path):
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)]
    subprocess.run(build, check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = wheels.glob("edgenext-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "edgenext/configs/digits.yaml" in names and "edgenext/configs/imagenet.yaml" in names

    # --no-deps into a bare target: torch and friends come from this environment, edgenext from the wheel
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, text=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    # one process (each pays torch's import): it says where edgenext came from, then runs the wheel's
    # __main__ exactly as `python -m edgenext train ...` does
    script = "import runpy, edgenext; print(edgenext.__file__); runpy.run_module('edgenext', run_name='__main__', alter_sys=True)"
    train = [sys.executable, "-c", script, "train", "--epochs", "1", "--output", "run", "--no-progress",
             "--set", "train_limit=32", "--set", "val_limit=16", "--set", "workers=0", "--set", "plot=false",
             "--set", "tensorboard=false"]
    proc = subprocess.run(train, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where = Path(proc.stdout.splitlines()[0])
    assert where.is_relative_to(target), proc.stdout  # not the source tree's copy
    assert (work / "run" / "best.pth").is_file() and (work / "run" / "config.yaml").is_file()
    assert "digits" in (work / "run" / "config.yaml").read_text()  # the recipe came from the wheel
