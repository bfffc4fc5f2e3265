"""Evaluate frozen representations: weighted k-NN and a linear probe.

Self-supervised encoders are judged by how well a *simple* classifier does on top of their frozen
features (the backbone output, not the expander output: paper Sec. 4 and Table 1):

- :func:`knn_accuracy`: weighted k-NN with cosine similarity, k=20, temperature 0.07 (Wu et al.
  2018, as used by DINO and the VICReg paper's Table 11);
- :func:`linear_probe`: a linear classifier trained on precomputed frozen features (the official
  ``evaluate.py`` also augments the images; precomputing features is the cheap variant used for
  the built-in data and CIFAR here, stated wherever a number is reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .augment import eval_transform
from .views import make_augment_config
from .config import IN_MEMORY_DATASETS
from .data import eval_splits, first_items, in_memory_uint8, load_dataset
from .models import build_model, evaluating, random_twin


def normalize_uint8(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` -> float ``(N, 3, H, W)``, normalised per channel (``mean``/``std`` in [0, 1] units)."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def _device_and_dtype(encoder, device):
    params = list(getattr(encoder, "parameters", lambda: [])())
    if device is None:
        device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32
    return torch.device(device), dtype


@torch.no_grad()
def extract_features(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    mean,
    std,
    batch_size: int = 512,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Features of uint8 images, without gradients: ``(N, 3, H, W)`` uint8 -> ``(N, D)`` float32 on CPU.

    Args:
        encoder: maps a normalised batch ``(B, 3, H, W)`` to features ``(B, D)`` (e.g. ``model.backbone``).
            Put it in ``eval()`` mode first (``with models.evaluating(model):``).
        images: uint8 tensor ``(N, 3, H, W)``, normalised here batch by batch with ``mean``/``std``
            (per channel, in [0, 1] units).
        device: where to run the encoder (default: the encoder's parameters' device, else CPU).

    Images on disk (a dataset of ``(tensor, label)``): :func:`extract_dataset_features`.

    Example:
        >>> enc = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 8))
        >>> extract_features(enc, torch.zeros(10, 3, 4, 4, dtype=torch.uint8), (0.5,) * 3, (0.5,) * 3).shape
        torch.Size([10, 8])
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        what = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(
            f"expected a uint8 image tensor (N, 3, H, W), got {what} "
            "(a dataset of (image, label): use extract_dataset_features)"
        )
    device, dtype = _device_and_dtype(encoder, device)
    feats = []
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        for i in range(0, len(images), batch_size):
            x = normalize_uint8(images[i : i + batch_size].to(device, non_blocking=True), mean, std).to(dtype)
            feats.append(encoder(x).float().cpu())
    return torch.cat(feats)


@torch.no_grad()
def extract_dataset_features(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    dataset,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of a dataset of ``(normalised image (3, H, W), label)``: ``((N, D), (N,))`` on CPU."""
    device, dtype = _device_and_dtype(encoder, device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    feats, labels = [], []
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        for x, y in loader:
            feats.append(encoder(x.to(device, dtype, non_blocking=True)).float().cpu())
            labels.append(torch.as_tensor(y))
    return torch.cat(feats), torch.cat(labels)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> float:
    """Weighted k-NN top-1 accuracy (in [0, 1]) with cosine similarity.

    Each test point takes its ``k`` most similar training points (cosine similarity ``s``) and
    every neighbour votes for its label with weight ``exp(s / temperature)``.

    Args:
        train_features: ``(N, D)``; train_labels: ``(N,)`` int; test_features: ``(M, D)``; test_labels: ``(M,)``.

    Example:
        >>> f = torch.eye(4); y = torch.tensor([0, 1, 2, 3])
        >>> knn_accuracy(f, y, f, y, k=1)
        1.0
    """
    if train_features.dim() != 2 or test_features.dim() != 2 or train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"expected (N, D) train and (M, D) test features with the same D, got "
            f"{tuple(train_features.shape)} and {tuple(test_features.shape)}"
        )
    if len(train_features) != len(train_labels) or len(test_features) != len(test_labels):
        raise ValueError("features and labels must have the same length")
    if not (torch.isfinite(train_features).all() and torch.isfinite(test_features).all()):
        raise ValueError("features contain NaN or Inf: the encoder diverged")
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, len(train_features))
    train = F.normalize(train_features.float(), dim=1)
    train_labels = train_labels.long()
    correct = 0
    for i in range(0, len(test_features), chunk_size):
        q = F.normalize(test_features[i : i + chunk_size].float(), dim=1)
        sim, idx = (q @ train.T).topk(k, dim=1)  # (m, k)
        votes = torch.zeros(len(q), num_classes).scatter_add_(1, train_labels[idx], (sim / temperature).exp())
        correct += (votes.argmax(1) == test_labels[i : i + chunk_size].long()).sum().item()
    return correct / len(test_features)


def _all_gather_rows(x: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """Every process's ``x`` (rows may differ in number by a few; padded for the collective), on the CPU."""
    n = torch.tensor([len(x)], device=device)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    rows = max(int(s) for s in sizes)
    padded = torch.zeros((rows, *x.shape[1:]), dtype=x.dtype, device=device)
    padded[: len(x)] = x.to(device)
    out = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(out, padded)
    return [o[: int(s)].cpu() for o, s in zip(out, sizes)]


def knn_accuracy_sharded(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
    device: torch.device | str = "cpu",
) -> float:
    """:func:`knn_accuracy` with the bank split over the processes of a process group (same result).

    Each process holds a share of the bank (``train_*``, e.g. items ``rank::world``) and all the
    queries. Per chunk of queries it keeps its own ``k`` most similar bank items; the candidates of
    all processes are gathered (``(m, world * k)`` similarities and labels, never the bank) and the
    global top ``k`` vote as in :func:`knn_accuracy`. ``device``: where the collectives' tensors live
    (the GPU under NCCL). Every process must call it; all get the same accuracy.
    """
    device = torch.device(device)
    world = dist.get_world_size()
    n_bank = torch.tensor([len(train_features)], device=device)
    dist.all_reduce(n_bank)
    k = min(k, int(n_bank))
    num_classes = torch.tensor([num_classes or int(max(train_labels.max(), test_labels.max())) + 1], device=device)
    dist.all_reduce(num_classes, op=dist.ReduceOp.MAX)
    num_classes = int(num_classes)
    train = F.normalize(train_features.to(device).float(), dim=1)  # this share of the bank, on the device
    train_labels = train_labels.to(device).long()
    correct = 0
    for i in range(0, len(test_features), chunk_size):
        q = F.normalize(test_features[i : i + chunk_size].to(device).float(), dim=1)
        local_k = min(k, len(train))
        sim, idx = (q @ train.T).topk(local_k, dim=1)  # (m, local_k) from this process's share
        sims = torch.full((len(q), k), -float("inf"), device=device)
        labels = torch.zeros((len(q), k), dtype=torch.long, device=device)
        sims[:, :local_k], labels[:, :local_k] = sim, train_labels[idx]
        all_sims, all_labels = (
            [torch.empty_like(sims) for _ in range(world)],
            [torch.empty_like(labels) for _ in range(world)],
        )
        dist.all_gather(all_sims, sims)
        dist.all_gather(all_labels, labels)
        sim, pos = torch.cat(all_sims, 1).cpu().topk(k, dim=1)
        lab = torch.cat(all_labels, 1).cpu().gather(1, pos)
        votes = torch.zeros(len(q), num_classes).scatter_add_(1, lab, (sim / temperature).exp())
        correct += (votes.argmax(1) == test_labels[i : i + chunk_size].long()).sum().item()
    return correct / len(test_features)


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    epochs: int = 100,
    lr: float = 0.1,
    weight_decay: float = 1e-6,
    batch_size: int = 256,
    seed: int = 0,
) -> float:
    """Top-1 accuracy (in [0, 1]) of a linear classifier trained on frozen features.

    Features are standardised with the training set's mean/std, then a ``Linear(D, classes)`` is
    trained with SGD (momentum 0.9, cosine schedule, weight decay 1e-6 as the official
    ``evaluate.py``) on the precomputed features, so it takes seconds (:func:`fit_probe`).

    Example:
        >>> f = torch.randn(64, 8); y = (f[:, 0] > 0).long()
        >>> linear_probe(f, y, f, y, epochs=30) > 0.9
        True
    """
    check_probe_features(train_features, test_features)
    clf = nn.Linear(train_features.shape[1], probe_classes(train_labels, test_labels))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        clf.reset_parameters()
    return fit_probe(
        clf, train_features, train_labels, test_features, test_labels, epochs, lr, weight_decay, batch_size, seed
    )


def check_probe_features(train_features: torch.Tensor, test_features: torch.Tensor) -> None:
    """Refuse features that are not (N, D) train and (M, D) test with the same D."""
    if train_features.dim() != 2 or test_features.shape[1:] != train_features.shape[1:]:
        raise ValueError(
            f"expected (N, D) train and (M, D) test features with the same D, got "
            f"{tuple(train_features.shape)} and {tuple(test_features.shape)}"
        )


def probe_classes(train_labels: torch.Tensor, test_labels: torch.Tensor) -> int:
    """The number of classes a probe predicts: the largest label of either split, plus one."""
    return int(max(train_labels.long().max(), test_labels.max())) + 1


def fit_probe(
    clf: nn.Module,
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
) -> float:
    """Train the probe ``clf`` (initialised by the caller) on frozen features standardised with the
    training set's mean/std: SGD with momentum 0.9, cosine schedule over ``epochs``, batches drawn
    from a generator seeded with ``seed``; returns its top-1 accuracy on the test features."""
    g = torch.Generator().manual_seed(seed)
    mean, std = train_features.mean(0), train_features.std(0) + 1e-6
    xtr, xte = (train_features - mean) / std, (test_features - mean) / std
    ytr = train_labels.long()
    opt = torch.optim.SGD(clf.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(xtr) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), batch_size):
            b = perm[i : i + batch_size]
            loss = F.cross_entropy(clf(xtr[b]), ytr[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return (clf(xte).argmax(1) == test_labels.long()).float().mean().item()


@dataclass
class EvalData:
    """Frozen-feature evaluation data of a run's dataset: the k-NN bank (train) and the test split.

    In-memory datasets (Shapes, CIFAR): ``train_x`` / ``test_x`` uint8 tensors ``(N, 3, H, W)`` and
    ``train_y`` / ``test_y`` int64 labels ``(N,)``. Image folders: ``train_x`` / ``test_x`` datasets
    of ``(eval-transformed image, label)`` and labels None. ``mean`` / ``std``: the normalisation
    (per channel, [0, 1] units); ``source``: where the test images come from.
    """

    train_x: Any
    train_y: torch.Tensor | None
    test_x: Any
    test_y: torch.Tensor | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str = "test split"

    def features(
        self, encoder, split: str, device=None, amp_dtype=None, shard: tuple[int, int] = (0, 1), num_workers: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features (N, D), labels (N,))`` of ``split`` ("train" or "test") through ``encoder``.

        ``shard=(rank, world)``: only the items ``rank, rank + world, ...`` (this process's share);
        ``num_workers``: DataLoader workers that read an image folder's files.
        """
        x, y = (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)
        rank, world = shard
        if isinstance(x, torch.Tensor):
            x, y = x[rank::world], y[rank::world]
            return extract_features(encoder, x, self.mean, self.std, device=device, amp_dtype=amp_dtype), y
        if world > 1:
            x = torch.utils.data.Subset(x, range(rank, len(x), world))
        return extract_dataset_features(encoder, x, device=device, amp_dtype=amp_dtype, num_workers=num_workers)


def load_eval_data(cfg) -> EvalData:
    """The :class:`EvalData` of a run's dataset; ``cfg.train_size`` / ``cfg.test_size`` keep the
    first N images (0 = all).

    Example:
        >>> from vicreg_edu.config import get_config
        >>> data = load_eval_data(get_config("demo", train_size=100, test_size=50, fast=False))
        >>> data.train_x.shape, data.test_y.shape
        (torch.Size([100, 3, 32, 32]), torch.Size([50]))
    """
    aug = make_augment_config(cfg)
    if cfg.dataset in IN_MEMORY_DATASETS:
        (trx, try_), (tex, tey) = (
            in_memory_uint8(load_dataset(cfg.dataset, cfg.data_dir, split, download=cfg.download))
            for split in ("train", "test")
        )
        n_tr, n_te = cfg.train_size or len(trx), cfg.test_size or len(tex)
        return EvalData(trx[:n_tr], try_[:n_tr], tex[:n_te], tey[:n_te], aug.mean, aug.std)
    bank, queries, source = eval_splits(cfg.dataset, cfg.data_dir, transform=eval_transform(aug))  # val/ or a slice
    return EvalData(
        first_items(bank, cfg.train_size),
        None,
        first_items(queries, cfg.test_size),
        None,
        aug.mean,
        aug.std,
        source=source,
    )


def knn_comparison(
    model, cfg, device: torch.device, amp_dtype=None, eval_data=None, baselines: bool = True
) -> dict[str, float]:
    """k-NN accuracy (k=20, T=0.07) of the model's backbone, of a randomly initialised backbone of
    the same architecture, and (in-memory datasets) of raw normalised pixels.

    ``eval_data``: the result of :func:`load_eval_data` if already loaded (else loaded here).
    ``baselines=False``: the trained backbone only (the trainer's mid-run k-NN).
    Under a process group every process must call it: each extracts the features of its share of
    the bank and of the queries (``cfg.num_workers`` loader workers), the queries' features are
    gathered and :func:`knn_accuracy_sharded` votes, so no process waits alone on the whole
    dataset (ImageNet: 1.28 M bank images) and none holds the whole bank.
    Returns ``{"trained": ..., "random_init": ..., "raw_pixels": ...}`` (accuracies in [0, 1]).
    """
    data = eval_data or load_eval_data(cfg)
    models = [("trained", model)]
    if baselines:
        models.append(("random_init", random_twin(cfg).to(device, next(model.parameters()).dtype)))
    sharded = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    shard = (dist.get_rank(), dist.get_world_size()) if sharded else (0, 1)
    workers = getattr(cfg, "num_workers", 0)
    out = {}
    for name, m in models:
        with evaluating(m):
            ftr, ytr = data.features(m.backbone, "train", device, amp_dtype, shard, workers)
            fte, yte = data.features(m.backbone, "test", device, amp_dtype, shard, workers)
        if sharded:  # every process gets all the queries, keeps its share of the bank
            fte, yte = (torch.cat(_all_gather_rows(t, device)) for t in (fte, yte))
            out[name] = knn_accuracy_sharded(ftr, ytr, fte, yte, device=device)
        else:
            out[name] = knn_accuracy(ftr, ytr, fte, yte)
    if baselines and isinstance(data.train_x, torch.Tensor):
        out["raw_pixels"] = knn_accuracy(
            normalize_uint8(data.train_x, data.mean, data.std).flatten(1),
            data.train_y,
            normalize_uint8(data.test_x, data.mean, data.std).flatten(1),
            data.test_y,
        )
    return out


def load_checkpoint_model(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild the trained :class:`~vicreg_edu.models.VICReg` and its :class:`~vicreg_edu.config.Config`
    from a trainer checkpoint. Returns ``(model in eval mode, config)``.

    Raises:
        CheckpointNotFoundError (a ``FileNotFoundError``): no file at ``path``.
        CheckpointError (a ``ValueError``): not a readable vicreg-edu checkpoint.
    """
    from .checkpoint import config_of, load_checkpoint
    from .errors import CheckpointError

    ckpt = load_checkpoint(path)
    cfg = config_of(ckpt, path, device="auto")  # the training device may not exist here
    model = build_model(cfg)
    try:
        model.load_state_dict({k[len("model.") :]: v for k, v in ckpt["net"].items() if k.startswith("model.")})
    except (RuntimeError, AttributeError) as e:
        raise CheckpointError(
            f"{path} is not a readable vicreg-edu checkpoint (its weights do not fit "
            f"{cfg.backbone} + expander {cfg.expander}: {str(e).splitlines()[0]})"
        ) from e
    return model.to(device).eval(), cfg


def evaluate_checkpoint(path: str | Path, method: str = "knn", device: str = "auto", **probe_kwargs) -> dict:
    """Evaluate a trainer checkpoint's frozen backbone on its dataset (rebuilt from the stored config).

    ``method="knn"`` returns the k-NN accuracy of the trained backbone, a randomly initialised one
    and raw pixels (same table as the end of training); ``method="linear"`` the linear-probe
    accuracy of the trained backbone (``probe_kwargs`` go to :func:`linear_probe`).

    Raises:
        CheckpointNotFoundError / CheckpointError: the checkpoint is missing / unreadable.
        ValueError: unknown method.
    """
    if method not in ("knn", "linear"):
        raise ValueError(f"unknown evaluation method {method!r}; choose knn or linear")
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    model, cfg = load_checkpoint_model(path, dev)
    data = load_eval_data(cfg)
    if method == "knn":
        return knn_comparison(model, cfg, dev, eval_data=data)
    (ftr, ytr), (fte, yte) = data.features(model.backbone, "train", dev), data.features(model.backbone, "test", dev)
    return {"trained": linear_probe(ftr, ytr, fte, yte, **probe_kwargs)}
