"""Batched (on-device) vs PIL two-view augmentation throughput, measured in the same run.

    python bench/augment.py                    # CPU, plus CUDA when available
    python bench/augment.py --preset imagenet --size 64 --n 512

Prints images (pairs of views) per second for:
  pil     TwoViewTransform on PIL images, one process (what each DataLoader worker does)
  batch   TwoViewBatchAugment on a uint8 batch (CPU, and on the GPU when there is one)
and the ratio batch / pil. Inputs are Shapes images (32x32) resized to --size when needed.
"""

import argparse
import time

import torch
import torch.nn.functional as F
from PIL import Image

from vicreg_edu.augment import TwoViewTransform
from vicreg_edu.batch_augment import TwoViewBatchAugment
from vicreg_edu.views import cifar_augment, imagenet_augment, shapes_augment
from vicreg_edu.data import in_memory_uint8
from vicreg_edu.shapes import Shapes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["cifar", "shapes", "imagenet"], default="cifar")
    ap.add_argument("--size", type=int, default=32, help="input and output side in pixels")
    ap.add_argument("--n", type=int, default=512, help="images per batch")
    ap.add_argument("--pil-images", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()

    cfg = {"cifar": cifar_augment, "shapes": shapes_augment, "imagenet": imagenet_augment}[args.preset](size=args.size)
    x, _ = in_memory_uint8(Shapes("test", n=args.n))
    if args.size != 32:
        x = F.interpolate(x.float(), size=args.size, mode="bilinear").round().clamp(0, 255).to(torch.uint8)
    pil = [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in x]

    tv = TwoViewTransform(cfg)
    t, c = time.perf_counter(), time.process_time()
    for i in range(args.pil_images):
        tv(pil[i % len(pil)])
    pil_rate = args.pil_images / (time.perf_counter() - t)
    pil_cpu = (time.process_time() - c) / args.pil_images * 1e3
    print(
        f"preset={args.preset} size={args.size} batch={args.n} threads={torch.get_num_threads()} "
        f"(wall-clock rates; CPU ms per image pair = process CPU time, all threads)"
    )
    print(f"pil   (1 process)      {pil_rate:10.0f} images/s   {pil_cpu:8.3f} CPU ms/image")

    aug = TwoViewBatchAugment(cfg)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        xd = x.to(dev)
        g = torch.Generator().manual_seed(0)
        for _ in range(2):  # warm-up
            aug(xd, g)
        if dev == "cuda":
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        for _ in range(args.repeats):
            aug(xd, g)
        if dev == "cuda":
            torch.cuda.synchronize()
        rate = args.repeats * args.n / (time.perf_counter() - t)
        cpu = (time.process_time() - c) / (args.repeats * args.n) * 1e3
        name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
        print(
            f"batch ({name}) {rate:10.0f} images/s   {cpu:8.3f} CPU ms/image   ratio batch/pil = {rate / pil_rate:.1f}x"
        )


if __name__ == "__main__":
    main()
