import json
import os
import shutil
from pathlib import Path

import torch


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move the parameters that start at trivial values (layer scales 1e-6, temperatures 1,
    BatchNorm statistics 0/1) to random values, so that every block changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("gamma", "gamma_xca")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif name.endswith("temperature"):
                p.copy_(torch.rand(p.shape, generator=g) * 1.5 + 0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=g) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.5)
                module.weight.copy_(torch.rand(module.weight.shape, generator=g) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.1)
    return model


import pytest  # noqa: E402

#: thread-count variables of the runtimes the tests use (torch's OpenMP, MKL, OpenBLAS)
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def pytest_configure(config):
    """Under pytest-xdist each worker computes on its share of the cores: two workers with two
    OpenMP threads each on two cores wait on each other at every op (many times slower than one
    thread each). The variables reach the processes a test starts too; ones already set are kept."""
    import os

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and hasattr(config, "workerinput"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        for var in _THREAD_VARS:
            os.environ.setdefault(var, str(max(1, cores // workers)))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


#: converters whose first call in a process pays seconds of set-up: ExecuTorch builds XNNPACK's pattern graphs
#: (~12 s), Core ML imports what it converts from (~10 s), LiteRT ~4 s. Tests whose name (parameters included)
#: names one form its group, and so do the modules in ``MODULE_GROUPS``.
WARM_UP_GROUPS = ("executorch", "coreml", "litert")
MODULE_GROUPS = {"tests/deploy/test_executorch_graph.py": "executorch"}
#: modules whose module-scoped fixture takes seconds (a bench run, training runs, dense exports): each is a
#: group, so that one worker builds the fixture once
SHARED_FIXTURE_MODULES = ("tests/bench/test_bench.py", "tests/train/test_cluster.py", "tests/train/test_fit_resume.py",
                          "tests/dense/test_export_bench.py", "tests/dense/test_inference.py",
                          "tests/demo/test_browser_parity.py")


def xdist_group(nodeid: str) -> str | None:
    """The group of the test ``nodeid`` (``tests/...py::name[params]``), or None."""
    path, _, name = nodeid.partition("::")
    if path in MODULE_GROUPS:
        return MODULE_GROUPS[path]
    if path in SHARED_FIXTURE_MODULES:
        return path
    return next((group for group in WARM_UP_GROUPS if group in name.lower()), None)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` (pyproject's addopts) as this suite needs it: each ``xdist_group`` runs on one
    worker, which pays its set-up once; every other test goes to whichever worker is nearly out of work.
    (pytest-xdist's own loadgroup reads ``xdist_group`` marks, which it can no longer attach to the test ids
    under pytest 9.2: every test would be a group of its own.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid) or nodeid

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """The tests marked slow (20-60 s each on 2 cores) run first: pytest-xdist's workers then end on
    short tests, instead of one worker finishing a minute-long test while the other waits."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: otherwise in file order


@pytest.fixture(scope="session")  # a pure function: session-scoped fixtures (built sites, shared models) use it too
def randomize():
    return randomize_


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No cached weights, and every download fails as it does without a network."""
    from urllib.error import URLError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def unreachable(url, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)


_MODEL_CACHE: dict = {}


@pytest.fixture(scope="session")
def cached_model():
    """``cached_model(name, num_classes=1000, **model_kwargs)``: a randomised eval-mode model per
    (variant, num_classes, model_kwargs), built once per session. Tests must not modify it."""
    import edgenext

    def get(name: str, num_classes: int = 1000, **model_kwargs):
        key = (name, num_classes, tuple(sorted(model_kwargs.items())))
        if key not in _MODEL_CACHE:
            with torch.random.fork_rng():  # the same weights in every xdist worker (``exported`` shares files)
                torch.manual_seed(1)
                model = edgenext.create_model(name, num_classes=num_classes, **model_kwargs)
            _MODEL_CACHE[key] = randomize_(model, seed=1).eval()
        return _MODEL_CACHE[key]

    return get


@pytest.fixture(scope="session")
def built_once(tmp_path_factory):
    """``built_once(name, build)``: the folder ``name`` after ``build(folder)`` ran in it once per test run:
    whichever xdist worker asks first builds it, the others wait for it and reuse it."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # every worker's base is in it

    def get(name: str, build) -> Path:
        folder = root / name
        with FileLock(str(folder) + ".lock"):
            if not (folder / "done").is_file():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                build(folder)
                (folder / "done").write_text("ok")
        return folder

    return get


@pytest.fixture(scope="session")
def exported(built_once, cached_model):
    """``exported(fmt, name="edgenext_xx_small", input_size=32, model_kwargs=None, **options)``:
    ``export_model``'s result for ``cached_model(name, 10, **model_kwargs)``, written once per test run into a
    folder of its own (exports are slow, and several test modules, on either xdist worker, check the same
    file). Tests must not modify the file."""
    from edgenext.deploy.export import export_model
    from edgenext.deploy.formats import FORMATS
    from edgenext.deploy.result import ExportResult

    cache: dict = {}

    def get(fmt: str, name: str = "edgenext_xx_small", input_size: int = 32, model_kwargs=None, **options):
        model_kwargs = model_kwargs or {}
        key = (fmt, name, input_size, tuple(sorted(options.items())), tuple(sorted(model_kwargs.items())))
        if key not in cache:
            def build(folder: Path) -> None:
                out = folder / "file" / f"model{FORMATS[fmt].suffix}"  # alone in its folder, as a user's
                model = cached_model(name, 10, **model_kwargs)
                result = export_model(model, fmt, out, input_size=input_size, **options)
                (folder / "result.json").write_text(json.dumps(result.to_dict()))

            settings = (*(f"{k}={v}" for k, v in key[3]), *(f"{k}={v}" for k, v in key[4]))
            label = "-".join(str(part) for part in (fmt, name, input_size, *settings))
            label = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in label)  # a tuple's brackets, spaces
            folder = built_once(f"exported-{label}", build)
            cache[key] = ExportResult(**json.loads((folder / "result.json").read_text()))
        return cache[key]

    return get


def write_image_folder(root, classes=("cat", "dog"), per_class=4, size=40, seed=0, splits=("train", "val")):
    """Small PNG image folders ROOT/<split>/<class>/*.png with class-dependent colours (learnable)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split in splits:
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                base = np.zeros((size, size, 3), dtype=np.float64)
                base[..., c % 3] = 200.0
                img = np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


#: A tiny EdgeNeXt on a few 32x32 digits: config overrides for fast training tests.
TINY_TRAIN = dict(
    model="edgenext_xx_small",
    model_kwargs=dict(depths=[1, 1, 1, 1], dims=[16, 32, 48, 64], heads=[2, 2, 2, 2]),
    data="digits",
    digits_size=32,
    input_size=32,
    multi_scale=False,
    eval_crop_pct=1.0,
    epochs=2,
    batch_size=16,
    lr=2e-3,
    warmup_epochs=0.5,
    workers=0,
    threads=1,
    train_limit=64,
    val_limit=32,
    hflip=0.0,
    amp=False,
    progress=False,
    tensorboard=False,
    plot=False,
)


@pytest.fixture(scope="session")
def folder_writer():
    """``write_image_folder`` itself, for module-scoped fixtures."""
    return write_image_folder


@pytest.fixture
def image_folder(tmp_path):
    return write_image_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def tiny_config_at():
    """``tiny_config_at(output, **overrides)``: a validated TINY_TRAIN config writing into ``output``
    (for module-scoped fixtures, which cannot use ``tiny_config``'s tmp_path)."""
    from edgenext.train import TrainConfig, apply_overrides

    def make(output, **overrides):
        output = str(output) if output is not None else None
        return apply_overrides(TrainConfig(), {**TINY_TRAIN, "output": output, **overrides}).validate()

    return make


@pytest.fixture
def tiny_config(tmp_path, tiny_config_at):
    """``tiny_config(**overrides)``: a validated TrainConfig writing into tmp_path/run."""

    def make(**overrides):
        return tiny_config_at(overrides.pop("output", tmp_path / "run"), **overrides)

    return make


@pytest.fixture(autouse=True)
def _restore_package_logger():
    """The CLI's ``main`` configures the ``edgenext`` logger for a terminal (own handler, no
    propagation); put it back after each test so pytest's ``caplog`` sees later records."""
    import logging

    logger = logging.getLogger("edgenext")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]
