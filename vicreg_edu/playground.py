"""A 2-D playground where the three VICReg terms are visible (chapters 1-4).

Points of a toy 2-D distribution, six Gaussian clusters on an ellipse three times wider than it is
tall, are mapped by a tiny MLP (2 -> 64 -> 64 -> 2) to a 2-D embedding. Two views of a point are
two random augmentations of it: Gaussian jitter, a small rotation and a small rescaling. The MLP
is trained for a few hundred Adam steps with :func:`vicreg_edu.loss.vicreg_loss` itself, so the
weights mean what they mean everywhere in the book:

    loss = lambda * s + mu * (v(Z) + v(Z')) / 2 + nu * (c(Z) + c(Z'))      (paper Eq. 6 with the
                                                                          official code's /2)

A run takes about a second on one CPU core. What the reader sees (chapters 1-4):

* ``mu = nu = 0`` (invariance only): the cloud collapses to a point (its std goes to 0).
* ``nu = 0`` (+ variance): each coordinate keeps a std near gamma, but both coordinates read the
  same most-invariant direction of the input (the ellipse's long axis): the cloud lies on a line,
  ``|corr(z_1, z_2)|`` near 1 (dimensional collapse).
* all three terms (default: the paper's weights): the two coordinates decorrelate and the clusters fill the plane.

Functions, in reading order: :func:`make_points` (the data), :func:`augment` (a view),
:func:`train` (one run -> :class:`PlaygroundRun`), :func:`embedding_stats` (std, |corr|, rank),
:func:`plot_embedding` / :func:`small_multiples` (figures), :func:`precompute` and
:func:`explorer` (sliders over precomputed runs). Everything is deterministic given ``seed``.

Example:
    >>> run = train(mu=0.0, nu=0.0, steps=200, seed=0)   # invariance only
    >>> embedding_stats(run.embeddings)["std"] < 0.05
    True
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from .config import FAST
from .loss import vicreg_loss

N_CLUSTERS = 6
STEPS = 100 if FAST else 400  # Adam steps of one run; fast mode shrinks steps only
# Default weights: the paper's Eq. 6 (lambda = 25, mu = 25 without the /2, nu = 1), written with the
# official /2 on the variance term, so mu = 50 here (chapter 0's convention).
PAPER = {"lambda_": 25.0, "mu": 50.0, "nu": 1.0, "gamma": 1.0}


# ============ the data and its views ============


def make_points(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """n points of the toy distribution and their cluster labels.

    Six Gaussian clusters (std 0.25) with centres on an ellipse of semi-axes 3 (x) and 1 (y).
    Returns (points (n, 2) float32, labels (n,) int64). Raises ValueError if n < 2.
    """
    if n < 2:
        raise ValueError(f"make_points: need n >= 2 points, got n={n}")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(N_CLUSTERS, (n,), generator=g)
    angle = 2 * math.pi * labels.float() / N_CLUSTERS + 0.3
    centres = torch.stack([3.0 * torch.cos(angle), 1.0 * torch.sin(angle)], dim=1)  # (n, 2)
    return centres + 0.25 * torch.randn(n, 2, generator=g), labels


def augment(x: Tensor, g: torch.Generator, noise: float = 0.3, max_degrees: float = 10.0) -> Tensor:
    """A random view of every point of x (n, 2): rotate by up to +-max_degrees, scale by 0.9-1.1,
    add Gaussian jitter of std ``noise``. Returns (n, 2)."""
    n = x.shape[0]
    theta = (torch.rand(n, generator=g) * 2 - 1) * math.radians(max_degrees)
    scale = 0.9 + 0.2 * torch.rand(n, generator=g)
    cos, sin = torch.cos(theta) * scale, torch.sin(theta) * scale
    rotated = torch.stack([cos * x[:, 0] - sin * x[:, 1], sin * x[:, 0] + cos * x[:, 1]], dim=1)
    return rotated + noise * torch.randn(n, 2, generator=g)


def make_mlp(seed: int = 0, hidden: int = 64) -> nn.Sequential:
    """The encoder: 2 -> hidden -> hidden -> 2, ReLU, default PyTorch init seeded by ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))


# ============ one run ============


@dataclass
class PlaygroundRun:
    """One trained playground.

    embeddings  (n_eval, 2) embeddings of one fixed view of each of the fixed evaluation points
    labels      (n_eval,) their cluster labels (never seen by the loss)
    history     one dict per logged step: step, loss (weighted), s, v (averaged over branches),
                c (summed over branches), std and corr of the batch's first view (:func:`embedding_stats`)
    params      lambda_, mu, nu, gamma, steps, seed
    model       the trained MLP
    """

    embeddings: Tensor
    labels: Tensor
    history: list[dict] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    model: nn.Module | None = None


def train(
    lambda_: float = PAPER["lambda_"],
    mu: float = PAPER["mu"],
    nu: float = PAPER["nu"],
    gamma: float = PAPER["gamma"],
    steps: int = STEPS,
    seed: int = 0,
    batch_size: int = 256,
    lr: float = 3e-3,
    log_every: int = 10,
    n_eval: int = 600,
) -> PlaygroundRun:
    """Train the playground MLP with ``vicreg_loss(sim_coeff=lambda_, std_coeff=mu, cov_coeff=nu, gamma)``.

    Every step draws a fresh batch of ``batch_size`` points and two views of each (:func:`augment`),
    then takes one Adam step. Deterministic given ``seed`` (model init, data and views).
    Returns a :class:`PlaygroundRun` whose embeddings are those of one fixed view of ``n_eval`` fixed
    evaluation points (views, so a cloud shows its spread around each cluster).
    Raises ValueError for a negative weight, gamma <= 0, steps < 1 or batch_size < 2.
    """
    for name, value in (("lambda_", lambda_), ("mu", mu), ("nu", nu)):
        if value < 0:
            raise ValueError(f"train: {name} must be >= 0, got {value}")
    if gamma <= 0:
        raise ValueError(f"train: gamma must be > 0, got {gamma}")
    if steps < 1 or batch_size < 2:
        raise ValueError(f"train: need steps >= 1 and batch_size >= 2, got steps={steps}, batch_size={batch_size}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-wide MLP gains nothing from threads; a busy CPU loses a lot to them
    try:
        return _train(lambda_, mu, nu, gamma, steps, seed, batch_size, lr, log_every, n_eval)
    finally:
        torch.set_num_threads(threads)


def _train(lambda_, mu, nu, gamma, steps, seed, batch_size, lr, log_every, n_eval) -> PlaygroundRun:
    model = make_mlp(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(10_000 + seed)
    history = []
    for step in range(1, steps + 1):
        x, _ = make_points(batch_size, seed=int(torch.randint(2**31 - 1, (1,), generator=g)))
        z_a, z_b = model(augment(x, g)), model(augment(x, g))  # (batch, 2) each
        terms = vicreg_loss(z_a, z_b, sim_coeff=lambda_, std_coeff=mu, cov_coeff=nu, gamma=gamma)
        opt.zero_grad()
        terms.loss.backward()
        opt.step()
        if step % log_every == 0 or step == 1 or step == steps:
            stats = embedding_stats(z_a.detach())
            history.append(
                {
                    "step": step,
                    "loss": terms.loss.item(),
                    "s": terms.invariance.item(),
                    "v": terms.variance.item(),
                    "c": terms.covariance.item(),
                    "std": stats["std"],
                    "corr": stats["corr"],
                }
            )
    x_eval, labels = make_points(n_eval, seed=123)
    with torch.no_grad():
        z = model(augment(x_eval, torch.Generator().manual_seed(123)))  # one view of each point
    params = {"lambda_": lambda_, "mu": mu, "nu": nu, "gamma": gamma, "steps": steps, "seed": seed}
    return PlaygroundRun(z, labels, history, params, model)


def embedding_stats(z: Tensor) -> dict:
    """Spread and shape of a cloud of 2-D embeddings z (n, 2).

    std   mean over the 2 coordinates of their standard deviation (0 = collapsed to a point)
    corr  |Pearson correlation| between the two coordinates (1 = on a line), 0 for a point cloud
          with a coordinate of zero variance
    rank  sigma_2 / sigma_1 of the centred cloud (0 = a line or a point, 1 = round)
    """
    zc = z - z.mean(dim=0)
    std = zc.std(dim=0)
    cov = (zc[:, 0] * zc[:, 1]).sum() / (z.shape[0] - 1)
    denom = std[0] * std[1]
    corr = (cov / denom).abs().item() if denom > 1e-12 else 0.0
    sv = torch.linalg.svdvals(zc)
    return {"std": std.mean().item(), "corr": corr, "rank": (sv[1] / sv[0]).item() if sv[0] > 0 else 0.0}


def embed_views(run: PlaygroundRun, n: int = 600, seed: int = 123) -> tuple[Tensor, Tensor]:
    """Embeddings (n, 2) of two fresh views of the n evaluation points (:func:`make_points` with
    ``seed``), row i of each from point i: the pairs the invariance term compares."""
    x, _ = make_points(n, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        return run.model(augment(x, g)), run.model(augment(x, g))


def regime(z: Tensor) -> str:
    """Name the shape of a cloud of 2-D embeddings z (n, 2): "point" (std < 0.05), "line"
    (sigma_2 / sigma_1 < 0.2) or "plane"."""
    stats = embedding_stats(z)
    if stats["std"] < 0.05:
        return "point"
    return "line" if stats["rank"] < 0.2 else "plane"


# ============ figures ============

LIMIT = 4.0  # the embedding axes span +-LIMIT, so a collapsed cloud looks like the point it is


def _title(run: PlaygroundRun) -> str:
    p = run.params
    return f"lambda={p['lambda_']:g}, mu={p['mu']:g}, nu={p['nu']:g}, gamma={p['gamma']:g}"


def plot_embedding(run: PlaygroundRun, ax, title: str | None = None):
    """Scatter of a run's evaluation embeddings on ax, coloured by cluster, axes fixed to +-LIMIT,
    with its std and |corr| (:func:`embedding_stats`) in the title."""
    z = run.embeddings
    stats = embedding_stats(z)
    centre = z.mean(dim=0)
    ax.scatter(
        (z[:, 0] - centre[0]).numpy(),
        (z[:, 1] - centre[1]).numpy(),
        c=run.labels.numpy(),
        cmap="tab10",
        s=6,
        vmin=0,
        vmax=9,
    )
    ax.set(
        xlim=(-LIMIT, LIMIT), ylim=(-LIMIT, LIMIT), aspect="equal", xlabel="$z_1$ (centred)", ylabel="$z_2$ (centred)"
    )
    head = title if title is not None else _title(run)
    ax.set_title(f"{head}\nstd {stats['std']:.3f}, |corr| {stats['corr']:.2f}", fontsize="medium")
    return ax


def plot_pairs(run: PlaygroundRun, ax, shown: int = 60, title: str | None = None):
    """:func:`plot_embedding` of a run, plus ``shown`` pairs of fresh views (:func:`embed_views`),
    the two views of each point joined by a black line."""
    plot_embedding(run, ax, title=title)
    z_a, z_b = embed_views(run)
    centre = run.embeddings.mean(dim=0)
    for i in range(shown):
        pair = torch.stack([z_a[i], z_b[i]]) - centre
        ax.plot(pair[:, 0].numpy(), pair[:, 1].numpy(), color="black", lw=0.8)
    return ax


def plot_points(ax, n: int = 600, seed: int = 123, views: int = 8):
    """The toy data on ax (coloured by cluster) and two views of ``views`` points joined by lines."""
    x, labels = make_points(n, seed=seed)
    ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), c=labels.numpy(), cmap="tab10", s=6, vmin=0, vmax=9)
    g = torch.Generator().manual_seed(seed)
    a, b = augment(x[:views], g), augment(x[:views], g)
    for i in range(views):
        ax.plot([a[i, 0], b[i, 0]], [a[i, 1], b[i, 1]], color="black", lw=1, marker="x", ms=4)
    ax.set(xlim=(-LIMIT, LIMIT), ylim=(-LIMIT, LIMIT), aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
    ax.set_title("input: 6 clusters\n(x: two views of a point)", fontsize="medium")
    return ax


def regimes(seed: int = 0, steps: int = STEPS, **weights) -> dict[str, PlaygroundRun]:
    """The three runs of the small multiples, on one seed: invariance only (mu = nu = 0),
    + variance (nu = 0), all three terms. ``weights`` override :data:`PAPER`."""
    w = {**PAPER, **weights}
    return {
        "invariance only": train(**{**w, "mu": 0.0, "nu": 0.0}, steps=steps, seed=seed),
        "+ variance": train(**{**w, "nu": 0.0}, steps=steps, seed=seed),
        "+ covariance (all three)": train(**w, steps=steps, seed=seed),
    }


def small_multiples(runs: dict[str, PlaygroundRun], title: str = "") -> Figure:
    """One panel for the input, then one per run (name -> run): the embedding clouds side by side."""
    fig, axes = plt.subplots(1, len(runs) + 1, figsize=(3.4 * (len(runs) + 1), 3.9), constrained_layout=True)
    plot_points(axes[0])
    for ax, (name, run) in zip(axes[1:], runs.items()):
        plot_embedding(run, ax, title=name)
    if title:
        fig.suptitle(title)
    return fig


def plot_history(run: PlaygroundRun, ax_std, ax_corr):
    """A run's batch std (log axis, with gamma dashed) and |corr| over the training steps."""
    steps = [h["step"] for h in run.history]
    ax_std.plot(steps, [max(h["std"], 1e-4) for h in run.history], lw=2)
    ax_std.axhline(run.params["gamma"], color="gray", ls="--", label=f"$\\gamma$ = {run.params['gamma']:g}")
    ax_std.set(yscale="log", ylim=(1e-4, 10), xlabel="step", ylabel="std of the embedding", title="spread")
    ax_std.legend(loc="lower left", fontsize="small")
    ax_corr.plot(steps, [h["corr"] for h in run.history], lw=2, color="tab:red")
    ax_corr.set(ylim=(-0.03, 1.03), xlabel="step", ylabel="|corr($z_1$, $z_2$)|", title="correlation")


def state_figure(run: PlaygroundRun) -> Figure:
    """One explorer state: the embedding (left), its std and |corr| over the steps (middle, right).

    Drawn with a larger font (``STATE_FONT_SIZE``): the explorer stores the states as 72-dpi PNGs."""
    with plt.rc_context({"font.size": STATE_FONT_SIZE}):
        fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.5), constrained_layout=True, width_ratios=[1.1, 1, 1])
        plot_embedding(run, axes[0])
        plot_history(run, axes[1], axes[2])
    return fig


# ============ precomputed states and the explorer ============

# slider values: one factor at a time around PAPER, plus the full mu x nu grid (where the regimes are)
VALUES = {
    "lambda_": [0.0, 5.0, 25.0, 100.0],
    "mu": [0.0, 12.5, 25.0, 50.0, 100.0],
    "nu": [0.0, 0.25, 0.5, 1.0, 4.0],
    "gamma": [1.0, 2.0],
}
LABELS = {"lambda_": "λ (invariance)", "mu": "μ (variance)", "nu": "ν (covariance)", "gamma": "γ (target std)"}


def grid_points() -> list[tuple]:
    """The (lambda_, mu, nu, gamma) points :func:`precompute` trains: the full mu x nu grid at the
    paper's lambda and gamma, and every lambda and gamma value with the paper's mu and nu (29 points)."""
    base = PAPER
    points = {(base["lambda_"], mu, nu, base["gamma"]) for mu in VALUES["mu"] for nu in VALUES["nu"]}
    points |= {(lam, base["mu"], base["nu"], base["gamma"]) for lam in VALUES["lambda_"]}
    points |= {(base["lambda_"], base["mu"], base["nu"], gam) for gam in VALUES["gamma"]}
    return sorted(points)


def precompute(points: list[tuple] | None = None, seed: int = 0, steps: int = STEPS) -> dict[tuple, PlaygroundRun]:
    """Train one run per (lambda_, mu, nu, gamma) point (default :func:`grid_points`), same seed."""
    points = grid_points() if points is None else points
    return {p: train(*p, steps=steps, seed=seed) for p in points}


STATE_FONT_SIZE = 13  # points, at the explorer's 72 dpi


def _png(fig: Figure, dpi: int = 72) -> bytes:
    """PNG bytes of fig at ``dpi`` (small: the explorer stores every state), then closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def explorer(runs: dict[tuple, PlaygroundRun], steps: int = STEPS, seed: int = 0, title: str = ""):
    """A :class:`vicreg_edu.explorer.Explorer` with sliders for lambda, mu, nu, gamma over the
    precomputed ``runs`` (point -> run, e.g. from :func:`precompute`); a point without a run trains
    live in a kernel (same steps and seed)."""
    from .explorer import Explorer

    controls = [{"name": k, "label": LABELS[k], "values": v} for k, v in VALUES.items()]
    states = {point: _png(state_figure(run)) for point, run in runs.items()}

    def live(point: dict) -> bytes:
        return _png(state_figure(train(**point, steps=steps, seed=seed)))

    default = tuple(PAPER[k] for k in VALUES)
    if default not in states:
        default = next(iter(states))
    return Explorer(controls, states, default, live=live, title=title)
