"""The two views on PIL images: VICReg's augmentations as torchvision transforms.

What the views are (the official recipe, crop, flip, colour jitter, grayscale, blur, solarization,
normalisation, and the presets of each dataset) is one :class:`~vicreg_edu.views.AugmentConfig`
(:mod:`vicreg_edu.views`). This module makes them per image, on PIL images
(:class:`TwoViewTransform`, for ``TwoViewDataset`` + ``DataLoader`` workers: ImageNet-size images
on disk), plus the deterministic evaluation transform. Its randomness comes from torch's global
RNG, which ``data.TwoViewDataset`` seeds per image from (seed, epoch, index). The same recipe on
whole uint8 batches on the device is :mod:`vicreg_edu.batch_augment`.
"""

from __future__ import annotations

import torch
import torchvision.transforms as T
from PIL import Image, ImageFilter, ImageOps

from .views import AugmentConfig


def _interp(cfg: AugmentConfig) -> T.InterpolationMode:
    return T.InterpolationMode.BICUBIC if cfg.interpolation == "bicubic" else T.InterpolationMode.BILINEAR


class _RandomGaussianBlur:
    """PIL Gaussian blur with probability p and sigma ~ U(lo, hi) (official ``GaussianBlur``), torch RNG."""

    def __init__(self, p: float, sigma: tuple[float, float]):
        self.p, self.sigma = p, sigma

    def __call__(self, img: Image.Image) -> Image.Image:
        u, s = torch.rand(2).tolist()
        if u < self.p:
            return img.filter(ImageFilter.GaussianBlur(self.sigma[0] + s * (self.sigma[1] - self.sigma[0])))
        return img


class _RandomSolarize:
    """PIL solarization (invert pixels >= 128) with probability p (official ``Solarization``), torch RNG."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, img: Image.Image) -> Image.Image:
        return ImageOps.solarize(img) if torch.rand(1).item() < self.p else img


def _resize_and_center(cfg: AugmentConfig, resize: int) -> list:
    return [T.Resize(resize, interpolation=_interp(cfg)), T.CenterCrop(cfg.size)]


def view_transform(cfg: AugmentConfig, view: int, normalize: bool = True) -> T.Compose:
    """The torchvision pipeline PIL image -> Tensor (3, size, size) for one view (0 = a, 1 = b).

    ``normalize=False`` ends with the uint8 pixels (``PILToTensor``) instead of ``ToTensor`` +
    ``Normalize``: the same image, 4x smaller; ``(x / 255 - mean) / std`` gives the normalised one.

    Example:
        >>> from vicreg_edu.views import cifar_augment
        >>> view_transform(cifar_augment(), 0)(Image.new("RGB", (32, 32))).shape
        torch.Size([3, 32, 32])
    """
    if view not in (0, 1):
        raise ValueError(f"view must be 0 (view a) or 1 (view b), got {view!r}")
    ops = (
        [T.RandomResizedCrop(cfg.size, scale=cfg.crop_scale, ratio=cfg.crop_ratio, interpolation=_interp(cfg))]
        if cfg.crop
        else _resize_and_center(cfg, cfg.size)
    )
    ops += [
        T.RandomHorizontalFlip(p=cfg.flip_p),
        T.RandomApply([T.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)], p=cfg.jitter_p),
        T.RandomGrayscale(p=cfg.grayscale_p),
        _RandomGaussianBlur(cfg.blur_p[view], cfg.blur_sigma),
        _RandomSolarize(cfg.solarize_p[view]),
    ]
    ops += [T.ToTensor(), T.Normalize(cfg.mean, cfg.std)] if normalize else [T.PILToTensor()]
    return T.Compose(ops)


class TwoViewTransform:
    """PIL image -> (view_a, view_b), two independent draws of the recipe (PIL / torchvision path).

    Shapes: PIL image (any size) -> two float tensors (3, size, size), normalised; with
    ``normalize=False`` two uint8 tensors (3, size, size), the pixels before normalisation.

    Every random draw comes from torch's global RNG. ``data.TwoViewDataset`` seeds it per sample
    from ``(seed, epoch, index)`` (and restores it after), so on the DataLoader path a sample's
    views do not depend on the worker, the number of workers or where an epoch was resumed.

    Example:
        >>> from vicreg_edu.views import cifar_augment
        >>> a, b = TwoViewTransform(cifar_augment())(Image.new("RGB", (32, 32), "red"))
        >>> a.shape, b.shape
        (torch.Size([3, 32, 32]), torch.Size([3, 32, 32]))
    """

    def __init__(self, cfg: AugmentConfig, *, normalize: bool = True):
        if not isinstance(cfg, AugmentConfig):
            raise TypeError(f"cfg must be an AugmentConfig, got {type(cfg).__name__}")
        self.cfg, self.normalize = cfg, normalize
        self.view_a, self.view_b = view_transform(cfg, 0, normalize), view_transform(cfg, 1, normalize)

    def __call__(self, img: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(img, Image.Image):
            raise TypeError(f"TwoViewTransform expects a PIL image, got {type(img).__name__}")
        if img.mode != "RGB":
            img = img.convert("RGB")
        return self.view_a(img), self.view_b(img)

    def __repr__(self) -> str:
        return f"TwoViewTransform({self.cfg})"


def eval_transform(cfg: AugmentConfig) -> T.Compose:
    """Deterministic evaluation transform: resize + centre crop to ``size``, then normalise.

    For ``size > 64`` the shorter side is first resized to ``size * 256 / 224`` (the usual
    ImageNet Resize(256) / CenterCrop(224)); small images are resized to ``size`` directly.

    Example:
        >>> from vicreg_edu.views import cifar_augment
        >>> eval_transform(cifar_augment())(Image.new("RGB", (32, 32))).shape
        torch.Size([3, 32, 32])
    """
    resize = cfg.size if cfg.size <= 64 else int(round(cfg.size * 256 / 224))
    return T.Compose(_resize_and_center(cfg, resize) + [T.ToTensor(), T.Normalize(cfg.mean, cfg.std)])
