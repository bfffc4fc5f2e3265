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
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vicreg_edu.config import apply_overrides, get_config
from vicreg_edu.trainer import _amp_dtype, build_model, train


def backbone_views_per_s(cfg, device, size: int, iters: int) -> float:
    model = build_model(cfg).backbone.to(device)
    amp = _amp_dtype(cfg, device)
    cl = device.type == "cuda" and cfg.channels_last
    if cl:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(cfg.batch_size, 3, size, size, device=device)
    if cl:
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
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE")
    args = p.parse_args()

    cfg = apply_overrides(get_config(args.preset, fast=False), args.overrides)
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


if __name__ == "__main__":
    main()
