"""Chapter 7's ablation explorer: sliders and switches over the precomputed grid, and a button that
trains the chosen setting live.

The grid (:mod:`vicreg_edu.experiments`, ``load_results("ablation_grid")``) changes one factor at
a time around VICReg's default point (lambda = mu = 25, nu = 1, gamma = 1, every augmentation on;
Bardes, Ponce & LeCun, ICLR 2022). :class:`AblationExplorer` shows the grid run of the setting the
controls describe; for a setting the grid does not hold, its **Run it live** button trains it
now with the grid's own :func:`~vicreg_edu.experiments.config_for` and
:func:`~vicreg_edu.experiments.summarize`, so live and grid runs compare.

How it behaves (tested in ``tests/test_widgets.py``):

- the figure is an ``Image`` widget, so it is part of the widget state a stored notebook keeps:
  a page without a kernel (the site, nbviewer) shows the controls *and* the figure;
- a live run trains in a background thread, so the kernel stays responsive: the button is
  disabled and says it is training, a progress bar follows the run, a second press is ignored;
- the panel shows one result at a time, the newest; moving a control during a run is applied
  when the run ends, and the run's result is kept (a log line, and the figure again whenever the
  controls return to its setting);
- the hint line ("not in the grid, press Run it live") clears as soon as a result is drawn.

Example (in a notebook)::

    >>> from vicreg_edu.results import load_results
    >>> explorer = AblationExplorer(load_results("ablation_grid"))   # doctest: +SKIP
    >>> explorer                                                      # doctest: +SKIP
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import tempfile
import re
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from matplotlib.figure import Figure

from . import experiments as ex

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
AUG_LABELS = {"crop": "crop", "flip_p": "flip", "jitter_p": "jitter", "grayscale_p": "gray", "solarize_p": "solarize"}
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
        for r, style in ((base, "--"), (summary, "-")):
            curve = np.array(r["curve"])
            axes[0].plot(curve[:, 0], curve[:, k + 1], style, marker=".", color=f"C{k}")
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


class AblationExplorer:
    """Sliders (lambda, mu, nu, gamma over the grid's values), one switch per augmentation, a
    **Run it live** button, a hint line, the figure of the current setting, and a log of live runs.

    Args:
        grid: ``load_results("ablation_grid")``.
        live_sizes: sizes of a live run (default: the grid's own, ``grid["settings"]``).
        run_fn: ``run_fn(point, progress) -> summary``; default :func:`train_point` into a fresh
            folder under ``out_root``. Tests pass a fake one.
        background: train in a thread (a live kernel: the notebook stays responsive). ``False``
            trains in the caller (a notebook executed top to bottom, tests).
        out_root: where live runs write their metrics and checkpoint (git-ignored ``runs/``).

    Display it like a widget (``explorer`` as a cell's last line, or ``display(explorer)``);
    ``explorer.widget`` is the ``VBox``.
    """

    def __init__(
        self,
        grid: dict,
        live_sizes: Optional[dict] = None,
        *,
        run_fn: Optional[Callable[[dict, Callable[[float], None]], dict]] = None,
        background: bool = True,
        out_root: str = "runs/ch07_live",
    ):
        import ipywidgets as w

        self.grid, self.background, self.out_root = grid, background, out_root
        self.runs = {r["name"]: r for r in grid["runs"]}
        self.base = self.runs["baseline"]
        settings = grid["settings"]
        self.live_sizes = live_sizes or {k: settings[k] for k in ("epochs", "train_size", "test_size", "diag_size")}
        self.run_fn = run_fn or self._train_default
        self.live_results: dict[str, dict] = {}  # point key -> newest live summary
        self.shown: Optional[str] = None  # title of the figure in the panel
        self._lock = threading.Lock()
        self._running = False
        self._moved_during_run = False
        self.thread: Optional[threading.Thread] = None

        self._build_controls(w)
        for control in self.controls:
            control.observe(self.update, names="value")
        self.button.on_click(self.run_live)
        self._show_point(self.current_point())

    def _build_controls(self, w) -> None:
        """The sliders, switches, button, progress bar, figure and log, laid out in ``self.widget``."""
        grid = self.grid

        self.sliders = {
            f: w.SelectionSlider(
                options=grid["factors"][f],
                value=grid["default_point"][f],
                description=SLIDER_LABELS.get(f, f),
                continuous_update=False,
                style={"description_width": "55px"},
                layout=w.Layout(width="260px"),
            )
            for f in grid["factors"]
        }
        self.toggles = {
            a: w.Checkbox(value=True, description=AUG_LABELS.get(a, a), indent=False, layout=w.Layout(width="90px"))
            for a in grid["aug_off"]
        }
        self.button = w.Button(
            description="Run it live",
            button_style="primary",
            icon="play",
            tooltip="train the current setting now, with the grid's sizes",
            layout=w.Layout(width="220px"),
        )
        self.progress = w.FloatProgress(
            value=0.0, min=0.0, max=1.0, description="training", layout=w.Layout(visibility="hidden")
        )
        self.hint = w.HTML("")
        self.figure = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.log = w.HTML("")
        self.widget = w.VBox(
            [
                w.HBox(list(self.sliders.values()), layout=w.Layout(flex_flow="row wrap")),
                w.HBox(list(self.toggles.values())),
                w.HBox([self.button, self.progress]),
                self.hint,
                self.figure,
                self.log,
            ]
        )

    # -- what the controls say

    @property
    def controls(self):
        return [*self.sliders.values(), *self.toggles.values()]

    def current_point(self) -> dict:
        """The setting the controls describe, in the grid's point format."""
        return {
            **{f: float(s.value) for f, s in self.sliders.items()},
            "aug_off": [a for a, t in self.toggles.items() if not t.value],
        }

    @staticmethod
    def key(point: dict) -> str:
        return json.dumps({k: point[k] for k in sorted(point) if k != "seed"}, sort_keys=True)

    def lookup(self, point: dict) -> Optional[tuple[dict, str]]:
        """(summary, title) of the newest result at ``point``: a live run of this session, else the
        grid's run (seed 0); None when neither has it."""
        if self.key(point) in self.live_results:
            return self.live_results[self.key(point)], f"live run: {_point_label(point)}"
        run = next((r for r in self.grid["runs"] if r["point"] == point), None)
        return (run, f"grid run '{run['name']}'") if run is not None else None

    def set_point(self, point: dict) -> None:
        """Move every control to ``point`` and redraw once (not once per control)."""
        with self.hold():
            for f, s in self.sliders.items():
                s.value = point[f]
            for a, t in self.toggles.items():
                t.value = a not in point["aug_off"]
        self.update()

    @contextlib.contextmanager
    def hold(self):
        """Move several controls without a redraw per move."""
        for control in self.controls:
            control.unobserve(self.update, names="value")
        try:
            yield
        finally:
            for control in self.controls:
                control.observe(self.update, names="value")

    @property
    def hint_text(self) -> str:
        """The hint line without its HTML tags."""
        return re.sub(r"<[^>]+>", "", self.hint.value)

    # -- drawing

    def draw(self, summary: dict, title: str) -> None:
        """Replace the panel's figure (one result at a time) and clear the hint line."""
        self.figure.value = figure_png(summary_figure(summary, self.base, title))
        self.shown, self.hint.value = title, ""

    def _show_point(self, point: dict) -> None:
        found = self.lookup(point)
        if found is not None:
            self.draw(*found)
            return
        still = f" The figure still shows the {self.shown}." if self.shown else ""
        self.hint.value = (
            f"<b>{_point_label(point)}</b>: not in the one-factor grid (it changes one factor at a time). "
            f"Press <b>Run it live</b> to train it.{still}"
        )

    def update(self, change=None) -> None:
        """The controls' callback. During a live run the move is only noted; the run's end applies it."""
        with self._lock:
            if self._running:
                self._moved_during_run = True
                self.hint.value = "Controls moved during the run: the new setting is shown when the run ends."
                return
        self._show_point(self.current_point())

    # -- a live run

    def _train_default(self, point: dict, progress: Callable[[float], None]) -> dict:
        Path(self.out_root).mkdir(parents=True, exist_ok=True)
        out_dir = tempfile.mkdtemp(prefix="run-", dir=self.out_root)
        return train_point(point, self.live_sizes, out_dir, progress)

    def _set_progress(self, fraction: float) -> None:
        if self._running:  # the metrics watcher may report once more after the run has ended
            self.progress.value = fraction
            self.button.description = f"Training… {100 * fraction:.0f}%"

    def run_live(self, button=None, *, wait: bool = False) -> Optional[dict]:
        """The button's callback: train the current setting; ignored while a run is going.

        In the background (``background=True`` and not ``wait``) it returns None at once, the
        thread being ``self.thread``; otherwise it trains in the caller and returns the run's
        summary (None when the press was ignored or the run failed)."""
        with self._lock:
            if self._running:
                return None
            self._running, self._moved_during_run = True, False
        point = self.current_point()
        self.button.disabled, self.button.icon = True, "hourglass-half"
        self.button.description = "Training…"
        self.progress.value, self.progress.layout.visibility = 0.0, "visible"
        self.hint.value = f"Training <b>{_point_label(point)}</b> now ({self._sizes_text()})…"
        if self.background and not wait:
            self.thread = threading.Thread(target=self._finish_run, args=(point,), daemon=True)
            self.thread.start()
            return None
        return self._finish_run(point)

    def _sizes_text(self) -> str:
        s = self.live_sizes
        return f"{s['epochs']} epochs x {s['train_size']} images"

    def _finish_run(self, point: dict) -> Optional[dict]:
        """Train, draw the result, then hand the controls back (a move made meanwhile is applied last)."""
        summary, problem = None, ""
        try:
            summary = self.run_fn(point, self._set_progress)
        except Exception as e:  # shown in the panel: a thread's exception would otherwise vanish
            problem = f"The live run failed: {type(e).__name__}: {e}"
        if summary is not None:
            try:  # still "running" while drawing, so a move made now waits for the result
                with self._lock:
                    self.live_results[self.key(point)] = summary
                self.draw(
                    summary, f"live run: {_point_label(point)} ({self._sizes_text()}, {summary['wall_time_s']:.0f} s)"
                )
                self.log.value += (
                    f"<div>live run {_point_label(point)}: k-NN {summary['knn']:.3f}, embedding std "
                    f"{summary['emb_std_mean']:.3f}, effective rank "
                    f"{summary['emb_effective_rank']:.1f}, {summary['wall_time_s']:.0f} s</div>"
                )
            except Exception as e:
                problem = f"Drawing the result failed: {type(e).__name__}: {e}"
        with self._lock:
            self._running, moved = False, self._moved_during_run
        self.button.disabled, self.button.icon, self.button.description = False, "play", "Run it live"
        self.progress.layout.visibility = "hidden"
        if problem:
            self.hint.value = problem
            return None
        now = self.current_point()
        if moved and self.key(now) != self.key(point):
            self._show_point(now)  # the move made during the run, applied now
        return summary

    # -- display

    def _repr_mimebundle_(self, **kwargs):
        """The widget view, with two fallbacks in the same output for viewers that do not render it:
        the current figure as ``image/png`` (what JupyterLab shows for an untrusted notebook before
        it has run, and GitHub and nbviewer show) and a line of text."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = (
            "[ablation explorer: sliders for λ, μ, ν, γ, augmentation switches and a 'Run it live' "
            "button; run the notebook in JupyterLab or Colab to use them]"
        )
        if self.figure.value:
            bundle["image/png"] = base64.b64encode(self.figure.value).decode("ascii")
        return bundle
