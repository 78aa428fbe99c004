"""``edgenext bench --data``: the training input pipeline's rows (folder, shards, timm), the decoders' agreement
and the cores-per-accelerator figure, on a dozen small JPEGs (figures only, no timing assertions)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgenext.bench import input_pipeline
from edgenext.bench.input_pipeline import bench_input, format_input_table, machine_line
from edgenext.bench.input_workers import DECODERS, LOADERS
from edgenext.cli.main import main


@pytest.fixture
def jpeg_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(12):
        folder = tmp_path / "data" / "train" / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        h, w = int(rng.integers(32, 49)), int(rng.integers(32, 49))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:02d}.jpg", quality=90)
    return tmp_path / "data"


def test_input_bench_rows_and_cores_needed(jpeg_folder, tmp_path):
    rows = bench_input(jpeg_folder, workdir=tmp_path / "work", recipe="edgenext_small", batch=4, input_size=32,
                       workers=(0, 1), rounds=1, batches=1, train_steps=1, model="edgenext_xx_small", isolated=False)
    loaders = {(r["candidate"], r["workers"]): r for r in rows if r["phase"] == "loader"}
    assert set(loaders) == {(kind, w) for kind in LOADERS for w in (0, 1)}
    assert all(r["throughput_img_s"] > 0 and r["batch"] == 4 and r["input_size"] == 32 for r in loaders.values())
    assert loaders[("timm", 1)]["ratio_vs_timm"] == pytest.approx(1.0)
    assert (tmp_path / "work" / "shards" / "manifest.json").is_file()  # the shards were written by the library

    decode = {r["candidate"]: r for r in rows if r["phase"] == "decode"}
    assert set(decode) == set(DECODERS) and all(r["throughput_img_s"] > 0 for r in decode.values())
    agreement = next(r for r in rows if r["phase"] == "decode_agreement")
    assert agreement["images"] == 12 and agreement["max_abs_pixel_diff"] >= 0
    assert agreement["max_abs_output_diff"] >= 0 and agreement["choice"] in ("pil", "torchvision")

    train = next(r for r in rows if r["phase"] == "train_step")
    assert train["label"] == "CPU training step" and train["candidate"] == "edgenext_xx_small"
    cores = {r["candidate"]: r for r in rows if r["phase"] == "cores_needed"}
    assert set(cores) == set(LOADERS)
    for kind, row in cores.items():
        assert row["per_worker_img_s"] == loaders[(kind, 1)]["throughput_img_s"]
        assert row["cores_needed"] == pytest.approx(train["throughput_img_s"] / row["per_worker_img_s"])
    text = format_input_table(rows, machine_line())
    assert "cores to feed it, shards" in text and "CPU training step" in text and "agreement on 12 JPEGs" in text


def test_bench_data_option_reaches_the_library(jpeg_folder, tmp_path, monkeypatch, capsys):
    seen = {}

    def fake(data, **kwargs):
        seen.update(kwargs, data=data)
        return [{"phase": "loader", "candidate": "folder", "workers": 0, "throughput_img_s": 1.0}]

    monkeypatch.setattr(input_pipeline, "bench_input", fake)
    out = tmp_path / "rows.json"
    assert main(["bench", "--data", str(jpeg_folder), "--batches", "8", "--input-size", "64", "--workers", "3",
                 "--rounds", "1", "--json", "--save-json", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["candidate"] == "folder"
    assert seen["batch"] == 8 and seen["input_size"] == 64 and seen["workers"] == [0, 1, 3] and seen["rounds"] == 1
    assert json.loads(out.read_text())[0]["workers"] == 0 and (tmp_path / "rows.machine.json").is_file()
