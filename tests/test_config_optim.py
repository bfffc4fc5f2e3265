"""Config presets / overrides, LARS and the learning-rate schedule."""

import math

import pytest
import torch
from torch import nn

from vicreg_edu.config import PRESETS, Config, apply_overrides, get_config, parse_override
from vicreg_edu.optim import LARS, build_optimizer, learning_rate


def test_presets_build_and_imagenet_matches_paper():
    for name in PRESETS:
        assert isinstance(get_config(name, fast=False), Config)
    cfg = get_config("imagenet-resnet50", fast=False)
    assert (cfg.backbone, cfg.expander, cfg.batch_size, cfg.epochs) == ("resnet50", "8192-8192-8192", 2048, 1000)
    assert (cfg.optimizer, cfg.base_lr, cfg.weight_decay, cfg.warmup_epochs, cfg.end_lr_ratio) == (
        "lars",
        0.2,
        1e-6,
        10,
        0.001,
    )
    assert (cfg.sim_coeff, cfg.std_coeff, cfg.cov_coeff) == (25.0, 25.0, 1.0)
    assert cfg.lr == pytest.approx(1.6)


def test_fast_mode_shrinks_sizes_only():
    full, fast = get_config("demo", fast=False), get_config("demo", fast=True)
    assert fast.epochs < full.epochs
    # same code path: model, loss and optimiser settings are untouched
    for key in ("backbone", "expander", "optimizer", "sim_coeff", "std_coeff", "cov_coeff", "dataset"):
        assert getattr(fast, key) == getattr(full, key)
    assert get_config("demo", fast=True, epochs=7).epochs == 7  # explicit overrides win


def test_bad_preset_and_keys_are_named():
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        get_config("nope")
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['epoch'\]"):
        get_config("demo", epoch=3)
    with pytest.raises(ValueError, match="learning_rate"):
        apply_overrides(get_config("demo"), ["learning_rate=0.1"])
    with pytest.raises(ValueError, match="key=value"):
        parse_override("epochs")
    with pytest.raises(ValueError, match="true/false"):
        apply_overrides(get_config("demo"), ["progress=3"])


def test_overrides_parse_types():
    cfg = apply_overrides(
        get_config("demo", fast=False),
        ["epochs=5", "base_lr=1", "expander=64", "aug.jitter_p=0", "progress=false", "data_dir=/x"],
    )
    assert cfg.epochs == 5 and cfg.base_lr == 1.0 and isinstance(cfg.base_lr, float)
    preset_aug = get_config("demo", fast=False).aug  # aug.KEY=VALUE adds to the preset's own aug overrides
    assert cfg.expander == "64" and cfg.aug == {**preset_aug, "jitter_p": 0} and cfg.progress is False
    assert cfg.data_dir == "/x" and preset_aug == {"crop_scale": (0.6, 1.0), "flip_p": 0.0}


def test_schedule_warmup_then_cosine_to_end_ratio():
    total, warm, peak = 100, 10, 2.0
    lrs = [learning_rate(s, total, warm, peak, 0.001) for s in range(total + 1)]
    assert lrs[0] == 0 and lrs[5] == pytest.approx(1.0) and lrs[10] == pytest.approx(peak)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # monotone decay after warm-up
    assert lrs[55] == pytest.approx(peak * 0.5 + peak * 0.001 * 0.5)  # half-way: q = 0.5
    assert lrs[100] == pytest.approx(peak * 0.001)


def test_lars_matches_hand_computation():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(4, 3))
    b = nn.Parameter(torch.randn(3))
    gw, gb = torch.randn(4, 3), torch.randn(3)
    w0, b0 = w.detach().clone(), b.detach().clone()
    opt = LARS([w, b], lr=0.5, weight_decay=0.1, momentum=0.9, eta=0.01)
    for _ in range(2):
        w.grad, b.grad = gw.clone(), gb.clone()
        opt.step()
    # hand-rolled: weight matrix gets decay + trust ratio, the 1-D bias neither
    mw, mb, ww, bb = torch.zeros_like(w0), torch.zeros_like(b0), w0.clone(), b0.clone()
    for _ in range(2):
        d = gw + 0.1 * ww
        d = d * (0.01 * ww.norm() / d.norm())
        mw = 0.9 * mw + d
        ww = ww - 0.5 * mw
        mb = 0.9 * mb + gb
        bb = bb - 0.5 * mb
    torch.testing.assert_close(w.detach(), ww)
    torch.testing.assert_close(b.detach(), bb)


def test_build_optimizer_excludes_1d_from_decay():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = build_optimizer(model, "adamw", weight_decay=0.05)
    decays = {p.ndim: g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decays == {2: 0.05, 1: 0.0}
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        build_optimizer(model, "adam", 0.0)
    assert math.isclose(get_config("demo", fast=False, batch_size=512, base_lr=0.3).lr, 0.6)


def _solo_learn_lars(params, grads_per_step, lrs, weight_decay, momentum, eta, clip_lr, eps=1e-8):
    """solo-learn's LARS.step, transcribed from solo/utils/lars.py (vturrisi/solo-learn at commit
    9187ea39c2c3f43c455ab06664d2b019a9802954) with exclude_bias_n_norm=True, dampening 0, no Nesterov."""
    params = [p.clone() for p in params]
    bufs = [None] * len(params)
    for grads, lr in zip(grads_per_step, lrs):
        for i, (p, g) in enumerate(zip(params, grads)):
            d_p = g.clone()
            p_norm, g_norm = torch.norm(p), torch.norm(g)
            if p.ndim != 1:  # exclude_bias_n_norm: 1-D parameters get neither decay nor scaling
                if p_norm != 0 and g_norm != 0:
                    lars_lr = p_norm / (g_norm + p_norm * weight_decay + eps) * eta
                    if clip_lr:
                        lars_lr = min(lars_lr / lr, 1)
                    d_p = d_p.add(p, alpha=weight_decay)
                    d_p *= lars_lr
            if bufs[i] is None:
                bufs[i] = d_p.clone()
            else:
                bufs[i].mul_(momentum).add_(d_p)
            p.add_(bufs[i], alpha=-lr)
    return params


def test_lars_clip_is_solo_learns_clip_lr():
    """clip=True steps like solo-learn's clip_lr (weight decay 0, where the trust denominators agree),
    through a warm-up step at lr 0, with layers on both sides of the cap."""
    torch.manual_seed(0)
    shapes, scales = [(8, 4), (16, 8), (5,)], [30.0, 0.01, 1.0]  # big and small ||w|| / ||g||
    init = [torch.randn(s) * c for s, c in zip(shapes, scales)]
    grads = [[torch.randn(s) for s in shapes] for _ in range(4)]
    lrs = [0.0, 0.3, 0.2, 0.05]
    eta = 0.02
    # the test means something only if the cap bites for one layer and not for the other
    ratios = [eta * w.norm() / g.norm() for w, g in zip(init[:2], grads[1][:2])]
    assert ratios[0] > lrs[1] > ratios[1]
    params = [nn.Parameter(w.clone()) for w in init]
    opt = LARS(params, lr=0.0, weight_decay=0.0, momentum=0.9, eta=eta, clip=True)
    for step_grads, lr in zip(grads, lrs):
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.param_groups[0]["lr"] = lr
        opt.step()
    expected = _solo_learn_lars(init, grads, lrs, 0.0, 0.9, eta, clip_lr=True)
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)
    # and without the clip, solo-learn's LARS is ours again (weight decay 0)
    params = [nn.Parameter(w.clone()) for w in init]
    opt = LARS(params, lr=0.0, weight_decay=0.0, momentum=0.9, eta=eta)
    for step_grads, lr in zip(grads, lrs):
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.param_groups[0]["lr"] = lr
        opt.step()
    for p, e in zip(params, _solo_learn_lars(init, grads, lrs, 0.0, 0.9, eta, clip_lr=False)):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)


def test_lars_clip_with_weight_decay_by_hand_and_from_config():
    torch.manual_seed(1)
    w = nn.Parameter(torch.randn(6, 3) * 10)
    g = torch.randn(6, 3) * 0.1
    w0 = w.detach().clone()
    opt = LARS([w], lr=0.5, weight_decay=0.1, momentum=0.9, eta=0.02, clip=True)
    w.grad = g.clone()
    opt.step()
    d = g + 0.1 * w0
    factor = min(0.02 * w0.norm() / d.norm() / 0.5, 1.0)  # our denominator: ||g + wd * w||
    torch.testing.assert_close(w.detach(), w0 - 0.5 * factor * d)
    cfg = get_config("cifar10", fast=False)
    built = build_optimizer(nn.Linear(3, 4), cfg.optimizer, cfg.weight_decay, cfg.momentum, cfg.lars_eta, cfg.lars_clip)
    assert isinstance(built, LARS) and built.param_groups[0]["clip"] and built.param_groups[0]["eta"] == 0.02
    assert not build_optimizer(nn.Linear(3, 4), "lars", 1e-6).param_groups[0]["clip"]  # official: off


def test_every_field_declares_its_rules_in_one_place():
    """Validation and the resume check read the fields' rule() metadata: no parallel tables to drift."""
    import dataclasses

    from vicreg_edu.config import RESUME_CHANGEABLE, TRAJECTORY_KEYS, Config

    for f in dataclasses.fields(Config):
        numeric = isinstance(f.default, (int, float)) and not isinstance(f.default, bool)
        assert not numeric or {"low", "above"} & set(f.metadata), f"{f.name}: a number without a range rule"
        assert set(f.metadata) >= {"trajectory", "resume_change"}, f"{f.name} is not declared with rule()"
    assert set(RESUME_CHANGEABLE) <= set(TRAJECTORY_KEYS) and "base_lr" in RESUME_CHANGEABLE
    assert "out_dir" not in TRAJECTORY_KEYS and "seed" in TRAJECTORY_KEYS and "seed" not in RESUME_CHANGEABLE
