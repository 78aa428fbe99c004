"""The training-step speed options (compile, AdamW kernel, channels-last, amp by hardware) and bench_train."""

import logging

import pytest
import torch

from edgenext.train import TrainConfig, apply_overrides, load_training_checkpoint
from edgenext.tasks import fit
from edgenext.train import setup as builders
from edgenext.train import runner as runner_mod
from edgenext.train.setup import COMPILE_MIN_UPDATES, amp_dtype, compile_choice
from edgenext.train.classify import ClassificationTask
from edgenext.train.optim import build_optimizer

CPU = torch.device("cpu")


@pytest.mark.parametrize("key,bad", [("compile", "yes"), ("compile", 1), ("adamw", "fast"), ("adamw", True),
                                     ("channels_last", "yes")])
def test_speed_keys_are_type_checked(key, bad):
    with pytest.raises(ValueError, match=key):
        apply_overrides(TrainConfig(), {key: bad}).validate()


@pytest.mark.parametrize("value", [True, False, "auto"])
def test_compile_takes_true_false_or_auto(value):
    assert apply_overrides(TrainConfig(), {"compile": value}).validate().compile == value


def test_compile_auto_compiles_only_long_cuda_runs():
    cuda = torch.device("cuda")
    assert compile_choice("auto", CPU, 10**9)[0] is False
    assert compile_choice("auto", cuda, COMPILE_MIN_UPDATES)[0] is True
    assert compile_choice("auto", cuda, 230)[0] is False and "230 updates" in compile_choice("auto", cuda, 230)[1]
    assert compile_choice(True, CPU, 1)[0] is True and compile_choice(False, cuda, 10**9)[0] is False


@pytest.mark.parametrize("impl,flag", [("fused", "fused"), ("foreach", "foreach"), ("auto", "fused")])
def test_adamw_kernel_choice_reaches_the_optimizer(impl, flag):
    opt = build_optimizer(torch.nn.Linear(3, 2), lr=1e-3, weight_decay=0.05, impl=impl)
    assert all(g[flag] for g in opt.param_groups)
    loop = build_optimizer(torch.nn.Linear(3, 2), lr=1e-3, weight_decay=0.05, impl="loop")
    assert not any(g["foreach"] or g["fused"] for g in loop.param_groups)


def test_adamw_kernels_compute_the_same_update():
    results, start = [], None
    for impl in ("loop", "foreach", "fused"):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 4))
        start = torch.cat([p.detach().flatten() for p in net.parameters()])
        opt = build_optimizer(net, lr=1e-2, weight_decay=0.05, impl=impl)
        x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
        for _ in range(3):
            net(x).square().mean().backward()
            opt.step()
            opt.zero_grad()
        results.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert (results[0] - start).abs().max() > 1e-3  # the steps moved the weights
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=1e-5, atol=1e-6)


def test_bf16_on_a_cpu_without_native_bf16_stays_fp32_and_says_why(monkeypatch, caplog):
    monkeypatch.setattr(builders, "native_bf16", lambda: (False, "Test CPU has no native bf16 (neither avx512_bf16 nor amx_bf16)"))
    dtype, why = amp_dtype(True, CPU)
    assert dtype is None and "no native bf16" in why
    with caplog.at_level(logging.INFO, logger="edgenext"):
        assert builders.amp_settings(TrainConfig(amp=True), CPU) == (None, None)
    assert "no native bf16" in caplog.text and "fp32" in caplog.text
    monkeypatch.setattr(builders, "native_bf16", lambda: (True, "native bf16 (avx512_bf16)"))
    assert amp_dtype(True, CPU)[0] == torch.bfloat16 and amp_dtype(False, CPU) == (None, "amp is off")


def test_channels_last_reaches_the_model_and_its_inputs(tiny_config, tmp_path, monkeypatch):
    seen = []
    real = ClassificationTask.loss

    def spy(self, model, inputs, targets):
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
        seen.append((inputs.is_contiguous(memory_format=torch.channels_last),
                     conv.weight.is_contiguous(memory_format=torch.channels_last)))
        return real(self, model, inputs, targets)

    monkeypatch.setattr(ClassificationTask, "loss", spy)
    fit(tiny_config(output=str(tmp_path / "cl"), channels_last=True, epochs=1, train_limit=16, val_limit=8, ema=False))
    assert seen and all(a and b for a, b in seen)
    seen.clear()
    fit(tiny_config(output=str(tmp_path / "plain"), channels_last=False, epochs=1, train_limit=16, val_limit=8, ema=False))
    assert seen and not any(a for a, _ in seen)


def test_compiled_training_gives_the_eager_weights_and_plain_checkpoints(tiny_config, tmp_path, monkeypatch):
    compiled, real_compile = [], torch.compile

    def eager_backend(module):  # dynamo's wrapping and graph capture, without minutes of C++ code generation
        compiled.append(module)
        return real_compile(module, backend="eager")

    monkeypatch.setattr(runner_mod.torch, "compile", eager_backend)
    common = dict(epochs=1, train_limit=32, val_limit=8, ema=True, augment=False, drop_path=0.0)
    plain = fit(tiny_config(output=str(tmp_path / "plain"), compile="auto", **common))  # auto: a tiny CPU run, off
    assert compiled == []
    fast = fit(tiny_config(output=str(tmp_path / "compiled"), compile=True, **common))
    assert len(compiled) == 1
    a = load_training_checkpoint(plain.output_dir / "last.pth")
    b = load_training_checkpoint(fast.output_dir / "last.pth")
    for key in ("model", "model_ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            torch.testing.assert_close(b[key][name], a[key][name], rtol=0, atol=1e-6, msg=f"{key}.{name}")


@pytest.mark.slow
def test_bench_train_rows_from_isolated_processes():
    from edgenext.bench.train_step import bench_train
    from edgenext.hardware import native_bf16

    rows = bench_train(["edgenext_xx_small"], batch=2, input_size=32, threads=1, steps=1, rounds=1,
                       precisions=("fp32", "bf16"), quick=True, num_classes=10)
    keys = {"model", "impl", "precision", "batch", "input_size", "throughput_img_s", "ratio_vs_timm"}
    assert all(keys <= row.keys() for row in rows)
    fp32 = {r["impl"]: r for r in rows if r["precision"] == "fp32"}
    assert set(fp32) == {"ours", "timm"}  # quick: no compile, so no compiled-timm row
    assert fp32["timm"]["ratio_vs_timm"] == 1.0 and fp32["ours"]["throughput_img_s"] > 0
    assert fp32["ours"]["options"] == {"compile": False, "adamw": "fused", "channels_last": False}
    assert fp32["timm"]["options"]["adamw"].startswith("loop")
    bf16 = [r for r in rows if r["precision"] == "bf16"]
    if not native_bf16()[0]:
        assert bf16 and all(r["throughput_img_s"] is None and "native bf16" in r["absent"] for r in bf16)
    with pytest.raises(ValueError, match="int4"):
        bench_train(["edgenext_xx_small"], batch=1, input_size=32, threads=1, steps=1, rounds=1, precisions=("int4",))
