"""The paper's evaluation on image folders: linear classification and semi-supervised fine-tuning.

What the official ``evaluate.py`` (facebookresearch/vicreg) does, and the numbers it reports
(paper Table 1: 73.2 % top-1 linear; Table 2: 1 % / 10 % semi-supervised)::

    vicreg-edu eval --protocol linear --data-dir /imagenet --checkpoint runs/x/checkpoint.pt
    vicreg-edu eval --protocol linear --data-dir /imagenet --weights resnet50.pth   # the official weights
    vicreg-edu eval --protocol semi --percent 10 --subset 10percent.txt --data-dir /imagenet --weights resnet50.pth
    torchrun --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2 --nproc_per_node=8 \\
        -m vicreg_edu eval --protocol linear ... --resume auto

- ``linear``: the backbone is frozen *and in eval mode* (BatchNorm uses its running statistics); a
  ``Linear(repr_dim, classes)`` (weights N(0, 0.01), bias 0) is trained with SGD, momentum 0.9,
  global batch 256, 100 epochs, cosine learning rate per epoch from ``lr_head`` 0.02, weight decay 1e-6.
- ``semi``: the whole network is fine-tuned (train mode) for 20 epochs, weight decay 0, on a
  subset of ``train/`` listed in a text file in the SimCLR format (one training image file name a
  line, e.g. ``n01440764_10026.JPEG``: ``imagenet_subsets/1percent.txt`` and ``10percent.txt`` of
  github.com/google-research/simclr, which the official code downloads; here the user supplies
  it). 1 %: ``lr_backbone`` 0.03, ``lr_head`` 0.08; 10 %: 0.01 and 0.1.
- Views: train ``RandomResizedCrop(224)`` + horizontal flip, val ``Resize(256)`` + ``CenterCrop(224)``,
  ImageNet mean/std. Top-1 and top-5 on all of ``val/`` after every epoch; the last and the best are reported.

Where this differs from the official code, and why:

- The randomness of each training view is keyed by ``(seed, epoch, image index)`` and the global
  batch order by ``(seed, epoch)`` (:class:`GlobalBatchSampler`): W processes on B/W images each
  take the same global batches, with the same views, as one process on B, whatever the number
  of DataLoader workers; for the linear protocol they train the same head (the tests check it).
- The last incomplete global batch of an epoch is dropped (fewer than ``batch_size`` images; a
  different handful each epoch), where the official sampler pads it with repeated images.
- ``val/`` is split between the processes and the hit counts are summed (the official code runs
  all of it on rank 0). The cosine rate is its closed form ``lr * (1 + cos(pi * epoch / epochs)) / 2``.
- A checkpoint is written atomically after every epoch (``out_dir/eval_checkpoint.pt``, head,
  fine-tuned backbone, optimizer, history); ``resume="auto"`` continues at the next epoch and ends
  where an uninterrupted run ends (bit for bit on CPU). BatchNorm in ``semi`` is per process, as in
  the official code, so fine-tuning does depend a little on the number of processes.

The public entry points: :func:`protocol_config` (official hyper-parameters, overridable),
:func:`run_protocol` (a backbone module in, accuracies out) and :func:`evaluate_protocol` (the
CLI's: a trainer checkpoint or a torchvision weights file in).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from . import distributed
from .checkpoint import atomic_save
from .data import load_dataset
from .errors import CheckpointError, CheckpointNotFoundError, ConfigError, DataError, DataNotFoundError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT_NAME = "eval_checkpoint.pt"
RESULTS_NAME = "eval_results.json"
SEMI_DEFAULTS = {1: dict(lr_backbone=0.03, lr_head=0.08), 10: dict(lr_backbone=0.01, lr_head=0.1)}
_NOT_TRAJECTORY = ("workers", "log_every", "max_epochs", "subset")  # may change on resume


@dataclass(frozen=True)
class EvalConfig:
    """Hyper-parameters of one evaluation; the defaults are the official linear protocol's.

    ``batch_size`` is global (split over the processes). ``percent``: 100 for ``linear``, 1 or 10
    for ``semi`` (with ``subset``, the list file). ``crop_size`` / ``resize_size``: the train crop
    and the val resize before the centre crop of ``crop_size``. ``max_epochs``: stop after this
    many epochs in this call (0: none), e.g. to fit a job's time limit; resume to go on.
    Built through :func:`protocol_config` for the semi-supervised defaults.

    Raises:
        ConfigError: a value out of range (the message names the field and what it accepts).
    """

    protocol: str = "linear"
    percent: int = 100
    subset: str = ""
    epochs: int = 100
    batch_size: int = 256
    lr_head: float = 0.02
    lr_backbone: float = 0.0
    weight_decay: float = 1e-6
    momentum: float = 0.9
    crop_size: int = 224
    resize_size: int = 256
    workers: int = 8
    seed: int = 0
    log_every: int = 100
    max_epochs: int = 0

    def __post_init__(self):
        if self.protocol not in ("linear", "semi"):
            raise ConfigError(f"protocol={self.protocol!r}: expected 'linear' or 'semi'")
        if self.protocol == "semi" and self.percent not in SEMI_DEFAULTS:
            raise ConfigError(
                f"percent={self.percent!r}: the semi-supervised protocol takes 1 or 10 (the SimCLR 1 % / 10 % subsets)"
            )
        if self.protocol == "semi" and not self.subset:
            raise ConfigError(
                f"the semi-supervised protocol needs subset= (--subset FILE), the SimCLR "
                f"{self.percent}percent.txt list: one training image file name a line"
            )
        if self.protocol == "linear" and (self.percent != 100 or self.subset):
            raise ConfigError(
                f"the linear protocol trains on all of train/ (percent=100, no subset), got "
                f"percent={self.percent!r} subset={self.subset!r}; use protocol='semi'"
            )
        for name in ("epochs", "batch_size", "crop_size", "resize_size", "log_every"):
            if (
                isinstance(getattr(self, name), bool)
                or not isinstance(getattr(self, name), int)
                or getattr(self, name) < 1
            ):
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected a positive integer")
        for name in ("workers", "seed", "max_epochs"):
            if (
                isinstance(getattr(self, name), bool)
                or not isinstance(getattr(self, name), int)
                or getattr(self, name) < 0
            ):
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected an integer >= 0")
        for name in ("lr_head", "lr_backbone", "weight_decay", "momentum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"{name}={value!r}: expected a finite number >= 0")

    @property
    def finetune(self) -> bool:
        """True when the backbone is trained too (``semi``)."""
        return self.protocol == "semi"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def protocol_config(protocol: str = "linear", percent: int | None = None, **overrides) -> EvalConfig:
    """The official hyper-parameters of a protocol, with ``overrides`` (``None`` values ignored).

    ``linear``: 100 epochs, batch 256, lr_head 0.02, weight decay 1e-6. ``semi`` (``percent`` 1 or
    10): 20 epochs, batch 256, weight decay 0, lr_backbone / lr_head 0.03 / 0.08 (1 %) or 0.01 / 0.1 (10 %).

    Example:
        >>> cfg = protocol_config("semi", 10, subset="10percent.txt")
        >>> cfg.epochs, cfg.lr_backbone, cfg.lr_head, cfg.weight_decay
        (20, 0.01, 0.1, 0.0)
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if protocol != "semi":
        return EvalConfig(protocol=protocol, **({"percent": percent} if percent is not None else {}), **overrides)
    if percent not in SEMI_DEFAULTS:
        raise ConfigError(
            f"percent={percent!r}: the semi-supervised protocol takes 1 or 10 (the SimCLR 1 % / 10 % subsets)"
        )
    return EvalConfig(
        **{**dict(protocol="semi", percent=percent, epochs=20, weight_decay=0.0, **SEMI_DEFAULTS[percent]), **overrides}
    )


# ----------------------------------------------------------------------------------------------
# data: views keyed by (seed, epoch, index), global batches, the SimCLR subset


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one training view, from ``(seed, epoch, index)`` only (64 bits, well mixed).

    >>> sample_seed(0, 1, 2) == sample_seed(0, 1, 2) != sample_seed(0, 2, 1)
    True
    """
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0])


class KeyedViews(Dataset):
    """``base[index]``'s image through ``transform``, its randomness seeded by ``(seed, epoch, index)``.

    Keys are ``(index, epoch)`` pairs (what :class:`GlobalBatchSampler` yields), so the view does
    not depend on which process or DataLoader worker makes it. The global RNG is left as it was.

    Shapes: ``dataset[(i, epoch)]`` -> ``(transform(image), label)``, e.g. ``((3, crop, crop) float, int)``.
    """

    def __init__(self, base: Dataset, transform: Callable, seed: int = 0):
        self.base, self.transform, self.seed = base, transform, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        image, label = self.base[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.transform(image), label


class GlobalBatchSampler(Sampler):
    """This process's ``(index, epoch)`` keys for one epoch, in whole global batches.

    The epoch's order is ``torch.randperm(n)`` seeded with ``seed + epoch``, cut to ``n // batch_size``
    global batches; process ``rank`` of ``world`` takes positions ``rank, rank + world, ...``, so
    its k-th batch of ``batch_size / world`` keys and the other processes' k-th batches make up
    exactly the k-th global batch of a one-process run. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, n: int, batch_size: int, rank: int = 0, world: int = 1, seed: int = 0):
        if batch_size % world:
            raise ConfigError(
                f"batch_size={batch_size} is not divisible by the number of processes {world}: "
                f"each takes batch_size / {world} images (try {max(batch_size // world, 1) * world})"
            )
        if n < batch_size:
            raise DataError(
                f"the training set ({n} images) is smaller than one batch (batch_size={batch_size}); "
                "lower the batch size"
            )
        self.n, self.batch_size, self.rank, self.world, self.seed, self.epoch = n, batch_size, rank, world, seed, 0
        self.start = 0  # global batches of this epoch to skip (a resume mid-epoch)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """The epoch to draw, and how many of its global batches are done already (skipped)."""
        self.epoch, self.start = epoch, start

    @property
    def steps(self) -> int:
        """Global batches per epoch."""
        return self.n // self.batch_size

    def __len__(self) -> int:
        return (self.steps - self.start) * (self.batch_size // self.world)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n, generator=g)[: self.steps * self.batch_size]
        mine = order[self.rank :: self.world].tolist()[self.start * (self.batch_size // self.world) :]
        return iter([(i, self.epoch) for i in mine])


def train_transform(cfg: EvalConfig) -> Callable:
    """PIL image -> ``(3, crop, crop)`` float: RandomResizedCrop + horizontal flip, ImageNet normalisation."""
    return T.Compose(
        [
            T.RandomResizedCrop(cfg.crop_size),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def val_transform(cfg: EvalConfig) -> Callable:
    """PIL image -> ``(3, crop, crop)`` float: Resize(resize_size) + CenterCrop(crop_size), ImageNet normalisation."""
    return T.Compose(
        [T.Resize(cfg.resize_size), T.CenterCrop(cfg.crop_size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


def read_subset(path: str | Path) -> list[str]:
    """The file names a SimCLR-format subset list holds (one a line; blank lines and ``#`` comments skipped).

    Raises:
        DataNotFoundError: no file at ``path``. DataError: the file names no image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"no subset file at {path}; expected a text file with one training image file name "
            "a line, as SimCLR's imagenet_subsets/1percent.txt (e.g. n01440764_10026.JPEG)"
        )
    names = [line.strip() for line in path.read_text().splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise DataError(f"the subset file {path} names no image; expected one training image file name a line")
    return names


def apply_subset(dataset, names: list[str], source: str | Path = "the subset file") -> None:
    """Keep only the images of an ImageFolder whose file name is in ``names`` (in the folder's order).

    Raises:
        DataError: a name that is no image of the folder, or that two class folders share.
    """
    wanted, found = set(names), {}
    keep = []
    for path, label in dataset.samples:
        base = os.path.basename(path)
        if base in wanted:
            keep.append((path, label))
            found[base] = found.get(base, 0) + 1
    missing = [n for n in dict.fromkeys(names) if n not in found]
    if missing:
        raise DataError(
            f"{source} names {len(missing)} image(s) that are not in {dataset.root} "
            f"(first: {', '.join(missing[:3])}); expected file names of training images, one a line"
        )
    shared = [n for n, count in found.items() if count > 1]
    if shared:
        raise DataError(
            f"{source}: {shared[0]} is in {found[shared[0]]} class folders of {dataset.root}; "
            "subset file names must be unique, as ImageNet's are"
        )
    dataset.samples = dataset.imgs = keep
    dataset.targets = [label for _, label in keep]


def load_folders(data_dir: str | Path, cfg: EvalConfig):
    """``(train, val)`` ImageFolders of ``data_dir`` (train untransformed, its subset applied; val with
    :func:`val_transform`). Raises DataNotFoundError / DataError (missing folders, other classes in val/)."""
    train = load_dataset("imagefolder", data_dir, "train")
    val = load_dataset("imagefolder", data_dir, "val", transform=val_transform(cfg))
    if getattr(train, "classes", None) != getattr(val, "classes", None):
        raise DataError(
            f"{data_dir}: val/ has {len(val.classes)} classes and train/ {len(train.classes)} "
            "(or other names); expected the same class folders in both"
        )
    if cfg.subset:
        apply_subset(train, read_subset(cfg.subset), cfg.subset)
    return train, val


def make_loaders(train, val, cfg: EvalConfig, rank: int, world: int, pin: bool):
    """``(train loader of (B/W, 3, crop, crop) batches, val loader of this process's share of val/)``."""
    sampler = GlobalBatchSampler(len(train), cfg.batch_size, rank, world, cfg.seed)
    common = dict(batch_size=cfg.batch_size // world, num_workers=cfg.workers, pin_memory=pin)
    train_loader = DataLoader(
        KeyedViews(train, train_transform(cfg), cfg.seed), sampler=sampler, persistent_workers=cfg.workers > 0, **common
    )
    val_loader = DataLoader(Subset(val, range(rank, len(val), world)), shuffle=False, **common)
    return train_loader, val_loader


# ----------------------------------------------------------------------------------------------
# model, optimiser, one epoch, top-k


class Classifier(nn.Module):
    """Backbone + linear head. ``finetune=False``: the backbone runs without gradients.

    Shapes: images ``(B, 3, H, W)`` -> logits ``(B, num_classes)``.
    """

    def __init__(self, backbone: nn.Module, repr_dim: int, num_classes: int, finetune: bool, seed: int = 0):
        super().__init__()
        self.backbone, self.finetune = backbone, finetune
        self.head = nn.Linear(repr_dim, num_classes)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # the official initialisation: N(0, 0.01) weights, zero bias
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=g) * 0.01)
            self.head.bias.zero_()
        backbone.requires_grad_(finetune)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            y = self.backbone(x)  # (B, repr_dim)
        return self.head(y)


def make_optimizer(model: Classifier, cfg: EvalConfig) -> torch.optim.SGD:
    """SGD, momentum 0.9: group 0 the head (``lr_head``), group 1 the backbone when fine-tuning (``lr_backbone``)."""
    groups = [dict(params=list(model.head.parameters()), lr=cfg.lr_head, base_lr=cfg.lr_head)]
    if cfg.finetune:
        groups.append(dict(params=list(model.backbone.parameters()), lr=cfg.lr_backbone, base_lr=cfg.lr_backbone))
    return torch.optim.SGD(groups, lr=cfg.lr_head, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def set_epoch_lr(optimizer: torch.optim.Optimizer, epoch: int, epochs: int) -> None:
    """Cosine per epoch (``CosineAnnealingLR(T_max=epochs)`` in closed form): ``base * (1 + cos(pi e / E)) / 2``."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


def train_one_epoch(
    net: nn.Module,
    loader: DataLoader,
    optimizer,
    device: torch.device,
    cfg: EvalConfig,
    epoch: int,
    log: Callable[[str], None],
    signals: distributed.StopSignals | None = None,
    start: int = 0,
    loss_sum: float = 0.0,
) -> tuple[float, int]:
    """One epoch of cross-entropy steps from global batch ``start`` on (``loss_sum``: the summed losses of
    the batches before it, over all processes).

    Returns ``(summed loss over all processes' batches so far, global batches done)``: all of the
    epoch's, or fewer when a stop signal came (``signals.agreed`` is then set; every process stops
    at the same step).
    """
    net.train(cfg.finetune)  # linear: the frozen backbone's BatchNorm keeps its running statistics
    loader.sampler.set_epoch(epoch, start)
    total = torch.zeros((), dtype=torch.float64, device=device)
    step = start
    for x, y in loader:
        loss = F.cross_entropy(net(x.to(device, non_blocking=True)), y.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        if step % cfg.log_every == 0 and distributed.is_main_process():
            log(
                f"epoch {epoch + 1}/{cfg.epochs} step {step + 1}/{loader.sampler.steps} loss {loss.item():.4f} (rank 0)"
            )
        step += 1
        if signals is not None and signals.poll():
            break
    if distributed.is_distributed():
        torch.distributed.all_reduce(total)
    return loss_sum + total.item(), step


@torch.no_grad()
def topk_accuracy(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float, int]:
    """``(top-1, top-5 in [0, 1], images)`` over every process's share of the loader (hit counts summed).

    Runs the unwrapped model (not DDP's forward: the processes may hold different numbers of batches).
    """
    model.eval()
    counts = torch.zeros(3, dtype=torch.long, device=device)  # top-1 hits, top-5 hits, images
    for x, y in loader:
        logits = model(x.to(device, non_blocking=True))  # (b, classes)
        hits = logits.topk(min(5, logits.shape[1]), dim=1).indices.eq(y.to(device)[:, None])  # (b, k)
        counts += torch.stack([hits[:, 0].sum(), hits.any(1).sum(), torch.tensor(len(y), device=device)])
    if distributed.is_distributed():
        torch.distributed.all_reduce(counts)
    return counts[0].item() / max(counts[2].item(), 1), counts[1].item() / max(counts[2].item(), 1), counts[2].item()


# ----------------------------------------------------------------------------------------------
# checkpoints


def fingerprint(module: nn.Module) -> float:
    """A float64 sum of every tensor of ``module``'s state (on the CPU): tells two input backbones apart."""
    return float(sum(v.detach().cpu().double().sum() for v in module.state_dict().values()))


def eval_state(
    model: Classifier,
    optimizer,
    epoch: int,
    history: list[dict],
    cfg: EvalConfig,
    meta: dict,
    step: int = 0,
    loss_sum: float = 0.0,
) -> dict:
    """What ``eval_checkpoint.pt`` holds after ``epoch`` finished epochs (and ``step`` global batches of
    the next one, with their summed loss, when a stop signal interrupted it)."""
    return dict(
        format="vicreg-edu-eval",
        epoch=epoch,
        step=step,
        loss_sum=loss_sum,
        head=model.head.state_dict(),
        backbone=model.backbone.state_dict() if cfg.finetune else None,
        optimizer=optimizer.state_dict(),
        history=history,
        eval_config=cfg.to_dict(),
        **meta,
    )


def find_resume(resume: str, out_dir: Path) -> Path | None:
    """``""`` -> None; ``"auto"`` -> ``out_dir/eval_checkpoint.pt`` if it exists; else a path that must exist."""
    if not resume:
        return None
    path = out_dir / CHECKPOINT_NAME if resume == "auto" else Path(resume)
    if path.is_file():
        return path
    if resume == "auto":
        return None
    raise CheckpointNotFoundError(f"resume={resume!r}: no evaluation checkpoint at {path}")


def restore(
    path: Path, model: Classifier, optimizer, cfg: EvalConfig, meta: dict
) -> tuple[int, list[dict], int, float]:
    """Load an evaluation checkpoint into ``model`` / ``optimizer``; return ``(finished epochs, history,
    global batches done in the next epoch, their summed loss)``.

    Raises:
        CheckpointError: unreadable, or written with other settings or another input (listed).
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to replace
        raise CheckpointError(f"{path} is not a readable evaluation checkpoint ({str(e).splitlines()[0][:160]})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != "vicreg-edu-eval":
        raise CheckpointError(f"{path} is not an evaluation checkpoint (the file `vicreg-edu eval --protocol` writes)")
    saved, now = {**ckpt["eval_config"], **{k: ckpt.get(k) for k in meta}}, {**cfg.to_dict(), **meta}
    diff = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {v!r}"
        for k, v in now.items()
        if k not in _NOT_TRAJECTORY and saved.get(k) != v
    ]
    if diff:
        raise CheckpointError(
            f"cannot resume from {path}: {', '.join(diff)}. Use the original settings and input, or another --out-dir"
        )
    model.head.load_state_dict(ckpt["head"])
    if cfg.finetune:
        model.backbone.load_state_dict(ckpt["backbone"])
    optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt["epoch"], ckpt["history"], ckpt.get("step", 0), ckpt.get("loss_sum", 0.0)


# ----------------------------------------------------------------------------------------------
# the protocol


def _log(text: str) -> None:
    if distributed.is_main_process():
        print(text, flush=True)


def _setup(backbone: nn.Module, repr_dim: int, data_dir, cfg: EvalConfig, out_dir: Path, resume: str, device):
    """Data, model, optimiser and the resumed state: ``(run dict, start epoch, history)``."""
    dev = distributed.setup(device)
    rank, world = distributed.get_rank(), distributed.get_world_size()
    train, val = load_folders(data_dir, cfg)
    meta = dict(fingerprint=fingerprint(backbone), train_size=len(train), num_classes=len(train.classes))
    model = Classifier(backbone, repr_dim, len(train.classes), cfg.finetune, cfg.seed).to(dev)
    optimizer = make_optimizer(model, cfg)
    ckpt = find_resume(resume, out_dir)
    start, history, step, loss_sum = restore(ckpt, model, optimizer, cfg, meta) if ckpt else (0, [], 0, 0.0)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    net = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None) if world > 1 else model
    train_loader, val_loader = make_loaders(train, val, cfg, rank, world, pin=dev.type == "cuda")
    what = f"{cfg.protocol}" + (f" {cfg.percent} %" if cfg.finetune else "")
    _log(
        f"eval {what}: {len(train)} train images ({len(train_loader)} steps of {cfg.batch_size} per epoch), "
        f"{len(val)} val, {len(train.classes)} classes, world={world}, device={dev}"
        + (f"; resumed from {ckpt} at epoch {start + 1} step {step}" if ckpt else "")
    )
    run = dict(
        dev=dev,
        model=model,
        net=net,
        optimizer=optimizer,
        train=train_loader,
        val=val_loader,
        meta=meta,
        val_size=len(val),
        step=step,
        loss_sum=loss_sum,
    )
    return run, start, history


def _result(history: list[dict], cfg: EvalConfig, run: dict, out_dir: Path) -> dict:
    last = history[-1] if history else {}
    return dict(
        protocol=cfg.protocol,
        percent=cfg.percent,
        epoch=len(history),
        epochs=cfg.epochs,
        finished=len(history) == cfg.epochs,
        top1=last.get("top1"),
        top5=last.get("top5"),
        best_top1=max((h["top1"] for h in history), default=None),
        best_top5=max((h["top5"] for h in history), default=None),
        train_size=run["meta"]["train_size"],
        val_size=run["val_size"],
        num_classes=run["meta"]["num_classes"],
        checkpoint=str(out_dir / CHECKPOINT_NAME),
        history=history,
    )


def _save(run: dict, epoch: int, history: list[dict], cfg: EvalConfig, out_dir: Path, step=0, loss_sum=0.0) -> None:
    """Rank 0 writes ``eval_checkpoint.pt`` atomically; every process waits for the write."""
    if distributed.is_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_save(
            eval_state(run["model"], run["optimizer"], epoch, history, cfg, run["meta"], step, loss_sum),
            out_dir / CHECKPOINT_NAME,
        )
    if distributed.is_distributed():
        torch.distributed.barrier()


def _stop(signals, run, epoch: int, step: int, loss_sum: float, history, cfg, out_dir: Path, saved=False):
    """After an agreed stop signal: the checkpoint at ``epoch`` + ``step`` (unless ``saved``), one line
    (rank 0), the signal's previous handler, then :class:`~vicreg_edu.distributed.Preempted`."""
    if not saved:
        _save(run, epoch, history, cfg, out_dir, step, loss_sum)
    name = signal.Signals(signals.agreed).name
    path = out_dir / CHECKPOINT_NAME
    where = f"at epoch {epoch + 1} step {step}/{run['train'].sampler.steps}" if step else f"after epoch {epoch}"
    message = f"stopped by {name} {where}; evaluation checkpoint written to {path}; resume with --resume auto"
    if distributed.is_main_process():
        print(f"vicreg-edu: {message}", file=sys.stderr, flush=True)
    signals.forward()
    raise distributed.Preempted(signals.agreed, step, message)


def run_protocol(
    backbone: nn.Module,
    repr_dim: int,
    data_dir: str | Path,
    cfg: EvalConfig | None = None,
    out_dir: str | Path = "runs/eval",
    resume: str = "",
    device: str = "auto",
) -> dict:
    """Train and evaluate a linear head (``linear``) or the whole network (``semi``) on an ImageFolder.

    Args:
        backbone: maps images ``(B, 3, H, W)`` to representations ``(B, repr_dim)``; fine-tuned in
            place for ``semi``, left untouched (eval mode) for ``linear``.
        data_dir: folder with ``train/<class>/*`` and ``val/<class>/*``.
        cfg: :class:`EvalConfig` (default: the official linear protocol).
        out_dir: where ``eval_checkpoint.pt`` (every epoch) and ``eval_results.json`` (at the end) go.
        resume: ``""``, ``"auto"`` (``out_dir``'s checkpoint if there) or a checkpoint path.
        device: ``auto`` / ``cpu`` / ``cuda``; under ``torchrun`` every process takes its share.

    Returns:
        dict: ``top1``, ``top5`` (last epoch, in [0, 1]), ``best_top1``, ``best_top5``, ``epoch``,
        ``epochs``, ``finished``, ``train_size``, ``val_size``, ``num_classes``, ``checkpoint``, ``history``.
    """
    cfg, out_dir = cfg or EvalConfig(), Path(out_dir)
    with distributed.StopSignals() as signals:  # from here on a stop signal only sets a flag
        run, start, history = _setup(backbone, repr_dim, data_dir, cfg, out_dir, resume, device)
        stop = cfg.epochs if not cfg.max_epochs else min(cfg.epochs, start + cfg.max_epochs)
        for epoch in range(start, stop):
            t0 = time.time()
            set_epoch_lr(run["optimizer"], epoch, cfg.epochs)
            begin, begin_loss = (run["step"], run["loss_sum"]) if epoch == start else (0, 0.0)
            loss_sum, step = train_one_epoch(
                run["net"], run["train"], run["optimizer"], run["dev"], cfg, epoch, _log, signals, begin, begin_loss
            )
            steps = run["train"].sampler.steps
            if step < steps:  # a stop signal: checkpoint at the step reached, then stop
                _stop(signals, run, epoch, step, loss_sum, history, cfg, out_dir)
            loss = loss_sum / (steps * distributed.get_world_size())
            top1, top5, _ = topk_accuracy(run["model"], run["val"], run["dev"])
            lrs = [g["lr"] for g in run["optimizer"].param_groups] + [0.0]  # head, backbone (0: frozen)
            record = dict(epoch=epoch + 1, loss=loss, top1=top1, top5=top5, lr_head=lrs[0], lr_backbone=lrs[1])
            history.append({**record, "seconds": time.time() - t0})
            _save(run, epoch + 1, history, cfg, out_dir)
            _log(
                f"epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}  top-1 {top1 * 100:.2f}%  top-5 {top5 * 100:.2f}%  "
                f"({history[-1]['seconds']:.1f} s)"
            )
            if signals.sync():  # a signal during the validation: the epoch's checkpoint is written
                _stop(signals, run, epoch + 1, 0, 0.0, history, cfg, out_dir, saved=True)
    result = _result(history, cfg, run, out_dir)
    if result["finished"] and distributed.is_main_process():
        tmp = out_dir / (RESULTS_NAME + ".tmp")
        tmp.write_text(json.dumps({k: v for k, v in result.items()}, indent=2))
        os.replace(tmp, out_dir / RESULTS_NAME)
    run["model"].eval()
    return result


def load_backbone(
    checkpoint: str | Path | None = None, weights: str | Path | None = None, backbone: str = "resnet50"
) -> tuple[nn.Module, int, object]:
    """The backbone to evaluate: ``(module, repr_dim, training Config or None)``.

    Either ``checkpoint`` (a ``vicreg-edu train`` checkpoint) or ``weights`` (a torchvision-layout
    state dict such as the official ``resnet50.pth``, for the architecture ``backbone``).
    """
    if (checkpoint is None) == (weights is None):
        raise ConfigError(
            "give either a checkpoint (--checkpoint, written by `vicreg-edu train`) or weights "
            "(--weights, a torchvision-layout ResNet state dict such as the official resnet50.pth)"
        )
    if checkpoint is not None:
        from .evaluate import load_checkpoint_model

        model, train_cfg = load_checkpoint_model(checkpoint, "cpu")
        return model.backbone, model.repr_dim, train_cfg
    from .export import load_torchvision_backbone

    net, dim = load_torchvision_backbone(weights, backbone)
    return net, dim, None


def evaluate_protocol(
    cfg: EvalConfig,
    checkpoint=None,
    weights=None,
    backbone: str = "resnet50",
    data_dir=None,
    out_dir=None,
    resume: str = "",
    device: str = "auto",
) -> dict:
    """:func:`run_protocol` on a trainer checkpoint or a weights file (what ``vicreg-edu eval --protocol`` runs).

    ``data_dir`` defaults to the training run's image folder; ``out_dir`` to
    ``<folder of the input>/eval_<protocol>[<percent>]``.
    """
    net, dim, train_cfg = load_backbone(checkpoint, weights, backbone)
    if data_dir is None:
        if train_cfg is None or train_cfg.dataset not in ("imagefolder", "imagenet") or not train_cfg.data_dir:
            raise ConfigError("pass --data-dir ROOT: the folder with train/<class>/ and val/<class>/ images")
        data_dir = train_cfg.data_dir
    if out_dir is None:
        out_dir = Path(checkpoint or weights).parent / f"eval_{cfg.protocol}{cfg.percent if cfg.finetune else ''}"
    return run_protocol(net, dim, data_dir, cfg, out_dir, resume, device)


def format_result(result: dict) -> str:
    """One line for the terminal: last and best top-1 / top-5 (or where an interrupted run stopped)."""
    what = result["protocol"] + (f" {result['percent']} %" if result["protocol"] == "semi" else "")
    if not result["history"]:
        return f"eval {what}: no epoch run"
    line = (
        f"{what} evaluation, epoch {result['epoch']}/{result['epochs']}: top-1 {result['top1'] * 100:.2f}%  "
        f"top-5 {result['top5'] * 100:.2f}%  (best {result['best_top1'] * 100:.2f}% / "
        f"{result['best_top5'] * 100:.2f}%; {result['train_size']} train, {result['val_size']} val images)"
    )
    if not result["finished"]:
        line += f"; stopped early, continue with --resume auto (checkpoint {result['checkpoint']})"
    return line
