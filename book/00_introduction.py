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
# This chapter sets the scene: what self-supervised learning is, what a joint-embedding
# architecture looks like, what "two views of one image" means on real images, and the VICReg
# loss ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)) at a glance. It ends with a map of the book and a first exercise.

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
    FAST, Shapes, TwoViewTransform, get_config, load_dataset, make_augment_config, variance_loss,
    vicreg_loss)

torch.manual_seed(0)
print("fast mode:", FAST)

# %% [markdown]
# ## Self-supervised learning in one page
#
# A supervised image classifier learns from millions of labelled images. Labels are expensive,
# and a network trained to predict 1000 labels learns what those labels need and little more.
# **Self-supervised learning** (SSL) trains the same network, an *encoder* $f_\theta$ that maps an
# image $x$ to a vector $y = f_\theta(x)$, from the images alone. The label is replaced by a
# task the data poses to itself. Once trained, the encoder is frozen and judged by how well a
# simple classifier (a linear layer, or $k$ nearest neighbours) does on top of its
# representations: a good representation makes the classes easy to separate.
#
# The task used by most modern methods is **invariance to augmentations**: crop an image twice,
# change the colours of each crop, and ask the encoder to map both crops to nearby vectors. What
# survives a crop and a colour change (the object, its shape) must be encoded; what does not
# (position, lighting) should be ignored. This family of methods is called **joint-embedding**:
# two views are embedded by the same network and their embeddings compared, a Siamese
# architecture ([Bromley et al., 1993](https://proceedings.neurips.cc/paper/1993/hash/288cc0ff022877bd3df94bc9360b9c5d-Abstract.html)).
#
# Asking only for agreement has a trivial solution: output the same vector for every image.
# Both views then agree perfectly and the representation is worthless. This is **collapse**, and
# every joint-embedding method is mostly a way to prevent it:
#
# - *contrastive* methods (SimCLR ([Chen et al., 2020](https://arxiv.org/abs/2002.05709)), MoCo ([He et al., 2020](https://arxiv.org/abs/1911.05722))) also push
#   the embeddings of *different* images apart, which needs many negative pairs, large batches
#   or a memory bank;
# - *distillation* methods break the symmetry between the branches: BYOL ([Grill et al., 2020](https://arxiv.org/abs/2006.07733))
#   with a predictor, a stop-gradient and a momentum (moving-average) encoder, SimSiam
#   ([Chen and He, 2021](https://arxiv.org/abs/2011.10566)) with a predictor and a stop-gradient alone (no momentum encoder);
# - *information-maximisation* methods (Barlow Twins ([Zbontar et al., 2021](https://arxiv.org/abs/2103.03230)) and **VICReg**)
#   regularise the statistics of a batch of embeddings so that no dimension can collapse.
#
# VICReg states the two things we want as two explicit terms: keep the variance of every
# embedding dimension above a threshold, and decorrelate the dimensions. Nothing else: no
# negatives, no momentum encoder, no stop-gradient, no normalisation of the embeddings.

# %% [markdown]
# ## What it buys: the paper's headline numbers
#
# The standard test of a self-supervised method is the *linear evaluation* on ImageNet: train a
# ResNet-50 without labels, freeze it, and train one linear layer on its representations with
# the labels. The VICReg paper ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906), Table 1)
# reports these top-1 accuracies, next to a ResNet-50 trained with the labels end to end:

# %%
reported = [("supervised ResNet-50 (labels end to end)", 76.5),
            ("VICReg, 1000 epochs, no labels + linear layer", 73.2),
            ("SimCLR, no labels + linear layer", 69.3)]
print(f"{'ImageNet, ResNet-50':<48} {'linear top-1 (%)':>16}   (Bardes et al., 2022, Table 1)")
for method, top1 in reported:
    print(f"{method:<48} {top1:>16.1f}")
print(f"VICReg: {reported[0][1] - reported[1][1]:.1f} points below supervised, "
      f"{reported[1][1] - reported[2][1]:.1f} above SimCLR")

# %% [markdown]
# A frozen encoder trained without a single label gets within 3.3 points of the supervised
# network, and ahead of SimCLR, a contrastive method, by 3.9 points. Those are the paper's
# numbers, for 1000 epochs on 32 GPUs. This book's own runs are far smaller (a small CNN on the
# built-in Shapes images, minutes on a CPU); chapter 8 puts its numbers next to these, and
# chapter 9 shows how the ImageNet run is launched.

# %% [markdown]
# ## The joint-embedding architecture
#
# One image $i$ gives two views $x = t(i)$ and $x' = t'(i)$, with $t, t'$ drawn at random from a
# distribution of augmentations $\mathcal{T}$. The **encoder** (backbone, e.g. a ResNet
# ([He et al., 2016](https://arxiv.org/abs/1512.03385))) gives the representations $y, y'$; a small MLP, the **expander**, maps them
# to the embeddings $z, z'$ on which the loss is computed. After training the expander is thrown
# away: downstream tasks use $y$.

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
# Read the diagram left to right: both views go through the *same* encoder and expander (shared
# weights), and the loss only ever sees the two batches of embeddings $Z, Z'$. The diagram has
# no arrow between different images: VICReg never compares an image with another one.

# %% [markdown]
# ## Two views of one image
#
# The book's experiments run on a built-in dataset, **Shapes**: 32×32 colour images of ten
# kinds of filled shapes (circle, ring, square, star, ...), generated on the fly, so nothing is
# downloaded. The class is the shape; colour, size, position, rotation and the background (a
# flat colour, or a linear gradient between two colours) are nuisances, which is exactly what
# augmentations teach an encoder to ignore. Shapes can also draw *noisy* backgrounds, but they
# are off by default: both views of an image share the noise and no augmentation removes it, so
# a short run learns the noise as a feature and loses about 8 points of $k$-NN accuracy (the
# `vicreg_edu.data` module docstring has the measurement; chapter 6 looks at what the encoder
# keeps). `TwoViewTransform` draws two random
# augmentations of one image, following the official VICReg recipe scaled down to 32 pixels:
# random resized crop, horizontal flip, colour jitter, grayscale and, rarely, solarisation (the
# ImageNet recipe also blurs, and treats the two views asymmetrically; chapter 5 has the details).
# The book's demo keeps the crops moderate (each crop covers 60 to 100 % of the image, printed
# below), so that the shape stays in the view, and flips no image (chapter 5 shows the search
# that chose both).

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


demo_augment = make_augment_config(get_config("demo"))  # the augmentations the book's demo trains with
print(f"crop scale {demo_augment.crop_scale}, colour jitter p = {demo_augment.jitter_p}, "
      f"grayscale p = {demo_augment.grayscale_p}, solarise p = {demo_augment.solarize_p}")
show_view_pairs(shapes, demo_augment, title="Shapes: each column is one image and its two views")
plt.show()

# %% [markdown]
# Each column is one training example. The two views of a column can be cropped and
# rescaled, recoloured, brightened or turned gray, yet they show the same shape (in the first
# column's second view the crescent nearly disappears into the background: augmentations
# can also destroy information, which is why the demo keeps them mild). The second and third
# images have gradient backgrounds, the others flat ones; a view keeps its image's background
# kind, only recoloured. The invariance term will pull the two views' embeddings together.
# Two columns of the same class (say, the two crosses) are *not* paired: nothing in the loss
# says they belong together, and still a good encoder will place them close.

# %% [markdown]
# ### The same on CIFAR-10
#
# When a CIFAR-10 folder ([Krizhevsky, 2009](https://www.cs.toronto.edu/~kriz/learning-features-2009-TR.pdf)) exists locally (the repository's `data/`
# folder), the next cell shows the same picture with the CIFAR recipe; otherwise it prints how to
# get the data. The book never downloads anything by itself.

# %%
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
# On natural images the crops are what matters most: a view may keep only part of the object
# (a wheel, a head), so the encoder must recognise the object from its parts.

# %% [markdown]
# ## The VICReg loss at a glance
#
# Take a batch of $n$ images, two views each, embedded into $Z = [z_1, \dots, z_n]$ and
# $Z' = [z'_1, \dots, z'_n]$, each $z_i \in \mathbb{R}^d$. Write $z^j$ for the $j$-th
# dimension across the batch (a column of $Z$). VICReg combines three terms
# ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)):
#
# **Invariance**: the two views of an image should have nearby embeddings (the paper's Eq. 5),
#
# $$ s(Z, Z') = \frac{1}{n} \sum_{i=1}^{n} \lVert z_i - z'_i \rVert_2^2 . $$
#
# **Variance**: the standard deviation of every dimension over the batch should stay above
# $\gamma$ (a hinge, with $\epsilon$ a small constant that keeps the square root's gradient
# finite; Eq. 1 and 2),
#
# $$ v(Z) = \frac{1}{d} \sum_{j=1}^{d} \max\bigl(0,\ \gamma - S(z^j, \epsilon)\bigr),
#    \qquad S(x, \epsilon) = \sqrt{\operatorname{Var}(x) + \epsilon} . $$
#
# **Covariance**: different dimensions should be decorrelated, so that they carry different
# information; with the covariance matrix $C(Z)$, the sum of its squared off-diagonal entries
# (Eq. 3 and 4),
#
# $$ C(Z) = \frac{1}{n-1} \sum_{i=1}^{n} (z_i - \bar z)(z_i - \bar z)^\top, \qquad
#    c(Z) = \frac{1}{d} \sum_{j \neq k} [C(Z)]_{j,k}^2 . $$
#
# **Total**, with weights $\lambda, \mu, \nu$ (Eq. 6):
#
# $$ \ell(Z, Z') = \lambda\, s(Z, Z') + \mu\, \bigl[v(Z) + v(Z')\bigr] + \nu\, \bigl[c(Z) + c(Z')\bigr] . $$
#
# The paper uses $\lambda = \mu = 25$, $\nu = 1$, $\gamma = 1$, $\epsilon = 10^{-4}$. Like the
# official code, `vicreg_edu.loss` averages $s$ over the $d$ dimensions too (a mean squared
# error) and averages the two variance terms, $\mu\,[v(Z) + v(Z')]/2$; chapters 2 and 3 say why
# these details matter for the weights.
#
# **One convention for the numbers the book prints.** $v(Z)$ and $c(Z)$ are terms of *one*
# branch. What the loss function returns, and what the trainer logs as `variance` and
# `covariance`, is one number for the two branches together: `variance` is their **average**,
# $[v(Z) + v(Z')]/2$, and `covariance` is their **sum**, $c(Z) + c(Z')$ (the fields of
# `vicreg_edu.loss.VICRegTerms`), so the loss is $\lambda s + \mu \cdot$ `variance`
# $+ \nu \cdot$ `covariance`. A printed $v$ is therefore on the scale of one branch's $v(Z)$,
# while a printed $c$ of the loss is about twice one branch's $c(Z)$. Where a chapter prints the
# covariance term of a single batch (a diagnostic, or `covariance_loss(z)`), it says $c(Z)$.

# %% [markdown]
# The next cell evaluates the three terms on four made-up batches of embeddings: a
# **collapsed** one (every image gets the same vector), a **redundant** one (spread out, but
# every dimension is a copy of the same number: *dimensional* collapse), a **random** one (the
# two views are unrelated) and a **good** one (spread-out, decorrelated embeddings whose two
# views nearly agree).

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
terms = {name: vicreg_loss(za, zb) for name, (za, zb) in batches.items()}
for name, t in terms.items():
    print(f"{name:>10}: s = {t.invariance:.3f}  v = {t.variance:.3f}  c = {t.covariance:.3f}  "
          f"loss = {t.loss:.2f}")

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
names, width = list(terms), 0.25
for k, (term, coeff) in enumerate([("invariance", 25), ("variance", 25), ("covariance", 1)]):
    values = [coeff * getattr(terms[name], term).item() for name in names]
    ax.bar([i + (k - 1) * width for i in range(len(names))], values, width, label=f"{coeff} × {term}")
ax.set_xticks(range(len(names)), names)
ax.set(xlabel="batch of embeddings", ylabel="weighted term (log scale)", yscale="log",
       ylim=(1e-3, 1e3), title="Each failure mode is caught by one term")
ax.legend()
plt.show()

# %% [markdown]
# Read the bars group by group (a missing bar is a term that is exactly zero). The collapsed
# batch has a perfect invariance term (both views agree) and no covariance, but the variance term
# catches it: every dimension has zero spread, so $v = \gamma - \sqrt{\epsilon} \approx 0.99$.
# The redundant batch passes the invariance and variance tests, yet all its dimensions say the
# same thing: only the covariance term sees it, and it is huge. The random batch is spread out
# and decorrelated, but its views disagree, so the invariance term is large. Only the good batch
# keeps all three terms small. Chapters 1 to 4 turn this picture into experiments, one term at a
# time.

# %% [markdown]
# ## A map of the book
#
# 1. **Collapse**: train with invariance alone and watch the embeddings collapse; what the
#    negatives of contrastive methods fix, and at what memory cost.
# 2. **Invariance ($s$)**: the mean squared error between views, its gradient, and view pairs
#    moving together during training.
# 3. **Variance ($v$)**: the hinge on the standard deviation, why the std and not the variance,
#    $\gamma$ and $\epsilon$; invariance plus variance still leaves *dimensional* collapse.
# 4. **Covariance ($c$)**: decorrelation spreads the spectrum; the comparison with Barlow Twins.
# 5. **Training VICReg**: the full objective, the wide expander, a real run with live curves and
#    a k-NN evaluation against baselines.
# 6. **Diagnosing collapse**: collapse reports, heatmaps, spectra, effective rank
#    (RankMe, [Garrido et al., ICML 2023](https://arxiv.org/abs/2210.02885)) and 2-D pictures of the
#    embeddings.
# 7. **Ablations**: sliders for $\lambda, \mu, \nu, \gamma$ and the augmentations; the
#    direction of the paper's ablations reproduced on Shapes.
# 8. **Evaluation**: $k$-NN and linear probes on frozen features, and how our numbers compare
#    with the paper's.
# 9. **Scaling up**: the ImageNet ResNet-50 recipe, `torchrun` on many GPUs, SLURM, and resuming
#    after preemption.
# 10. **Where VICReg sits now**: what its successors (Barlow Twins, VICRegL, RankMe, LiDAR,
#    I-JEPA, DINOv2/v3, LeJEPA, VISReg) keep or change, and a SIGReg-style loss next to VICReg.

# %% [markdown]
# ## Exercise
#
# Every chapter ends with an exercise; the answer is in a hidden cell below it. On the site,
# click "Show solution" to open it (its code and its output). In JupyterLab the cell shows one
# collapsed line, `# @title Solution ...`: click the "..." (or the blue bar at its left) to
# open the code, and the "..." below it to open its output. In Colab, click "Show code"; Colab
# hides only the code, so clear the stored outputs first (Edit > Clear all outputs) if you want
# to try without seeing the answer. Run the cell to check your answer: it says "not answered
# yet" while your variable is still `None`, stops with an error saying what is wrong if your
# answer is wrong, and prints the worked solution.
#
# **The price of collapse, in code.** Take a batch in which *every* dimension has the same
# standard deviation $\sigma$ over the batch (the collapsed batch above is $\sigma = 0$). From the
# formula of $v(Z)$ above, write `my_v_of_sigma(sigma, gamma=1.0, eps=1e-4)`: the value of the
# variance term of such a batch, as a function of $\sigma$, $\gamma$ and $\epsilon$ (plain Python
# or `math`, no library call). Mind the hinge: what happens above $\gamma$? The hidden cell builds
# fresh random batches with many values of $\sigma$ (0 and above $\gamma$ included) and several
# $\gamma$ and $\epsilon$, and compares your function with the library's `variance_loss` on each
# (to within $10^{-4}$); it says "not answered yet" while the function returns `None`.

# %%
def my_v_of_sigma(sigma, gamma=1.0, eps=1e-4):
    return None  # replace None with your formula (a number)


# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
# Answer: every one of the d dimensions has the same shortfall max(0, gamma - sqrt(sigma^2 + eps)),
# so their mean is that shortfall: v = max(0, gamma - sqrt(sigma^2 + eps)). Collapsed (sigma = 0):
# 1 - sqrt(1e-4) = 0.99; sigma = 0.5: 1 - sqrt(0.2501) = 0.4999; sigma >= gamma: 0 (the hinge).
def solution_v_of_sigma(sigma, gamma=1.0, eps=1e-4):
    return max(0.0, gamma - (sigma**2 + eps) ** 0.5)


def batch_with_std(sigma, n, d, generator):
    """A fresh (n, d) batch whose every column has mean 0 and standard deviation exactly sigma."""
    z = torch.randn(n, d, generator=generator, dtype=torch.float64)
    return sigma * (z - z.mean(0)) / z.std(0)


g = torch.Generator().manual_seed(int(torch.randint(10**6, (1,))))  # fresh inputs on every run
cases = [(s, gamma, eps) for s in (0.0, 0.01, 0.3, 0.5, 0.99, 1.5, 3.0) for gamma, eps in ((1.0, 1e-4), (2.0, 1e-2))]
cases += [(float(torch.rand(1, generator=g)) * 2.5, 1.0 + float(torch.rand(1, generator=g)), 1e-4) for _ in range(5)]
for sigma, gamma, eps in cases:  # the worked solution agrees with the library on fresh batches
    z = batch_with_std(sigma, 64, 16, g)
    library = variance_loss(z, gamma=gamma, eps=eps).item()
    assert abs(solution_v_of_sigma(sigma, gamma, eps) - library) < 1e-6, (sigma, gamma, eps)
if my_v_of_sigma(0.5) is None:
    print("my_v_of_sigma: not answered yet (replace None above, then run this cell again)")
else:
    for sigma, gamma, eps in cases:
        library = variance_loss(batch_with_std(sigma, 64, 16, g), gamma=gamma, eps=eps).item()
        mine = my_v_of_sigma(sigma, gamma=gamma, eps=eps)
        assert abs(mine - library) < 1e-4, (
            f"my_v_of_sigma({sigma:.3f}, gamma={gamma:g}, eps={eps:g}) = {mine}, the library gives {library:.6f}")
    print(f"my_v_of_sigma: right on {len(cases)} fresh batches")
print(f"Solution: v = max(0, gamma - sqrt(sigma^2 + eps)); collapsed: {solution_v_of_sigma(0.0):.4f}, "
      f"sigma 0.5: {solution_v_of_sigma(0.5):.4f}, sigma >= gamma: 0")
