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
# A self-supervised loss can go down while the representation goes bad: the embeddings may
# shrink to a point (*complete collapse*) or spread out along a handful of directions only
# (*dimensional collapse*). This chapter is a toolbox for seeing both in a trained model without
# any labels: the trainer's per-epoch collapse report, covariance and correlation heatmaps,
# singular value spectra with the effective rank, a 2-D picture of the representations, and how
# to read the three loss terms together, including a pitfall reported by users of the official
# code.

# %%
try:
    import vicreg_edu
except ImportError:  # Colab: install the library from the repository, once
    import subprocess, sys
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vicreg-edu @ git+https://github.com/vicreg-edu/vicreg-edu"], check=True)
    import vicreg_edu

# %%
import importlib.util
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from vicreg_edu import plots
from vicreg_edu.augment import TwoViewBatchAugment, make_augment_config
from vicreg_edu.config import FAST, get_config
from vicreg_edu.data import in_memory_uint8, load_dataset
from vicreg_edu.diagnostics import (correlation_matrix, covariance_matrix, effective_rank, numerical_rank,
                                    per_dim_std)
from vicreg_edu.evaluate import extract_features, load_checkpoint_model
from vicreg_edu.loss import covariance_loss, invariance_loss, vicreg_loss
from vicreg_edu.models import build_model
from vicreg_edu.train import train

torch.manual_seed(0)
print("fast mode:", FAST)

# %% [markdown]
# ## A trained model to look at
#
# Chapter 5 trained the `demo` preset and left its checkpoint in `runs/ch05_demo/`. If it is
# there, we load it (`load_checkpoint_model` rebuilds the model from the configuration stored in
# the checkpoint); otherwise this notebook trains a small run of its own, so it also works on its
# own.

# %%
ckpt = Path("runs/ch05_demo/checkpoint.pt")
if ckpt.is_file() and ckpt.with_name("metrics.jsonl").is_file():
    model, cfg = load_checkpoint_model(ckpt)
    metrics_path = ckpt.with_name("metrics.jsonl")
    print(f"loaded chapter 5's model from {ckpt}")
else:
    print(f"no checkpoint at {ckpt} (run chapter 5 first to reuse its model): training a small demo run")
    sizes = dict(epochs=2, train_size=2560, test_size=1000) if FAST else {}  # full size: the preset as it is
    result = train(get_config("demo", knn_every=1, final_eval=False, out_dir="runs/ch06_demo", progress=True,
                              seed=0, **sizes))
    model, cfg, metrics_path = result.model, result.config, result.metrics_path
print(f"{cfg.dataset}: {cfg.backbone} ({model.repr_dim}-d representation) + expander {cfg.expander} "
      f"({model.embed_dim}-d embedding), {cfg.epochs} epochs")

# %% [markdown]
# ## The trainer's collapse report, epoch by epoch
#
# At the end of every epoch the trainer embeds two fixed augmented views of held-out images
# (`diag_size` of them) and logs `diagnostics.collapse_report` of the embeddings, with the keys
# prefixed `emb_`, plus a few numbers for the representation (`repr_`) and the accuracies. Each
# number answers one question:
#
# | key | question | collapsed if |
# |---|---|---|
# | `emb_std_mean`, `emb_std_min` | how spread out is each dimension over the batch? | near 0 |
# | `emb_dead_fraction` | which fraction of dimensions has std below 0.01? | near 1 |
# | `emb_effective_rank` | how many directions are really used (RankMe, [Garrido et al., 2023](https://arxiv.org/abs/2210.02885))? | low (dimensional); for complete collapse read the std, not this (see below) |
# | `emb_off_diagonal_energy` | the covariance term $c(Z)$ of one view | see the pitfall below |
# | `emb_alignment_mse` | how far apart are the two views' embeddings ($s$)? | near 0 *together with* a tiny std |
#
# The effective rank is *scale-free*: shrink a cloud of points by a factor 1000 and its
# effective rank does not move. An encoder collapsing towards a point keeps some leftover jitter,
# and the effective rank of that jitter can stay high or even rise (chapter 1 shows one); only a
# perfectly constant output reads 0. So complete collapse is read on the standard deviation, and
# the effective rank is the tool for dimensional collapse. The table at the end of this chapter
# puts all the signs of a healthy and a collapsed run side by side.
#
# The records are in the metrics file, one JSON object per line with `"kind": "epoch"`:

# %%
records = [r for r in plots.read_metrics(metrics_path) if r.get("kind") == "epoch"]
columns = {"emb_std_mean": "std", "emb_dead_fraction": "dead", "emb_effective_rank": "eff.rank",
           "emb_off_diagonal_energy": "c(Z)", "emb_alignment_mse": "s", "repr_effective_rank": "repr rank",
           "online_probe_acc": "probe", "knn_acc": "k-NN"}
print("epoch " + " ".join(f"{name:>9}" for name in columns.values()))
for r in records:
    cells = [f"{r[key]:9.3f}" if key in r else f"{'-':>9}" for key in columns]
    print(f"{r['epoch']:5d} " + " ".join(cells))

# %%
fig = plots.plot_collapse_panels(metrics_path, gamma=cfg.gamma,
                                 title=f"Collapse diagnostics of the embedding per epoch ({cfg.dataset}, {cfg.expander})")
plt.show()

# %% [markdown]
# Two panels, two kinds of collapse. The effective rank (left) would fall towards a handful of
# directions under dimensional collapse; the mean per-dimension standard deviation (right, with
# the target $\gamma$ dashed) would fall to 0 under complete collapse. Read both against the
# table "Healthy run or collapse" at the end of this chapter: the std should approach $\gamma$
# (the variance hinge $v$ is inactive once it does), and the effective rank should stay high. In
# the printed table above,
# `probe` is the online linear probe trained on the side during pre-training (on detached
# representations, so it never influences the encoder), and `k-NN` the evaluation of chapter 5
# on the epochs where the trainer ran it (`knn_every`; the last epoch's is chapter 5's final
# evaluation).

# %% [markdown]
# ## Representations and embeddings of test images
#
# The collapse report looks at the embeddings $z$ on which the loss is computed. The
# representation $y$ (the backbone's output, what we keep after training) is not regularised
# directly. To compare them, embed test images without augmentation, with the trained model and
# with a randomly initialised one of the same architecture:

# %%
aug_cfg = make_augment_config(cfg)  # the run's normalisation statistics
test_set = load_dataset(cfg.dataset, cfg.data_dir, "test")
images, labels = in_memory_uint8(test_set)
n = 1000 if FAST else 2000
images, labels = images[:n], labels[:n]
torch.manual_seed(0)
random_model = build_model(cfg).eval()


@torch.no_grad()
def represent_and_embed(m):
    """Representations y (n, repr_dim) and embeddings z (n, embed_dim) of the test images."""
    y, _ = extract_features(m.backbone, images, aug_cfg.mean, aug_cfg.std)
    return y, m.expander(y)


y_trained, z_trained = represent_and_embed(model)
y_random, z_random = represent_and_embed(random_model)
print(f"{n} test images: y {tuple(y_trained.shape)}, z {tuple(z_trained.shape)}")

# %% [markdown]
# ### Covariance and correlation heatmaps
#
# The covariance matrix $C(Z)$ has the variances on its diagonal and the covariances off it; the
# VICReg terms act on exactly these numbers ($v$ on the diagonal, $c$ off it). The correlation
# matrix divides out the scales, $C_{jk} / \sqrt{C_{jj} C_{kk}}$, so that every entry is in
# $[-1, 1]$ and the two networks' outputs can be compared despite their different scales. Both
# heatmaps show the first 48 dimensions, with white for 0:

# %%
k = 48
fig = plots.plot_heatmap_pair(covariance_matrix(y_trained), covariance_matrix(z_trained), k=k,
                              titles=(f"representation y: covariance (first {k} of {y_trained.shape[1]})",
                                      f"embedding z: covariance (first {k} of {z_trained.shape[1]})"),
                              kind="covariance", share_scale=False)
fig.suptitle("Trained model, test images: covariance matrices (each panel on its own scale)")
plt.show()

# %%
fig = plots.plot_heatmap_pair(correlation_matrix(y_trained), correlation_matrix(z_trained), k=k,
                              titles=("representation y: correlation", "embedding z: correlation"),
                              kind="correlation")
fig.suptitle("Trained model, test images: correlation matrices (same scale, -1 to 1)")
plt.show()


# %% [markdown]
# Compare the off-diagonal parts of the two correlation heatmaps. The embedding, where the
# covariance term acts, has paler off-diagonal entries than the representation, where nothing
# asks for decorrelation and many pairs of dimensions move together (strong red or blue
# squares). In the covariance heatmaps, the representation's few high-variance dimensions show
# as stripes. The average over *all* pairs, with the random encoder for reference, shows what
# training changed:

# %%
def mean_abs_offdiag_corr(x):
    """Mean |correlation| over the pairs of distinct dimensions of x (N, D)."""
    corr = correlation_matrix(x)
    d = corr.shape[0]
    return float((corr.abs().sum() - corr.diagonal().abs().sum()) / (d * (d - 1)))


stats = {}
for name, y, z in [("trained", y_trained, z_trained), ("random init", y_random, z_random)]:
    stats[name] = {"y": mean_abs_offdiag_corr(y), "z": mean_abs_offdiag_corr(z)}
    print(f"{name:>12}: mean |corr| representation y {stats[name]['y']:.3f}, embedding z {stats[name]['z']:.3f}")

# %% [markdown]
# The covariance term works on $z$, and $z$ is where the average correlation moved most from its
# value at initialisation; the representation $y$ changes only as a side effect.
#
# ### Spectrum and effective rank
#
# A heatmap shows a few dozen dimensions; the singular value spectrum summarises all of them. For
# centred embeddings with singular values $\sigma_1 \ge \sigma_2 \ge \dots$, the **effective
# rank** (RankMe, [Garrido et al., 2023](https://arxiv.org/abs/2210.02885)) is the exponential of the entropy of the normalised
# spectrum $p_k = \sigma_k / \sum_j \sigma_j$:
#
# $$ \operatorname{erank}(Z) = \exp\Bigl(-\sum_k p_k \log p_k\Bigr) , $$
#
# which is $r$ for $r$ equal singular values and 0 for complete collapse: a smooth count of the
# directions in use. Dimensional collapse ([Jing et al., 2022](https://arxiv.org/abs/2110.09348)) shows as a cliff in the
# spectrum and a low effective rank. The plots normalise each spectrum by its largest value, so
# the shapes can be compared:

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
for ax, (what, trained, rand) in zip(axes, [("embedding z", z_trained, z_random),
                                            ("representation y", y_trained, y_random)]):
    plots.plot_spectrum(trained, ax=ax, normalize=True, label="trained", title=f"Spectrum of the {what}")
    plots.plot_spectrum(rand, ax=ax, normalize=True, label="random init")
plt.show()

# %% [markdown]
# Each dashed line is an effective rank, in the colour of its spectrum. Compare the trained and
# random curves in two places: the head (the first few dozen directions, which hold most of the
# variance and so decide the effective rank) and the tail (how many directions carry any variance
# at all). The numbers, with the numerical rank (the count of singular values above a tolerance)
# for contrast:

# %%
ranks = {}
for name, x in [("z trained", z_trained), ("z random", z_random), ("y trained", y_trained), ("y random", y_random)]:
    ranks[name] = effective_rank(x)
    print(f"{name:>10}: dimension {x.shape[1]:4d}, effective rank {ranks[name]:6.1f}, "
          f"numerical rank {numerical_rank(x):4d}")

# %% [markdown]
# The numerical rank counts directions with *any* variance, however small: it reacts to details
# such as ReLU units that never fire in a random network, and says little about quality. The
# effective rank weighs each direction by its share of the spectrum and is the number to watch.
# Read it against the dimension and against the random network, and follow its trend over
# training (the left panel of the collapse plot above). A short run like this one need not beat
# the random network's effective rank: the variance it spreads into the tail counts for little
# next to the head. Chapter 7 shows what removing the covariance term does to it.

# %% [markdown]
# ### A 2-D picture, coloured by class
#
# Labels were never used in training, but they tell us whether the geometry the encoder learned
# matches the classes. The simplest picture projects the representations on their first two
# principal components (`plot_embedding_2d(..., method="pca")`, exact and dependency-free):

# %%
m = 600 if FAST else 1000
fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), constrained_layout=True)
for ax, (name, y) in zip(axes, [("trained", y_trained), ("random init", y_random)]):
    plots.plot_embedding_2d(y[:m], labels[:m], method="pca", ax=ax, point_size=10,
                            class_names=test_set.classes,
                            title=f"Representations y, {name} encoder (PCA)")
plt.show()

# %% [markdown]
# Two principal components keep only part of the picture (the axis labels give their share of
# the variance), and classes can overlap there even when they separate in all dimensions: the
# $k$-NN of chapter 5, which uses all the dimensions, is the proper measure. What the picture does show is the
# *largest* direction of variation, and it need not be about classes. On Shapes, a third of the
# images have a noisy background, and no augmentation of the Shapes recipe removes noise, so the
# invariance term has no reason to discard it. The next cell correlates the first principal
# component with the images' high-frequency content (the mean absolute difference of
# neighbouring pixels):

# %%
img = images.float() / 255
texture = (img[..., 1:] - img[..., :-1]).abs().mean(dim=(1, 2, 3))  # (n,) high-frequency content
for name, y in [("trained", y_trained), ("random init", y_random)]:
    pc1 = plots.pca_2d(y)[0][:, 0]
    print(f"{name:>12}: correlation of PC 1 with background texture {torch.corrcoef(torch.stack([pc1, texture.double()]))[0, 1]:+.2f}")

# %% [markdown]
# A correlation near $\pm 1$ would mean the first principal component is, in effect, a texture
# detector (a split of the trained panel into groups that mix all colours would then be noisy
# versus clean backgrounds); a correlation near 0 means the largest direction is something else.
# Here the trained encoder's is -0.86 (the random network's +0.18): its largest direction is,
# for the most part, background texture. The encoder keeps what the augmentations did *not*
# vary, class or not, and no augmentation of the demo blurs or adds noise; it learns to ignore
# only what they change (chapter 7 switches augmentations on and off). The recipe search behind
# the demo preset measured the same thing on neighbours: 99% of a noisy-background test image's
# 20 nearest neighbours also have a noisy background, one reason the demo's k-NN stays below a
# supervised network's.
#
# A non-linear map such as t-SNE ([van der Maaten and Hinton, 2008](https://jmlr.org/papers/v9/vandermaaten08a.html)) separates clusters more visibly
# (at the price of distorting distances). It needs scikit-learn, which the book does not
# require; the next cell draws it only where scikit-learn is installed.

# %%
if importlib.util.find_spec("sklearn") is not None:
    ax = plots.plot_embedding_2d(y_trained[:m], labels[:m], method="tsne", point_size=10,
                                 class_names=test_set.classes,
                                 title="Representations y, trained encoder (t-SNE)")
    plt.show()
else:
    print("scikit-learn is not installed, so no t-SNE view here; `pip install scikit-learn` and rerun this cell.")

# %% [markdown]
# ## Reading the three terms together: a pitfall
#
# A user of the official code reported a covariance loss of about $10^{-5}$ in the first ten
# epochs, then exactly 0, and asked whether that was the expected magnitude. The first author's
# answer: a loss of 0 most likely means the representations collapsed; $c$ should stay roughly
# stable during training, and it is the invariance loss that decreases significantly
# ([facebookresearch/vicreg#14](https://github.com/facebookresearch/vicreg/issues/14)).
#
# Why is a tiny $c$ not good news? Because $c$ is a sum of *squared covariances*: multiply every
# embedding by $a$ and $c$ is multiplied by $a^4$ (the exercise below checks it), while $s$ is
# multiplied by $a^2$. Embeddings that shrink towards a point make $c$ and $s$ vanish together,
# and look perfectly "decorrelated" and "invariant". Only scale-aware numbers catch it: the
# variance term $v$ (which tends to $\gamma - \sqrt{\epsilon} \approx 0.99$ at complete collapse)
# and the per-dimension standard deviation. And for $s$ the scale-free question is how close the
# two views are *compared with two different images*: for unrelated pairs
# $s \approx 2\,\overline{\operatorname{Var}}$, so the ratio $s / 2\overline{\operatorname{Var}}$
# is near 1 when nothing is invariant, near 0 when the views agree.
#
# The next cell computes these numbers on two augmented views of the test images through the
# trained model, then on three doctored versions: the same embeddings shrunk by 100 (a collapse
# in progress), view $x'$ paired with a *different* image's view (no invariance), and one
# constant vector for every image (complete collapse).

# %%
def read_terms(z_a, z_b):
    """The VICReg terms with the scale-aware numbers needed to interpret them."""
    t = vicreg_loss(z_a, z_b)
    spread = 0.5 * (z_a.var(0).mean() + z_b.var(0).mean())
    rel = float(t.invariance / (2 * spread)) if spread > 0 else float("nan")
    return dict(s=float(t.invariance), v=float(t.variance), c=float(t.covariance),
                std=float(per_dim_std(z_a).mean()), erank=effective_rank(z_a), s_rel=rel)


views = TwoViewBatchAugment(aug_cfg)(images, torch.Generator().manual_seed(0))
with torch.no_grad():
    z_a, z_b = model(views[0])[1], model(views[1])[1]
cases = {"trained model": (z_a, z_b),
         "shrunk x0.01": (0.01 * z_a, 0.01 * z_b),
         "different images": (z_a, z_b.roll(1, dims=0)),
         "constant vector": (z_a.mean(0).expand_as(z_a), z_a.mean(0).expand_as(z_b))}
readings = {name: read_terms(*pair) for name, pair in cases.items()}
print(f"{'':>17} {'s':>9} {'v':>7} {'c':>10} {'std':>7} {'eff.rank':>8} {'s/2Var':>7}")
for name, r in readings.items():
    print(f"{name:>17} {r['s']:9.2e} {r['v']:7.3f} {r['c']:10.2e} {r['std']:7.3f} {r['erank']:8.1f} {r['s_rel']:7.2f}")

# %% [markdown]
# Read the table row by row:
#
# - **trained model**: the reference row. Compare its $v$ with 0 (healthy: every dimension
#   reaches $\gamma$) and with its collapse value 0.99, its std with $\gamma$, and its
#   $s / 2\overline{\operatorname{Var}}$ with 1 (well below 1: the two views of an image are much
#   closer than two different images). A $v$ still far from 0 means the run has not finished
#   spreading its dimensions: not collapsed, but not yet the healthy column of the table below.
# - **shrunk**: $c$ and $s$ drop by factors of $10^{8}$ and $10^{4}$ and look superb, the
#   effective rank (a scale-free number) does not move, but $v$ jumps to about 0.99 and the std
#   to almost 0: this is the collapse of issue #14, and only the scale-aware numbers see it.
#   $s / 2\overline{\operatorname{Var}}$ is unchanged: the views did not become more alike, the
#   whole cloud just shrank.
# - **different images**: the covariance is the same as the trained model's, but $s$ is large,
#   with $s / 2\overline{\operatorname{Var}}$ near 1: the two "views" are no closer than two
#   random images, which is what an encoder that learned no invariance looks like.
# - **constant vector**: everything is 0 except $v$ at its maximum: complete collapse.
#
# The rule of thumb: read $c$ only together with $v$ (or the std). A $c$ near 0 together with an
# $s$ near 0 is collapse, not success, and $v$ near $\gamma$ confirms it.
#
# ## Healthy run or collapse: the signs in one table
#
# This is the table the other chapters refer to. It sums up this chapter, the pitfall above and
# the maintainers' answer in
# [facebookresearch/vicreg#14](https://github.com/facebookresearch/vicreg/issues/14):
#
# | what to read | healthy run | complete collapse | dimensional collapse |
# |---|---|---|---|
# | variance term $v$ | falls towards 0 | climbs towards $\gamma - \sqrt{\epsilon} \approx 0.99$ | can be low: dimensions keep their spread but move together |
# | per-dimension std (`emb_std_mean`, `emb_std_min`, dead fraction) | near $\gamma$ in every dimension, no dead dimension | towards 0 in every dimension, dead fraction towards 1 | fine in some dimensions (or in all, along a few shared directions) |
# | covariance term $c$ | small but not 0; flat or slowly rising is normal | towards 0 (it scales as $a^4$) | large: strongly correlated dimensions |
# | invariance term $s$ | small but not 0, well below $2\overline{\operatorname{Var}}$ | towards 0 (it scales as $a^2$) | small |
# | effective rank | high, and stable | **not a reliable sign**: scale-free, it can stay high or even rise; read the std | low: a few directions hold the variance (a cliff in the spectrum) |
# | $k$-NN, linear probe | well above a random encoder and raw pixels | down to a random encoder's or below | below a healthy run's |
#
# Two one-liners to remember: **$c = 0$ with $s = 0$ is collapse**; and **read complete collapse
# on the std, dimensional collapse on the effective rank.** A rising $c$ alone is no alarm: a user
# of the official code saw it grow from 2.6 to 6.5 over 20 epochs of a good run (vicreg#14).
# Chapter 1 shows a complete collapse (invariance alone), chapters 3, 4 and 7 a dimensional one
# (no covariance term).

# %%
assert readings["shrunk x0.01"]["c"] < 1e-6 * readings["trained model"]["c"]
assert readings["shrunk x0.01"]["v"] > 0.95 > readings["trained model"]["v"]
assert readings["different images"]["s_rel"] > 0.8  # unrelated pairs: s close to 2 Var
assert readings["constant vector"]["erank"] == 0.0

# %% [markdown]
# ## Exercises
#
# **1. How $c$ and $s$ scale.** Multiply every embedding of both views by $a = 0.1$. By what
# factor does the covariance term $c(Z)$ change? And the invariance term $s(Z, Z')$? Work it out
# from the definitions (chapter 0 has them), write your two factors below, then run the next cell.

# %%
my_c_factor = None  # replace None with your factor for c (a number)
my_s_factor = None  # replace None with your factor for s (a number)

# %% tags=["hide-input"]
# Answer: C(aZ) = a^2 C(Z), and c sums squared entries of C: factor a^4 = 1e-4.
# s is a mean of squared differences: factor a^2 = 1e-2.
a = 0.1
c_factor = float(covariance_loss(a * z_a) / covariance_loss(z_a))
s_factor = float(invariance_loss(a * z_a, a * z_b) / invariance_loss(z_a, z_b))
assert abs(c_factor - a**4) < 1e-3 * a**4 and abs(s_factor - a**2) < 1e-3 * a**2, (c_factor, s_factor)
for what, mine, expected in [("factor for c", my_c_factor, a**4), ("factor for s", my_s_factor, a**2)]:
    if mine is None:
        print(f"{what}: not answered yet (replace None in the cell above, then rerun both cells)")
    else:
        assert abs(mine - expected) < 1e-3 * expected, f"{what}: {mine} is wrong; how does C(aZ) depend on a?"
        print(f"{what}: {mine} is right")
print(f"worked solution: c is multiplied by {c_factor:.2e} (a^4), s by {s_factor:.2e} (a^2)")

# %% [markdown]
# **2. The effective rank by hand, and a dimensional collapse.** Write `my_effective_rank(z)`
# from the formula of this chapter: centre the columns of `z`, take its singular values
# (`torch.linalg.svdvals`), normalise them to sum to 1, and return the exponential of their
# entropy. The cell also makes a dimensional collapse by hand: `z_low_a`, `z_low_b` keep only the
# first 3 principal directions of the trained embeddings of the two views. Before you run the
# answer cell, predict with the table above: which of $v$, the std, $c$, $s$ and the effective
# rank flag `z_low` as collapsed?

# %%
def my_effective_rank(z):
    """Effective rank of z (N, D), as a float. Your code here."""
    return None  # replace with your implementation


mean_a = z_a.mean(0)
directions = torch.linalg.svd(z_a - mean_a, full_matrices=False).Vh[:3]  # (3, 512): top principal directions


def project(z):
    """Keep only the 3 principal directions of z_a: a rank-3 (dimensionally collapsed) copy."""
    return mean_a + (z - mean_a) @ directions.T @ directions


z_low_a, z_low_b = project(z_a), project(z_b)

# %% tags=["hide-input"]
# Answer: a worked solution, checked against the library on the trained and the collapsed embeddings.
def effective_rank_solution(z):
    s = torch.linalg.svdvals((z - z.mean(0)).double())
    p = s / s.sum()
    return float(torch.exp(-torch.special.xlogy(p, p).sum()))


for z in (z_a, z_low_a):
    assert abs(effective_rank_solution(z) - effective_rank(z)) < 1e-3 * effective_rank(z)
mine = my_effective_rank(z_a)
if mine is None:
    print("my_effective_rank: not answered yet (replace `return None` with your code, then rerun both cells)")
else:
    assert abs(mine - effective_rank(z_a)) < 1e-3 * effective_rank(z_a), (
        f"my_effective_rank gives {mine:.3f}, which is wrong: the library says {effective_rank(z_a):.3f}")
    print(f"my_effective_rank is right: {mine:.2f}")
low = read_terms(z_low_a, z_low_b)
print(f"{'':>17} {'s':>9} {'v':>7} {'c':>10} {'std':>7} {'eff.rank':>8} {'s/2Var':>7}")
for name, r in [("trained model", readings["trained model"]), ("3 directions kept", low)]:
    print(f"{name:>17} {r['s']:9.2e} {r['v']:7.3f} {r['c']:10.2e} {r['std']:7.3f} {r['erank']:8.1f} {r['s_rel']:7.2f}")
assert low["erank"] < 3.5 < readings["trained model"]["erank"]
