"""vicreg_edu.jpeg_decode on CPU: shapes, the planned draws against torchvision's and the PIL
path's distributions, and the deterministic view against the PIL path's.

Distribution checks: two-sample Kolmogorov-Smirnov tests (scipy) on 2000 draws from fixed seeds,
failing at p < 1e-4 (about 20 such tests here: a family-wise false alarm near 0.2 % per choice of
seeds; at 1e-3 the contrast factor failed once with p = 5.5e-4, sampling noise: the reference's
own draw has p = 0.008 against U(0.6, 1.4)); probabilities within 4 binomial standard deviations.
The seeds are fixed, so each check gives the same p-value on every run. What they can see at
n = 2000 (tried once): crop_scale (0.2, 1) instead of (0.08, 1) gives p = 9e-25 on the scale; a
linear instead of log-uniform aspect ratio on [3/4, 4/3] only p = 2e-4, which these tests do not
catch at this n (the code draws the log ratio: ``BatchAugment.sample``).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

import vicreg_edu.augment as augment
import vicreg_edu.jpeg_decode as jd
from vicreg_edu.jpeg_decode import JpegTwoViewDecoder, image_sizes
from vicreg_edu.views import imagenet_augment

stats = pytest.importorskip("scipy.stats")
N = 2000


def _jpeg(h: int, w: int, seed: int, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((w, h), Image.BICUBIC).convert(mode)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[bytes]:
    """Tiny JPEG files of mixed sizes written to disk (one greyscale), read back as bytes."""
    folder = tmp_path_factory.mktemp("jpegs")
    specs = [(48, 40, "RGB"), (36, 60, "RGB"), (50, 50, "L"), (20, 90, "RGB"), (48, 40, "RGB")]
    out = []
    for k, (h, w, mode) in enumerate(specs):
        path = folder / f"{k}.jpg"
        path.write_bytes(_jpeg(h, w, k, mode))
        out.append(path.read_bytes())
    return out


def test_shapes_dtype_and_sizes_from_headers(files):
    cfg = imagenet_augment(size=24)
    assert image_sizes(files) == [(48, 40), (36, 60), (50, 50), (20, 90), (48, 40)]
    a, b = JpegTwoViewDecoder(cfg, decode_batch=2)(files, torch.Generator().manual_seed(0))
    assert a.shape == b.shape == (5, 3, 24, 24) and a.dtype == b.dtype == torch.float32
    assert torch.isfinite(a).all() and not torch.equal(a, b)  # two independent draws


def test_seeded_and_batched_decode_fallback(files, monkeypatch):
    cfg = imagenet_augment(size=16)
    one = JpegTwoViewDecoder(cfg, decode_batch=1)(files, torch.Generator().manual_seed(3))
    real = jd.decode_jpeg

    def refuse_batches(data, **kw):  # stands in for nvJPEG's "Failed to decode batch"
        if isinstance(data, list) and len(data) > 1:
            raise RuntimeError("Failed to decode batch: 6")
        return real(data, **kw)

    monkeypatch.setattr(jd, "decode_jpeg", refuse_batches)
    dec = JpegTwoViewDecoder(cfg, decode_batch=4)
    again = dec(files, torch.Generator().manual_seed(3))
    assert dec.batched_decode_failures == 1  # 5 files: a call of 4 (refused, retried one by one), then 1
    assert all(torch.equal(x, y) for x, y in zip(one, again))  # same seed, same views


def _ks(x, y) -> float:
    return stats.ks_2samp(np.asarray(x, dtype=float), np.asarray(y, dtype=float)).pvalue


@pytest.mark.parametrize("hw", [(375, 500), (40, 48), (12, 200)])  # (12, 200): mostly the centre-crop fallback
def test_crop_boxes_match_torchvision_get_params(hw):
    H, W = hw
    cfg = imagenet_augment()
    _, boxes = JpegTwoViewDecoder(cfg).plan([hw] * N, torch.Generator().manual_seed(0))
    ours = boxes[0].double()
    torch.manual_seed(1)
    ref = torch.tensor(
        [
            T.RandomResizedCrop.get_params(torch.empty(3, H, W), list(cfg.crop_scale), list(cfg.crop_ratio))
            for _ in range(N)
        ]
    ).double()  # (N, 4): top, left, h, w
    for name, f in {
        "scale": lambda b: b[:, 2] * b[:, 3] / (H * W),
        "log aspect ratio": lambda b: (b[:, 3] / b[:, 2]).log(),
        "top / H": lambda b: b[:, 0] / H,
        "left / W": lambda b: b[:, 1] / W,
    }.items():
        p = _ks(f(ours), f(ref))
        assert p > 1e-4, (hw, name, p)
    assert (ours[:, 0] + ours[:, 2] <= H).all() and (ours[:, 1] + ours[:, 3] <= W).all()


def test_colour_factors_match_the_pil_path():
    cfg = imagenet_augment()
    (pa, pb), _ = JpegTwoViewDecoder(cfg).plan([(64, 64)] * N, torch.Generator().manual_seed(0))
    torch.manual_seed(2)
    jitter = T.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)  # the PIL path's op
    ref = [jitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) for _ in range(N)]
    ref_order = torch.stack([r[0] for r in ref])
    ref_factors = torch.tensor([r[1:] for r in ref])  # (N, 4): brightness, contrast, saturation, hue
    for k, name in enumerate(("brightness", "contrast", "saturation", "hue")):
        assert _ks(pa["jitter_factors"][:, k], ref_factors[:, k]) > 1e-4, name
    for step in range(4):  # which op comes at each step: uniform over the four, as the reference
        ours = torch.bincount(pa["jitter_order"][:, step], minlength=4) / N
        theirs = torch.bincount(ref_order[:, step], minlength=4) / N
        assert (ours - theirs).abs().max() < 4 * math.sqrt(2 * 0.25 * 0.75 / N), step
    for key, p, q in [
        ("flip", pa, cfg.flip_p),
        ("jitter", pa, cfg.jitter_p),
        ("gray", pa, cfg.grayscale_p),
        ("blur", pa, cfg.blur_p[0]),
        ("blur", pb, cfg.blur_p[1]),
        ("solarize", pa, cfg.solarize_p[0]),
        ("solarize", pb, cfg.solarize_p[1]),
    ]:
        assert abs(p[key].double().mean().item() - q) <= 4 * math.sqrt(q * (1 - q) / N) + 1e-12, key


def test_blur_sigma_matches_the_pil_path(monkeypatch):
    """The PIL path's own blur (augment._RandomGaussianBlur) with PIL's filter recorded, against the plan."""
    cfg = imagenet_augment()
    seen = []
    monkeypatch.setattr(augment.ImageFilter, "GaussianBlur", lambda radius: seen.append(radius) or (lambda im: im))
    monkeypatch.setattr(Image.Image, "filter", lambda self, f: self)
    blur, img = augment._RandomGaussianBlur(cfg.blur_p[1], cfg.blur_sigma), Image.new("RGB", (1, 1))
    torch.manual_seed(4)
    for _ in range(N):
        blur(img)
    (_, pb), _ = JpegTwoViewDecoder(cfg).plan([(8, 8)] * N, torch.Generator().manual_seed(0))
    ours = pb["blur_sigma"][pb["blur"]]
    assert abs(len(seen) - len(ours)) <= 4 * math.sqrt(N * 0.1 * 0.9) * math.sqrt(2)
    assert _ks(ours, seen) > 1e-4


def test_deterministic_view_equals_the_pil_path(files):
    """crop off, no flip, jitter, grey, blur or solarization: resize + centre crop + normalise.

    Tolerance, in 8-bit pixel units: max 1, mean 0.25 (seen: max 1, mean 0.15-0.20 per image, at
    24 px and at 224 px from 500x375). The resize is PIL's antialiased bicubic on one side and
    torchvision's antialiased bicubic on uint8 tensors on the other: the same filter, rounded to
    8 bits differently by one level on some pixels.
    """
    cfg = imagenet_augment(
        size=24, crop=False, flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=(0.0, 0.0), solarize_p=(0.0, 0.0)
    )
    a, b = JpegTwoViewDecoder(cfg)(files, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    ref = torch.stack([augment.view_transform(cfg, 0)(Image.open(io.BytesIO(f)).convert("RGB")) for f in files])
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    diff = ((a - ref) * std * 255).abs()
    assert diff.max() <= 1.0 + 1e-3 and diff.mean() <= 0.25, (diff.max().item(), diff.mean().item())
