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
# The first of VICReg's three terms {cite}`bardes2022vicreg` is the one that does the learning:
# the two views of an image should have nearby embeddings. This chapter writes it down, explains
# why it is a mean squared error (and why a *mean*), derives its gradient, and shows what it does
# to view pairs during training, alone and inside the full loss.

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

from vicreg_edu.augment import TwoViewBatchAugment
from vicreg_edu.config import FAST, get_config
from vicreg_edu.data import in_memory_uint8, load_dataset
from vicreg_edu.loss import covariance_loss, invariance_loss, variance_loss
from vicreg_edu.plots import pca_2d
from vicreg_edu.train import build_model, make_augment_config, train

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
# The official code computes it as `F.mse_loss(z, z')`, the mean over all $n \times d$ entries,
# and so does `vicreg_edu.loss.invariance_loss`. That is the paper's sum over $i$ divided by $n$
# **and by $d$**:
#
# $$ s(Z, Z') = \frac{1}{n\,d} \sum_{i=1}^{n} \sum_{j=1}^{d} (z_{ij} - z'_{ij})^2
#    = \frac{s_\text{paper}(Z, Z')}{d} . $$
#
# The weights $\lambda = \mu = 25$, $\nu = 1$ were tuned for this second version. In the rest of
# the book $s$ means the library's (the code's) version. A two-line check:

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
# the two values $z_{ij}, z'_{ij}$ around their midpoint. So $s$ is four times the average
# variance *within* the pairs, while the variance term $v$ (chapter 3) asks for a large
# variance *across* the batch. Together they ask for a large ratio of between-image spread to
# within-image spread, and both are measured in the same units, per dimension.
#
# **Why a mean over $d$ as well.** The variance term is a mean over the $d$ dimensions and the
# covariance term is divided by $d$, so both stay of the same order whatever the width of the
# expander. Dividing $s$ by $d$ does the same for it. With the paper's sum instead, $s$ grows
# linearly with $d$, and the balance $\lambda : \mu : \nu$ would change every time the expander
# is widened. The next cell measures the three terms on synthetic embeddings of growing width:
# every dimension has standard deviation 0.5, and the two views differ by noise of standard
# deviation 0.1 per dimension.

# %%
print(f"{'d':>6}  {'s (mean)':>9}  {'s_paper':>8}  {'v':>6}  {'c':>6}")
for width in [64, 512, 2048] + ([] if FAST else [8192]):
    z = 0.5 * torch.randn(1024, width)
    z_prime = z + 0.1 * torch.randn(1024, width)
    s = invariance_loss(z, z_prime).item()
    print(f"{width:>6}  {s:9.4f}  {s * width:8.2f}  {variance_loss(z).item():6.3f}"
          f"  {covariance_loss(z).item():6.3f}")

# %% [markdown]
# The library's $s$ (the variance of the noise, 0.01) does not depend on $d$; neither does $v$.
# Even these independent dimensions have a nonzero $c$, which grows with $d$: a finite batch
# shows small chance correlations, and there are more of them in a wider embedding (chapter 4). The paper's $s$ grows in proportion to $d$: at $d = 8192$ it is 8192
# times the library's, which is why the coefficients of the paper and of the code are only
# comparable once the $1/d$ is accounted for (the exercise at the end).

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
# ### The shortcut, in one identity
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
# $-4 \eta s$ to first order: it **shrinks the last layer**, whatever the data. Shrinking
# $W$ to zero is collapse. (The demo trains with AdamW, which rescales each coordinate of the
# gradient, so for its steps the $-4\eta s$ is not exact; the pull towards a smaller $W$ remains,
# and AdamW's weight decay adds to it.) Let us check the identity on the book's demo model and a
# batch of view pairs of the built-in Shapes images.

# %%
cfg = get_config("demo")
test_images, _ = in_memory_uint8(load_dataset("shapes", split="test"))
pairs = 256 if FAST else 512
view_a, view_b = TwoViewBatchAugment(make_augment_config(cfg))(
    test_images[:pairs], generator=torch.Generator().manual_seed(0))  # (pairs, 3, 32, 32) each

torch.manual_seed(cfg.seed)
model = build_model(cfg)  # random initialisation, training mode
last = model.expander[-1]  # Linear(512, 512, bias=False)
s = invariance_loss(model(view_a)[1], model(view_b)[1])
(grad_w,) = torch.autograd.grad(s, last.weight)
print(f"s = {s.item():.4f},  <grad_W s, W> = {(grad_w * last.weight).sum().item():.4f},  2 s = {2 * s.item():.4f}")
with torch.no_grad():
    for alpha in [0.5, 0.1]:
        last.weight.mul_(alpha)
        print(f"W scaled by {alpha}: s = {invariance_loss(model(view_a)[1], model(view_b)[1]).item():.6f}"
              f"  (alpha^2 s = {alpha ** 2 * s.item():.6f})")
        last.weight.div_(alpha)

# %% [markdown]
# ## Invariance alone, during training
#
# Chapter 1 trained the demo encoder with $s$ alone (`std_coeff=0`, `cov_coeff=0`) and watched
# the embeddings collapse. Here we train the same two short runs (invariance only, and the full
# VICReg loss for comparison) and look at the *pairs*: do the two views of an image really come
# together?

# %%
epochs, train_size = (3, 1280) if FAST else (6, 2560)  # 10 or 20 steps of 128 images per epoch
cfg_inv = get_config("demo", std_coeff=0.0, cov_coeff=0.0, epochs=epochs, train_size=train_size,
                     out_dir="runs/ch02/invariance_only", knn_every=0, final_eval=False, progress=False)
result_inv = train(cfg_inv)
result_vicreg = train(cfg_inv.replace(std_coeff=25.0, cov_coeff=1.0, out_dir="runs/ch02/vicreg"))
for name, result in [("invariance only", result_inv), ("full VICReg", result_vicreg)]:
    print(f"{name:>16}: s per epoch", " ".join(f"{r['emb_alignment_mse']:.1e}" for r in result.epochs))


# %% [markdown]
# The invariance-only run drives $s$ down by orders of magnitude; the full VICReg run keeps it
# much higher. Taken at face value, invariance alone "wins". But $s$ is a distance, and a
# distance means nothing without a scale. A scale-free question is: **is an image's partner
# closer than the other images' views?** We measure
#
# $$ r = \frac{\text{mean}_i \lVert z_i - z'_i \rVert^2}{\text{mean}_i \lVert z_i - z'_{i+1} \rVert^2}, $$
#
# the squared distance to the partner relative to the squared distance to the second view of the
# next image in the batch: $r = 1$ means the partner is no closer than a stranger, $r = 0$ means
# perfect pairs. We embed the same view pairs as above, in training mode (as the loss sees them:
# BatchNorm uses the batch's own statistics), with the network before training and after each run.

# %%
def embed_pairs(model, view_a, view_b):
    """Embeddings (N, D) of both views as the loss sees them (training mode); model unchanged."""
    model = copy.deepcopy(model).train()  # the copy's BatchNorm statistics may change, not model's
    with torch.no_grad():
        return model(view_a)[1], model(view_b)[1]


def pair_ratio(z_a, z_b):
    """Mean squared distance to the partner over that to another image's view (1 = no better)."""
    return ((z_a - z_b).pow(2).sum(1).mean() / (z_a - z_b.roll(1, 0)).pow(2).sum(1).mean()).item()


torch.manual_seed(cfg.seed)
models = {"before training": build_model(cfg), "after invariance only": result_inv.model,
          "after full VICReg": result_vicreg.model}
embedded = {name: embed_pairs(m, view_a, view_b) for name, m in models.items()}
ratios = {name: pair_ratio(*zs) for name, zs in embedded.items()}
print(f"{'':>22}  {'s':>9}  {'mean std':>8}  {'r':>5}")
for name, (za, zb) in embedded.items():
    print(f"{name:>22}  {invariance_loss(za, zb).item():9.2e}  {za.std(0).mean().item():8.4f}"
          f"  {ratios[name]:5.2f}")

# %% [markdown]
# ## A picture of view pairs
#
# Each panel projects the embeddings of both views of every pair, for one network, on their first
# two principal components (gray), then highlights twelve pairs and joins the two views of each
# image with a line. The panels
# have their own scales (the axis ticks tell you the size): compare the *lengths of the lines
# relative to the spread of the points*.

# %%
def plot_view_pairs(z_a, z_b, ax, shown=12, title=""):
    """PCA of both views together; `shown` pairs drawn, each joined by a line."""
    coords, _ = pca_2d(torch.cat([z_a, z_b]))  # (2N, 2), fitted on every embedding
    a, b = coords[: len(z_a)], coords[len(z_a):]
    ax.scatter(coords[:, 0], coords[:, 1], s=4, color="lightgray", label="all embeddings")
    for i in range(shown):
        ax.plot([a[i, 0], b[i, 0]], [a[i, 1], b[i, 1]], color=f"C{i % 10}", lw=1.5)
        ax.scatter([a[i, 0]], [a[i, 1]], color=f"C{i % 10}", marker="o", s=25)
        ax.scatter([b[i, 0]], [b[i, 1]], color=f"C{i % 10}", marker="^", s=25)
    ax.set(xlabel="principal component 1", ylabel="principal component 2", title=title)
    return ax


fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
for ax, (name, (za, zb)) in zip(axes, embedded.items()):
    plot_view_pairs(za, zb, ax, title=f"{name}\nmean std {za.std(0).mean():.3g}, r = {ratios[name]:.2f}")
axes[0].legend(loc="lower left", fontsize="small")
fig.suptitle("Two views of 12 images (circle: view a, triangle: view b; a line joins each pair)")
fig.tight_layout()
plt.show()

# %% [markdown]
# Before training, the lines are nearly as long as the distances between images ($r$ is not far
# from 1): a random network does not know that two views show the same shape. After the
# invariance-only run the lines are short in absolute terms (look at the axis ticks: the whole
# cloud is tiny), but they are *not* shorter relative to the cloud: $r$ has not gone down. The
# invariance term pulled the pairs together by pulling everything together, the shortcut of the
# identity above. After the full VICReg run the cloud keeps its size and the pairs are clearly
# tighter than the cloud: with the variance term holding the scale fixed, the only way left to
# lower $s$ is to bring each image's views together *relative to the other images*, which is
# what we wanted from the start.

# %%
assert ratios["after full VICReg"] < ratios["before training"], "VICReg should tighten the pairs"
assert ratios["after full VICReg"] < ratios["after invariance only"]
assert embedded["after invariance only"][0].std(0).mean() < 0.5 * embedded["before training"][0].std(0).mean()

# %% [markdown]
# So the invariance term is necessary (it is the only term that knows which views belong
# together) and useless alone. Chapter 3 adds the variance term that rules out the shortcut.

# %% [markdown]
# ## Exercise
#
# **Translating the coefficient.** The paper writes $s$ with a sum over the $d$ dimensions, the
# code with a mean. Suppose you implement the paper's $s_\text{paper}$ literally and want exactly
# the same loss and gradients as the code's $\lambda s$ with $\lambda = 25$, for the paper's
# expander width $d = 8192$. Which coefficient $\lambda'$ must multiply $s_\text{paper}$?

# %%
my_lambda_prime = None  # replace None with your value

# %% tags=["hide-input"]
# Answer: s_paper = d * s, so lambda' * s_paper = lambda * s needs lambda' = lambda / d = 25 / 8192.
width, lam = 8192, 25.0
expected = lam / width
z_a, z_b = torch.randn(64, width, requires_grad=True), torch.randn(64, width)
code_grad, = torch.autograd.grad(lam * invariance_loss(z_a, z_b), z_a)
paper_grad, = torch.autograd.grad(expected * (z_a - z_b).pow(2).sum(dim=1).mean(), z_a)
assert torch.allclose(code_grad, paper_grad, rtol=1e-5, atol=1e-12)
assert my_lambda_prime is None or abs(my_lambda_prime - expected) < 1e-9, \
    f"expected {expected:.6g}, got {my_lambda_prime}"
print(f"lambda' = 25 / 8192 = {expected:.6g}")
