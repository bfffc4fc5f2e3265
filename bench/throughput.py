"""Training throughput of a preset vs the backbone's own forward+backward limit, same device, same run.

    python bench/throughput.py --preset demo                 # CPU here
    python bench/throughput.py --preset cifar10 --set dataset=shapes  # CIFAR recipe, in-memory 32 px data
    python bench/throughput.py --preset imagenet-resnet50 --fake-data --set batch_size=256

1. *Reference*: the backbone alone, forward + backward + SGD step on one view of a per-process batch,
   with the run's AMP dtype and memory format. A VICReg step pushes two views through it, so the
   trainer can at best reach half of this many *images* per second.
2. *Trainer*: the real ``vicreg_edu.trainer.train`` loop (augmentation, two views, expander, loss,
   LARS, online probe, logging) for ``--steps`` steps; images/s from its own step records.

Printed figure: ``efficiency = 2 x trainer images/s / backbone views/s`` (1.0 = the data pipeline,
expander, loss and optimiser cost nothing beyond the backbone).

``--profile``: one epoch of the trainer's own objects (``trainer.start``: loader, model, loss,
optimisers), step by step, with a clock between the phases of :func:`vicreg_edu.trainer.train_step`
(the backward pass split by gradient hooks at the expander's input and output), then the epoch-end
work (collapse report, k-NN) spread over the epoch's steps. Wall and CPU (process) seconds per
step; the shares sum to the profiled step. Printed beside: the trainer's own step time (same
run), so the profile's clocks can be checked against it::

    python bench/throughput.py --preset demo --profile
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from vicreg_edu.config import apply_overrides, get_config
from vicreg_edu.evaluate import knn_comparison, load_eval_data
from vicreg_edu.trainer import (
    _amp_dtype,
    build_criterion,
    build_model,
    collapse_record,
    learning_rate,
    start,
    train,
)


def backbone_views_per_s(cfg, device, size: int, iters: int) -> float:
    model = build_model(cfg).backbone.to(device)
    amp = _amp_dtype(cfg, device)
    if cfg.channels_last:  # as the trainer (Run.prepare), CPU included
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(cfg.batch_size, 3, size, size, device=device)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = model(x).float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(10):  # warm-up (cuDNN autotuning, allocator)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iters * cfg.batch_size / (time.perf_counter() - t)


PHASES = (
    "views (augmentation)",
    "backbone forward",
    "expander forward",
    "loss forward",
    "probe forward",
    "loss backward",
    "expander backward",
    "backbone backward",
    "optimiser step",
    "probe step",
    "log (loss to host)",
    "collapse report",
    "k-NN (mid-run)",
    "final k-NN (3 encoders)",
)


class Clock:
    """Wall and process-CPU seconds between marks, added to the phase named at each mark."""

    def __init__(self):
        self.wall, self.cpu = defaultdict(float), defaultdict(float)
        self.reset()

    def reset(self) -> None:
        self.t = (time.perf_counter(), time.process_time())

    def mark(self, phase: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall[phase] += now[0] - self.t[0]
        self.cpu[phase] += now[1] - self.t[1]
        self.t = now


def profile_epoch(cfg, warmup: int = 5) -> tuple[Clock, int]:
    """One epoch of ``cfg`` (its first ``warmup`` steps untimed), phase by phase; ``(clock, steps timed)``.

    The phases of ``trainer.train_step`` in its order, on the objects ``trainer.start`` builds
    (one process). The backward pass is one ``backward()`` call, split by hooks on the gradients
    of the embeddings (loss backward done) and of the representations (expander backward done):
    the two views' forwards are grouped (backbone a, b; expander a, b), so autograd runs the
    expander's backward for both views before the backbone's.
    """
    run, state, loader, _model, evals, log = start(cfg)
    criterion = build_criterion(cfg)
    net = state.net
    clock, timed = Clock(), 0
    loader.set_epoch(0)
    batches = iter(loader)
    net.train()
    for i in range(len(loader)):
        if i == warmup:
            clock = Clock()
        clock.reset()
        x_a, x_b, y = next(batches)
        clock.mark("views (augmentation)")
        lr = learning_rate(state.step, run.total_steps, run.warmup_steps, cfg.lr, cfg.end_lr_ratio)
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        with run.autocast():
            r_a, r_b = net.model.backbone(run.prepare(x_a)), net.model.backbone(run.prepare(x_b))
            clock.mark("backbone forward")
            z_a, z_b = net.model.expander(r_a), net.model.expander(r_b)
            clock.mark("expander forward")
            terms = criterion(z_a.to(run.dtype), z_b.to(run.dtype))
            clock.mark("loss forward")
            logits = net.probe(r_a.detach())
            probe_loss = torch.nn.functional.cross_entropy(logits.to(run.dtype), y)
            clock.mark("probe forward")
        pending = {"z": 2, "r": 2}

        def arrived(kind: str, phase: str):
            def hook(grad):
                pending[kind] -= 1
                if pending[kind] == 0:
                    clock.mark(phase)

            return hook

        for z in (z_a, z_b):
            z.register_hook(arrived("z", "loss backward"))
        for r in (r_a, r_b):
            r.register_hook(arrived("r", "expander backward"))
        state.optimizer.zero_grad(set_to_none=True)
        state.probe_optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(terms.loss + probe_loss).backward()
        clock.mark("backbone backward")
        state.scaler.step(state.optimizer)
        clock.mark("optimiser step")
        state.scaler.step(state.probe_optimizer)
        state.scaler.update()
        clock.mark("probe step")
        state.step += 1
        if state.step % cfg.log_every == 0:
            log.step(state.step, terms, lr)
        clock.mark("log (loss to host)")
        timed += i >= warmup
    # the run's evaluation work, per epoch: the collapse report every epoch, a k-NN of the trained
    # encoder every knn_every epochs (not after the last), the final 3-encoder k-NN once
    epochs = cfg.epochs
    mid_knn = len([e for e in range(1, epochs) if cfg.knn_every and e % cfg.knn_every == 0])
    clock.reset()
    collapse_record(run, net.model, evals.diag_views)
    clock.mark("collapse report")
    data = load_eval_data(cfg)
    clock.reset()
    knn_comparison(net.model, cfg, run.device, run.amp_dtype, data, baselines=False)
    clock.mark("k-NN (mid-run)")
    if cfg.final_eval:
        knn_comparison(net.model, cfg, run.device, run.amp_dtype, data)
        clock.mark("final k-NN (3 encoders)")
    log.close()
    per_epoch = {"collapse report": 1.0, "k-NN (mid-run)": mid_knn / epochs, "final k-NN (3 encoders)": 1 / epochs}
    for phase, times in per_epoch.items():  # each once measured: as a cost per training step of the run
        clock.wall[phase] *= times * timed / len(loader)
        clock.cpu[phase] *= times * timed / len(loader)
    return clock, timed


def print_profile(clock: Clock, steps: int, trainer_ms: float | None) -> None:
    """Per step: wall ms, CPU ms (all threads), share of the step's wall time; evaluation spread over the steps."""
    wall = {p: clock.wall[p] / steps for p in PHASES}
    cpu = {p: clock.cpu[p] / steps for p in PHASES}
    total = sum(wall.values())
    print(f"\n{'phase (per training step)':<28s} {'wall ms':>9s} {'CPU ms':>9s} {'share':>7s}")
    for p in PHASES:
        print(f"{p:<28s} {1e3 * wall[p]:9.2f} {1e3 * cpu[p]:9.2f} {wall[p] / total:7.1%}")
    print(f"{'step (sum)':<28s} {1e3 * total:9.2f} {1e3 * sum(cpu.values()):9.2f} {1:7.1%}")
    if trainer_ms is not None:
        print(f"{'trainer step (same run)':<28s} {trainer_ms:9.2f}   (the trainer's own timer, evaluation excluded)")


def write_fake_imagefolder(root: Path, n: int, size: int = 256) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("val", max(10, n // 10))):
        for i in range(count):
            d = root / split / f"class{i % 10}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.jpg", quality=90)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="demo")
    p.add_argument("--steps", type=int, default=40, help="trainer steps to time (after 10 warm-up steps)")
    p.add_argument(
        "--fake-data", action="store_true", help="imagenet-resnet50: write a random-JPEG ImageFolder to read"
    )
    p.add_argument(
        "--fake-size", type=int, default=0, help="images in the fake training set (default: enough for the run)"
    )
    p.add_argument(
        "--profile", action="store_true", help="then profile one epoch phase by phase (see the module docstring)"
    )
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE")
    args = p.parse_args()

    full = apply_overrides(get_config(args.preset, fast=False), args.overrides)
    cfg = full
    tmp = tempfile.TemporaryDirectory()
    if args.fake_data:
        n = args.fake_size or cfg.batch_size * (args.steps + 12)
        if cfg.dataset not in ("imagefolder", "imagenet"):
            raise SystemExit(
                "--fake-data writes an ImageFolder (imagenet-resnet50 preset); for the 32 px "
                "recipes use --set dataset=shapes (same in-memory code path, no files)"
            )
        write_fake_imagefolder(Path(tmp.name), n)
        cfg = cfg.replace(data_dir=tmp.name)
    log_every = 10
    cfg = cfg.replace(
        max_steps=args.steps + log_every,
        log_every=log_every,
        epochs=max(cfg.epochs, 1),
        out_dir=str(Path(tmp.name) / "run"),
        final_eval=False,
        knn_every=0,
        progress=False,
        tensorboard=False,
        train_size=cfg.train_size,
    )
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.device in ("auto", "cuda") else "cpu")
    torch.backends.cudnn.benchmark = True  # as the trainer does on CUDA
    size = 224 if cfg.augment == "imagenet" else 32
    ref = backbone_views_per_s(cfg, device, size, iters=max(10, args.steps))
    result = train(cfg)
    rates = [r["imgs_per_s"] for r in result.history if r["step"] > log_every]  # skip the warm-up window
    rate = statistics.median(rates)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"\npreset {args.preset} | {cfg.backbone} + {cfg.expander} | batch {cfg.batch_size} | {size}px | "
        f"amp {_amp_dtype(cfg, device)} | compile {cfg.compile} | device {name}"
    )
    print(f"{'backbone fwd+bwd (reference)':<34s} {ref:10.1f} views/s  -> limit {ref / 2:10.1f} images/s")
    print(f"{'VICReg trainer step':<34s} {rate:10.1f} images/s")
    print(f"{'efficiency (trainer / limit)':<34s} {2 * rate / ref:10.2f}")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    if args.profile:
        prof = full.replace(out_dir=str(Path(tmp.name) / "profile"), progress=False, tensorboard=False)
        clock, steps = profile_epoch(prof)
        print(f"\nprofile: one epoch of {args.preset} ({steps} steps timed after 5 warm-up steps)")
        print_profile(clock, steps, trainer_ms=1e3 * cfg.batch_size / rate)


if __name__ == "__main__":
    main()
