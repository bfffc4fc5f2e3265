"""Issues 15 and 25's GPU speed suite: measurements in one go, each in its own process with a time cap.

    python bench/gpu_suite.py                        # on the GPU: the five below, at most 405 s (caps)
    python bench/gpu_suite.py --profile --jpeg       # and profile_step, jpeg_planned (540 s of caps)
    python bench/gpu_suite.py --tiny --profile --jpeg  # CPU dry run, tiny sizes, seconds per measurement
    python bench/gpu_suite.py --only loss_vs_lightly,jpeg_pipeline --out /tmp/suite.json

Writes one JSON (``--out``, default ``bench/results/gpu_suite[_tiny].json``) and prints a table.
Every ratio is between two figures measured in the same run, on the same device.

  cifar_step       cifar10 recipe (ResNet-18 CIFAR stem + 2048x3 expander, LARS) at batch 256 and 512:
                   the trainer's steady-state images/s (``vicreg_edu.trainer.train``: in-memory batched
                   augmentation, loss, optimiser, online probe, logging every 10 steps) over the model's
                   limit: forward + backward of backbone + expander on two views of pre-made tensors,
                   same precision and memory format, nothing else (no optimiser step, no probe).
                   Also the epoch time for 50,000 images.
  imagenet_step    the same for the imagenet-resnet50 recipe (ResNet-50, 224 px, 8192x3 expander) at
                   the largest batch of a few tried that fits, on synthetic in-memory uint8 images
                   (256 px) augmented on the device.
  jpeg_pipeline    synthetic ImageNet-size JPEGs (500x375, quality 90) written to a temporary folder:
                   decode + two-view augmentation images/s of (a) today's DataLoader + PIL path with
                   every CPU core as a worker, (b) workers that only read file bytes, then
                   ``torchvision.io.decode_jpeg(..., device=<the GPU>)`` on the batch and the batched
                   two-view augmentation on the device. Ratio (b) / imagenet_step's trainer rate.
  loss_vs_lightly  ``bench/loss.py`` cases: forward + backward of our loss (default, and
                   ``check_finite=False``, the trainer's sync-free call) and of lightly's VICRegLoss,
                   N in {256, 2048}, D = 8192. Ratio lightly / ours. On a GPU machine without
                   lightly it first runs ``pip install --no-index --find-links bench/wheels lightly``
                   (wheels from ``scripts/bundle_lightly.sh``; never on CPU).
  compile_fp16     the trainer for 200 steps on Shapes with the cifar10 recipe: eager (the
                   device's default precision), ``compile=True``, ``amp=fp16`` (GradScaler), and eager
                   with another seed. Loss curves compared; tolerance = the seed-to-seed difference
                   (a change that moves the curve less than changing the seed is within noise).

  profile_step     (``--profile``) the trainer's own loop (``trainer.start`` + ``train_one_epoch``)
                   for a CIFAR-size (cifar10 recipe, 32 px, batch 256) and a ResNet-50 (224 px,
                   batch 256) configuration: 10 warm-up steps, then 10 under torch.profiler (CPU
                   and, on a GPU, CUDA activities). The backbone, expander, probe, loss, both
                   optimisers' steps, the loader's next batch and the log's host read are wrapped
                   in ``record_function`` ranges on these objects (no library change); backward
                   ops are given to the forward range with their autograd sequence number. Per
                   phase and step: host ms, device (kernel) ms, kernels, scalar reads, CUDA
                   syncs, shares. Also one LARS step on the model's parameters, per parameter vs
                   ``foreach``.
  jpeg_planned     (``--jpeg``) ``vicreg_edu.jpeg_decode.JpegTwoViewDecoder`` (draws planned on the
                   CPU before the decode; ``decode_jpeg`` on the device 1 or 16 files per call; crop
                   + resize per image; batched colour ops) on the jpeg_pipeline files, next to the
                   DataLoader + PIL path: images/s and images per CPU-second of each.

``--tiny`` runs the same code on CPU with tiny models and sizes (a smoke test, no timing claim).
Where a measurement needs CUDA the tiny run uses the CPU fallback and says so in ``fallbacks``:
decode_jpeg on CPU, torch.compile with the ``eager`` backend (inductor compiles for minutes on a
small CPU), fp16 autocast + GradScaler on CPU.

The trainer runs are the real ``train()`` loop; the suite only swaps its data source
(``make_two_view_loader`` / ``diagnostic_views``) for an in-memory loader over the suite's images.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASUREMENTS = ("cifar_step", "imagenet_step", "jpeg_pipeline", "loss_vs_lightly", "compile_fp16")
EXTRA = {"profile": "profile_step", "jpeg": "jpeg_planned"}  # --profile, --jpeg add these
CAPS_S = {
    "profile_step": 75,
    "jpeg_planned": 60,
    "cifar_step": 70,
    "imagenet_step": 90,
    "jpeg_pipeline": 45,
    "loss_vs_lightly": 50,
    "compile_fp16": 150,
}  # GPU: 540 s in all; the five defaults 405 s
TINY_CAPS_S = {name: 150 for name in CAPS_S}
ALL = MEASUREMENTS + tuple(EXTRA.values())


# ----------------------------------------------------------------------------------------------
# shared pieces (run inside the child process of one measurement)


def _torch():
    import torch

    return torch


def _device():
    torch = _torch()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device) -> None:
    if device.type == "cuda":
        _torch().cuda.synchronize()


def _timed(fn, device, iters: int, warmup: int) -> float:
    """Seconds per call of fn, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / iters


def model_limit(cfg, device, batch: int, size: int, iters: int, warmup: int) -> float:
    """Images/s of forward + backward of backbone + expander on two views of pre-made tensors."""
    torch = _torch()
    from vicreg_edu.models import build_model
    from vicreg_edu.trainer import _amp_dtype

    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    channels_last = device.type == "cuda" and cfg.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    amp = _amp_dtype(cfg, device)
    views = [torch.randn(batch, 3, size, size, device=device) for _ in range(2)]
    if channels_last:
        views = [v.contiguous(memory_format=torch.channels_last) for v in views]

    def step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            z = [model(v)[1] for v in views]
        loss = sum(e.float().square().mean() for e in z)
        model.zero_grad(set_to_none=True)
        loss.backward()

    return batch / _timed(step, device, iters, warmup)


def inject_data(images, labels) -> None:
    """Make ``train()`` read the given uint8 (N, 3, H, W) images (in memory, augmented on the device)."""
    torch = _torch()
    import vicreg_edu.trainer as T
    from vicreg_edu.batch_augment import TwoViewBatchAugment
    from vicreg_edu.data import DiagnosticViews, InMemoryTwoViewLoader

    def loader(name, root, aug, batch_size, *, seed=0, device="cpu", **_):
        return InMemoryTwoViewLoader(
            images.to(device), labels.to(device), TwoViewBatchAugment(aug), batch_size, seed=seed
        )

    def diagnostic_views(name, root, aug, n, seed=0, **_):
        if n == 0:
            return None
        view_a, view_b = TwoViewBatchAugment(aug)(images[: max(2, n)], torch.Generator().manual_seed(seed))
        return DiagnosticViews(view_a, view_b, aug.mean, aug.std, "the benchmark's images")

    T.make_two_view_loader, T.diagnostic_views = loader, diagnostic_views


def run_trainer(cfg, steps: int, log_every: int, out_dir: str):
    """The real training loop for ``steps`` steps; returns (steady images/s, loss per record, history)."""
    from vicreg_edu.trainer import train

    cfg = cfg.replace(
        max_steps=steps,
        log_every=log_every,
        out_dir=out_dir,
        final_eval=False,
        knn_every=0,
        progress=False,
        tensorboard=False,
        ckpt_every=0,
        diag_size=min(cfg.diag_size, 64),
    )
    result = train(cfg)
    steps_rec = [r for r in result.history if "imgs_per_s" in r]
    rates = [r["imgs_per_s"] for r in steps_rec[1:]] or [r["imgs_per_s"] for r in steps_rec]  # skip warm-up window
    return statistics.median(rates), [r["loss"] for r in steps_rec], steps_rec


def synthetic_images(n: int, size: int, seed: int = 0):
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    pool = torch.randint(0, 256, (min(n, 512), 3, size, size), generator=g, dtype=torch.uint8)
    return pool[torch.arange(n) % len(pool)], torch.randint(0, 10, (n,), generator=g)


# ----------------------------------------------------------------------------------------------
# the five measurements: each returns {"results": ..., "ratios": ..., "fallbacks": [...]}


def step_vs_limit(
    preset: str,
    batches: list[int],
    size: int,
    src_size: int,
    steps: int,
    tiny: bool,
    tmp: str,
    extra: dict,
    largest_only: bool = False,
) -> dict:
    """Trainer images/s over the model's limit for each batch (or only the first that fits)."""
    torch = _torch()
    from vicreg_edu.config import get_config

    device = _device()
    torch.backends.cudnn.benchmark = True  # as the trainer does on CUDA
    base = get_config(preset, fast=False).replace(dataset="shapes", **extra)
    rows, ratios, fallbacks = [], {}, []
    if tiny:
        fallbacks.append(f"tiny: {base.backbone} + {base.expander} at {size} px instead of the recipe's model")
    tried = []
    for batch in batches:
        cfg = base.replace(batch_size=batch)
        try:
            limit = model_limit(cfg, device, batch, size, iters=3 if tiny else 15, warmup=1 if tiny else 5)
        except torch.OutOfMemoryError:
            tried.append(f"batch {batch}: out of memory")
            torch.cuda.empty_cache()
            continue
        log_every = 2 if tiny else 10
        images, labels = synthetic_images(batch * (steps + 2), src_size)
        inject_data(images, labels)
        try:
            rate, _, _ = run_trainer(cfg, steps, log_every, os.path.join(tmp, f"{preset}_{batch}"))
        except torch.OutOfMemoryError:  # the model fits, the whole step does not: try the next batch
            tried.append(f"batch {batch}: trainer out of memory (limit measured: {limit:.0f} images/s)")
            del images, labels
            torch.cuda.empty_cache()
            continue
        del images, labels
        rows.append(
            {
                "batch": batch,
                "limit_images_per_s": limit,
                "trainer_images_per_s": rate,
                "ratio": rate / limit,
                "epoch_s_50k": 50_000 / rate,
                "amp": str(cfg.amp),
                "channels_last": device.type == "cuda" and cfg.channels_last,
            }
        )
        ratios[f"trainer/limit@{batch}"] = rate / limit
        if largest_only:
            break
    return {
        "results": {
            "rows": rows,
            "skipped": tried,
            "steps": steps,
            "image_size": size,
            "limit": "fwd+bwd of backbone+expander on two views, pre-made tensors, no optimiser",
        },
        "ratios": ratios,
        "fallbacks": fallbacks,
    }


def m_cifar_step(tiny: bool, tmp: str) -> dict:
    extra = dict(backbone="small_cnn", expander="32-32") if tiny else {}
    return step_vs_limit("cifar10", [8] if tiny else [256, 512], 32, 32, 4 if tiny else 60, tiny, tmp, extra)


def m_imagenet_step(tiny: bool, tmp: str) -> dict:
    if tiny:
        extra = dict(backbone="small_cnn", expander="32-32", aug={"size": 64})
        return step_vs_limit("imagenet-resnet50", [8], 64, 72, 4, tiny, tmp, extra, largest_only=True)
    # the largest of these per-GPU batches that fits, tried in this order; bf16, channels_last
    return step_vs_limit("imagenet-resnet50", [512, 384, 256, 128], 224, 256, 40, tiny, tmp, {}, largest_only=True)


def write_jpegs(folder: Path, n: int, seed: int = 0) -> float:
    """n synthetic 500x375 JPEGs (quality 90): smooth random colour fields + noise, photo-like sizes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "class0").mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(n):
        low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(low).resize((500, 375), Image.BICUBIC), dtype=np.float32)
        img += rng.normal(0, 12, img.shape)
        path = folder / "class0" / f"{i:05d}.jpg"
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        total += path.stat().st_size
    return total / n


class _FileBytes:
    """Dataset of raw file bytes: all the GPU path's loader workers do (bytes travel through the
    worker pipe; tensors would each need a shared-memory file descriptor)."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return Path(self.paths[i]).read_bytes()


def _as_list(batch):
    return batch


def _to_uint8(data: bytes):
    return _torch().frombuffer(bytearray(data), dtype=_torch().uint8)


def pil_loader_rate(folder: Path, cfg, batch: int, workers: int, device) -> tuple[float, float]:
    """Images/s of today's DataLoader + PIL two-view path over an ImageFolder, to the device, and
    images per CPU-second (the main process and its workers; the workers' warm-up epoch start
    included, so a lower bound)."""
    import torchvision
    from torch.utils.data import DataLoader

    from vicreg_edu.augment import TwoViewTransform
    from vicreg_edu.data import TwoViewDataset, read_image

    ds = torchvision.datasets.ImageFolder(str(folder), loader=read_image)
    loader = DataLoader(
        TwoViewDataset(ds, TwoViewTransform(cfg)),
        batch_size=batch,
        num_workers=workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
        persistent_workers=True,
    )
    list(zip(range(1), loader))  # start the workers
    t, seen = time.perf_counter(), 0
    cpu = _cpu_s()
    for (a, b), _ in loader:
        a, b = a.to(device, non_blocking=True), b.to(device, non_blocking=True)
        seen += len(a)
    _sync(device)
    wall = time.perf_counter() - t
    loader._iterator._shutdown_workers()  # joined: their CPU time is now in RUSAGE_CHILDREN
    return seen / wall, seen / (_cpu_s() - cpu)


def _cpu_s() -> float:
    """CPU seconds of this process and of its children that have ended (loader workers)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def m_jpeg_pipeline(tiny: bool, tmp: str) -> dict:
    torch = _torch()
    from torch.utils.data import DataLoader
    from torchvision.io import decode_jpeg

    from vicreg_edu.batch_augment import TwoViewBatchAugment
    from vicreg_edu.views import imagenet_augment

    device = _device()
    n, batch = (16, 8) if tiny else (2048, 256)
    workers = min(os.cpu_count() or 1, 2 if tiny else 64)
    folder = Path(tmp) / "jpegs"
    t = time.perf_counter()
    mean_bytes = write_jpegs(folder, n)
    write_s = time.perf_counter() - t
    paths = sorted((folder / "class0").glob("*.jpg"))
    cfg = imagenet_augment()
    fallbacks = [] if device.type == "cuda" else ["decode_jpeg and the batched augmentation on CPU (no GPU)"]

    pil_rate, _ = pil_loader_rate(folder, cfg, batch, workers, device)  # (a) DataLoader + PIL, every core a worker

    # (b) workers read bytes; decode on the device in batches; batched two-view augmentation there
    raw = DataLoader(
        _FileBytes(paths),
        batch_size=batch,
        num_workers=workers,
        collate_fn=_as_list,
        drop_last=True,
        persistent_workers=True,
    )
    aug, gen = TwoViewBatchAugment(cfg), torch.Generator().manual_seed(0)

    def epoch():
        count = 0
        for files in raw:
            x = torch.stack(decode_jpeg([_to_uint8(f) for f in files], device=device))  # (B, 3, 375, 500) uint8
            view_a, view_b = aug(x, gen)
            count += len(view_a)
        _sync(device)
        return count

    epoch()  # warm-up: workers, nvjpeg handles, kernels
    t = time.perf_counter()
    seen = epoch()
    dev_rate = seen / (time.perf_counter() - t)
    # decode alone on the device (no augmentation), to split the cost
    files = [_to_uint8(Path(p).read_bytes()) for p in paths[:batch]]
    decode_s = _timed(lambda: decode_jpeg(files, device=device), device, iters=2 if tiny else 5, warmup=1)
    return {
        "results": {
            "images": n,
            "mean_file_kb": mean_bytes / 1024,
            "write_s": write_s,
            "workers": workers,
            "batch": batch,
            "pil_dataloader_images_per_s": pil_rate,
            "decode_on_device_plus_batched_aug_images_per_s": dev_rate,
            "decode_only_images_per_s": batch / decode_s,
            "decode_device": device.type,
            "note": "all files 500x375, so decoded images stack into one batch; real ImageNet "
            "sizes vary and would need per-image crop boxes before one batch",
        },
        "ratios": {"device_path/pil_path": dev_rate / pil_rate},
        "fallbacks": fallbacks,
    }


def m_jpeg_planned(tiny: bool, tmp: str) -> dict:
    """vicreg_edu.jpeg_decode (draws planned on the CPU, decode_jpeg on the device a few files at a
    time, crop + resize per image, batched colour ops) next to the DataLoader + PIL path, same files."""
    torch = _torch()
    from vicreg_edu.jpeg_decode import JpegTwoViewDecoder
    from vicreg_edu.views import imagenet_augment

    device = _device()
    n, batch = (16, 8) if tiny else (1024, 256)
    workers = min(os.cpu_count() or 1, 2 if tiny else 64)
    folder = Path(tmp) / "jpegs"
    mean_bytes = write_jpegs(folder, n)
    paths = sorted((folder / "class0").glob("*.jpg"))
    cfg = imagenet_augment()
    fallbacks = [] if device.type == "cuda" else ["decode_jpeg, crops and colour ops on CPU (no GPU)"]
    pil_rate, pil_per_cpu_s = pil_loader_rate(folder, cfg, batch, workers, device)
    results = {
        "images": n,
        "mean_file_kb": mean_bytes / 1024,
        "batch": batch,
        "pil_workers": workers,
        "pil_dataloader_images_per_s": pil_rate,
        "pil_images_per_s_per_worker": pil_rate / workers,
        "pil_images_per_cpu_s": pil_per_cpu_s,
        "decode_device": device.type,
        "rows": [],
    }
    gen = torch.Generator().manual_seed(0)
    for decode_batch in (4,) if tiny else (1, 16):
        dec = JpegTwoViewDecoder(cfg, device, decode_batch=decode_batch)
        dec([Path(p).read_bytes() for p in paths[:batch]], gen)  # warm-up: nvJPEG handles, kernels
        _sync(device)
        t, cpu, seen = time.perf_counter(), _cpu_s(), 0
        for start in range(0, n - batch + 1, batch):  # the bytes are read in this process
            view_a, _ = dec([Path(p).read_bytes() for p in paths[start : start + batch]], gen)
            seen += len(view_a)
        _sync(device)
        wall, cpu = time.perf_counter() - t, _cpu_s() - cpu
        results["rows"].append(
            {
                "decode_batch": decode_batch,
                "images_per_s": seen / wall,
                "images_per_cpu_s": seen / cpu,
                "batched_decode_failures": dec.batched_decode_failures,
                "view_shape": list(view_a.shape),
            }
        )
    best = max(results["rows"], key=lambda r: r["images_per_s"])
    ratios = {
        "planned/pil_path": best["images_per_s"] / pil_rate,
        "planned/pil_path per CPU-second": best["images_per_cpu_s"] / pil_per_cpu_s,
    }
    return {"results": results, "ratios": ratios, "fallbacks": fallbacks}


WHEELS = ROOT / "bench" / "wheels"  # scripts/bundle_lightly.sh writes lightly and what it needs here


def install_lightly() -> str:
    """``pip install --no-index --find-links bench/wheels lightly`` (installed packages that satisfy
    a requirement stay); what happened, in words."""
    if not any(WHEELS.glob("lightly-*.whl")):
        return f"not installed: no lightly wheel in {WHEELS} (run scripts/bundle_lightly.sh, carry bench/wheels)"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(WHEELS), "lightly"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        return f"not installed: pip exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or [""])[-1][:300]
    return "installed from " + str(WHEELS.relative_to(ROOT))


def m_loss_vs_lightly(tiny: bool, tmp: str) -> dict:
    spec = importlib.util.spec_from_file_location("bench_loss", ROOT / "bench" / "loss.py")
    bench_loss = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_loss)
    device = _device().type
    sizes = [(16, 128)] if tiny else [(256, 8192), (2048, 8192)]
    repeats = 1 if tiny else 10
    missing = bench_loss.lightly_available()
    # only on a GPU machine (a fresh one, given back after the run): never into a CPU checkout's environment
    install = (
        "already importable"
        if not missing
        else install_lightly()
        if _torch().cuda.is_available()
        else "no GPU: not tried"
    )
    if missing and install.startswith("installed"):
        missing = bench_loss.lightly_available()
    rows, ratios, fallbacks = [], {}, []
    if missing:
        fallbacks.append(f"lightly not importable ({missing}): ours only")
    for n, d in sizes:
        row = {"N": n, "D": d}
        impls = ["ours", "ours_nosync"] + ([] if missing else ["lightly"])
        for impl in impls:
            res, err = bench_loss.run_case(impl, n, d, device, repeats, tmp)
            if res is None:
                row[f"{impl}_error"] = err
                continue
            row[f"{impl}_ms"] = statistics.median(res["times"]) * 1e3
            row[f"{impl}_peak_mib"] = res["peak"] / 2**20
            row[f"{impl}_loss"] = res["loss"]
        if "lightly_ms" in row and "ours_ms" in row:
            ratios[f"lightly/ours@{n}x{d}"] = row["lightly_ms"] / row["ours_ms"]
            row["loss_rel_diff"] = abs(row["ours_loss"] - row["lightly_loss"]) / abs(row["lightly_loss"])
        if "ours_nosync_ms" in row and "ours_ms" in row:
            ratios[f"nosync/ours@{n}x{d}"] = row["ours_nosync_ms"] / row["ours_ms"]
        rows.append(row)
    results = {"rows": rows, "device": device, "repeats": repeats, "lightly_install": install}
    return {"results": results, "ratios": ratios, "fallbacks": fallbacks}


def m_compile_fp16(tiny: bool, tmp: str) -> dict:
    torch = _torch()
    import functools

    from vicreg_edu.config import get_config
    from vicreg_edu.data import in_memory_uint8
    from vicreg_edu.shapes import Shapes

    device = _device()
    fallbacks = []
    if device.type != "cuda":
        torch.compile = functools.partial(torch.compile, backend="eager")  # this child process only
        fallbacks += [
            "torch.compile with backend='eager' (dynamo tracing only; inductor is for the GPU)",
            "fp16 autocast + GradScaler on CPU",
        ]
    steps, log_every, batch = (4, 2, 16) if tiny else (200, 10, 256)
    extra = dict(backbone="small_cnn", expander="32-32") if tiny else {}
    images, labels = in_memory_uint8(Shapes("train", n=max(batch * 4, 64) if tiny else 10_000, seed=0))
    inject_data(images, labels)
    base = get_config("cifar10", fast=False).replace(dataset="shapes", batch_size=batch, warmup_epochs=1, **extra)
    runs = {
        "eager": base,
        "eager_seed1": base.replace(seed=1),
        "compile": base.replace(compile=True),
        "fp16": base.replace(amp="fp16"),
    }
    curves, rates, errors = {}, {}, {}
    for name, cfg in runs.items():
        try:
            rates[name], curves[name], _ = run_trainer(cfg, steps, log_every, os.path.join(tmp, name))
        except Exception as e:  # one failing variant must not hide the others
            errors[name] = f"{type(e).__name__}: {e}"[:500]

    def max_rel(a, b):
        return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b))

    ref = curves.get("eager")
    noise = max_rel(curves["eager_seed1"], ref) if ref and "eager_seed1" in curves else float("nan")
    results = {
        "steps": steps,
        "log_every": log_every,
        "batch": batch,
        "curves": curves,
        "images_per_s": rates,
        "errors": errors,
        "tolerance": "max relative difference of the loss curve <= the eager run's "
        "difference with another seed (seed_noise)",
        "seed_noise": noise,
    }
    ratios = {}
    for name in ("compile", "fp16"):
        if ref and name in curves:
            dev = max_rel(curves[name], ref)
            results[f"{name}_max_rel_diff"] = dev
            results[f"{name}_within_noise"] = bool(dev <= noise)
            ratios[f"{name}/eager images/s"] = rates[name] / rates["eager"]
    return {"results": results, "ratios": ratios, "fallbacks": fallbacks}


# ----------------------------------------------------------------------------------------------
# --profile: torch.profiler over the trainer's own loop, split by phase

RANGES = {  # what each instrumented callable is called in the profile
    "augmentation": "augmentation",  # the loader's next batch (in-memory loader: the batched views)
    "backbone": "backbone",
    "expander": "expander",
    "loss": "loss",
    "probe": "probe",
    "optimiser": "optimiser step (LARS)",
    "probe_optimiser": "probe step (AdamW)",
    "log": "log (loss to host)",
}
READ_EVENT = "aten::_local_scalar_dense"  # a tensor's value read by the host (item, bool, int): on a GPU, a sync
SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
BACKWARD = "autograd::engine::evaluate_function: "


def _ranged(fn, label: str):
    from torch.profiler import record_function

    def wrapped(*args, **kwargs):
        with record_function(label):
            return fn(*args, **kwargs)

    return wrapped


class _RangedLoader:
    """The trainer's loader with each batch fetched inside the ``augmentation`` range."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        it = iter(self.loader)
        while True:
            with _torch().profiler.record_function(RANGES["augmentation"]):
                batch = next(it, None)
            if batch is None:
                return
            yield batch


def instrument(state, criterion, log):
    """Name the step's parts for the profiler on these objects only (no library code changes):
    the model's modules, the loss, both optimisers' ``step`` and the log's host read."""
    net = state.net
    for module, key in ((net.model.backbone, "backbone"), (net.model.expander, "expander"), (net.probe, "probe")):
        module.forward = _ranged(module.forward, RANGES[key])
    state.optimizer.step = _ranged(state.optimizer.step, RANGES["optimiser"])
    state.probe_optimizer.step = _ranged(state.probe_optimizer.step, RANGES["probe_optimiser"])
    log.step = _ranged(log.step, RANGES["log"])
    return _ranged(criterion, RANGES["loss"])


def _top(e):
    while e.cpu_parent is not None:
        e = e.cpu_parent
    return e


def phase_summary(events, steps: int) -> dict:
    """Per phase and step: host (CPU) ms of its top-level events, device ms of the kernels they
    launched, kernel count, scalar reads (``_local_scalar_dense``: a sync when the tensor is on a
    GPU; on CPU tensors, a plain read) and CUDA synchronize calls. Backward ops go to the phase
    whose forward op has their sequence number (autograd's link between a backward node and the
    forward op that made it)."""
    labels = set(RANGES.values())
    fwd_phase = {}
    for e in events:
        top = _top(e)
        if top.name in labels and e.sequence_nr >= 0:
            fwd_phase[(e.thread, e.sequence_nr)] = top.name
    rows: dict[str, dict] = {}

    def row(name):
        return rows.setdefault(
            name, {"host_ms": 0.0, "device_ms": 0.0, "kernels": 0, "scalar_reads": 0, "cuda_syncs": 0}
        )

    def phase_of(top):
        if top.name in labels:
            return top.name
        if top.name.startswith(BACKWARD):
            owner = fwd_phase.get((top.fwd_thread, top.sequence_nr))
            return f"{owner} backward" if owner else "backward (gradient accumulation, other)"
        return "other (lr, zero_grad, casts, probe loss, scaler)"

    for e in events:
        if e.cpu_parent is None and e.device_type.name == "CPU":
            r = row(phase_of(e))
            r["host_ms"] += e.cpu_time_total / 1e3
            r["device_ms"] += e.device_time_total / 1e3
            stack = [e]
            while stack:
                ev = stack.pop()
                r["kernels"] += len(ev.kernels)
                stack += ev.cpu_children
        if e.name == READ_EVENT:
            row(phase_of(_top(e)))["scalar_reads"] += 1
        elif e.name in SYNC_EVENTS:
            row(phase_of(_top(e)))["cuda_syncs"] += 1
    host, device = sum(r["host_ms"] for r in rows.values()), sum(r["device_ms"] for r in rows.values())
    for r in rows.values():
        r["host_share"] = r["host_ms"] / host if host else 0.0
        r["device_share"] = r["device_ms"] / device if device else 0.0
        for k in ("host_ms", "device_ms", "kernels", "scalar_reads", "cuda_syncs"):
            r[k] /= steps
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["device_ms" if device else "host_ms"]))


def lars_step_ms(params, device, iters: int) -> dict:
    """One LARS step on these parameters' shapes: per parameter vs foreach (ms)."""
    torch = _torch()
    from vicreg_edu.optim import LARS

    out = {}
    for foreach in (False, True):
        ps = [torch.nn.Parameter(p.detach().clone()) for p in params]
        for p in ps:
            p.grad = torch.randn_like(p)
        opt = LARS(ps, lr=0.1, weight_decay=1e-6, foreach=foreach)
        out["foreach" if foreach else "per_parameter"] = 1e3 * _timed(opt.step, device, iters, warmup=2)
    out["per_parameter/foreach"] = out["per_parameter"] / out["foreach"]
    return out


def _lars_update(optimizer, device) -> str:
    from vicreg_edu.optim import FOREACH_DEFAULT, LARS

    if not isinstance(optimizer, LARS):
        return type(optimizer).__name__
    flag = optimizer.param_groups[0].get("foreach")
    return "foreach" if flag or (flag is None and device.type == FOREACH_DEFAULT) else "per parameter"


def profile_trainer(cfg, warmup: int, steps: int, out_dir: str) -> dict:
    """``warmup`` steps of the trainer's own loop (``train_one_epoch``), then ``steps`` under torch.profiler."""
    from dataclasses import replace

    from torch.profiler import ProfilerActivity, profile

    import vicreg_edu.trainer as T
    from vicreg_edu.distributed import StopSignals

    cfg = cfg.replace(
        max_steps=warmup + steps, out_dir=out_dir, final_eval=False, knn_every=0, progress=False, tensorboard=False
    )
    cfg = cfg.replace(ckpt_every=0, diag_size=min(cfg.diag_size, 64), log_every=min(cfg.log_every, steps))
    cfg = cfg.replace(compile=False)  # the ranges wrap eager modules (compile_fp16 measures compile)
    run, state, loader, model, _evals, log = T.start(cfg)
    criterion = instrument(state, T.build_criterion(cfg), log)
    loader, signals = _RangedLoader(loader), StopSignals()
    loader.loader.set_epoch(0)
    T.train_one_epoch(replace(run, stop_at=warmup), state, model, criterion, loader, log, signals)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if run.device.type == "cuda" else [])
    _sync(run.device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        T.train_one_epoch(replace(run, stop_at=warmup + steps), state, model, criterion, loader, log, signals)
        _sync(run.device)
    wall = (time.perf_counter() - start) / steps
    loader.loader.close()
    params = [p for p in state.net.model.parameters() if p.requires_grad]
    return {
        "batch": cfg.batch_size,
        "steps_profiled": steps,
        "step_ms_under_profiler": 1e3 * wall,
        "phases": phase_summary(prof.events(), steps),
        "lars_step_ms": lars_step_ms(params, run.device, iters=3 if run.device.type == "cpu" else 20),
        "lars_update_in_trainer": _lars_update(state.optimizer, run.device),
        "parameters": len(params),
    }


def m_profile_step(tiny: bool, tmp: str) -> dict:
    """One CIFAR-size and one ResNet-50 configuration of the trainer, profiled."""
    torch = _torch()
    from vicreg_edu.config import get_config

    device = _device()
    torch.backends.cudnn.benchmark = True
    cases = {
        "cifar10@256": ("cifar10", 256, 32, {}),
        "imagenet-resnet50@256": ("imagenet-resnet50", 256, 256, {}),
    }
    if tiny:
        cases = {
            "cifar10@8 (tiny)": ("cifar10", 8, 32, dict(backbone="small_cnn", expander="32-32")),
            "imagenet-resnet50@8 (tiny)": (
                "imagenet-resnet50",
                8,
                72,
                dict(backbone="small_cnn", expander="32-32", aug={"size": 64}),
            ),
        }
    warmup, steps = (1, 2) if tiny else (10, 10)
    results, fallbacks = {}, []
    if device.type != "cuda":
        fallbacks.append("CPU activities only (no CUDA): device_ms columns are 0")
    for name, (preset, batch, src, extra) in cases.items():
        cfg = get_config(preset, fast=False).replace(dataset="shapes", batch_size=batch, **extra)
        images, labels = synthetic_images(batch * (warmup + steps + 2), src)
        inject_data(images, labels)
        results[name] = profile_trainer(cfg, warmup, steps, os.path.join(tmp, preset))
        del images, labels
    ratios = {
        f"lars per_parameter/foreach @ {k}": v["lars_step_ms"]["per_parameter/foreach"] for k, v in results.items()
    }
    return {"results": results, "ratios": ratios, "fallbacks": fallbacks}


# ----------------------------------------------------------------------------------------------
# driver


def _child(name: str, tiny: bool, out: str) -> None:
    torch = _torch()
    torch.manual_seed(0)
    if tiny:  # a smoke test on a possibly shared CPU: one thread keeps it predictable
        torch.set_num_threads(1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            payload = globals()[f"m_{name}"](tiny, tmp)
            payload["status"] = "ok"
        except Exception as e:
            payload = {
                "status": "error",
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()[-3000:],
            }
    payload["seconds"] = time.perf_counter() - start
    Path(out).write_text(json.dumps(payload, default=float))


def environment() -> dict:
    torch = _torch()
    import torchvision

    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "device": "cpu",
    }
    if torch.cuda.is_available():
        env.update(device=torch.cuda.get_device_name(), cuda=torch.version.cuda)
    else:
        env["cpu"] = f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f}"
    return env


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def print_table(report: dict) -> None:
    env = report["environment"]
    print(
        f"\nGPU suite | {'TINY CPU dry run | ' if report['tiny'] else ''}{env['device']} | torch {env['torch']} "
        f"| {env['date']}"
    )
    for name, m in report["measurements"].items():
        head = f"{name:<16} {m['status']:<8} {m.get('seconds', 0):6.1f} s (cap {m['cap_s']} s)"
        print("-" * 100 + "\n" + head + ("" if not m.get("fallbacks") else "  FALLBACK: " + "; ".join(m["fallbacks"])))
        if m["status"] != "ok":
            print(f"    {m.get('error', '')}")
            continue
        res = m["results"]
        if name == "profile_step":
            _print_profile(res)
            res = {}
        for row in res.get("rows", []):
            print("    " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
        for k, v in res.items():
            if k not in ("rows", "curves") and not isinstance(v, (list, dict)):
                print(f"    {k}: {_fmt(v)}")
        for k, v in m.get("ratios", {}).items():
            print(f"    RATIO {k} = {_fmt(v)}")
    for k, v in report.get("cross_ratios", {}).items():
        print(f"RATIO {k} = {_fmt(v)}")


def _print_profile(res: dict) -> None:
    for case, r in res.items():
        ms, lars = r["step_ms_under_profiler"], r["lars_update_in_trainer"]
        print(f"    {case}: {ms:.1f} ms per step under the profiler, LARS {lars}")
        head = f"{'host ms':>8} {'share':>6} {'dev ms':>8} {'share':>6} {'kernels':>8} {'reads':>6} {'syncs':>6}"
        print(f"      {'phase':<48} {head}")
        for phase, v in r["phases"].items():
            print(
                f"      {phase:<48} {v['host_ms']:8.2f} {v['host_share']:6.1%} {v['device_ms']:8.2f} "
                f"{v['device_share']:6.1%} {v['kernels']:8.0f} {v['scalar_reads']:6.1f} {v['cuda_syncs']:6.1f}"
            )
        print("      LARS step ms: " + ", ".join(f"{k} {_fmt(v)}" for k, v in r["lars_step_ms"].items()))


def cross_ratios(measurements: dict) -> dict:
    out = {}
    try:
        jpeg = measurements["jpeg_pipeline"]["results"]["decode_on_device_plus_batched_aug_images_per_s"]
        step = measurements["imagenet_step"]["results"]["rows"][-1]["trainer_images_per_s"]
        out["jpeg_device_path/imagenet_trainer_step"] = jpeg / step
        out["jpeg_pil_path/imagenet_trainer_step"] = (
            measurements["jpeg_pipeline"]["results"]["pil_dataloader_images_per_s"] / step
        )
    except (KeyError, IndexError, TypeError):
        pass
    try:
        rows = measurements["jpeg_planned"]["results"]["rows"]
        step = measurements["imagenet_step"]["results"]["rows"][-1]["trainer_images_per_s"]
        out["jpeg_planned/imagenet_trainer_step"] = max(r["images_per_s"] for r in rows) / step
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--tiny", "--dry-run", action="store_true", help="tiny sizes on CPU (smoke test)")
    p.add_argument("--only", default="", help=f"comma-separated subset of {','.join(ALL)}")
    p.add_argument("--profile", action="store_true", help="also profile_step (torch.profiler over the trainer)")
    p.add_argument("--jpeg", action="store_true", help="also jpeg_planned (vicreg_edu.jpeg_decode vs PIL)")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/gpu_suite[_tiny].json)")
    p.add_argument("--cap-scale", type=float, default=1.0, help="multiply every time cap")
    p.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        _child(args._child[0], args.tiny, args._child[1])
        return 0

    names = [n for n in args.only.split(",") if n] or list(MEASUREMENTS)
    names += [m for flag, m in EXTRA.items() if getattr(args, flag) and m not in names]
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        raise SystemExit(f"--only: unknown measurement(s) {unknown}; choose from {', '.join(ALL)}")
    out = Path(args.out or ROOT / "bench" / "results" / f"gpu_suite{'_tiny' if args.tiny else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    caps = TINY_CAPS_S if args.tiny else CAPS_S
    report = {"suite": "bench/gpu_suite.py", "tiny": args.tiny, "environment": environment(), "measurements": {}}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    for name in names:
        cap = caps[name] * args.cap_scale
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            child_out = f.name
        cmd = [sys.executable, os.path.abspath(__file__), "--_child", name, child_out] + (
            ["--tiny"] if args.tiny else []
        )
        start = time.perf_counter()
        print(f"[{name}] running (cap {cap:.0f} s) ...", flush=True)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cap, env=env)
            text = Path(child_out).read_text() if os.path.getsize(child_out) else ""
            m = (
                json.loads(text)
                if text
                else {
                    "status": "error",
                    "error": f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["no output"])[-1],
                }
            )
        except subprocess.TimeoutExpired:
            m = {"status": "timeout", "error": f"over its cap of {cap:.0f} s"}
        finally:
            os.unlink(child_out)
        m.setdefault("seconds", time.perf_counter() - start)
        m["cap_s"] = round(cap)
        report["measurements"][name] = m
        out.write_text(json.dumps(report, indent=1, default=float))  # keep what we have if a later one hangs
    report["cross_ratios"] = cross_ratios(report["measurements"])
    out.write_text(json.dumps(report, indent=1, default=float))
    print_table(report)
    print(f"\nwritten {out}")
    return 0 if all(m["status"] == "ok" for m in report["measurements"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
