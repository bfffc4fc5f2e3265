# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Collapse
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vicreg-edu/vicreg-edu/blob/main/book/01_collapse.ipynb)
#
# **The question.** The obvious self-supervised objective is "make the two views of an image
# agree". What does an encoder trained with exactly that objective learn? This chapter shows that it
# learns nothing: its embeddings shrink to a single point. We watch it happen first in a 2-D
# playground where every embedding is visible, then on images, and see what VICReg's two other
# terms ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)) change. Contrastive methods such
# as SimCLR ([Chen et al., 2020](https://arxiv.org/abs/2002.05709)) avoid the same failure
# differently, at a cost: a short section near the end compares them.

# %%
try:
    import vicreg_edu
except ImportError:  # Colab: install the library from the repository, once
    import subprocess, sys
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vicreg-edu @ git+https://github.com/vicreg-edu/vicreg-edu"], check=True)
    import vicreg_edu

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator

from vicreg_edu import (
    FAST, get_config, invariance_loss, load_eval_data, load_results, train, vicreg_loss)
from vicreg_edu import diagnostics, evaluate, playground, plots

torch.manual_seed(0)
print("fast mode:", FAST)

# %% [markdown]
# ## Agreement alone has a trivial minimum
#
# Let an encoder $f_\theta$ (backbone and expander together) map each view to an embedding, and
# ask only that the two views of every image agree:
#
# $$ \min_\theta \; \frac{1}{n} \sum_{i=1}^{n} \bigl\lVert f_\theta(x_i) - f_\theta(x'_i) \bigr\rVert_2^2 . $$
#
# This is VICReg's invariance term $s$ on its own. Its smallest possible value is 0, and a
# *constant* encoder, $f_\theta(x) = c$ for every input, reaches it: both views of every image
# land on $c$, so they agree perfectly, and the embedding says nothing about the image. This is
# **collapse**. Nothing in the objective prefers an informative encoder to a constant one, and
# for a network the constant is easy to reach. Collapse is the embedding's **spread going to
# zero**: the standard deviation of every embedding dimension across the images falls towards 0,
# and every distance shrinks with it. Let us check that gradient descent really takes the
# shortcut.

# %% [markdown]
# ## See it in two dimensions
#
# `vicreg_edu.playground` is a toy small enough to see every embedding: points of six Gaussian
# clusters in the plane; a **view** of a point is the point slightly rotated, rescaled and
# jittered. A tiny MLP (2 → 64 → 64 → 2) maps each view to a 2-D embedding; 400 Adam steps, about a
# second on a CPU, train it with the library's `vicreg_loss` itself:
#
# $$ \mathcal{L} = \lambda\, s(Z, Z') + \mu\, \tfrac{1}{2}\bigl[v(Z) + v(Z')\bigr] + \nu\,\bigl[c(Z) + c(Z')\bigr] . $$
#
# $s$ is the agreement above; $v$ (chapter 3) and $c$ (chapter 4) are the terms this chapter
# motivates. The weights follow [chapter 0](00_introduction.ipynb)'s conventions; the playground's
# defaults are the paper's, $\lambda = 25$, $\mu = 50$ (the paper's 25), $\nu = 1$, $\gamma = 1$
# (the demo preset differs only in $\nu = 0.5$). We train the same MLP three times: with $s$ alone ($\mu = \nu = 0$), with $s$ and
# $v$ ($\nu = 0$), and with all three terms. Each panel shows one view of 600 fresh points,
# coloured by cluster (the loss never sees the colours).

# %%
regimes = playground.regimes(seed=0)  # three runs on seed 0: s alone, s + v, s + v + c
fig = playground.small_multiples(regimes, "The same MLP trained with three losses (seed 0)")
plt.show()

# %% [markdown]
# With the invariance term alone (second panel) every point has landed on one spot: the
# embedding's standard deviation is 0.002, against about 1 for the two other losses (the
# $|\mathrm{corr}|$ in its title describes a jitter of that size and means nothing). The two
# views of every point agree perfectly, and the embedding no longer says which cluster a point
# came from: collapse. With the variance term (third panel) each coordinate keeps a standard
# deviation near its target $\gamma = 1$, but both read the same thing: the clusters sit on one
# line, $|\mathrm{corr}(z_1, z_2)| =$ 1.00, **dimensional collapse**. With the covariance term too
# (last panel) the coordinates decorrelate ($|\mathrm{corr}| =$ 0.00) and the clusters spread over
# the plane (some share a spot: the loss has no labels).
#
# One seed gives a picture, not a claim. The next cell trains the three losses on three seeds
# and names each final shape (`playground.regime`: a **point** when the std is below 0.05, a
# **line** when the second singular value is under a fifth of the first, else a **plane**).

# %%
print(f"{'loss':>26}  {'seed':>4}  {'std':>6}  {'|corr|':>6}  shape")
shapes = {}
for seed in (0, 1, 2):
    runs = regimes if seed == 0 else playground.regimes(seed=seed)
    for name, run in runs.items():
        stats = playground.embedding_stats(run.embeddings)
        shapes[name, seed] = playground.regime(run.embeddings)
        print(f"{name:>26}  {seed:>4}  {stats['std']:6.3f}  {stats['corr']:6.2f}  {shapes[name, seed]}")
if not FAST:  # 400 steps; fast mode's 100 are too few to decorrelate
    expected = {"invariance only": "point", "+ variance": "line", "+ covariance (all three)": "plane"}
    assert all(shape == expected[name] for (name, seed), shape in shapes.items()), shapes

# %% [markdown]
# Three seeds, the same three shapes. Chapters 2, 3 and 4 take the terms one at a time, each with
# this playground as its evidence; chapter 4 ends with an explorer of all four knobs. The rest of
# this chapter checks that the first shape, collapse, is what happens to a real encoder too.

# %% [markdown]
# ## The same collapse on images
#
# We train the book's demo encoder (a small CNN and a 1024-512 expander, on the built-in Shapes
# images) with `std_coeff=0` and `cov_coeff=0`: the loss is $\lambda\, s$ alone. The run is short
# on purpose (60 steps). After every epoch the trainer embeds a fixed held-out batch of view pairs
# and logs `vicreg_edu.diagnostics.collapse_report` (keys prefixed `emb_`): the mean
# per-dimension standard deviation, the fraction of **dead** dimensions (std below 0.01), the
# effective rank ([glossary](glossary.md)) and the invariance term (`alignment_mse`). The `probe`
# in the log lines is an online linear classifier trained on the side (chapter 5); at 60 steps
# it stays near chance (0.1).

# %%
epochs, train_size = (3, 1280) if FAST else (4, 1920)  # 10 or 15 steps of 128 images per epoch
cfg_inv = get_config("demo", std_coeff=0.0, cov_coeff=0.0, epochs=epochs, train_size=train_size,
                     out_dir="runs/ch01/invariance_only", knn_every=0, final_eval=False, progress=False)
print(f"loss = {cfg_inv.sim_coeff:g} s + {cfg_inv.std_coeff:g} v + {cfg_inv.cov_coeff:g} c; "
      f"{cfg_inv.epochs} epochs of {cfg_inv.train_size} images, batch {cfg_inv.batch_size}")
result_inv = train(cfg_inv)
print(f"trained in {result_inv.wall_time:.0f} s wall time")

# %%
inv_epochs = result_inv.epochs  # one dict per epoch
print("epoch   s (alignment_mse)   mean std   dead fraction   effective rank")
for r in inv_epochs:
    print(f"{r['epoch']:>5}   {r['emb_alignment_mse']:>17.2e}   {r['emb_std_mean']:>8.4f}"
          f"   {r['emb_dead_fraction']:>13.2f}   {r['emb_effective_rank']:>14.1f}")

# %% [markdown]
# The objective goes down, and the mean standard deviation falls with it: the cheapest way to
# bring two views together is to bring *all* embeddings together. (60 steps: enough to read the
# spread, far too few to learn the classes.)
#
# For comparison we train the same network, on the same images, for the same number of steps,
# with the full VICReg loss and the **demo preset**'s coefficients, the book's baseline
# (printed below). Only the two coefficients of $v$ and $c$ change.

# %%
demo = get_config("demo")
cfg_vicreg = cfg_inv.replace(std_coeff=demo.std_coeff, cov_coeff=demo.cov_coeff, out_dir="runs/ch01/vicreg")
print(f"loss = {cfg_vicreg.sim_coeff:g} s + {cfg_vicreg.std_coeff:g} v + {cfg_vicreg.cov_coeff:g} c")
result_vicreg = train(cfg_vicreg)
vicreg_epochs = result_vicreg.epochs


# %% [markdown]
# ## Watching the collapse
#
# The figure puts the two runs side by side, one diagnostic per panel. The left panel has a
# logarithmic axis: collapse is a change of orders of magnitude.

# %%
def plot_runs(runs, keys, axes, gamma=1.0):
    """One panel per diagnostic key, one line per run (runs: dict name -> epoch records)."""
    for ax, (key, label, log) in zip(axes, keys):
        for name, recs in runs.items():
            ax.plot([r["epoch"] for r in recs], [r[key] for r in recs], marker="o", label=name)
        if key == "emb_std_mean":
            ax.axhline(gamma, color="gray", linestyle="--", label=f"target $\\gamma$ = {gamma:g}")
        ax.set(xlabel="epoch", ylabel=label, yscale="log" if log else "linear", title=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    return axes


runs = {"invariance only": inv_epochs, "full VICReg": vicreg_epochs}
keys = [("emb_std_mean", "mean per-dimension std", True),
        ("emb_dead_fraction", "fraction of dead dimensions (std < 0.01)", False),
        ("emb_effective_rank", "effective rank (RankMe)", False)]
fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
plot_runs(runs, keys, axes)
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3)  # off the curves
fig.suptitle("Embeddings of a held-out batch after each epoch: invariance alone collapses")
plt.show()

# %% [markdown]
# With the invariance term alone, the spread of the embeddings (left, a logarithmic axis) falls
# epoch after epoch, and the dimensions start to die (middle: after the fourth epoch 17 % have a
# standard deviation below 0.01): the encoder is on its way to mapping every image to the same
# point, as the playground's MLP did. With the full VICReg loss the spread stays
# near 0.5 (0.50 at the end, printed below: 28 times the invariance-only run's 0.018), still
# below the target $\gamma = 1$ (dashed) after only 60 steps, and no dimension dies.
# The assertions under the next cell check the two claims about the spread on your run.
#
# The right panel is a warning. The effective rank measures the *shape* of the cloud, not its
# size (chapter 0). As the invariance-only run collapses, its effective rank does not fall, it rises:
# what remains is a tiny jitter spread over many directions (in the table above the rank climbs
# from about 21 to 62 while the std falls about 24-fold). So **read complete collapse on the
# standard deviation**, never on the effective rank.

# %%
first, last = inv_epochs[0], inv_epochs[-1]
std_ratio = last["emb_std_mean"] / first["emb_std_mean"]
rank_ratio = last["emb_effective_rank"] / first["emb_effective_rank"]
print(f"invariance only, first -> last epoch: std x {std_ratio:.3f}, effective rank x {rank_ratio:.2f}")
print(f"last epoch, mean std: invariance only {last['emb_std_mean']:.4f}, "
      f"full VICReg {vicreg_epochs[-1]['emb_std_mean']:.4f}")
assert std_ratio < 0.5, "the invariance-only run should shrink its embeddings"
assert last["emb_std_mean"] < 0.5 * vicreg_epochs[-1]["emb_std_mean"]
assert rank_ratio > 2 * std_ratio, "the effective rank should fall much less than the std"

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the whole spectrum shrinks</b></summary>
#
# Another view of the same fact: the singular values of a batch of embeddings (centred), the
# spread along each principal direction. We embed 512 un-augmented test images with both final
# encoders and draw both spectra on one logarithmic axis, without normalising them.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
eval_data = load_eval_data(cfg_inv)
images = evaluate.normalize_uint8(eval_data.test_x[:512], eval_data.mean, eval_data.std)  # (512, 3, 32, 32)
with torch.no_grad():
    z_inv = result_inv.model(images)[1]  # forward returns (representation, embedding)
    z_vicreg = result_vicreg.model(images)[1]
fig, ax = plt.subplots(figsize=(9, 4), constrained_layout=True)  # colours as in the figure above
plots.plot_spectrum(z_inv, ax=ax, label="invariance only")
plots.plot_spectrum(z_vicreg, ax=ax, label="full VICReg",
              title="Singular values of 512 test embeddings (centred, not normalised)")
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small")  # beside the axes, off the curves
plt.show()

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the whole spectrum shrinks (reading the figure)</b></summary>
#
# The invariance-only spectrum (blue, as in the figure above) lies far below the VICReg one at *every* index: the cloud has
# shrunk in all directions at once, which is what complete collapse looks like on a spectrum.
# Its effective rank (dashed line) is nevertheless not small, for the reason given above: the
# effective rank only sees the shape of the spectrum, not its height.
#
# </details>

# %% [markdown]
# ## Complete and dimensional collapse
#
# The playground showed the two failure modes to tell apart:
#
# - **complete collapse** (the point, and the image run above): every embedding goes to the same
#   point; every dimension has (nearly) zero variance.
# - **dimensional collapse** (the line; [Jing et al., 2022](https://arxiv.org/abs/2110.09348)): the
#   embeddings stay spread out, but only along a few of the $d$ directions; the others are empty or
#   copies of the used ones. It wastes dimensions, and it happens even to methods that avoid
#   complete collapse, contrastive ones included.
#
# Each needs its own diagnostic: the standard deviation sees the first, a rank the second (a fold
# below checks it on synthetic batches).

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: which diagnostic sees which collapse</b></summary>
#
# The next cell builds one synthetic batch of each kind, plus a healthy one, and runs the
# collapse report on them.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
n, d = (256, 64) if FAST else (1024, 64)
examples = {
    "complete collapse": 3.0 + 1e-3 * torch.randn(n, d),  # one point plus a tiny jitter
    "dimensional collapse": torch.randn(n, 4) @ torch.randn(4, d),  # spread, but in 4 directions
    "healthy": torch.randn(n, d),
}
print(f"{'':>22}  mean std  dead fraction  effective rank  numerical rank")
for name, z in examples.items():
    r = diagnostics.collapse_report(z)
    print(f"{name:>22}  {r.std_mean:8.3f}  {r.dead_fraction:13.2f}  {r.effective_rank:14.1f}"
          f"  {r.numerical_rank:14d}")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: which diagnostic sees which collapse (reading the table)</b></summary>
#
# The standard deviation (and the dead fraction) catch complete collapse; the ranks do not,
# since the tiny jitter is spread over every direction. The ranks catch dimensional collapse
# (4 directions out of 64); the standard deviation does not. The variance term (chapter 3) keeps
# every dimension's standard deviation up; the covariance term (chapter 4) decorrelates the
# dimensions, which rules out copies such as the 64 mixtures of 4 directions above.
#
# </details>

# %% [markdown]
# ## The real-data check
#
# The short runs above show the geometry, not whether the full loss learns anything useful. The
# book's one baseline answers that: the demo preset trained at its full budget (10 epochs, 780
# steps) on four seeds, stored in `load_results("recipe_search")`, and scored by $k$-NN accuracy
# (see the [glossary](glossary.md)) on the 2000 test images, next to the same network at random
# initialisation:

# %%
preset_runs = sorted((r for r in load_results("recipe_search")["runs"]
                      if r["name"] == "nf-crop0.6-exp1024-512" and r["epochs"] == 10), key=lambda r: r["seed"])
knn = [r["knn"] for r in preset_runs]
knn_random = [r["knn_random_init"] for r in preset_runs]
print(f"demo preset, full budget, seeds {[r['seed'] for r in preset_runs]}: k-NN {min(knn):.3f} to {max(knn):.3f}; "
      f"random encoder {min(knn_random):.4f} to {max(knn_random):.4f}")
assert min(knn) > max(knn_random) + 0.5

# %% [markdown]
# The full loss's encoder classifies 84.6 to 86.1 % of the test images correctly (four seeds),
# against 11.15 to 12.15 % for a random encoder. Every later chapter cites this same baseline.

# %% [markdown]
# ## How contrastive methods avoid collapse
#
# Contrastive methods also push the embeddings of *different* images apart. In SimCLR's loss
# (NT-Xent) a view's partner is the right answer and the other $2n - 2$ views of the batch are
# **negatives**, so a constant encoder is no longer a minimum. That costs a $2n \times 2n$
# similarity matrix per batch, and many negatives, hence large batches.
#
# VICReg has **no explicit negative pairs**: no term asks an image to be far from a particular
# other one. Yet, as [chapter 0](00_introduction.ipynb) showed, $v$ and $c$ couple the images of
# a batch (keeping a dimension's variance up pushes images apart), through statistics whose
# memory grows about linearly with the batch size once $n \ge d$. The folds below write NT-Xent in code, measure both losses' memory, and read stored runs at
# three batch sizes.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: NT-Xent in a dozen lines</b></summary>
#
# Contrastive methods avoid collapse differently: besides pulling the two views of an image
# together, they push the embeddings of *different* images apart. SimCLR ([Chen et al., 2020](https://arxiv.org/abs/2002.05709))
# embeds the $2n$ views of a batch, normalises them to the unit sphere, and computes the cosine
# similarity of every pair, $\mathrm{sim}(u, v) = u^\top v / (\lVert u\rVert \lVert v\rVert)$.
# For a view $k$ whose partner (the other view of the same image) is $p(k)$, the loss is a
# softmax cross-entropy in which the partner is the correct class and the other $2n - 2$ views
# of the batch are the **negatives** (NT-Xent, an InfoNCE loss ([van den Oord et al., 2018](https://arxiv.org/abs/1807.03748)), with a
# temperature $\tau$):
#
# $$ \ell_k = -\log \frac{\exp\bigl(\mathrm{sim}(z_k, z_{p(k)}) / \tau\bigr)}
#    {\sum_{m \neq k} \exp\bigl(\mathrm{sim}(z_k, z_m) / \tau\bigr)}, \qquad
#    \mathcal{L} = \frac{1}{2n} \sum_{k=1}^{2n} \ell_k . $$
#
# A constant encoder makes all similarities equal: the partner is no more similar than any
# negative, and the loss is that of a uniform guess among the $2n - 1$ candidates. A dozen lines
# implement it:
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
def nt_xent(z_a, z_b, temperature=0.1):
    """SimCLR's NT-Xent loss: z_a, z_b (N, D) -> scalar; row i of z_a and of z_b are partners."""
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)  # (2N, D) on the unit sphere
    sim = z @ z.T / temperature  # (2N, 2N): every view against every view
    sim = sim.masked_fill(torch.eye(len(z), dtype=torch.bool), float("-inf"))  # not itself
    n = len(z_a)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])  # (2N,) index of the other view
    return F.cross_entropy(sim, partner)


z = torch.randn(n, d)
batches = {"collapsed": (torch.ones(n, d), torch.ones(n, d)),
           "random views": (z, torch.randn(n, d)),
           "good": (z, z + 0.1 * torch.randn(n, d))}
print(f"{'':>13}  invariance s   NT-Xent   (log(2n - 1) = {math.log(2 * n - 1):.3f})")
for name, (za, zb) in batches.items():
    print(f"{name:>13}  {invariance_loss(za, zb).item():12.3f}  {nt_xent(za, zb).item():8.3f}")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: NT-Xent in a dozen lines (reading the output)</b></summary>
#
# The invariance term scores the collapsed batch as perfect ($s = 0$); NT-Xent scores it
# $\log(2n - 1)$, the loss of a blind guess, in the same range as a batch whose views are
# unrelated. Only the good batch is good for both. That is what the negatives buy: collapse is no
# longer a minimum.
#
# </details>

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: what negatives cost in memory</b></summary>
#
# Two things.
#
# 1. **A $2n \times 2n$ matrix.** Every view is compared with every other view: the similarity
#    matrix has $(2n)^2$ entries, and autograd keeps it (and its softmax) for the backward pass.
#    Memory and compute grow with the square of the batch size.
# 2. **Large batches.** The negatives are the rest of the batch. With few of them the task is
#    easy and the signal is weak; InfoNCE can certify at most $\log(2n - 1)$ nats of mutual
#    information between the views ([van den Oord et al., 2018](https://arxiv.org/abs/1807.03748)). SimCLR's accuracy improves with the batch
#    size, and its default batch of 4096 images is trained on a pod of TPU cores
#    ([Chen et al., 2020](https://arxiv.org/abs/2002.05709)). Contrastive methods "tend to be costly, require large batch sizes or
#    memory banks" ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)).
#
# VICReg has no explicit negative pairs. Its statistics (a variance per dimension, a
# $d \times d$ covariance matrix) couple the images of the batch, but they are averages over it,
# so their cost grows *linearly* with $n$. Its quadratic cost is in the embedding width $d$ instead: the
# covariance matrix is $d \times d$ (the library switches to the $n \times n$ Gram matrix when
# $n < d$, whichever is smaller). The next cell measures the memory that autograd saves for the
# backward pass of each loss, for our $d = 512$ embeddings.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
def saved_for_backward_mib(loss_fn, n, d):
    """MiB of tensors autograd keeps for the backward pass of loss_fn on two (n, d) batches."""
    z_a, z_b = torch.randn(n, d, requires_grad=True), torch.randn(n, d, requires_grad=True)
    saved = {}

    def pack(t):
        saved[(t.data_ptr(), t.dtype, tuple(t.shape))] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_fn(z_a, z_b)
    return sum(saved.values()) / 2**20


batch_sizes = [64, 128, 256, 512, 1024] + ([] if FAST else [2048])
memory = {"NT-Xent (SimCLR)": [saved_for_backward_mib(nt_xent, n, 512) for n in batch_sizes],
          "VICReg": [saved_for_backward_mib(lambda a, b: vicreg_loss(a, b).loss, n, 512)
                     for n in batch_sizes]}
print("batch n   " + "   ".join(f"{name} (MiB)" for name in memory))
for i, n in enumerate(batch_sizes):
    print(f"{n:>7}   " + "   ".join(f"{values[i]:>{len(name) + 6}.1f}" for name, values in memory.items()))

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
fig, ax = plt.subplots(figsize=(6.5, 4))
for name, values in memory.items():
    ax.plot(batch_sizes, values, marker="o", label=f"{name}: measured")
ns = torch.tensor([64.0, 8192.0])
ax.plot(ns, (2 * ns) ** 2 * 4 / 2**20, "k:", label="one $(2n)^2$ float32 matrix")
ax.set(xscale="log", yscale="log", xlabel="batch size n (images, two views each)",
       ylabel="memory saved for backward (MiB)",
       title="Loss memory vs batch size (embedding width d = 512)")
ax.legend(fontsize="small")
plt.show()

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: what negatives cost in memory (reading the figure)</b></summary>
#
# On log-log axes a straight line's slope is the exponent. The NT-Xent memory bends up towards
# the slope of the $(2n)^2$ line (slope 2, where doubling the batch quadruples the memory) without
# reaching it in this range: from 512 to 1024 to 2048 images it grows $\times 2.8$, then
# $\times 3.1$ (13.0, 36.0, 112.0 MiB in the table), as the similarity matrices take over from
# the embeddings. VICReg's memory grows too, and not linearly at first: $\times 2.2$ to
# $\times 2.4$ per doubling up to $n = d = 512$ (0.5 to 6.0 MiB), then $\times 1.7$ and
# $\times 1.8$ once $n > d$, where the embeddings themselves dominate (a slope a little under 1).
# It stays below NT-Xent's at every batch size, six times below at 2048 (18.0 against 112.0
# MiB). The dotted line extrapolates one similarity matrix alone to SimCLR's batch of 4096:
# $8192^2 \times 4$ bytes $= 256$ MiB.
#
# To be fair to SimCLR: at the paper's sizes, VICReg's $8192 \times 8192$ covariance matrix is
# the same 256 MiB, and for either method the encoder's activations for the whole batch cost far
# more than the loss. The real difference is in the design: VICReg's loss has no explicit negatives, so
# nothing in it needs thousands of other images in every batch. Whether its *accuracy* depends
# on the batch size is an empirical question.
#
# </details>

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: does VICReg need a large batch?</b></summary>
#
# That question deserves a measurement rather than an argument, and the measurement needs runs
# that learn: the short runs above are far too short to learn the classes. So we read stored
# runs made for it with `scripts/recipe_search.py` (`load_results("recipe_search")`, stage
# `batch_size`; chapter 5 has the search that chose the preset): the demo preset's recipe, its
# loss, views, expander and schedule, trained for the full demo budget of 10 epochs on the
# 10 000 Shapes training images at batch 64, 128 (the preset's) and 256, with seeds 0 and 1. At
# equal epochs every run sees the same images, so batch 64 takes four times as many steps as
# batch 256, each a quarter as large: the learning rate follows the library's linear rule,
# `base_lr * batch_size / 256`. Each run is scored by the $k$-NN accuracy of its trained backbone
# on the 2000 test images (chapter 5 explains the evaluation), next to the same network at random
# initialisation with the same seed.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
search = load_results("recipe_search")
batch_runs = sorted((r for r in search["runs"] if r["stage"] == "batch_size" and r["epochs"] == 10),
                    key=lambda r: (r["recipe"]["batch_size"], r["seed"]))
random_knn = [r["knn_random_init"] for r in batch_runs]
print(f"{'batch':>5} {'seed':>4} {'steps':>5} {'lr':>8} {'k-NN trained':>12} {'k-NN random init':>16} {'mean std':>8}")
for r in batch_runs:
    b = r["recipe"]["batch_size"]
    print(f"{b:>5} {r['seed']:>4} {r['curve'][-1][0]:>5} {get_config('demo', batch_size=b).lr:>8.5f} "
          f"{r['knn']:>12.4f} {r['knn_random_init']:>16.4f} {r['emb_std_mean']:>8.2f}")
print(f"random encoder (k-NN): {min(random_knn):.4f} to {max(random_knn):.4f} over these runs")
long_256 = sorted((r for r in search["runs"] if r["stage"] == "batch_size" and r["epochs"] == 40), key=lambda r: r["seed"])
for r in long_256:  # the control: batch 256 given as many steps as batch 64 (40 epochs)
    print(f"batch 256 for 40 epochs, seed {r['seed']}: {r['curve'][-1][0]} steps, k-NN {r['knn']:.4f} "
          f"(random init {r['knn_random_init']:.4f}), mean std {r['emb_std_mean']:.2f}")

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
sizes = sorted({r["recipe"]["batch_size"] for r in batch_runs})
fig, (ax_knn, ax_std) = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
ax_knn.axhspan(min(random_knn), max(random_knn), color="0.5", alpha=0.5, label="random encoder (seed band)")
ax_std.axhline(1.0, color="0.5", ls="--", label=r"target std $\gamma = 1$")
for seed, marker in zip((0, 1), "os"):
    runs_s = [r for r in batch_runs if r["seed"] == seed]
    x = [r["recipe"]["batch_size"] * (1 + 0.03 * (2 * seed - 1)) for r in runs_s]  # seeds side by side
    ax_knn.plot(x, [r["knn"] for r in runs_s], marker=marker, lw=1, markersize=8, color=f"C{seed}", label=f"seed {seed}")
    ax_std.plot(x, [r["emb_std_mean"] for r in runs_s], marker=marker, lw=1, markersize=8, color=f"C{seed}",
                label=f"seed {seed}")
for seed, r in enumerate(long_256):  # hollow: batch 256 for 40 epochs (as many steps as batch 64's 10)
    for ax, key in ((ax_knn, "knn"), (ax_std, "emb_std_mean")):
        ax.plot(256 * (1 + 0.03 * (2 * r["seed"] - 1)), r[key], marker="os"[r["seed"]], markersize=9, ls="none",
                mfc="none", color=f"C{r['seed']}", label=f"seed {r['seed']}, 40 epochs (1560 steps)")
for ax in (ax_knn, ax_std):
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{b}\n({r['curve'][-1][0]} steps)" for b, r in zip(sizes, batch_runs[::2])])
    ax.minorticks_off()
    ax.set_xlabel("batch size (images; log scale; filled: 10 epochs, hollow: 40)")
    ax.legend(loc="center left" if ax is ax_knn else "lower left", fontsize="small")
ax_knn.set(ylim=(0, 1), ylabel="k-NN accuracy on the test images", title="k-NN accuracy against chance")
ax_std.set(ylim=(0, 1.1), ylabel="mean std of the embedding's dimensions",
           title="How far the embedding spread out")
fig.suptitle("VICReg's demo recipe at three batch sizes, two seeds each (stored runs)")
plt.show()

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: does VICReg need a large batch? (reading the runs)</b></summary>
#
# Five of the six 10-epoch runs learn: they score 0.54 to 0.87 against 0.1125 to 0.1140 for the
# random encoders (the gray band). Batch 64 and batch 128 are the same within seeds (0.8580 /
# 0.8585 against 0.8535 / 0.8680; the batch-128 runs are this study's own: the preset's stored runs
# of the same recipe and seeds gave 0.8530 / 0.8605, so repeats of one seed here differ by up to
# 0.0075, less than the seed band): halving the preset's batch to 64 images, eight times fewer
# than the embedding's $d = 512$ dimensions, cost nothing these two seeds can see. At batch 256
# the two runs went wrong, and not in the direction a contrastive method would suggest: seed 0 reaches
# only 0.5425 and seed 1 stays at chance (0.1155), its embedding never spread out (right panel:
# mean std 0.44, against 0.94-0.95 at batch 128). At an equal budget of epochs a batch of 256 gets
# only 390 steps against 1560 at batch 64. Given those 1560 steps (40 epochs, the hollow markers),
# both seeds improve, but very unequally: seed 0 reaches 0.9400, the best run of all (it also saw
# four times as many images as batch 64's), and seed 1 only 0.4410. These are observations of two
# seeds per batch size, and batch size, learning rate (the linear rule gives batch 256 0.015,
# twice the preset's) and number of steps change together, so they do not rank the batch sizes.
# What they do show: on Shapes, at the demo's budget, VICReg learned at batches of 64 and 128
# images, eight and four times fewer than its $d = 512$ dimensions: these runs did not need a
# large batch.
#
# The paper trains at batch 2048 and gives base learning rates for smaller batches in its
# appendix C.4 (0.8 at 128, 0.5 at 256, 0.4 at 512, on ImageNet): a small batch there is a
# matter of retuning the learning rate, not of changing the method.
#
# </details>

# %% [markdown]
# > **Takeaways**
# >
# > - "Make the two views agree" alone has a trivial minimum: trained with $s$ alone, the
# >   embedding's spread goes to zero (**collapse**), in the playground on three of three seeds and
# >   on images. Read it on the standard deviation, not on the scale-free effective rank.
# > - With $v$ but no $c$ the coordinates copy one direction (**dimensional collapse**, a line);
# >   with $c$ too the embedding fills the plane.
# > - Contrastive methods avoid collapse with explicit negative pairs; VICReg has none, but $v$ and
# >   $c$ couple the images of a batch.
# > - The baseline, the demo preset at its full budget, learns: $k$-NN 0.846 to 0.861 (four seeds)
# >   against 0.1115 to 0.1215 for a random encoder.

# %% [markdown]
# ## Exercise: predict, then run
#
# **Does the covariance term slow collapse down?** Take the playground's invariance-only run
# ($\lambda = 25$, $\mu = \nu = 0$) and add the covariance term alone: $\nu = 1$, still $\mu = 0$.
# Both runs start from the same network, data and views. Before running anything, predict how the
# embedding's standard deviation after 50 steps compares with the invariance-only run's, and write
# it in `my_prediction`: `"slower"` (the run with $c$ keeps more than twice the spread), `"faster"`
# (less than half) or `"same"` (within a factor of 2). The hidden cell trains both for 50 steps
# on five seeds not used above (3 to 7) and checks your prediction against the geometric mean of
# the five ratios.

# %%
my_prediction = None  # replace None with "slower", "faster" or "same"

# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
# Answer: "same". c is a sum of squared covariances, so it scales like the 4th power of the spread,
# and its gradient like the 3rd: at step 1 the spread is already about 0.1 (printed below), so nu c
# is some 10^4 times smaller than at std 1 and pulls almost nothing. s drives the run alone, with
# or without c: both collapse at the same pace. The check compares the std at step 50, while both
# runs are still shrinking (by step 100 they reach a floor near 0.001 where noise sets the ratio).
def verdict(ratio):
    return "slower" if ratio > 2 else "faster" if ratio < 0.5 else "same"


ratios = []
for seed in (3, 4, 5, 6, 7):
    s_only, s_c = (playground.train(lambda_=25.0, mu=0.0, nu=nu, steps=50, seed=seed).history for nu in (0.0, 1.0))
    ratios.append(s_c[-1]["std"] / s_only[-1]["std"])
    print(f"seed {seed}: std at step 1 {s_only[0]['std']:.3f}; at step 50, s alone {s_only[-1]['std']:.4f}, "
          f"s + c {s_c[-1]['std']:.4f} (ratio {ratios[-1]:.2f})")
geometric_mean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
measured = verdict(geometric_mean)
assert measured == "same" and all(verdict(r) == "same" for r in ratios), f"expected the same pace, got {ratios}"
if my_prediction is None:
    print("my_prediction: not answered yet (replace None above, then run this cell again)")
else:
    assert my_prediction == measured, f"my_prediction {my_prediction!r} is wrong: the ratios are {ratios}"
    print(f"my_prediction {my_prediction!r}: right")
print(f"Solution: {measured}; adding c multiplies the std after 50 steps by {geometric_mean:.2f} (geometric mean; "
      f"per seed {min(ratios):.2f} to {max(ratios):.2f}): c shrinks like the 4th power of the spread, "
      "so only the variance term can hold it up")
