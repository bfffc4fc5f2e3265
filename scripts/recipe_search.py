"""The demo preset's recipe search and its long run: research harness, not library code.

Candidate recipes (augmentation, optimiser, batch size, expander, loss coefficients; see
:data:`SEARCH_SPACE`) screened at short budgets, the best confirmed at the full demo budget on
several seeds. Every run records the k-NN accuracy of the trained encoder, of a random encoder
and of raw pixels, a linear probe, the final variance term v, the embedding's std and effective
rank (trained and random encoder) and its wall and CPU time. Results:
``vicreg_edu.results.load_results("recipe_search")``; the long run (the demo preset for 30
epochs, chapter 5): ``load_results("demo_long")``. What the search found is summarised in
``vicreg_edu/results/README.md``.

Command line (from the repository root; results go to ``vicreg_edu/results/``)::

    python scripts/recipe_search.py search --stage screen --epochs 4
    python scripts/recipe_search.py search --stage confirm --epochs 16 --seeds 0 1 --only base
    python scripts/recipe_search.py search --list              # the candidate recipes
    python scripts/recipe_search.py long --epochs 30           # the demo preset, 3x longer (chapter 5)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from vicreg_edu.batch_augment import TwoViewBatchAugment
from vicreg_edu.config import get_config
from vicreg_edu.data import in_memory_uint8
from vicreg_edu.shapes import Shapes
from vicreg_edu.diagnostics import collapse_report
from vicreg_edu.evaluate import extract_features, linear_probe
from vicreg_edu.experiments import summarize
from vicreg_edu.models import evaluating, random_twin
from vicreg_edu.trainer import train
from vicreg_edu.views import make_augment_config
from vicreg_edu.results import RECIPE_KEYS, RESULTS_DIR, machine_info, recipe_of, rounded, write_results

_DEMO = get_config("demo", fast=False)


# The screen stage's starting point (``screen_candidates``): AdamW 1e-2, batch 128, expander
# 512-512-512, coefficients 25/25/1, crop scale (0.8, 1). Later stages pass their own recipes
# (``--recipes FILE``); the recipe each stored run used is in its record in recipe_search.json.
SEARCH_BASE: dict[str, Any] = {
    "batch_size": 128,
    "optimizer": "adamw",
    "base_lr": 1e-2,
    "weight_decay": 0.05,
    "warmup_epochs": 1.0,
    "expander": "512-512-512",
    "sim_coeff": 25.0,
    "std_coeff": 25.0,
    "cov_coeff": 1.0,
    "aug": {"crop_scale": (0.8, 1.0)},
}

# What the search may change, and the values it tries (one factor at a time in the screen stage),
# roughly in the order of their expected effect (the screen runs them in this order).
# ``aug.X`` keys are AugmentConfig fields (vicreg_edu/views.py); the others are Config fields.
# recipe_search.json also holds runs of three augmentations the library does not have (random
# rotation, pixel noise, translation) and of Shapes without noisy backgrounds, made with a modified
# library (the modification is stored under "experimental"), and says why none was kept.
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


def recipe_config(
    recipe: dict, *, epochs: int, seed: int = 0, out_dir: str = "runs/recipe", train_size: int = 0, fast: bool = False
):
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
    epochs = recipe.pop("epochs", epochs)  # a recipe may set its own budget (e.g. a cheaper model, more epochs)
    return get_config(
        "demo",
        fast=fast,
        **recipe,
        aug=aug,
        epochs=epochs,
        seed=seed,
        train_size=train_size,
        knn_every=0,
        final_eval=True,
        progress=False,
        tensorboard=False,
        out_dir=out_dir,
    )


def _shapes_uint8(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    return in_memory_uint8(Shapes(split))


def embedding_ranks(model, cfg, generator_seed: int | None = None) -> dict:
    """Effective rank (RankMe) and mean std of the embeddings of ``cfg.diag_size`` augmented test
    images (the views the trainer's per-epoch report uses), for ``model`` and for its random twin
    (``models.random_twin``, the trainer's k-NN baseline).

    Returns ``{"emb_effective_rank", "emb_std_mean", "emb_effective_rank_random",
    "emb_std_mean_random"}``.
    """
    x, _ = _shapes_uint8("test")
    gen = torch.Generator().manual_seed(cfg.seed if generator_seed is None else generator_seed)
    view_a, view_b = TwoViewBatchAugment(make_augment_config(cfg))(x[: cfg.diag_size], gen)
    out = {}
    for suffix, m in (("", model), ("_random", random_twin(cfg))):
        with evaluating(m), torch.no_grad():
            z_a, z_b = m(view_a.float())[1], m(view_b.float())[1]
        rep = collapse_report(z_a, z_b).as_dict()
        out[f"emb_effective_rank{suffix}"] = rep["effective_rank"]
        out[f"emb_std_mean{suffix}"] = rep["std_mean"]
    return out


def probe_accuracy(model, cfg, epochs: int = 100, seed: int = 0) -> float:
    """Linear-probe accuracy of ``model``'s frozen backbone on Shapes (all train images, all test images)."""
    aug_cfg = make_augment_config(cfg)
    (xtr, ytr), (xte, yte) = _shapes_uint8("train"), _shapes_uint8("test")
    if cfg.train_size:
        xtr, ytr = xtr[: cfg.train_size], ytr[: cfg.train_size]
    with evaluating(model):
        ftr = extract_features(model.backbone, xtr, aug_cfg.mean, aug_cfg.std)
        fte = extract_features(model.backbone, xte, aug_cfg.mean, aug_cfg.std)
    return linear_probe(ftr, ytr, fte, yte, epochs=epochs, seed=seed)


def run_recipe(
    name: str,
    recipe: dict,
    *,
    epochs: int,
    seed: int = 0,
    stage: str = "",
    train_size: int = 0,
    out_root: str = "runs/recipe_search",
    linear: bool = True,
) -> dict:
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
    load0 = os.getloadavg()[0]
    t0, cpu0 = time.time(), time.process_time()
    cfg = recipe_config(
        recipe, epochs=epochs, seed=seed, train_size=train_size, out_dir=f"{out_root}/{name}-e{epochs}-s{seed}"
    )
    result = train(cfg)
    train_wall, train_cpu = time.time() - t0, time.process_time() - cpu0
    summary = summarize(result)
    ranks = embedding_ranks(result.model, cfg)
    probe = probe_accuracy(result.model, cfg) if linear else None
    rec = {
        "name": name,
        "stage": stage,
        "recipe": json.loads(json.dumps(recipe)),
        "epochs": cfg.epochs,
        "seed": seed,
        "train_size": train_size,
    }
    rec.update({k: summary[k] for k in ("knn", "knn_random_init", "knn_raw_pixels")})
    rec["linear_probe"] = None if probe is None else rounded(probe)
    rec.update({k: summary[k] for k in ("invariance", "variance", "covariance", "emb_std_mean", "online_probe_acc")})
    rec.update({k: rounded(v) for k, v in ranks.items()})
    rec["emb_effective_rank_report"] = summary["emb_effective_rank"]  # the trainer's own last epoch report
    rec["curve"] = summary["curve"]
    rec["train_wall_s"], rec["train_cpu_s"] = round(train_wall, 1), round(train_cpu, 1)
    rec["wall_time_s"], rec["cpu_time_s"] = round(time.time() - t0, 1), round(time.process_time() - cpu0, 1)
    rec["load_avg"] = round(load0, 2)
    return rec


def _recipe_key(rec: dict) -> tuple:
    return (
        rec["name"],
        rec["epochs"],
        rec["seed"],
        rec.get("train_size", 0),
        json.dumps(rec["recipe"], sort_keys=True),
    )


def search_main(args: argparse.Namespace) -> int:
    """``python scripts/recipe_search.py search``: run candidates, append records to the JSON."""
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
    data = (
        json.loads(out.read_text())
        if out.is_file()
        else {
            "what": "recipe search for the demo preset on Shapes (see scripts/recipe_search.py)",
            "base": json.loads(json.dumps(SEARCH_BASE)),
            "runs": [],
        }
    )
    done = {_recipe_key(r) for r in data["runs"]}
    data["machine"] = machine_info()
    data["note"] = (
        "wall times were measured on a 2-core machine shared with other jobs (see load_avg per run); "
        "cpu_time_s is the process CPU time (all threads) and is the comparable cost"
    )
    for seed in args.seeds:
        for name, recipe in candidates:
            rec_key = (
                name,
                args.epochs,
                seed,
                args.train_size,
                json.dumps(json.loads(json.dumps(recipe)), sort_keys=True),
            )
            if rec_key in done:
                print(f"skip {name} (epochs {args.epochs}, seed {seed}): already in {out}")
                continue
            rec = run_recipe(
                name,
                recipe,
                epochs=args.epochs,
                seed=seed,
                stage=args.stage,
                train_size=args.train_size,
                linear=not args.no_linear,
            )
            data["runs"].append(rec)
            done.add(rec_key)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(data, indent=1) + "\n")
            lp = "  -  " if rec["linear_probe"] is None else f"{rec['linear_probe']:.3f}"
            print(
                f"[{args.stage}] {name:>28} e{rec['epochs']} s{seed}: k-NN {rec['knn']:.3f} (rand "
                f"{rec['knn_random_init']:.3f}, pix {rec['knn_raw_pixels']:.3f}) lin {lp} v {rec['variance']:.3f} "
                f"std {rec['emb_std_mean']:.2f} rank {rec['emb_effective_rank']:.0f}/"
                f"{rec['emb_effective_rank_random']:.0f} "
                f"| {rec['wall_time_s']:.0f} s wall, {rec['cpu_time_s']:.0f} CPU-s, load {rec['load_avg']}",
                flush=True,
            )
    return 0


def long_run_main(args: argparse.Namespace) -> int:
    """``python scripts/recipe_search.py long``: the demo preset for ``--epochs`` epochs (its
    schedule stretched to them), k-NN every ``--knn-every`` epochs; writes the per-epoch records
    (k-NN, embedding std, effective rank, online probe), the loss terms at every logged step and
    the final k-NN baselines to ``vicreg_edu/results/demo_long.json``."""
    t0, cpu0, load0 = time.time(), time.process_time(), os.getloadavg()[0]
    sizes = {"train_size": args.train_size, "test_size": args.test_size}
    if args.test_size:
        sizes["diag_size"] = args.test_size
    cfg = get_config(
        "demo",
        fast=False,
        epochs=args.epochs,
        knn_every=args.knn_every,
        seed=args.seed,
        progress=False,
        tensorboard=False,
        out_dir=args.out_dir or f"runs/demo_long-e{args.epochs}",
        **sizes,
    )
    result = train(cfg)
    keep = ("epoch", "step", "knn_acc", "emb_std_mean", "emb_effective_rank", "online_probe_acc")
    data = {
        "what": f"the demo preset trained for {args.epochs} epochs instead of {_DEMO.epochs} "
        "(learning-rate schedule stretched to the longer run), scripts/recipe_search.py",
        "command": "OMP_NUM_THREADS=1 python scripts/recipe_search.py long " + " ".join(args.argv),
        "config": recipe_of(cfg, RECIPE_KEYS + ("knn_every", "train_size", "test_size")),
        "final": {k: rounded(v) for k, v in result.final.items()},
        "epochs": [
            {k: (rounded(r[k]) if isinstance(r[k], float) else r[k]) for k in keep if k in r} for r in result.epochs
        ],
        "curve": [
            [h["step"]] + [rounded(h[k]) for k in ("invariance", "variance", "covariance")] for h in result.history
        ],
        "steps_per_epoch": result.history[-1]["step"] // args.epochs,
        "machine": {**machine_info(), "load_avg_at_start": round(load0, 2)},
        "wall_time_s": round(time.time() - t0, 1),
        "cpu_time_s": round(time.process_time() - cpu0, 1),
    }
    write_results(args.out, data)
    print(f"wrote {args.out}: k-NN {data['final']}, {data['wall_time_s']:.0f} s wall, {data['cpu_time_s']:.0f} CPU-s")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python scripts/recipe_search.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
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
    return {"search": search_main, "long": long_run_main}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
