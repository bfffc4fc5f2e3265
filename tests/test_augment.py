"""Augmentations: presets, switches, reproducibility, and the batched path against the PIL path."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from vicreg_edu.augment import TwoViewTransform, eval_transform
from vicreg_edu.batch_augment import (
    _CROP_TRIALS,
    BatchAugment,
    TwoViewBatchAugment,
    _blend,
    _gray,
    adjust_hue,
    gaussian_blur,
)
from vicreg_edu.views import cifar_augment, imagenet_augment, shapes_augment
from vicreg_edu.data import in_memory_uint8
from vicreg_edu.shapes import Shapes


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


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"flip_p": 1.5}, "probability"),
        ({"blur_p": (0.5,)}, "2 values"),
        ({"crop_scale": (0.5, 0.2)}, "crop_scale"),
        ({"hue": 0.7}, "hue"),
        ({"interpolation": "nearest"}, "interpolation"),
        ({"size": 0}, "size"),
    ],
)
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


def _identity_params(n: int) -> dict[str, torch.Tensor]:
    """Parameters that switch every random op off (used by eval_batch)."""
    z = torch.zeros(n, dtype=torch.bool)
    return {
        "crop_area": torch.ones(n, _CROP_TRIALS),
        "crop_log_ratio": torch.zeros(n, _CROP_TRIALS),
        "crop_pos": torch.zeros(n, 2),
        "flip": z,
        "jitter": z,
        "jitter_order": torch.arange(4).repeat(n, 1),
        "jitter_factors": torch.tensor([1.0, 1.0, 1.0, 0.0]).repeat(n, 1),
        "gray": z,
        "blur": z,
        "blur_sigma": torch.ones(n),
        "solarize": z,
    }


def eval_batch(x, cfg):
    """The batched path with every random op off (crop off: resize + centre crop), normalised."""
    return BatchAugment(dataclasses.replace(cfg, crop=False), 0).apply(x, _identity_params(len(x)))


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
    ref = torch.tensor(
        [T.RandomResizedCrop.get_params(torch.zeros(3, H, W), [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(n)]
    ).double()
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
    # brightness, contrast and saturation are one blend each in the batched path (as _augment_views does)
    ours = {
        "brightness": lambda x, f: _blend(x, torch.zeros_like(x), f),
        "contrast": lambda x, f: _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), f),
        "saturation": lambda x, f: _blend(x, _gray(x), f),
        "hue": adjust_hue,
    }
    for name, theirs, fac in [
        ("brightness", TF.adjust_brightness, f),
        ("contrast", TF.adjust_contrast, f),
        ("saturation", TF.adjust_saturation, f),
        ("hue", TF.adjust_hue, h),
    ]:
        ref = torch.stack([theirs(x[i], fac[i].item()) for i in range(6)])
        assert torch.allclose(ours[name](x.clone(), fac), ref, atol=1e-5), name


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
    return torch.stack(
        [
            v.mean(dim=(1, 2, 3)),
            v.std(dim=(1, 2, 3)),
            (v[..., 1:] - v[..., :-1]).abs().mean(dim=(1, 2, 3)),  # sharpness (crop zoom, blur)
            (v[:, 0] - v[:, 1]).abs().mean(dim=(1, 2)),  # colourfulness (grayscale, saturation, hue)
        ],
        1,
    )


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


# -----------------------------------------------------------------------------
# frozen copy of the batched path as of commit 0807959 (before the sync-free rewrite): the demo
# recipe was tuned on these outputs, so the rewrite must reproduce them. Do not edit.


def _frozen_gray(x: torch.Tensor) -> torch.Tensor:
    """Luma with torchvision's weights (PIL "L" uses 0.299): (B, 3, H, W) -> (B, 1, H, W)."""
    return 0.2989 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _frozen_blend(x: torch.Tensor, y: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    f = f.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * y).clamp_(0, 1)


def _frozen_adjust_brightness(x, f):
    """x (B, 3, H, W) in [0, 1] times f (B,), clamped (torchvision ``adjust_brightness``)."""
    return _frozen_blend(x, torch.zeros_like(x), f)


def _frozen_adjust_contrast(x, f):
    """Blend with each image's mean grey level (torchvision ``adjust_contrast``)."""
    return _frozen_blend(x, _frozen_gray(x).mean(dim=(1, 2, 3), keepdim=True), f)


def _frozen_adjust_saturation(x, f):
    """Blend with the image's grey version (torchvision ``adjust_saturation``)."""
    return _frozen_blend(x, _frozen_gray(x), f)


def _frozen_adjust_hue(x, h):
    """Rotate the hue by h (B,) turns in HSV space (torchvision ``adjust_hue``)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    chroma = maxc - minc
    s = chroma / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    cdiv = torch.where(chroma == 0, torch.ones_like(chroma), chroma)
    rc, gc, bc = (maxc - r) / cdiv, (maxc - g) / cdiv, (maxc - b) / cdiv
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(chroma == 0, torch.zeros_like(hue), hue)
    hue = torch.remainder(hue / 6.0 + h.view(-1, 1, 1), 1.0)  # (B, H, W) in [0, 1)
    # HSV -> RGB
    v = maxc
    i = torch.floor(hue * 6.0)
    f = hue * 6.0 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack(
        [  # (6 sectors, 3 channels, B, H, W)
            torch.stack([v, t, p]),
            torch.stack([q, v, p]),
            torch.stack([p, v, t]),
            torch.stack([p, q, v]),
            torch.stack([t, p, v]),
            torch.stack([v, p, q]),
        ]
    )
    idx = i.unsqueeze(0).unsqueeze(0).expand(1, 3, *i.shape)
    return table.gather(0, idx)[0].permute(1, 0, 2, 3).clamp_(0, 1)  # (B, 3, H, W)


_frozen_JITTER_OPS = (_frozen_adjust_brightness, _frozen_adjust_contrast, _frozen_adjust_saturation, _frozen_adjust_hue)


def _frozen_gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, sigma_max: float) -> torch.Tensor:
    """Per-sample Gaussian blur: x (B, C, H, W), sigma (B,) in pixels -> (B, C, H, W).

    One separable kernel per sample (radius ``ceil(3 * sigma_max)``, edges replicated), applied
    as a grouped convolution so the whole batch is one conv per direction.
    """
    B, C, H, W = x.shape
    r = max(1, math.ceil(3 * sigma_max))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma.to(x.dtype)[:, None] ** 2))  # (B, 2r+1)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(C, 0)  # (B*C, 2r+1)
    y = x.reshape(1, B * C, H, W)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(B * C, 1, 1, -1), groups=B * C)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(B * C, 1, -1, 1), groups=B * C)
    return y.view(B, C, H, W)


class _FrozenBatchAugment:
    def __init__(self, cfg, view):
        self.cfg, self.view = cfg, view
        self.blur_p, self.solarize_p = cfg.blur_p[view], cfg.solarize_p[view]

    def crop_boxes(self, params: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
        """Integer crop boxes (n, 4) as (top i, left j, h, w), exactly torchvision's rule.

        For each image: the first of the 10 trials whose w = round(sqrt(A * r)),
        h = round(sqrt(A / r)) (A = area fraction * H * W, r = aspect ratio) fits in the image,
        at a uniformly random integer position; if none fits, the centre crop with the ratio
        clamped to the allowed range.
        """
        area = params["crop_area"].double() * (height * width)
        ratio = params["crop_log_ratio"].double().exp()
        w = torch.round(torch.sqrt(area * ratio))
        h = torch.round(torch.sqrt(area / ratio))
        ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (n, 10)
        first = ok.double().argmax(dim=1, keepdim=True)  # index of the first fitting trial
        w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
        any_ok = ok.any(dim=1)
        # fallback: torchvision's central crop, the whole image with its ratio clamped to crop_ratio
        in_ratio = width / height
        r_lo, r_hi = self.cfg.crop_ratio
        if in_ratio < r_lo:
            fw, fh = width, int(round(width / r_lo))
        elif in_ratio > r_hi:
            fw, fh = int(round(height * r_hi)), height
        else:
            fw, fh = width, height
        w = torch.where(any_ok, w, torch.full_like(w, fw))
        h = torch.where(any_ok, h, torch.full_like(h, fh))
        pos = params["crop_pos"].double()
        i = torch.floor(pos[:, 0] * (height - h + 1))
        j = torch.floor(pos[:, 1] * (width - w + 1))
        i = torch.where(any_ok, i, (height - h) // 2)
        j = torch.where(any_ok, j, (width - w) // 2)
        return torch.stack([i, j, h, w], 1).long()

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Augment x uint8 (B, 3, H, W) with the given params -> float32 (B, 3, size, size)."""
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8:
            raise TypeError(f"BatchAugment expects a uint8 tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected x of shape (B, 3, H, W), got {tuple(x.shape)}")
        B, _, H, W = x.shape
        bad = [k for k, v in params.items() if v.shape[0] != B]
        if bad:
            raise ValueError(f"params {bad} have a leading dimension != batch size {B}")
        cfg, dev, S = self.cfg, x.device, self.cfg.size
        xf = x.float().div_(255)
        flip = params["flip"].to(dev)

        # 1. crop + resize + flip: one grid_sample (or a plain flip when nothing is resampled)
        if not cfg.crop and H == W == S:
            out = torch.where(flip.view(-1, 1, 1, 1), xf.flip(-1), xf)
        else:
            if cfg.crop:
                box = self.crop_boxes(params, H, W).to(dev).float()  # (B, 4): i, j, h, w
            else:  # centre square, resized to S (as Resize(S) + CenterCrop(S) on a square crop)
                side = min(H, W)
                box = torch.tensor([(H - side) // 2, (W - side) // 2, side, side], device=dev).float().expand(B, 4)
            t = (torch.arange(S, device=dev, dtype=torch.float32) + 0.5) / S  # output pixel centres
            gx = 2 * (box[:, 1:2] + t * box[:, 3:4]) / W - 1  # (B, S) in grid_sample's [-1, 1]
            gy = 2 * (box[:, 0:1] + t * box[:, 2:3]) / H - 1
            gx = torch.where(flip.view(-1, 1), gx.flip(-1), gx)
            grid = torch.stack([gx[:, None, :].expand(B, S, S), gy[:, :, None].expand(B, S, S)], -1)
            out = F.grid_sample(xf, grid, mode=cfg.interpolation, padding_mode="border", align_corners=False)
            out = out.clamp_(0, 1)

        # 2. colour jitter, the 4 ops in a random order per image
        strengths = (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)
        if cfg.jitter_p > 0 and any(s > 0 for s in strengths):
            on = params["jitter"].to(dev)
            order = params["jitter_order"].to(dev)
            factors = params["jitter_factors"].to(dev)
            for step in range(4):
                for op, fn in enumerate(_frozen_JITTER_OPS):
                    if strengths[op] == 0:
                        continue
                    idx = torch.nonzero(on & (order[:, step] == op)).squeeze(1)
                    if idx.numel():
                        out[idx] = fn(out[idx], factors[idx, op])

        # 3. grayscale, 4. blur, 5. solarize
        if cfg.grayscale_p > 0:
            out = torch.where(params["gray"].to(dev).view(-1, 1, 1, 1), _frozen_gray(out).expand_as(out), out)
        if self.blur_p > 0:
            idx = torch.nonzero(params["blur"].to(dev)).squeeze(1)
            if idx.numel():
                out[idx] = _frozen_gaussian_blur(out[idx], params["blur_sigma"].to(dev)[idx], cfg.blur_sigma[1])
        if self.solarize_p > 0:
            sol = params["solarize"].to(dev).view(-1, 1, 1, 1) & (out >= 0.5)  # uint8 >= 128
            out = torch.where(sol, 1 - out, out)

        # 6. normalise
        mean = torch.tensor(cfg.mean, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(cfg.std, device=dev).view(1, 3, 1, 1)
        return (out - mean) / std


_EQUIVALENCE_CASES = {
    "cifar": lambda: cifar_augment(),
    "shapes": lambda: shapes_augment(),
    "imagenet24": lambda: imagenet_augment(size=24),  # blur on view a, solarize on view b
    "imagenet40": lambda: imagenet_augment(size=40),  # crops upsampled past the input size
    "bilinear_no_hue": lambda: cifar_augment(interpolation="bilinear", hue=0.0, brightness=0.0),
    "no_crop_same_size": lambda: cifar_augment(crop=False, grayscale_p=0.5),  # flip only, no resampling
    "no_crop_resized": lambda: imagenet_augment(size=24, crop=False, jitter_p=1.0),
    "all_off": lambda: _no_randomness(cifar_augment),
}


HUE_ROUNDING = 1e-5  # 2.5e-6 of a [0, 1] pixel (1/1500 of a uint8 level) after normalising by std ~0.25


def test_hue_closed_form_matches_the_sector_table():
    """adjust_hue's closed form against the frozen six-sector selection, on every sector and its edges."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 16, 16, generator=g)
    x[:4] = x[:4, :1]  # grey images: chroma 0
    x[4:8, :, :8] = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)  # a pure hue on a sector edge
    h = torch.linspace(-0.5, 0.5, 64)
    assert (adjust_hue(x, h) - _frozen_adjust_hue(x, h)).abs().max() <= 1e-6


@pytest.mark.parametrize("case", sorted(_EQUIVALENCE_CASES))
@pytest.mark.parametrize("shape", [(64, 32, 32), (16, 40, 48)])
def test_batched_path_reproduces_the_frozen_implementation(images, case, shape):
    """Same params, same outputs as before the sync-free rewrite, for both views and for one view
    alone: max |difference| <= HUE_ROUNDING on normalised values ~[-2, 2] (float rounding: the
    hue's HSV -> RGB is the closed form of the frozen six-sector table)."""
    cfg = _EQUIVALENCE_CASES[case]()
    n, h, w = shape
    if (h, w) == (32, 32):
        x = images[0][:n]
    else:  # non-square input: crops fall back to torchvision's centre rule more often
        x = torch.randint(0, 256, (n, 3, h, w), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    aug = TwoViewBatchAugment(cfg)
    params = aug.sample(n, torch.Generator().manual_seed(5))
    new = aug.apply(x, params)
    old = [_FrozenBatchAugment(cfg, v).apply(x, params[v]) for v in (0, 1)]
    for a, b in zip(new, old):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert (a - b).abs().max() <= HUE_ROUNDING, (case, shape, (a - b).abs().max().item())
    one = BatchAugment(cfg, 1).apply(x, params[1])
    assert (one - old[1]).abs().max() <= HUE_ROUNDING
    ref_eval = _FrozenBatchAugment(dataclasses.replace(cfg, crop=False), 0).apply(x, _identity_params(n))
    assert (eval_batch(x, cfg) - ref_eval).abs().max() <= 1e-6


@pytest.mark.parametrize("case", ["cifar", "imagenet24", "no_crop_same_size"])
def test_views_as_one_batch_reproduce_the_frozen_implementation(images, case):
    """On a GPU both views run as one batch of 2B images (on CPU one after the other): same outputs."""
    from vicreg_edu.batch_augment import _augment_views

    cfg = _EQUIVALENCE_CASES[case]()
    x = images[0]
    params = TwoViewBatchAugment(cfg).sample(len(x), torch.Generator().manual_seed(6))
    fused = _augment_views(cfg, x, list(params))
    for v in (0, 1):
        assert (fused[v] - _FrozenBatchAugment(cfg, v).apply(x, params[v])).abs().max() <= HUE_ROUNDING


@pytest.mark.parametrize("crop", [True, False])
def test_batches_as_one_batch_equal_one_at_a_time(images, crop):
    """augment_batches (the JPEG path's colour ops: each view cropped elsewhere): the batches
    concatenated with their parameters give each batch's own result, as on a GPU."""
    from vicreg_edu.batch_augment import BatchAugment, augment_batches

    cfg = imagenet_augment(size=32, crop=crop)
    x = images[0]
    xs = [x[:5], x[5:12].flip(-1)]  # two batches of different sizes and contents
    g = torch.Generator().manual_seed(7)
    params = [BatchAugment(cfg, k).sample(len(b), g) for k, b in enumerate(xs)]
    apart = augment_batches(cfg, xs, params)  # on the CPU: one at a time
    together = augment_batches(cfg, xs, params, one_batch=True)
    assert [t.shape for t in together] == [a.shape for a in apart] == [(5, 3, 32, 32), (7, 3, 32, 32)]
    for a, t in zip(apart, together):
        assert (a - t).abs().max() <= HUE_ROUNDING
    with pytest.raises(ValueError, match="2 batches but 1 parameter sets"):
        augment_batches(cfg, xs, params[:1])


@pytest.mark.parametrize("case", ["cifar", "imagenet24", "no_crop_resized"])
def test_device_work_reads_nothing_back(images, case):
    """The device part needs no sync: run it on the meta device, whose tensors have no data, so
    any read back to the host (.item(), nonzero, a data-dependent branch) would raise."""
    from vicreg_edu.batch_augment import _augment_views

    cfg = _EQUIVALENCE_CASES[case]()
    x = images[0][:16]
    params = TwoViewBatchAugment(cfg).sample(16, torch.Generator().manual_seed(0))
    a, b = _augment_views(cfg, x.to("meta"), list(params))
    assert a.device.type == b.device.type == "meta" and a.shape == b.shape == (16, 3, cfg.size, cfg.size)
    with pytest.raises((RuntimeError, NotImplementedError)):  # teeth: the frozen path reads back
        _FrozenBatchAugment(cfg, 0).apply(x.to("meta"), params[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_batch_on_gpu_makes_no_sync(images):
    x = images[0].cuda()
    aug = TwoViewBatchAugment(imagenet_augment(size=32))
    params = aug.sample(len(x), torch.Generator().manual_seed(0))
    aug.apply(x, params)  # warm-up (allocator, pinned-memory pool)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        a, b = aug.apply(x, params)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert a.shape == b.shape == (len(x), 3, 32, 32)
