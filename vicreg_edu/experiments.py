"""The experiments behind the book's numbers: chapter 7's ablation grid and the demo's recipe search.

Both are short, seeded VICReg runs on the built-in Shapes data (the ``demo`` preset with a few
fields changed); their results ship with the package as JSON, so a chapter reads them after a
plain ``pip install`` with :func:`load_results` instead of retraining.

1. **Ablation grid** (chapter 7): the demo preset with *one* thing changed from the default point
   of the loss of Bardes, Ponce & LeCun (ICLR 2022, arXiv 2105.04906, Eq. 6): lambda
   (``sim_coeff``), mu (``std_coeff``), nu (``cov_coeff``), gamma, or one augmentation switched
   off (``crop``, ``flip_p``, ``jitter_p``, ``grayscale_p``, ``solarize_p``: the
   :class:`vicreg_edu.augment.AugmentConfig` fields, passed through ``Config.aug``). API:
   :func:`grid_points`, :func:`config_for`, :func:`summarize`, :func:`run_one`, :func:`run_grid`.
   Results: ``load_results("ablation_grid")``.
2. **Recipe search** (the ``demo`` preset's origin): candidate recipes (augmentation, optimiser,
   batch size, expander, loss coefficients; see :data:`SEARCH_SPACE`) screened at short budgets,
   the best confirmed at the full demo budget on several seeds. Every run records the k-NN
   accuracy of the trained encoder, of a random encoder and of raw pixels, a linear probe, the
   final variance term v, the embedding's std and effective rank (trained and random encoder)
   and its wall and CPU time. API: :func:`recipe_config`, :func:`run_recipe`. Results:
   ``load_results("recipe_search")``.

Command line (from the repository root; results go to ``vicreg_edu/results/``)::

    python -m vicreg_edu.experiments grid --workers 2           # 19 runs, ~20 CPU-min
    python -m vicreg_edu.experiments search --stage screen --epochs 4
    python -m vicreg_edu.experiments search --stage confirm --epochs 16 --seeds 0 1 --only base
    python -m vicreg_edu.experiments search --list              # the candidate recipes
    python -m vicreg_edu.experiments long --epochs 30           # the demo preset, 3x longer (chapter 5)

Every run is seeded (``Config.seed``), so the same settings and thread count give the same
numbers; only the wall and CPU times change between two executions (and the wall time depends
on what else the machine runs: the JSON records the load average next to it).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .config import get_config

RESULTS_PACKAGE = "vicreg_edu.results"
RESULTS_DIR = Path(__file__).resolve().parent / "results"  # where the CLI writes (a source checkout)


def load_results(name: str) -> dict:
    """Load a shipped results file ``vicreg_edu/results/<name>.json`` (works from an installed wheel).

    Args:
        name: ``"ablation_grid"``, ``"recipe_search"``, ... (the file name without ``.json``).

    Raises:
        FileNotFoundError: no such results file; the message lists the available ones.

    Example:
        >>> grid = load_results("ablation_grid")
        >>> grid["runs"][0]["name"]
        'baseline'
    """
    folder = resources.files(RESULTS_PACKAGE)
    path = folder / f"{name}.json"
    if not path.is_file():
        have = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))
        raise FileNotFoundError(f"no results file {name!r} in {RESULTS_PACKAGE}; available: {have}")
    return json.loads(path.read_text())


def _r(x: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits (small, stable JSON)."""
    return float(f"{x:.{digits}g}")


def _machine() -> dict:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_cores": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.machine()}


# ==============================================================================================
# 1. Ablation grid (chapter 7)

# The default point: the paper's coefficients and the demo's augmentation recipe, all switched on.
DEFAULT_POINT = {"sim_coeff": 25.0, "std_coeff": 25.0, "cov_coeff": 1.0, "gamma": 1.0, "aug_off": []}
# Values tried for each loss factor (the default value included, it is the baseline run).
FACTORS = {
    "sim_coeff": [0.0, 5.0, 25.0, 50.0],
    "std_coeff": [0.0, 5.0, 25.0, 50.0],
    "cov_coeff": [0.0, 0.2, 1.0, 5.0],
    "gamma": [0.5, 1.0, 2.0],
}
# Extra seeds of the baseline: their spread is the noise level a difference must beat.
BASELINE_SEEDS = [1, 2]
# Switching an augmentation off = this AugmentConfig override (see vicreg_edu/augment.py).
AUG_OFF = {"crop": False, "flip_p": 0.0, "jitter_p": 0.0, "grayscale_p": 0.0, "solarize_p": (0.0, 0.0)}
# Sizes of one grid run: 3 epochs of all 10,000 images (234 steps of 128; about 65 CPU-s a run on one
# idle core). With half the images (117 steps) the baseline reached k-NN 0.16 (random encoder 0.13):
# too close to chance for the grid to show anything.
SIZES = {"epochs": 3, "train_size": 10_000, "test_size": 2_000, "diag_size": 512}
# The recipe around the grid's loss factors: today's demo preset (chapter 5) for everything but the
# coefficients, i.e. its batch size and augmentation overrides (crops 0.8-1). Read from the preset,
# so a change of the preset makes the shipped grid stale (tests/test_experiments.py checks that
# the JSON's "settings" match) instead of silently mixing two recipes in chapter 7.
_DEMO = get_config("demo", fast=False)
GRID_RECIPE = {"batch_size": _DEMO.batch_size, "aug": dict(_DEMO.aug)}


def grid_points() -> list[tuple[str, dict]]:
    """The one-factor-at-a-time grid: ``[(name, point), ...]``, baseline first, fixed order.

    A point is a dict like :data:`DEFAULT_POINT`; ``name`` is ``"baseline"``, ``"std_coeff=0"``,
    ``"no_crop"``, or ``"seed=1"`` for a repeat of the baseline with another seed (its point has
    an extra ``"seed"`` key; every other run uses seed 0).

    Example:
        >>> names = [name for name, _ in grid_points()]
        >>> names[:3], names[-1], len(names)
        (['baseline', 'sim_coeff=0', 'sim_coeff=5'], 'seed=2', 19)
    """
    points = [("baseline", dict(DEFAULT_POINT))]
    for factor, values in FACTORS.items():
        for value in values:
            if value != DEFAULT_POINT[factor]:
                points.append((f"{factor}={value:g}", {**DEFAULT_POINT, factor: float(value)}))
    for aug in AUG_OFF:
        points.append((f"no_{aug}", {**DEFAULT_POINT, "aug_off": [aug]}))
    for seed in BASELINE_SEEDS:
        points.append((f"seed={seed}", {**DEFAULT_POINT, "seed": seed}))
    return points


def changed_factors(point: dict) -> list[str]:
    """Names of the factors where ``point`` differs from :data:`DEFAULT_POINT` (augmentations by field;
    the seed is not a factor).

    Example:
        >>> changed_factors({**DEFAULT_POINT, "std_coeff": 0.0, "aug_off": ["crop"]})
        ['std_coeff', 'crop']
    """
    changed = [k for k in FACTORS if float(point[k]) != DEFAULT_POINT[k]]
    return changed + [a for a in AUG_OFF if a in point["aug_off"]]


def config_for(point: dict, *, epochs: int, train_size: int, test_size: int, diag_size: int = 512,
               out_dir: str = "runs/ch07", progress: bool = False, fast: bool = False):
    """The :class:`~vicreg_edu.config.Config` of one grid point: the demo preset with the grid's
    recipe (:data:`GRID_RECIPE`: batch size and augmentation overrides) + the point's changes.

    The point's switched-off augmentations are added to the grid recipe's ``aug`` overrides.

    Raises:
        ValueError: an unknown key in ``point`` or an unknown augmentation in ``point["aug_off"]``.

    Example:
        >>> cfg = config_for({**DEFAULT_POINT, "aug_off": ["jitter_p"]}, epochs=1, train_size=512, test_size=256)
        >>> cfg.aug["jitter_p"], cfg.std_coeff
        (0.0, 25.0)
    """
    unknown = sorted(set(point) - set(DEFAULT_POINT) - {"seed"})
    bad_aug = sorted(set(point.get("aug_off", [])) - set(AUG_OFF))
    if unknown or bad_aug:
        raise ValueError(f"unknown point key(s) {unknown} / augmentation(s) {bad_aug}; expected keys "
                         f"{sorted(DEFAULT_POINT)} and augmentations among {sorted(AUG_OFF)}")
    demo_aug = GRID_RECIPE["aug"]
    return get_config(
        "demo", fast=fast, epochs=epochs, train_size=train_size, test_size=test_size, diag_size=diag_size,
        sim_coeff=float(point["sim_coeff"]), std_coeff=float(point["std_coeff"]),
        cov_coeff=float(point["cov_coeff"]), gamma=float(point["gamma"]),
        aug={**demo_aug, **{a: AUG_OFF[a] for a in point.get("aug_off", [])}},
        knn_every=0, final_eval=True, progress=progress, tensorboard=False, out_dir=out_dir,
        seed=int(point.get("seed", 0)), batch_size=GRID_RECIPE["batch_size"],
    )


def summarize(result) -> dict:
    """What the grid keeps of a :class:`~vicreg_edu.train.TrainResult` (``final_eval=True`` needed).

    Returns a dict: ``knn`` (trained backbone, k=20), ``knn_random_init``, ``knn_raw_pixels``,
    ``emb_effective_rank``, ``emb_std_mean``, ``emb_dead_fraction``, ``repr_effective_rank``,
    ``repr_std_mean``, ``online_probe_acc`` (last epoch record, held-out images), the last logged
    ``invariance``, ``variance``, ``covariance`` (unweighted) and ``loss`` (weighted total),
    ``curve``: ``[[step, s, v, c], ...]`` at every logged step, and ``wall_time_s``.

    Raises:
        ValueError: the result has no final k-NN evaluation or no epoch record.
    """
    if not result.final or not result.epochs:
        raise ValueError("summarize needs a finished run with final_eval=True; got "
                         f"final={result.final!r}, {len(result.epochs)} epoch records")
    last_epoch, last_step = result.epochs[-1], result.history[-1]
    out = {"knn": result.final["trained"], "knn_random_init": result.final["random_init"],
           "knn_raw_pixels": result.final.get("raw_pixels", float("nan"))}
    for key in ("emb_effective_rank", "emb_std_mean", "emb_dead_fraction", "repr_effective_rank",
                "repr_std_mean", "online_probe_acc"):
        out[key] = last_epoch[key]
    for key in ("invariance", "variance", "covariance", "loss"):
        out[key] = last_step[key]
    out = {k: _r(v) for k, v in out.items()}
    out["curve"] = [[h["step"]] + [_r(h[k]) for k in ("invariance", "variance", "covariance")]
                    for h in result.history]
    out["wall_time_s"] = round(result.wall_time, 1)
    return out


def run_one(task: tuple[str, dict, dict, str]) -> dict:
    """Train one grid point ``(name, point, sizes, out_root)``; return its JSON record
    (``name``, ``factor``, ``point``, the :func:`summarize` fields, ``cpu_time_s``)."""
    from .train import train

    name, point, sizes, out_root = task
    cpu0 = time.process_time()
    summary = summarize(train(config_for(point, **sizes, out_dir=f"{out_root}/{name}")))
    changed = changed_factors(point)
    factor = "seed" if "seed" in point else (changed[0] if changed else None)
    return {"name": name, "factor": factor, "point": point, **summary,
            "cpu_time_s": round(time.process_time() - cpu0, 1)}


def run_grid(points, sizes: dict, workers: int = 1, out_root: str = "runs/ch07_grid") -> list[dict]:
    """Train and summarise every ``(name, point)``; results in the order of ``points`` whatever ``workers``.

    ``workers > 1`` trains that many runs at once in separate processes (each run is seeded and
    single-threaded under ``OMP_NUM_THREADS=1``, so the numbers do not depend on ``workers``).
    """
    tasks = [(name, point, sizes, out_root) for name, point in points]
    if workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap(run_one, tasks)
    else:
        pool, results = None, map(run_one, tasks)
    runs = []
    for i, run in enumerate(results):
        runs.append(run)
        print(f"[{i + 1}/{len(tasks)}] {run['name']:>14}: k-NN {run['knn']:.3f}  eff. rank "
              f"{run['emb_effective_rank']:6.1f}  std {run['emb_std_mean']:.3f}  "
              f"s {run['invariance']:.4f} v {run['variance']:.4f} c {run['covariance']:.4f}  "
              f"({run['wall_time_s']:.0f} s, CPU {run['cpu_time_s']:.0f} s)", flush=True)
    if pool is not None:
        pool.close()
        pool.join()
    return runs


def grid_main(args: argparse.Namespace) -> int:
    """``python -m vicreg_edu.experiments grid``: run the grid and write its JSON."""
    sizes = {"epochs": args.epochs, "train_size": args.train_size, "test_size": args.test_size,
             "diag_size": args.diag_size}
    points = grid_points()
    if args.only:
        known = [name for name, _ in points]
        missing = sorted(set(args.only) - set(known))
        if missing:
            raise ValueError(f"--only: unknown point(s) {missing}; known: {known}")
        points = [(n, p) for n, p in points if n in args.only]
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    t0, load0 = time.time(), os.getloadavg()[0]
    runs = run_grid(points, sizes, workers=args.workers)
    cfg = config_for(DEFAULT_POINT, **sizes).to_dict()
    data = {
        "what": "chapter 7 ablation grid: demo preset on Shapes, one factor at a time around the default point",
        "command": "OMP_NUM_THREADS=1 python -m vicreg_edu.experiments grid " + " ".join(args.argv),
        "settings": {**sizes, **{k: cfg[k] for k in ("dataset", "backbone", "expander", "batch_size", "optimizer",
                                                     "base_lr", "weight_decay", "warmup_epochs", "end_lr_ratio",
                                                     "aug")},
                     "seed": "0, and the baseline repeated with seeds " + ", ".join(map(str, BASELINE_SEEDS)),
                     "knn": "k=20, cosine, T=0.07, bank = the train_size training images, test_size test images"},
        "default_point": DEFAULT_POINT,
        "factors": FACTORS,
        "aug_off": {k: list(v) if isinstance(v, tuple) else v for k, v in AUG_OFF.items()},
        "machine": {**_machine(), "threads_per_run": torch.get_num_threads(), "load_avg_at_start": load0},
        "wall_time_s": round(time.time() - t0, 1),
        "cpu_time_s": round(sum(run["cpu_time_s"] for run in runs), 1),
        "workers": args.workers,
        "runs": runs,
    }
    _write_json(args.out, data)
    print(f"wrote {args.out} ({len(runs)} runs, {data['wall_time_s'] / 60:.1f} min)")
    return 0


# ==============================================================================================
# 2. Recipe search (the demo preset)

# The starting point of the search: the demo preset of before the search (AdamW 1e-2, batch 128,
# expander 512-512-512, coefficients 25/25/1, shapes_augment) with the one change the issue
# measured to help, crop scale (0.8, 1). The second session's runs at the demo's budget (stage
# "budget" in recipe_search.json) were passed as ``--recipes FILE --epochs 10``; the chosen preset
# differs from this base only in mu = 50 and nu = 0.5 (and the data: no noisy backgrounds).
SEARCH_BASE: dict[str, Any] = {
    "batch_size": 128, "optimizer": "adamw", "base_lr": 1e-2, "weight_decay": 0.05, "warmup_epochs": 1.0,
    "expander": "512-512-512", "sim_coeff": 25.0, "std_coeff": 25.0, "cov_coeff": 1.0,
    "aug": {"crop_scale": (0.8, 1.0)},
}

# What the search may change, and the values it tries (one factor at a time in the screen stage),
# roughly in the order of their expected effect (the screen runs them in this order).
# ``aug.X`` keys are AugmentConfig fields (vicreg_edu/augment.py); the others are Config fields.
# The search also tried three augmentations the library does not have (random rotation, pixel
# noise, translation) and a Shapes variant without noisy backgrounds, from a patched copy of the
# code; recipe_search.json keeps those runs and the patch ("experimental"), and says why none was kept.
SEARCH_SPACE: dict[str, list] = {
    "aug.hue": [0.5, 0.1],
    "aug.crop_scale": [(0.5, 1.0), (0.3, 1.0), (0.95, 1.0)],
    "batch_size": [64, 256],
    "base_lr": [2e-2, 3e-3],
    "expander": ["1024-1024-1024", "2048-2048", "512-512", "256-256-256"],
    "aug.blur_p": [(0.5, 0.5)],
    "aug.grayscale_p": [0.5, 0.0],
    "aug.solarize_p": [(0.0, 0.0), (0.2, 0.2)],
    "aug.saturation": [0.8],
    "aug.jitter_p": [1.0, 0.5],
    "aug.crop_ratio": [(0.9, 1.1)],
    "aug.brightness": [0.8],
    "aug.contrast": [0.8],
    "weight_decay": [1e-4, 0.2],
    "warmup_epochs": [0.0, 2.0],
    "optimizer": [("lars", {"base_lr": 0.3, "weight_decay": 1e-4}), ("sgd", {"base_lr": 0.1, "weight_decay": 5e-4})],
    "std_coeff": [50.0],
    "sim_coeff": [10.0],
    "cov_coeff": [4.0, 0.25],
}


def _set(recipe: dict, key: str, value) -> dict:
    """Copy of ``recipe`` with ``key`` (``"aug.X"`` for an augmentation field) set to ``value``."""
    out = copy.deepcopy(recipe)
    if key.startswith("aug."):
        out["aug"] = {**out.get("aug", {}), key[4:]: value}
    else:
        out[key] = value
    return out


def _value_name(value) -> str:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        value = value[0]
    if isinstance(value, (tuple, list)):
        return "-".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def screen_candidates(base: dict | None = None) -> list[tuple[str, dict]]:
    """The screen stage: ``[("base", base), ("aug.hue=0.5", ...), ...]``, one change at a time.

    A value may be ``(value, {other: value, ...})`` to change companions with it (an optimiser
    comes with its own learning rate and weight decay).

    Example:
        >>> names = [n for n, _ in screen_candidates()]
        >>> names[0], names[1], "optimizer=lars" in names
        ('base', 'aug.hue=0.5', True)
    """
    base = copy.deepcopy(SEARCH_BASE if base is None else base)
    out = [("base", base)]
    for key, values in SEARCH_SPACE.items():
        for value in values:
            extra = {}
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
                value, extra = value
            recipe = _set(base, key, value)
            for k, v in extra.items():
                recipe = _set(recipe, k, v)
            out.append((f"{key}={_value_name(value)}", recipe))
    return out


def recipe_config(recipe: dict, *, epochs: int, seed: int = 0, out_dir: str = "runs/recipe",
                  train_size: int = 0, fast: bool = False):
    """The :class:`~vicreg_edu.config.Config` of one candidate recipe (demo preset + the recipe's fields).

    ``recipe`` holds Config fields and an ``aug`` dict of AugmentConfig overrides (which replaces
    the demo preset's ``aug``); k-NN only at the end, no progress bar, no TensorBoard.

    Example:
        >>> cfg = recipe_config(SEARCH_BASE, epochs=2)
        >>> cfg.epochs, cfg.aug["crop_scale"], cfg.knn_every
        (2, (0.8, 1.0), 0)
    """
    recipe = copy.deepcopy(recipe)
    aug = dict(recipe.pop("aug", {}))
    return get_config("demo", fast=fast, **recipe, aug=aug, epochs=epochs, seed=seed, train_size=train_size,
                      knn_every=0, final_eval=True, progress=False, tensorboard=False, out_dir=out_dir)


def _shapes_uint8(split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Shapes split as a uint8 tensor (N, 3, 32, 32) and int64 labels (N,)."""
    from .data import Shapes

    ds = Shapes(split, n=n)
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.as_tensor(ds.targets)


def embedding_ranks(model, cfg, generator_seed: int | None = None) -> dict:
    """Effective rank (RankMe) and mean std of the embeddings of ``cfg.diag_size`` augmented test
    images (the views the trainer's per-epoch report uses), for ``model`` and for a randomly
    initialised model of the same architecture (seeded as the trainer's k-NN baseline).

    Returns ``{"emb_effective_rank", "emb_std_mean", "emb_effective_rank_random",
    "emb_std_mean_random"}``.
    """
    from . import augment
    from .diagnostics import collapse_report
    from .models import VICReg

    aug_cfg = getattr(augment, f"{cfg.augment}_augment")(**cfg.aug)
    x, _ = _shapes_uint8("test")
    x = x[:cfg.diag_size]
    gen = torch.Generator().manual_seed(cfg.seed if generator_seed is None else generator_seed)
    view_a, view_b = augment.TwoViewBatchAugment(aug_cfg)(x, gen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 12345)
        random_model = VICReg(backbone=cfg.backbone, expander=cfg.expander)
    out = {}
    for suffix, m in (("", model), ("_random", random_model)):
        was_training = m.training
        m.eval()
        with torch.no_grad():
            z_a, z_b = m(view_a.float())[1], m(view_b.float())[1]
        m.train(was_training)
        rep = collapse_report(z_a, z_b).as_dict()
        out[f"emb_effective_rank{suffix}"] = rep["effective_rank"]
        out[f"emb_std_mean{suffix}"] = rep["std_mean"]
    return out


def probe_accuracy(model, cfg, epochs: int = 100, seed: int = 0) -> float:
    """Linear-probe accuracy of ``model``'s frozen backbone on Shapes (all train images, all test images)."""
    from . import augment
    from .evaluate import extract_features, linear_probe

    aug_cfg = getattr(augment, f"{cfg.augment}_augment")(**cfg.aug)
    (xtr, ytr), (xte, yte) = _shapes_uint8("train"), _shapes_uint8("test")
    if cfg.train_size:
        xtr, ytr = xtr[:cfg.train_size], ytr[:cfg.train_size]
    was_training = model.training
    model.eval()
    ftr, _ = extract_features(model.backbone, xtr, aug_cfg.mean, aug_cfg.std)
    fte, _ = extract_features(model.backbone, xte, aug_cfg.mean, aug_cfg.std)
    model.train(was_training)
    return linear_probe(ftr, ytr, fte, yte, epochs=epochs, seed=seed)


def run_recipe(name: str, recipe: dict, *, epochs: int, seed: int = 0, stage: str = "",
               train_size: int = 0, out_root: str = "runs/recipe_search", linear: bool = True) -> dict:
    """Train one candidate recipe and return its record for ``recipe_search.json``.

    The record: ``name``, ``stage``, ``recipe``, ``epochs``, ``seed``, ``knn`` (trained backbone),
    ``knn_random_init``, ``knn_raw_pixels``, ``linear_probe`` (trained backbone; None if
    ``linear=False``), ``variance`` / ``invariance`` / ``covariance`` (last logged, unweighted),
    ``emb_std_mean``, ``emb_effective_rank`` and ``emb_effective_rank_random`` (embeddings of
    augmented test images, trained vs random encoder), ``online_probe_acc``, ``curve``
    (``[[step, s, v, c], ...]``), ``wall_time_s``, ``cpu_time_s`` (training and
    evaluation, all threads of this process), ``load_avg`` (1-min load average at the start: other
    jobs on the machine inflate the wall time, not the CPU time).
    """
    from .train import train

    load0 = os.getloadavg()[0]
    t0, cpu0 = time.time(), time.process_time()
    cfg = recipe_config(recipe, epochs=epochs, seed=seed, train_size=train_size,
                        out_dir=f"{out_root}/{name}-e{epochs}-s{seed}")
    result = train(cfg)
    train_wall, train_cpu = time.time() - t0, time.process_time() - cpu0
    summary = summarize(result)
    ranks = embedding_ranks(result.model, cfg)
    probe = probe_accuracy(result.model, cfg) if linear else None
    rec = {"name": name, "stage": stage, "recipe": json.loads(json.dumps(recipe)), "epochs": epochs, "seed": seed,
           "train_size": train_size}
    rec.update({k: summary[k] for k in ("knn", "knn_random_init", "knn_raw_pixels")})
    rec["linear_probe"] = None if probe is None else _r(probe)
    rec.update({k: summary[k] for k in ("invariance", "variance", "covariance", "emb_std_mean", "online_probe_acc")})
    rec.update({k: _r(v) for k, v in ranks.items()})
    rec["emb_effective_rank_report"] = summary["emb_effective_rank"]  # the trainer's own last epoch report
    rec["curve"] = summary["curve"]
    rec["train_wall_s"], rec["train_cpu_s"] = round(train_wall, 1), round(train_cpu, 1)
    rec["wall_time_s"], rec["cpu_time_s"] = round(time.time() - t0, 1), round(time.process_time() - cpu0, 1)
    rec["load_avg"] = round(load0, 2)
    return rec


def _recipe_key(rec: dict) -> tuple:
    return (rec["name"], rec["epochs"], rec["seed"], rec.get("train_size", 0), json.dumps(rec["recipe"], sort_keys=True))


def search_main(args: argparse.Namespace) -> int:
    """``python -m vicreg_edu.experiments search``: run candidates, append records to the JSON."""
    if args.recipes:
        candidates = [(n, json.loads(json.dumps(r))) for n, r in json.loads(Path(args.recipes).read_text()).items()]
    else:
        candidates = screen_candidates()
    if args.list:
        for name, recipe in candidates:
            print(f"{name:>28}  {json.dumps(recipe)}")
        return 0
    if args.only:
        known = [n for n, _ in candidates]
        missing = sorted(set(args.only) - set(known))
        if missing:
            raise ValueError(f"--only: unknown candidate(s) {missing}; known: {known}")
        candidates = [(n, r) for n, r in candidates if n in args.only]
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.is_file() else {
        "what": "recipe search for the demo preset on Shapes (see vicreg_edu/experiments.py)",
        "base": json.loads(json.dumps(SEARCH_BASE)), "runs": []}
    done = {_recipe_key(r) for r in data["runs"]}
    data["machine"] = _machine()
    data["note"] = ("wall times were measured on a 2-core machine shared with other jobs (see load_avg per run); "
                    "cpu_time_s is the process CPU time (all threads) and is the comparable cost")
    for seed in args.seeds:
        for name, recipe in candidates:
            rec_key = (name, args.epochs, seed, args.train_size, json.dumps(json.loads(json.dumps(recipe)), sort_keys=True))
            if rec_key in done:
                print(f"skip {name} (epochs {args.epochs}, seed {seed}): already in {out}")
                continue
            rec = run_recipe(name, recipe, epochs=args.epochs, seed=seed, stage=args.stage,
                             train_size=args.train_size, linear=not args.no_linear)
            data["runs"].append(rec)
            done.add(rec_key)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(data, indent=1) + "\n")
            lp = "  -  " if rec["linear_probe"] is None else f"{rec['linear_probe']:.3f}"
            print(f"[{args.stage}] {name:>28} e{args.epochs} s{seed}: k-NN {rec['knn']:.3f} (rand "
                  f"{rec['knn_random_init']:.3f}, pix {rec['knn_raw_pixels']:.3f}) lin {lp} v {rec['variance']:.3f} "
                  f"std {rec['emb_std_mean']:.2f} rank {rec['emb_effective_rank']:.0f}/{rec['emb_effective_rank_random']:.0f} "
                  f"| {rec['wall_time_s']:.0f} s wall, {rec['cpu_time_s']:.0f} CPU-s, load {rec['load_avg']}", flush=True)
    return 0


# ==============================================================================================
# 3. A longer run of the demo preset (chapter 5: where the curves go after the demo's 10 epochs)


def long_run_main(args: argparse.Namespace) -> int:
    """``python -m vicreg_edu.experiments long``: the demo preset for ``--epochs`` epochs (its
    schedule stretched to them), k-NN every ``--knn-every`` epochs; writes the per-epoch records
    (k-NN, embedding std, effective rank, online probe), the loss terms at every logged step and
    the final k-NN baselines to ``vicreg_edu/results/demo_long.json``."""
    from .train import train

    t0, cpu0, load0 = time.time(), time.process_time(), os.getloadavg()[0]
    sizes = {"train_size": args.train_size, "test_size": args.test_size}
    if args.test_size:
        sizes["diag_size"] = args.test_size
    cfg = get_config("demo", fast=False, epochs=args.epochs, knn_every=args.knn_every, seed=args.seed,
                     progress=False, tensorboard=False, out_dir=args.out_dir or f"runs/demo_long-e{args.epochs}",
                     **sizes)
    result = train(cfg)
    keep = ("epoch", "step", "knn_acc", "emb_std_mean", "emb_effective_rank", "online_probe_acc")
    data = {
        "what": f"the demo preset trained for {args.epochs} epochs instead of {_DEMO.epochs} "
                "(learning-rate schedule stretched to the longer run), vicreg_edu/experiments.py",
        "command": "OMP_NUM_THREADS=1 python -m vicreg_edu.experiments long " + " ".join(args.argv),
        "config": {k: v for k, v in cfg.to_dict().items() if k in (
            "backbone", "expander", "epochs", "batch_size", "optimizer", "base_lr", "weight_decay",
            "sim_coeff", "std_coeff", "cov_coeff", "aug", "seed", "knn_every", "train_size", "test_size")},
        "final": {k: _r(v) for k, v in result.final.items()},
        "epochs": [{k: (_r(r[k]) if isinstance(r[k], float) else r[k]) for k in keep if k in r} for r in result.epochs],
        "curve": [[h["step"]] + [_r(h[k]) for k in ("invariance", "variance", "covariance")] for h in result.history],
        "steps_per_epoch": result.history[-1]["step"] // args.epochs,
        "machine": {**_machine(), "load_avg_at_start": round(load0, 2)},
        "wall_time_s": round(time.time() - t0, 1), "cpu_time_s": round(time.process_time() - cpu0, 1),
    }
    _write_json(args.out, data)
    print(f"wrote {args.out}: k-NN {data['final']}, {data['wall_time_s']:.0f} s wall, {data['cpu_time_s']:.0f} CPU-s")
    return 0


def _write_json(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m vicreg_edu.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grid", help="chapter 7's ablation grid")
    g.add_argument("--out", type=Path, default=RESULTS_DIR / "ablation_grid.json")
    g.add_argument("--epochs", type=int, default=SIZES["epochs"])
    g.add_argument("--train-size", type=int, default=SIZES["train_size"])
    g.add_argument("--test-size", type=int, default=SIZES["test_size"])
    g.add_argument("--diag-size", type=int, default=SIZES["diag_size"])
    g.add_argument("--workers", type=int, default=1, help="runs trained at once, one process each (default 1)")
    g.add_argument("--only", nargs="*", metavar="NAME", help="run only these grid points (names as printed)")
    s = sub.add_parser("search", help="the demo preset's recipe search")
    s.add_argument("--out", type=Path, default=RESULTS_DIR / "recipe_search.json")
    s.add_argument("--stage", default="screen", help="label stored with each run (screen, combine, confirm)")
    s.add_argument("--epochs", type=int, default=4)
    s.add_argument("--seeds", type=int, nargs="+", default=[0])
    s.add_argument("--train-size", type=int, default=0, help="first N training images (0 = all 10,000)")
    s.add_argument("--recipes", help="JSON file {name: recipe} to run instead of the screen candidates")
    s.add_argument("--only", nargs="*", metavar="NAME", help="run only these candidates")
    s.add_argument("--no-linear", action="store_true", help="skip the linear probe (saves ~5 CPU-s a run)")
    s.add_argument("--list", action="store_true", help="print the candidates and exit")
    lr_ = sub.add_parser("long", help="a longer run of the demo preset (chapter 5)")
    lr_.add_argument("--out", type=Path, default=RESULTS_DIR / "demo_long.json")
    lr_.add_argument("--epochs", type=int, default=30)
    lr_.add_argument("--knn-every", type=int, default=2)
    lr_.add_argument("--seed", type=int, default=0)
    lr_.add_argument("--train-size", type=int, default=0, help="first N training images (0 = all; for quick checks)")
    lr_.add_argument("--test-size", type=int, default=0, help="first N test images (0 = all)")
    lr_.add_argument("--out-dir", default="", help="run folder (default runs/demo_long-e<epochs>)")
    args = parser.parse_args(argv)
    args.argv = argv[1:]
    return {"grid": grid_main, "search": search_main, "long": long_run_main}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
