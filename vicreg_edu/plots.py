"""Plots for seeing collapse: heatmaps, spectra, std histograms, training curves, 2-D views.

Each function draws on ``ax`` (a new figure when None) and returns that Axes, or the Figure for
multi-panel layouts; it never calls ``plt.show()``, so it works headless (``MPLBACKEND=Agg``)
and in notebooks alike. Signed matrices use a diverging colour map centred at zero
(``vmin = -vmax``), so white always means 0. The quantities come from
:mod:`vicreg_edu.diagnostics`; the VICReg terms are those of Bardes, Ponce & LeCun,
ICLR 2022 (arXiv 2105.04906), Sec. 3.1.

Example::

    >>> import matplotlib; matplotlib.use("Agg")
    >>> z = torch.randn(512, 64)
    >>> ax = plot_spectrum(z)                   # log-scale spectrum, effective rank marked
    >>> ax.figure.savefig("spectrum.png")
"""

from __future__ import annotations

import json
import math
import os
from typing import Iterable, Optional, Sequence, Union

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from . import diagnostics as dg

__all__ = [
    "DIVERGING_CMAP",
    "read_metrics",
    "plot_matrix_heatmap",
    "plot_heatmap_pair",
    "plot_spectrum",
    "plot_std_histogram",
    "plot_training_curves",
    "plot_collapse_panels",
    "plot_training_overview",
    "pca_2d",
    "embed_2d",
    "plot_embedding_2d",
    "nearest_neighbours",
    "plot_retrieval_grid",
    "plot_embedding_pair",
]

DIVERGING_CMAP = "vlag"  # seaborn's blue-white-red; white = 0
LOSS_TERMS = ("loss", "invariance", "variance", "covariance")

Metrics = Union[str, os.PathLike, Sequence[dict]]


def _new_ax(ax, figsize=(6, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def _to_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    elif isinstance(x, np.ndarray):
        x = x.astype(np.float64, copy=False)
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return x


# -----------------------------------------------------------------------------
# covariance / correlation heatmaps


def _square_block(matrix, kind: str, k: Optional[int]):
    """The top-left k x k block of a finite square matrix as numpy, and the full size D."""
    if kind not in ("covariance", "correlation"):
        raise ValueError(f"kind must be 'covariance' or 'correlation', got {kind!r}")
    m = _to_numpy(matrix, "matrix")
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(
            f"matrix must be a square (D, D) {kind} matrix, got shape {m.shape}; "
            f"compute it from embeddings with diagnostics.{kind}_matrix(z)"
        )
    if not np.isfinite(m).all():
        raise ValueError("matrix contains NaN or Inf; expected all finite")
    d = m.shape[0]
    if k is not None:
        if not isinstance(k, int) or not 1 <= k <= d:
            raise ValueError(f"k must be an int in [1, {d}] (the matrix is {d} x {d}), got {k!r}")
        m = m[:k, :k]
    return m, d


def plot_matrix_heatmap(
    matrix,
    ax=None,
    k: Optional[int] = None,
    title: Optional[str] = None,
    kind: str = "covariance",
    vmax: Optional[float] = None,
    colorbar: bool = True,
):
    """Heatmap of a covariance or correlation matrix, colour map centred at zero.

    Dimensional collapse shows up as bright off-diagonal structure; a healthy VICReg embedding
    has a bright diagonal (variance ~ gamma^2) and a pale off-diagonal (the covariance term,
    paper eq. 4, pushes it to 0). Complete collapse is an all-white square.

    Args:
        matrix: (D, D) tensor or array, e.g. ``diagnostics.covariance_matrix(z)``.
        ax: Axes to draw on, or None for a new figure.
        k: show only the top-left k x k block (the first k dimensions); None for all.
        title: None for a default naming the kind and the dimensions shown.
        kind: "covariance" (colour limits +-max|entry|) or "correlation" (limits +-1).
        vmax: explicit colour limit (the limits are always -vmax..vmax).
        colorbar: add a colour bar.
    Returns:
        the Axes; its image (``ax.images[0]``) holds the k x k (or D x D) array.

    Example::

        >>> ax = plot_matrix_heatmap(diagnostics.correlation_matrix(z), kind="correlation", k=32)
    """
    m, d = _square_block(matrix, kind, k)
    shown = m.shape[0]
    if vmax is None:
        vmax = 1.0 if kind == "correlation" else float(np.abs(m).max())
    if not (math.isfinite(vmax) and vmax > 0):
        vmax = 1.0  # an all-zero matrix (complete collapse): keep a valid, symmetric scale
    ax = _new_ax(ax, figsize=(5, 4.3))
    im = ax.imshow(
        m, cmap=sns.color_palette(DIVERGING_CMAP, as_cmap=True), vmin=-vmax, vmax=vmax, interpolation="nearest"
    )
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=kind)
    ax.set_xlabel("dimension j")
    ax.set_ylabel("dimension i")
    if title is None:
        part = f"first {shown} of {d} dims" if shown < d else f"{d} dims"
        title = f"{kind.capitalize()} matrix ({part})"
    ax.set_title(title)
    return ax


def plot_heatmap_pair(
    before,
    after,
    k: Optional[int] = None,
    titles: tuple[str, str] = ("before", "after"),
    kind: str = "covariance",
    share_scale: bool = True,
):
    """Two heatmaps side by side, e.g. the covariance before and after VICReg training.

    Args:
        before, after: (D, D) matrices (D may differ between them).
        k: show only the first k dimensions of each.
        titles: the two panel titles.
        kind: "covariance" or "correlation" (see :func:`plot_matrix_heatmap`).
        share_scale: one colour scale for both panels (default), so equal colours mean equal
            values; otherwise each panel is scaled to its own maximum.
    Returns:
        the Figure, with the two heatmap Axes first in ``fig.axes``.

    Example::

        >>> fig = plot_heatmap_pair(covariance_matrix(z_init), covariance_matrix(z_trained), k=32)
    """
    if len(titles) != 2:
        raise ValueError(f"titles must be two strings, got {titles!r}")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.3), constrained_layout=True)
    vmax = None
    if share_scale and kind == "covariance":
        blocks = [_to_numpy(m, name) for m, name in ((before, "before"), (after, "after"))]
        vmax = max(float(np.abs(b[:k, :k] if k else b).max()) if b.size else 0.0 for b in blocks)
    for ax, m, t in zip(axes, (before, after), titles):
        plot_matrix_heatmap(m, ax=ax, k=k, title=t, kind=kind, vmax=vmax)
    return fig


# -----------------------------------------------------------------------------
# spectrum and std histogram


def plot_spectrum(
    z_or_singular_values,
    ax=None,
    normalize: bool = False,
    label: Optional[str] = None,
    title: Optional[str] = None,
    center: bool = True,
):
    """Singular value spectrum on a log scale, with the effective rank (RankMe) marked.

    A healthy embedding has a flat spectrum; dimensional collapse to k directions shows a
    cliff after index k; complete collapse has no positive singular value at all (a note says
    so). The effective rank (``diagnostics.effective_rank``) is a dashed vertical line in the
    same colour as the spectrum; call again on the same ``ax`` with a ``label`` to overlay runs.

    Args:
        z_or_singular_values: embeddings (N, D) (centred first, see
            ``diagnostics.singular_values``) or a 1-D tensor of singular values.
        ax: Axes to draw on, or None.
        normalize: plot s_k / s_1 instead of s_k (compare runs of different scale).
        label: legend label of the spectrum (default "singular values").
        title: None for a default.
        center: centre embeddings first (ignored for singular values).
    Returns:
        the Axes; ``ax.lines`` holds the spectrum, then the effective-rank line.

    Example::

        >>> ax = plot_spectrum(z_random, label="random init")
        >>> plot_spectrum(z_trained, ax=ax, label="after VICReg")
    """
    s = dg.spectrum(z_or_singular_values, center=center).cpu().numpy()
    erank = dg.effective_rank(torch.from_numpy(s))
    ax = _new_ax(ax)
    idx = np.arange(1, len(s) + 1)
    pos = s > 0
    y = s / s[0] if (normalize and s[0] > 0) else s
    name = label or "singular values"
    (line,) = ax.plot(idx[pos], y[pos], marker="." if len(s) <= 64 else None, label=name)
    ax.set_yscale("log")
    if not pos.any():
        if not any(len(other.get_ydata()) for other in ax.lines if other is not line):
            ax.set_ylim(1e-3, 1.0)  # nothing positive on these axes: keep a valid log range
        ax.text(
            0.5, 0.5, "all singular values are 0\n(complete collapse)", transform=ax.transAxes, ha="center", va="center"
        )
    prefix = f"{label}: " if label else ""
    ax.axvline(erank, color=line.get_color(), linestyle="--", label=f"{prefix}effective rank = {erank:.1f}")
    ax.set_xlabel("index k (largest first)")
    ax.set_ylabel("$\\sigma_k / \\sigma_1$" if normalize else "singular value $\\sigma_k$")
    if title or not ax.get_title():  # an overlay keeps the first title
        ax.set_title(title or f"Singular value spectrum ({len(s)} values)")
    ax.legend()
    return ax


def plot_std_histogram(
    z,
    gamma: float = 1.0,
    ax=None,
    bins: int = 40,
    threshold: Optional[float] = None,
    title: Optional[str] = None,
):
    """Histogram of the per-dimension standard deviations, with the target gamma marked.

    The VICReg variance term (paper eq. 1) is a hinge ``max(0, gamma - std)``: it pushes every
    dimension's std up to gamma and no further. Under complete collapse all mass sits at 0.

    Args:
        z: embeddings (N, D), N >= 2.
        gamma: the variance target, drawn as a dashed vertical line.
        ax: Axes to draw on, or None.
        bins: number of histogram bins, spread evenly over [0, 1.05 * max(max std, gamma)].
        threshold: if given, also draw the dead-dimension threshold (dotted).
        title: None for a default reporting the dead fraction.
    Returns:
        the Axes; the gamma line is labelled "gamma = ...".

    Example::

        >>> ax = plot_std_histogram(z, gamma=1.0, threshold=0.01)
    """
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    std = dg.per_dim_std(z).cpu().numpy()
    ax = _new_ax(ax)
    # Bins span [0, max(std, gamma)] so histograms of different runs share a readable scale.
    edges = np.linspace(0.0, 1.05 * max(float(std.max()), gamma) or 1.0, bins + 1)
    sns.histplot(std, bins=edges, ax=ax, color="C0", edgecolor="white", linewidth=0.5)
    ax.axvline(gamma, color="C3", linestyle="--", label=f"gamma = {gamma:g} (variance target)")
    if threshold is not None:
        ax.axvline(threshold, color="0.3", linestyle=":", label=f"dead threshold = {threshold:g}")
    ax.set_xlabel("per-dimension std")
    ax.set_ylabel("number of dimensions")
    if title is None:
        thr = threshold if threshold is not None else 0.01
        title = f"Per-dimension std ({len(std)} dims, {float((std < thr).mean()):.0%} below {thr:g})"
    ax.set_title(title)
    ax.legend()
    return ax


# -----------------------------------------------------------------------------
# training curves from the trainer's metrics.jsonl


def read_metrics(path) -> list[dict]:
    """Read a metrics.jsonl file (one JSON object per line) into a list of dicts.

    Blank lines are skipped. A truncated *last* line (a run still writing) is ignored; any
    other unparsable line is an error.

    Example::

        >>> records = read_metrics("runs/demo/metrics.jsonl")
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"metrics file not found: {os.fspath(path)!r} (expected the "
            "metrics.jsonl the trainer writes into its output folder)"
        )
    with open(path) as f:
        lines = f.read().splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                break  # partially written last line
            raise ValueError(f"{os.fspath(path)}: line {i + 1} is not valid JSON ({err})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{os.fspath(path)}: line {i + 1} is not a JSON object")
        records.append(rec)
    return records


def _records(metrics: Metrics, kind: str, x: str) -> list[dict]:
    """Records of one kind ("step" or "epoch") that have x, last one per x value, sorted by x.

    Records without a "kind" count as step records. Keeping the last record per x makes a
    resumed run (which re-logs steps after its checkpoint) plot as one clean curve.
    """
    if isinstance(metrics, (str, os.PathLike)):
        metrics = read_metrics(metrics)
    elif not isinstance(metrics, Iterable) or isinstance(metrics, dict):
        raise TypeError(f"metrics must be a path to metrics.jsonl or a list of dicts, got {type(metrics).__name__}")
    by_x = {}
    for r in metrics:
        if not isinstance(r, dict):
            raise TypeError(f"metrics records must be dicts, got {type(r).__name__}")
        if r.get("kind", "step") == kind and r.get(x) is not None:
            by_x[r[x]] = r
    return [by_x[k] for k in sorted(by_x)]


def _values(recs: list[dict], key: str) -> np.ndarray:
    return np.array([float(r[key]) if r.get(key) is not None else np.nan for r in recs])


def plot_training_curves(
    metrics: Metrics,
    ax=None,
    terms: Sequence[str] = LOSS_TERMS,
    x: str = "step",
    log_y: bool = False,
    title: Optional[str] = None,
    weights: Optional[dict] = None,
):
    """Total loss and each VICReg term over training, from the trainer's step records.

    Reads ``{"kind": "step", "step", "epoch", "loss", "invariance", "variance", "covariance",
    ...}`` records. ``loss`` is the weighted total (25 s + 25 v + 1 c by default); the terms are
    unweighted, as the trainer logs them. Healthy runs: the variance term drops to ~0 early, the
    invariance term rises from ~0 then settles. A near-zero covariance term with a high
    invariance term can signal collapse (facebookresearch/vicreg issue #14).

    Args:
        metrics: path to metrics.jsonl, or a list of record dicts.
        ax: Axes to draw on, or None.
        terms: which keys to draw, one line each, labelled with the key.
        x: x-axis key, "step" or "epoch" (fractional epochs).
        log_y: logarithmic y axis (non-positive values are not drawn).
        title: None for a default.
        weights: ``{term: coefficient}``, e.g. ``{"invariance": 25, "variance": 50, "covariance": 0.5}``:
            draw each of these terms times its coefficient (its share of the total, in the total's
            units; the three weighted terms sum to ``loss``) instead of the unweighted term.
    Returns:
        the Axes; ``ax.lines`` holds one line per term, in order.

    Example::

        >>> ax = plot_training_curves("runs/demo/metrics.jsonl", log_y=True)
    """
    recs = _records(metrics, "step", x)
    if not recs:
        raise ValueError(
            f'no step records with {x!r} in metrics (expected lines like {{"kind": "step", "step": 0, "loss": ...}})'
        )
    weights = dict(weights or {})
    unknown = set(weights) - set(terms)
    if unknown:
        raise ValueError(f"weights name terms that are not drawn: {sorted(unknown)}; terms drawn: {list(terms)}")
    ax = _new_ax(ax)
    xs = _values(recs, x)
    styles = ("-", "--", "-.", ":")
    for i, term in enumerate(terms):
        ys = _values(recs, term)
        if np.isnan(ys).all():
            present = sorted({k for r in recs for k in r})
            raise ValueError(f"no step record has {term!r}; keys present: {present}")
        label = term
        if term in weights:
            ys, label = weights[term] * ys, f"{weights[term]:g} x {term}"
        ax.plot(xs, ys, label=label, linewidth=2.0 if term == "loss" else 1.4, linestyle=styles[i % len(styles)])
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    if weights:
        ax.set_ylabel("contribution to the loss (coefficient x term)")
    else:
        ax.set_ylabel("value (loss weighted, terms unweighted)")
    ax.set_title(title or "VICReg loss and its terms")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the axes, never over the curves
    return ax


def plot_collapse_panels(
    metrics: Metrics,
    axes=None,
    gamma: Optional[float] = 1.0,
    title: Optional[str] = None,
):
    """Effective rank and mean per-dimension std per epoch, in two separate panels.

    Effective rank and mean per-dimension std per epoch, without a twin y-axis: each quantity gets its
    own panel and its own scale (the effective rank of a 512-d embedding sits far below 512, so a
    shared axis with the dimension squashes it). Epoch ticks are integers. A std that falls
    towards 0 is complete collapse, whatever the rank does (the effective rank is scale-free); a
    rank that falls while the std stays up is dimensional collapse.

    Args:
        metrics: path to metrics.jsonl, or a list of record dicts.
        axes: two Axes (rank, std), or None for a new 1 x 2 figure.
        gamma: variance target drawn on the std panel, or None.
        title: figure title, or None for none.
    Returns:
        the Figure; ``fig.axes[:2]`` are the rank and std panels.

    Example::

        >>> fig = plot_collapse_panels("runs/demo/metrics.jsonl")
    """
    from matplotlib.ticker import MaxNLocator

    recs = [r for r in _records(metrics, "epoch", "epoch") if r.get("emb_effective_rank") is not None]
    if not recs:
        raise ValueError(
            "no epoch records with 'emb_effective_rank' in metrics (expected lines "
            'like {"kind": "epoch", "epoch": 0, "emb_effective_rank": ...})'
        )
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    ax_rank, ax_std = axes[0], axes[1]
    xs = _values(recs, "epoch")
    rank = _values(recs, "emb_effective_rank")
    dims = _values(recs, "emb_dim")
    of = f" of {int(np.nanmax(dims))} dims" if not np.isnan(dims).all() else ""
    ax_rank.plot(xs, rank, color="C0", marker="o", label="effective rank")
    ax_rank.set(xlabel="epoch", ylabel=f"effective rank (RankMe){of}", title="Effective rank of the embedding")
    ax_rank.set_ylim(0, 1.15 * np.nanmax(rank) if np.nanmax(rank) > 0 else 1.0)
    std = _values(recs, "emb_std_mean")
    if not np.isnan(std).all():
        ax_std.plot(xs, std, color="C1", marker="s", label="mean per-dim std")
    if gamma is not None:
        ax_std.axhline(gamma, color="C1", linestyle="--", label=f"target gamma = {gamma:g}")
    top = np.nanmax(np.append(std, gamma if gamma is not None else np.nan))
    ax_std.set_ylim(0, 1.15 * top if np.isfinite(top) and top > 0 else 1.0)
    ax_std.set(xlabel="epoch", ylabel="mean per-dimension std", title="Spread of the embedding")
    ax_std.legend(loc="lower right")
    for ax in (ax_rank, ax_std):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig = ax_rank.figure
    if title:
        fig.suptitle(title)
    return fig


def plot_training_overview(metrics: Metrics, log_y: bool = False, weights: Optional[dict] = None):
    """Loss curves (left) and, if epoch diagnostics were logged, effective rank and std (right).

    Three separate panels (no twin axes): the loss and its terms per step, then the two panels
    of :func:`plot_collapse_panels`.

    Args:
        metrics: path to metrics.jsonl, or a list of record dicts.
        log_y: logarithmic y axis for the loss panel.
        weights: the loss panel draws these terms times their coefficients (:func:`plot_training_curves`).
    Returns:
        the Figure.

    Example::

        >>> fig = plot_training_overview("runs/demo/metrics.jsonl"); fig.savefig("overview.png")
    """
    if isinstance(metrics, (str, os.PathLike)):
        metrics = read_metrics(metrics)
    has_epochs = bool([r for r in _records(metrics, "epoch", "epoch") if r.get("emb_effective_rank") is not None])
    fig, axes = plt.subplots(
        1, 3 if has_epochs else 1, figsize=(15 if has_epochs else 6, 4), constrained_layout=True, squeeze=False
    )
    plot_training_curves(metrics, ax=axes[0, 0], log_y=log_y, weights=weights)
    if has_epochs:
        plot_collapse_panels(metrics, axes=axes[0, 1:])
    return fig


# -----------------------------------------------------------------------------
# 2-D views of the embeddings


# ---------------------------------------------------------------------------------------------
# 2-D views of embeddings


def pca_2d(z) -> tuple[torch.Tensor, torch.Tensor]:
    """Project embeddings on their first two principal components.

    Exact, in float64, through the smaller of the D x D covariance and the N x N Gram matrix.
    Signs are fixed (the largest-magnitude coordinate of each component is positive) so figures
    are reproducible.

    Args:
        z: embeddings (N, D), N >= 2, D >= 2.
    Returns:
        (coords (N, 2) float64 on CPU, explained-variance ratio (2,)).

    Example::

        >>> xy, ratio = pca_2d(torch.randn(100, 8))
    """
    x = dg._check_embeddings(z, min_rows=2).cpu()
    n, d = x.shape
    if d < 2:
        raise ValueError(f"a 2-D view needs embeddings with D >= 2, got shape {(n, d)}")
    xc = dg._centre(x)
    if d <= n:
        evals, evecs = torch.linalg.eigh(xc.T @ xc)  # (D,), (D, D) increasing
        coords = xc @ evecs[:, [-1, -2]]
    else:
        evals, evecs = torch.linalg.eigh(xc @ xc.T)  # (N,), (N, N): coords = U * s
        coords = evecs[:, [-1, -2]] * evals[[-1, -2]].clamp_min(0).sqrt()
    evals = evals.clamp_min(0)
    total = evals.sum()
    ratio = evals[[-1, -2]] / total if total > 0 else torch.zeros(2, dtype=torch.float64)
    flip = torch.sign(coords.gather(0, coords.abs().argmax(0, keepdim=True)))
    coords = coords * torch.where(flip == 0, torch.ones_like(flip), flip)
    return coords, ratio


def embed_2d(z, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """2-D coordinates of embeddings (N, D) and the names of the two axes.

    ``method="pca"`` (exact, :func:`pca_2d`; axes name the share of variance), ``"tsne"``
    (scikit-learn) or ``"umap"`` (umap-learn), the latter two only if installed (otherwise an
    ImportError says what to install).

    Returns:
        (coords (N, 2) numpy array, [x-axis name, y-axis name]).
    """
    if method == "pca":
        coords, ratio = pca_2d(z)
        return coords.numpy(), [f"PC {i + 1} ({100 * float(r):.1f}% of variance)" for i, r in enumerate(ratio)]
    x = dg._check_embeddings(z, min_rows=2).cpu().numpy()
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            raise ImportError(
                "method='tsne' needs scikit-learn, which is not installed "
                "(pip install scikit-learn); method='pca' needs nothing extra"
            ) from None
        perplexity = min(30.0, max(1.0, (len(x) - 1) / 3))
        coords = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)
        return coords, ["t-SNE 1", "t-SNE 2"]
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ImportError(
                "method='umap' needs umap-learn, which is not installed "
                "(pip install umap-learn); method='pca' needs nothing extra"
            ) from None
        coords = umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
        return coords, ["UMAP 1", "UMAP 2"]
    raise ValueError(f"method must be 'pca', 'tsne' or 'umap', got {method!r}")


def plot_embedding_2d(
    z,
    labels=None,
    method: str = "pca",
    ax=None,
    class_names: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    seed: int = 0,
    point_size: float = 12,
):
    """Scatter plot of embeddings in 2-D, coloured by label.

    ``method="pca"`` (exact, no extra dependency) shows the two directions of largest spread;
    ``"tsne"`` (scikit-learn) and ``"umap"`` (umap-learn) are used only if installed, otherwise
    an ImportError says what to install. Collapsed embeddings show as a single blob or a line.

    Args:
        z: embeddings (N, D), N >= 2, D >= 2.
        labels: N integer (or string) labels, or None for one colour.
        method: "pca", "tsne" or "umap".
        ax: Axes to draw on, or None.
        class_names: names for integer labels (``class_names[label]``) in the legend.
        title: None for a default.
        seed: random state for t-SNE / UMAP.
        point_size: marker area.
    Returns:
        the Axes; ``ax.collections[0]`` holds the N points.

    Example::

        >>> ax = plot_embedding_2d(features, targets, class_names=dataset.classes)
    """
    n = len(z)
    if labels is not None:
        if isinstance(labels, torch.Tensor):
            labels = labels.detach().cpu().numpy()
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != n:
            raise ValueError(f"labels must be 1-D with one label per row of z (N={n}), got shape {labels.shape}")
    coords, axis_labels = embed_2d(z, method, seed)
    ax = _new_ax(ax, figsize=(5.5, 5))
    hue = hue_order = None
    if labels is not None:
        order = list(np.unique(labels))
        if class_names is not None:
            name = {lab: str(class_names[int(lab)]) for lab in order}
        else:
            name = {lab: str(lab) for lab in order}
        hue = [name[lab] for lab in labels]
        hue_order = [name[lab] for lab in order]
    palette = "tab10" if hue_order is not None and len(hue_order) <= 10 else None
    sns.scatterplot(
        x=coords[:, 0], y=coords[:, 1], hue=hue, hue_order=hue_order, palette=palette, s=point_size, linewidth=0, ax=ax
    )
    if hue is not None:
        ax.legend(title="label", fontsize="small", markerscale=1.5)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title or f"Embeddings in 2-D ({method.upper() if method == 'pca' else method})")
    return ax


# -----------------------------------------------------------------------------
# what an encoder learned: nearest neighbours and a 2-D map


def nearest_neighbours(queries, bank, k: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most cosine-similar rows of ``bank`` for each row of ``queries``.

    Args:
        queries: (Q, D) features; bank: (N, D) features, N >= k.
        k: neighbours per query.
    Returns:
        (indices (Q, k) into ``bank``, similarities (Q, k)), most similar first.

    Example:
        >>> idx, sim = nearest_neighbours(torch.eye(3), torch.eye(3), k=1)
        >>> idx.flatten().tolist()
        [0, 1, 2]
    """
    q = dg._check_embeddings(queries, min_rows=1).float()
    b = dg._check_embeddings(bank, min_rows=1).float()
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"queries and bank must have the same width D, got {tuple(q.shape)} and {tuple(b.shape)}")
    if not 1 <= k <= len(b):
        raise ValueError(f"k must be between 1 and the bank's {len(b)} rows, got {k}")
    sim = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(b, dim=1).T  # (Q, N)
    top = sim.topk(k, dim=1)
    return top.indices, top.values


def _as_image(x) -> np.ndarray:
    """(3, H, W) uint8 or float in [0, 1] -> (H, W, 3) float array in [0, 1]."""
    x = torch.as_tensor(x).detach().cpu()
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float().clamp(0, 1)
    return x.permute(1, 2, 0).numpy()


def plot_retrieval_grid(
    query_images,
    neighbour_images,
    query_labels=None,
    neighbour_labels=None,
    row_names: Optional[Sequence[str]] = None,
    class_names: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    axes=None,
):
    """Each query image, then its nearest neighbours in a row; a neighbour of the query's class gets a
    green frame, another class a red one.

    Args:
        query_images: (Q, 3, H, W) uint8 (0-255) or float in [0, 1].
        neighbour_images: (Q, K, 3, H, W), the same kinds, most similar first.
        query_labels, neighbour_labels: (Q,) and (Q, K) integer labels, or None (no frames).
        row_names: a name per row, written left of the query (e.g. "random" / "trained").
        class_names: ``class_names[label]`` titles the query.
        title: figure title.
        axes: a (Q, K + 1) array of Axes, or None for a new figure.
    Returns:
        the Figure; ``fig.axes[r * (K + 1)]`` shows query r.
    """
    q = torch.as_tensor(query_images)
    nb = torch.as_tensor(neighbour_images)
    if q.ndim != 4 or nb.ndim != 5 or len(nb) != len(q):
        raise ValueError(
            f"query_images must be (Q, 3, H, W) and neighbour_images (Q, K, 3, H, W), got {tuple(q.shape)} "
            f"and {tuple(nb.shape)}"
        )
    rows, k = nb.shape[0], nb.shape[1]
    if axes is None:
        fig, axes = plt.subplots(rows, k + 1, figsize=(1.15 * (k + 1) + 0.8, 1.25 * rows + 0.6), squeeze=False)
    axes = np.asarray(axes).reshape(rows, k + 1)
    for r in range(rows):
        for c in range(k + 1):
            ax = axes[r, c]
            ax.imshow(_as_image(q[r] if c == 0 else nb[r, c - 1]))
            ax.set_xticks([]), ax.set_yticks([])
            colour, width = "black", 1.0
            if c > 0 and query_labels is not None and neighbour_labels is not None:
                same = int(neighbour_labels[r][c - 1]) == int(query_labels[r])
                colour, width = ("#1a9850" if same else "#d73027"), 3.0
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(width)
        if query_labels is not None and class_names is not None:
            axes[r, 0].set_title(f"query: {class_names[int(query_labels[r])]}", fontsize=8)
        if row_names is not None:
            axes[r, 0].set_ylabel(row_names[r], fontsize=9)
    for c in range(1, k + 1):
        axes[0, c].set_title(f"#{c}", fontsize=8)
    fig = axes[0, 0].figure
    if title:
        fig.suptitle(title)
    return fig


def plot_embedding_pair(
    features: dict,
    labels,
    method: str = "tsne",
    class_names: Optional[Sequence[str]] = None,
    seed: int = 0,
    title: Optional[str] = None,
):
    """:func:`plot_embedding_2d` of several feature sets of the same images side by side, coloured
    by class (e.g. ``{"random encoder": y_random, "trained encoder": y_trained}``), one legend.

    Returns:
        the Figure; ``fig.axes[i]`` is the i-th feature set's map.
    """
    if not features:
        raise ValueError("features must name at least one (N, D) feature set")
    fig, axes = plt.subplots(1, len(features), figsize=(5.2 * len(features), 4.8), constrained_layout=True)
    axes = np.atleast_1d(axes)
    for ax, (name, f) in zip(axes, features.items()):
        plot_embedding_2d(f, labels, method=method, ax=ax, class_names=class_names, seed=seed, title=name, point_size=8)
        if ax is not axes[-1]:
            ax.get_legend().remove()
    axes[-1].legend(title="class", fontsize="small", markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    return fig
