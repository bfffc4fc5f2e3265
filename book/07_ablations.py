# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7. Ablations
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vicreg-edu/vicreg-edu/blob/main/book/07_ablations.ipynb)
#
# An *ablation* removes or changes one ingredient of a method and measures what is lost. This
# chapter does it for every knob of VICReg ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)): the three loss weights
# $\lambda$ (invariance), $\mu$ (variance), $\nu$ (covariance), the variance target $\gamma$,
# and each augmentation. Sliders pick a setting; the numbers come from a precomputed grid of
# short runs, and a button trains the setting you chose, live. The goal is to reproduce the
# *direction* of the paper's findings on the built-in Shapes data: without the variance term the
# embeddings collapse, and without the covariance term they lose rank.

# %%
try:
    import vicreg_edu
except ImportError:  # Colab: install the library from the repository, once
    import subprocess, sys
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vicreg-edu @ git+https://github.com/vicreg-edu/vicreg-edu"], check=True)
    import vicreg_edu

# %%
import json
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from vicreg_edu.config import FAST
from vicreg_edu.loss import variance_loss
from vicreg_edu.train import train

plt.rcParams["figure.dpi"] = 80  # wide multi-panel figures: keeps the stored notebook small
print("fast mode:", FAST)

# %% [markdown]
# The grid and the script that computes it live in the repository, next to the book
# (`book/data/ablation_grid.json`, `scripts/ablation_grid.py`). Run from a clone, the next cell
# finds them; in Colab it clones the repository once, like the install cell above.

# %%
candidates = [Path.cwd().parent, Path.cwd(), Path("vicreg-edu")]
repo = next((p for p in candidates if (p / "scripts" / "ablation_grid.py").is_file()), None)
if repo is None and "google.colab" in sys.modules:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/vicreg-edu/vicreg-edu"], check=True)
    repo = Path("vicreg-edu")
if repo is None:
    raise FileNotFoundError("scripts/ablation_grid.py not found: open this notebook from a clone of "
                            "https://github.com/vicreg-edu/vicreg-edu (jupyter lab book/)")
sys.path.insert(0, str(repo / "scripts"))
import ablation_grid as ag  # noqa: E402  (grid definition, config_for, summarize)

# %% [markdown]
# ## What the paper found
#
# The paper's loss is $\ell = \lambda\, s + \mu\,[v(Z) + v(Z')] + \nu\,[c(Z) + c(Z')]$ with
# $\lambda = \mu = 25$, $\nu = 1$, $\gamma = 1$ (chapter 0). Its ablations at 100 epochs on
# ImageNet (Table 7, ResNet-50, batch 2048) give 68.6% linear top-1 for the full loss and 57.5%
# when only invariance and variance are kept: the covariance term is worth 11 points. The
# variance term is not optional at all: a constant embedding has zero invariance loss *and* zero
# covariance, so with $\mu = 0$ nothing in the loss stands between the encoder and collapse
# (chapter 1 showed it with invariance alone). So, two directions to check:
#
# 1. $\mu = 0$: the per-dimension standard deviation of the embeddings falls towards 0 (most
#    dimensions "dead") and the representation is no better than a random encoder's;
# 2. $\nu = 0$: the embeddings stay spread out ($v$ is still there) but their dimensions become
#    redundant, so the effective rank (RankMe ([Garrido et al., 2023](https://arxiv.org/abs/2210.02885)), chapter 6) drops:
#    dimensional collapse ([Jing et al., 2022](https://arxiv.org/abs/2110.09348)).
#
# The paper's augmentations follow BYOL ([Grill et al., 2020](https://arxiv.org/abs/2006.07733)), whose ablations (like SimCLR's
# ([Chen et al., 2020](https://arxiv.org/abs/2002.05709))) single out random crops and colour jitter as the augmentations that
# matter most. On Shapes the nuisances are position, size, rotation and colour, so we will see
# which switches hurt here.

# %% [markdown]
# ## The precomputed grid
#
# Training is the expensive part, so `scripts/ablation_grid.py` ran it once: the `demo` preset
# (SmallCNN, expander 512-512-512, AdamW, batch 128) for 3 epochs of 5000 images per run, changing **one
# factor at a time** around the default point, plus the baseline repeated with two other seeds
# to show how much a number moves by chance. The same script is what the "run it live" button
# below calls (its `config_for` and `summarize`), so live runs and grid runs are comparable.
# Each run records the final $k$-NN accuracy of the trained backbone, the effective rank and the
# mean per-dimension standard deviation of the embeddings on 512 held-out images, and the three
# loss terms.

# %%
grid_path = repo / "book" / "data" / "ablation_grid.json"
grid = json.loads(grid_path.read_text())
runs = {run["name"]: run for run in grid["runs"]}
base = runs["baseline"]
seed_runs = [base] + [r for r in grid["runs"] if r["factor"] == "seed"]  # the baseline, other seeds
print(grid["what"])
print("command:", grid["command"])
print("settings:", json.dumps(grid["settings"]))
print(f"{len(runs)} runs, {grid['workers']} at a time, one thread each: {grid['wall_time_s'] / 60:.1f} min wall time, "
      f"{grid['cpu_time_s'] / 60:.1f} min of CPU time")
print(f"k-NN baselines: random encoder {base['knn_random_init']:.3f}, raw pixels {base['knn_raw_pixels']:.3f}, "
      "chance 0.100")

# %%
print(f"{'run':>14} {'k-NN':>6} {'eff.rank':>8} {'std':>6} {'s':>8} {'v':>8} {'c':>8}")
for name, r in runs.items():
    print(f"{name:>14} {r['knn']:6.3f} {r['emb_effective_rank']:8.1f} {r['emb_std_mean']:6.3f} "
          f"{r['invariance']:8.4f} {r['variance']:8.4f} {r['covariance']:8.4f}")


# %% [markdown]
# ## Every factor, one at a time
#
# The next figure has one column per factor and one row per metric. Each column moves a single
# knob; the baseline run (the default point) is the filled marker, so a column reads "what
# happens when only this knob turns".

# %%
AUG_LABELS = {"crop": "crop", "flip_p": "flip", "jitter_p": "jitter", "grayscale_p": "gray", "solarize_p": "solarize"}
FACTOR_TITLES = {"sim_coeff": "$\\lambda$ (sim_coeff)", "std_coeff": "$\\mu$ (std_coeff)",
                 "cov_coeff": "$\\nu$ (cov_coeff)", "gamma": "$\\gamma$", "aug": "augmentation switched off"}


def factor_runs(factor):
    """(x labels, runs) of one column: the factor's values in order (baseline included)."""
    if factor == "aug":
        return ["none"] + [AUG_LABELS[a] for a in ag.AUG_OFF], [base] + [runs[f"no_{a}"] for a in ag.AUG_OFF]
    values = grid["factors"][factor]
    picked = [base if v == grid["default_point"][factor] else runs[f"{factor}={v:g}"] for v in values]
    return [f"{v:g}" for v in values], picked


def plot_factor_grid(metrics, title):
    """Rows = metrics (key, axis label), columns = factors; the baseline run is the filled marker."""
    factors = ["sim_coeff", "std_coeff", "cov_coeff", "gamma", "aug"]
    fig, axes = plt.subplots(len(metrics), len(factors), figsize=(13, 2.3 * len(metrics)),
                             sharey="row", constrained_layout=True, squeeze=False)
    for col, factor in enumerate(factors):
        labels, picked = factor_runs(factor)
        for row, (key, ylabel) in enumerate(metrics):
            ax = axes[row, col]
            y = [r[key] for r in picked]
            ax.plot(range(len(y)), y, "o-" if factor != "aug" else "o", color="C0", mfc="white")
            i_base = next(i for i, r in enumerate(picked) if r is base)
            ax.plot([i_base], [y[i_base]], "o", color="C0")
            seeds = [r[key] for r in seed_runs]
            ax.axhspan(min(seeds), max(seeds), color="C0", alpha=0.15, lw=0, label="baseline, 3 seeds")
            if key == "knn":
                ax.axhline(base["knn_random_init"], ls="--", color="gray", lw=1, label="random encoder")
            ax.set_xticks(range(len(labels)), labels, rotation=30 if factor == "aug" else 0)
            ax.set(xlabel=FACTOR_TITLES[factor] if row == len(metrics) - 1 else None,
                   ylabel=ylabel if col == 0 else None, yscale="log" if key in ("invariance", "variance", "covariance") else "linear")
    axes[0, 0].legend(loc="best", fontsize=8)
    fig.suptitle(title)
    return fig


# %%
plot_factor_grid([("knn", "k-NN accuracy"), ("emb_std_mean", "embedding std (mean)"),
                  ("emb_effective_rank", "embedding eff. rank"), ("repr_effective_rank", "representation eff. rank")],
                 "Accuracy, spread and effective rank vs each factor (one factor changed per run)")
plt.show()

# %% [markdown]
# Read each column against the shaded band: the baseline repeated with three seeds, so a
# difference inside the band is noise.
#
# - **$\mu$.** At $\mu = 0$ the embedding std drops to almost zero and the $k$-NN accuracy to the
#   random encoder's level (dashed line) or below: collapse. The *embedding* effective rank does not drop:
#   RankMe normalises the singular values, so on a collapsed embedding it measures the shape of
#   the tiny noise that is left, which points in all directions. The backbone's effective rank
#   (last row) does drop. Collapse is read from the spread (std, dead dimensions) first, the rank
#   second. $\mu = 5$ is not enough either in these short runs (the std stays small), while a
#   larger $\mu$ than the default spreads the embeddings faster, which helps.
# - **$\nu$.** The effective rank of the embeddings grows with $\nu$ over the whole range. At
#   $\nu = 0$ the spread is fine (the variance hinge still holds each dimension up) but the
#   effective rank is a handful of dimensions: every dimension says almost the same thing.
# - **$\lambda$.** At $\lambda = 0$ nothing asks the two views to agree: the embeddings are spread
#   out and of high rank, yet the $k$-NN accuracy is at chance. Spread without invariance is
#   noise. A $\lambda$ above the default squeezes the embeddings (lower std, lower rank): what
#   matters is the balance of $\lambda$ against $\mu$ and $\nu$, not their size.
# - **$\gamma$.** Almost nothing moves (the exercise explains why).
# - **Augmentations.** Switching colour jitter off costs the most, down to the random
#   encoder's accuracy: on Shapes colour is the strongest nuisance (every image has random
#   foreground and background colours), and without jitter the two views share their colours,
#   so agreeing on colour is mostly enough. Grayscale and solarisation are within the seed band.
#   Switching the crop or the flip off *raises* the accuracy of these short runs: with fewer
#   augmentations the task is easier and is learnt sooner. The literature's finding that random crops
#   (with colour distortion) matter most ([Chen et al., 2020](https://arxiv.org/abs/2002.05709)) is about long runs; the invariance a crop teaches (position and
#   size) pays off later, which a 117-step run cannot show. Train `no_crop` and the baseline
#   for longer (`python scripts/ablation_grid.py --epochs 20 --only baseline no_crop --out
#   runs/longer.json`, about 10 CPU minutes) to see whether the order changes.

# %%
plot_factor_grid([("invariance", "invariance $s$"), ("variance", "variance $v$"), ("covariance", "covariance $c$")],
                 "The three loss terms (unweighted, last logged step) vs each factor")
plt.show()

# %% [markdown]
# Each term answers to its own weight: raising $\lambda$ pushes $s$ down, raising $\mu$ pushes $v$
# down, raising $\nu$ pushes $c$ down, each at some expense of the others. At $\mu = 0$ the
# variance term sits at its collapsed value ($v = \gamma - \sqrt{\epsilon} \approx 0.99$) while $s$
# and $c$ are tiny: a collapsed run has an excellent invariance loss, so a low invariance loss
# alone never shows that training works. Changing $\gamma$ moves $v$ mostly because it moves the
# target.

# %% [markdown]
# ## The paper's directions, checked
#
# The next cell puts the three runs of the paper's ablation side by side and checks the two
# directions with asserts (on the grid, so they hold for the shipped numbers).

# %%
trio = {"full loss": base, "no variance (mu=0)": runs["std_coeff=0"], "no covariance (nu=0)": runs["cov_coeff=0"]}
paper = {"full loss": "68.6", "no variance (mu=0)": "-", "no covariance (nu=0)": "57.5"}
print(f"{'run':>21} {'paper top-1':>11} {'our k-NN':>8} {'emb std':>7} {'dead':>5} {'emb rank':>8} {'repr rank':>9}")
for name, r in trio.items():
    print(f"{name:>21} {paper[name]:>11} {r['knn']:8.3f} {r['emb_std_mean']:7.3f} {r['emb_dead_fraction']:5.2f} "
          f"{r['emb_effective_rank']:8.1f} {r['repr_effective_rank']:9.1f}")
print(f"random encoder k-NN {base['knn_random_init']:.3f}, raw pixels {base['knn_raw_pixels']:.3f}")
no_var, no_cov = runs["std_coeff=0"], runs["cov_coeff=0"]
assert no_var["emb_std_mean"] < 0.1 * base["emb_std_mean"], "mu=0 should shrink the embeddings to a point"
assert no_var["emb_dead_fraction"] > 0.5, "mu=0 should leave most embedding dimensions dead"
assert no_cov["emb_effective_rank"] < 0.5 * base["emb_effective_rank"], "nu=0 should lower the effective rank"
seed_knn = [r["knn"] for r in seed_runs]  # the baseline with three seeds
assert max(no_var["knn"], no_cov["knn"]) < min(seed_knn), "both ablations should cost more than seed noise"

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), constrained_layout=True, sharex=True)
for ax, (k, term) in zip(axes, enumerate(["invariance $s$", "variance $v$", "covariance $c$"])):
    for name, r in trio.items():
        curve = np.array(r["curve"])
        ax.plot(curve[:, 0], curve[:, k + 1], label=name)
    ax.set(xlabel="training step", ylabel=term, yscale="log", title=f"{term} during training")
axes[0].legend(fontsize=8)
fig.suptitle("The paper's ablation on Shapes: full loss vs no variance vs no covariance")
plt.show()

# %% [markdown]
# During training the $\mu = 0$ run's variance term climbs towards 1 (every dimension loses its
# spread) while its invariance and covariance terms sink by orders of magnitude: the two views
# agree because *all* images agree. The $\nu = 0$ run keeps $v$ at least as low as the full loss,
# but its covariance term, no longer penalised, sits far above the full loss's: its dimensions
# are correlated copies of one another.
#
# **How close is this to the paper?** The *directions* reproduce: without the variance term the
# embeddings collapse and the $k$-NN accuracy falls to the random encoder's; without the
# covariance term the effective rank collapses to a few dimensions and the accuracy drops too,
# by more than the spread of the three baseline seeds. The *sizes* cannot be compared. The paper
# measures linear top-1 on ImageNet after 100 epochs of a ResNet-50, where dropping the
# covariance term costs 11 of 68.6 points and the model still learns a lot; here each run is 117
# steps of a 0.1 M-parameter CNN on 5000 synthetic images, evaluated by $k$-NN, where even the
# full loss is only a few points above a random encoder (chapter 5 trains longer), and dropping
# the covariance term takes the accuracy all the way down to the random encoder's. Three seeds
# give only a rough idea of the noise, so read the accuracy gaps as directions; the effective
# rank, measured on the very embeddings the loss acts on, is the clear signal.

# %% [markdown]
# ## Explore: sliders and switches
#
# The controls below are four sliders ($\lambda$, $\mu$, $\nu$, $\gamma$, each over the values of
# the grid) and one switch per augmentation. Their callback, `update`, looks the current setting
# up in the grid and draws its loss curves, $k$-NN accuracy, spread and effective rank next to
# the baseline's. The grid is one factor at a time, so a setting that changes two factors is not
# in it: then the **Run it live** button trains that setting now (a few minutes on a CPU).

# %%
DESCRIPTIONS = {"sim_coeff": "λ (sim)", "std_coeff": "μ (std)", "cov_coeff": "ν (cov)", "gamma": "γ"}
sliders = {f: widgets.SelectionSlider(options=grid["factors"][f], value=grid["default_point"][f],
                                      description=DESCRIPTIONS[f], continuous_update=False)
           for f in DESCRIPTIONS}
toggles = {a: widgets.Checkbox(value=True, description=AUG_LABELS[a], indent=False) for a in ag.AUG_OFF}
run_button = widgets.Button(description="Run it live", button_style="primary", icon="play")
panel = widgets.Output()


def current_point():
    """The point the controls describe, in the grid's format."""
    return {**{f: float(s.value) for f, s in sliders.items()},
            "aug_off": [a for a, t in toggles.items() if not t.value]}


def find_run(point):
    """The grid run at exactly this point, or None."""
    return next((r for r in grid["runs"] if r["point"] == point), None)


# %%
def show_summary(summary, title):
    """Loss curves, k-NN, spread and effective rank of one run, next to the baseline's."""
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.3), constrained_layout=True)
    for k in range(3):  # s, v, c
        for r, style in ((base, "--"), (summary, "-")):
            curve = np.array(r["curve"])
            axes[0].plot(curve[:, 0], curve[:, k + 1], style, marker=".", color=f"C{k}")
    axes[0].set(xlabel="training step", ylabel="loss term (unweighted)", yscale="log",
                title="loss terms: blue $s$, orange $v$, green $c$\n(solid: this run, dashed: baseline)")
    bars = [("k-NN accuracy", {"this run": summary["knn"], "baseline": base["knn"],
                               "random enc.": base["knn_random_init"], "raw pixels": base["knn_raw_pixels"]}),
            ("embedding std (mean)", {"this run": summary["emb_std_mean"], "baseline": base["emb_std_mean"]}),
            ("effective rank", {"emb. (this)": summary["emb_effective_rank"], "emb. (base)": base["emb_effective_rank"],
                                "repr. (this)": summary["repr_effective_rank"], "repr. (base)": base["repr_effective_rank"]})]
    for ax, (ylabel, values) in zip(axes[1:], bars):
        ax.bar(list(values), list(values.values()), color=["C0" if "this" in k else "C7" for k in values])
        ax.set(ylabel=ylabel, title=ylabel)
        ax.tick_params(axis="x", labelrotation=20)
    fig.suptitle(title)
    plt.show()


def update(change=None, into=None):
    """The controls' callback: look the current point up in the grid and redraw the panel.

    `into` is where to draw: the Output widget under the controls (default), or any context
    manager, e.g. `nullcontext()` to draw straight into the cell that calls it."""
    point, target = current_point(), panel if into is None else into
    with target:
        if target is panel:
            panel.clear_output(wait=True)
        run = find_run(point)
        if run is None:
            print(f"{ag.changed_factors(point)} changed together: not in the one-factor grid. Press 'Run it live'.")
        else:
            show_summary(run, f"grid run '{run['name']}'")


# %% [markdown]
# Without a live kernel (this page, or the test run) nobody moves a slider, so the next cell does
# what a slider does: it sets $\mu = 0$ and calls the callback once, drawing into the page.

# %%
sliders["std_coeff"].value = 0.0
update(into=nullcontext())

# %% [markdown]
# This is the grid's $\mu = 0$ run. Its variance term (orange, solid) climbs towards 1 while the
# baseline's (dashed) stays lower, and its invariance and covariance terms sink far below the
# baseline's; its $k$-NN bar is at the random encoder's, its std bar has almost vanished, and, as
# discussed above, its *embedding* effective rank is not low while its *representation's* is.

# %% [markdown]
# ## Run it live
#
# The button's callback, `run_live`, trains the current setting with the grid's sizes through the
# same `ablation_grid.config_for` and `summarize` as the grid (so it calls `vicreg_edu.train.train`
# exactly as the grid did) and draws the same panel. Here we use it for what the grid cannot
# answer: $\mu = 0$ **and** $\nu = 0$, invariance alone, the setting of chapter 1. In fast mode
# (the test run) the live run is tiny: it only checks that the code path works.

# %%
LIVE_SIZES = dict(epochs=1, train_size=1000, test_size=500, diag_size=256) if FAST else ag.SIZES


def run_live(button=None, into=None):
    """The button's callback: train the current point now and draw it (progress bar in the panel)."""
    point = current_point()
    cfg = ag.config_for(point, **LIVE_SIZES, out_dir="runs/ch07_live", progress=into is None)
    with panel if into is None else into:
        summary = ag.summarize(train(cfg))
        show_summary(summary, f"live run, changed: {', '.join(ag.changed_factors(point)) or 'nothing'} "
                              f"({cfg.epochs} epochs x {cfg.train_size} images, {summary['wall_time_s']:.0f} s)")
    return summary


# %%
sliders["cov_coeff"].value = 0.0  # mu = 0 (set above) and now nu = 0: invariance only
update(into=nullcontext())
live = run_live(into=nullcontext())
print(f"live run: k-NN {live['knn']:.3f}, embedding std {live['emb_std_mean']:.3f}, "
      f"dead dimensions {live['emb_dead_fraction']:.2f}, variance term {live['variance']:.3f}")
assert np.isfinite(live["knn"]) and 0 <= live["knn"] <= 1

# %% [markdown]
# Invariance alone collapses like the $\mu = 0$ grid run: the std bar has almost vanished, the
# variance term climbs towards 1 and the $k$-NN accuracy is at the random encoder's. The
# covariance term could not have saved it anyway: a constant embedding has no covariance to
# penalise. (In fast mode the live run is a few steps long, which is enough to see the std fall
# but not to finish collapsing.)

# %% [markdown]
# ### Your turn
#
# The controls, back at the default point. In a running notebook (JupyterLab, Colab), move a
# slider or untick a switch and the panel under the button follows; press the button to train
# the setting you chose. (On this static page they do nothing: the figures above are what they
# draw.)

# %%
for f, slider in sliders.items():
    slider.value = grid["default_point"][f]
for control in [*sliders.values(), *toggles.values()]:
    control.observe(update, names="value")
run_button.on_click(run_live)
with panel:
    print("Move a slider or untick an augmentation to see its grid run here.")
display(widgets.VBox([widgets.HBox(list(sliders.values())), widgets.HBox(list(toggles.values())), run_button, panel]))

# %% [markdown]
# ## Exercise
#
# **Why does $\gamma$ barely matter here?** The $\gamma = 2$ run of the grid ends with exactly the
# baseline's $k$-NN accuracy, spread and effective rank; only its variance term differs. Without
# looking at that run, predict its final variance term $v$ from the baseline's (`base["variance"]`,
# `base["emb_std_mean"]`). Hint: in the baseline, is any embedding dimension's standard deviation
# above 1? What is the gradient of $\max(0, \gamma - S)$ with respect to $S$ when $S < \gamma$?

# %%
my_prediction = None  # replace None with your value of v for the gamma = 2 run

# %% tags=["hide-input"]
# Answer: the baseline's embeddings never reach std 1 in these short runs, so for every dimension
# gamma - S > 0 for gamma = 1 and gamma = 2 alike: the hinge is in its linear part, its gradient
# (-1/d per dimension) does not depend on gamma, and both runs take exactly the same steps. Only
# the value moves: v(gamma=2) = mean(2 - S) = v(gamma=1) + 1. Gamma matters once dimensions reach
# it (gamma = 0.5 already differs a little: some dimensions get there).
z = (0.3 * torch.randn(256, 64)).requires_grad_()  # every column's std ~0.3 < 1 <= gamma
grads = [torch.autograd.grad(variance_loss(z, gamma=g), z)[0] for g in (1.0, 2.0)]
assert torch.equal(grads[0], grads[1]), "below the target, the hinge's gradient does not depend on gamma"
expected = base["variance"] + 1
g2 = runs["gamma=2"]
assert abs(g2["variance"] - expected) < 2e-3, (g2["variance"], expected)
assert (g2["knn"], g2["emb_std_mean"], g2["emb_effective_rank"]) == (base["knn"], base["emb_std_mean"], base["emb_effective_rank"])
assert my_prediction is None or abs(my_prediction - expected) < 0.01, f"expected {expected:.4f}, got {my_prediction}"
print(f"baseline v = {base['variance']:.4f}; gamma = 2: v = {g2['variance']:.4f} (predicted {expected:.4f})")
