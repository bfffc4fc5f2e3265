"""The built-in dataset, Shapes: procedurally generated 32x32 images, one filled shape each.

It needs no download, so the demo, the notebooks and CI run anywhere. **The class is the shape**
and everything else is a nuisance:

- classes (10): circle, ring, square, triangle, star, cross, crescent, ell (an L), arrow,
  hourglass, chosen to stay distinguishable at 32 px under any rotation (a diamond would be a
  rotated square, a hexagon almost a circle, so neither is used).
- nuisances, drawn independently per image: scale (half-size 6 to 12 px), rotation (uniform, 0 to
  360 degrees), position (centre anywhere that keeps most of the shape inside the image),
  foreground colour (uniform RGB), background colour (uniform RGB, redrawn until it differs from
  the foreground by at least 0.4 in RGB distance), and background kind: flat, or a linear gradient
  to a second colour in a random direction. A third kind, *noisy* (flat plus low-frequency and
  per-pixel Gaussian noise), is off by default (``Shapes(backgrounds=BACKGROUNDS)`` turns it on):
  both views of an image share it and no augmentation of the recipe removes it, so a short VICReg
  run learns it as a feature (measured in ``vicreg_edu/results/README.md``).

How it is made: every shape has a signed distance function (SDF) in its own unit frame (circle
and ring analytically, crescent as a difference of two discs, the others as polygons: distance to
the nearest edge, sign by the even-odd rule). For a whole class at once (numpy, no Python loop
over images) the pixel centres are mapped into each image's shape frame (translate, rotate,
scale), the SDF is evaluated and turned into a coverage in [0, 1] with a one-pixel linear ramp
(light anti-aliasing), and the image is ``background * (1 - coverage) + colour * coverage``,
rounded to uint8. Labels are balanced (``n // 10`` per class, the remainder to the first
classes) and shuffled. All randomness comes from ``numpy.random.default_rng`` seeded with
``(seed, split)``, so a split is a pure function of ``(split, n, seed, backgrounds)`` and the
train and test splits use disjoint random streams. Defaults: 10 000 train and 2 000 test images,
generated in a few seconds and memoised in-process; nothing is written to disk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

# -----------------------------------------------------------------------------
# Signed distance functions in the shape's unit frame (p: (..., 2) array of x, y)


def _polygon_sdf(p: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Signed distance from points p (..., 2) to a simple polygon verts (V, 2); < 0 inside."""
    x, y = p[..., 0:1], p[..., 1:2]  # (..., 1) broadcast against the V edges
    a, b = verts, np.roll(verts, -1, axis=0)  # edge k goes a[k] -> b[k]
    e = b - a  # (V, 2)
    wx, wy = x - a[:, 0], y - a[:, 1]  # (..., V)
    t = np.clip((wx * e[:, 0] + wy * e[:, 1]) * (1.0 / (e**2).sum(1)), 0.0, 1.0)
    dist = np.sqrt(((wx - t * e[:, 0]) ** 2 + (wy - t * e[:, 1]) ** 2).min(-1))
    # even-odd rule: count edges crossed by a ray to +x
    slope = e[:, 0] / np.where(e[:, 1] == 0, 1e-12, e[:, 1])  # dx/dy of each edge
    crosses = ((a[:, 1] > y) != (b[:, 1] > y)) & (x < a[:, 0] + (y - a[:, 1]) * slope)
    inside = crosses.sum(-1) % 2 == 1
    return np.where(inside, -dist, dist)


def _regular(k: int, r: float = 1.0, phase: float = np.pi / 2) -> np.ndarray:
    ang = phase + 2 * np.pi * np.arange(k) / k
    return (r * np.stack([np.cos(ang), np.sin(ang)], 1)).astype(np.float32)


def _star(points: int = 5, r_out: float = 1.0, r_in: float = 0.42) -> np.ndarray:
    ang = np.pi / 2 + np.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, r_out, r_in)
    return np.stack([r * np.cos(ang), r * np.sin(ang)], 1).astype(np.float32)


_POLYGONS = {
    "square": np.array([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]]),
    "triangle": _regular(3, 1.05),
    "star": _star(),
    "cross": np.array(
        [
            [-0.3, -1],
            [0.3, -1],
            [0.3, -0.3],
            [1, -0.3],
            [1, 0.3],
            [0.3, 0.3],
            [0.3, 1],
            [-0.3, 1],
            [-0.3, 0.3],
            [-1, 0.3],
            [-1, -0.3],
            [-0.3, -0.3],
        ]
    ),
    "ell": np.array([[-0.75, -1], [0.8, -1], [0.8, -0.4], [-0.15, -0.4], [-0.15, 1], [-0.75, 1]]),
    "arrow": np.array([[-1, -0.28], [0.15, -0.28], [0.15, -0.75], [1, 0], [0.15, 0.75], [0.15, 0.28], [-1, 0.28]]),
    "hourglass": np.array([[-0.8, -1], [0.8, -1], [0.14, 0], [0.8, 1], [-0.8, 1], [-0.14, 0]]),
}
_POLYGONS = {k: np.asarray(v, dtype=np.float32) for k, v in _POLYGONS.items()}


def _shape_sdf(name: str, p: np.ndarray) -> np.ndarray:
    r = np.sqrt((p**2).sum(-1))
    if name == "circle":
        return r - 0.95
    if name == "ring":
        return np.abs(r - 0.72) - 0.28
    if name == "crescent":
        inner = np.sqrt(((p - np.array([0.42, 0.18], dtype=np.float32)) ** 2).sum(-1)) - 0.78
        return np.maximum(r - 1.0, -inner)
    return _polygon_sdf(p, _POLYGONS[name])


SHAPE_CLASSES = ["circle", "ring", "square", "triangle", "star", "cross", "crescent", "ell", "arrow", "hourglass"]
SHAPES_SPLIT_SIZES = {"train": 10_000, "test": 2_000}
_SPLIT_IDS = {"train": 0, "test": 1}


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of linear-interpolation weights (pixel centres aligned, edges clamped)."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), lo] += 1 - (pos - lo)
    m[np.arange(n_out), hi] += pos - lo
    return m


BACKGROUNDS = ("flat", "gradient", "noisy")
DEFAULT_BACKGROUNDS = ("flat", "gradient")


@functools.lru_cache(maxsize=8)
def _make_shapes(
    split: str, n: int, seed: int, size: int = 32, backgrounds: tuple[str, ...] = DEFAULT_BACKGROUNDS
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one Shapes split: uint8 images (n, size, size, 3) and int64 labels (n,)."""
    rng = np.random.default_rng([seed, _SPLIT_IDS[split]])
    k = len(SHAPE_CLASSES)
    labels = rng.permutation(np.arange(n) % k)

    # nuisances, one row per image
    half = rng.uniform(6.0, 12.0, n)  # half-size of the shape in pixels
    theta = rng.uniform(0, 2 * np.pi, n)
    margin = 0.55 * half  # keep the centre far enough in that most of the shape is visible
    cx = margin + rng.random(n) * (size - 2 * margin)
    cy = margin + rng.random(n) * (size - 2 * margin)
    fg = rng.random((n, 3), dtype=np.float32)
    bg = rng.random((n, 3))
    for _ in range(100):  # redraw backgrounds too close to the foreground colour
        close = np.linalg.norm(fg - bg, axis=1) < 0.4
        if not close.any():
            break
        bg[close] = rng.random((close.sum(), 3))
    bg_kind = rng.integers(0, 3, n)  # 0 flat, 1 gradient, 2 noisy
    if "noisy" not in backgrounds:  # would-be noisy backgrounds stay flat; every other draw is unchanged
        bg_kind[bg_kind == 2] = 0
    if "gradient" not in backgrounds:
        bg_kind[bg_kind == 1] = 0
    bg2 = rng.random((n, 3))
    grad_dir = rng.uniform(0, 2 * np.pi, n)
    low = rng.normal(0, 0.08, (n, 4, 4, 3)).astype(np.float32)  # low-frequency noise
    pixel_noise = rng.standard_normal((n, size, size, 3), dtype=np.float32) * np.float32(0.05)

    # background: (n, size, size, 3) float32
    c = (np.arange(size) + 0.5) / size - 0.5  # pixel centres in [-0.5, 0.5]
    gx, gy = np.meshgrid(c, c, indexing="xy")  # (size, size)
    ramp = np.clip(gx * np.cos(grad_dir)[:, None, None] + gy * np.sin(grad_dir)[:, None, None] + 0.5, 0, 1)
    ramp *= (bg_kind == 1)[:, None, None]  # 0 for flat and noisy backgrounds
    img = (bg[:, None, None, :] + (bg2 - bg)[:, None, None, :] * ramp[..., None]).astype(np.float32)
    up = _bilinear_matrix(4, size)  # (size, 4): smooth upsampling of the 4x4 noise
    noise = np.einsum("yi,nijc,xj->nyxc", up, low, up, optimize=True) + pixel_noise
    img += noise * (bg_kind == 2)[:, None, None, None]

    # foreground coverage, one class at a time (all images of a class share one SDF)
    px = np.arange(size) + 0.5
    PX, PY = np.meshgrid(px, px, indexing="xy")  # (size, size) pixel centres
    cover = np.empty((n, size, size), dtype=np.float32)
    for ci, name in enumerate(SHAPE_CLASSES):
        idx = np.nonzero(labels == ci)[0]
        dx = PX[None] - cx[idx, None, None]  # (m, size, size)
        dy = PY[None] - cy[idx, None, None]
        cs, sn = np.cos(theta[idx])[:, None, None], np.sin(theta[idx])[:, None, None]
        s = half[idx, None, None]
        p = np.stack([(cs * dx + sn * dy) / s, (-sn * dx + cs * dy) / s], -1).astype(np.float32)  # shape frame
        d_pix = _shape_sdf(name, p) * s  # signed distance in pixels
        cover[idx] = np.clip(0.5 - d_pix, 0.0, 1.0)  # 1-pixel anti-aliasing ramp
    img = img * (1 - cover[..., None]) + fg[:, None, None, :] * cover[..., None]
    img = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)  # round to nearest
    return img, labels.astype(np.int64)


class Shapes(Dataset):
    """The built-in dataset: procedurally generated 32x32 shapes (see the module docstring).

    Behaves like ``torchvision.datasets.CIFAR10``: ``.data`` is a uint8 array (N, 32, 32, 3),
    ``.targets`` a list of ints, ``.classes`` the class names, and ``ds[i]`` returns
    ``(PIL image or transform(PIL image), label)``.

    Args:
        split: ``"train"`` or ``"test"`` (independent random streams).
        n: number of images; default 10 000 for train, 2 000 for test.
        seed: generation seed; the same ``(split, n, seed)`` always gives the same images.
        transform: optional callable applied to the PIL image.
        backgrounds: the background kinds drawn, among ``"flat"``, ``"gradient"``, ``"noisy"``
            (default: flat and gradient). An image whose drawn kind is left out gets a flat
            background; everything else about it (shape, colours, position) stays the same, so
            ``Shapes(backgrounds=BACKGROUNDS)`` draws noisy backgrounds too (see the module
            docstring for why they are off by default).

    Example:
        >>> ds = Shapes("test", n=100)
        >>> ds.data.shape, ds.classes[ds.targets[0]] in ds.classes
        ((100, 32, 32, 3), True)
    """

    def __init__(
        self,
        split: str = "train",
        n: int | None = None,
        seed: int = 0,
        transform: Callable | None = None,
        backgrounds: tuple[str, ...] = DEFAULT_BACKGROUNDS,
    ):
        if split not in _SPLIT_IDS:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        n = SHAPES_SPLIT_SIZES[split] if n is None else n
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        backgrounds = tuple(backgrounds) if isinstance(backgrounds, (tuple, list)) else (backgrounds,)
        bad = [b for b in backgrounds if b not in BACKGROUNDS]
        if bad or not backgrounds:
            raise ValueError(f"backgrounds must be a non-empty subset of {BACKGROUNDS}, got {backgrounds!r}")
        self.split, self.seed, self.transform = split, seed, transform
        self.backgrounds = tuple(b for b in BACKGROUNDS if b in backgrounds)
        data, targets = _make_shapes(split, n, int(seed), backgrounds=self.backgrounds)
        self.data = data  # (N, 32, 32, 3) uint8, shared with the in-process cache: do not modify
        self.targets = targets.tolist()
        self.classes = list(SHAPE_CLASSES)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.data[i])
        if self.transform is not None:
            img = self.transform(img)
        return img, self.targets[i]

    def __repr__(self) -> str:
        return f"Shapes(split={self.split!r}, n={len(self)}, seed={self.seed}, backgrounds={self.backgrounds})"
