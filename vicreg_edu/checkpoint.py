"""Checkpoints: atomic save, load with clear errors, RNG state, and the resume rules.

A trainer checkpoint is one ``torch.save``d dict::

    {"format": "vicreg-edu", "net": VICRegWithProbe state, "optimizer": ..., "probe_optimizer": ...,
     "scaler": GradScaler state, "step": int, "epoch": float, "config": Config.to_dict(),
     "rng": [RNG state of every rank]}

It is written atomically (temporary file, fsync, rename), so a crash never leaves a torn file,
and it holds every RNG state, so a resumed run is bitwise identical to an uninterrupted one on
CPU. Resuming with a setting that changes the trajectory (:data:`~vicreg_edu.config.TRAJECTORY_KEYS`)
is refused, unless it is an optimisation setting listed in ``resume_changes``
(:data:`~vicreg_edu.config.RESUME_CHANGEABLE`), e.g. after a NaN::

    vicreg-edu train --resume auto --set base_lr=0.1 warmup_epochs=20 resume_changes=base_lr,warmup_epochs
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import RESUME_CHANGEABLE, TRAJECTORY_KEYS, Config, resume_change_keys
from .errors import CheckpointError, CheckpointNotFoundError, ConfigError

UNREADABLE_FILE_ERRORS = (
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    RuntimeError,
    EOFError,
    ValueError,
    OSError,
    AttributeError,
    ModuleNotFoundError,
    UnicodeDecodeError,
)
"""What ``torch.load`` raises on a torn, foreign or garbage file (reported as a :class:`CheckpointError`)."""
REQUIRED_KEYS = ("net", "config", "step")  # what evaluation and resumption read


def tensor_bytes(obj: Any) -> int:
    """The bytes of every tensor in ``obj`` (nested dicts, lists, tuples): about what ``torch.save`` writes."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _write_failed(path: Path, tmp: Path, needed: int, reason: str) -> CheckpointError:
    """The temporary file removed; the one-line error: the path, the space needed and free, the previous file kept."""
    tmp.unlink(missing_ok=True)
    try:
        free = f", {_gb(shutil.disk_usage(path.parent).free)} free there"
    except OSError:
        free = ""
    kept = f"the previous {path.name} is kept" if path.is_file() else f"no {path.name} was written"
    return CheckpointError(
        f"could not write the checkpoint {path} ({reason}; it needs about {_gb(needed)}{free}): the "
        f"temporary file was removed and {kept}; free some space or choose another out_dir, then --resume auto"
    )


def _os_error(e: BaseException | None) -> OSError | None:
    """The first ``OSError`` in ``e``'s chain (itself, its cause or context), or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash, a SIGKILL or a power cut at any moment leaves either the previous file or the new
    one, never a torn file (a stale ``.tmp`` at worst); the folder is fsynced after the rename so
    the new name itself is on disk.

    Raises:
        CheckpointError: the write failed (a full disk or quota: ``ENOSPC``/``EDQUOT``, which torch
            reports as a ``RuntimeError``; any other ``OSError``); one line naming ``path``, the space
            needed and free. The temporary file is removed and the previous ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    needed = tensor_bytes(obj)
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
    except (OSError, RuntimeError) as e:  # torch's zip writer wraps a failed write in a RuntimeError
        cause = _os_error(e)
        if cause is not None:
            raise _write_failed(path, tmp, needed, cause.strerror or str(cause)) from e
        if "write" in str(e).lower():  # "PytorchStreamWriter failed writing file ...: file write failed"
            raise _write_failed(path, tmp, needed, "the write failed: is the disk or quota full?") from e
        tmp.unlink(missing_ok=True)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
        raise CheckpointNotFoundError(
            f"no checkpoint at {path}; train first with `vicreg-edu train` (it writes <out_dir>/checkpoint.pt)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except UNREADABLE_FILE_ERRORS as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a readable vicreg-edu checkpoint ({reason[:200]})") from e
    missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing or not isinstance(ckpt.get("config"), dict):
        what = f"a {type(ckpt).__name__}" if not isinstance(ckpt, dict) else f"a dict without {missing or ['config']}"
        raise CheckpointError(
            f"{path} is not a readable vicreg-edu checkpoint (it holds {what}; "
            "expected the file `vicreg-edu train` writes)"
        )
    return ckpt


def config_of(ckpt: dict, path: str | Path = "checkpoint", **overrides: Any) -> Config:
    """The :class:`Config` stored in a checkpoint (``overrides`` replace fields, e.g. ``device``)."""
    try:
        return Config(**{**ckpt["config"], **overrides})
    except (TypeError, ConfigError) as e:
        raise CheckpointError(
            f"{path} is not a readable vicreg-edu checkpoint (its config does not fit this version of vicreg_edu: {e})"
        ) from e


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


def check_resume_config(saved: dict, cfg: Config) -> dict[str, tuple[Any, Any]]:
    """A resumed run follows the same trajectory: a differing key is an error, not a silent change,
    unless ``cfg.resume_changes`` lists it (optimisation keys only, see :data:`RESUME_CHANGEABLE`).

    Returns:
        the allowed changes, ``{key: (checkpoint value, new value)}`` (empty when nothing changed).
    Raises:
        CheckpointError: lists every refused key with both values, and says how to allow the
            optimisation ones.
    """
    diff = {
        k: (saved.get(k, getattr(Config, k, None)), getattr(cfg, k))
        for k in TRAJECTORY_KEYS
        if saved.get(k, getattr(Config, k, None)) != getattr(cfg, k)
    }
    allowed = set(resume_change_keys(cfg.resume_changes))
    refused = {k: v for k, v in diff.items() if k not in allowed}
    if refused:
        lines = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in refused.items())
        fix = "Use the original settings or a new out_dir"
        if all(k in RESUME_CHANGEABLE for k in refused):
            fix += f", or allow the change with --set resume_changes={','.join(diff)}"
        fix += f" (resume_changes may list only the optimisation keys {', '.join(RESUME_CHANGEABLE)})"
        raise CheckpointError(f"cannot resume: the config differs from the checkpoint's ({lines}). {fix}.")
    return {k: v for k, v in diff.items() if k in allowed}


def training_state(
    net, optimizer, probe_optimizer, scaler, step: int, epoch: float, cfg: Config, rng: list[dict]
) -> dict:
    """The dict a checkpoint holds (see the module docstring)."""
    return dict(
        format="vicreg-edu",
        net=net.state_dict(),
        optimizer=optimizer.state_dict(),
        probe_optimizer=probe_optimizer.state_dict(),
        scaler=scaler.state_dict(),
        step=step,
        epoch=epoch,
        config=cfg.to_dict(),
        rng=rng,
    )


def restore_training_state(ckpt: dict, net, optimizer, probe_optimizer, scaler, rank: int) -> int:
    """Load a checkpoint's states into the live objects and this rank's RNG; return its step.

    The optimisers keep the hyper-parameters they were built with (weight decay, momentum, LARS
    eta, the probe's lr; the main lr is set every step by the schedule): the same as the
    checkpoint's unless ``resume_changes`` allowed a change.
    """
    net.load_state_dict(ckpt["net"])
    _load_keeping_hyperparameters(optimizer, ckpt["optimizer"])
    _load_keeping_hyperparameters(probe_optimizer, ckpt["probe_optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
    return ckpt["step"]


def _load_keeping_hyperparameters(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)`` (per-parameter state: momenta, Adam moments), then the
    optimiser's own group settings back (``load_state_dict`` would replace them with the saved ones)."""
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, settings in zip(optimizer.param_groups, groups):
        group.update(settings)
