"""Augmentations: presets, switches, reproducibility, and the batched path against the PIL path."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from vicreg_edu.augment import (AugmentConfig, BatchAugment, TwoViewBatchAugment, TwoViewTransform, adjust_brightness,
                                adjust_contrast, adjust_hue, adjust_saturation, cifar_augment, eval_batch,
                                eval_transform, gaussian_blur, imagenet_augment, shapes_augment)
from vicreg_edu.data import Shapes, in_memory_uint8


@pytest.fixture(scope="module")
def images():
    """64 Shapes test images: uint8 (64, 3, 32, 32) and the same as PIL images."""
    ds = Shapes("test", n=64, seed=7)
    return in_memory_uint8(ds)[0], [Image.fromarray(a) for a in ds.data]


def _no_randomness(cfg_fn, **kw):
    return cfg_fn(crop=False, jitter_p=0.0, grayscale_p=0.0, blur_p=(0.0, 0.0), solarize_p=(0.0, 0.0), **kw)


# -----------------------------------------------------------------------------
# config


def test_imagenet_preset_is_the_official_recipe():
    c = imagenet_augment()
    assert (c.size, c.crop_scale, c.interpolation, c.flip_p) == (224, (0.08, 1.0), "bicubic", 0.5)
    assert (c.brightness, c.contrast, c.saturation, c.hue, c.jitter_p, c.grayscale_p) == (0.4, 0.4, 0.2, 0.1, 0.8, 0.2)
    assert (c.blur_p, c.blur_sigma, c.solarize_p) == ((1.0, 0.1), (0.1, 2.0), (0.0, 0.2))
    assert c.mean == (0.485, 0.456, 0.406) and c.std == (0.229, 0.224, 0.225)


def test_small_presets_and_overrides():
    c = cifar_augment()
    assert (c.size, c.crop_scale, c.blur_p, c.solarize_p) == (32, (0.2, 1.0), (0.0, 0.0), (0.1, 0.1))
    assert shapes_augment().size == 32 and shapes_augment().mean != c.mean
    assert cifar_augment(jitter_p=0.0).jitter_p == 0.0 and cifar_augment(crop_scale=[0.5, 1]).crop_scale == (0.5, 1.0)


@pytest.mark.parametrize("bad, match", [({"flip_p": 1.5}, "probability"), ({"blur_p": (0.5,)}, "2 values"),
                                        ({"crop_scale": (0.5, 0.2)}, "crop_scale"), ({"hue": 0.7}, "hue"),
                                        ({"interpolation": "nearest"}, "interpolation"), ({"size": 0}, "size")])
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        imagenet_augment(**bad)


def test_unknown_override_rejected():
    with pytest.raises(TypeError, match="unknown AugmentConfig field"):
        cifar_augment(jitter=0.0)


# -----------------------------------------------------------------------------
# PIL path


def test_pil_views_differ_and_are_reproducible(images):
    _, pil = images
    tv = TwoViewTransform(cifar_augment())
    torch.manual_seed(0)
    a, b = tv(pil[0])
    assert a.shape == b.shape == (3, 32, 32) and not torch.allclose(a, b)
    torch.manual_seed(0)
    a2, b2 = tv(pil[0])
    assert torch.equal(a, a2) and torch.equal(b, b2)


def test_pil_switches_off_views_identical_up_to_flip(images):
    _, pil = images
    tv = TwoViewTransform(_no_randomness(imagenet_augment, size=32))
    torch.manual_seed(0)
    flipped = 0
    for img in pil[:20]:
        a, b = tv(img)
        same = torch.allclose(a, b)
        flipped += not same
        assert same or torch.allclose(a, b.flip(-1))
    assert 0 < flipped < 20  # flips still happen
    tv = TwoViewTransform(_no_randomness(imagenet_augment, size=32, flip_p=0.0))
    a, b = tv(pil[0])
    assert torch.equal(a, b) and torch.allclose(a, eval_transform(tv.cfg)(pil[0]))


# -----------------------------------------------------------------------------
# batched path


def test_batch_views_differ_shapes_and_reproducible(images):
    x, _ = images
    aug = TwoViewBatchAugment(imagenet_augment(size=24))
    a, b = aug(x, torch.Generator().manual_seed(0))
    assert a.shape == b.shape == (64, 3, 24, 24) and a.dtype == torch.float32
    assert (a - b).flatten(1).abs().mean(1).min() > 0  # every pair differs
    a2, b2 = aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, a2) and torch.equal(b, b2)
    a3, _ = aug(x, torch.Generator().manual_seed(1))
    assert not torch.equal(a, a3)


def test_batch_switches_off_views_identical_up_to_flip(images):
    x, _ = images
    cfg = _no_randomness(cifar_augment)
    a, b = TwoViewBatchAugment(cfg)(x, torch.Generator().manual_seed(0))
    same = (a == b).flatten(1).all(1)
    mirrored = (a == b.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and 10 < (~same).sum() < 54
    ref = eval_batch(x, cfg)
    assert torch.allclose(a, torch.where(a == ref, ref, ref.flip(-1)))
    # ... and the same images through the PIL evaluation transform
    ref_pil = torch.stack([eval_transform(cfg)(Image.fromarray(im.permute(1, 2, 0).numpy())) for im in x[:4]])
    assert torch.allclose(ref[:4], ref_pil, atol=1e-5)


def test_params_are_per_sample_and_sliceable(images):
    """A trainer draws params for a global batch and keeps its rank's rows: same result."""
    x, _ = images
    aug = BatchAugment(imagenet_augment(size=32), view=1)
    params = aug.sample(64, torch.Generator().manual_seed(3))
    assert all(v.shape[0] == 64 and v.device.type == "cpu" for v in params.values())
    full = aug.apply(x, params)
    rows = torch.arange(16, 32)
    part = aug.apply(x[rows], {k: v[rows] for k, v in params.items()})
    assert torch.allclose(full[rows], part, atol=1e-5)
    with pytest.raises(ValueError, match="leading dimension"):
        aug.apply(x[:10], params)
    with pytest.raises(TypeError, match="uint8"):
        aug.apply(x.float(), params)


def test_switching_one_op_off_keeps_the_other_params():
    p_on = BatchAugment(cifar_augment(), 0).sample(100, torch.Generator().manual_seed(0))
    p_off = BatchAugment(cifar_augment(jitter_p=0.0), 0).sample(100, torch.Generator().manual_seed(0))
    assert torch.equal(p_on["crop_area"], p_off["crop_area"]) and torch.equal(p_on["flip"], p_off["flip"])
    assert p_on["jitter"].any() and not p_off["jitter"].any()


def test_parameter_distributions_match_torchvision():
    n = 4000
    cfg = imagenet_augment(size=32)
    aug_a, aug_b = BatchAugment(cfg, 0), BatchAugment(cfg, 1)
    pa = aug_a.sample(n, torch.Generator().manual_seed(0))
    pb = aug_b.sample(n, torch.Generator().manual_seed(1))
    H, W = 48, 40
    box = aug_a.crop_boxes(pa, H, W).double()
    area, log_ratio = box[:, 2] * box[:, 3] / (H * W), torch.log(box[:, 3] / box[:, 2])
    # torchvision's own sampler on an image of the same size
    torch.manual_seed(0)
    ref = torch.tensor([T.RandomResizedCrop.get_params(torch.zeros(3, H, W), [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(n)]).double()
    ref_area, ref_log_ratio = ref[:, 2] * ref[:, 3] / (H * W), torch.log(ref[:, 3] / ref[:, 2])
    assert area.min() >= 0.06 and area.max() <= 1.0 and log_ratio.abs().max() <= math.log(4 / 3) + 0.1
    assert abs(area.mean() - ref_area.mean()) < 0.02 and abs(area.std() - ref_area.std()) < 0.02
    assert abs(log_ratio.mean() - ref_log_ratio.mean()) < 0.02
    assert ((box[:, 0] >= 0) & (box[:, 0] + box[:, 2] <= H) & (box[:, 1] >= 0) & (box[:, 1] + box[:, 3] <= W)).all()
    tol = 4 * math.sqrt(0.25 / n)  # 4 standard errors of a rate
    assert abs(pa["flip"].float().mean() - 0.5) < tol
    assert abs(pa["jitter"].float().mean() - 0.8) < tol and abs(pa["gray"].float().mean() - 0.2) < tol
    assert pa["blur"].all() and abs(pb["blur"].float().mean() - 0.1) < tol
    assert not pa["solarize"].any() and abs(pb["solarize"].float().mean() - 0.2) < tol
    first_op = torch.bincount(pa["jitter_order"][:, 0], minlength=4).float() / n
    assert (first_op - 0.25).abs().max() < tol and (pa["jitter_order"].sort(1).values == torch.arange(4)).all()
    f = pa["jitter_factors"]
    assert f[:, 0].min() >= 0.6 and f[:, 0].max() <= 1.4 and f[:, 2].min() >= 0.8 and f[:, 3].abs().max() <= 0.1
    assert pa["blur_sigma"].min() >= 0.1 and pa["blur_sigma"].max() <= 2.0


def test_colour_ops_match_torchvision():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 8, 8, generator=g)
    f = torch.linspace(0.6, 1.4, 6)
    h = torch.linspace(-0.1, 0.1, 6)
    for ours, theirs, fac in [(adjust_brightness, TF.adjust_brightness, f), (adjust_contrast, TF.adjust_contrast, f),
                              (adjust_saturation, TF.adjust_saturation, f), (adjust_hue, TF.adjust_hue, h)]:
        ref = torch.stack([theirs(x[i], fac[i].item()) for i in range(6)])
        assert torch.allclose(ours(x.clone(), fac), ref, atol=1e-5), ours.__name__


def test_gaussian_blur_matches_torchvision_inside():
    x = torch.rand(3, 3, 20, 20)
    sigma = torch.tensor([0.5, 1.0, 2.0])
    ours = gaussian_blur(x, sigma, sigma_max=2.0)
    for i, s in enumerate(sigma.tolist()):
        ref = TF.gaussian_blur(x[i], kernel_size=13, sigma=s)  # reflect padding: compare the interior
        assert torch.allclose(ours[i, :, 6:-6, 6:-6], ref[:, 6:-6, 6:-6], atol=1e-5)


# -----------------------------------------------------------------------------
# the two paths agree in distribution


def _per_view_stats(v):
    """Per-view summary statistics of augmented views (N, 3, H, W) -> (N, 4)."""
    return torch.stack([
        v.mean(dim=(1, 2, 3)), v.std(dim=(1, 2, 3)),
        (v[..., 1:] - v[..., :-1]).abs().mean(dim=(1, 2, 3)),  # sharpness (crop zoom, blur)
        (v[:, 0] - v[:, 1]).abs().mean(dim=(1, 2)),  # colourfulness (grayscale, saturation, hue)
    ], 1)


def _z_scores(p, b):
    """|difference of means| / standard error, per statistic, for two samples of views."""
    sp, sb = _per_view_stats(p), _per_view_stats(b)
    se = (sp.var(0) / len(sp) + sb.var(0) / len(sb)).sqrt()
    return ((sp.mean(0) - sb.mean(0)).abs() - 0.01).clamp(min=0) / se  # 0.01: rounding/kernel slack


def _pil_views(tv, pil, reps):
    torch.manual_seed(0)
    out = [tv(img) for _ in range(reps) for img in pil]
    return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])


def _batch_views(aug, x, reps):
    g = torch.Generator().manual_seed(0)
    out = [aug(x, g) for _ in range(reps)]
    return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])


@pytest.mark.parametrize("preset", ["cifar", "imagenet32"])
def test_batch_and_pil_paths_agree_in_distribution(images, preset):
    """Same images through both paths: every summary statistic agrees within 4.5 standard errors,
    and the same test does notice a batched config without jitter, grayscale and solarization."""
    x, pil = images
    cfg = cifar_augment() if preset == "cifar" else imagenet_augment(size=32)
    reps = 8  # 512 views per path and view
    pil_a, pil_b = _pil_views(TwoViewTransform(cfg), pil, reps)
    bat_a, bat_b = _batch_views(TwoViewBatchAugment(cfg), x, reps)
    for p, b in ((pil_a, bat_a), (pil_b, bat_b)):
        z = _z_scores(p, b)
        assert (z < 4.5).all(), (preset, z, _per_view_stats(p).mean(0), _per_view_stats(b).mean(0))
    off = TwoViewBatchAugment(dataclasses.replace(cfg, jitter_p=0.0, solarize_p=(0.0, 0.0), grayscale_p=0.0))
    _, off_b = _batch_views(off, x, reps)
    assert (_z_scores(pil_b, off_b) > 4.5).any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_batch_on_gpu_matches_cpu(images):
    x, _ = images
    aug = TwoViewBatchAugment(imagenet_augment(size=32))
    params = aug.sample(len(x), torch.Generator().manual_seed(0))
    cpu = aug.apply(x, params)
    gpu = aug.apply(x.cuda(), params)
    assert gpu[0].device.type == "cuda"
    for c, g in zip(cpu, gpu):
        assert (c - g.cpu()).abs().mean() < 1e-3
