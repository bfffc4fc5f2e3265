"""Backbones, the expander and the VICReg module.

VICReg (Bardes, Ponce & LeCun, ICLR 2022, arXiv 2105.04906, Section 3 and Fig. 1) runs each view
through an *encoder* f (the backbone) giving a representation y = f(x), then through an *expander*
h (an MLP) giving the embedding z = h(y). The loss sees only the embeddings; the representations
are what we evaluate (k-NN, linear probe) and keep after training.

    x (B, 3, H, W) --backbone--> y (B, repr_dim) --expander--> z (B, embed_dim)

Backbones (``build_backbone(name)``):

- ``"small_cnn"``       four conv blocks with max-pooling, 128-d output; trains in minutes on a laptop CPU at 32x32.
- ``"resnet18_cifar"``  ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool), 512-d.
- ``"resnet18"``        torchvision ResNet-18, ImageNet stem, 512-d.
- ``"resnet50"``        torchvision ResNet-50, 2048-d (the paper's backbone).

The torchvision ResNets are built with ``weights=None`` (nothing is downloaded) and
``zero_init_residual=True`` as in the official ``main_vicreg.py``; their ``fc`` is replaced by
``nn.Identity`` so they output the pooled features.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torchvision

from . import distributed
from .config import BACKBONES, parse_expander_spec


# -----------------------------------------------------------------------------
# Backbones


class SmallCNN(nn.Module):
    """A small convolutional encoder for 32x32 images, fast enough to train on 2 CPU cores.

    Four blocks of Conv3x3-BatchNorm-ReLU; the first three end with a 2x2 max-pool
    (32 -> 16 -> 8 -> 4), then global average pooling. About 0.1 M parameters and 4 M
    multiply-adds per 32x32 image. Max-pooling rather than strided convolutions: on the built-in
    Shapes data it learns several times faster for the same cost (a supervised check reached
    39% vs 17% train accuracy after 94 steps), because shapes are made of sharp local edges.

    Args:
        widths: channels of the blocks; the last one is ``out_dim``.

    Shapes: x (B, 3, H, W) -> (B, out_dim). Works for any H, W >= 8.

    Example:
        >>> net = SmallCNN()
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 128])
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        if len(widths) < 1 or any(int(w) <= 0 for w in widths):
            raise ValueError(f"widths must be positive integers, got {widths!r}")
        layers, c_in = [], 3
        for i, c_out in enumerate(widths):
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            if i < min(3, len(widths) - 1):  # pool after the first three blocks (never after the last)
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = int(widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)  # (B, out_dim)


def _torchvision_resnet(name: str) -> tuple[nn.Module, int]:
    """torchvision ResNet without weights, zero-init residual BN, fc removed."""
    net = getattr(torchvision.models, name)(weights=None, zero_init_residual=True)
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def resnet18_cifar() -> tuple[nn.Module, int]:
    """ResNet-18 with the CIFAR stem: conv1 is 3x3 stride 1 (not 7x7 stride 2) and no max-pool.

    The usual change for 32x32 inputs (as in solo-learn and the SimCLR CIFAR experiments): with
    the ImageNet stem a 32x32 image is only 1x1 after layer4.

    Returns:
        (module, 512); module maps (B, 3, H, W) -> (B, 512).

    Example:
        >>> net, dim = resnet18_cifar()
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 512])
    """
    net, dim = _torchvision_resnet("resnet18")
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()
    return net, dim


def build_backbone(name: str) -> tuple[nn.Module, int]:
    """Build a backbone by name; returns ``(module, repr_dim)``.

    Args:
        name: one of ``"small_cnn"``, ``"resnet18_cifar"``, ``"resnet18"``, ``"resnet50"``.

    Returns:
        ``(module, dim)`` where ``module`` maps images (B, 3, H, W) to representations (B, dim).
        Nothing is downloaded: the torchvision ResNets start from random weights.

    Raises:
        ValueError: unknown name.

    Example:
        >>> net, dim = build_backbone("resnet50")
        >>> dim
        2048
    """
    if not isinstance(name, str):
        raise TypeError(f"backbone name must be a str, got {type(name).__name__}")
    if name == "small_cnn":
        net = SmallCNN()
        return net, net.out_dim
    if name == "resnet18_cifar":
        return resnet18_cifar()
    if name in ("resnet18", "resnet50"):
        return _torchvision_resnet(name)
    raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}")


# -----------------------------------------------------------------------------
# Expander


def build_expander(in_dim: int, spec: str) -> nn.Sequential:
    """The VICReg expander (paper Section 4.2; official ``Projector`` in ``main_vicreg.py``).

    For widths ``[d1, ..., dk]`` it builds ``in_dim -> d1 -> ... -> dk`` with a
    Linear-BatchNorm1d-ReLU block for every layer but the last, and a plain ``Linear(bias=False)``
    as the last layer, exactly as the official code.

    Args:
        in_dim: representation width (the backbone's output).
        spec: expander spec string, see :func:`parse_expander_spec`.

    Shapes: (B, in_dim) -> (B, dk).

    Example:
        >>> build_expander(512, "1024-256")(torch.zeros(4, 512)).shape
        torch.Size([4, 256])
    """
    if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 1:
        raise ValueError(f"in_dim must be a positive int, got {in_dim!r}")
    f = [in_dim] + parse_expander_spec(spec)
    layers: list[nn.Module] = []
    for i in range(len(f) - 2):
        layers += [nn.Linear(f[i], f[i + 1]), nn.BatchNorm1d(f[i + 1]), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(f[-2], f[-1], bias=False))
    return nn.Sequential(*layers)


# -----------------------------------------------------------------------------
# VICReg


class VICReg(nn.Module):
    """Backbone + expander; returns the representation and the embedding of a batch of views.

    Args:
        backbone: a name for :func:`build_backbone`, or an ``nn.Module`` with an ``out_dim``
            attribute (its output width).
        expander: spec string, e.g. ``"8192-8192-8192"`` (official) or ``"512-512-512"`` (demo).

    Attributes:
        backbone, expander: the two sub-modules; repr_dim, embed_dim: their output widths.

    Shapes: forward(x (B, 3, H, W)) -> (y (B, repr_dim), z (B, embed_dim)).

    Example:
        >>> model = VICReg("small_cnn", "512-512-512")
        >>> y, z = model(torch.zeros(4, 3, 32, 32))
        >>> y.shape, z.shape
        (torch.Size([4, 128]), torch.Size([4, 512]))
    """

    def __init__(self, backbone: str | nn.Module = "small_cnn", expander: str = "512-512-512"):
        super().__init__()
        if isinstance(backbone, str):
            self.backbone, self.repr_dim = build_backbone(backbone)
        elif isinstance(backbone, nn.Module):
            if not isinstance(getattr(backbone, "out_dim", None), int):
                raise ValueError("a backbone module must have an int attribute out_dim (its output width)")
            self.backbone, self.repr_dim = backbone, backbone.out_dim
        else:
            raise TypeError(f"backbone must be a name or an nn.Module, got {type(backbone).__name__}")
        self.expander = build_expander(self.repr_dim, expander)
        self.embed_dim = parse_expander_spec(expander)[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.backbone(x)  # (B, repr_dim)
        z = self.expander(y)  # (B, embed_dim)
        return y, z


def build_model(cfg) -> VICReg:
    """The VICReg model a :class:`~vicreg_edu.config.Config` names (``cfg.backbone``, ``cfg.expander``).

    Random initialisation, nothing downloaded.

    Example:
        >>> from vicreg_edu.config import Config
        >>> build_model(Config(backbone="small_cnn", expander="64-32")).embed_dim
        32
    """
    return VICReg(backbone=cfg.backbone, expander=cfg.expander)


class VICRegWithProbe(nn.Module):
    """The VICReg model plus the online linear probe, wrapped together by DDP during training.

    The probe sees *detached* representations of view a, so its cross-entropy never reaches the
    encoder: it only reports, during training, how linearly separable the representations are.
    Its input is standardised per dimension over the global batch (:func:`standardise`: a BatchNorm
    without affine parameters or running statistics, as MAE's linear probe puts a BatchNorm before
    its classifier; He et al., CVPR 2022): raw representations have per-dimension scales far from 1,
    which a linear layer trained with a small lr fits slowly, so the probe would under-read what the
    encoder holds.

    Shapes: forward(x_a, x_b (B, 3, H, W)) -> (z_a, z_b (B, embed_dim), probe logits (B, num_classes)).

    Example:
        >>> net = VICRegWithProbe(VICReg("small_cnn", "64-32"), num_classes=10)
        >>> [t.shape[1] for t in net(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32))]
        [32, 32, 10]
    """

    def __init__(self, model: VICReg, num_classes: int):
        super().__init__()
        self.model = model
        self.probe = nn.Linear(model.repr_dim, num_classes)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor):
        r_a, z_a = self.model(x_a)  # (B, repr_dim), (B, embed_dim)
        _, z_b = self.model(x_b)
        return z_a, z_b, self.probe(standardise(r_a.detach()))


def standardise(r: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each column of ``r`` (B, D) at mean 0 and std 1 over the global batch: the statistics are
    summed over all processes when a process group is up, so W processes on B/W rows each give
    what one process gives on B rows. Computed in at least float32; returns ``r``'s dtype."""
    x = r.to(torch.promote_types(r.dtype, torch.float32))
    stats = torch.cat([x.sum(0), (x * x).sum(0), x.new_full((1,), x.shape[0])])  # (2D + 1,)
    if distributed.is_distributed():
        torch.distributed.all_reduce(stats)
    d, n = x.shape[1], stats[-1]
    mean = stats[:d] / n
    var = (stats[d : 2 * d] / n - mean * mean).clamp_min(0)
    return ((x - mean) / torch.sqrt(var + eps)).to(r.dtype)


RANDOM_TWIN_SEED_OFFSET = 12345
"""A randomly initialised baseline of a run with seed ``s`` is built under seed ``s + 12345``."""


def random_twin(cfg) -> VICReg:
    """A randomly initialised :class:`VICReg` of ``cfg``'s architecture: the baseline every
    evaluation prints next to the trained encoder (seeded ``cfg.seed + 12345``; global RNG untouched).

    Example:
        >>> from vicreg_edu.config import Config
        >>> a, b = random_twin(Config(expander="64")), random_twin(Config(expander="64"))
        >>> torch.equal(a.expander[0].weight, b.expander[0].weight)
        True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + RANDOM_TWIN_SEED_OFFSET)
        return build_model(cfg)


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """``with evaluating(model):`` runs the block in ``eval()`` mode, then restores the model's mode.

    Example:
        >>> net = nn.BatchNorm1d(4)
        >>> with evaluating(net):
        ...     net.training
        False
        >>> net.training
        True
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
