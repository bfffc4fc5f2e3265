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
# The first of VICReg's three terms ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)) is the one that does the learning:
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

from vicreg_edu import (
    FAST, TwoViewBatchAugment, build_model, covariance_loss, get_config, invariance_loss, load_dataset,
    load_results, make_augment_config, train, variance_loss)
from vicreg_edu import data, plots

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
# Eq. (5) is the only place where $s$ is a sum over the $d$ dimensions. The paper's own
# pseudo-code (its Algorithm 1) computes it as `F.mse_loss(z_a, z_b)`, the mean over all
# $n \times d$ entries, and so do the official code (`main_vicreg.py`) and
# `vicreg_edu.loss.invariance_loss`. That is Eq. (5) divided by $n$ **and by $d$**:
#
# $$ s(Z, Z') = \frac{1}{n\,d} \sum_{i=1}^{n} \sum_{j=1}^{d} (z_{ij} - z'_{ij})^2
#    = \frac{s_\text{paper}(Z, Z')}{d} . $$
#
# So the split is not "paper against code" but "Eq. (5) against everything else": Algorithm 1
# and the code agree, and the weights $\lambda = \mu = 25$, $\nu = 1$ go with the mean. (The
# variance term has a similar split, the other way round: Algorithm 1, like Eq. (6), adds the
# two branches' variance terms, and only the official code divides the sum by 2; chapter 3.)
# In the rest of the book $s$ means the mean, the library's version. A two-line check:

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
# **Why a mean over $d$ as well.** The variance term is a mean over the $d$ dimensions, so
# its value does not depend on the width of the expander. Dividing $s$ by $d$ does the same for
# it: the library's $s$ is the mean squared disagreement *per dimension*. With Eq. (5)'s sum
# instead, $s$ grows linearly with $d$, and the balance $\lambda : \mu$ would change every time
# the expander is widened. The covariance term is divided by $d$ too, but that does *not* make
# it width-independent: it still sums over the $d - 1$ partners of each dimension, so it grows
# with $d$ (chapter 4 explains why). The next cell measures the three terms on synthetic
# embeddings of growing width: every dimension has standard deviation 0.5, and the two views
# differ by noise of standard deviation 0.1 per dimension.

# %%
print(f"{'d':>6}  {'s (mean)':>9}  {'s_paper':>8}  {'v':>6}  {'c':>6}")
for width in [64, 512, 2048] + ([] if FAST else [8192]):
    z = 0.5 * torch.randn(1024, width)
    z_prime = z + 0.1 * torch.randn(1024, width)
    s = invariance_loss(z, z_prime).item()
    print(f"{width:>6}  {s:9.4f}  {s * width:8.2f}  {variance_loss(z).item():6.3f}"
          f"  {covariance_loss(z).item():6.3f}")

# %% [markdown]
# The library's $s$ (the variance of the noise, 0.01) does not depend on $d$; neither does $v$
# (here $v(Z)$ of the one batch $Z$). The covariance term does: $c(Z)$ of the batch (one branch,
# `covariance_loss(z)`) is nonzero even for these independent dimensions, because a
# finite batch shows small chance correlations, and $c$ rises with the width, by about the same
# factor as $d$ (chapter 4 derives the floor $c \approx \sigma^4 (d-1)/(n-1)$). Eq. (5)'s $s$
# grows in proportion to $d$: at the widest $d$ it is $d$ times the library's, which is why a
# coefficient written for Eq. (5) and one written for the code are only comparable once the
# $1/d$ is accounted for (the exercise at the end).

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
# Turning, not shrinking, is what the measurements below and in chapter 3 show. Let us first
# check the identity on the book's demo model and a batch of view pairs of the built-in Shapes
# images.

# %%
cfg = get_config("demo")
test_images, test_labels = data.in_memory_uint8(load_dataset("shapes", split="test"))
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
# VICReg loss with the demo preset's coefficients for comparison) and look at the *pairs*: do the
# two views of an image really come together?

# %%
epochs, train_size = (3, 1280) if FAST else (4, 1920)  # 10 or 15 steps of 128 images per epoch
cfg_inv = get_config("demo", std_coeff=0.0, cov_coeff=0.0, epochs=epochs, train_size=train_size,
                     out_dir="runs/ch02/invariance_only", knn_every=0, final_eval=False, progress=False)
result_inv = train(cfg_inv)
result_vicreg = train(cfg_inv.replace(std_coeff=cfg.std_coeff, cov_coeff=cfg.cov_coeff,  # the demo's mu, nu
                                     out_dir="runs/ch02/vicreg"))
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
print(f"{'':>22}  {'s':>9}  {'mean std':>8}  {'r':>5}  {'|W_last|':>8}  {'hidden std':>10}")
for name, (za, zb) in embedded.items():
    m = copy.deepcopy(models[name]).train()
    with torch.no_grad():
        hidden = m.expander[:-1](m.backbone(view_a))  # (pairs, 1024): the input h of the last layer
    print(f"{name:>22}  {invariance_loss(za, zb).item():9.2e}  {za.std(0).mean().item():8.4f}"
          f"  {ratios[name]:5.2f}  {m.expander[-1].weight.norm():8.2f}  {hidden.std(0).mean():10.3f}")

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
    coords, _ = plots.pca_2d(torch.cat([z_a, z_b]))  # (2N, 2), fitted on every embedding
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
# cloud is tiny), but they are only a little shorter relative to the cloud: $r$ went from 0.77
# before training to 0.63 (the table above), while the spread fell nearly twenty-fold. The
# invariance term pulled the pairs together by pulling everything together: the embedding's
# spread went towards zero, which is collapse.
#
# The last two columns of the table say how the network got there, and it was not by shrinking
# its last layer. Its weight norm $\lVert W \rVert$ *grew*, from 13.06 at initialisation to 14.70
# (the full loss's grew to 19.35). Its input $h$ lost spread (mean std 0.585 before training,
# 0.233 after, $\times 0.40$), but the embedding lost far more ($\times 0.054$, from 0.3379 to
# 0.0183). With $\lVert W \rVert$ $\times 1.13$, the rest, a factor of about 8, is direction: the
# rows of $W$ turned away from the directions in which $h$ varies, and what is left of $z$ is
# mostly the constant $W \bar h$. The pull of the identity towards a smaller $W$ was there (and
# AdamW's weight decay with it), but the other components of the gradient won.
#
# After the full VICReg run the cloud does not shrink (compare the mean std in
# the panel titles) and the pairs are clearly tighter than the cloud ($r = 0.47$): with the variance term
# holding the scale fixed, the only way left to lower $s$ is to bring each image's views
# together *relative to the other images*, which is what we wanted from the start. What the
# widest directions of a full demo run's embedding measure, and what it keeps and discards, is
# chapter 6's question.

# %%
assert embedded["after invariance only"][0].std(0).mean() < 0.5 * embedded["before training"][0].std(0).mean()
if not FAST:  # the full-size runs of the table above (fast mode's 30 steps are too few to order the ratios)
    assert ratios["after full VICReg"] < ratios["before training"], "VICReg should tighten the pairs"
    assert ratios["after full VICReg"] < ratios["after invariance only"]

# %% [markdown]
# These two runs are 60 steps long, far too short to learn the classes: they show what each loss
# does to the geometry of the pairs, not whether the encoder becomes useful. For that, the stored
# runs of the same preset at its full budget (780 steps, `load_results("recipe_search")`, the
# preset's row of chapter 5's table), against the same network at random initialisation:

# %%
preset_runs = [r for r in load_results("recipe_search")["runs"]
               if r["name"] == "nf-crop0.6-exp1024-512" and r["epochs"] == 10]
print(f"{'seed':>4}  {'k-NN trained':>12}  {'k-NN random init':>16}  {'mean std':>8}")
for r in sorted(preset_runs, key=lambda r: r["seed"]):
    print(f"{r['seed']:>4}  {r['knn']:>12.3f}  {r['knn_random_init']:>16.3f}  {r['emb_std_mean']:>8.3f}")
knn_random = [r["knn_random_init"] for r in preset_runs]
print(f"random encoder: {min(knn_random):.4f} to {max(knn_random):.4f} over {len(preset_runs)} seeds; "
      f"trained: {min(r['knn'] for r in preset_runs):.3f} to {max(r['knn'] for r in preset_runs):.3f}")

# %% [markdown]
# At the full budget the full loss's encoder classifies 84.6 to 86.1 % of the test images
# correctly from their 20 nearest neighbours (four seeds), against 11.15 to 12.15 % for the
# random encoder. So the invariance
# term is necessary (it is the only term that knows which views belong together) and useless
# alone. Chapter 3 adds the variance term that rules out the shortcut.

# %% [markdown]
# ## Exercise
#
# **Eq. (5) in code, and its coefficient.** (1) Write `my_s_paper(z_a, z_b)`: the paper's
# Eq. (5) taken literally, the mean over the $n$ images of the squared Euclidean distance
# between the two embeddings (a sum over the $d$ dimensions), for two `(n, d)` tensors, in one
# or two lines of PyTorch. (2) You train with `lam_prime * my_s_paper(z_a, z_b)` and want exactly
# the same loss and gradients as the code's `25 * invariance_loss(z_a, z_b)` at the paper's
# expander width $d = 8192$. Which coefficient `lam_prime` (`my_lambda_prime` below)? Replace the
# `None`s, then run the hidden check below. It tests your function against the library on fresh
# random batches of several shapes (`my_s_paper` must equal $d$ times `invariance_loss`), then
# checks your coefficient the way it is used: the gradient of
# `my_lambda_prime * my_s_paper` must equal that of `25 * invariance_loss` on a fresh batch of
# width 8192, to within 0.1 % (so a value rounded to three significant digits, such as 0.00305,
# passes). While a variable is still `None` it says "not answered yet".

# %%
def my_s_paper(z_a, z_b):
    return None  # replace None with your formula (a 0-dim tensor)


my_lambda_prime = None  # replace None with your value for d = 8192


# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
# Answer: s_paper = (z_a - z_b).pow(2).sum(dim=1).mean() = d * s, so lambda' = 25 / d = 25 / 8192.
width, lam = 8192, 25.0
solution_s_paper = lambda a, b: (a - b).pow(2).sum(dim=1).mean()  # the worked solution
expected = lam / width
g = torch.Generator().manual_seed(int(torch.randint(10**6, (1,))))  # fresh inputs on every run
shapes = [(8, 5), (3, 64), (50, 7)]
for n_c, d_c in shapes:  # the worked solution agrees with the library: s_paper = d * s
    a, b = torch.randn(n_c, d_c, generator=g), torch.randn(n_c, d_c, generator=g)
    assert torch.allclose(solution_s_paper(a, b), d_c * invariance_loss(a, b), rtol=1e-5)
z_a, z_b = torch.randn(64, width, generator=g, requires_grad=True), torch.randn(64, width, generator=g)
code_grad, = torch.autograd.grad(lam * invariance_loss(z_a, z_b), z_a)
paper_grad, = torch.autograd.grad(expected * solution_s_paper(z_a, z_b), z_a)
assert torch.allclose(code_grad, paper_grad, rtol=1e-5, atol=1e-12)
if my_s_paper(z_a, z_b) is None:
    print("my_s_paper: not answered yet (write the formula above, then run this cell again)")
else:
    for n_c, d_c in shapes:
        a, b = torch.randn(n_c, d_c, generator=g), torch.randn(n_c, d_c, generator=g)
        got, want = torch.as_tensor(my_s_paper(a, b)), d_c * invariance_loss(a, b)
        assert torch.allclose(got, want, rtol=1e-5), f"my_s_paper is wrong: {got} instead of {want} on a {(n_c, d_c)} batch"
    print("my_s_paper: right")
if my_lambda_prime is None:
    print("my_lambda_prime: not answered yet")
else:
    mine_fn = my_s_paper if my_s_paper(z_a, z_b) is not None else solution_s_paper
    mine_grad, = torch.autograd.grad(my_lambda_prime * mine_fn(z_a, z_b), z_a)
    ratio = (mine_grad.norm() / code_grad.norm()).item()
    assert abs(ratio - 1) < 1e-3, f"my_lambda_prime = {my_lambda_prime} gives gradients {ratio:.4g} x the code's"
    print(f"my_lambda_prime: right (gradient {ratio:.5f} x the code's)")
print(f"Solution: s_paper = (z_a - z_b).pow(2).sum(dim=1).mean() = d * s;  lambda' = 25 / 8192 = {expected:.6g}")
