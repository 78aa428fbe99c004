"""Every installed export format round-trips within 1e-4 of eager PyTorch (xx_small and a
bn_hs variant); missing optional packages fail with the extra to install."""

import dataclasses
import json
import sys

import pytest
import torch

from edgenext.cli.main import main
from edgenext.deploy.export import ParityError, export_model
from edgenext.deploy.formats import FORMATS, register, unregister
from edgenext.optional import MissingExtraError, require

SIZE = 32  # the smallest input EdgeNeXt takes: exports and runtimes stay fast
#: formats whose converter cannot take SIZE (LiteRT: a 1x1 last stage), and the side they are tested at
SIZE_OF = {"litert": 64}
SLOW = ("executorch", "coreml")


def _installed(fmt):
    module = FORMATS[fmt].module
    return pytest.mark.skipif(not FORMATS[fmt].installed, reason=f"{module} is not installed")


FORMAT_PARAMS = [pytest.param(f, marks=[_installed(f)] + ([pytest.mark.slow] if f in SLOW else [])) for f in FORMATS]
#: converters that take the bn_hs family in a detector export already (test_fuse_dense.py and
#: test_litert_mnn.py: SSDLite on edgenext_xx_small_bn_hs, parity checked): a second bn_hs classifier
#: export would cost 10-30 s each and prove nothing more
BN_HS_IN_DENSE_TESTS = ("executorch", "litert", "mnn")
ROUND_TRIPS = [pytest.param(p.values[0], name, marks=p.marks, id=f"{p.values[0]}-{name}")
               for p in FORMAT_PARAMS for name in ("edgenext_xx_small", "edgenext_xx_small_bn_hs")
               if not (name.endswith("_bn_hs") and p.values[0] in BN_HS_IN_DENSE_TESTS)]
#: ExecuTorch's lowering and LiteRT's conversion take seconds per block: their round trips are XXS with one
#: block in stage 1 and two in each later stage (every block kind, as in their dense tests; deploy/conftest.py's
#: SHALLOW_XXS); the full depth's five more blocks of the same kinds would add 5-10 s each and nothing to check
MODEL_KWARGS = {fmt: dict(depths=(1, 2, 2, 2)) for fmt in ("executorch", "litert")}
#: OpenVINO's dynamic batch is checked on XXS here and in the dense parity tests (test_fuse_dense.py); its
#: converter takes twice as long with a symbolic batch, so the bn_hs variant is checked at batch 1
OPTIONS = {("openvino", "edgenext_xx_small_bn_hs"): dict(batch=1)}


@pytest.mark.parametrize("fmt, name", ROUND_TRIPS)
def test_export_round_trip(fmt, name, exported):
    # conftest's: one export per session
    result = exported(fmt, name, input_size=SIZE_OF.get(fmt, SIZE), model_kwargs=MODEL_KWARGS.get(fmt),
                      **OPTIONS.get((fmt, name), {}))
    assert result.size_bytes > 100_000
    if fmt == "coreml" and result.max_abs_diff is None:  # off macOS: structural check only
        assert "structural" in result.check and [1, 10] in result.details["shapes"].values()
        return
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    assert "max |exported - eager|" in result.parity_line()


@_installed("onnx")
def test_onnx_graph_is_dynamic_batch_and_new_opset(exported):
    import onnx

    from edgenext.deploy.formats.onnx import OnnxRunner

    path = exported("onnx", "edgenext_xx_small", input_size=SIZE).path
    graph = onnx.load(path)
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 20
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    ops = {n.op_type for n in graph.graph.node}
    assert "Gelu" in ops and "Erf" not in ops  # one op ONNX Runtime fuses with the bias, not five passes
    out = OnnxRunner(path)(torch.randn(5, 3, SIZE, SIZE))
    assert out.shape == (5, 10)


@_installed("onnx")
def test_runners_keep_to_omp_num_threads_unless_told_otherwise(exported, monkeypatch):
    """A runtime that does not read OMP_NUM_THREADS (ONNX Runtime: one thread per core) still keeps to it
    when it is set, as PyTorch does: two processes sharing the cores do not each start one per core."""
    from edgenext.deploy.formats.onnx import OnnxRunner
    from edgenext.deploy.formats.registry import runner_threads

    path = exported("onnx", "edgenext_xx_small", input_size=SIZE).path

    def session_threads(**kwargs) -> int:
        return OnnxRunner(path, **kwargs).session.get_session_options().intra_op_num_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runner_threads() == 3 and runner_threads(2) == 2
    assert session_threads() == 3 and session_threads(threads=2) == 2
    for unset in ("", "0", "two"):
        monkeypatch.setenv("OMP_NUM_THREADS", unset)
        assert runner_threads() is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert runner_threads() is None and session_threads() == 0  # 0: ONNX Runtime's own choice


@_installed("openvino")
def test_openvino_conversions_send_no_telemetry(tmp_path, monkeypatch):
    """OpenVINO's converter sends usage events unless told not to, each from a forked copy of the process
    (~33 per EdgeNeXt conversion: seconds of CPU offline) and keeps a client id under ~/intel: ours run with it
    off, and leave the environment as they found it."""
    import os

    from openvino_telemetry import Telemetry

    from edgenext.deploy.formats.openvino import TELEMETRY_ENV

    forks, real_fork = [], os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("CI", "NNCF_CI", TELEMETRY_ENV):
        monkeypatch.delenv(name, raising=False)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    FORMATS["openvino"].write(model, tmp_path / "m.xml", input_size=(8, 8), batch=1)
    assert Telemetry().consent is False  # ovc's telemetry singleton, as the conversion left it
    assert not forks and not (tmp_path / "intel").exists()
    assert "CI" not in os.environ and "NNCF_CI" not in os.environ


def test_parity_failure_is_loud(tmp_path, cached_model):
    model = cached_model("edgenext_xx_small", 10)

    class Broken:
        def __init__(self, path, **_):
            pass

        def __call__(self, x):
            return model(x) + 1e-3

    register(dataclasses.replace(FORMATS["torchscript"], name="broken-torchscript", runner=Broken))
    try:
        with pytest.raises(ParityError, match="differs from eager"):
            export_model(model, "broken-torchscript", tmp_path / "m.pt", input_size=SIZE)
    finally:
        unregister("broken-torchscript")


def test_missing_package_names_the_extra(monkeypatch):
    with pytest.raises(MissingExtraError, match=r'pip install "edgenext\[executorch\]"'):
        require("surely_not_a_module_xyz", "executorch", "ExecuTorch export")


@pytest.mark.parametrize("fmt", [f for f in FORMATS if FORMATS[f].extra is not None])
def test_each_format_names_its_extra_when_its_package_is_missing(fmt, tmp_path, monkeypatch):
    spec = FORMATS[fmt]
    monkeypatch.setitem(sys.modules, spec.module, None)  # makes `import <module>` fail
    assert not spec.installed
    with pytest.raises(MissingExtraError, match=rf'pip install "edgenext\[{spec.extra}\]"'):
        spec.runner(tmp_path / f"model{spec.suffix}")


def test_cli_lists_every_format_of_the_table(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(f"{f.name}: {f.suffix}" in help_text for f in FORMATS.values())


def test_bad_format_and_batch(tmp_path, cached_model):
    model = cached_model("edgenext_xx_small", 10)
    with pytest.raises(ValueError, match="unknown export format"):
        export_model(model, "tflite", tmp_path / "m.tflite")
    with pytest.raises(ValueError, match="batch"):
        export_model(model, "onnx", tmp_path / "m.onnx", batch=0)


def test_cli_export_prints_parity_line(tmp_path, capsys):
    out = tmp_path / "m.pt"
    rc = main(["export", "--model", "edgenext_xx_small", "--num-classes", "10", "--format", "torchscript",
               "--output", str(out), "--input-size", str(SIZE), str(2 * SIZE), "--batch", "2", "--json"])
    assert rc == 0 and out.exists()
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "torchscript" and result["max_abs_diff"] < 1e-4
    traced = torch.jit.load(str(out))
    assert traced(torch.randn(2, 3, SIZE, 2 * SIZE)).shape == (2, 10)  # HEIGHT WIDTH, in that order


def test_cli_export_rejects_a_too_small_input_size(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", "edgenext_xx_small", "--format", "torchscript", "--output", str(tmp_path / "m.pt"),
              "--input-size", "16"])
    assert exit_info.value.code == 2 and "32x32 minimum" in capsys.readouterr().err


def test_cli_export_num_classes_needs_a_model(tmp_path, capsys):
    rc = main(["export", "--num-classes", "10", "--format", "torchscript", "--output", str(tmp_path / "m.pt")])
    assert rc == 2 and "--model" in capsys.readouterr().err


def test_cli_export_reads_model_and_input_size_from_a_training_checkpoint(tmp_path, tiny_config, capsys):
    from edgenext.tasks import fit

    cfg = tiny_config(input_size=48, digits_size=48, epochs=1, train_limit=16, val_limit=16)
    fit(cfg)
    best = next((tmp_path / "run").rglob("best.pth"))
    out = tmp_path / "m.pt"
    assert main(["export", "--weights", str(best), "--format", "torchscript", "--output", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] < 1e-4
    traced = torch.jit.load(str(out))
    assert traced(torch.randn(1, 3, 48, 48)).shape == (1, 10)  # the run's 10 digit classes at its 48 px
    app = json.loads((tmp_path / "m.json").read_text())  # what an app needs, beside the model
    assert app["task"] == "classify" and app["input"]["shape"] == [1, 3, 48, 48] and len(app["labels"]) == 10
    assert app["outputs"] == [{"name": "logits", "role": "logits", "shape": [1, 10]}]


@_installed("openvino")
def test_cli_export_reports_errors(tmp_path, capsys):
    rc = main(["export", "--model", "edgenext_xx_small", "--format", "openvino", "--output", str(tmp_path / "m.onnx"),
               "--input-size", str(SIZE)])
    assert rc == 2 and ".xml" in capsys.readouterr().err
