# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 0. Introduction
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vicreg-edu/vicreg-edu/blob/main/book/00_introduction.ipynb)
#
# **The question of this book.** How can a network learn useful features from images without a
# single label, and what stops it from cheating by giving every image the same output? This
# chapter introduces VICReg ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)) and its
# loss on four made-up batches, and fixes, once for the whole book, the loss's conventions and
# the two measures every chapter uses ($k$-NN accuracy, effective rank); the
# [glossary](glossary.md) repeats them in short entries.

# %%
try:
    import vicreg_edu
except ImportError:  # Colab: install the library from the repository, once
    import subprocess, sys
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vicreg-edu @ git+https://github.com/vicreg-edu/vicreg-edu"], check=True)
    import vicreg_edu

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from vicreg_edu import (
    FAST, Shapes, TwoViewTransform, covariance_loss, effective_rank, get_config, invariance_loss, load_dataset,
    make_augment_config, variance_loss, vicreg_loss)

torch.manual_seed(0)
print("fast mode:", FAST)

# %% [markdown]
# ## Self-supervised learning in one page
#
# **Self-supervised learning** (SSL) trains an *encoder* $f_\theta$, mapping an image $x$ to a
# vector $y = f_\theta(x)$, from the images alone; the frozen encoder is then judged by how well a
# simple classifier does on its representations. The task of most modern methods is
# **invariance to augmentations**: crop an image twice, recolour each crop, and ask the encoder to
# map both crops to nearby vectors. What survives (the object's shape) must be encoded.
#
# Asking only for agreement has a trivial solution: the same vector for every image. This is
# **collapse**, and every such *joint-embedding* method is mostly a way to prevent it:
# *contrastive* methods (SimCLR, [Chen et al., 2020](https://arxiv.org/abs/2002.05709)) push
# different images apart with negative pairs; *distillation* methods (BYOL,
# [Grill et al., 2020](https://arxiv.org/abs/2006.07733)) make the two branches asymmetric;
# *information-maximisation* methods (Barlow Twins,
# [Zbontar et al., 2021](https://arxiv.org/abs/2103.03230), and **VICReg**) regularise the
# statistics of a batch of embeddings. VICReg states what we want as explicit terms: keep the
# spread of every embedding dimension up, and decorrelate the dimensions.

# %% [markdown]
# ## What it buys: the paper's numbers
#
# The standard test is *linear evaluation* on ImageNet: pre-train a ResNet-50 without labels,
# freeze it, train one linear layer on its representations with the labels. The VICReg paper
# (Table 1) reports these top-1 accuracies next to a ResNet-50 trained with labels end to end:

# %%
reported = {"supervised (labels end to end)": 76.5, "SimCLR (contrastive)": 69.3,
            "BYOL (distillation)": 74.3, "SwAV (clustering, multi-crop)": 75.3,
            "Barlow Twins (information max.)": 73.2, "VICReg": 73.2}
print(f"{'ImageNet, ResNet-50, linear top-1 (%)':<40} (Bardes et al., 2022, Table 1)")
for method, top1 in reported.items():
    print(f"{method:<40} {top1:5.1f}")

# %% [markdown]
# VICReg gets within 3.3 points of the supervised network without a label. It is not the most
# accurate method of its time: it ties Barlow Twins, is 1.1 points below BYOL and 2.1 below SwAV
# (which adds small extra crops), and 3.9 above SimCLR; "on par with the state of the art" is the
# paper's own summary. What VICReg adds is a loss whose every term can be read, plotted and
# switched off, with no explicit negative pairs, momentum encoder or stop-gradient: that is why this book
# teaches it, on runs of minutes on a CPU (chapter 8 compares their numbers with these).

# %% [markdown]
# ## The joint-embedding architecture
#
# One image $i$ gives two views $x = t(i)$ and $x' = t'(i)$, with $t, t'$ drawn at random from a
# distribution of augmentations. The **encoder** (e.g. a ResNet) gives the **representations**
# $y, y'$; a small MLP, the **expander**, maps them to the **embeddings** $z, z'$ on which the
# loss is computed. After training the expander is thrown away: downstream tasks use $y$.

# %%
def draw_architecture(ax):
    """Boxes and arrows of the VICReg architecture (paper Fig. 1), left to right."""
    boxes = {"image $i$": (0.06, 0.5), "view $x$": (0.24, 0.78), "view $x'$": (0.24, 0.22),
             "encoder $f_\\theta$": (0.45, 0.78), "encoder $f_\\theta$ ": (0.45, 0.22),
             "expander $h_\\phi$": (0.68, 0.78), "expander $h_\\phi$ ": (0.68, 0.22),
             "loss\n$\\lambda s + \\mu v + \\nu c$": (0.91, 0.5)}
    for text, (x, y) in boxes.items():
        ax.text(x, y, text, ha="center", va="center", fontsize=10,
                bbox=dict(boxstyle="round,pad=0.5", fc="#e8f0fb", ec="#3b6ea5"))
    arrows = [((0.10, 0.55), (0.19, 0.75), "$t$"), ((0.10, 0.45), (0.19, 0.25), "$t'$"),
              ((0.29, 0.78), (0.38, 0.78), ""), ((0.29, 0.22), (0.38, 0.22), ""),
              ((0.52, 0.78), (0.61, 0.78), "$y$"), ((0.52, 0.22), (0.61, 0.22), "$y'$"),
              ((0.75, 0.74), (0.85, 0.56), "$z$"), ((0.75, 0.26), (0.85, 0.44), "$z'$")]
    for start, end, label in arrows:
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", lw=1.5))
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.05, label, ha="center")
    ax.text(0.45, 0.5, "shared weights", ha="center", fontsize=9, style="italic")
    ax.set(xlim=(0, 1), ylim=(0, 1), title="VICReg: two views, one encoder, three loss terms")
    ax.axis("off")
    return ax


fig, ax = plt.subplots(figsize=(10, 3.2))
draw_architecture(ax)
plt.show()

# %% [markdown]
# Both views go through the *same* encoder and expander, and the loss sees the two batches of
# embeddings $Z, Z'$. There are no explicit negative pairs: no term names two different images to
# push apart. Yet the images of a batch are coupled, because the variance and covariance terms
# are statistics *over the batch*. The variance of a column is half the mean squared difference
# between pairs of images (checked below),
# $\operatorname{Var}(z^j) = \frac{1}{2n(n-1)}\sum_{i \ne k} (z_{ij} - z_{kj})^2$,
# so keeping it up pushes images apart. Chapter 4 shows the same for the covariance term: up to
# diagonal terms, it penalises the squared similarities of pairs of different images, as a
# contrastive loss does ([Garrido et al., ICLR 2023](https://arxiv.org/abs/2206.02574)).

# %%
column = torch.randn(64, dtype=torch.float64)
pairwise = (column[:, None] - column[None, :]).square().sum() / (2 * 64 * 63)  # i = k terms are 0
assert torch.isclose(pairwise, column.var()), (pairwise, column.var())
print(f"variance {column.var():.6f} = mean pairwise squared difference / 2: {pairwise:.6f}")

# %% [markdown]
# ## Two views of one image
#
# The book's experiments run on **Shapes**: 32×32 colour images of ten kinds of filled shapes,
# generated on the fly (nothing to download). The class is the shape; colour, size, position,
# rotation and the background are nuisances. `TwoViewTransform` draws two random augmentations of
# an image, the official recipe scaled to 32 pixels: random resized crop, flip, colour jitter,
# grayscale, rarely solarisation. The demo keeps crops at 60 to 100 % of the image and flips
# nothing (chapter 5 shows the search that chose both).

# %%
shapes = Shapes(split="train", n=256 if FAST else 2000, seed=0)
print(shapes)
print("classes:", shapes.classes)


# %%
def show_view_pairs(dataset, cfg, n=8, seed=0, title=""):
    """One column per image: the image, then two augmented views (un-normalised)."""
    two_views = TwoViewTransform(cfg)
    mean, std = torch.tensor(cfg.mean).view(3, 1, 1), torch.tensor(cfg.std).view(3, 1, 1)
    torch.manual_seed(seed)
    fig, axes = plt.subplots(3, n, figsize=(1.4 * n, 4.6))
    for col in range(n):
        image, label = dataset[col]
        views = two_views(image)
        panels = [image] + [(v * std + mean).clamp(0, 1).permute(1, 2, 0) for v in views]
        for row, panel in enumerate(panels):
            axes[row, col].imshow(panel)
            axes[row, col].set_xticks([]), axes[row, col].set_yticks([])
        axes[0, col].set_title(dataset.classes[label], fontsize=9)
    for row, name in enumerate(["image", "view $x$", "view $x'$"]):
        axes[row, 0].set_ylabel(name)
    fig.suptitle(title)
    return fig


demo = get_config("demo")  # the book's one baseline: its augmentations here, its loss weights below
demo_augment = make_augment_config(demo)
print(f"crop scale {demo_augment.crop_scale}, colour jitter p = {demo_augment.jitter_p}, "
      f"grayscale p = {demo_augment.grayscale_p}, solarise p = {demo_augment.solarize_p}")
show_view_pairs(shapes, demo_augment, title="Shapes: each column is one image and its two views")
plt.show()

# %% [markdown]
# Each column's two views are cropped, recoloured or turned gray, yet show the same shape (in
# the first column the crescent nearly vanishes: augmentations can destroy information too). Two
# columns of the same class (the two crosses) are *not* paired: nothing in the loss says they
# belong together, and still a good encoder will place them close.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the same picture on CIFAR-10</b></summary>
#
# When a CIFAR-10 folder ([Krizhevsky, 2009](https://www.cs.toronto.edu/~kriz/learning-features-2009-TR.pdf))
# exists locally (the repository's `data/` folder), the folded cell below shows the same picture
# with the CIFAR recipe; otherwise it prints how to get the data (the book never downloads
# anything by itself). On natural images the crops matter most: a view may keep only part of the
# object (a wheel, a head), so the encoder must recognise the object from its parts.
#
# </details>

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: two views of CIFAR-10 images (when the data is there)
data_root = Path("../data") if Path.cwd().name == "book" else Path("data")
try:
    cifar = load_dataset("cifar10", root=data_root, split="train")
except FileNotFoundError as missing:
    cifar = None
    print(missing)
if cifar is not None:
    show_view_pairs(cifar, make_augment_config(get_config("cifar10")), title="CIFAR-10: each column is one image and its two views")
    plt.show()

# %% [markdown]
# ## The VICReg loss at a glance
#
# A batch of $n$ images, two views each, gives embeddings $Z, Z'$ ($n$ rows $z_i \in \mathbb{R}^d$);
# $z^j$ is dimension $j$ across the batch (a column). **Invariance**: the two views of an image
# should be close, $s(Z, Z') = \frac{1}{n} \sum_{i} \lVert z_i - z'_i \rVert_2^2$ (Eq. 5).
# **Variance**: every dimension's standard deviation over the batch should reach $\gamma$, a hinge
# with a small $\epsilon$ (Eq. 1, 2):
#
# $$ v(Z) = \frac{1}{d} \sum_{j=1}^{d} \max\bigl(0,\ \gamma - \sqrt{\operatorname{Var}(z^j) + \epsilon}\bigr) . $$
#
# **Covariance**: dimensions should be decorrelated; with the covariance matrix
# $C(Z) = \frac{1}{n-1} \sum_{i} (z_i - \bar z)(z_i - \bar z)^\top$ (Eq. 3, 4),
#
# $$ c(Z) = \frac{1}{d} \sum_{j \neq k} [C(Z)]_{j,k}^2 . $$
#
# **Total** (Eq. 6): $\ell = \lambda\, s(Z, Z') + \mu\, [v(Z) + v(Z')] + \nu\, [c(Z) + c(Z')]$,
# with $\lambda = \mu = 25$, $\nu = 1$, $\gamma = 1$, $\epsilon = 10^{-4}$ in the paper.
#
# **The book's conventions, stated once.**
#
# - $v$ is **averaged** over the $d$ dimensions; $c$ is **summed** over the off-diagonal pairs
#   and divided by $d$. $s$, as in the official code and Algorithm 1, is also divided by $d$
#   (a mean squared error).
# - The library, like the official code, computes
#   $\lambda s + \mu\,[v(Z) + v(Z')]/2 + \nu\,[c(Z) + c(Z')]$: with that $/2$, the library's
#   $\mu = 50$ **is** the paper's Eq. 6 with $\mu = 25$.
# - A printed or logged `variance` is the **average** of the two views, $[v(Z) + v(Z')]/2$;
#   `covariance` is their **sum**, $c(Z) + c(Z')$. Where a chapter prints one view's, it says $c(Z)$.
# - The book's one baseline is the `demo` preset, $\lambda, \mu, \nu = 25, 50, 0.5$: the paper's
#   $\lambda$ and $\mu$, and half its $\nu$. The next cell checks the $\mu$ identity:

# %%
print(f"demo preset: lambda, mu, nu = {demo.sim_coeff:g}, {demo.std_coeff:g}, {demo.cov_coeff:g}")
za, zb = torch.randn(256, 32), torch.randn(256, 32)
library = vicreg_loss(za, zb, demo.sim_coeff, demo.std_coeff, demo.cov_coeff).loss
eq6 = (demo.sim_coeff * invariance_loss(za, zb) + 25 * (variance_loss(za) + variance_loss(zb))
       + demo.cov_coeff * (covariance_loss(za) + covariance_loss(zb)))  # Eq. 6 with mu = 25, no /2
assert torch.isclose(library, eq6), (library, eq6)
print(f"library loss with mu = {demo.std_coeff:g}: {library:.4f}; Eq. 6 with mu = 25: {eq6:.4f}")

# %% [markdown]
# The next cell evaluates the three terms, with the demo's weights, on four made-up batches: a
# **collapsed** one (every image gets the same vector), a **redundant** one (spread out, but every
# dimension a copy of the same number: *dimensional* collapse), a **random** one (the two views
# unrelated) and a **good** one (spread-out, decorrelated embeddings whose views nearly agree).

# %%
n, d = (256, 32) if FAST else (1024, 64)
z = torch.randn(n, d)
copies = 1.5 * torch.randn(n, 1).expand(n, d) + 0.05 * torch.randn(n, d)  # d copies of one number
batches = {
    "collapsed": (torch.ones(n, d), torch.ones(n, d)),
    "redundant": (copies, copies + 0.05 * torch.randn(n, d)),
    "random": (z, torch.randn(n, d)),
    "good": (z, z + 0.1 * torch.randn(n, d)),
}
weights = {"invariance": demo.sim_coeff, "variance": demo.std_coeff, "covariance": demo.cov_coeff}
terms = {name: vicreg_loss(za, zb, *weights.values()) for name, (za, zb) in batches.items()}
for name, t in terms.items():
    print(f"{name:>10}: s = {t.invariance:.3f}  v = {t.variance:.3f}  c = {t.covariance:.3f}  "
          f"loss = {t.loss:.2f}")

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
names, width = list(terms), 0.25
for k, (term, coeff) in enumerate(weights.items()):
    values = [coeff * getattr(terms[name], term).item() for name in names]
    ax.bar([i + (k - 1) * width for i in range(len(names))], values, width, label=f"{coeff:g} × {term}")
ax.set_xticks(range(len(names)), names)
ax.set(xlabel="batch of embeddings", ylabel="weighted term (log scale)", yscale="log",
       ylim=(1e-3, 1e4), title="Each failure mode is caught by one term (demo weights)")
ax.legend(loc="upper right", fontsize="small")
plt.show()

# %% [markdown]
# Read the bars group by group (a missing bar is a term that is exactly zero). Only the variance
# term catches the collapsed batch (zero spread: $v = \gamma - \sqrt{\epsilon} \approx 0.99$);
# only the covariance term the redundant one, whose dimensions all say the same thing; the
# invariance term the random one, whose views disagree. Only the good batch keeps all three
# small. Chapters 1 to 4 turn this picture into experiments, one term at a time.

# %% [markdown]
# ## How the book measures a representation
#
# **$k$-NN accuracy** (how good a frozen representation is; labels only score it). Every test
# image takes its $k = 20$ most similar training images (cosine similarity of their
# representations $y$), each voting for its label with weight $\exp(\text{similarity}/0.07)$; the
# accuracy is the fraction of test images whose top vote is right. Chance is 10 % on Shapes; the
# baseline a run must beat is a *randomly initialised* encoder of the same architecture (about
# 11-12 %, chapter 1). A *linear probe* (chapter 8) is the other standard measure.
#
# **Effective rank** (how many directions the embeddings use; no labels). With
# $\sigma_1 \ge \sigma_2 \ge \dots$ the singular values of the centred batch of embeddings and
# $p_k = \sigma_k / \sum_j \sigma_j$, RankMe ([Garrido et al., ICML 2023](https://arxiv.org/abs/2210.02885))
# defines
#
# $$ \operatorname{erank}(Z) = \exp\Bigl(-\sum_k p_k \log p_k\Bigr) , $$
#
# $r$ for $r$ equal singular values: a smooth count of the directions in use. It is
# **scale-free**: 0 for an exactly constant batch, but a cloud shrunk to a tiny jitter can still
# score high (chapter 1 shows it). It also grows with the number of images $N$ it is measured on:
# compare values at the same $N$ only. On the four batches:

# %%
for name, (za, zb) in batches.items():
    print(f"{name:>10}: effective rank {effective_rank(za):5.1f} of d = {d}")

# %% [markdown]
# The collapsed batch uses no direction; the redundant one uses a few of its 64 (one direction
# holds most of its variance, the small noise the rest); the random and good ones nearly all $d$.
# Chapter 6 reads the effective rank and the standard deviation together to diagnose a run.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: a map of the book</b></summary>
#
# 1. **Collapse**: invariance alone collapses; what negatives fix, and at what cost.
# 2. **Invariance ($s$)**: the mean squared error between views and its gradient.
# 3. **Variance ($v$)**: the hinge on the standard deviation, $\gamma$ and $\epsilon$; what is left:
#    dimensional collapse.
# 4. **Covariance ($c$)**: decorrelation spreads the spectrum; the link with contrastive methods.
# 5. **Training VICReg**: the full objective, the expander, a real run evaluated by $k$-NN.
# 6. **Diagnosing collapse**: reading the std, the effective rank and the three terms together.
# 7. **Ablations**: the weights and augmentations, one at a time.
# 8. **Evaluation**: $k$-NN and linear probes, and how our numbers compare with the paper's.
# 9. **Scaling up**: the ImageNet recipe on many GPUs, SLURM, resuming after pre-emption.
# 10. **Where VICReg sits now**: its successors, and a SIGReg-style loss next to it.
#
# </details>

# %% [markdown]
# > **Takeaways**
# >
# > - SSL trains an encoder on two augmented views of each image; the danger is **collapse**.
# > - VICReg's three terms: **$s$** pulls the views together, **$v$** keeps every dimension's std
# >   from falling below $\gamma$, **$c$** decorrelates the dimensions. No explicit negatives, but
# >   $v$ and $c$ couple the images of a batch.
# > - $v$ is averaged over dimensions, $c$ summed over pairs and divided by $d$; logged `variance`
# >   averages the two views, `covariance` sums them; the library's $\mu = 50$ is the paper's 25.
# > - A run is scored by **$k$-NN accuracy** against a random encoder, its use of directions by the
# >   **effective rank** (at one $N$). The baseline everywhere: the demo preset, 25/50/0.5.

# %% [markdown]
# ## Exercise: predict, then run
#
# Every chapter ends with an exercise whose answer sits in a hidden cell below it: run it to check
# your answer, open it to read the worked solution ([the front page](intro.md) says how).
#
# **Does VICReg want the embeddings as spread out as possible?** Multiply both views of the *good*
# batch by $a$ = 0.25, 0.5, 1, 2 or 4: relative to their spread, the views agree as before and the
# dimensions stay decorrelated. **Before running anything**, predict from the formulas above:
#
# - `my_best_scale`: the $a$ (one of the five) that gives the smallest total loss with the demo's
#   weights;
# - `my_top_term`: which weighted term is the largest at $a = 4$: `"invariance"`, `"variance"` or
#   `"covariance"`.
#
# The hidden cell builds a fresh good batch on every run, scales it, and checks your predictions.

# %%
my_best_scale = None  # replace None with one of 0.25, 0.5, 1, 2, 4
my_top_term = None  # replace None with "invariance", "variance" or "covariance"

# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
# Answer: the std of every dimension is about a. Below gamma = 1 the variance hinge costs
# mu (1 - a) (25 at a = 0.5, as the scan prints); at and above gamma it costs nothing. s is a mean of
# squared differences: it grows like a^2; c sums squared covariances: it grows like a^4, about
# 2 (d - 1) a^4 / n for the two views.
# So the loss is smallest at a = 1 = gamma: VICReg wants each dimension's std AT gamma, not as large as
# possible. At a = 4, nu c ~ 0.5 * 2 * 63 * 256 / 1024 ~ 16 beats lambda s ~ 25 * 0.01 * 16 = 4: covariance.
scales = [0.25, 0.5, 1, 2, 4]
g = torch.Generator().manual_seed(int(torch.randint(10**6, (1,))))  # a fresh batch on every run
z_fresh = torch.randn(n, d, generator=g)
z_fresh2 = z_fresh + 0.1 * torch.randn(n, d, generator=g)
scan = {a: vicreg_loss(a * z_fresh, a * z_fresh2, *weights.values()) for a in scales}
best = min(scales, key=lambda a: float(scan[a].loss))
weighted = {term: coeff * float(getattr(scan[4], term)) for term, coeff in weights.items()}
top = max(weighted, key=weighted.get)
assert best == 1 and top == "covariance", (best, weighted)  # the worked answer, on this fresh batch
for what, mine, right in [("my_best_scale", my_best_scale, best), ("my_top_term", my_top_term, top)]:
    if mine is None:
        print(f"{what}: not answered yet (replace None above, then run this cell again)")
    else:
        assert mine == right, f"{what} = {mine!r} is wrong: run the scan below and see why"
        print(f"{what} = {mine!r}: right")
for a in scales:
    t = scan[a]
    print(f"a = {a:4g}: loss {float(t.loss):7.2f} = {weights['invariance']:g} s {float(t.invariance):.4f} "
          f"+ {weights['variance']:g} v {float(t.variance):.3f} + {weights['covariance']:g} c {float(t.covariance):.3f}")
print(f"worked solution: smallest loss at a = {best} (= gamma); at a = 4 the largest weighted term is {top} "
      f"({weighted[top]:.1f} against {weighted['invariance']:.1f} for invariance)")
