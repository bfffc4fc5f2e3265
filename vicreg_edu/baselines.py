"""What VICReg is measured against: a supervised network with the same backbone, and label efficiency.

Two questions a reader of chapter 8 asks, answered on the built-in Shapes data:

1. **The supervised ceiling.** How far is the self-supervised encoder from the same backbone
   trained *with* labels? :func:`train_supervised` trains ``backbone + Linear(repr_dim, 10)``
   with cross-entropy (AdamW, horizontal flips only, a cosine schedule), and reports its test
   accuracy; :func:`supervised_ceiling` gives it the demo's budget (the same epochs and batch).
2. **Label efficiency** (the paper's semi-supervised setting, Table 2): with only 1 % or 10 % of
   the labels, a linear classifier on frozen VICReg features against a network trained from
   scratch on the same labelled images. :func:`label_efficiency` builds that table.

Everything is seeded; the labelled subsets are class-balanced (``n // 10`` images per class) and
nested (the 1 % subset is inside the 10 % one). ``python -m vicreg_edu.baselines`` computes both
for the demo preset and writes ``vicreg_edu/results/baselines.json`` (``load_results("baselines")``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import in_memory_uint8
from .evaluate import (
    check_probe_features,
    extract_features,
    fit_probe,
    knn_accuracy,
    linear_probe,
    normalize_uint8,
    probe_classes,
)
from .results import RESULTS_DIR, machine_info, recipe_of, rounded, write_results
from .views import SHAPES_MEAN, SHAPES_STD
from .models import build_backbone, evaluating
from .shapes import Shapes


def shapes_tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole Shapes split as uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``."""
    return in_memory_uint8(Shapes(split))


def balanced_subset(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Indices of a class-balanced subset with ``round(fraction * N)`` images (at least one per class).

    Subsets of one seed are nested: the images of a smaller fraction are among those of a larger one.

    Example:
        >>> y = torch.arange(100) % 10
        >>> idx = balanced_subset(y, 0.1)
        >>> len(idx), torch.bincount(y[idx]).tolist()
        (10, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    classes = int(labels.max()) + 1
    per_class = max(1, round(fraction * len(labels) / classes))
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    picked = [order[labels[order] == c][:per_class] for c in range(classes)]
    return torch.cat(picked).sort().values


class SupervisedNet(nn.Module):
    """A backbone (by name, see :func:`vicreg_edu.models.build_backbone`) + a linear classifier.

    Shapes: x (B, 3, H, W) -> logits (B, num_classes).
    """

    def __init__(self, backbone: str = "small_cnn", num_classes: int = 10):
        super().__init__()
        self.backbone, dim = build_backbone(backbone)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def accuracy_stderr(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on ``n`` test images: ``sqrt(p (1 - p) / n)``.

    The spread a test set of that size alone puts on the number (each image right or wrong,
    independently), not the spread over training seeds; two accuracies on the same images whose
    difference is within about two of these are not told apart by that test set.

    Example:
        >>> round(accuracy_stderr(0.85, 2000), 4)
        0.008
    """
    if not 0 <= accuracy <= 1 or n < 1:
        raise ValueError(f"accuracy must lie in [0, 1] and n >= 1, got accuracy={accuracy}, n={n}")
    return math.sqrt(accuracy * (1 - accuracy) / n)


def mlp_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    hidden: int = 512,
    epochs: int = 100,
    lr: float = 0.1,
    weight_decay: float = 1e-6,
    batch_size: int = 256,
    seed: int = 0,
) -> float:
    """Top-1 accuracy of a one-hidden-layer probe ``Linear(D, hidden) -> ReLU -> Linear(hidden, classes)``
    trained on frozen features, as :func:`~vicreg_edu.evaluate.linear_probe` trains its linear layer
    (standardised features, SGD with momentum 0.9, cosine schedule, same epochs and batch).

    Chapter 8 sets it on the backbone output y beside the linear probe on the expander output z: z
    is a fixed non-linear function of y, so a linear layer on z and an MLP on y are both non-linear
    classifiers of y, and their comparison no longer favours z for its extra layer.

    Args:
        train_features, test_features: (N, D) and (M, D) frozen features.
        train_labels, test_labels: (N,) and (M,) integer labels.
        hidden: width of the hidden layer.
    Returns:
        accuracy on the test features, in [0, 1].

    Example:
        >>> f = torch.randn(256, 2); y = ((f[:, 0] > 0) ^ (f[:, 1] > 0)).long()  # XOR: no linear probe solves it
        >>> mlp_probe(f, y, f, y, hidden=32, epochs=60) > 0.9
        True
    """
    check_probe_features(train_features, test_features)
    num_classes = probe_classes(train_labels, test_labels)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        clf = nn.Sequential(nn.Linear(train_features.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    return fit_probe(
        clf, train_features, train_labels, test_features, test_labels, epochs, lr, weight_decay, batch_size, seed
    )


def _lr_scale(step: int, warmup: int, steps: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _fit(net, xn, y, *, steps: int, batch_size: int, lr: float, weight_decay: float, generator, views=None) -> float:
    """``steps`` AdamW steps of cross-entropy on normalised images ``xn`` with random horizontal
    flips, or, with ``views`` (uint8 batch, generator -> normalised batch), on ``views`` of the
    uint8 images ``xn``; returns the training accuracy over the last epoch's steps."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    bs = min(batch_size, len(xn))
    warmup = max(1, min(len(xn) // bs, steps // 20))
    net.train()
    step, correct, seen = 0, 0, 0
    while step < steps:
        order = torch.randperm(len(xn), generator=generator)
        for i in range(0, len(xn) - bs + 1, bs):
            if step >= steps:
                break
            idx = order[i : i + bs]
            xb, yb = xn[idx], y[idx]
            if views is not None:
                xb = views(xb, generator)
            else:
                flip = torch.rand(len(idx), generator=generator) < 0.5
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
            for group in opt.param_groups:
                group["lr"] = lr * _lr_scale(step, warmup, steps)
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step >= steps - max(1, len(xn) // bs):
                correct += (logits.argmax(1) == yb).sum().item()
                seen += len(yb)
            step += 1
    return correct / max(seen, 1)


def train_supervised(
    x: torch.Tensor,
    y: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 0.05,
    backbone: str = "small_cnn",
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    seed: int = 0,
    augment=None,
) -> dict:
    """Train ``backbone + linear head`` from scratch with labels; return its test accuracy.

    AdamW with a one-epoch-or-5 % linear warm-up then cosine decay, horizontal flips as the only
    augmentation, ``steps`` optimisation steps of ``min(batch_size, N)`` images (so a 1 % subset
    gets as many steps as the full set: it is limited by its labels, not by its compute).

    Args:
        x, y: uint8 training images (N, 3, H, W) and labels (N,); x_test, y_test: the test split.
        mean, std: per-channel normalisation (the dataset's statistics).
        augment: an ``AugmentConfig`` (e.g. ``views.make_augment_config(cfg)``, the views a VICReg run
            trains on): each batch is one random view of it instead of a horizontal flip
            (``mean``/``std`` then come from it).

    Returns:
        ``{"test_acc", "knn", "train_acc", "steps", "n_labels", "cpu_time_s", "wall_time_s"}``:
        ``knn`` is the k-NN accuracy of the trained backbone's features (training images as the
        memory), computed as the trainer's final table computes it for a VICReg encoder.

    Example:
        >>> x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8); y = torch.arange(32) % 2
        >>> train_supervised(x, y, x, y, steps=2, batch_size=16)["steps"]
        2
    """
    t0, cpu0 = time.time(), time.process_time()
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SupervisedNet(backbone, int(max(y.max(), y_test.max())) + 1)
    views = None
    if augment is not None:
        from .batch_augment import TwoViewBatchAugment

        mean, std, two_views = augment.mean, augment.std, TwoViewBatchAugment(augment)
        views = lambda batch, generator: two_views(batch, generator)[0]  # noqa: E731  one view per image
    xn = x if views is not None else normalize_uint8(x, mean, std)
    train_acc = _fit(
        net, xn, y, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, generator=g, views=views
    )
    net.eval()
    f_train, f_test = (extract_features(net.backbone, images, mean, std) for images in (x, x_test))
    with torch.no_grad():
        test_acc = (net.head(f_test).argmax(1) == y_test).float().mean().item()
    return {
        "test_acc": test_acc,
        "knn": knn_accuracy(f_train, y, f_test, y_test),
        "train_acc": train_acc,
        "steps": steps,
        "n_labels": len(x),
        "cpu_time_s": time.process_time() - cpu0,
        "wall_time_s": time.time() - t0,
    }


def supervised_ceiling(cfg, seed: int = 0) -> dict:
    """The same backbone as ``cfg`` trained supervised on all Shapes labels with ``cfg``'s budget
    (``cfg.epochs`` epochs of ``cfg.batch_size``; AdamW 3e-3, flips only); see :func:`train_supervised`."""
    (x, y), (xt, yt) = shapes_tensors("train"), shapes_tensors("test")
    if cfg.train_size:
        x, y = x[: cfg.train_size], y[: cfg.train_size]
    steps = cfg.epochs * (len(x) // cfg.batch_size)
    return train_supervised(
        x,
        y,
        xt,
        yt,
        steps=steps,
        batch_size=cfg.batch_size,
        backbone=cfg.backbone,
        mean=SHAPES_MEAN,
        std=SHAPES_STD,
        seed=seed,
    )


def label_efficiency(
    encoder: nn.Module | None,
    fractions=(0.01, 0.1, 1.0),
    *,
    supervised_steps: int,
    batch_size: int = 128,
    backbone: str = "small_cnn",
    seed: int = 0,
    probe_epochs: int = 100,
) -> list[dict]:
    """Test accuracy with a fraction of the Shapes labels: linear probe on a frozen encoder vs a
    supervised network trained from scratch on the same labelled images.

    Args:
        encoder: a trained backbone ``(B, 3, 32, 32) -> (B, D)`` (e.g. ``result.model.backbone``),
            or None for the supervised column only.
        fractions: fractions of the 10,000 training labels (class-balanced, nested subsets).
        supervised_steps: optimisation steps of every supervised run (the full-label budget).
        probe_epochs: epochs of the linear probe (it sees each labelled image that often; with
            1 % of the labels, 100 images, that is 100 x 1 step).

    Returns:
        one dict per fraction: ``fraction``, ``n_labels``, ``linear_probe`` (None without an
        encoder), ``supervised`` (test accuracy), ``supervised_cpu_s``.
    """
    (x, y), (xt, yt) = shapes_tensors("train"), shapes_tensors("test")
    if encoder is not None:
        with evaluating(encoder):
            ftr = extract_features(encoder, x, SHAPES_MEAN, SHAPES_STD)
            fte = extract_features(encoder, xt, SHAPES_MEAN, SHAPES_STD)
    rows = []
    for frac in fractions:
        idx = balanced_subset(y, frac, seed)
        row = {"fraction": frac, "n_labels": len(idx), "linear_probe": None}
        if encoder is not None:
            row["linear_probe"] = linear_probe(
                ftr[idx], y[idx], fte, yt, epochs=probe_epochs, batch_size=min(256, len(idx)), seed=seed
            )
        sup = train_supervised(
            x[idx],
            y[idx],
            xt,
            yt,
            steps=supervised_steps,
            batch_size=batch_size,
            backbone=backbone,
            mean=SHAPES_MEAN,
            std=SHAPES_STD,
            seed=seed,
        )
        row["supervised"], row["supervised_cpu_s"] = sup["test_acc"], round(sup["cpu_time_s"], 1)
        rows.append(row)
    return rows


def supervised_same_views(cfg, fractions=(0.01, 0.1, 1.0), seed: int = 0) -> list[dict]:
    """The label-efficiency table's supervised column again, trained on the views ``cfg``'s VICReg run
    trains on (``views.make_augment_config(cfg)``: crops, colour jitter, ...) instead of flips only,
    same steps (``cfg``'s budget) and optimiser; one row per fraction (``fraction``, ``n_labels``,
    ``supervised``, ``supervised_cpu_s``). ``seed`` picks the labelled subset, the initialisation
    and the views."""
    from .views import make_augment_config

    (x, y), (xt, yt) = shapes_tensors("train"), shapes_tensors("test")
    steps = cfg.epochs * (len(x) // cfg.batch_size)
    rows = []
    for frac in fractions:
        idx = balanced_subset(y, frac, seed)
        sup = train_supervised(
            x[idx],
            y[idx],
            xt,
            yt,
            steps=steps,
            batch_size=cfg.batch_size,
            backbone=cfg.backbone,
            seed=seed,
            augment=make_augment_config(cfg),
        )
        rows.append(
            {
                "fraction": frac,
                "n_labels": len(idx),
                "supervised": rounded(sup["test_acc"]),
                "supervised_cpu_s": round(sup["cpu_time_s"], 1),
            }
        )
    return rows


def seed_summary(runs: list[dict]) -> list[dict]:
    """One row per fraction from the per-seed rows ``runs`` (each with ``seed``, ``fraction``,
    ``n_labels``, ``supervised``, ``supervised_cpu_s``): ``supervised`` is the mean over the seeds,
    ``supervised_std`` their sample standard deviation (0 for one seed), ``supervised_min`` /
    ``supervised_max`` the range and ``supervised_per_seed`` the values in seed order.

    Example:
        >>> runs = [{"seed": s, "fraction": 0.1, "n_labels": 10, "supervised": a, "supervised_cpu_s": 1.0}
        ...         for s, a in enumerate((0.5, 0.6, 0.7))]
        >>> row = seed_summary(runs)[0]
        >>> row["supervised"], row["supervised_std"], row["supervised_per_seed"]
        (0.6, 0.1, [0.5, 0.6, 0.7])
    """
    rows = []
    for frac in dict.fromkeys(r["fraction"] for r in runs):
        mine = sorted((r for r in runs if r["fraction"] == frac), key=lambda r: r["seed"])
        accs = [r["supervised"] for r in mine]
        mean = sum(accs) / len(accs)
        std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
        rows.append(
            {
                "fraction": frac,
                "n_labels": mine[0]["n_labels"],
                "supervised": rounded(mean),
                "supervised_std": rounded(std),
                "supervised_min": min(accs),
                "supervised_max": max(accs),
                "supervised_per_seed": accs,
                "seeds": [r["seed"] for r in mine],
                "supervised_cpu_s": round(sum(r["supervised_cpu_s"] for r in mine) / len(mine), 1),
            }
        )
    return rows


def _same_views_main(cfg, seeds: list[int], command: str) -> int:
    """``--same-views``: :func:`supervised_same_views` for ``cfg`` and every seed of ``seeds``, written
    to ``supervised_same_views.json`` (``label_efficiency``: mean and spread over the seeds per
    fraction, see :func:`seed_summary`; ``runs``: every seed's rows)."""
    t0, load0 = time.time(), os.getloadavg()[0]
    runs = []
    for seed in seeds:
        runs += [{"seed": seed, **row} for row in supervised_same_views(cfg, seed=seed)]
        print(json.dumps([r for r in runs if r["seed"] == seed]), flush=True)
    data = {
        "what": "label efficiency's supervised column trained on the demo preset's VICReg views "
        "(vicreg_edu.baselines.supervised_same_views), one run per seed; a seed picks the labelled subset, "
        "the initialisation and the views",
        "command": command,
        "config": recipe_of(cfg),
        "seeds": list(seeds),
        "supervised_recipe": "same backbone + Linear head, AdamW lr 3e-3 wd 0.05, warm-up then cosine, one "
        "random view per image of the VICReg run's augmentation (views.make_augment_config), same steps and batch",
        "label_efficiency": seed_summary(runs),
        "spread": "supervised_std: sample standard deviation over the seeds (n - 1); supervised_min/max: range",
        "runs": runs,
        "machine": {**machine_info(), "load_avg_at_start": round(load0, 2)},
        "wall_time_s": round(time.time() - t0, 1),
    }
    write_results(RESULTS_DIR / "supervised_same_views.json", data)
    print(json.dumps(data["label_efficiency"], indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m vicreg_edu.baselines``: train the demo preset, then the supervised ceiling and the
    label-efficiency table; write them to ``vicreg_edu/results/baselines.json``."""
    from .config import get_config
    from .trainer import train

    parser = argparse.ArgumentParser(
        prog="python -m vicreg_edu.baselines", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "baselines.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="VICReg and supervised epochs (default: demo's)")
    parser.add_argument(
        "--same-views",
        action="store_true",
        help="only the supervised column at 1%%, 10%% and 100%% on the VICReg run's views: supervised_same_views.json",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="with --same-views: one run per seed (default: --seed)"
    )
    args = parser.parse_args(argv)
    over = {} if args.epochs is None else {"epochs": args.epochs}
    if args.same_views:
        seeds = args.seeds or [args.seed]
        command = "python -m vicreg_edu.baselines " + " ".join(sys.argv[1:] if argv is None else argv)
        return _same_views_main(get_config("demo", fast=False, seed=seeds[0], **over), seeds, command)
    cfg = get_config(
        "demo",
        fast=False,
        seed=args.seed,
        progress=False,
        tensorboard=False,
        out_dir="runs/baselines",
        knn_every=0,
        **over,
    )
    t0, cpu0, load0 = time.time(), time.process_time(), os.getloadavg()[0]
    result = train(cfg)
    vicreg_cpu = time.process_time() - cpu0
    ceiling = supervised_ceiling(cfg, seed=args.seed)
    steps = cfg.epochs * (10_000 // cfg.batch_size)
    table = label_efficiency(
        result.model.backbone, supervised_steps=steps, batch_size=cfg.batch_size, backbone=cfg.backbone, seed=args.seed
    )
    data = {
        "what": "supervised ceiling and label efficiency on Shapes (vicreg_edu/baselines.py)",
        "command": "python -m vicreg_edu.baselines " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": recipe_of(cfg),
        "vicreg": {
            "knn": rounded(result.final["trained"]),
            "knn_random_init": rounded(result.final["random_init"]),
            "knn_raw_pixels": rounded(result.final["raw_pixels"]),
            "cpu_time_s": round(vicreg_cpu, 1),
        },
        "supervised_ceiling": {k: (rounded(v) if isinstance(v, float) else v) for k, v in ceiling.items()},
        "supervised_recipe": "same backbone + Linear head, AdamW lr 3e-3 wd 0.05, warm-up then cosine, "
        "horizontal flips only, same epochs and batch as the VICReg run",
        "label_efficiency": [
            {k: (rounded(v) if isinstance(v, float) and k != "fraction" else v) for k, v in row.items()}
            for row in table
        ],
        "label_efficiency_protocol": "class-balanced nested subsets of the 10,000 training labels; linear probe "
        "(evaluate.linear_probe, 100 epochs, standardised frozen backbone features) vs "
        f"the supervised recipe from scratch for {steps} steps on the same images; "
        "test accuracy on the 2,000 test images",
        "machine": {**machine_info(), "load_avg_at_start": round(load0, 2)},
        "wall_time_s": round(time.time() - t0, 1),
        "cpu_time_s": round(time.process_time() - cpu0, 1),
    }
    write_results(args.out, data)
    print(json.dumps({k: data[k] for k in ("vicreg", "supervised_ceiling", "label_efficiency")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
