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
# code. Collapse here means the embedding's *spread* going to zero: first every dimension's
# standard deviation (complete collapse), or all but a few directions of it (dimensional
# collapse, read on the effective rank). As in the other chapters, the loss's logged $v$ is the
# average of the two branches' variance terms, $[v(Z) + v(Z')]/2$, and its $c$ the sum of their
# covariance terms, $c(Z) + c(Z')$; $v(Z)$, $c(Z)$ are one branch's.

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
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from vicreg_edu import data, evaluate, plots
from vicreg_edu import (
    FAST, TwoViewBatchAugment, build_model, covariance_loss, extract_features, get_config,
    invariance_loss, load_dataset, make_augment_config, train, vicreg_loss)
from vicreg_edu import config, diagnostics

torch.manual_seed(0)
print("fast mode:", FAST)

# %% [markdown]
# ## A trained model to look at
#
# Chapter 5 trained the `demo` preset (10 epochs on Shapes, the default data of flat and gradient
# backgrounds) and left its checkpoint in `runs/ch05_demo/`. If it is there and is a run of
# today's demo recipe, at least as long as the one this chapter would train, we load it
# (`load_checkpoint_model` rebuilds the model from the configuration stored in the checkpoint).
# Otherwise the chapter uses a run of the same preset stored in `runs/ch06_demo/` (an earlier
# execution of this chapter leaves one there), or trains one, so it also works on its own. A
# checkpoint of an older recipe or a shorter run is skipped with a message.

# %%
sizes = dict(epochs=2, train_size=1280, test_size=1000) if FAST else {}  # full size: the preset as it is
own = get_config("demo", knn_every=1, final_eval=False, out_dir="runs/ch06_demo" + ("_fast" if FAST else ""),
                 progress=True, seed=0, **sizes)
RECIPE = [k for k in config.TRAJECTORY_KEYS if k not in ("epochs", "train_size", "seed")]  # the resume rule's keys but length and seed


def reusable(c):
    """Is a stored run's config c today's demo recipe, trained at least as long, on at least as many images?"""
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
    print("no stored run of today's demo preset (run chapter 5 first to reuse its model): training one here")
    result = train(own)
    model, cfg, metrics_path = result.model, result.config, result.metrics_path
print(f"{cfg.dataset}: {cfg.backbone} ({model.repr_dim}-d representation) + expander {cfg.expander} "
      f"({model.embed_dim}-d embedding), weights {cfg.sim_coeff:g}/{cfg.std_coeff:g}/{cfg.cov_coeff:g}, "
      f"batch {cfg.batch_size}, {cfg.epochs} epochs")

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
# | `emb_effective_rank` | how many directions are really used (RankMe, [Garrido et al., ICML 2023](https://arxiv.org/abs/2210.02885))? | low (dimensional); for complete collapse read the std, not this (see below) |
# | `emb_off_diagonal_energy` | the covariance term $c(Z)$ of one view (the loss's `covariance` is $c(Z) + c(Z')$, about twice it) | see the pitfall below |
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
# (the variance hinge $v$ is inactive once it does), and the effective rank should stay high.
# In this run the std climbs towards $\gamma$ (0.60 to 0.94, with small dips) and the effective
# rank, after dipping in the second and third epochs, climbs to 92 at the last epoch: no sign of
# either collapse. In the printed table above,
# `probe` is the online linear probe trained on the side during pre-training (on detached
# representations, so it never influences the encoder; it lags well behind the $k$-NN, and
# chapter 5 says why), and `k-NN` the evaluation of chapter 5
# on the epochs where the trainer ran it (`knn_every`; a `-` where it did not, such as the last
# epoch of a run whose final evaluation happened elsewhere or was switched off).

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
fig = plots.plot_heatmap_pair(diagnostics.covariance_matrix(y_trained), diagnostics.covariance_matrix(z_trained), k=k,
                              titles=(f"representation y: covariance (first {k} of {y_trained.shape[1]})",
                                      f"embedding z: covariance (first {k} of {z_trained.shape[1]})"),
                              kind="covariance", share_scale=False)
fig.suptitle("Trained model, test images: covariance matrices (each panel on its own scale)")
plt.show()

# %%
fig = plots.plot_heatmap_pair(diagnostics.correlation_matrix(y_trained), diagnostics.correlation_matrix(z_trained), k=k,
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
    corr = diagnostics.correlation_matrix(x)
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
# rank** (RankMe, [Garrido et al., ICML 2023](https://arxiv.org/abs/2210.02885)) is the exponential of the entropy of the normalised
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
# Each dashed line is an effective rank, in the colour of its spectrum. The trained curves lie
# above the random ones almost everywhere, and the random embedding's spectrum drops off a cliff
# past index 300 (directions with no variance at all) where the trained one does not. Compare the
# trained and random curves in two places: the head (the first few dozen directions, which hold most of the
# variance and so decide the effective rank) and the tail (how many directions carry any variance
# at all). The numbers, with the numerical rank (the count of singular values above a tolerance)
# for contrast:

# %%
ranks = {}
for name, x in [("z trained", z_trained), ("z random", z_random), ("y trained", y_trained), ("y random", y_random)]:
    ranks[name] = diagnostics.effective_rank(x)
    print(f"{name:>10}: dimension {x.shape[1]:4d}, effective rank {ranks[name]:6.1f}, "
          f"numerical rank {diagnostics.numerical_rank(x):4d}")

# %% [markdown]
# The numerical rank counts directions with *any* variance, however small: it reacts to details
# such as ReLU units that never fire in a random network, and says little about quality. The
# effective rank weighs each direction by its share of the spectrum and is the number to watch.
# Read it against the dimension and against the random network, and follow its trend over
# training (the left panel of the collapse plot above). Here the trained network's effective rank
# is well above the random one's, for the embedding $z$ and for the representation $y$: training
# spread the variance over more directions. Chapter 7 shows what removing the covariance term
# does to it.

# %% [markdown]
# ### A 2-D picture, coloured by class
#
# Labels were never used in training, but they tell us whether the geometry the encoder learned
# matches the classes. The simplest picture projects the representations on their first two
# principal components (`plot_embedding_2d(..., method="pca")`, exact and dependency-free). In
# the trained panel the classes sort themselves along both components (crosses at the left of
# PC 1, rings at the left and high on PC 2, circles, squares and hourglasses towards the right,
# many squares at the bottom); in the random panel the colours are mixed everywhere:

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
# *largest* directions of variation, and they need not be about classes. Which image property do
# they follow? The candidates are the nuisances of Shapes (chapter 0): the shape's position, its
# size, the colours, and the background, flat or a linear gradient. The next cell measures four
# of them on the images themselves: it fits a plane (per colour channel) to the border pixels,
# which is the background when the shape stays off the border, marks the pixels far from that
# plane as the shape, and reads the shape's vertical and horizontal position (its centre, in
# pixels from the top and from the left), its area and the background's colour change across the
# image (the slope of the plane: about 0 for a flat background, large for a gradient). Then it
# correlates the first two principal components with each, and gives the share of each
# component's variance that the class explains (between-class variance over total variance: 1
# if the component only separates classes, 0 if every class spreads the same way along it):

# %%
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

# %% [markdown]
# Read the trained rows first. Both components are mostly about the class: it explains 0.40 of
# the variance of PC 1 (15% of the total) and 0.46 of PC 2's (13%), and both follow the shape's
# area a little (+0.33 and +0.28; the sign of a principal component is arbitrary); neither
# follows the shape's position or the background (every correlation within 0.08 of 0). Two
# components that hold similar shares of the variance can be mixed by PCA's choice of axes inside
# their plane (any rotation of the two explains almost as much), so a position could still hide
# in a direction between them. The next cell looks for one: it finds, in the plane of PC 1 and
# PC 2, the direction that follows a position best (a least-squares fit of the vertical and of
# the horizontal position on the two coordinates; their $R^2$ is printed and the better one
# kept) and the direction perpendicular to it, and measures both like the components above:

# %%
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
rotated = {}
print(f"{'in the plane of PC 1 and PC 2':>30} " + " ".join(f"{name:>19}" for name in nuisances)
      + f" {'class share':>11}")
for name, direction in [(f"{kept} direction", w), ("the direction across it", torch.stack([-w[1], w[0]]))]:
    d = coords @ direction
    rotated[name] = {key: float(torch.corrcoef(torch.stack([d, value]))[0, 1]) for key, value in nuisances.items()}
    rotated[name]["share"] = class_share(d)
    print(f"{name:>30} " + " ".join(f"{rotated[name][key]:+19.2f}" for key in nuisances)
          + f" {rotated[name]['share']:11.2f}")
print(f"the {kept} direction is {float(torch.atan2(w[1], w[0])) * 180 / torch.pi:+.0f} degrees "
      f"from the PC 1 axis (towards PC 2)")

# %% [markdown]
# No direction of the plane follows a position: the best fit explains 1% of either position's
# variance ($R^2$ 0.01), and the direction it picks correlates with the vertical position by only
# +0.10, less than with the shape's area (+0.40); the direction across it has a class share of
# 0.67. So the two largest directions this encoder learned are about the class and, a little, the
# size of the shape, not about where the shape sits. The random network's components follow
# none of the four measures closely, nor the class (class shares 0.00 and 0.01). That does not
# show the encoder discards the position: the demo flips no image and its crops keep 60-100 % of
# it, so the two views of an image agree on where the shape is and the invariance term does not
# ask to discard it. If the encoder keeps the position, it keeps it in smaller directions than
# these two, which this measurement does not look at (chapter 7 switches augmentations on and
# off).
#
# Shapes can draw a third background kind, noisy, which no augmentation removes either. In the
# recipe search a short run on such data learned it as a feature (98.7 % of a noisy test image's
# 20 nearest neighbours were noisy too) and lost about 8 points of $k$-NN accuracy, which is why
# the default data draws flat and gradient backgrounds only (`Shapes(backgrounds=vicreg_edu.shapes.BACKGROUNDS)`
# brings the noisy ones back; numbers in `load_results("recipe_search")`).

# %%
if not FAST:  # the story told above (fast mode's run is too short to show it)
    assert max(r2 for _, r2 in fits.values()) < 0.1, fits  # no direction of the plane follows a position
    assert min(pc_reading["trained", j]["share"] for j in (1, 2)) > 0.3, pc_reading  # both about the class
    assert max(pc_reading["random init", j]["share"] for j in (1, 2)) < 0.1, pc_reading

# %% [markdown]
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
                std=float(diagnostics.per_dim_std(z_a).mean()), erank=diagnostics.effective_rank(z_a), s_rel=rel)


views = TwoViewBatchAugment(aug_cfg)(images, torch.Generator().manual_seed(0))
with torch.no_grad():
    z_a, z_b = model(views[0])[1], model(views[1])[1]
cases = {"trained model": (z_a, z_b),
         "shrunk x0.01": (0.01 * z_a, 0.01 * z_b),
         "different images": (z_a, z_b.roll(1, dims=0)),
         "constant vector": (z_a.mean(0).expand_as(z_a), z_a.mean(0).expand_as(z_b))}
readings = {name: read_terms(*pair) for name, pair in cases.items()}
print(f"{'':>17} {'s':>9} {'v (avg)':>7} {'c (sum)':>10} {'std':>7} {'eff.rank':>8} {'s/2Var':>7}")
for name, r in readings.items():
    print(f"{name:>17} {r['s']:9.2e} {r['v']:7.3f} {r['c']:10.2e} {r['std']:7.3f} {r['erank']:8.1f} {r['s_rel']:7.2f}")

# %% [markdown]
# Read the table row by row (its $v$ and $c$ are the loss's, as the trainer logs them: the
# average and the sum over the two views, so this $c$, 16.8 for the trained model, is
# $c(Z) + c(Z')$, two of the per-view $c(Z)$ of the epoch table at the top, which measures it on
# other images, 512 held-out ones: 10.8 at the last epoch):
#
# - **trained model**: the reference row. Compare its $v$ with 0 (healthy: every dimension
#   reaches $\gamma$) and with its collapse value 0.99, its std with $\gamma$, and its
#   $s / 2\overline{\operatorname{Var}}$ with 1 (well below 1: the two views of an image are much
#   closer than two different images). A $v$ still far from 0 means the run has not finished
#   spreading its dimensions: not collapsed, but not yet the healthy column of the table below.
#   This run's $v$ is about 0.08, its std 0.92, close to $\gamma$, and its ratio 0.19: healthy,
#   with a little spreading left to do.
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
# | covariance term $c$ | small but not 0; roughly stable once the std sits at $\gamma$ (while the spread still grows, it rises like $\sigma^4$: chapter 5) | towards 0 (it scales as $a^4$) | large: strongly correlated dimensions |
# | invariance term $s$ | small but not 0, well below $2\overline{\operatorname{Var}}$ | towards 0 (it scales as $a^2$) | small |
# | effective rank | high, and stable | **not a reliable sign**: scale-free, it can stay high or even rise; read the std | low: a few directions hold the variance (a cliff in the spectrum) |
# | $k$-NN, linear probe | well above a random encoder and raw pixels | down to a random encoder's or below | below a healthy run's |
#
# Two one-liners to remember: **$c = 0$ with $s = 0$ is collapse**; and **read complete collapse
# on the std, dimensional collapse on the effective rank.** Read a rising $c$ with the std: while
# the spread grows towards $\gamma$, $c$ rises like $\sigma^4$ (chapter 5's run more than doubles its $c$
# that way); once the std sits at $\gamma$, $c$ should stay roughly stable, as the first author
# says in vicreg#14 (a user's report there of $c$ rising from 2.6 to 6.5 got no answer).
# Chapter 1 shows a complete collapse (invariance alone), chapters 3, 4 and 7 a dimensional one
# (no covariance term).
#
# This chapter's run reads as healthy on every row: in the per-epoch table at the top, the std
# climbs towards $\gamma$ with no dead dimension, the per-view $c(Z)$ stays far from 0 (between 5
# and 11 after the first epoch, rising as the std rises), $s$
# stays small but not 0, and the effective rank ends higher than where it started and above the
# random network's (the spectra above); the pitfall table gives $v$ near 0.08 and
# $s / 2\overline{\operatorname{Var}}$ near 0.19, and the $k$-NN accuracy climbs epoch after
# epoch (chapter 5 compares it with a random encoder and raw pixels).

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

# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
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

# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
# Answer: a worked solution, checked against the library on the trained and the collapsed embeddings.
# Reading: the effective rank (3) names the dimensional collapse. The projection also takes most
# of every dimension's variance away, so here v rises and the std falls too, and c and s shrink;
# in a real run with an active variance term the dimensions keep their spread while moving
# together, and only the effective rank (and a cliff in the spectrum) gives it away.
def effective_rank_solution(z):
    s = torch.linalg.svdvals((z - z.mean(0)).double())
    p = s / s.sum()
    return float(torch.exp(-torch.special.xlogy(p, p).sum()))


for z in (z_a, z_low_a):
    assert abs(effective_rank_solution(z) - diagnostics.effective_rank(z)) < 1e-3 * diagnostics.effective_rank(z)
mine = my_effective_rank(z_a)
if mine is None:
    print("my_effective_rank: not answered yet (replace `return None` with your code, then rerun both cells)")
else:
    assert abs(mine - diagnostics.effective_rank(z_a)) < 1e-3 * diagnostics.effective_rank(z_a), (
        f"my_effective_rank gives {mine:.3f}, which is wrong: the library says {diagnostics.effective_rank(z_a):.3f}")
    print(f"my_effective_rank is right: {mine:.2f}")
low = read_terms(z_low_a, z_low_b)
print(f"{'':>17} {'s':>9} {'v (avg)':>7} {'c (sum)':>10} {'std':>7} {'eff.rank':>8} {'s/2Var':>7}")
for name, r in [("trained model", readings["trained model"]), ("3 directions kept", low)]:
    print(f"{name:>17} {r['s']:9.2e} {r['v']:7.3f} {r['c']:10.2e} {r['std']:7.3f} {r['erank']:8.1f} {r['s_rel']:7.2f}")
assert low["erank"] < 3.5 < readings["trained model"]["erank"]
