# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Diagnosing collapse
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vicreg-edu/vicreg-edu/blob/main/book/06_diagnostics.ipynb)
#
# **The question.** A self-supervised loss can go down while the representation goes bad, and
# there are no labels to tell. How do you see, from the embeddings alone, whether a run is
# healthy, has collapsed completely (every dimension's spread gone), or has collapsed
# dimensionally (the spread kept, but in a handful of directions)?
#
# **The idea.** Each kind of collapse has its own reading: the per-dimension standard deviation
# for complete collapse, the effective rank (chapter 0) for dimensional collapse, and the three
# loss terms read *together*. We read them on chapter 5's trained model, then on doctored copies
# of its embeddings whose answer we know. A printed $v$ is the two views' average, a printed $c$
# their sum (chapter 0).

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
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
import torch

from vicreg_edu import data, evaluate, plots
from vicreg_edu import (
    FAST, TwoViewBatchAugment, build_model, extract_features, get_config, load_dataset,
    make_augment_config, train, vicreg_loss)
from vicreg_edu import config, diagnostics

torch.manual_seed(0)
print("fast mode:", FAST)

# %% [markdown]
# ## A trained model to look at
#
# Chapter 5 trained the `demo` preset and left its checkpoint in `runs/ch05_demo/`. The next cell
# loads it if it is a run of the current demo recipe at least as long as this chapter's; otherwise
# it uses (or trains) a run of the same preset in `runs/ch06_demo/`, so the chapter also works on
# its own.

# %%
sizes = dict(epochs=2, train_size=1280, test_size=1000) if FAST else {}  # full size: the preset as it is
own = get_config("demo", knn_every=1, final_eval=False, out_dir="runs/ch06_demo" + ("_fast" if FAST else ""),
                 progress=True, seed=0, **sizes)
RECIPE = [k for k in config.TRAJECTORY_KEYS if k not in ("epochs", "train_size", "seed")]  # the resume rule's keys but length and seed


def reusable(c):
    """Is a stored run's config c the current demo recipe, trained at least as long, on at least as many images?"""
    same_recipe = all(json.dumps(getattr(c, key)) == json.dumps(getattr(own, key)) for key in RECIPE)
    images = lambda size: size or float("inf")  # train_size 0 = the whole split
    return same_recipe and c.epochs >= own.epochs and images(c.train_size) >= images(own.train_size)


for ckpt in (Path("runs/ch05_demo/checkpoint.pt"), Path(own.out_dir, "checkpoint.pt")):
    if ckpt.is_file() and ckpt.with_name("metrics.jsonl").is_file():
        model, cfg = evaluate.load_checkpoint_model(ckpt)
        if reusable(cfg):
            metrics_path = ckpt.with_name("metrics.jsonl")
            print(f"loaded the demo run stored in {ckpt.parent}/")
            break
        print(f"{ckpt}: another recipe or a shorter run ({cfg.epochs} epochs, weights "
              f"{cfg.sim_coeff:g}/{cfg.std_coeff:g}/{cfg.cov_coeff:g}, batch {cfg.batch_size}): not used")
else:
    print("no stored run of the demo preset (run chapter 5 first to reuse its model): training one here")
    result = train(own)
    model, cfg, metrics_path = result.model, result.config, result.metrics_path
print(f"{cfg.dataset}: {cfg.backbone} ({model.repr_dim}-d representation) + expander {cfg.expander} "
      f"({model.embed_dim}-d embedding), weights {cfg.sim_coeff:g}/{cfg.std_coeff:g}/{cfg.cov_coeff:g}, "
      f"batch {cfg.batch_size}, {cfg.epochs} epochs")

# %% [markdown]
# ## The trainer's collapse report, epoch by epoch
#
# At the end of every epoch the trainer embeds two augmented views of the same `diag_size`
# held-out images and logs `diagnostics.collapse_report` of the embeddings (keys prefixed
# `emb_`), plus the representation's effective rank and the $k$-NN accuracy:
#
# | key | question | collapsed if |
# |---|---|---|
# | `emb_std_mean`, `emb_dead_fraction` | how spread out is each dimension; which fraction has std below 0.01? | std near 0, dead fraction near 1 |
# | `emb_effective_rank` | how many directions are really used? | low (dimensional collapse) |
# | `emb_off_diagonal_energy` | the covariance term $c(Z)$ of one view | see the pitfall below |
# | `emb_alignment_mse` | the invariance term $s$: how far apart are the two views? | near 0 *together with* a tiny std |

# %%
records = [r for r in plots.read_metrics(metrics_path) if r.get("kind") == "epoch"]
columns = {"emb_std_mean": "std", "emb_dead_fraction": "dead", "emb_effective_rank": "eff.rank",
           "emb_off_diagonal_energy": "c(Z)", "emb_alignment_mse": "s", "repr_effective_rank": "repr rank",
           "knn_acc": "k-NN"}
print(f"collapse report on N = {records[-1].get('emb_n', cfg.diag_size)} held-out images per epoch")
print("epoch " + " ".join(f"{name:>9}" for name in columns.values()))
for r in records:
    cells = [f"{r[key]:9.3f}" if key in r else f"{'-':>9}" for key in columns]
    print(f"{r['epoch']:5d} " + " ".join(cells))
print(f"smallest per-dimension std of z: {records[0]['emb_std_min']:.2f} at epoch {records[0]['epoch']}, "
      f"{records[-1]['emb_std_min']:.2f} at epoch {records[-1]['epoch']}")

# %%
fig = plots.plot_collapse_panels(metrics_path, gamma=cfg.gamma,
                                 title=f"Collapse diagnostics per epoch ({cfg.dataset}, {cfg.expander}, "
                                       f"N = {records[-1].get('emb_n', cfg.diag_size)} held-out images)")
ax_rank, ax_std = fig.axes[:2]
epochs = [r["epoch"] for r in records]
ax_rank.lines[0].set_label(f"embedding z ({model.embed_dim}-d)")
ax_rank.plot(epochs, [r["repr_effective_rank"] for r in records], color="C2", marker="^",
             label=f"representation y ({model.repr_dim}-d)")
ax_rank.set(title="Effective rank of z and of y", ylabel="effective rank (RankMe)")
ax_rank.legend(loc="lower right")
ax_std.lines[0].set_label("mean per-dim std of z")
ax_std.plot(epochs, [r["emb_std_min"] for r in records], color="C1", marker="v", linestyle=":",
            label="smallest per-dim std of z")
ax_std.set(title="Spread of the embedding z", ylabel="per-dimension std")
ax_std.legend(loc="lower right")
plt.show()

# %% [markdown]
# Under complete collapse the std (right, $\gamma$ dashed) would fall to 0; under dimensional
# collapse the effective rank (left) would fall to a handful of directions. Here the mean std
# climbs towards $\gamma$ (0.63 to 0.92) and the smallest one with it (0.43 to 0.77): no
# dimension is dying, which a mean alone could hide. The embedding's effective rank falls from
# 87 to 75 in epoch 2, passes its first value again only at epoch 8 and ends at 92; the
# representation's, which no term acts on directly, rises every epoch (41 to 71). Neither
# collapse, in $z$ or in $y$. The effective rank is *scale-free* (shrink the cloud by 1000 and it
# does not move), so read complete collapse on the std.

# %% [markdown]
# ## The spectrum and the effective rank of test images
#
# The next cell embeds test images (no augmentation) with the trained model and with a random
# one of the same architecture, and draws the singular value spectra of $z$ and of $y$ (the
# backbone's output, what we keep), each normalised by its largest value; a dashed line marks
# each effective rank.

# %%
aug_cfg = make_augment_config(cfg)  # the run's normalisation statistics
test_set = load_dataset(cfg.dataset, cfg.data_dir, "test")
images, labels = data.in_memory_uint8(test_set)
n = 1000 if FAST else 2000
images, labels = images[:n], labels[:n]
torch.manual_seed(0)
random_model = build_model(cfg).eval()


@torch.no_grad()
def represent_and_embed(m):
    """Representations y (n, repr_dim) and embeddings z (n, embed_dim) of the test images."""
    y = extract_features(m.backbone, images, aug_cfg.mean, aug_cfg.std)
    return y, m.expander(y)


y_trained, z_trained = represent_and_embed(model)
y_random, z_random = represent_and_embed(random_model)
print(f"{n} test images: y {tuple(y_trained.shape)}, z {tuple(z_trained.shape)}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
for ax, (what, trained, rand) in zip(axes, [("embedding z", z_trained, z_random),
                                            ("representation y", y_trained, y_random)]):
    plots.plot_spectrum(trained, ax=ax, normalize=True, label="trained", title=f"Spectrum of the {what} ({n} images)")
    plots.plot_spectrum(rand, ax=ax, normalize=True, label="random init")
    ax.legend(fontsize="small", loc="lower left")
plt.show()

# %% [markdown]
# The trained curves lie above the random ones almost everywhere: training spread the variance
# over more directions, in $z$ and, as a side effect, in $y$. The random embedding's spectrum
# falls off a cliff to about $10^{-7}$ of its top value; the next cell prints where. An
# effective rank depends on the number of images $N$ it is measured on, so the cell also gives it
# at the trainer's $N$, the only value comparable with the epoch table:

# %%
n_report = min(cfg.diag_size, n)
ranks = {}
print(f"{'':>10} {'dim':>5} {'eff. rank, N = ' + str(n_report):>20} {'N = ' + str(n):>9} {'cliff at':>9}")
for name, x in [("z trained", z_trained), ("z random", z_random), ("y trained", y_trained), ("y random", y_random)]:
    s = diagnostics.singular_values(x)
    cliff = int((s > 1e-5 * s[0]).sum())  # directions above 1e-5 of the largest
    ranks[name] = {"small": diagnostics.effective_rank(x[:n_report]), "all": diagnostics.effective_rank(x), "cliff": cliff}
    print(f"{name:>10} {x.shape[1]:5d} {ranks[name]['small']:20.1f} {ranks[name]['all']:9.1f} {cliff:9d}")
assert ranks["z trained"]["small"] < ranks["z trained"]["all"]  # fewer images, lower rank

# %% [markdown]
# Measured on the same number of images as the trainer's report, the trained embedding's
# effective rank is close to the epoch table's last value (other images, no augmentation);
# on 2000 images every effective rank is higher. So compare effective ranks at one $N$ only.
# The random embedding's cliff sits at index 362 (printed above): past it, directions with no
# variance at all: most hidden ReLUs of the random expander are never or always active on these
# images, and an always-active one is linear in the 128-d $y$.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the effective rank against the number of images</b></summary>
#
# The folded cell below measures the effective rank of the same embeddings on the first
# $N$ test images, for $N$ from 64 to all of them. Every curve rises with $N$ and the 512-d
# embedding's has not levelled off at 2000 images, while the 128-d representation's flattens
# sooner: an effective rank is a property of the embedding *and* the sample. Two runs, or two
# epochs, compare only at the same $N$, which is why the trainer measures every epoch on the same
# `diag_size` images.
#
# </details>

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: the effective rank against the number of images
sample_sizes = [m for m in (64, 128, 256, 512, 1000, 2000) if m <= n]
fig, ax = plt.subplots(figsize=(6.5, 4))
for name, x in [("z trained", z_trained), ("z random", z_random), ("y trained", y_trained), ("y random", y_random)]:
    ax.plot(sample_sizes, [diagnostics.effective_rank(x[:m]) for m in sample_sizes], "o-", label=name)
ax.axvline(n_report, color="gray", ls=":", label=f"the trainer's N = {n_report}")
ax.set(xscale="log", xlabel="number of images N", ylabel="effective rank",
       title="The effective rank grows with the sample it is measured on")
ax.legend(fontsize="small", loc="upper left")
plt.show()

# %% [markdown]
# ## What the covariance term changed: correlations
#
# The correlation matrix, $C_{jk} / \sqrt{C_{jj} C_{kk}}$, puts every pair of dimensions on one
# scale, $[-1, 1]$, so that $y$ and $z$ compare despite their different spreads. Its off-diagonal
# entries are what the covariance term $c$ pushes to 0 (in covariance units). The first 48
# dimensions of each, white for 0:

# %%
k = 48
fig = plots.plot_heatmap_pair(diagnostics.correlation_matrix(y_trained), diagnostics.correlation_matrix(z_trained), k=k,
                              titles=("representation y: correlation", "embedding z: correlation"),
                              kind="correlation")
fig.suptitle("Trained model, test images: correlation matrices (same scale, -1 to 1)")
plt.show()


# %%
def mean_abs_offdiag_corr(x):
    """Mean |correlation| over the pairs of distinct dimensions of x (N, D)."""
    corr = diagnostics.correlation_matrix(x)
    d = corr.shape[0]
    return float((corr.abs().sum() - corr.diagonal().abs().sum()) / (d * (d - 1)))


stats = {}
for name, y, z in [("trained", y_trained, z_trained), ("random init", y_random, z_random)]:
    stats[name] = {"y": mean_abs_offdiag_corr(y), "z": mean_abs_offdiag_corr(z)}
    print(f"{name:>12}: mean |corr| representation y {stats[name]['y']:.3f}, embedding z {stats[name]['z']:.3f}")

# %% [markdown]
# The embedding's off-diagonal is pale, the representation's has strong red and blue pairs. Over
# all pairs, training took $z$'s mean $|$correlation$|$ from 0.434 (random network) to 0.121,
# and $y$'s from 0.338 to 0.193: the term acts on $z$, and $y$ follows part of the way.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the covariance matrices themselves</b></summary>
#
# The covariance matrix holds the variances on its diagonal (what $v$ acts on) and the
# covariances off it (what $c$ acts on). On a plain $\pm\max$ colour scale the representation's
# panel is nearly blank: its largest variances set the scale and the rest is pale. The folded cell
# below draws each panel on a scale clipped at the 99th percentile of its $|$entries$|$ (the few
# larger entries saturate) and prints the range of the diagonal: the embedding's variances sit
# around $\gamma^2 = 1$ (0.64 to 1.4), the representation's span a factor of about 20 (0.0022 to
# 0.047), since nothing regularises them.
#
# </details>

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: the covariance matrices, on a readable scale
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
for ax, (what, x) in zip(axes, [("y", y_trained), ("z", z_trained)]):
    cov = diagnostics.covariance_matrix(x)
    clip = float(cov[:k, :k].abs().flatten().quantile(0.99))
    plots.plot_matrix_heatmap(cov, ax=ax, k=k, kind="covariance", vmax=clip,
                              title=f"{what}: covariance, first {k} dims, clipped at ±{clip:.2g}")
    var = cov.diagonal()
    print(f"{what}: variances from {var.min():.2g} to {var.max():.2g} (median {var.median():.2g})")
fig.suptitle("Trained model, test images: covariance matrices (each panel on its own clipped scale)")
plt.show()

# %% [markdown]
# ## A 2-D picture, coloured by class
#
# Labels were never used in training, but they tell whether the geometry the encoder learned
# matches the classes. The simplest picture projects the representations on their first two
# principal components:

# %%
m = 600 if FAST else 1000
fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), constrained_layout=True)
for ax, (name, y) in zip(axes, [("trained", y_trained), ("random init", y_random)]):
    plots.plot_embedding_2d(y[:m], labels[:m], method="pca", ax=ax, point_size=10,
                            class_names=test_set.classes,
                            title=f"Representations y, {name} encoder (PCA)")
axes[0].get_legend().remove()  # one legend, outside the data
sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.01, 1), title="class", fontsize="small")
plt.show()

# %% [markdown]
# In the trained panel PC 1 sorts the classes (rings and crosses at the left, circles and
# hourglasses at the right), while PC 2 mixes them: it follows where the shape sits, left to
# right (correlation -0.89 with its horizontal position, measured in the first fold below). The
# demo's augmentations barely change that position: they flip no image, and their crops keep
# 60-100 % of it, so they move the shape only a little. In the random panel the colours are
# mixed everywhere. Two components keep only part of the picture (the axis labels give their
# share of the variance): chapter 5's t-SNE map of these representations separates more classes,
# and the $k$-NN accuracy, which uses every dimension, is the proper measure (chapter 8).

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: do the two largest directions follow a nuisance (position, size, background)?</b></summary>
#
# The largest directions of variation need not be about classes. The folded cells below measure
# four nuisances of Shapes on the images themselves: a plane fitted (per colour channel) to the
# border pixels gives the background, the pixels far from it the shape, hence the shape's
# vertical and horizontal position (its centre), its area, and the background's colour change
# across the image (about 0 for a flat background). They correlate the two principal
# components with each, and give the share of each component's variance that the class explains
# (between-class over total variance). Then they look, inside the plane of PC 1 and PC 2, for the
# direction that follows a position best (PCA may mix two components of similar variance).
#
# What they find in this run: PC 1 is about the class (class share 0.65) and a little the shape's
# area (+0.15); PC 2 is about the shape's **horizontal position** (correlation -0.89; the sign of
# a component is arbitrary) and not the class (share 0.01), and the best direction of the plane
# for the horizontal position explains $R^2 = 0.79$ of it (0.10 for the vertical one). The random
# network's components follow none of the measures, nor the class (shares 0.00 and 0.01). So the
# encoder's second-largest direction is where the shape sits, left to right. Nothing asks it to
# drop that: the demo flips no image and its crops keep 60-100 % of it, so the two views of an
# image agree on the position, and the invariance term keeps what the views share. (Why the
# horizontal and not the vertical position, this measurement does not say.) A nuisance that the
# augmentations leave intact can become a feature: Shapes' noisy backgrounds, which no
# augmentation removes, were learned as one by a short run, which lost about 8 points of $k$-NN
# accuracy (`load_results("recipe_search")`); the default data leaves them out.
#
# </details>

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: four nuisances measured on the images, against the two principal components
img = images.float() / 255  # (n, 3, 32, 32)
rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
border = (rows == 0) | (rows == 31) | (cols == 0) | (cols == 31)
plane = torch.stack([torch.ones(32, 32), cols / 31 - 0.5, rows / 31 - 0.5], -1)  # (32, 32, 3): 1, x, y
coef = img[..., border] @ torch.linalg.pinv(plane[border]).T  # (n, 3, 3): per channel, a + b x + c y
background = (coef @ plane.reshape(-1, 3).T).reshape(img.shape)  # the fitted background
shape_px = ((img - background).norm(dim=1) > 0.2).double()  # (n, 32, 32): 1 on the shape
weight = shape_px / shape_px.sum((1, 2), keepdim=True).clamp(min=1)
nuisances = {"vertical position": (weight * rows).sum((1, 2)), "horizontal position": (weight * cols).sum((1, 2)),
             "shape area": shape_px.sum((1, 2)), "background gradient": coef[..., 1:].norm(dim=(1, 2)).double()}


def class_share(pc):
    """Share of pc's variance (n,) explained by the class: between-class variance / total variance."""
    k = len(test_set.classes)
    means = torch.zeros(k, dtype=pc.dtype).index_add_(0, labels, pc) / torch.bincount(labels, minlength=k)
    return float(((means[labels] - pc.mean()) ** 2).sum() / ((pc - pc.mean()) ** 2).sum())


pc_reading = {}
print(f"{'':>21} " + " ".join(f"{name:>19}" for name in nuisances) + f" {'class share':>11}")
for name, y in [("trained", y_trained), ("random init", y_random)]:
    coords, ratio = plots.pca_2d(y)
    for j in range(2):
        pc = coords[:, j]
        corr = {key: float(torch.corrcoef(torch.stack([pc, value]))[0, 1]) for key, value in nuisances.items()}
        pc_reading[name, j + 1] = dict(corr, share=class_share(pc), variance=float(ratio[j]))
        print(f"{name:>12} PC {j + 1} ({ratio[j]:.0%}) " + " ".join(f"{c:+19.2f}" for c in corr.values())
              + f" {class_share(pc):11.2f}")
print(f"checks of the measures: {(nuisances['background gradient'] > 0.3).double().mean():.0%} of the images have a "
      f"background gradient above 0.3 (a third are drawn with a gradient); the shape covers a median of "
      f"{nuisances['shape area'].median():.0f} of 1024 pixels")

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: the direction of the PC 1-PC 2 plane that follows a position best
coords, _ = plots.pca_2d(y_trained)
coords = coords - coords.mean(0)  # (n, 2): the trained representations in the plane of PC 1 and PC 2


def best_direction(name):
    """Unit direction of the plane that follows nuisance `name` best (least squares), and the fit's R^2."""
    target = nuisances[name] - nuisances[name].mean()
    w = torch.linalg.lstsq(coords, target[:, None]).solution[:, 0]
    r2 = 1 - float(((coords @ w - target) ** 2).sum() / (target**2).sum())
    return w / w.norm(), r2


fits = {name: best_direction(name) for name in ("vertical position", "horizontal position")}
print("R^2 of the best fit in the plane: " + ", ".join(f"{name} {r2:.2f}" for name, (_, r2) in fits.items()))
kept = max(fits, key=lambda name: fits[name][1])  # the position the plane follows best
w = fits[kept][0]
print(f"{'in the plane of PC 1 and PC 2':>30} " + " ".join(f"{name:>19}" for name in nuisances)
      + f" {'class share':>11}")
for name, direction in [(f"{kept} direction", w), ("the direction across it", torch.stack([-w[1], w[0]]))]:
    d = coords @ direction
    row = {key: float(torch.corrcoef(torch.stack([d, value]))[0, 1]) for key, value in nuisances.items()}
    print(f"{name:>30} " + " ".join(f"{row[key]:+19.2f}" for key in nuisances) + f" {class_share(d):11.2f}")
if not FAST:  # the reading in the fold above (fast mode's run is too short to show it)
    assert fits["horizontal position"][1] > 0.5 > fits["vertical position"][1], fits  # the plane follows x, not y
    assert pc_reading["trained", 1]["share"] > 0.3 > pc_reading["trained", 2]["share"], pc_reading  # PC 1: class
    assert max(pc_reading["random init", j]["share"] for j in (1, 2)) < 0.1, pc_reading

# %% [markdown]
# ## Reading the three terms together: a pitfall
#
# A user of the official code reported a covariance loss of about $10^{-5}$, then 0. The first
# author's answer: a loss of 0 most likely means collapse; $c$ should stay roughly stable, and it
# is the invariance loss that decreases
# ([facebookresearch/vicreg#14](https://github.com/facebookresearch/vicreg/issues/14)). A tiny $c$
# is not good news: $c$ sums *squared covariances*, so it shrinks much faster than a shrinking
# cloud, and $s$ shrinks too. Only scale-aware numbers catch that: $v$ and the std. For $s$, ask
# how close the two views are *compared with two different images*: for unrelated pairs
# $s \approx 2\,\overline{\operatorname{Var}}$, so $s / 2\overline{\operatorname{Var}}$ is near 1
# without invariance and near 0 when the views agree.
#
# The next cell reads these numbers on two augmented views of test images, then on doctored
# copies: shrunk by 100 (a collapse in progress), $x'$ paired with a *different* image's view,
# one constant vector (complete collapse), and a **dimensional collapse** from
# `diagnostics.low_rank_copy`: both views mapped onto 3 principal directions, every dimension
# rescaled to keep its std, as under an active variance term.

# %%
def read_terms(z_a, z_b):
    """The VICReg terms with the scale-aware numbers needed to interpret them."""
    t = vicreg_loss(z_a, z_b)
    spread = 0.5 * (z_a.var(0).mean() + z_b.var(0).mean())
    rel = float(t.invariance / (2 * spread)) if spread > 0 else float("nan")
    return dict(s=float(t.invariance), v=float(t.variance), c=float(t.covariance),
                std=float(diagnostics.per_dim_std(z_a).mean()), erank=diagnostics.effective_rank(z_a), s_rel=rel)


views = TwoViewBatchAugment(aug_cfg)(images, torch.Generator().manual_seed(0))
with torch.no_grad():
    z_a, z_b = model(views[0])[1], model(views[1])[1]
cases = {"trained model": (z_a, z_b),
         "shrunk x0.01": (0.01 * z_a, 0.01 * z_b),
         "different images": (z_a, z_b.roll(1, dims=0)),
         "constant vector": (z_a.mean(0).expand_as(z_a), z_a.mean(0).expand_as(z_b)),
         "3 directions": (diagnostics.low_rank_copy(z_a, 3).float(), diagnostics.low_rank_copy(z_b, 3, basis=z_a).float())}
readings = {name: read_terms(*pair) for name, pair in cases.items()}
print(f"{n} test images, two views each")
print(f"{'':>17} {'s':>9} {'v (avg)':>7} {'c (sum)':>10} {'std':>7} {'eff.rank':>8} {'s/2Var':>7}")
for name, r in readings.items():
    print(f"{name:>17} {r['s']:9.2e} {r['v']:7.3f} {r['c']:10.2e} {r['std']:7.3f} {r['erank']:8.1f} {r['s_rel']:7.2f}")

# %% [markdown]
# Read the table row by row:
#
# - **trained model**: $v$ about 0.09 (0 when every dimension reaches $\gamma$, 0.99 at
#   collapse), std 0.91, and $s / 2\overline{\operatorname{Var}} = 0.19$: views much closer than
#   different images. Healthy, with a little spreading left to do.
# - **shrunk**: $c$ and $s$ look superb and the effective rank does not move, but $v$ jumps to
#   0.99 and the std to almost 0: the collapse of issue #14.
# - **different images**: the same $c$, but $s / 2\overline{\operatorname{Var}}$ near 1.
# - **constant vector**: everything 0 except $v$: complete collapse.
# - **3 directions**: the trained model's std and about its $v$, yet $c$ some 15 times larger and
#   an effective rank of 3: dimensional collapse, invisible to the std.
#
# Drawn for view $x$: the std of each dimension and the spectrum (the std along each principal
# direction) of three rows.

# %%
assert readings["shrunk x0.01"]["c"] < 1e-6 * readings["trained model"]["c"]
assert readings["shrunk x0.01"]["v"] > 0.95 > readings["trained model"]["v"]
assert readings["different images"]["s_rel"] > 0.8  # unrelated pairs: s close to 2 Var
assert readings["constant vector"]["erank"] == 0.0
low, healthy = readings["3 directions"], readings["trained model"]
assert low["erank"] < 3.5 < healthy["erank"] and abs(low["std"] - healthy["std"]) < 0.05 * healthy["std"]
assert low["c"] > 2 * healthy["c"]  # the dimensional collapse shows in c, not in the std

# %%
styles = {"trained model": dict(color="C0", linewidth=4, alpha=0.6), "shrunk x0.01": dict(color="C3"),
          "3 directions": dict(color="C2", linestyle="--")}
fig, (ax_std, ax_spec) = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
for name, style in styles.items():
    z = cases[name][0]  # view x
    ax_std.plot(range(1, z.shape[1] + 1), z.std(0).sort(descending=True).values, label=name, **style)
    sv = diagnostics.singular_values(z) / (len(z) - 1) ** 0.5  # the std along each principal direction
    n_pos = int((sv > 0).sum())  # a log axis shows only the positive values
    ax_spec.plot(range(1, n_pos + 1), sv[:n_pos], label=f"{name}: effective rank {readings[name]['erank']:.1f}", **style)
ax_std.axhline(cfg.gamma, color="grey", linestyle=":", label=f"$\\gamma$ = {cfg.gamma:g}")
ax_std.set(yscale="log", xlabel="dimension (sorted by its std)", ylabel="std of the dimension",
           title="Std per dimension: sees the shrinking, not the 3 directions")
ax_spec.set(yscale="log", xlabel="principal direction k (largest first)", ylabel="std along direction k",
            title="Spectrum: shows the 3 directions; its rank ignores the shrinking")
ax_std.legend(fontsize="small", loc="center right")
ax_spec.legend(fontsize="small", loc="upper right")
fig.suptitle("Two doctored copies of the trained embedding z (view x), beside the trained one")
plt.show()

# %% [markdown]
# On the left, the 3-direction copy's dashed line lies on the trained one (every dimension keeps
# its std: the std and $v$ miss this collapse), while the shrunk copy sits 100 times lower. On
# the right, the shrunk spectrum has the trained one's shape, 100 times lower, so the same
# effective rank (100.5); the 3-direction copy holds all its variance in three directions, then
# drops to float32 rounding (effective rank 3.0). Each collapse hides from one reading: read both.
#
# ## Healthy run or collapse: the signs in one table
#
# The other chapters refer to this table:
#
# | what to read | healthy run | complete collapse | dimensional collapse |
# |---|---|---|---|
# | variance term $v$ | falls towards 0 | climbs towards $\gamma - \sqrt{\epsilon} \approx 0.99$ | can stay low: dimensions keep their spread but move together |
# | per-dimension std, dead fraction | near $\gamma$, no dead dimension | towards 0, dead fraction towards 1 | can stay near $\gamma$ |
# | covariance term $c$ | small but not 0; roughly stable once the std sits at $\gamma$ (while the spread still grows, it grows with it: chapter 5) | towards 0 | large: strongly correlated dimensions |
# | invariance term $s$ | small, well below $2\overline{\operatorname{Var}}$ | towards 0 | small |
# | effective rank (at a fixed $N$) | high and stable | **not a reliable sign**: scale-free; read the std | low: a few directions hold the variance (a cliff in the spectrum) |
# | $k$-NN, linear probe | well above a random encoder | down to a random encoder's | below a healthy run's |
#
# Chapter 1 shows a complete collapse (invariance alone), chapters 3, 4 and 7 a dimensional one
# (no covariance term). This chapter's run reads healthy on every row.

# %% [markdown]
# > **Takeaways**
# >
# > - Read **complete collapse on the std** (and $v$): a shrinking cloud makes $c$ and $s$ look
# >   perfect and leaves the scale-free effective rank unchanged.
# > - Read **dimensional collapse on the effective rank and $c$**: with the std kept, only they see
# >   it. Compare effective ranks measured on the same number of images.
# > - **$c = 0$ with $s = 0$ is collapse, not success**; judge $s$ against $2\overline{\operatorname{Var}}$.
# > - The trainer logs all of these every epoch (`emb_*` keys): a run can be diagnosed without a label.

# %% [markdown]
# ## Exercise: predict, then run
#
# Suppose half of the embedding's 512 dimensions die: they output the same value for every
# image (each keeps its mean), while the other half stay as trained, in both views. The trained
# model's $v$ is in the table above. **Before running anything**, predict:
#
# - `my_v`: the loss's $v$ of the half-dead embeddings (a number; within 0.03 counts);
# - `my_c_ratio`: the factor by which the loss's $c$ changes, $c_\text{half dead} / c_\text{trained}$
#   (a number; within 0.05 counts).
#
# Think about what each term averages or sums over, and how it is normalised (chapter 0). The
# hidden cell kills a fresh random half of the dimensions on every run, measures both, checks
# your predictions ("not answered yet" while they are `None`) and prints the worked answer.

# %%
my_v = None  # replace None with your prediction (a number)
my_c_ratio = None  # replace None with your prediction (a number)

# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
# Answer: v is an average over the d dimensions of the hinge max(0, gamma - sqrt(Var + eps)). A dead dimension
# contributes gamma - sqrt(eps) = 0.99, a live one what it did: v = (0.99 + v_trained) / 2.
# c(Z) sums C_jk^2 over the pairs j != k and divides by d, which stays 512: only live-live pairs remain,
# (d/2)(d/2 - 1) of d(d - 1), about 1/4 of the pairs, so c falls to about a quarter (if the covariance
# energy is spread evenly over the pairs, which the measurement confirms).
gen = torch.Generator().manual_seed(int(torch.randint(10**6, (1,))))  # a fresh half on every run
d = z_a.shape[1]
dead = torch.randperm(d, generator=gen)[: d // 2]
half_a, half_b = z_a.clone(), z_b.clone()
half_a[:, dead], half_b[:, dead] = z_a[:, dead].mean(0), z_b[:, dead].mean(0)
measured = read_terms(half_a, half_b)
c_ratio = measured["c"] / readings["trained model"]["c"]
hinge = lambda z: torch.relu(cfg.gamma - torch.sqrt(z.var(0) + cfg.eps))
live = torch.ones(d, dtype=torch.bool); live[dead] = False
expected_v = float(((cfg.gamma - cfg.eps**0.5) * (~live).sum() + 0.5 * (hinge(z_a) + hinge(z_b))[live].sum()) / d)
assert abs(measured["v"] - expected_v) < 1e-4, (measured["v"], expected_v)  # the worked v, exactly
assert abs(c_ratio - (d // 2) * (d // 2 - 1) / (d * (d - 1))) < 0.08, c_ratio  # about a quarter of the pairs
for what, mine, value, tol in [("my_v", my_v, measured["v"], 0.03), ("my_c_ratio", my_c_ratio, c_ratio, 0.05)]:
    if mine is None:
        print(f"{what}: not answered yet (replace None in the cell above, then rerun both cells)")
    else:
        assert abs(mine - value) <= tol, f"{what} = {mine} is off: the measurement gives {value:.3f}"
        print(f"{what} = {mine}: right (measured {value:.3f})")
print(f"worked solution: v {readings['trained model']['v']:.3f} -> {measured['v']:.3f} = (0.99 + v) / 2; "
      f"c x {c_ratio:.3f}, about (d/2)(d/2 - 1) / (d(d - 1)) = {(d // 2) * (d // 2 - 1) / (d * (d - 1)):.3f}; "
      f"the std halves ({measured['std']:.3f}) and the effective rank falls to {measured['erank']:.1f}")
