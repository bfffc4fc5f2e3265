"""VICReg vs SimCLR (NT-Xent) at the demo preset's budget: writes ``vicreg_edu/results/method_comparison.json``.

Both methods train through the same trainer (``Config.method``), on the same data, backbone,
expander, optimiser, schedule, views and 780 steps (the ``demo`` preset, 10 epochs of batch 128).
SimCLR's only own knob, the temperature, is tried on seed 0 at 0.05, 0.1 (SimCLR's ImageNet
value), 0.2 and 0.5 (its CIFAR-10 value); the best one is then run on seeds 1 and 2. VICReg's
seeds 0-2 are the demo preset's stored runs of the recipe search (``recipe_search.json``: the
preset's recipe at the same 10 epochs; :func:`stored_vicreg_runs` checks the recipe);
``--fresh-vicreg`` also trains VICReg's seed 0 here, beside the SimCLR runs. Each run records
k-NN (trained, random encoder, raw pixels), the linear probe, the embedding's std and effective
rank and the CPU time (``scripts/recipe_search.py``'s ``run_recipe``). Then the memory of one
training step of each loss, counted on fake tensors (``vicreg_edu.memory.LiveBytes``): the loss
alone (forward + backward of an (N, D) pair) over batch sizes and widths, and the whole demo step.

Runs are stored as they finish and a run already in the file is skipped, so the script can be
stopped and started again. ``--lock FILE`` takes an exclusive ``flock`` on FILE around each
training run (a machine shared with other jobs). Usage::

    python scripts/method_comparison.py --lock /tmp/vicreg-train.lock      # everything
    python scripts/method_comparison.py memory                             # the memory table only
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_search import run_recipe  # noqa: E402

from vicreg_edu import loss as loss_module  # noqa: E402
from vicreg_edu.config import get_config  # noqa: E402
from vicreg_edu.contrastive import nt_xent_loss, nt_xent_terms  # noqa: E402
from vicreg_edu.memory import LiveBytes, estimate_step_memory  # noqa: E402
from vicreg_edu.results import RESULTS_DIR, load_results, machine_info, write_results  # noqa: E402

OUT = RESULTS_DIR / "method_comparison.json"
TEMPERATURES = (0.05, 0.1, 0.2, 0.5)
SEEDS = (0, 1, 2)


@contextlib.contextmanager
def locked(path: str | None):
    if not path:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


WHAT = (
    "VICReg vs SimCLR (NT-Xent) through the same trainer at the demo preset's budget (10 epochs of "
    "batch 128, 780 steps, same model, AdamW schedule and views); SimCLR temperature tried at "
    f"{TEMPERATURES} on seed 0, the best on seeds 1 and 2; VICReg (the preset): the recipe search's "
    "stored runs of seeds 0-2 (vicreg_stored), and seed 0 trained here with --fresh-vicreg (runs)"
)


def _load() -> dict:
    if OUT.exists():
        return {**load_results("method_comparison"), "what": WHAT}
    return {"what": WHAT, "command": "python scripts/method_comparison.py --lock /tmp/vicreg-train.lock", "runs": []}


def _run(data: dict, method: str, seed: int, temperature: float | None, lock: str | None) -> dict:
    for rec in data["runs"]:
        if rec["method"] == method and rec["seed"] == seed and rec["temperature"] == temperature:
            return rec
    recipe = {} if method == "vicreg" else {"method": "simclr", "temperature": temperature}
    name = method if temperature is None else f"{method}-t{temperature}"
    print(f"[{time.strftime('%H:%M:%S')}] {name} seed {seed} ...", flush=True)
    with locked(lock):
        rec = run_recipe(name, recipe, epochs=get_config("demo", fast=False).epochs, seed=seed, stage="method")
    rec.update(method=method, temperature=temperature)
    data["runs"].append(rec)
    data["machine"] = machine_info()
    write_results(OUT, data)
    print(f"   k-NN {rec['knn']:.4f} (random {rec['knn_random_init']:.4f}), {rec['train_wall_s']} s wall", flush=True)
    return rec


PRESET_RUN = "nf-crop0.6-exp1024-512"  # the demo preset's recipe in recipe_search.json (stages speedrun3-4)


def stored_vicreg_runs(seeds=SEEDS) -> list[dict]:
    """The recipe search's 10-epoch runs of the demo preset's recipe, for ``seeds``; raises if a
    stored recipe differs from today's preset in the fields it records (views, expander, epochs)."""
    demo = get_config("demo", fast=False)
    runs = {
        r["seed"]: r
        for r in load_results("recipe_search")["runs"]
        if r["name"] == PRESET_RUN and r["epochs"] == demo.epochs and r["train_size"] == 0
    }
    out = []
    for seed in seeds:
        r = runs[seed]
        recipe = r["recipe"]
        same = (
            recipe["expander"] == demo.expander
            and tuple(recipe["aug"]["crop_scale"]) == tuple(demo.aug["crop_scale"])
            and recipe["aug"]["flip_p"] == demo.aug["flip_p"]
        )
        if not same:
            raise RuntimeError(f"stored run {PRESET_RUN} seed {seed} has recipe {recipe}, not the demo preset's")
        keep = ("seed", "knn", "knn_random_init", "knn_raw_pixels", "linear_probe", "variance", "emb_std_mean")
        out.append(
            {"method": "vicreg", "temperature": None, "stored": f"recipe_search {r['stage']}"}
            | {k: r[k] for k in keep}
            | {"emb_effective_rank": r["emb_effective_rank"], "train_cpu_s": r["train_cpu_s"]}
        )
    return out


def _simclr_criterion(z_a, z_b, temperature=0.5, **unused):
    return nt_xent_terms(z_a, z_b, temperature=temperature, check_finite=False)


def _fake_peak(fn) -> int:
    from torch._subclasses.fake_tensor import FakeTensorMode

    mem = LiveBytes()
    with FakeTensorMode(), mem:
        fn(mem)
    return mem.peak


def loss_memory(n: int, d: int, method: str) -> int:
    """Peak bytes of the loss alone: forward and backward of an (n, d) float32 pair (fake tensors)."""

    def run(mem):
        z_a = torch.randn(n, d, requires_grad=True)
        z_b = torch.randn(n, d, requires_grad=True)
        mem.reset()
        if method == "vicreg":
            out = loss_module.vicreg_loss(z_a, z_b, check_finite=False).loss
        else:
            out = nt_xent_loss(z_a, z_b, 0.2, check_finite=False)
        out.backward()

    with _gpu_path():
        return _fake_peak(run) - 2 * 2 * n * d * 4  # less the inputs' gradients (same for both losses)


@contextlib.contextmanager
def _gpu_path():
    original = loss_module._host_reads_are_free
    loss_module._host_reads_are_free = lambda z: False
    try:
        yield
    finally:
        loss_module._host_reads_are_free = original


def step_memory(batch: int, method: str) -> int:
    """Peak bytes of one whole demo training step (memory.estimate_step_memory, fp32), with the chosen loss."""
    cfg = get_config("demo", fast=False)
    if method == "vicreg":
        return estimate_step_memory(cfg, batch, "fp32")
    original = loss_module.vicreg_loss
    loss_module.vicreg_loss = _simclr_criterion  # memory._training_step imports the loss from vicreg_edu.loss
    try:
        return estimate_step_memory(cfg, batch, "fp32")
    finally:
        loss_module.vicreg_loss = original


def memory_main() -> dict:
    table = {"loss_only": [], "demo_step": []}
    for d in (512, 8192):
        for n in (128, 512, 2048, 8192):
            row = {"batch": n, "dim": d, **{m: loss_memory(n, d, m) for m in ("vicreg", "simclr")}}
            table["loss_only"].append(row)
            print(
                f"loss only N={n} D={d}: VICReg {row['vicreg'] / 2**20:.1f} MiB, SimCLR {row['simclr'] / 2**20:.1f} MiB"
            )
    for n in (128, 512, 2048):
        row = {"batch": n, **{m: step_memory(n, m) for m in ("vicreg", "simclr")}}
        table["demo_step"].append(row)
        print(f"demo step N={n}: VICReg {row['vicreg'] / 2**20:.1f} MiB, SimCLR {row['simclr'] / 2**20:.1f} MiB")
    table["what"] = (
        "peak bytes counted on fake tensors (vicreg_edu.memory.LiveBytes, float32, the loss's GPU path): "
        "loss_only = the loss's own forward + backward on an (N, D) pair, less the two (N, D) input gradients; "
        "demo_step = one whole training step of the demo model (memory.estimate_step_memory) with each loss"
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="all", choices=("all", "runs", "memory"))
    parser.add_argument("--lock", default=None, help="flock this file around each training run")
    parser.add_argument("--fresh-vicreg", action="store_true", help="also train VICReg's seed 0 here")
    args = parser.parse_args(argv)
    data = _load()
    if args.what in ("all", "memory"):
        data["memory"] = memory_main()
        write_results(OUT, data)
    if args.what in ("all", "runs"):
        for t in TEMPERATURES:
            _run(data, "simclr", 0, t, args.lock)
        data["vicreg_stored"] = stored_vicreg_runs()
        simclr0 = [r for r in data["runs"] if r["method"] == "simclr" and r["seed"] == 0]
        best = max(simclr0, key=lambda r: r["knn"])["temperature"]
        data["simclr_temperature"] = best
        for seed in SEEDS[1:]:
            _run(data, "simclr", seed, best, args.lock)
        if args.fresh_vicreg:
            _run(data, "vicreg", 0, None, args.lock)
        write_results(OUT, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
