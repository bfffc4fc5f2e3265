"""Chapter 7's ablation explorer: sliders and switches over the precomputed grid, and a button that
trains the chosen setting live.

The grid (:mod:`vicreg_edu.experiments`, ``load_results("ablation_grid")``) changes one factor at
a time around the demo preset (lambda 25, mu 50, nu 0.5, gamma 1, every augmentation of its recipe on;
the loss of Bardes, Ponce & LeCun, ICLR 2022). :class:`AblationExplorer` shows the grid run of the setting the
controls describe; for a setting the grid does not hold, its **Run it live** button trains it
now with the grid's own :func:`~vicreg_edu.experiments.config_for` and
:func:`~vicreg_edu.experiments.summarize`, so live and grid runs compare.

It is a :class:`vicreg_edu.explorer.Explorer` (tested in ``tests/test_widgets.py`` and
``tests/test_explorer.py``):

- every grid run's figure is a precomputed state, so on the site (and in any page without a
  kernel) moving a slider or unticking a switch shows the stored run of that point, switched by
  the page's own script; a point the grid does not hold says "not precomputed";
- in a running kernel the same controls are ipywidgets, and **Run it live** trains a point the
  grid does not hold (in a background thread, so the kernel stays responsive); its summary is
  kept in ``live_results`` and its figure is shown whenever the controls return to it.

Example (in a notebook)::

    >>> from vicreg_edu.results import load_results
    >>> explorer = AblationExplorer(load_results("ablation_grid"))   # doctest: +SKIP
    >>> explorer                                                      # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from matplotlib.figure import Figure

from . import experiments as ex
from .explorer import Explorer

__all__ = [
    "AblationExplorer",
    "summary_figure",
    "plot_factor_grid",
    "plot_loss_curves",
    "factor_runs",
    "train_point",
    "figure_png",
]

FACTOR_TITLES = {
    "sim_coeff": "$\\lambda$ (sim_coeff)",
    "std_coeff": "$\\mu$ (std_coeff)",
    "cov_coeff": "$\\nu$ (cov_coeff)",
    "gamma": "$\\gamma$",
    "aug": "augmentation switched off",
}
SLIDER_LABELS = {"sim_coeff": "λ (sim)", "std_coeff": "μ (std)", "cov_coeff": "ν (cov)", "gamma": "γ"}
AUG_LABELS = {
    "crop": "crop",
    "jitter_p": "jitter",
    "hue": "hue",
    "grayscale_p": "gray",
    "solarize_p": "solarize",
}
TERMS = ("invariance $s$", "variance $v$", "covariance $c$")
DPI = 100


# ----------------------------------------------------------------------------------------------
# figures (summary_figure: matplotlib's Figure, not pyplot, so the live run's thread can draw it)


def figure_png(fig: Figure) -> bytes:
    """The PNG bytes of ``fig`` (what the explorer's ``Image`` widget holds)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _point_label(point: dict) -> str:
    changed = ex.changed_factors(point)
    parts = [f"{SLIDER_LABELS[f].split()[0]}={point[f]:g}" for f in changed if f in SLIDER_LABELS]
    parts += [f"no {AUG_LABELS[a]}" for a in changed if a in AUG_LABELS]
    return ", ".join(parts) or "default point"


def summary_figure(summary: dict, base: dict, title: str) -> Figure:
    """One run next to the grid's baseline: loss terms, k-NN accuracy, embedding std, effective ranks.

    ``summary`` and ``base`` are records as :func:`vicreg_edu.experiments.summarize` returns them
    (``curve`` = ``[[step, s, v, c], ...]``, ``knn``, ``emb_std_mean``, ...). Bars start at 0.
    """
    fig = Figure(figsize=(14, 3.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 4)
    for k in range(3):  # s, v, c
        # the baseline dashed and unmarked (markers on a dense dashed line make it look solid)
        for r, style in ((base, dict(ls="--", lw=1.5, alpha=0.8)), (summary, dict(ls="-", marker=".", ms=4))):
            curve = np.array(r["curve"])
            axes[0].plot(curve[:, 0], curve[:, k + 1], color=f"C{k}", **style)
    axes[0].set(
        xlabel="training step",
        ylabel="loss term (unweighted, log)",
        yscale="log",
        title="blue $s$, orange $v$, green $c$\n(solid: this run, dashed: baseline)",
    )
    bars = [
        (
            "k-NN accuracy",
            {
                "this run": summary["knn"],
                "baseline": base["knn"],
                "random enc.": base["knn_random_init"],
                "raw pixels": base["knn_raw_pixels"],
            },
        ),
        ("embedding std (mean)", {"this run": summary["emb_std_mean"], "baseline": base["emb_std_mean"]}),
        (
            "effective rank",
            {
                "emb. (this)": summary["emb_effective_rank"],
                "emb. (base)": base["emb_effective_rank"],
                "repr. (this)": summary["repr_effective_rank"],
                "repr. (base)": base["repr_effective_rank"],
            },
        ),
    ]
    for ax, (ylabel, values) in zip(axes[1:], bars):
        ax.bar(list(values), list(values.values()), color=["C0" if "this" in k else "C7" for k in values])
        ax.set(ylabel=ylabel, title=ylabel, ylim=(0, None))
        ax.tick_params(axis="x", labelrotation=20)
    fig.suptitle(title)
    return fig


def factor_runs(grid: dict, factor: str) -> tuple[list[str], list[dict]]:
    """(x labels, runs) of one factor's column, in the grid's order, the baseline included.

    ``factor`` is a loss factor (``"std_coeff"``, ...) or ``"aug"`` (the baseline, then each
    augmentation switched off)."""
    runs = {r["name"]: r for r in grid["runs"]}
    base = runs["baseline"]
    if factor == "aug":
        augs = list(grid["aug_off"])
        return ["none"] + [AUG_LABELS.get(a, a) for a in augs], [base] + [runs[f"no_{a}"] for a in augs]
    values = grid["factors"][factor]
    picked = [base if v == grid["default_point"][factor] else runs[f"{factor}={v:g}"] for v in values]
    return [f"{v:g}" for v in values], picked


def plot_factor_grid(grid: dict, metrics: list[tuple[str, str]], title: str) -> Figure:
    """Rows = ``metrics`` (``(key, axis label)``), columns = the factors; one factor changed per run.

    Every column is categorical (a few chosen values, evenly spaced, or which augmentation is
    off), so each run is a point, not joined by lines. The baseline run is the filled marker;
    the shaded band spans the baseline repeated with every seed (the noise level). Loss terms
    are drawn on a log axis; every other row starts at 0, so no axis is truncated. The k-NN row
    also marks the random encoder (dashed). A pyplot figure: ``plt.show()`` displays it in a
    notebook."""
    import matplotlib.pyplot as plt

    runs = {r["name"]: r for r in grid["runs"]}
    base = runs["baseline"]
    seed_runs = [base] + [r for r in grid["runs"] if r["factor"] == "seed"]
    factors = [*grid["factors"], "aug"]
    fig = plt.figure(figsize=(13, 2.4 * len(metrics)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(metrics), len(factors), sharey="row", squeeze=False)
    for col, factor in enumerate(factors):
        labels, picked = factor_runs(grid, factor)
        i_base = next(i for i, r in enumerate(picked) if r is base)
        for row, (key, ylabel) in enumerate(metrics):
            ax, y = axes[row, col], [r[key] for r in picked]
            ax.plot(range(len(y)), y, "o", ls="none", color="C0", mfc="white")
            ax.plot([i_base], [y[i_base]], "o", color="C0")
            seeds = [r[key] for r in seed_runs]
            ax.axhspan(min(seeds), max(seeds), color="C0", alpha=0.15, lw=0, label=f"baseline, {len(seeds)} seeds")
            if key == "knn":
                ax.axhline(base["knn_random_init"], ls="--", color="gray", lw=1, label="random encoder")
            ax.set_xticks(range(len(labels)), labels, rotation=30 if factor == "aug" else 0)
            log = key in ("invariance", "variance", "covariance")
            ax.set(
                xlabel=FACTOR_TITLES[factor] if row == len(metrics) - 1 else None,
                ylabel=ylabel if col == 0 else None,
                yscale="log" if log else "linear",
            )
    for row, (key, _) in enumerate(metrics):  # once every column is drawn (the row shares its y axis)
        if key not in ("invariance", "variance", "covariance"):
            axes[row, 0].set_ylim(0, 1.08 * max(r[key] for r in grid["runs"]))
    fig.suptitle(title)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper right", fontsize=8, ncols=2)
    return fig


def plot_loss_curves(named: dict[str, dict], title: str) -> Figure:
    """The three loss terms during training (log axis), one line per run of ``{label: summary}``
    (a pyplot figure: ``plt.show()`` displays it)."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(13, 3.3), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 3, sharex=True)
    for k, (ax, term) in enumerate(zip(axes, TERMS)):
        for label, r in named.items():
            curve = np.array(r["curve"])
            ax.plot(curve[:, 0], curve[:, k + 1], label=label)
        ax.set(xlabel="training step", ylabel=f"{term} (log scale)", yscale="log", title=f"{term} during training")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------------------------
# a live run


def _watch_progress(metrics: Path, epochs: int, progress: Callable[[float], None], stop: threading.Event):
    """Report the fraction of training done, read from the trainer's metrics file every 0.5 s."""
    while not stop.wait(0.5):
        try:
            lines = metrics.read_text().splitlines()
        except OSError:
            continue
        epochs_done = [json.loads(line).get("epoch", 0) for line in lines[-3:] if line.strip()]
        if epochs_done:
            progress(min(max(epochs_done) / epochs, 1.0))


def train_point(
    point: dict, sizes: dict, out_dir: str | Path, progress: Optional[Callable[[float], None]] = None
) -> dict:
    """Train one setting exactly like a grid run and return its :func:`~vicreg_edu.experiments.summarize` record.

    ``sizes`` = ``epochs``, ``train_size``, ``test_size``, ``diag_size`` (e.g.
    :data:`vicreg_edu.experiments.SIZES`); ``progress(fraction)`` is called about twice a second.
    The returned record has ``wall_time_s`` and ``cpu_time_s`` (CPU time of this process during
    the run, all its threads)."""
    from .trainer import train

    cfg = ex.config_for(point, **sizes, out_dir=str(out_dir), progress=False)
    stop, cpu0 = threading.Event(), time.process_time()
    if progress is not None:
        metrics = Path(out_dir) / "metrics.jsonl"
        metrics.unlink(missing_ok=True)
        threading.Thread(target=_watch_progress, args=(metrics, cfg.epochs, progress, stop), daemon=True).start()
    try:
        summary = ex.summarize(train(cfg))
    finally:
        stop.set()
    if progress is not None:
        progress(1.0)
    return {**summary, "cpu_time_s": round(time.process_time() - cpu0, 1)}


# ----------------------------------------------------------------------------------------------
# the explorer


class AblationExplorer(Explorer):
    """The grid's :class:`~vicreg_edu.explorer.Explorer`: a slider per loss factor (lambda, mu,
    nu, gamma over the grid's values), a checkbox per augmentation (ticked = on), and each grid
    run's :func:`summary_figure` (seed 0) as the precomputed state of its point.

    On the site every grid point switches in the browser; a point the one-factor grid does not
    hold says "not precomputed". In a running kernel **Run it live** trains such a point with
    ``run_fn`` (default :func:`train_point` at ``live_sizes``); its summary is kept in
    ``live_results`` (``{point tuple: summary}``) and its figure becomes a state.

    Args:
        grid: ``load_results("ablation_grid")``.
        live_sizes: sizes of a live run (default: the grid's own, ``grid["settings"]``).
        run_fn: ``run_fn(point) -> summary`` (a grid point dict as in ``grid["runs"]``); tests
            pass a fake one.
        out_root: where live runs write their metrics and checkpoint (git-ignored ``runs/``).
    """

    def __init__(
        self,
        grid: dict,
        live_sizes: Optional[dict] = None,
        *,
        run_fn: Optional[Callable[[dict], dict]] = None,
        out_root: str = "runs/ch07_live",
    ):
        self.grid, self.out_root = grid, out_root
        self.base = next(r for r in grid["runs"] if r["name"] == "baseline")
        settings = grid["settings"]
        self.live_sizes = live_sizes or {k: settings[k] for k in ("epochs", "train_size", "test_size", "diag_size")}
        self.run_fn = run_fn or self._train_default
        self.live_results: dict[tuple, dict] = {}
        self.factors, self.augs = list(grid["factors"]), list(grid["aug_off"])
        controls = [
            {"name": f, "label": SLIDER_LABELS.get(f, f), "values": list(grid["factors"][f])} for f in self.factors
        ] + [{"name": a, "label": AUG_LABELS.get(a, a), "values": [True, False]} for a in self.augs]
        states = {
            self.to_tuple(r["point"]): figure_png(summary_figure(r, self.base, f"grid run '{r['name']}'"))
            for r in grid["runs"]
            if r["factor"] != "seed"
        }
        super().__init__(
            controls,
            states,
            self.to_tuple(grid["default_point"]),
            live=self._live,
            title="The one-factor grid: move a slider or untick an augmentation",
        )

    def to_tuple(self, point: dict) -> tuple:
        """A grid point (``{factor: value, "aug_off": [...]}``) as the explorer's point tuple."""
        return tuple(float(point[f]) for f in self.factors) + tuple(a not in point["aug_off"] for a in self.augs)

    def to_grid_point(self, point: tuple) -> dict:
        """The explorer's point tuple as a grid point (the inverse of :meth:`to_tuple`)."""
        n = len(self.factors)
        off = [a for a, on in zip(self.augs, point[n:]) if not on]
        return {**dict(zip(self.factors, map(float, point[:n]))), "aug_off": off}

    def _train_default(self, point: dict) -> dict:
        Path(self.out_root).mkdir(parents=True, exist_ok=True)
        return train_point(point, self.live_sizes, tempfile.mkdtemp(prefix="run-", dir=self.out_root))

    def _live(self, values: dict) -> bytes:
        point = self.to_grid_point(tuple(values[n] for n in self.names))
        summary = self.run_fn(point)
        self.live_results[self.to_tuple(point)] = summary
        s = self.live_sizes
        title = (
            f"live run: {_point_label(point)} ({s['epochs']} epochs x {s['train_size']} images, "
            f"{summary['wall_time_s']:.0f} s)"
        )
        return figure_png(summary_figure(summary, self.base, title))
