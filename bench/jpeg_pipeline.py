"""Images per CPU-second of the image-folder pipelines on real-size JPEGs, side by side in one run.

    python bench/jpeg_pipeline.py                          # 128 JPEGs, batch 32, one thread, CPU
    python bench/jpeg_pipeline.py --dali-site /tmp/dali    # adds NVIDIA DALI's CPU pipeline
    python bench/jpeg_pipeline.py --device cuda            # on a GPU: the device path there too
    python bench/jpeg_pipeline.py --quick                  # 16 JPEGs, batch 8 (smoke test)

Writes ``--n`` photo-like JPEGs of 500x375 pixels (about 110 KB each at quality 95, the size of an
average ImageNet training image) into a temporary image folder and times, in this process with
one thread (what one DataLoader worker has), one epoch of:

  pil        the trainer's PIL path (``pipeline="pil"``): decode + the official TrainTransform in
             PIL per image, uint8 views normalised after (``data.DataLoaderTwoViews``).
  gpu@cpu    the device path (``pipeline="gpu"``, ``gpu_pipeline.DeviceTwoViewLoader``) run with
             ``device="cpu"``: file read, header, parameter draw, ``decode_jpeg``, crop + resize,
             batched colour ops, all on this CPU.
  gpu host   the part of the device path that stays on the host when ``device="cuda"``: file
             read, JPEG header, the global batch's parameter draw and crop boxes (measured here
             by running those steps alone).
  dali@cpu   (with ``--dali-site``, a folder holding ``nvidia-dali-cuda130``) DALI's CPU pipeline
             (``device_id=None``): file reader, ``decoders.image_random_crop``, ``resize``, colour
             ops as solo-learn's DALI recipe builds them (``fn.color_twist``, ``fn.hsv``,
             ``fn.gaussian_blur``, solarization by arithmetic, each applied with a coin flip),
             ``crop_mirror_normalize``. A speed reference: its random draws are DALI's own, not
             keyed by step, and its distributions are not checked against the PIL path.

Figures: images (pairs of views) per second of wall time and per CPU-second (``process_time``:
every thread of this process), the per-image phases of gpu@cpu, and the ratio to pil. With
``--device cuda`` the device path also runs on the GPU (images/s and per CPU-second there).
``--out`` writes the JSON (``bench/results/jpeg_pipeline_*.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

from vicreg_edu.batch_augment import augment_batches
from vicreg_edu.data import DataLoaderTwoViews, make_two_view_loader
from vicreg_edu.views import imagenet_augment

IMAGENET_TRAIN = 1_281_167  # ILSVRC-2012 training images


def write_jpegs(root: Path, n: int, seed: int = 0) -> float:
    """n photo-like 500x375 JPEGs (quality 95) in ``root/train/c<k>/``; returns the mean size in bytes.

    A smooth random colour field, a mid-frequency texture and pixel noise (sigma 9): about 110 KB
    each, the mean size of an ImageNet training JPEG (files of 500x375 are its most common size).
    """
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(n):
        low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(low).resize((500, 375), Image.BICUBIC), dtype=np.float32)
        tex = rng.integers(0, 256, (47, 63, 3), dtype=np.uint8)
        mid = np.asarray(Image.fromarray(tex).resize((500, 375), Image.BILINEAR), dtype=np.float32) - 128
        img = base + 0.5 * mid + rng.normal(0, 9, base.shape)
        folder = root / "train" / f"c{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path, quality=95)
        total += path.stat().st_size
    return total / n


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_epoch(loader, n_images: int, device: torch.device) -> dict:
    """One untimed batch (warm-up), then a whole epoch: images/s and images per CPU-second."""
    loader.set_epoch(0)
    for _ in zip(range(1), loader):
        pass
    _sync(device)
    loader.set_epoch(1)
    t, c = time.perf_counter(), time.process_time()
    seen = 0
    for x_a, _, _ in loader:
        seen += len(x_a)
    _sync(device)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert seen == n_images, (seen, n_images)
    return {"images": seen, "wall_s": wall, "cpu_s": cpu, "images_per_s": seen / wall, "images_per_cpu_s": seen / cpu}


def gpu_path_phases(root: Path, cfg, batch: int, device: torch.device) -> dict:
    """The device path's steps timed one by one over an epoch (CPU seconds per image each)."""
    loader = make_two_view_loader("imagefolder", root, cfg, batch, pipeline="gpu", device=device)
    loader.set_epoch(1)
    dec = loader.decoder
    phases = dict.fromkeys(("read + header", "draw + boxes", "decode", "crop + resize", "colour ops"), 0.0)
    n = 0

    def tick(name, c0):
        _sync(device)
        c1 = time.process_time()
        phases[name] += c1 - c0
        return c1

    files = iter(loader.loader)
    for step in range(len(loader)):
        c = time.process_time()
        data, sizes, labels, paths = next(files)
        c = tick("read + header", c)
        params = loader.step_params(step)
        boxes = dec.boxes(params, sizes)
        c = tick("draw + boxes", c)
        images = dec.decode(data)
        c = tick("decode", c)
        cropped = [dec.crop_resize(images, box) for box in boxes]
        c = tick("crop + resize", c)
        augment_batches(dec.colour[0].cfg, cropped, params)
        tick("colour ops", c)
        n += len(data)
    return {k: v / n * 1e3 for k, v in phases.items()}  # CPU ms per image


class _CountOps(TorchDispatchMode):
    """Counts the tensor operations dispatched (each one or more kernel launches on a GPU)."""

    def __init__(self, image_numel: int):
        super().__init__()
        self.count = self.on_images = 0
        self.image_numel = image_numel

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else [out]
        big = any(isinstance(t, torch.Tensor) and t.numel() >= self.image_numel for t in outs)
        self.on_images += big and func._schema.name not in VIEW_OPS
        return out


VIEW_OPS = {"aten::slice", "aten::unsqueeze", "aten::squeeze", "aten::view", "aten::select", "aten::expand"}


def device_ops_per_image(root: Path, cfg, batch: int) -> dict:
    """Operations the device path dispatches per image after the decode (crop + resize of both
    views, colour ops, normalisation), counted over one step on the CPU; on a GPU each is a
    kernel launch (or a few), the host's share of the device work."""
    loader = make_two_view_loader("imagefolder", root, cfg, batch, pipeline="gpu", device="cpu")
    loader.set_epoch(1)
    data, sizes, _, _ = next(iter(loader.loader))
    dec, params = loader.decoder, loader.step_params(0)
    images = dec.decode(data)
    boxes = dec.boxes(params, sizes)
    with _CountOps(cfg.size * cfg.size) as ops:
        dec.views_from(images, params, boxes)
    return {
        "ops_per_image": ops.count / len(data),
        "image_ops_per_image": ops.on_images / len(data),
        "batch": len(data),
        "note": "ops: every tensor operation dispatched after the decode, the CPU-side plan included; "
        "image_ops: those writing a tensor of at least one view's size (size x size elements) that "
        "are not views: the ones that are device kernels on a GPU",
    }


def gpu_host_part(root: Path, cfg, batch: int) -> dict:
    """What the device path leaves on the host: read + header (the loader processes) and the
    parameter draw + crop boxes (main process), over an epoch; images per CPU-second."""
    loader = make_two_view_loader("imagefolder", root, cfg, batch, pipeline="gpu", device="cpu")
    loader.set_epoch(1)
    t, c = time.perf_counter(), time.process_time()
    n = 0
    for step, (data, sizes, _, _) in enumerate(loader.loader):
        loader.decoder.boxes(loader.step_params(step), sizes)
        n += len(data)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"images": n, "wall_s": wall, "cpu_s": cpu, "images_per_s": n / wall, "images_per_cpu_s": n / cpu}


def dali_cpu(root: Path, cfg, batch: int, n_images: int) -> dict:
    """DALI's CPU-only pipeline (device_id=None, one thread) over the folder, solo-learn's ops."""
    import nvidia.dali.fn as fn
    import nvidia.dali.types as types
    from nvidia.dali import pipeline_def

    files = sorted(str(p) for p in (root / "train").rglob("*.jpg"))
    mean = [255 * m for m in cfg.mean]
    std = [255 * s for s in cfg.std]

    def mux(cond, yes, no):  # solo-learn's Mux: cond * yes + (1 - cond) * no
        cond = fn.cast(cond, dtype=types.BOOL)
        neg = cond ^ True
        return cond * yes + neg * no

    def view(jpegs, blur_p, sol_p):
        img = fn.decoders.image_random_crop(
            jpegs,
            device="cpu",
            output_type=types.RGB,
            random_area=list(cfg.crop_scale),
            random_aspect_ratio=list(cfg.crop_ratio),
            num_attempts=10,
        )
        img = fn.resize(img, resize_x=cfg.size, resize_y=cfg.size, interp_type=types.INTERP_CUBIC, antialias=True)
        jit = fn.color_twist(
            img,
            brightness=fn.random.uniform(range=[1 - cfg.brightness, 1 + cfg.brightness]),
            contrast=fn.random.uniform(range=[1 - cfg.contrast, 1 + cfg.contrast]),
            saturation=fn.random.uniform(range=[1 - cfg.saturation, 1 + cfg.saturation]),
            hue=fn.random.uniform(range=[-360 * cfg.hue, 360 * cfg.hue]),
        )
        img = mux(fn.random.coin_flip(probability=cfg.jitter_p), jit, img)
        img = mux(fn.random.coin_flip(probability=cfg.grayscale_p), fn.hsv(img, saturation=0), img)
        if blur_p > 0:
            blurred = fn.gaussian_blur(img, window_size=23, sigma=fn.random.uniform(range=list(cfg.blur_sigma)))
            img = mux(fn.random.coin_flip(probability=blur_p), blurred, img)
        if sol_p > 0:
            inv = fn.cast(255 - img, dtype=types.UINT8)
            sol = mux(img >= 128, inv, img)
            img = mux(fn.random.coin_flip(probability=sol_p), sol, img)
        return fn.crop_mirror_normalize(
            fn.cast(img, dtype=types.UINT8),
            dtype=types.FLOAT,
            output_layout="CHW",
            mean=mean,
            std=std,
            mirror=fn.random.coin_flip(probability=cfg.flip_p),
        )

    @pipeline_def(batch_size=batch, num_threads=1, device_id=None, seed=0, prefetch_queue_depth=1)
    def two_views():
        jpegs, labels = fn.readers.file(files=files, random_shuffle=True, name="reader")
        return view(jpegs, cfg.blur_p[0], cfg.solarize_p[0]), view(jpegs, cfg.blur_p[1], cfg.solarize_p[1]), labels

    pipe = two_views()
    pipe.build()
    pipe.run()  # warm-up batch
    steps = n_images // batch
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        out = pipe.run()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    shape = tuple(np.asarray(out[0][0]).shape)
    n = steps * batch
    return {
        "images": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "images_per_s": n / wall,
        "images_per_cpu_s": n / cpu,
        "view_shape": shape,
        "dali": __import__("nvidia.dali").dali.__version__,
    }


CORES = (8, 12, 16)  # CPU cores per GPU: 8-GPU nodes with 64, 96 or 128 cores
STEP_JSON = Path(__file__).parent / "results" / "gpu_suite_h200_2026-11-30.json"


def feed_estimate(paths: dict, step_json: Path) -> dict:
    """Cores per GPU each path needs to keep the measured trainer step fed, and the ImageNet epoch
    time on 8 GPUs of that kind with 8 / 12 / 16 cores per GPU (data-bound: min(step, cores x
    images per CPU-second)). Empty when the step's JSON is missing."""
    if not step_json.is_file():
        return {}
    suite = json.loads(step_json.read_text())
    row = suite["measurements"]["imagenet_step"]["results"]["rows"][-1]
    step = row["trainer_images_per_s"]
    out = {
        "step_source": f"{step_json.name} imagenet_step (batch {row['batch']} per GPU, "
        f"{suite['environment']['device']})",
        "step_images_per_s": step,
        "assumption": (
            "each loader core delivers this machine's images per CPU-second (one thread per worker, no "
            "I/O wait); the device path's host work is 'gpu host' (file read, header, draw) and its decode + "
            "augmentation kernels overlap the step without slowing it (not measured: no GPU here), so "
            "it is bound by the step"
        ),
        "paths": {},
    }
    for name in ("pil", "gpu@cpu", "gpu host", "dali@cpu"):
        r = paths.get(name)
        if not r or "error" in r:
            continue
        by_cores = []
        for c in CORES:
            rate = min(step, c * r["images_per_cpu_s"])
            by_cores.append(
                {"cores": c, "images_per_s_per_gpu": rate, "epoch_min_8_gpus": IMAGENET_TRAIN / (8 * rate) / 60}
            )
        out["paths"][name] = {"cores_per_gpu_to_feed": step / r["images_per_cpu_s"], "by_cores": by_cores}
    if "gpu@cuda" in paths:  # measured on a GPU: the device path alone against the step
        out["gpu@cuda/step"] = paths["gpu@cuda"]["images_per_s"] / step
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=128, help="JPEG files (one epoch each path)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 = one loader worker's share)")
    ap.add_argument("--device", default="cpu", help="cuda: also time the device path on the GPU")
    ap.add_argument("--dali-site", default="", help="a folder holding nvidia-dali (appended to sys.path)")
    ap.add_argument("--quick", action="store_true", help="16 files, batch 8")
    ap.add_argument("--out", default="", help="write the JSON here")
    ap.add_argument("--step-json", default=str(STEP_JSON), help="a gpu_suite JSON with the imagenet_step rate")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.batch = 16, 8
    if args.n < 2 * args.batch:
        ap.error(f"--n must be at least two batches (--n {args.n}, --batch {args.batch})")
    torch.set_num_threads(args.threads)
    cfg = imagenet_augment()
    report: dict = {
        "what": "images (two views each) per CPU-second of each image-folder pipeline, one process",
        "environment": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "torch": torch.__version__,
            "torchvision": __import__("torchvision").__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
        },
        "files": args.n,
        "batch": args.batch,
        "paths": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        report["jpeg_bytes_mean"] = write_jpegs(root, args.n)
        with Image.open(next((root / "train").rglob("*.jpg"))) as im:
            report["jpeg_size"] = im.size
        paths = report["paths"]
        pil = make_two_view_loader("imagefolder", root, cfg, args.batch, pipeline="pil")
        assert isinstance(pil, DataLoaderTwoViews)
        paths["pil"] = time_epoch(pil, args.n, torch.device("cpu"))
        gpu = make_two_view_loader("imagefolder", root, cfg, args.batch, pipeline="gpu", device="cpu")
        paths["gpu@cpu"] = time_epoch(gpu, args.n, torch.device("cpu"))
        paths["gpu@cpu"]["cpu_ms_per_image_by_phase"] = gpu_path_phases(root, cfg, args.batch, torch.device("cpu"))
        paths["gpu host"] = gpu_host_part(root, cfg, args.batch)
        report["device_ops"] = device_ops_per_image(root, cfg, args.batch)
        if args.device.startswith("cuda") and torch.cuda.is_available():
            dev = torch.device(args.device)
            on_gpu = make_two_view_loader("imagefolder", root, cfg, args.batch, pipeline="gpu", device=dev)
            paths["gpu@cuda"] = time_epoch(on_gpu, args.n, dev)
            paths["gpu@cuda"]["device"] = torch.cuda.get_device_name(dev)
            paths["gpu@cuda"]["batched_decode_failures"] = on_gpu.decoder.batched_decode_failures
            paths["gpu@cuda"]["cpu_ms_per_image_by_phase"] = gpu_path_phases(root, cfg, args.batch, dev)
        if args.dali_site:
            sys.path.append(args.dali_site)
            try:
                paths["dali@cpu"] = dali_cpu(root, cfg, args.batch, args.n)
            except ImportError as e:
                paths["dali@cpu"] = {"error": f"DALI not importable from {args.dali_site}: {e}"}
        del pil, gpu
    base = paths["pil"]["images_per_cpu_s"]
    print(
        f"{args.n} JPEGs {report['jpeg_size'][0]}x{report['jpeg_size'][1]}, "
        f"{report['jpeg_bytes_mean'] / 1e3:.0f} KB mean, batch {args.batch}, "
        f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}"
    )
    print(f"{'path':10s} {'images/s':>9s} {'images/CPU-s':>13s} {'CPU ms/image':>13s} {'vs pil (CPU)':>13s}")
    for name, r in paths.items():
        if "error" in r:
            print(f"{name:10s} {r['error']}")
            continue
        r["ratio_to_pil_per_cpu_s"] = r["images_per_cpu_s"] / base
        print(
            f"{name:10s} {r['images_per_s']:9.1f} {r['images_per_cpu_s']:13.1f} "
            f"{1e3 / r['images_per_cpu_s']:13.2f} {r['ratio_to_pil_per_cpu_s']:12.2f}x"
        )
    ops = report["device_ops"]
    print(
        f"device path, per image after the decode (batch {ops['batch']}): {ops['ops_per_image']:.1f} tensor "
        f"operations, {ops['image_ops_per_image']:.1f} of them on image-sized tensors (kernels on a GPU)"
    )
    for name in ("gpu@cpu", "gpu@cuda"):
        if name in paths:
            phases = ", ".join(f"{k} {v:.2f}" for k, v in paths[name]["cpu_ms_per_image_by_phase"].items())
            print(f"{name} CPU ms per image by phase: {phases}")
    report["derived"] = derived = feed_estimate(paths, Path(args.step_json))
    if derived:
        print(
            f"fed from {derived['step_source']}: the trainer's step {derived['step_images_per_s']:.0f} images/s "
            f"per GPU; ImageNet {IMAGENET_TRAIN:,} images per epoch. Assumption: {derived['assumption']}"
        )
        print(f"{'path':10s} {'cores/GPU to feed':>18s} " + " ".join(f"{c:>2d} cores: img/s, epoch" for c in CORES))
        for name, row in derived["paths"].items():
            cells = " ".join(
                f"{r['images_per_s_per_gpu']:7.0f} {r['epoch_min_8_gpus']:6.1f} min" for r in row["by_cores"]
            )
            print(f"{name:10s} {row['cores_per_gpu_to_feed']:18.2f} {cells}")
        if "gpu@cuda/step" in derived:
            print(f"device path on the GPU alone / the trainer's step: {derived['gpu@cuda/step']:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
