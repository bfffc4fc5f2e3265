# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Invariance (s)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vicreg-edu/vicreg-edu/blob/main/book/02_invariance.ipynb)
#
# **The question.** VICReg's first term ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906))
# asks the two views of an image to have nearby embeddings. It is the only term that knows which
# views belong together. What exactly does it compute, what force does it exert, and what does it
# achieve inside the full loss and alone? This chapter writes the term down, derives its
# gradient, and measures what it does to view pairs, in chapter 1's 2-D playground and on images.

# %%
try:
    import vicreg_edu
except ImportError:  # Colab: install the library from the repository, once
    import subprocess, sys
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vicreg-edu @ git+https://github.com/vicreg-edu/vicreg-edu"], check=True)
    import vicreg_edu

# %%
import copy

import matplotlib.pyplot as plt
import torch

from vicreg_edu import (
    FAST, TwoViewBatchAugment, build_model, covariance_loss, get_config, invariance_loss, load_dataset,
    load_results, make_augment_config, train, variance_loss)
from vicreg_edu import data, playground

torch.manual_seed(0)
print("fast mode:", FAST)

# %% [markdown]
# ## The term
#
# A batch of $n$ images gives two batches of embeddings $Z, Z' \in \mathbb{R}^{n \times d}$; row
# $i$ of each comes from image $i$. The paper's invariance term (its Eq. 5) is the mean, over the
# images, of the squared Euclidean distance between the two embeddings of an image:
#
# $$ s_\text{paper}(Z, Z') = \frac{1}{n} \sum_{i=1}^{n} \lVert z_i - z'_i \rVert_2^2
#    = \frac{1}{n} \sum_{i=1}^{n} \sum_{j=1}^{d} (z_{ij} - z'_{ij})^2 . $$
#
# The paper's own pseudo-code (its Algorithm 1), the official code (`main_vicreg.py`) and
# `vicreg_edu.loss.invariance_loss` all compute it as `F.mse_loss(z_a, z_b)`, the mean over all
# $n \times d$ entries: Eq. (5) divided by $d$ as well,
#
# $$ s(Z, Z') = \frac{1}{n\,d} \sum_{i=1}^{n} \sum_{j=1}^{d} (z_{ij} - z'_{ij})^2
#    = \frac{s_\text{paper}(Z, Z')}{d} . $$
#
# The weight $\lambda = 25$ goes with this mean, and in the rest of the book $s$ means it.
# A two-line check:

# %%
n, d = 128, 512
z_a, z_b = torch.randn(n, d), torch.randn(n, d)
s_paper = (z_a - z_b).pow(2).sum(dim=1).mean()  # (1/n) sum_i ||z_i - z'_i||^2
print(f"invariance_loss = {invariance_loss(z_a, z_b).item():.4f},  s_paper / d = {s_paper.item() / d:.4f}")

# %% [markdown]
# ## Why a mean squared error
#
# **Why a squared distance.** It is the simplest smooth measure of disagreement: zero exactly when
# the views agree, and its gradient (below) is proportional to the disagreement, like a spring.
# Contrastive and distillation methods compare *normalised* embeddings with a cosine similarity;
# VICReg does not normalise, because its variance term fixes the scale of every dimension, so a
# plain Euclidean distance is meaningful.
#
# **Why it pairs with a variance.** Per dimension, $(z_{ij} - z'_{ij})^2 / 4$ is the variance of
# the two values $z_{ij}, z'_{ij}$ around their midpoint. So $s$ is four times the average variance *within* the pairs, while the variance term $v$
# (chapter 3) asks for a spread *across* the batch of at least $\gamma$ in every dimension.
# Together they ask for pairs that are tight compared with the spread between images, both
# measured per dimension.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: why a mean over d as well</b></summary>
#
# **Why a mean over $d$ as well.** The variance term is a mean over the $d$ dimensions, so
# its value does not depend on the width of the expander. Dividing $s$ by $d$ does the same for
# it: the library's $s$ is the mean squared disagreement *per dimension*. With Eq. (5)'s sum
# instead, $s$ grows linearly with $d$, and the balance $\lambda : \mu$ would change every time
# the expander is widened. The covariance term is divided by $d$ too, but that does *not* make
# it width-independent: it still sums over the $d - 1$ partners of each dimension, so it grows
# with $d$ (chapter 4 explains why). The next cell measures the three terms on synthetic
# embeddings of growing width: every dimension has standard deviation 0.5, and the two views
# differ by noise of standard deviation 0.1 per dimension.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
print(f"{'d':>6}  {'s (mean)':>9}  {'s_paper':>8}  {'v':>6}  {'c':>6}")
for width in [64, 512, 2048] + ([] if FAST else [8192]):
    z = 0.5 * torch.randn(1024, width)
    z_prime = z + 0.1 * torch.randn(1024, width)
    s = invariance_loss(z, z_prime).item()
    print(f"{width:>6}  {s:9.4f}  {s * width:8.2f}  {variance_loss(z).item():6.3f}"
          f"  {covariance_loss(z).item():6.3f}")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: why a mean over d as well (reading the table)</b></summary>
#
# The library's $s$ (the variance of the noise, 0.01) does not depend on $d$; neither does $v$
# (here $v(Z)$ of the one batch $Z$). The covariance term does: $c(Z)$ of the batch (one branch,
# `covariance_loss(z)`) is nonzero even for these independent dimensions, because a
# finite batch shows small chance correlations, and $c$ rises with the width, by about the same
# factor as $d$ (chapter 4 derives the floor $c \approx \sigma^4 (d-1)/(n-1)$). Eq. (5)'s $s$
# grows in proportion to $d$: at the widest $d$ it is $d$ times the library's, which is why a
# coefficient written for Eq. (5) and one written for the code are only comparable once the
# $1/d$ is accounted for.
#
# </details>

# %% [markdown]
# ## Its gradient
#
# Differentiating $s = \frac{1}{nd}\sum_{i,j} (z_{ij} - z'_{ij})^2$ entry by entry:
#
# $$ \frac{\partial s}{\partial z_{ij}} = \frac{2\,(z_{ij} - z'_{ij})}{n\,d}, \qquad
#    \frac{\partial s}{\partial z'_{ij}} = -\frac{2\,(z_{ij} - z'_{ij})}{n\,d} . $$
#
# Three things to read off. Each embedding is pulled towards its partner, with a force
# proportional to their distance. The two forces are opposite, so the midpoint of a pair does not
# move: $s$ only sees differences, never where a pair sits. And no force involves another image:
# $s$ has no opinion on how different images relate. Autograd agrees:

# %%
z_a = torch.randn(n, d, requires_grad=True)
z_b = torch.randn(n, d, requires_grad=True)
invariance_loss(z_a, z_b).backward()
by_hand = 2 * (z_a - z_b).detach() / (n * d)
print("max |autograd - formula|:", (z_a.grad - by_hand).abs().max().item())
print("pair midpoints move by:", (z_a.grad + z_b.grad).abs().max().item())
assert torch.allclose(z_a.grad, by_hand, atol=1e-9) and torch.allclose(z_b.grad, -by_hand, atol=1e-9)

# %% [markdown]
# ## What the term does, in the playground
#
# A distance means nothing without a scale: $s$ can fall because the two views of each image come
# together, or because *everything* comes together. A scale-free measure asks whether an image's
# partner is closer than the other images' views:
#
# $$ r = \frac{\text{mean}_i \lVert z_i - z'_i \rVert^2}{\text{mean}_i \lVert z_i - z'_{i-1} \rVert^2}, $$
#
# the squared distance to the partner relative to that to the second view of another image (the
# previous one in the batch; $z'_0$ stands for $z'_n$):
# $r = 1$ means the partner is no closer than a stranger, $r = 0$ means perfect pairs. In chapter 1's
# playground (paper weights $\lambda = 25$, $\mu = 50$, $\nu = 1$ in the library's form) we train
# three losses on three seeds each: $s$ alone, the full loss, and the full loss **without** $s$
# ($\lambda = 0$, only $v$ and $c$). For every run we embed two fresh views of 600 points and
# measure $r$. In the figure, the colour of a point is its cluster of the toy data (which the loss
# never sees).

# %%
def pair_ratio(z_a, z_b):
    """Mean squared distance to the partner over that to another image's view (1 = no closer)."""
    return ((z_a - z_b).pow(2).sum(1).mean() / (z_a - z_b.roll(1, 0)).pow(2).sum(1).mean()).item()


losses = {"s alone": dict(mu=0.0, nu=0.0), "v + c, no s": dict(lambda_=0.0), "all three": {}}
pg_runs = {(name, seed): playground.train(**{**playground.PAPER, **w}, seed=seed)
           for name, w in losses.items() for seed in (0, 1, 2)}
pg_r = {key: pair_ratio(*playground.embed_views(run)) for key, run in pg_runs.items()}
print(f"{'loss':>12}  " + "  ".join(f"seed {s}: std, r      " for s in (0, 1, 2)))
for name in losses:
    print(f"{name:>12}  " + "  ".join(f"{playground.embedding_stats(pg_runs[name, s].embeddings)['std']:7.3f}, "
                                    f"{pg_r[name, s]:.3f}     " for s in (0, 1, 2)))

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), constrained_layout=True)
for ax, name in zip(axes, losses):
    playground.plot_pairs(pg_runs[name, 0], ax, title=name)
fig.suptitle("Playground, seed 0: the two views of 60 points, joined by black lines")
plt.show()
if not FAST:  # 400 steps; the claims of the next paragraph, on every seed
    assert all(pg_r["all three", s] < pg_r["v + c, no s", s] / 4 for s in (0, 1, 2))
    assert all(playground.regime(pg_runs["s alone", s].embeddings) == "point" for s in (0, 1, 2))

# %% [markdown]
# Without $s$ (middle) the variance and covariance terms spread the clusters over the plane, and a
# point's two views land fairly close anyway ($r$ about 0.1: the MLP is smooth and the views are
# small perturbations). With $s$ (right) the pairs are about ten times tighter relative to the
# cloud ($r$ about 0.01), on each of the three seeds: that tightening is the invariance term's
# work, the only term that knows which views belong together. With $s$ alone (left) the cloud is a
# point, and its $r$ (0.09 to 0.19) is no better than without $s$ (0.09 to 0.10): the pairs came
# together only because everything did. So, on three seeds of the playground: $s$ is what makes
# partners close, and alone it collapses.

# %% [markdown]
# ## The same measurement on images
#
# Chapter 1 trained the demo encoder with $s$ alone (`std_coeff=0`, `cov_coeff=0`) and watched the
# embeddings collapse. Here we train the same two short runs (invariance only, and the full loss
# with the demo preset's coefficients) and measure $r$ on 512 pairs of test views, in training
# mode (as the loss sees them: BatchNorm uses the batch's own statistics), with the network before
# training and after each run.

# %%
cfg = get_config("demo")
test_images, test_labels = data.in_memory_uint8(load_dataset("shapes", split="test"))
pairs = 256 if FAST else 512
view_a, view_b = TwoViewBatchAugment(make_augment_config(cfg))(
    test_images[:pairs], generator=torch.Generator().manual_seed(0))  # (pairs, 3, 32, 32) each

# %%
epochs, train_size = (3, 1280) if FAST else (4, 1920)  # 10 or 15 steps of 128 images per epoch
cfg_inv = get_config("demo", std_coeff=0.0, cov_coeff=0.0, epochs=epochs, train_size=train_size,
                     out_dir="runs/ch02/invariance_only", knn_every=0, final_eval=False, progress=False,
                     tensorboard=False)
result_inv = train(cfg_inv)
result_vicreg = train(cfg_inv.replace(std_coeff=cfg.std_coeff, cov_coeff=cfg.cov_coeff,  # the demo's mu, nu
                                     out_dir="runs/ch02/vicreg"))
for name, result in [("invariance only", result_inv), ("full VICReg", result_vicreg)]:
    print(f"{name:>16}: s per epoch", " ".join(f"{r['emb_alignment_mse']:.1e}" for r in result.epochs))


# %% [markdown]
# The invariance-only run drives $s$ down by orders of magnitude; the full VICReg run keeps it
# much higher. (The two lines printed last are $s$ on the trainer's 512 held-out test view pairs,
# in evaluation mode, at the end of each epoch; the $s$ in the log lines is the last training
# batch's, so the two differ.) Taken at face value, invariance alone "wins". (The logged online probe, see the
# [glossary](glossary.md), stays near chance, 10 % for ten classes, in both: 60 steps are too few to learn the classes, which is
# why the chapter ends with a full-budget check.) The table below gives the scale: the spread of
# the embeddings (mean std over the dimensions) and the ratio $r$.

# %%
def embed_pairs(model, view_a, view_b):
    """Embeddings (N, D) of both views as the loss sees them (training mode); model unchanged."""
    model = copy.deepcopy(model).train()  # the copy's BatchNorm statistics may change, not model's
    with torch.no_grad():
        return model(view_a)[1], model(view_b)[1]


torch.manual_seed(cfg.seed)
models = {"before training": build_model(cfg), "after invariance only": result_inv.model,
          "after full VICReg": result_vicreg.model}
embedded = {name: embed_pairs(m, view_a, view_b) for name, m in models.items()}
ratios = {name: pair_ratio(*zs) for name, zs in embedded.items()}
print(f"{'':>22}  {'s':>9}  {'mean std':>8}  {'r':>5}")
for name, (za, zb) in embedded.items():
    print(f"{name:>22}  {invariance_loss(za, zb).item():9.2e}  {za.std(0).mean().item():8.4f}  {ratios[name]:5.2f}")

# %% [markdown]
# ## Partners and strangers
#
# Each panel shows, for one network, two histograms over the 512 view pairs: the squared distance
# from a view to its partner, and to another image's view, both divided by the mean of the latter
# (so the panels share a scale whatever the size of the cloud).

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharex=True, constrained_layout=True)
bins = torch.linspace(0, 3, 46).numpy()  # a few larger distances fall off the right edge
for ax, (name, (za, zb)) in zip(axes, embedded.items()):
    stranger = (za - zb.roll(1, 0)).pow(2).sum(1)
    scale = stranger.mean()
    ax.hist((stranger / scale).numpy(), bins=bins, alpha=0.6, color="C7", label="to another image's view")
    ax.hist(((za - zb).pow(2).sum(1) / scale).numpy(), bins=bins, alpha=0.7, color="C0", label="to its partner")
    ax.set(title=f"{name}: r = {ratios[name]:.2f}", xlabel="squared distance / mean squared distance to a stranger",
           ylabel="view pairs")
axes[0].legend(fontsize="small")
fig.suptitle("Demo encoder on 512 pairs of test views: is a view closer to its partner than to a stranger?")
plt.show()

# %% [markdown]
# Before training, the two histograms overlap: a partner is barely closer than a stranger ($r$ =
# 0.77, the table above), a random network does not know that two views show the same shape. After
# the invariance-only run the two histograms still largely overlap ($r$ = 0.63) while the
# cloud's spread fell nearly twenty-fold (the table's mean std): the invariance term pulled the
# pairs together by pulling everything together, which is collapse. After the full VICReg run the
# cloud keeps its size and the partner histogram separates further from the strangers'
# ($r$ = 0.47): with the variance term holding the scale, the only way left to lower $s$ is to bring
# each image's views together *relative to the other images*. Both runs are one seed and 60 steps
# long, so the effect is smaller than in the playground's 400 steps, but it points the same way.

# %%
assert embedded["after invariance only"][0].std(0).mean() < 0.5 * embedded["before training"][0].std(0).mean()
if not FAST:  # the full-size runs of the table above (fast mode's 30 steps are too few to order the ratios)
    assert ratios["after full VICReg"] < ratios["before training"], "VICReg should tighten the pairs"
    assert ratios["after full VICReg"] < ratios["after invariance only"]

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the shortcut, in one identity</b></summary>
#
# The embedding is the output of a network whose last layer is linear without bias (the official
# expander ends with `Linear(bias=False)`): $z = W h$, with $h$ the last hidden layer. Scale $W$
# by $\alpha$ and every embedding, hence every difference $z_i - z'_i$, is scaled by $\alpha$, so
# $s$ is scaled by $\alpha^2$. A function with $s(\alpha W) = \alpha^2 s(W)$ satisfies
# (differentiate in $\alpha$ at $\alpha = 1$)
#
# $$ \langle \nabla_W s,\, W \rangle = 2\, s . $$
#
# The gradient always has a positive component along $W$ itself whenever the views disagree at
# all, so a gradient step $W \leftarrow W - \eta \nabla_W s$ changes $\lVert W \rVert^2$ by
# $-4 \eta s$ to first order: the invariance term **pulls the last layer towards smaller
# weights**, whatever the data. (The demo trains with AdamW, which rescales each coordinate of
# the gradient, so for its steps the $-4\eta s$ is not exact; AdamW's weight decay adds a pull of
# its own.)
#
# That pull is one force, not the collapse itself. **Collapse is the embedding's spread going to
# zero**: the standard deviation of every dimension of $z$ across the images falls towards 0
# (chapter 1's table), and with it everything the embedding could tell apart. The identity fixes
# only the component of the gradient *along* $W$; the rest of the gradient turns $W$. A last
# layer whose rows are orthogonal to the directions in which $h$ varies outputs the same $z$ for
# every image, $W \bar h$ (the layer has no bias: the constant comes from the mean $\bar h$ of its
# input, which the BatchNorm shift and the ReLU before it keep away from 0), however large $W$ is.
# The next cell checks the identity on the demo model and the view pairs above; the fold after
# it measures which of the two, shrinking or turning, the invariance-only run did.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
torch.manual_seed(cfg.seed)
model = build_model(cfg)  # random initialisation, training mode
last = model.expander[-1]  # Linear(1024, 512, bias=False)
s = invariance_loss(model(view_a)[1], model(view_b)[1])
(grad_w,) = torch.autograd.grad(s, last.weight)
print(f"s = {s.item():.4f},  <grad_W s, W> = {(grad_w * last.weight).sum().item():.4f},  2 s = {2 * s.item():.4f}")
with torch.no_grad():
    for alpha in [0.5, 0.1]:
        last.weight.mul_(alpha)
        print(f"W scaled by {alpha}: s = {invariance_loss(model(view_a)[1], model(view_b)[1]).item():.6f}"
              f"  (alpha^2 s = {alpha ** 2 * s.item():.6f})")
        last.weight.div_(alpha)

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: how the invariance-only network collapsed</b></summary>
#
# Did the invariance-only run shrink its last layer, as the identity's pull suggests? The folded
# cell below measures, for the three networks of the table above, the norm of the last layer's
# weight $\lVert W \rVert$ and the spread (mean std) of that layer's input $h$, on the same view
# pairs.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
print(f"{'':>22}  {'|W_last|':>8}  {'hidden std':>10}  {'embedding std':>13}")
for name, (za, _) in embedded.items():
    m = copy.deepcopy(models[name]).train()
    with torch.no_grad():
        hidden = m.expander[:-1](m.backbone(view_a))  # (pairs, 1024): the input h of the last layer
    print(f"{name:>22}  {m.expander[-1].weight.norm():8.2f}  {hidden.std(0).mean():10.3f}  {za.std(0).mean():13.4f}")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: how the invariance-only network collapsed (reading the table)</b></summary>
#
# It was not by shrinking its last layer. Its weight norm $\lVert W \rVert$ *grew*, from 13.06 at initialisation to 14.70
# (the full loss's grew to 19.29). Its input $h$ lost spread (mean std 0.585 before training,
# 0.235 after, $\times 0.40$), but the embedding lost far more ($\times 0.053$, from 0.3379 to
# 0.0180). With $\lVert W \rVert$ $\times 1.13$, the rest, a factor of about 8, is direction: the
# rows of $W$ turned away from the directions in which $h$ varies, and what is left of $z$ is
# mostly the constant $W \bar h$. The pull of the identity towards a smaller $W$ was there (and
# AdamW's weight decay with it), but the other components of the gradient won.
#
# </details>

# %% [markdown]
# ## The real-data check
#
# The 60-step runs show the geometry of the pairs, not whether the encoder becomes useful. Chapter
# 7's grid (`load_results("ablation_grid")`) answers that at the full budget (10 epochs, 780
# steps): it trained the book's baseline, the demo preset, on three seeds (inside chapter 1's four-seed
# band, 0.846 to 0.861), and the same recipe
# with one coefficient changed, among them $\lambda = 0$ (no invariance term, only $v$ and $c$;
# one seed). Each run is scored by $k$-NN accuracy ([glossary](glossary.md)) on the 2000 test
# images, next to the same network at random initialisation:

# %%
def span(runs, key, fmt=".3f"):
    """'lowest to highest' of a stored field over runs, formatted (one value when they agree)."""
    low, high = (format(f(r[key] for r in runs), fmt) for f in (min, max))
    return low if low == high else f"{low} to {high}"


grid = {r["name"]: r for r in load_results("ablation_grid")["runs"]}
preset = [r for r in grid.values() if r["factor"] in (None, "seed")]  # the demo preset, seeds 0, 1, 2
rows = {f"demo preset ({len(preset)} seeds)": preset, "lambda = 0, no s (seed 0)": [grid["sim_coeff=0"]]}
print(f"{'780 steps':>26}  {'k-NN':>16}  {'s (last step)':>14}  {'mean std':>12}")
for name, runs in rows.items():
    print(f"{name:>26}  {span(runs, 'knn', '.4f'):>16}  {span(runs, 'invariance'):>14}  {span(runs, 'emb_std_mean', '.2f'):>12}")
print(f"{'random encoder (3 seeds)':>26}  {span(preset, 'knn_random_init', '.4f'):>16}")
assert min(r["knn"] for r in preset) > max(r["knn_random_init"] for r in preset) + 0.5, "the preset learns"
assert grid["sim_coeff=0"]["knn"] < min(r["knn"] for r in preset) - 0.3, "without s the encoder learns far less"

# %% [markdown]
# With the demo preset the encoder classifies 85.30 to 86.05 % of the test images correctly from
# their 20 nearest neighbours (three seeds), against 11.25 to 12.15 % for the random encoder.
# Without $s$ ($\lambda = 0$, one seed) the variance and covariance terms still spread the
# embeddings (mean std 1.01), but nothing tells the network which views belong together: the two
# views of an image end far apart ($s$ = 1.594, about six times the preset's) and the $k$-NN,
# 0.1250, is barely above the random encoder's. In the playground a smooth MLP kept a point's two
# views close even without $s$; a CNN under strong augmentations does not, and without $s$ it
# learns next to nothing about the classes. One seed, but the gap to the preset is about a hundred
# times the spread of its three seeds. Chapter 3 adds the term that rules out the shortcut.

# %% [markdown]
# > **Takeaways**
# >
# > - $s$ is the mean squared difference between the two views' embeddings, over the $n$ images
# >   **and** the $d$ dimensions (`F.mse_loss`, as Algorithm 1 and the official code); the paper's
# >   Eq. (5) sums over $d$, so its $s$ is $d$ times this one.
# > - Its gradient pulls each embedding towards its partner like a spring and never involves
# >   another image.
# > - A distance needs a scale: measure pairs by $r$, the partner distance over a stranger's.
# > - In the playground (three seeds), $s$ is what makes partners close ($r$ about 0.01 with it,
# >   0.1 without), and alone it collapses the cloud to a point.
# > - On images at the full budget, $s$ is what the encoder learns from: the demo preset reaches
# >   $k$-NN 0.8530 to 0.8605 (three seeds); without $s$ ($\lambda = 0$, one seed), 0.1250, barely
# >   above a random encoder's 0.1125 to 0.1215.

# %% [markdown]
# ## Exercise: predict, then run
#
# **Can the invariance weight be too large?** Keep the playground's variance and covariance terms
# as they are ($\mu = 50$, $\nu = 1$, $\gamma = 1$) and raise $\lambda$ from 25 to 100. Before
# running anything, predict the shape the embedding ends in, `"point"`, `"line"` or `"plane"` (as
# `playground.regime` names them; chapter 1), and write it in `my_prediction`. The hidden cell
# trains that loss on three fresh seeds (3, 4, 5), names each run's shape, and checks your
# prediction against the shape most of them end in; it says "not answered yet" while
# `my_prediction` is `None`.

# %%
my_prediction = None  # replace None with "point", "line" or "plane"

# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
# Answer: a line. v still holds each coordinate's std at gamma, so there is no point; but c is
# weighed against 4x more invariance: the cheapest way to keep both stds up is for both
# coordinates to read the most invariant direction of the input, and c's penalty (about
# nu * std^4) is worth paying.
ex_runs = [playground.train(lambda_=100.0, mu=50.0, nu=1.0, seed=s) for s in (3, 4, 5)]
ex_shapes = [playground.regime(r.embeddings) for r in ex_runs]
measured = max(set(ex_shapes), key=ex_shapes.count)  # the shape most seeds end in
assert measured == "line", f"the worked solution expects a line at lambda = 100, got {ex_shapes}"
if my_prediction is None:
    print("my_prediction: not answered yet")
else:
    assert my_prediction == measured, f"my_prediction {my_prediction!r} is wrong: the runs end as {ex_shapes}"
    print(f"my_prediction {my_prediction!r}: right")
corrs = ", ".join(f"{playground.embedding_stats(r.embeddings)['corr']:.2f}" for r in ex_runs)
print(f"Solution: at lambda = 100 the seeds 3-5 end as {ex_shapes} (|corr| {corrs}): invariance outweighs "
      "the covariance term, both coordinates read one direction")
