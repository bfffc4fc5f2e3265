# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10. Where VICReg sits now
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vicreg-edu/vicreg-edu/blob/main/book/10_where_next.ipynb)
#
# VICReg ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)) was published in 2022. This chapter places it among the methods
# that came before and after it: one sentence each on what they keep from VICReg and what they
# change, then one of them, a SIGReg-style regulariser ([Balestriero and LeCun, 2025](https://arxiv.org/abs/2511.08544)), written in
# a few lines and trained on Shapes next to VICReg.

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

from vicreg_edu import (
    FAST, TwoViewBatchAugment, build_model, covariance_loss, extract_features, get_config,
    invariance_loss, knn_accuracy, load_dataset, make_augment_config, variance_loss, vicreg_loss)
from vicreg_edu import data, diagnostics, optim

torch.manual_seed(0)
print("fast mode:", FAST)

# %% [markdown]
# ## The family, one sentence each
#
# | method | what it keeps from VICReg | what it changes |
# |---|---|---|
# | **Barlow Twins** ([Zbontar et al., 2021](https://arxiv.org/abs/2103.03230)) (2021, the predecessor) | two views, a wide expander, decorrelated dimensions, no negatives | one term on the *cross*-correlation matrix of the two branches, pushed to the identity, on standardised embeddings (chapter 4 compares the two) |
# | **VICRegL** ([Bardes et al., 2022](https://arxiv.org/abs/2210.01571)) (NeurIPS 2022) | the VICReg criterion itself | applies it twice: to the global vectors and to *local* feature vectors taken before the last pooling, matched across views by location and by distance, for detection and segmentation |
# | **The duality** ([Garrido et al., ICLR 2023](https://arxiv.org/abs/2206.02574)) | the covariance criterion | shows it is dual to a sample-contrastive one through the Gram identity of chapter 4, and that a tuned SimCLR can match VICReg |
# | **RankMe** ([Garrido et al., ICML 2023](https://arxiv.org/abs/2210.02885)) | VICReg's view that a good embedding spreads over many directions | turns the effective rank (chapter 6) into a label-free score for choosing hyper-parameters and checkpoints |
# | **LiDAR** ([Thilak and others, 2024](https://arxiv.org/abs/2312.04000)) (ICLR 2024) | the same goal, label-free model selection | replaces the plain effective rank by the rank of a discriminant (LDA-style) matrix that compares the spread between images with the spread between views of one image |
# | **I-JEPA** ([Assran et al., 2023](https://arxiv.org/abs/2301.08243)) (CVPR 2023) | a joint-embedding architecture that compares embeddings, never pixels | predicts the embeddings of masked image blocks from a visible context block instead of matching two augmented views, and avoids collapse with a moving-average target encoder instead of variance and covariance terms |
# | **DINOv2** ([Oquab et al., 2024](https://arxiv.org/abs/2304.07193)) / **DINOv3** ([Siméoni et al., 2025](https://arxiv.org/abs/2508.10104)) (2024, 2025) | two views of one image, embeddings that must agree | self-distillation from a moving-average teacher at very large scale; DINOv3 adds *Gram anchoring*, a loss that keeps the Gram matrix of patch features close to that of an earlier teacher so that dense features do not degrade in long runs |
# | **LeJEPA / SIGReg** ([Balestriero and LeCun, 2025](https://arxiv.org/abs/2511.08544)) (Nov 2025) | an explicit regulariser on the statistics of a batch of embeddings, no stop-gradient, no teacher | asks for the whole distribution to be an isotropic Gaussian, not only its first two moments: random 1-D projections of the embeddings, each tested against $N(0, 1)$ with the Epps-Pulley characteristic-function statistic; one trade-off hyper-parameter |
# | **VISReg** ([Wu et al., 2026](https://arxiv.org/abs/2606.02572)) (2026) | VICReg's split into a *scale* term on each dimension's standard deviation and a *shape* term | three regularisation terms instead of two (as lightly's `visreg_loss.py` implements them), next to LeJEPA's multi-view invariance: a variance (*scale*) term, a two-sided $(1 - \sigma_j)^2$ rather than a hinge; in place of the covariance term a sliced-Wasserstein (*shape*) term, sorted random projections of the standardised embeddings (their std detached) matched to Gaussian quantiles; and a third, *centre* term that pulls every dimension's batch mean to 0 |
#
# Read down the last column and two lines of descent appear. One keeps VICReg's idea of an
# explicit regulariser on the batch and makes it stronger (SIGReg, VISReg: match a whole
# distribution, not only a covariance matrix); the other measures what VICReg's terms aim for
# (RankMe, LiDAR: is the embedding spread over many useful directions?) and uses it without
# labels.

# %% [markdown]
# ## VICReg's target is two moments; SIGReg's is the whole distribution
#
# VICReg asks for a covariance matrix close to $\gamma^2 I$: per-dimension spread (the variance
# term) and no correlation between dimensions (the covariance term). That is a statement about
# *second moments* only. SIGReg asks for more: that the embeddings look like samples of an
# isotropic Gaussian $N(0, I)$. Testing that in $d$ dimensions directly is hopeless, but by the
# Cramér-Wold theorem a distribution is fixed by all its 1-D projections, so SIGReg draws random
# unit directions $a$, projects the batch onto each, and compares the empirical characteristic
# function of the projections, $\hat\varphi(t) = \frac{1}{n}\sum_i e^{\mathrm{i} t\, a^\top z_i}$,
# with the Gaussian's, $e^{-t^2/2}$ (the Epps-Pulley statistic):
#
# $$ \mathrm{SIGReg}(Z) = \frac{1}{|A|} \sum_{a \in A} n \int \bigl|\hat\varphi_a(t) - e^{-t^2/2}\bigr|^2\, e^{-t^2/2}\, dt . $$
#
# In a few lines (after the LeJEPA paper's algorithm and lightly's `SIGReg`): the integral runs
# over $t \in [-3, 3]$, computed as twice the trapezoid rule on $[0, 3]$, since the integrand is
# even in $t$ (the characteristic function at $-t$ is the complex conjugate of the one at $t$):

# %%
def sigreg(z, num_slices=256, knots=17, t_max=3.0, generator=None):
    """SIGReg-style Epps-Pulley statistic of embeddings z (N, D) against N(0, I) (0-dim tensor)."""
    n, d = z.shape
    a = torch.randn(d, num_slices, generator=generator)
    a = a / a.norm(dim=0)  # (D, S) random unit directions
    t = torch.linspace(0, t_max, knots)  # (T,) frequencies
    gauss = torch.exp(-t**2 / 2)  # characteristic function of N(0, 1)
    zt = (z @ a).unsqueeze(-1) * t  # (N, S, T): t * <a, z_i>
    err = (zt.cos().mean(0) - gauss).square() + zt.sin().mean(0).square()  # (S, T)
    w = torch.full((knots,), t_max / (knots - 1))  # trapezoid on [0, t_max], doubled: [-t_max, t_max]
    w[1:-1] *= 2
    return n * (err @ (w * gauss)).mean()


# %% [markdown]
# Four batches of $n = 512$ embeddings in $d = 64$ dimensions make the difference visible: a
# standard Gaussian (the target of both); a *scale mixture*, Gaussian directions with a random
# overall size per embedding (0.3 or $\sqrt{2 - 0.3^2}$, so every dimension still has unit
# variance and no correlation with the others: VICReg's variance and covariance terms treat it
# like the Gaussian, yet its dimensions are far from independent); a *redundant* batch (one
# number copied into every dimension: dimensional collapse); and a *collapsed* one.

# %%
n, d = 512, 64
g = torch.Generator().manual_seed(0)
batches = {
    "Gaussian N(0, I)": torch.randn(n, d, generator=g),
    "scale mixture, std 1": torch.randn(n, d, generator=g)
    * torch.where(torch.rand(n, 1, generator=g) < 0.5, 0.3, math.sqrt(2 - 0.3**2)),
    "redundant (one copied number)": torch.randn(n, 1, generator=g).expand(n, d),
    "collapsed (one point)": torch.zeros(n, d) + 1e-3 * torch.randn(n, d, generator=g),
}
scores = {}
for name, z in batches.items():
    scores[name] = (variance_loss(z).item(), covariance_loss(z).item(),
                    sigreg(z, generator=torch.Generator().manual_seed(1)).item())
print(f"{'':>30} {'v(Z)':>7} {'c(Z)':>9} {'SIGReg':>9}   (one batch: v and c of a single branch)")
for name, (v, c, sg) in scores.items():
    print(f"{name:>30} {v:>7.3f} {c:>9.3f} {sg:>9.3f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
for ax, (k, label) in zip(axes, enumerate(["variance term v", "covariance term c", "SIGReg statistic"])):
    values = [sc[k] for sc in scores.values()]
    bars = ax.barh(list(scores), values, color=f"C{k}")
    ax.bar_label(bars, labels=[f"{x:.3g}" for x in values], padding=3, fontsize=9)
    ax.set_xlim(0, 1.3 * max(values))  # linear axis, each panel on its own scale; the labels give the values
    ax.set(xlabel=f"{label} (linear scale)", title=label)
    if k:
        ax.set_yticklabels([])
axes[0].set_ylabel("batch of embeddings (n = 512, d = 64)")
fig.suptitle("What each regulariser sees: VICReg's two moments vs SIGReg's whole distribution")
plt.show()

# %% [markdown]
# Read the rows (here $v$ and $c$ are those of a single batch, $v(Z)$ and $c(Z)$, not the
# trainer's two-branch average and sum). Both regularisers reject the collapsed batch ($v$ near
# its maximum $\gamma - \sqrt{\epsilon}$, SIGReg at its largest) and the redundant one ($c$ and
# SIGReg large). The scale mixture separates them: its $v$ is as small as the Gaussian's and its
# $c$, about twice the Gaussian's sampling floor $(d-1)/(n-1) \approx 0.12$, is tiny next to the
# redundant batch's, so VICReg's regularisers have little to say against it; SIGReg scores it more
# than ten times the Gaussian, because every 1-D projection of it is heavy-tailed. (No finite
# batch scores 0: the Gaussian's value of about 1 is sampling noise of 512 points.) Each panel has
# its own linear axis and every bar is labelled with its value: in the $v$ and $c$ panels the
# Gaussian and the scale mixture are both near zero, side by side; only the SIGReg panel puts
# the scale mixture (15.7) far from the Gaussian (1.07).

# %% [markdown]
# ## Trained side by side on Shapes
#
# A small version of the comparison: the demo model trained for the same number of steps with
# the same optimiser and schedule (the demo preset's AdamW, learning rate and batch of 128; a
# linear warm-up over the first third of the steps, then the preset's cosine down to 0.75 times
# the peak, as the trainer does in fast mode), once with the VICReg loss (the preset's
# coefficients) and once with a LeJEPA-style loss, the squared
# distance between the two views pulled towards their mean plus SIGReg on each view,
# $(1 - \lambda)\, s/4 + \lambda\, [\mathrm{SIGReg}(Z) + \mathrm{SIGReg}(Z')]/2$ with LeJEPA's
# default $\lambda = 0.05$. (LeJEPA proper uses many views per image and a ViT; this keeps the book's
# two views and small CNN, so the comparison is of the regularisers, not of the papers' results.)
# After training we embed the test images with the backbone and run the book's $k$-NN evaluation.

# %%
cfg = get_config("demo")
train_x, train_y = data.in_memory_uint8(load_dataset("shapes", split="train"))
test_x, test_y = data.in_memory_uint8(load_dataset("shapes", split="test"))
augment_cfg = make_augment_config(cfg)


def two_view_loss(kind, z_a, z_b, generator):
    """The VICReg loss, or LeJEPA-style (1 - 0.05) s/4 + 0.05 SIGReg on each view."""
    if kind == "VICReg":  # with the demo preset's coefficients
        return vicreg_loss(z_a, z_b, cfg.sim_coeff, cfg.std_coeff, cfg.cov_coeff).loss
    regulariser = (sigreg(z_a, generator=generator) + sigreg(z_b, generator=generator)) / 2
    return 0.95 * invariance_loss(z_a, z_b) / 4 + 0.05 * regulariser


def train_with(kind, steps, seed=0):
    """A plain training loop of the demo model (the preset's AdamW, batch size and schedule), one of the two losses."""
    torch.manual_seed(seed)
    model, augment = build_model(cfg), TwoViewBatchAugment(augment_cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        for group in optimizer.param_groups:  # warm-up over steps // 3, then cosine to end_lr_ratio x peak
            group["lr"] = optim.learning_rate(step, steps, steps // 3, cfg.lr, cfg.end_lr_ratio)
        view_a, view_b = augment(train_x[torch.randint(len(train_x), (cfg.batch_size,), generator=g)], generator=g)
        loss = two_view_loss(kind, model(view_a)[1], model(view_b)[1], g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


steps = 30 if FAST else 234  # full size: 3 epochs of the 10 000 images, as the trainer's fast mode
models = {kind: train_with(kind, steps) for kind in ("VICReg", "SIGReg (LeJEPA-style)")}

# %%
bank = 2000 if FAST else 5000  # training images in the k-NN memory bank
results = {}
for name, model in {"random init": build_model(cfg).eval(), **models}.items():
    f_train = extract_features(model.backbone, train_x[:bank], augment_cfg.mean, augment_cfg.std)
    f_test = extract_features(model.backbone, test_x, augment_cfg.mean, augment_cfg.std)
    z_test = extract_features(lambda x: model(x)[1], test_x, augment_cfg.mean, augment_cfg.std)
    report = diagnostics.collapse_report(z_test)
    results[name] = (knn_accuracy(f_train, train_y[:bank], f_test, test_y), report.std_mean,
                     report.effective_rank)
print(f"{steps} steps of {cfg.batch_size} images each")
print(f"{'':>22} {'k-NN':>6} {'embedding std':>14} {'effective rank':>15}")
for name, (acc, std_mean, rank) in results.items():
    print(f"{name:>22} {acc:>6.3f} {std_mean:>14.3f} {rank:>15.1f}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
ax.bar(list(results), [r[0] for r in results.values()], color=["0.6", "C0", "C1"])
ax.axhline(0.1, color="0.3", linestyle=":", label="chance (10 classes)")
ax.set(xlabel="backbone (trained with)", ylabel="k-NN accuracy on the test images", ylim=(0, 1),
       title=f"Shapes, demo model, {steps} steps: VICReg vs a SIGReg-style loss")
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# Compare each trained row of the table with the random-init row (whose embedding spread is tiny
# because, in evaluation mode, a fresh network's BatchNorm layers use their initial running
# statistics, mean 0 and variance 1, instead of normalising the batch). Both losses keep the
# embeddings spread out (std 0.77 for VICReg, 1.01 for the SIGReg-style loss, in the table),
# VICReg's through its variance hinge, SIGReg's through the Gaussian target, which asks every
# projection for unit variance. With the same 234 steps (3 epochs of the 10 000 training images,
# the length of the trainer's fast mode), the VICReg backbone gives the right label to 0.436 of
# the test images, more than four times chance and far above the random network's 0.115; the SIGReg-style
# backbone reaches 0.155, four points above the random network (the standard error of an accuracy
# measured on 2000 test images is about 0.01 at these values) and above the band of random
# encoders of this architecture over four seeds in chapter 5's recipe search (0.1115 to 0.1215,
# with the whole training set as the memory bank), but far below VICReg's. The VICReg embedding keeps more
# directions than the random network's (effective rank 81 against 74), the SIGReg-style one
# fewer (48). Chapter 5 trains the demo recipe in full, for 780 steps (0.85 by the book's $k$-NN
# with all 10 000 training images as the memory bank).
# LeJEPA's $\lambda = 0.05$ puts little weight on the regulariser and was tuned for many views,
# a ViT and long schedules, not for two views of a small CNN over 234 steps, so this compares the
# two regularisers at equal, small cost on Shapes with VICReg's tuned coefficients; it is not a
# verdict on the methods. Published numbers at a larger scale go the other way. In
# stable-pretraining's benchmark on Imagenette (ImageNet's 10-class subset; a ViT-S/16 trained for
# 200 epochs, each method with its paper's recipe scaled to the batch: LeJEPA with 8 views, VICReg
# with 2), LeJEPA reaches 87.1% linear top-1 (85.4% with a 20-NN) against VICReg's 79.4% (75.0%)
# ([Balestriero et al., 2026](https://github.com/galilai-group/stable-pretraining/blob/main/benchmarks/imagenet10/RESULTS.md)).
# That benchmark differs from this cell in the data, the encoder, the number of views and the
# budget, so the two do not contradict each other: ours says only that on Shapes, with two views
# of a small CNN and 234 steps, VICReg's loss reached the higher $k$-NN.

# %% [markdown]
# ## Exercise
#
# **Where SIGReg differs from VICReg.** Write a function `my_batch(n, d, generator)` that returns
# an $(n, d)$ batch of embeddings that VICReg's regularisers accept, variance term $v(Z) < 0.1$
# and covariance term $c(Z)$ below five times a Gaussian's sampling floor, $c(Z) < 5(d-1)/(n-1)$
# (a standard Gaussian batch has about 0.01 and the floor, 0.12 at $n = 512$, $d = 64$), but
# that SIGReg rejects: statistic above 10 (the Gaussian scores about 1). One more condition rules
# out the scale mixture above: **every coordinate must be standard Gaussian on its own**
# (measured by the coordinates' mean kurtosis, which must be within 1 of a Gaussian's 3; the
# scale mixture's is about 5.4). Beware: independent non-Gaussian coordinates do not work
# either, because a random 1-D projection sums 64 of them and the central limit theorem makes
# the sum look Gaussian. Make the coordinates Gaussian and uncorrelated, but *dependent*. Draw
# every random number from `generator`: the check calls your function on fresh generators and at
# two sizes, $(512, 64)$ and $(1024, 32)$. Replace the `return None`, then run the hidden check
# (it says "not answered yet" while your function returns `None`).

# %%
def my_batch(n, d, generator):
    """An (n, d) batch: Gaussian, uncorrelated coordinates that are not jointly Gaussian."""
    return None  # replace with your construction


# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
# Answer: one Gaussian number per embedding times independent random signs, z_ij = x_i * e_ij.
# Each coordinate is exactly N(0, 1) and uncorrelated with the others (E[x^2 e_ij e_ik] = 0), but
# all coordinates of an embedding share |x_i|: a projection is x_i times a nearly Gaussian sum,
# a product of two Gaussians, heavy-tailed.
def solution_batch(n, d, generator):
    x = torch.randn(n, 1, generator=generator)
    signs = torch.randint(0, 2, (n, d), generator=generator) * 2.0 - 1.0
    return x * signs


def kurtosis(z):
    """Mean over the coordinates of E[(z - mean)^4] / Var^2 (3 for a Gaussian)."""
    z = z - z.mean(0)
    return ((z**4).mean(0) / (z**2).mean(0) ** 2).mean().item()


def check(z):
    """(v, c, SIGReg, kurtosis) of z and whether v < 0.1, c < 5 x floor, SIGReg > 10 and |kurtosis - 3| < 1."""
    n, d = z.shape
    v, c = variance_loss(z).item(), covariance_loss(z).item()
    sg = sigreg(z, generator=torch.Generator().manual_seed(1)).item()
    kurt = kurtosis(z)
    return (v, c, sg, kurt), v < 0.1 and c < 5 * (d - 1) / (n - 1) and sg > 10 and abs(kurt - 3) < 1


fresh = [(512, 64, 11), (1024, 32, 12)]  # sizes and generator seeds the chapter has not used
for n_, d_, seed in fresh:
    values, ok = check(solution_batch(n_, d_, torch.Generator().manual_seed(seed)))
    assert ok, f"the worked solution should pass at ({n_}, {d_}): v, c, SIGReg, kurtosis = {values}"
mixture, ok = check(batches["scale mixture, std 1"])
assert not ok, "the scale mixture of the chapter must not pass"
if my_batch(512, 64, torch.Generator().manual_seed(0)) is None:
    print("my_batch: not answered yet (write the function above, then run this cell again)")
else:
    for n_, d_, seed in fresh:
        z = torch.as_tensor(my_batch(n_, d_, torch.Generator().manual_seed(seed))).float()
        assert tuple(z.shape) == (n_, d_), f"my_batch({n_}, {d_}) has shape {tuple(z.shape)}"
        mine, ok = check(z)
        assert ok, (f"my_batch({n_}, {d_}) is wrong: v = {mine[0]:.3f}, c = {mine[1]:.3f} (limit "
                    f"{5 * (d_ - 1) / (n_ - 1):.3f}), SIGReg = {mine[2]:.1f}, kurtosis = {mine[3]:.2f}")
    print(f"my_batch: right (at (1024, 32): v = {mine[0]:.3f}, c = {mine[1]:.3f}, SIGReg = {mine[2]:.1f}, "
          f"kurtosis {mine[3]:.2f})")
print(f"the chapter's scale mixture fails: kurtosis {mixture[3]:.2f}")
print(f"Solution: z_ij = x_i * (random sign); at (1024, 32): v = {values[0]:.3f}, c = {values[1]:.3f}, "
      f"SIGReg = {values[2]:.1f}, kurtosis {values[3]:.2f}")
