"""Fixtures shared by the tests: tiny trainer configs, subprocess environments, image folders.

- ``tiny(out_dir, **overrides)``: the demo preset shrunk to seconds (256 Shapes images, batch 64,
  2 epochs of 4 steps, no final k-NN, no progress bar).
- ``subprocess_env()``: the environment for ``python -m vicreg_edu...`` / torchrun children (one
  thread each, this checkout first on the path, fast mode).
- ``image_folder``: an ImageFolder written in real file formats (PNG and JPEG; RGB, greyscale,
  RGBA; one image smaller than the 16 px crop), with ``imagefolder_set_args(out_dir)``: the
  ``--set`` arguments that train on it in a few seconds.
"""

from __future__ import annotations

import faulthandler
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vicreg_edu.config import get_config

ROOT = Path(__file__).resolve().parents[1]
EXIT_WATCHDOG_S = 300


def pytest_unconfigure(config):
    """After the summary: if the interpreter has not exited within EXIT_WATCHDOG_S seconds (a child
    process or thread it waits for), print every thread's stack and exit with status 1, so a hang
    at exit shows up as a failed run with its cause, not as a CI timeout."""
    faulthandler.dump_traceback_later(EXIT_WATCHDOG_S, exit=True)


TINY = dict(
    train_size=256,
    test_size=128,
    batch_size=64,
    epochs=2,
    diag_size=64,
    knn_every=0,
    warmup_epochs=1,
    final_eval=False,
    progress=False,
    tensorboard=False,
    log_every=5,
)


def _tiny(out_dir, **overrides):
    return get_config("demo", fast=True, out_dir=str(out_dir), **{**TINY, **overrides})


@pytest.fixture
def tiny():
    """Factory: ``tiny(out_dir, **overrides)`` -> a Config that trains in seconds."""
    return _tiny


def as_set_args(**kw) -> list[str]:
    """``--set`` items for the tiny config plus ``kw``."""
    return [f"{k}={v}" for k, v in {**TINY, **kw}.items()]


def load_state(out_dir) -> dict:
    """The checkpoint a run wrote to ``out_dir``."""
    return torch.load(Path(out_dir) / "checkpoint.pt", map_location="cpu", weights_only=False)


def _subprocess_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "VICREG_EDU_FAST": "1"}


@pytest.fixture
def subprocess_env():
    """Factory: the environment for child processes (``python -m ...``, torchrun)."""
    return _subprocess_env


# ----------------------------------------------------------------------------------------------
# an ImageFolder in real file formats

IMAGE_KINDS = [  # (file name, PIL mode, (width, height)); the crop is 16 px
    ("rgb.png", "RGB", (24, 20)),
    ("rgb.jpg", "RGB", (30, 22)),
    ("grey.png", "L", (20, 20)),
    ("grey.jpg", "L", (26, 18)),
    ("rgba.png", "RGBA", (22, 24)),
    ("small.png", "RGB", (12, 10)),
    ("rgb2.jpeg", "RGB", (20, 28)),
    ("rgba2.png", "RGBA", (18, 18)),
]
FOLDER_CLASSES = ("cat", "dog")


def write_image_folder(root: Path, seed: int = 0) -> Path:
    """``root/{train,val}/{cat,dog}/`` with the :data:`IMAGE_KINDS` files (8 per class and split).

    The classes differ in colour and layout (cat: warm, bright left half; dog: cool, bright top
    half) so a trained or even random encoder can separate them a little.
    """
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c, cls in enumerate(FOLDER_CLASSES):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for name, mode, (w, h) in IMAGE_KINDS:
                base = np.array([200, 80, 40] if c == 0 else [40, 90, 200]) + rng.integers(-30, 30, 3)
                arr = np.zeros((h, w, 3)) + base
                if c == 0:
                    arr[:, : w // 2] += 50
                else:
                    arr[: h // 2] += 50
                arr = np.clip(arr + rng.normal(0, 8, arr.shape), 0, 255).astype(np.uint8)
                img = Image.fromarray(arr).convert(mode)
                if mode == "RGBA":
                    img.putalpha(Image.fromarray(rng.integers(128, 256, (h, w), dtype=np.uint8)))
                img.save(root / split / cls / name)
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """A small ImageFolder (2 classes x 8 images per split) in PNG and JPEG, written once per session."""
    return write_image_folder(tmp_path_factory.mktemp("images"))


def imagefolder_set_args(data_dir, out_dir, **kw) -> list[str]:
    """``--set`` items that train on :func:`write_image_folder`'s folder: 16 px views, batch 4, 2 epochs
    of 4 steps, a 64-d expander, the final k-NN on (trained vs random encoder)."""
    settings = dict(
        dataset="imagefolder",
        augment="imagenet",
        data_dir=data_dir,
        out_dir=out_dir,
        backbone="small_cnn",
        expander="64-64",
        batch_size=4,
        epochs=2,
        train_size=0,
        test_size=0,
        diag_size=8,
        warmup_epochs=0,
        optimizer="adamw",
        base_lr=0.01,
        num_workers=0,
        knn_every=0,
        final_eval=True,
        progress=False,
        tensorboard=False,
        log_every=1,
    )
    return [f"{k}={v}" for k, v in {**settings, **kw}.items()] + ["aug.size=16"]
