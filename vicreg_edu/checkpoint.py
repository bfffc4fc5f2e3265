"""Checkpoints: atomic save, load with clear errors, RNG state, and the resume rules.

A trainer checkpoint is one ``torch.save``d dict::

    {"format": "vicreg-edu", "net": VICRegWithProbe state, "optimizer": ..., "probe_optimizer": ...,
     "scaler": GradScaler state, "step": int, "epoch": float, "config": Config.to_dict(),
     "rng": [RNG state of every rank]}

It is written atomically (temporary file, fsync, rename), so a crash never leaves a torn file,
and it holds every RNG state, so a resumed run is bitwise identical to an uninterrupted one on
CPU. Resuming with a setting that changes the trajectory (:data:`~vicreg_edu.config.TRAJECTORY_KEYS`)
is refused.
"""
from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import TRAJECTORY_KEYS, Config
from .errors import CheckpointError, CheckpointNotFoundError, ConfigError

REQUIRED_KEYS = ("net", "config", "step")  # what evaluation and resumption read


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash, a SIGKILL or a power cut at any moment leaves either the previous file or the new
    one, never a torn file (a stale ``.tmp`` at worst); the folder is fsynced after the rename so
    the new name itself is on disk.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if hasattr(os, "O_DIRECTORY"):  # POSIX: make the rename durable (a folder fsync some filesystems refuse)
        try:
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError:
            pass


def rng_state() -> dict:
    """This process's RNG states (torch CPU, numpy, python, and CUDA when present)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | Path) -> dict:
    """Read a trainer checkpoint on the CPU.

    Raises:
        CheckpointNotFoundError: no file at ``path``.
        CheckpointError: the file is not a readable vicreg-edu checkpoint
            (truncated, garbage, or a ``.pt`` file of another program); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"no checkpoint at {path}; train first with `vicreg-edu train` "
                              "(it writes <out_dir>/checkpoint.pt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError,
            AttributeError, ModuleNotFoundError, UnicodeDecodeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a readable vicreg-edu checkpoint ({reason[:200]})") from e
    missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing or not isinstance(ckpt.get("config"), dict):
        what = f"a {type(ckpt).__name__}" if not isinstance(ckpt, dict) else f"a dict without {missing or ['config']}"
        raise CheckpointError(f"{path} is not a readable vicreg-edu checkpoint (it holds {what}; "
                              "expected the file `vicreg-edu train` writes)")
    return ckpt


def config_of(ckpt: dict, path: str | Path = "checkpoint", **overrides: Any) -> Config:
    """The :class:`Config` stored in a checkpoint (``overrides`` replace fields, e.g. ``device``)."""
    try:
        return Config(**{**ckpt["config"], **overrides})
    except (TypeError, ConfigError) as e:
        raise CheckpointError(f"{path} is not a readable vicreg-edu checkpoint (its config does not fit this "
                              f"version of vicreg_edu: {e})") from e


def find_checkpoint(cfg: Config) -> Path | None:
    """Resolve ``cfg.resume``: "" -> None, "auto" -> ``out_dir/checkpoint.pt`` if it exists, else a path.

    Raises:
        CheckpointNotFoundError: ``resume`` names a file that does not exist.
    """
    if not cfg.resume:
        return None
    path = Path(cfg.out_dir) / "checkpoint.pt" if cfg.resume == "auto" else Path(cfg.resume)
    if path.is_file():
        return path
    if cfg.resume == "auto":
        return None
    raise CheckpointNotFoundError(f"resume={cfg.resume!r}: no checkpoint at {path}")


def check_resume_config(saved: dict, cfg: Config) -> None:
    """A resumed run must follow the same trajectory: differing keys are an error, not a silent change.

    Raises:
        CheckpointError: lists every differing key with both values.
    """
    diff = {k: (saved.get(k, getattr(Config, k, None)), getattr(cfg, k)) for k in TRAJECTORY_KEYS
            if saved.get(k, getattr(Config, k, None)) != getattr(cfg, k)}
    if diff:
        lines = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(f"cannot resume: the config differs from the checkpoint's ({lines}). "
                              "Use the original settings or a new out_dir.")


def training_state(net, optimizer, probe_optimizer, scaler, step: int, epoch: float, cfg: Config,
                   rng: list[dict]) -> dict:
    """The dict a checkpoint holds (see the module docstring)."""
    return dict(format="vicreg-edu", net=net.state_dict(), optimizer=optimizer.state_dict(),
                probe_optimizer=probe_optimizer.state_dict(), scaler=scaler.state_dict(), step=step,
                epoch=epoch, config=cfg.to_dict(), rng=rng)


def restore_training_state(ckpt: dict, net, optimizer, probe_optimizer, scaler, rank: int) -> int:
    """Load a checkpoint's states into the live objects and this rank's RNG; return its step."""
    net.load_state_dict(ckpt["net"])
    optimizer.load_state_dict(ckpt["optimizer"])
    probe_optimizer.load_state_dict(ckpt["probe_optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
    return ckpt["step"]
