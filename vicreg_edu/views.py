"""What the two views are: :class:`AugmentConfig` and the recipes of each dataset (no torch needed).

VICReg (Bardes, Ponce & LeCun, ICLR 2022, arXiv 2105.04906, Section 4.1 and Appendix C.1) learns
by making the embeddings of two random views of one image agree. The views come from this
recipe (official ``augmentations.py`` of facebookresearch/vicreg), applied in this order:

    RandomResizedCrop(224, scale=(0.08, 1), bicubic)     both views
    horizontal flip                        p = 0.5       both views
    ColorJitter(0.4, 0.4, 0.2, 0.1)        p = 0.8       both views (random order of the 4 ops)
    grayscale                              p = 0.2       both views
    Gaussian blur, sigma ~ U(0.1, 2)       p = 1.0 / 0.1 view a / view b
    solarization (invert pixels >= 128)    p = 0.0 / 0.2 view a / view b
    normalise with the dataset mean / std

One :class:`AugmentConfig` describes it; :func:`imagenet_augment`, :func:`cifar_augment` and
:func:`shapes_augment` give the three presets, and switching an augmentation off is setting its
probability to 0 (or ``crop=False``): ``cifar_augment(jitter_p=0.0)``. :mod:`vicreg_edu.augment`
makes the views from it (PIL images, or whole batches on the device).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import ConfigError

# Channel statistics (mean, std) of the training splits, on [0, 1] pixels: the one place they live
# shapes: measured on Shapes("train") (seed 0, n=10000,
# flat + gradient backgrounds); tests/test_data.py re-measures them.
DATASET_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "shapes": ((0.5027, 0.4966, 0.4991), (0.2756, 0.2737, 0.2742)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
IMAGENET_MEAN, IMAGENET_STD = DATASET_STATS["imagenet"]
CIFAR10_MEAN, CIFAR10_STD = DATASET_STATS["cifar10"]
SHAPES_MEAN, SHAPES_STD = DATASET_STATS["shapes"]


@dataclass
class AugmentConfig:
    """Everything that defines the two views. Defaults = the official ImageNet recipe.

    Tuple fields with two entries named ``(view_a, view_b)`` are the asymmetric ones.

    Attributes:
        size: output side in pixels.
        crop: RandomResizedCrop on/off; off = resize the shorter side to ``size`` + centre crop.
        crop_scale: range of the crop's area as a fraction of the image.
        crop_ratio: range of the crop's aspect ratio (w / h), sampled log-uniformly.
        interpolation: ``"bicubic"`` (official) or ``"bilinear"``.
        flip_p: horizontal flip probability.
        jitter_p: probability of applying ColorJitter(brightness, contrast, saturation, hue).
        brightness, contrast, saturation: factor drawn from U(max(0, 1 - v), 1 + v); 0 = op off.
        hue: shift drawn from U(-hue, hue), in turns of the colour wheel (<= 0.5); 0 = op off.
        grayscale_p: probability of converting to grey (kept as 3 channels).
        blur_p: (view_a, view_b) probability of a Gaussian blur.
        blur_sigma: range of the blur's standard deviation in pixels.
        solarize_p: (view_a, view_b) probability of solarization (invert pixels >= 128).
        mean, std: per-channel normalisation of the [0, 1] output.

    Example:
        >>> cfg = imagenet_augment(blur_p=(0.0, 0.0))     # the recipe without blur
        >>> cfg.size, cfg.crop_scale
        (224, (0.08, 1.0))
    """

    size: int = 224
    crop: bool = True
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: str = "bicubic"
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: tuple[float, float] = (1.0, 0.1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: tuple[float, float] = (0.0, 0.2)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        for name in ("crop_scale", "crop_ratio", "blur_p", "blur_sigma", "solarize_p", "mean", "std"):
            v = getattr(self, name)
            if not isinstance(v, (tuple, list)):
                raise TypeError(f"{name} must be a tuple, got {type(v).__name__}")
            setattr(self, name, tuple(float(a) for a in v))
            want = 3 if name in ("mean", "std") else 2
            if len(getattr(self, name)) != want:
                raise ValueError(f"{name} needs {want} values, got {v!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be a positive int, got {self.size!r}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < min <= max, got {self.crop_ratio}")
        if self.interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"interpolation must be 'bicubic' or 'bilinear', got {self.interpolation!r}")
        probs = {
            "flip_p": self.flip_p,
            "jitter_p": self.jitter_p,
            "grayscale_p": self.grayscale_p,
            "blur_p[0]": self.blur_p[0],
            "blur_p[1]": self.blur_p[1],
            "solarize_p[0]": self.solarize_p[0],
            "solarize_p[1]": self.solarize_p[1],
        }
        for name, p in probs.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} is a probability and must lie in [0, 1], got {p}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must lie in [0, 0.5], got {self.hue}")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must satisfy 0 < min <= max, got {self.blur_sigma}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")


def _with_overrides(cfg: AugmentConfig, overrides: dict) -> AugmentConfig:
    names = {f.name for f in dataclasses.fields(AugmentConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown AugmentConfig field(s) {unknown}; fields are {sorted(names)}")
    return dataclasses.replace(cfg, **overrides)


def imagenet_augment(**overrides) -> AugmentConfig:
    """The official VICReg recipe at 224 px (facebookresearch/vicreg ``augmentations.py``).

    Example:
        >>> imagenet_augment().blur_p, imagenet_augment().solarize_p
        ((1.0, 0.1), (0.0, 0.2))
    """
    return _with_overrides(AugmentConfig(), overrides)


def cifar_augment(**overrides) -> AugmentConfig:
    """CIFAR recipe (solo-learn ``scripts/pretrain/cifar/vicreg.yaml``): 32 px, crop scale (0.2, 1),
    same colour jitter and grayscale, no blur, solarization p = 0.1 on both views, CIFAR-10 stats
    (the ``cifar100`` preset passes CIFAR-100's in ``aug``). ``tests/test_presets.py`` holds it
    against the yaml; the differences left are listed in ``config._cifar``.

    Example:
        >>> cifar_augment().size, cifar_augment().blur_p
        (32, (0.0, 0.0))
    """
    base = AugmentConfig(
        size=32, crop_scale=(0.2, 1.0), blur_p=(0.0, 0.0), solarize_p=(0.1, 0.1), mean=CIFAR10_MEAN, std=CIFAR10_STD
    )
    return _with_overrides(base, overrides)


def shapes_augment(**overrides) -> AugmentConfig:
    """Recipe for the built-in Shapes dataset: the CIFAR recipe with a milder crop (0.3, 1), so that
    most crops still contain part of the shape, and a stronger hue / saturation jitter, because
    colour is the main nuisance there. A starting point; the demo preset may override it.

    Example:
        >>> shapes_augment().crop_scale
        (0.3, 1.0)
    """
    base = AugmentConfig(
        size=32,
        crop_scale=(0.3, 1.0),
        saturation=0.4,
        hue=0.25,
        blur_p=(0.0, 0.0),
        solarize_p=(0.1, 0.1),
        mean=SHAPES_MEAN,
        std=SHAPES_STD,
    )
    return _with_overrides(base, overrides)


AUGMENT_RECIPES = {"shapes": shapes_augment, "cifar": cifar_augment, "imagenet": imagenet_augment}
"""Name (``Config.augment``) -> recipe function."""


def make_augment_config(cfg) -> AugmentConfig:
    """The :class:`AugmentConfig` a run's config names: recipe ``cfg.augment`` with ``cfg.aug`` overrides.

    Raises:
        ConfigError: unknown recipe, unknown field in ``aug``, or a value out of range (the
            message names the field).

    Example:
        >>> from vicreg_edu.config import Config
        >>> make_augment_config(Config(augment="cifar", aug={"jitter_p": 0.0})).jitter_p
        0.0
    """
    if cfg.augment not in AUGMENT_RECIPES:
        raise ConfigError(f"augment={cfg.augment!r} is not a recipe; choose one of {sorted(AUGMENT_RECIPES)}")
    try:
        return AUGMENT_RECIPES[cfg.augment](**cfg.aug)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad augmentation override aug={cfg.aug}: {e}") from None
