"""Recipes carry the paper's numbers; config merging; weight-decay groups; the lr schedule."""

import pytest
import torch

import edgenext
from edgenext.train import TrainConfig, build_optimizer, build_scheduler, load_config, param_groups, scaled_lr
from edgenext.train.config import configs_dir, read_recipe

# paper.md: drop path and RandAugment per variant
PAPER_DROP_PATH = {"edgenext_xx_small": 0.0, "edgenext_x_small": 0.0, "edgenext_small": 0.1, "edgenext_base": 0.1}


@pytest.mark.parametrize("name", edgenext.list_models())
def test_every_variant_has_the_papers_recipe(name):
    cfg = load_config(name)
    assert cfg.model == name
    assert (cfg.epochs, cfg.base_lr, cfg.base_batch, cfg.weight_decay, cfg.opt_eps) == (300, 6e-3, 4096, 0.05, 1e-8)
    assert (cfg.warmup_epochs, cfg.min_lr, cfg.label_smoothing, cfg.ema_decay) == (20, 1e-6, 0.1, 0.9995)
    assert cfg.ema and cfg.amp and cfg.multi_scale and tuple(cfg.scales) == (160, 192, 256, 288, 320)
    assert (cfg.input_size, cfg.eval_crop_pct, cfg.interpolation) == (256, 0.875, "bicubic")
    base = name.replace("_bn_hs", "")
    assert cfg.drop_path == PAPER_DROP_PATH[base]
    assert (cfg.rand_augment is not None) == (base in ("edgenext_small", "edgenext_base"))
    assert (cfg.mixup > 0 and cfg.cutmix > 0) == (base == "edgenext_base")
    if base == "edgenext_xx_small":
        assert cfg.color_jitter == 0.4


def test_default_recipe_is_the_task_s_digits_demo():
    from edgenext.tasks import load_config as task_config

    cfg = task_config()
    assert (cfg.model, cfg.data, cfg.task) == ("edgenext_xx_small", "digits", "classify")
    assert task_config(None, {"model": "edgenext_small", "data": "/some/folder"}).rand_augment  # its ImageNet recipe
    assert task_config(None, {"task": "detect"}).input_size == task_config("digits_detect").input_size
    assert task_config(None, {"task": "segment", "data": "/voc"}).head_lr_mult == 10.0  # deeplabv3_voc
    assert load_config().epochs == TrainConfig().epochs  # no recipe named: the defaults (the paper's)
    with pytest.raises(ValueError, match="unknown task 'count'"):
        task_config(None, {"task": "count"})


def test_overrides_and_unknown_keys(tmp_path):
    cfg = load_config("digits", {"epochs": 3, "scales": [32, 64]})
    assert cfg.epochs == 3 and cfg.scales == (32, 64)
    with pytest.raises(ValueError, match="did you mean 'epochs'"):
        load_config("digits", {"epoch": 3})
    with pytest.raises(ValueError, match="batch_size"):
        load_config("digits", {"batch_size": 0})
    child = tmp_path / "child.yaml"
    child.write_text(f"base: {configs_dir() / 'edgenext_small.yaml'}\nepochs: 5\n")
    merged = read_recipe(child)  # child -> edgenext_small.yaml -> imagenet.yaml
    assert merged["epochs"] == 5 and merged["drop_path"] == 0.1 and merged["workers"] == 8
    assert load_config(str(child), {"epochs": 30}).base_lr == 6e-3  # the recipe's defaults live in TrainConfig alone
    with pytest.raises(ValueError, match="no recipe"):
        load_config("no_such_recipe")


def test_wrong_value_types_are_named_before_anything_runs():
    with pytest.raises(ValueError, match="'epochs': expected int, got 'ten'"):
        load_config("digits", {"epochs": "ten"})
    with pytest.raises(ValueError, match="'scales': expected tuple"):
        load_config("digits", {"scales": 128})
    with pytest.raises(ValueError, match="'lr': expected float"):
        load_config("digits", {"lr": "fast"})
    assert load_config("digits", {"lr": 1, "warmup_epochs": 0}).lr == 1.0  # ints widen to float
    from edgenext.tasks import load_config as task_config

    with pytest.raises(ValueError, match="unknown task 'classification': choose one of classify, detect, segment"):
        task_config("digits", {"task": "classification"})


def test_builtin_recipes_are_package_data():
    from importlib import resources

    from edgenext.train.config import builtin_recipes

    names = builtin_recipes()
    assert {"digits", "imagenet", "edgenext_small", "edgenext_small_usi"} <= set(names)
    for name in names:  # every one resolves to a valid config (inherited bases included)
        assert (resources.files("edgenext") / "configs" / f"{name}.yaml").is_file()
        load_config(name)


def test_weight_decay_spares_norms_biases_layer_scales_and_temperatures():
    model = edgenext.create_model("edgenext_xx_small", num_classes=10)
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert decayed | exempt == set(names.values()) and not decayed & exempt
    for name in exempt:
        assert name.endswith(("bias", "gamma", "gamma_xca", "temperature")) or ".norm" in name or "stem.1" in name \
            or name.endswith("downsample.0.weight"), name
    for name in decayed:
        assert model.get_parameter(name).ndim >= 2 and not name.endswith("temperature"), name
    assert any(n.endswith("xca.temperature") for n in exempt)


def test_lr_scales_linearly_with_the_global_batch():
    assert scaled_lr(6e-3, 4096) == pytest.approx(6e-3)
    assert scaled_lr(6e-3, 1024) == pytest.approx(1.5e-3)


def test_per_step_warmup_then_cosine_to_min_lr():
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, lr=1e-2, weight_decay=0.05)
    sched = build_scheduler(opt, epochs=10, warmup_epochs=2, min_lr=1e-6)
    lrs = []
    for t in (0.0, 0.5, 1.0, 1.5, 2.0, 6.0, 10.0):
        sched.step(t)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:5] == pytest.approx([0.0, 2.5e-3, 5e-3, 7.5e-3, 1e-2])  # linear within the warm-up epochs
    assert lrs[5] == pytest.approx((1e-2 + 1e-6) / 2, rel=1e-3)
    assert lrs[6] == pytest.approx(1e-6)
    assert all(g["lr"] == lrs[-1] for g in opt.param_groups)
