"""Chapter 7's ablation grid: short, seeded VICReg runs on Shapes, one factor changed at a time.

Its results ship with the package (``vicreg_edu.results.load_results("ablation_grid")``), so the
chapter and its explorer (``widgets``) read them after a plain ``pip install``.

**Ablation grid** (chapter 7): the demo preset at its full budget with *one* thing changed from the default point
   of the loss of Bardes, Ponce & LeCun (ICLR 2022, arXiv 2105.04906, Eq. 6): lambda
   (``sim_coeff``), mu (``std_coeff``), nu (``cov_coeff``), gamma, or one augmentation switched
   off (``crop``, ``jitter_p``, ``hue``, ``grayscale_p``, ``solarize_p``: the
   :class:`vicreg_edu.augment.AugmentConfig` fields, passed through ``Config.aug``). API:
   :func:`grid_points`, :func:`config_for`, :func:`summarize`, :func:`run_one`, :func:`run_grid`.
   Results: ``load_results("ablation_grid")``.
Command line (from the repository root; results go to ``vicreg_edu/results/``)::

    python -m vicreg_edu.experiments grid --workers 2           # 19 runs of the demo's budget

Every run is seeded (``Config.seed``), so the same settings and thread count give the same
numbers; only the wall and CPU times change between two executions (and the wall time depends
on what else the machine runs: the JSON records the load average next to it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from .config import get_config
from .results import RESULTS_DIR, machine_info, recipe_of, rounded, write_results

# ==============================================================================================
# 1. Ablation grid (chapter 7)

# Extra seeds of the baseline: their spread is the noise level a difference must beat.
BASELINE_SEEDS = [1, 2]
# Switching an augmentation off = this AugmentConfig override (see vicreg_edu/views.py).
# (The demo has no flip; the hue shift is the part of the colour jitter that hides a shape's colour.)
AUG_OFF = {"crop": False, "jitter_p": 0.0, "hue": 0.0, "grayscale_p": 0.0, "solarize_p": (0.0, 0.0)}
# The recipe around the grid's loss factors: today's demo preset (chapter 5) for everything but the
# coefficients, i.e. its batch size and augmentation overrides. Read from the preset, so a change
# of the preset makes the shipped grid stale (tests/test_experiments.py checks that the JSON's
# "settings" match) instead of silently mixing two recipes in chapter 7.
_DEMO = get_config("demo", fast=False)
GRID_RECIPE = {"batch_size": _DEMO.batch_size, "aug": dict(_DEMO.aug)}
# The default point: the demo preset's coefficients (chapter 5's run: lambda 25, mu 50, nu 0.5,
# gamma 1), every augmentation of its recipe switched on.
DEFAULT_POINT = {
    "sim_coeff": _DEMO.sim_coeff,
    "std_coeff": _DEMO.std_coeff,
    "cov_coeff": _DEMO.cov_coeff,
    "gamma": _DEMO.gamma,
    "aug_off": [],
}
# Values tried for each loss factor (the default value included, it is the baseline run): 0, a fifth,
# the preset's, twice it (gamma: half and twice).
FACTORS = {
    "sim_coeff": [0.0, 5.0, 25.0, 50.0],
    "std_coeff": [0.0, 10.0, 50.0, 100.0],
    "cov_coeff": [0.0, 0.1, 0.5, 1.0],
    "gamma": [0.5, 1.0, 2.0],
}
# Sizes of one grid run: the demo's full budget (10 epochs of all 10,000 images, 780 steps of 128),
# so the grid's effects are those of chapter 5's run, not of a shorter regime.
# The recipe fields every point of the grid shares (the grid file records them under "settings").
_GRID_FIXED = ("dataset", "backbone", "expander", "batch_size", "optimizer", "base_lr", "weight_decay")
_GRID_FIXED += ("warmup_epochs", "end_lr_ratio", "aug")
SIZES = {"epochs": _DEMO.epochs, "train_size": 10_000, "test_size": 2_000, "diag_size": 512}


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


def config_for(
    point: dict,
    *,
    epochs: int,
    train_size: int,
    test_size: int,
    diag_size: int = 512,
    out_dir: str = "runs/ch07",
    progress: bool = False,
    fast: bool = False,
):
    """The :class:`~vicreg_edu.config.Config` of one grid point: the demo preset with the grid's
    recipe (:data:`GRID_RECIPE`: batch size and augmentation overrides) + the point's changes.

    The point's switched-off augmentations are added to the grid recipe's ``aug`` overrides.

    Raises:
        ValueError: an unknown key in ``point`` or an unknown augmentation in ``point["aug_off"]``.

    Example:
        >>> cfg = config_for({**DEFAULT_POINT, "aug_off": ["jitter_p"]}, epochs=1, train_size=512, test_size=256)
        >>> cfg.aug["jitter_p"], cfg.std_coeff
        (0.0, 50.0)
    """
    unknown = sorted(set(point) - set(DEFAULT_POINT) - {"seed"})
    bad_aug = sorted(set(point.get("aug_off", [])) - set(AUG_OFF))
    if unknown or bad_aug:
        raise ValueError(
            f"unknown point key(s) {unknown} / augmentation(s) {bad_aug}; expected keys "
            f"{sorted(DEFAULT_POINT)} and augmentations among {sorted(AUG_OFF)}"
        )
    demo_aug = GRID_RECIPE["aug"]
    return get_config(
        "demo",
        fast=fast,
        epochs=epochs,
        train_size=train_size,
        test_size=test_size,
        diag_size=diag_size,
        sim_coeff=float(point["sim_coeff"]),
        std_coeff=float(point["std_coeff"]),
        cov_coeff=float(point["cov_coeff"]),
        gamma=float(point["gamma"]),
        aug={**demo_aug, **{a: AUG_OFF[a] for a in point.get("aug_off", [])}},
        knn_every=0,
        final_eval=True,
        progress=progress,
        tensorboard=False,
        out_dir=out_dir,
        seed=int(point.get("seed", 0)),
        batch_size=GRID_RECIPE["batch_size"],
    )


def summarize(result) -> dict:
    """What the grid keeps of a :class:`~vicreg_edu.trainer.TrainResult` (``final_eval=True`` needed).

    Returns a dict: ``knn`` (trained backbone, k=20), ``knn_random_init``, ``knn_raw_pixels``,
    ``emb_effective_rank``, ``emb_std_mean``, ``emb_dead_fraction``, ``repr_effective_rank``,
    ``repr_std_mean``, ``online_probe_acc`` (last epoch record, held-out images), the last logged
    ``invariance``, ``variance``, ``covariance`` (unweighted) and ``loss`` (weighted total),
    ``curve``: ``[[step, s, v, c], ...]`` at every logged step, and ``wall_time_s``.

    Raises:
        ValueError: the result has no final k-NN evaluation or no epoch record.
    """
    if not result.final or not result.epochs:
        raise ValueError(
            "summarize needs a finished run with final_eval=True; got "
            f"final={result.final!r}, {len(result.epochs)} epoch records"
        )
    last_epoch, last_step = result.epochs[-1], result.history[-1]
    out = {
        "knn": result.final["trained"],
        "knn_random_init": result.final["random_init"],
        "knn_raw_pixels": result.final.get("raw_pixels", float("nan")),
    }
    for key in (
        "emb_effective_rank",
        "emb_std_mean",
        "emb_dead_fraction",
        "repr_effective_rank",
        "repr_std_mean",
        "online_probe_acc",
    ):
        out[key] = last_epoch[key]
    for key in ("invariance", "variance", "covariance", "loss"):
        out[key] = last_step[key]
    out = {k: rounded(v) for k, v in out.items()}
    out["curve"] = [
        [h["step"]] + [rounded(h[k]) for k in ("invariance", "variance", "covariance")] for h in result.history
    ]
    out["wall_time_s"] = round(result.wall_time, 1)
    return out


def run_one(task: tuple[str, dict, dict, str]) -> dict:
    """Train one grid point ``(name, point, sizes, out_root)``; return its JSON record
    (``name``, ``factor``, ``point``, the :func:`summarize` fields, ``cpu_time_s``)."""
    from .trainer import train

    name, point, sizes, out_root = task
    cpu0 = time.process_time()
    summary = summarize(train(config_for(point, **sizes, out_dir=f"{out_root}/{name}")))
    changed = changed_factors(point)
    factor = "seed" if "seed" in point else (changed[0] if changed else None)
    return {
        "name": name,
        "factor": factor,
        "point": point,
        **summary,
        "cpu_time_s": round(time.process_time() - cpu0, 1),
    }


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
        print(
            f"[{i + 1}/{len(tasks)}] {run['name']:>14}: k-NN {run['knn']:.3f}  eff. rank "
            f"{run['emb_effective_rank']:6.1f}  std {run['emb_std_mean']:.3f}  "
            f"s {run['invariance']:.4f} v {run['variance']:.4f} c {run['covariance']:.4f}  "
            f"({run['wall_time_s']:.0f} s, CPU {run['cpu_time_s']:.0f} s)",
            flush=True,
        )
    if pool is not None:
        pool.close()
        pool.join()
    return runs


def grid_main(args: argparse.Namespace) -> int:
    """``python -m vicreg_edu.experiments grid``: run the grid and write its JSON."""
    sizes = {
        "epochs": args.epochs,
        "train_size": args.train_size,
        "test_size": args.test_size,
        "diag_size": args.diag_size,
    }
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
        "settings": {
            **sizes,
            **recipe_of(cfg, _GRID_FIXED),
            "seed": "0, and the baseline repeated with seeds " + ", ".join(map(str, BASELINE_SEEDS)),
            "knn": "k=20, cosine, T=0.07, bank = the train_size training images, test_size test images",
        },
        "default_point": DEFAULT_POINT,
        "factors": FACTORS,
        "aug_off": {k: list(v) if isinstance(v, tuple) else v for k, v in AUG_OFF.items()},
        "machine": {**machine_info(), "threads_per_run": torch.get_num_threads(), "load_avg_at_start": load0},
        "wall_time_s": round(time.time() - t0, 1),
        "cpu_time_s": round(sum(run["cpu_time_s"] for run in runs), 1),
        "workers": args.workers,
        "runs": runs,
    }
    write_results(args.out, data)
    print(f"wrote {args.out} ({len(runs)} runs, {data['wall_time_s'] / 60:.1f} min)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m vicreg_edu.experiments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grid", help="chapter 7's ablation grid")
    g.add_argument("--out", type=Path, default=RESULTS_DIR / "ablation_grid.json")
    g.add_argument("--epochs", type=int, default=SIZES["epochs"])
    g.add_argument("--train-size", type=int, default=SIZES["train_size"])
    g.add_argument("--test-size", type=int, default=SIZES["test_size"])
    g.add_argument("--diag-size", type=int, default=SIZES["diag_size"])
    g.add_argument("--workers", type=int, default=1, help="runs trained at once, one process each (default 1)")
    g.add_argument("--only", nargs="*", metavar="NAME", help="run only these grid points (names as printed)")
    args = parser.parse_args(argv)
    args.argv = argv[1:]
    return grid_main(args)


if __name__ == "__main__":
    sys.exit(main())
