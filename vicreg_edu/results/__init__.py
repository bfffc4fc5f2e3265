"""Result files shipped with the package: read them, write them, stamp them with the machine.

The book's chapters read measured runs (the ablation grid, the baselines, the long demo run, the
recipe search) with :func:`load_results` after a plain ``pip install`` instead of retraining;
the commands that make them write with :func:`write_results` into ``vicreg_edu/results/``.
"""

from __future__ import annotations

import json
import os
import platform
from importlib import resources
from pathlib import Path

import torch

RESULTS_PACKAGE = "vicreg_edu.results"
RESULTS_DIR = Path(__file__).resolve().parent  # where the commands write (a source checkout)


def load_results(name: str) -> dict:
    """Load a shipped results file ``vicreg_edu/results/<name>.json`` (works from an installed wheel).

    Args:
        name: ``"ablation_grid"``, ``"recipe_search"``, ... (the file name without ``.json``).

    Raises:
        FileNotFoundError: no such results file; the message lists the available ones.

    Example:
        >>> grid = load_results("ablation_grid")
        >>> grid["runs"][0]["name"]
        'baseline'
    """
    folder = resources.files(RESULTS_PACKAGE)
    path = folder / f"{name}.json"
    if not path.is_file():
        have = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))
        raise FileNotFoundError(f"no results file {name!r} in {RESULTS_PACKAGE}; available: {have}")
    return json.loads(path.read_text())


def stored_supervised_knn(cfg) -> float | None:
    """The supervised ceiling's k-NN accuracy stored in ``baselines.json`` if it was measured with
    ``cfg``'s recipe (the same backbone, data, epochs, batch, optimiser, loss and views; seed
    aside), else None: what the demo prints beside its own k-NN.

    Example:
        >>> from vicreg_edu.config import get_config
        >>> stored_supervised_knn(get_config("demo", fast=False, epochs=1)) is None
        True
    """
    if cfg.dataset != "shapes" or cfg.train_size:
        return None
    data = load_results("baselines")
    ours = json.loads(json.dumps(cfg.to_dict()))
    if any(ours.get(k) != v for k, v in data["config"].items() if k != "seed"):
        return None
    return data["supervised_ceiling"].get("knn")


# The fields that make a run's recipe (what a stored run records of its Config).
RECIPE_KEYS = (
    "backbone",
    "expander",
    "epochs",
    "batch_size",
    "optimizer",
    "base_lr",
    "weight_decay",
    "warmup_epochs",
    "end_lr_ratio",
    "sim_coeff",
    "std_coeff",
    "cov_coeff",
    "aug",
    "seed",
)


def recipe_of(cfg, keys: tuple[str, ...] = RECIPE_KEYS) -> dict:
    """The ``keys`` fields of ``cfg`` (a Config or its ``to_dict()``) as a dict, for a results file.

    Example:
        >>> from vicreg_edu.config import get_config
        >>> recipe_of(get_config("demo"), ("batch_size", "optimizer"))
        {'batch_size': 128, 'optimizer': 'adamw'}
    """
    d = cfg if isinstance(cfg, dict) else cfg.to_dict()
    return {k: d[k] for k in keys if k in d}


def write_results(path: str | Path, data: dict) -> None:
    """Write ``data`` as indented JSON to ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def rounded(x: float, digits: int = 4) -> float:
    """``x`` to ``digits`` significant digits (small, stable JSON).

    >>> rounded(0.123456)
    0.1235
    """
    return float(f"{x:.{digits}g}")


def machine_info() -> dict:
    """torch version, threads, cores, Python and platform: stored next to every measured run."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.machine(),
    }
