"""The presets against their sources: solo-learn's CIFAR yaml, the official ImageNet launches, the paper.

The source values are written down here, read from the sources named, so that a change to a
preset that moves it away from its source fails here.
"""

import pytest

from vicreg_edu.config import PAPER_BASE_LR, TRAJECTORY_KEYS, get_config, paper_base_lr
from vicreg_edu.errors import ConfigError
from vicreg_edu.views import DATASET_STATS, make_augment_config

# vturrisi/solo-learn at commit 9187ea39c2c3f43c455ab06664d2b019a9802954 (2026-04-22),
# https://github.com/vturrisi/solo-learn/blob/9187ea39c2c3f43c455ab06664d2b019a9802954/scripts/pretrain/cifar/vicreg.yaml
SOLO_YAML = {
    "backbone.name": "resnet18",
    "method_kwargs.proj_hidden_dim": 2048,
    "method_kwargs.proj_output_dim": 2048,
    "method_kwargs.sim_loss_weight": 25.0,
    "method_kwargs.var_loss_weight": 25.0,
    "method_kwargs.cov_loss_weight": 1.0,
    "augmentations.rrc.crop_min_scale": 0.2,
    "augmentations.rrc.crop_max_scale": 1.0,
    "augmentations.color_jitter": dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, prob=0.8),
    "augmentations.grayscale.prob": 0.2,
    "augmentations.gaussian_blur.enabled": False,
    "augmentations.solarization.prob": 0.1,
    "augmentations.equalization.enabled": False,
    "augmentations.horizontal_flip.prob": 0.5,
    "augmentations.crop_size": 32,
    "augmentations.num_crops": 2,  # one pipeline for both crops: symmetric views
    "optimizer.name": "lars",
    "optimizer.batch_size": 256,
    "optimizer.lr": 0.3,
    "optimizer.weight_decay": 1e-4,
    "optimizer.kwargs.clip_lr": True,
    "optimizer.kwargs.eta": 0.02,
    "optimizer.kwargs.exclude_bias_n_norm": True,
    "scheduler.name": "warmup_cosine",
    "max_epochs": 1000,
    "precision": "16-mixed",
}
# defaults the yaml leaves to the code (same commit): solo/args/pretrain.py (lr x batch * devices / 256,
# devices [0]; LARS momentum 0.9), solo/methods/base.py (warmup_epochs 10, min_lr 0.0,
# warmup_start_lr 3e-5, scheduler interval "step"), solo/data/pretrain_dataloader.py (bicubic crops,
# MEANS_N_STD per CIFAR set)
SOLO_DEFAULTS = {
    "lr_scale": 256 * 1 / 256,
    "momentum": 0.9,
    "warmup_epochs": 10,
    "min_lr": 0.0,
    "interpolation": "bicubic",
}


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cifar_preset_is_solo_learns_recipe(dataset):
    y, d = SOLO_YAML, SOLO_DEFAULTS
    cfg = get_config(dataset, fast=False)
    aug = make_augment_config(cfg)
    assert cfg.backbone == "resnet18_cifar" and y["backbone.name"] == "resnet18"
    assert (
        cfg.expander == f"{y['method_kwargs.proj_hidden_dim']}-{y['method_kwargs.proj_hidden_dim']}-"
        f"{y['method_kwargs.proj_output_dim']}"
    )
    # their variance term has no /2; ours is std_coeff * (v_a + v_b) / 2 (vicreg_edu.loss), so x 2
    assert (cfg.sim_coeff, cfg.std_coeff / 2, cfg.cov_coeff) == (
        y["method_kwargs.sim_loss_weight"],
        y["method_kwargs.var_loss_weight"],
        y["method_kwargs.cov_loss_weight"],
    )
    assert cfg.optimizer == y["optimizer.name"] and cfg.batch_size == y["optimizer.batch_size"]
    assert cfg.lr == pytest.approx(y["optimizer.lr"] * d["lr_scale"])
    assert cfg.weight_decay == y["optimizer.weight_decay"] and cfg.momentum == d["momentum"]
    assert (cfg.lars_eta, cfg.lars_clip) == (y["optimizer.kwargs.eta"], y["optimizer.kwargs.clip_lr"])
    assert (cfg.warmup_epochs, cfg.end_lr_ratio) == (d["warmup_epochs"], d["min_lr"])
    assert cfg.epochs == y["max_epochs"]
    assert aug.size == y["augmentations.crop_size"] and aug.crop and aug.interpolation == d["interpolation"]
    assert aug.crop_scale == (y["augmentations.rrc.crop_min_scale"], y["augmentations.rrc.crop_max_scale"])
    jitter = y["augmentations.color_jitter"]
    assert (aug.brightness, aug.contrast, aug.saturation, aug.hue, aug.jitter_p) == (
        jitter["brightness"],
        jitter["contrast"],
        jitter["saturation"],
        jitter["hue"],
        jitter["prob"],
    )
    assert aug.grayscale_p == y["augmentations.grayscale.prob"]
    assert aug.blur_p == (0.0, 0.0) and not y["augmentations.gaussian_blur.enabled"]
    assert aug.solarize_p == (y["augmentations.solarization.prob"],) * y["augmentations.num_crops"]
    assert aug.flip_p == y["augmentations.horizontal_flip.prob"]
    assert (aug.mean, aug.std) == DATASET_STATS[dataset]  # solo's MEANS_N_STD has the same numbers
    # exclude_bias_n_norm: our LARS always leaves 1-D parameters alone (tests/test_config_optim.py)
    assert y["optimizer.kwargs.exclude_bias_n_norm"]


def test_cifar_preset_lists_the_differences_left():
    """The comment above ``config._cifar`` (its docstring points there) names every difference from solo-learn."""
    import inspect

    from vicreg_edu.config import _cifar

    assert "the comment above this function" in _cifar.__doc__
    text = " ".join((inspect.getcomments(_cifar) or "").replace("#", " ").split())
    for difference in (
        "padding 2",
        "zero_init_residual",
        "bias",
        "||grad|| + wd * ||w|| + 1e-8",
        "warmup_start_lr",
        "classifier_lr",
        "16-mixed",
        "amp=fp16",
        "image by image",
    ):
        assert difference in text, difference


def test_imagenet_presets_are_the_official_launches():
    # facebookresearch/vicreg README: 4 nodes x 8 GPUs, 1000 epochs, batch 2048, base lr 0.2;
    # 1 node x 8 GPUs, 100 epochs, batch 512, base lr 0.3. Both 64 images per GPU.
    long, short = get_config("imagenet-resnet50", fast=False), get_config("imagenet-resnet50-100ep", fast=False)
    assert (long.epochs, long.batch_size, long.base_lr, long.batch_size // 32) == (1000, 2048, 0.2, 64)
    assert (short.epochs, short.batch_size, short.base_lr, short.batch_size // 8) == (100, 512, 0.3, 64)
    assert (long.lr, short.lr) == (pytest.approx(1.6), pytest.approx(0.6))
    same = [k for k in TRAJECTORY_KEYS if k not in ("epochs", "batch_size", "base_lr")]
    assert {k: getattr(short, k) for k in same} == {k: getattr(long, k) for k in same}
    assert short.out_dir != long.out_dir and not long.lars_clip
    fast_long, fast_short = get_config("imagenet-resnet50", fast=True), get_config("imagenet-resnet50-100ep", fast=True)
    assert (fast_long.epochs, fast_long.batch_size) == (fast_short.epochs, fast_short.batch_size) == (1, 32)


def test_paper_base_lr_is_appendix_c4():
    # paper appendix C.4: 0.8 at batch 128, 0.5 at 256, 0.4 at 512; the recipe: 0.2 at 2048
    assert PAPER_BASE_LR == {128: 0.8, 256: 0.5, 512: 0.4, 2048: 0.2}
    assert [paper_base_lr(b) for b in (128, 256, 512, 2048)] == [0.8, 0.5, 0.4, 0.2]
    assert paper_base_lr(2048) == get_config("imagenet-resnet50", fast=False).base_lr
    with pytest.raises(ConfigError, match=r"no base_lr for batch_size=1024.*0\.4 at 512"):
        paper_base_lr(1024)
