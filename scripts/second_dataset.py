"""A preset's recipe on a second, real image dataset: does the demo recipe only work on Shapes?

The data: scikit-learn's handwritten digits (the UCI ML hand-written digits: 1,797 greyscale 8x8
scans of the digits 0-9, bundled with scikit-learn, so nothing is downloaded), upscaled to 32x32
RGB and written as an ImageFolder of PNG files (``train/``: the first 1,297, ``val/``: the last
500), then trained through the trainer's ImageFolder path (PIL views in the loader) with the
preset's model, views (normalised with the digits' own statistics), optimiser and loss, for as
many steps as the preset's run on Shapes. Printed and stored in
``vicreg_edu/results/second_dataset.json``: the k-NN accuracy (k=20, cosine, T=0.07, train/ as the
memory, val/ as the queries) of the trained encoder, of a random encoder and of raw pixels.

    pip install scikit-learn        # or: pip install -e '.[research]'
    python scripts/second_dataset.py --preset demo --seeds 0 1
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vicreg_edu.config import get_config
from vicreg_edu.evaluate import knn_accuracy, normalize_uint8
from vicreg_edu.results import RESULTS_DIR, machine_info, rounded, write_results
from vicreg_edu.trainer import train

N_TRAIN = 1297  # the rest (500) is val/


def write_digits(root: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The digits as ``root/{train,val}/<digit>/<i>.png`` (32x32 RGB); returns the train split's (mean, std)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise SystemExit("this check needs scikit-learn: pip install scikit-learn") from e
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    x = torch.nn.functional.interpolate(x, size=32, mode="bilinear", align_corners=False).clamp(0, 1)
    x = (x * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)  # (N, 3, 32, 32)
    for i, (img, label) in enumerate(zip(x, digits.target)):
        split = "train" if i < N_TRAIN else "val"
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    train_pixels = x[:N_TRAIN].float() / 255
    mean = tuple(train_pixels.mean(dim=(0, 2, 3)).tolist())
    std = tuple(train_pixels.std(dim=(0, 2, 3)).tolist())
    return mean, std


def read_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 3, 32, 32) and labels of one split, read back from the PNG files."""
    files = sorted((root / split).glob("*/*.png"))
    x = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f in files])
    return x, torch.tensor([int(f.parent.name) for f in files])


def run(preset: str, seed: int, root: Path, mean, std, out_dir: Path) -> dict:
    """Train ``preset``'s recipe on the digits for the preset's number of steps on Shapes; the k-NN table."""
    shapes = get_config(preset, fast=False)
    steps = shapes.epochs * (10_000 // shapes.batch_size)  # the preset's budget on Shapes, in steps
    epochs = math.ceil(steps / (N_TRAIN // shapes.batch_size))
    cfg = get_config(
        preset,
        fast=False,
        dataset="imagefolder",
        data_dir=str(root),
        aug={**shapes.aug, "mean": mean, "std": std},
        epochs=epochs,
        seed=seed,
        knn_every=0,
        diag_size=256,
        progress=False,
        tensorboard=False,
        out_dir=str(out_dir),
    )
    t0 = time.time()
    result = train(cfg)
    (xtr, ytr), (xte, yte) = read_split(root, "train"), read_split(root, "val")
    pixels = knn_accuracy(
        normalize_uint8(xtr, mean, std).flatten(1), ytr, normalize_uint8(xte, mean, std).flatten(1), yte
    )
    return {
        "seed": seed,
        "epochs": epochs,
        "steps": epochs * (N_TRAIN // cfg.batch_size),
        "knn": rounded(result.final["trained"]),
        "knn_random_init": rounded(result.final["random_init"]),
        "knn_raw_pixels": rounded(pixels),
        "emb_effective_rank": rounded(result.epochs[-1]["emb_effective_rank"]),
        "variance": rounded(result.history[-1]["variance"]),
        "wall_time_s": round(time.time() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="demo")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "second_dataset.json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "digits"
        mean, std = write_digits(root)
        runs = []
        for seed in args.seeds:
            rec = run(args.preset, seed, root, mean, std, Path(tmp) / f"run{seed}")
            runs.append(rec)
            print(
                f"digits, {args.preset} recipe, seed {seed}: k-NN {rec['knn']:.3f} (random encoder "
                f"{rec['knn_random_init']:.3f}, raw pixels {rec['knn_raw_pixels']:.3f}), v {rec['variance']:.3f}, "
                f"effective rank {rec['emb_effective_rank']:.0f}, {rec['wall_time_s']:.0f} s",
                flush=True,
            )
    write_results(
        args.out,
        {
            "what": "the preset's recipe on scikit-learn's handwritten digits (scripts/second_dataset.py)",
            "command": "python scripts/second_dataset.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "preset": args.preset,
            "preset_config": get_config(args.preset, fast=False).to_dict(),
            "data": f"sklearn.datasets.load_digits: 1,797 8x8 scans upscaled to 32x32; train {N_TRAIN}, val 500",
            "runs": runs,
            "machine": machine_info(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
