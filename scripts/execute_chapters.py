"""Store a chapter's outputs: execute it at full size with widget state, then sync its pair.

    .venv/bin/python scripts/execute_chapters.py book/07_ablations.py [book/05_training.py ...]
    .venv/bin/python scripts/execute_chapters.py --lock /path/to/execute.lock book/07_ablations.py

For each chapter (either half of the pair may be named):

1. ``jupytext --sync`` the pair, so edits made in the ``.py`` reach the ``.ipynb``;
2. execute the ``.ipynb`` in a fresh kernel of this interpreter (run it with ``.venv/bin/python``),
   with ``book/`` as the working directory, at **full size**: ``VICREG_EDU_FAST`` and
   ``MPLBACKEND`` are removed from the kernel's environment (with ``MPLBACKEND=Agg`` the kernel
   stores no figure at all), and the widget state is stored in the notebook's metadata
   (``metadata.widgets``), so nbviewer and JupyterLab render the controls (and the figures
   they hold) without a kernel; no per-cell timing metadata (quiet diffs);
3. write the ``.ipynb``, ``jupytext --sync`` the pair again and check that the sync kept the
   widget state (it fails loudly if not), that no output is an error and that a figure is stored;
4. print the wall time and the CPU time of the kernel (its process's user + system time).

``--lock FILE`` holds an exclusive ``flock`` on FILE for the whole run, so several people (or
agents) sharing one machine execute one chapter at a time; ``flock FILE python ...`` is the
same. See book/CHAPTERS.md, "Storing the outputs".
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def jupytext_sync(path: Path) -> None:
    """``jupytext --sync PATH`` with this interpreter's jupytext (the newer file of the pair wins)."""
    proc = subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"jupytext --sync {path} failed:\n{proc.stdout}{proc.stderr}")


@contextlib.contextmanager
def full_size_env():
    """The kernel inherits os.environ: drop the test command's switches while it starts."""
    saved = {k: os.environ.pop(k) for k in ("VICREG_EDU_FAST", "MPLBACKEND") if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def kernel_cpu_seconds() -> float:
    """User + system CPU time of this process's finished children (the kernel, once shut down)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check_stored(nb, name: str) -> dict:
    """Errors, figures and widget views among the stored outputs; raises on an error output."""
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    if errors:
        raise RuntimeError(f"{name}: stored an error output: {errors[0].get('ename')}: {errors[0].get('evalue')}")
    return {
        "figures": sum("image/png" in o.get("data", {}) for o in outputs),
        "widget views": sum(WIDGET_VIEW in o.get("data", {}) for o in outputs),
        "widget models": len(nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})),
    }


def execute(chapter: Path, timeout: int) -> dict:
    ipynb, py = chapter.with_suffix(".ipynb"), chapter.with_suffix(".py")
    if not py.exists() or not ipynb.exists():
        raise FileNotFoundError(f"{chapter.with_suffix('')}: needs both .py and .ipynb (jupytext --sync creates one)")
    jupytext_sync(py)
    nb = nbformat.read(ipynb, as_version=4)
    nb.metadata.pop("widgets", None)  # the new run's state only
    t0, cpu0 = time.time(), kernel_cpu_seconds()
    with full_size_env():
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            store_widget_state=True,
            record_timing=False,
            resources={"metadata": {"path": str(ipynb.parent)}},
        )
        client.execute()
    wall, cpu = time.time() - t0, kernel_cpu_seconds() - cpu0
    nbformat.write(nb, ipynb)
    state_before = nb.metadata.get("widgets")
    jupytext_sync(ipynb)
    after = nbformat.read(ipynb, as_version=4)
    if after.metadata.get("widgets") != state_before:
        raise RuntimeError(f"jupytext --sync {ipynb} changed or dropped the widget state in the notebook's metadata")
    stats = check_stored(after, ipynb.name)
    if not stats["figures"]:
        raise RuntimeError(f"{ipynb.name}: no figure stored (image/png); was MPLBACKEND=Agg set in the kernel?")
    return {"wall_s": round(wall, 1), "kernel_cpu_s": round(cpu, 1), **stats}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="+", type=Path, help="book/NN_name.py or .ipynb")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    parser.add_argument("--lock", type=Path, help="hold an exclusive flock on this file while executing")
    args = parser.parse_args(argv)
    with open(args.lock, "a") if args.lock else contextlib.nullcontext() as lock:
        if lock is not None:
            print(f"waiting for the lock {args.lock} ...", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        for chapter in args.chapters:
            print(f"executing {chapter} at full size ...", flush=True)
            stats = execute(chapter.resolve(), args.timeout)
            print(
                f"{chapter}: "
                + ", ".join(f"{k} {v}" for k, v in stats.items())
                + f" (load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
