# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Variance (v)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vicreg-edu/vicreg-edu/blob/main/book/03_variance.ipynb)
#
# **The question.** Chapters 1 and 2 trained with the invariance term alone and watched the
# embeddings collapse to a point. What is the least we must add to forbid that? VICReg
# ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)) adds a hinge on the **standard
# deviation** of every embedding dimension. This chapter writes the term down, shows why the hinge
# is on the standard deviation, and trains with invariance + variance only, in the playground
# and on images. The embeddings no longer collapse to a point, but they
# still collapse onto one direction: *dimensional collapse*, which chapter 4's covariance term
# removes.

# %%
try:
    import vicreg_edu
except ImportError:  # Colab: install the library from the repository, once
    import subprocess, sys
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vicreg-edu @ git+https://github.com/vicreg-edu/vicreg-edu"], check=True)
    import vicreg_edu

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from vicreg_edu import data, diagnostics, playground, plots
from vicreg_edu import (
    FAST, TwoViewBatchAugment, build_model, extract_features, get_config, invariance_loss, load_dataset,
    load_eval_data, load_results, make_augment_config, train, variance_loss, vicreg_loss)

torch.manual_seed(0)
print("fast mode:", FAST)

# %% [markdown]
# ## The term
#
# Take a batch of $n$ embeddings $Z \in \mathbb{R}^{n \times d}$ and write $z^j$ for its $j$-th
# column: the values of dimension $j$ over the batch. The variance term is a hinge on the
# standard deviation of each column (paper Eq. 1 and 2):
#
# $$ v(Z) = \frac{1}{d} \sum_{j=1}^{d} \max\bigl(0,\ \gamma - S(z^j, \epsilon)\bigr),
#    \qquad S(x, \epsilon) = \sqrt{\operatorname{Var}(x) + \epsilon}, $$
#
# with the unbiased variance $\operatorname{Var}(x) = \frac{1}{n-1}\sum_i (x_i - \bar x)^2$,
# $\gamma = 1$ and $\epsilon = 10^{-4}$. Three things to notice:
#
# - It is computed **along the batch**, per dimension: it asks that *different images* get
#   different values in every dimension. The variance of a column is a mean of squared
#   differences between pairs of images of the batch, so $v$ couples the images of a batch; what
#   VICReg does without is *explicit negative pairs*, a particular image to push away from.
# - It is a **hinge**: a dimension whose standard deviation is already $\ge \gamma$ costs nothing
#   and gets no gradient. It never asks for *more* spread than $\gamma$, so it cannot make the
#   embeddings blow up.
# - It is a **mean over dimensions**, the average shortfall of the standard deviations, in
#   $[0, \gamma]$ whatever $d$ is.
#
# `vicreg_edu.loss.variance_loss` computes it for one batch, $v(Z)$; a logged $v$ is the average
# of the two branches' (chapter 0's conventions, the [glossary](glossary.md)). Four dimensions with standard deviations
# $0, 0.5, 1, 2$ have shortfalls $\approx 0.99, 0.5, 0, 0$, so $v \approx 0.37$:

# %%
n = 256
columns = torch.randn(n, 4)
columns = (columns - columns.mean(0)) / columns.std(0)  # every column: mean 0, std exactly 1
z = columns * torch.tensor([0.0, 0.5, 1.0, 2.0])  # per-dimension std 0, 0.5, 1, 2
print("per-dimension std:", diagnostics.per_dim_std(z).numpy().round(3))
print(f"v(Z) = {variance_loss(z).item():.4f}")
shortfalls = F.relu(1.0 - torch.sqrt(z.var(dim=0) + 1e-4))
print("shortfall per dimension:", shortfalls.numpy().round(4), "-> mean", f"{shortfalls.mean().item():.4f}")

# %% [markdown]
# ## Why the standard deviation and not the variance
#
# A hinge on the variance, $\max(0, \gamma^2 - \operatorname{Var}(z^j))$, looks just as
# reasonable and skips a square root. The difference is in the gradient, and it matters exactly
# where the term is needed: when a dimension is collapsing. For one column $x = z^j$ with
# standard deviation $\sigma$, the derivatives with respect to one embedding value $x_i$ are
#
# $$ \frac{\partial \operatorname{Var}(x)}{\partial x_i} = \frac{2 (x_i - \bar x)}{n - 1},
#    \qquad
#    \frac{\partial S(x, \epsilon)}{\partial x_i} = \frac{x_i - \bar x}{(n - 1)\sqrt{\sigma^2 + \epsilon}} . $$
#
# Summed over the column (the norm of the gradient vector), since
# $\sum_i (x_i - \bar x)^2 = (n-1)\sigma^2$:
#
# $$ \bigl\lVert \nabla_x \operatorname{Var} \bigr\rVert = \frac{2\sigma}{\sqrt{n-1}} \to 0
#    \text{ as } \sigma \to 0,
#    \qquad
#    \bigl\lVert \nabla_x S \bigr\rVert = \frac{1}{\sqrt{n-1}} \cdot \frac{\sigma}{\sqrt{\sigma^2 + \epsilon}}
#    \approx \frac{1}{\sqrt{n-1}} \text{ for } \sigma \gg \sqrt{\epsilon} . $$
#
# The variance hinge pushes *less and less* as the dimension collapses: the gradient is
# proportional to the spread that is left, so a nearly collapsed dimension is nearly free to
# collapse completely. The standard-deviation hinge pushes with the same strength at any spread
# above $\sqrt{\epsilon} = 0.01$: its gradient is a unit vector pointing away from the mean,
# scaled by $1/\sqrt{n-1}$. The next cell measures both with autograd on a column of $n = 128$
# values scaled to each standard deviation.

# %%
def penalty_and_gradient(penalty, sigma, base):
    """Value of `penalty` on the column sigma * base, and the norm of its gradient."""
    x = (sigma * base).requires_grad_()
    value = penalty(x)
    value.backward()
    return value.item(), x.grad.norm().item()


def variance_hinge(x, gamma=1.0):
    """The alternative: a hinge on the variance, mean_j relu(gamma^2 - Var(x_j))."""
    return F.relu(gamma**2 - x.var(dim=0)).mean()


n = 128
base = torch.randn(n, 1, generator=torch.Generator().manual_seed(0))
base = (base - base.mean()) / base.std()  # one column with std exactly 1
penalties = {"std hinge (VICReg)": variance_loss, "variance hinge": variance_hinge}
sigmas_lin = torch.linspace(0, 2, 201).tolist()  # for the values
sigmas_log = torch.logspace(-4, -0.02, 80).tolist()  # for the gradients, up to sigma = 0.95
values = {name: [penalty_and_gradient(fn, s, base)[0] for s in sigmas_lin] for name, fn in penalties.items()}
grads = {name: [penalty_and_gradient(fn, s, base)[1] for s in sigmas_log] for name, fn in penalties.items()}


# %%
fig, (ax_value, ax_grad) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
for name in penalties:
    ax_value.plot(sigmas_lin, values[name], label=name)
    ax_grad.loglog(sigmas_log, grads[name], label=name)
ax_grad.axhline((n - 1) ** -0.5, color="0.5", linestyle=":", label=r"$1/\sqrt{n-1}$")
ax_grad.axvline(1e-4 ** 0.5, color="0.3", linestyle="--", label=r"$\sigma = \sqrt{\epsilon}$")
ax_value.set(xlabel=r"standard deviation $\sigma$ of the dimension", ylabel="penalty",
             title=r"Penalty of one dimension ($\gamma = 1$)")
ax_grad.set(xlabel=r"standard deviation $\sigma$ of the dimension (log, below $\gamma$)",
            ylabel=r"gradient norm $\Vert \partial\, \mathrm{penalty} / \partial x \Vert$ (log)",
            title="Gradient on the embeddings")
ax_value.legend(), ax_grad.legend()
plt.show()

# %% [markdown]
# Left: both penalties are zero above $\sigma = \gamma = 1$ (and so are their gradients, which
# the right panel leaves out) and largest at $\sigma = 0$, so their values tell the same story.
# Right: their gradients do not. The variance hinge's gradient falls in proportion to $\sigma$
# (slope 1 on the log-log plot): at $\sigma = 0.01$ it is 100 times weaker than at $\sigma = 1$. The standard-deviation hinge keeps
# a constant push of $1/\sqrt{n-1}$ down to $\sigma \approx \sqrt{\epsilon}$, and only below that
# does it fade like the variance hinge. Above $\sigma = 0.5$, where the curves cross, the
# variance hinge is actually the stronger one: it is strong where it is not needed and weak where
# it is.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the role of epsilon and gamma</b></summary>
#
# **$\epsilon$** keeps the square root differentiable. The derivative of $\sqrt{u}$ is
# $1 / (2\sqrt{u})$, infinite at $u = 0$. A dimension that is *exactly* constant over the batch
# has $\operatorname{Var} = 0$ and $x_i - \bar x = 0$, so without $\epsilon$ the chain rule
# multiplies $\infty$ by $0$ and autograd returns NaN, which then poisons every weight:
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
constant = torch.ones(n, 1, requires_grad=True)  # an exactly collapsed dimension
for eps in (0.0, 1e-4):
    constant.grad = None
    variance_loss(constant, eps=eps).backward()
    print(f"eps = {eps:g}: v = {variance_loss(constant, eps=eps).item():.4f}, "
          f"gradient finite: {bool(torch.isfinite(constant.grad).all())}")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the role of epsilon and gamma (reading the output)</b></summary>
#
# With $\epsilon = 10^{-4}$ the value is $\gamma - \sqrt{\epsilon} = 0.99$ and the gradient is
# finite (here exactly zero: when all values are equal there is no direction to push them apart
# in; once they spread by more than about $\sqrt{\epsilon}$, they get the full push of the
# figure above). The price is the fade below
# $\sigma \approx \sqrt{\epsilon} = 0.01$ seen on the right of the figure, far below the target.
#
# **$\gamma$** is the target standard deviation, and so it fixes the *scale* of the embeddings:
# the hinge pushes every dimension's spread up to $\gamma$, while the invariance term (a
# squared distance, which grows with the scale) pulls the spread down. Other values of $\gamma$
# mostly rescale the embeddings; the paper keeps $\gamma = 1$, and since the other two terms grow with the scale ($s$, a squared
# distance, as its square; $c$, a sum of squared covariances, as its fourth power), changing
# $\gamma$ also changes the balance with $\lambda$ and $\nu$. Chapter 7 varies it.
#
# </details>

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the /2 in the total</b></summary>
#
# The paper's Eq. 6, and its pseudo-code (Algorithm 1) too, add the variance terms of the two
# branches:
#
# $$ \ell(Z, Z') = \lambda\, s(Z, Z') + \mu \bigl[v(Z) + v(Z')\bigr] + \nu \bigl[c(Z) + c(Z')\bigr] . $$
#
# Only the official code (`main_vicreg.py`) averages them, `torch.mean(F.relu(1 - std_x)) / 2 +
# torch.mean(F.relu(1 - std_y)) / 2`, so with its `std_coeff = 25` the variance weight is
# effectively half of Eq. 6's (the official repository's issues #8 and #26 discuss the
# discrepancy). Other implementations differ: lightly keeps the `/2`, solo-learn
# ([Turrisi da Costa et al., 2022](https://jmlr.org/papers/v23/21-1155.html)) drops it (`torch.mean(F.relu(1 - std_z1)) +
# torch.mean(F.relu(1 - std_z2))`), which doubles the effective weight of the variance term for
# the same `mu`. **`vicreg_edu` keeps the `/2`**, like the official code and lightly:
# `VICRegTerms.variance` is $[v(Z) + v(Z')]/2$ and the total is
# $\lambda s + \mu [v(Z) + v(Z')]/2 + \nu [c(Z) + c(Z')]$. So the demo preset's $\mu = 50$ **is**
# Eq. 6's $\mu = 25$, twice the official code's effective weight; the cell below prints the
# three.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
z_a, z_b = 0.3 * torch.randn(256, 64), 0.6 * torch.randn(256, 64)  # two branches, both too narrow
terms = vicreg_loss(z_a, z_b)
v_a, v_b = variance_loss(z_a), variance_loss(z_b)
print(f"v(Z) = {v_a:.4f}, v(Z') = {v_b:.4f}, VICRegTerms.variance = {terms.variance:.4f}")
print(f"variance part of the loss, official code (std_coeff 25) / lightly:  25 * (v + v')/2 = {25 * terms.variance:.3f}")
print(f"variance part of the loss, paper Eq. 6 + Alg. 1 (mu 25) / solo-learn: 25 * (v + v')   = {25 * (v_a + v_b):.3f}")
demo_part = vicreg_loss(z_a, z_b, sim_coeff=0.0, std_coeff=50.0, cov_coeff=0.0).loss
print(f"variance part of the loss, vicreg_edu's demo preset (std_coeff 50):   50 * (v + v')/2 = {demo_part:.3f}")
assert torch.isclose(terms.variance, (v_a + v_b) / 2) and torch.isclose(demo_part, 25 * (v_a + v_b))

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the /2 in the total (solo-learn)</b></summary>
#
# The demo preset's line equals Eq. 6's. To reproduce a solo-learn run with this library, double
# its `var_loss_weight` (`std_coeff=50.0` for its 25); to reproduce the official code, use its
# `std_coeff=25.0` as it is.
#
# </details>

# %% [markdown]
# ## Invariance + variance, in the playground
#
# Chapter 1's playground first: the same MLP trained with $s$ alone ($\mu = \nu = 0$) and with
# $s + v$ ($\mu = 50$ with the library's /2, the paper's weight, and $\nu = 0$), on three seeds
# each. Each run logs, every ten steps, the standard deviation of its batch's embedding and the
# correlation of its two coordinates.

# %%
pg_runs = {(name, seed): playground.train(mu=mu, nu=0.0, seed=seed)
           for name, mu in (("s alone", 0.0), ("s + v", 50.0)) for seed in (0, 1, 2)}
print(f"{'loss':>8}  {'seed':>4}  {'std':>6}  {'|corr|':>6}  shape")
for (name, seed), run in pg_runs.items():
    stats = playground.embedding_stats(run.embeddings)
    print(f"{name:>8}  {seed:>4}  {stats['std']:6.3f}  {stats['corr']:6.2f}  {playground.regime(run.embeddings)}")
if not FAST:  # 400 steps: s + v holds the std near gamma on one line, on every seed
    assert all(playground.regime(pg_runs["s + v", s].embeddings) == "line" for s in (0, 1, 2))
    assert all(0.9 < playground.embedding_stats(pg_runs["s + v", s].embeddings)["std"] < 1.6 for s in (0, 1, 2))

# %%
fig, (ax_std, ax_corr, ax_emb) = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
for (name, seed), run in pg_runs.items():
    steps = [h["step"] for h in run.history]
    color = "C0" if name == "s alone" else "C1"
    label = name if seed == 0 else None
    ax_std.plot(steps, [max(h["std"], 1e-4) for h in run.history], color=color, label=label)
    ax_corr.plot(steps, [h["corr"] for h in run.history], color=color, label=label)
ax_std.axhline(1.0, color="gray", ls="--", label=r"$\gamma$ = 1")
ax_std.set(yscale="log", xlabel="step", ylabel="std of the embedding (batch)", title="spread (3 seeds each)")
ax_corr.set(ylim=(-0.03, 1.03), xlabel="step", ylabel=r"|corr($z_1$, $z_2$)|", title="correlation of the coordinates")
ax_std.legend(fontsize="small")  # one legend: the middle panel uses the same colours
playground.plot_embedding(pg_runs["s + v", 0], ax_emb, title="s + v, seed 0")
fig.suptitle("The variance term stops the collapse, not the copying")
plt.show()

# %% [markdown]
# With $s$ alone (blue) the spread falls from about 0.1 to about 0.002 within the first hundred
# steps, on all three seeds (its correlation is then the noise of a collapsed cloud). With the
# hinge (orange) the spread climbs to $\gamma = 1$ within twenty steps and stays at or a little
# above it (1.07 to 1.33 at the end): the point is forbidden. But the correlation of the two
# coordinates goes to 1 on every seed, and the final embedding (right) is a line: both
# coordinates read the same direction of the input, each with std at or above $\gamma$, so every
# hinge is satisfied. Nothing in $s$ or $v$ objects: $v$ looks at each dimension on its own.

# %% [markdown]
# ## Invariance + variance, on images
#
# Now the demo model (a small CNN and a 1024-512 expander on the built-in Shapes data) with the
# demo preset's $\lambda$ and $\mu$ (printed below) and **no covariance term**
# (`cov_coeff=0.0`), for two short epochs.

# %%
cfg = get_config("demo", cov_coeff=0.0, epochs=2, train_size=2048 if FAST else 3072,
                 out_dir="runs/ch03_inv_var", progress=False, final_eval=False, tensorboard=False)
print(f"loss = {cfg.sim_coeff:g} s + {cfg.std_coeff:g} v + {cfg.cov_coeff:g} c")
result = train(cfg)
print(f"trained in {result.wall_time:.0f} s")

# %% [markdown]
# At the end of every epoch the trainer writes a collapse report of a held-out batch
# (`diagnostics.collapse_report`, keys prefixed `emb_`): the mean per-dimension std, the fraction
# of dead dimensions (std below 0.01), the **effective rank** (RankMe: a smooth count of the
# directions the embeddings use, $k$ for $k$ equal directions, up to $d = 512$; the
# [glossary](glossary.md)), the numerical rank (the number of non-zero singular values) and
# `off_diagonal_energy`, the covariance term $c(Z)$ of one view (chapter 4):

# %%
keys = ["emb_std_mean", "emb_dead_fraction", "emb_effective_rank", "emb_numerical_rank",
        "emb_off_diagonal_energy"]
print("epoch " + " ".join(f"{k[4:]:>19}" for k in keys))
for record in result.epochs:
    print(f"{record['epoch']:>5} " + " ".join(
        format(record[k], ">19d" if isinstance(record[k], int) else ">19.3f") for k in keys))
print(f"embedding dimension: {result.epochs[-1]['emb_dim']}")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: where the spread settles</b></summary>
#
# The hinge is not a hard constraint. Below $\gamma$ it pushes every dimension's standard
# deviation up with a *constant* force, $\mu/d$ per dimension (the figure above), while the
# invariance term pulls it down: if the two views' values of a dimension have standard deviation
# $\sigma$ and correlation $\rho$, their mean squared difference is $2\sigma^2(1-\rho)$, which
# costs $\lambda \cdot 2\sigma^2(1-\rho)/d$ and pulls with $4\lambda\sigma(1-\rho)/d$. If the
# network could only rescale the dimension, the two forces would balance at
#
# $$ \sigma^\star = \min\Bigl(\gamma,\ \frac{\mu}{4\lambda(1-\rho)}\Bigr)
#    = \min\Bigl(1,\ \frac{0.5}{1-\rho}\Bigr) \text{ for the demo's } \lambda = 25,\ \mu = 50,\ \gamma = 1 , $$
#
# ($\mu$ in the library's form, with the `/2`: the fold above). So with the demo's weights the
# standard deviation reaches $\gamma = 1$ once the views' values correlate with $\rho \ge 1/2$;
# below that it should settle *inside* the hinge, at $\mu / (4\lambda(1-\rho))$. (With the
# official code's effective weight, $\mu = 25$ here, the bar would be $\rho \ge 3/4$.) The epoch
# records hold what we need for a
# **consistency check**, not a prediction: $\rho$ is not known before training, so we read it
# off the run's own last epoch, where the invariance on the held-out pairs,
# $s \approx 2\sigma^2(1-\rho)$, gives $1 - \rho \approx s / (2\sigma^2)$, and ask whether that
# final state is a balance point of the model: is the measured $\sigma$ equal to
# $\min(\gamma, \mu / (4\lambda(1-\rho)))$ computed from the same $s$ and $\sigma$? Inside the
# hinge this asks whether $s \approx \mu\sigma / (2\lambda)$: whether the run ended with its
# $s$ and $\sigma$ in the ratio at which the two forces cancel. A check that lands on the clamp
# $\gamma$ tests little (any spread at or above $\gamma$ "agrees"), so we also train a second run
# with a ten times smaller variance weight, $\mu = 5$, where the balance point,
# $0.05/(1-\rho)$, should lie well below $\gamma$.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
def balance(result):
    """(1 - rho, balance std, measured std) at the last epoch of an inv + var run."""
    last, c = result.epochs[-1], result.config
    one_minus_rho = last["emb_alignment_mse"] / (2 * last["emb_std_mean"] ** 2)
    balance_std = min(c.gamma, c.std_coeff / (4 * c.sim_coeff * one_minus_rho))  # from this run's own s, std
    return one_minus_rho, balance_std, last["emb_std_mean"]


result_mu5 = train(cfg.replace(std_coeff=5.0, out_dir="runs/ch03_inv_var_mu5"))
print(f"{'lambda':>6} {'mu':>4} {'1 - rho':>8} {'balance std':>14} {'measured std':>13}  balance point")
for r in (result, result_mu5):
    one_minus_rho, balance_std, measured = balance(r)
    where = "on the clamp gamma" if balance_std >= r.config.gamma else "inside the hinge"
    print(f"{r.config.sim_coeff:>6g} {r.config.std_coeff:>4g} {one_minus_rho:>8.3f} {balance_std:>14.2f} "
          f"{measured:>13.2f}  {where}")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: where the spread settles (reading the table)</b></summary>
#
# The column "balance std" is the balance formula fed with each run's own final $1 - \rho$: a
# consistency check of the final state, as described above, not a forecast. The first
# row is the demo's $\mu$: the formula lands on the clamp $\gamma$, and the measured spread, 0.90,
# sits a little below it. That row tests little: the spread overshot $\gamma$ in the
# first epoch (the epoch table above: 1.43 after it), and above $\gamma$ the hinge does not push
# at all, only the invariance term pulls the spread back down; whether it stops at $\gamma$ or
# keeps falling, two epochs cannot tell. The second row is the real check. With $\mu = 5$ and
# this run's $1 - \rho = 0.670$, the balance lies far inside the hinge, at 0.07, and the run's
# spread is 0.08 there instead of climbing to $\gamma$: the run ended (nearly) at a
# balance point of the two forces. A crude model (one number per run, a network that can do more
# than rescale), and one that explains where the spread stopped rather than foretelling it; a
# true prediction would need $\rho$ before the run. Chapter 4 shows that the covariance term adds
# a third force to this balance.
#
# </details>

# %% [markdown]
# The numbers already tell the story; let us look at the embeddings of the test images
# themselves. `extract_features` runs the trained model (in evaluation mode) over the test split;
# `model(x)` returns the representation and the embedding, and we keep the embedding.

# %%
eval_data = load_eval_data(cfg)
test_x, test_y = eval_data.test_x, eval_data.test_y
z = extract_features(lambda x: result.model(x)[1], test_x, eval_data.mean, eval_data.std)  # (N, 512)
report = diagnostics.collapse_report(z)
corr = diagnostics.correlation_matrix(z)
off_diagonal = corr[~torch.eye(len(corr), dtype=torch.bool)].abs()
print(f"{len(z)} test embeddings of dimension {z.shape[1]}")
print(f"std per dimension: min {report.std_min:.3f}, mean {report.std_mean:.3f}; "
      f"dead dimensions (std < 0.01): {report.dead_fraction:.0%}")
print(f"effective rank {report.effective_rank:.1f} of {z.shape[1]} "
      f"({report.effective_rank / z.shape[1]:.1%}); numerical rank {report.numerical_rank}")
print(f"|correlation| between two different dimensions: mean {off_diagonal.mean():.2f}, "
      f"{(off_diagonal > 0.5).double().mean():.0%} of the pairs above 0.5")

# %%
fig, (ax_std, ax_corr) = plt.subplots(1, 2, figsize=(11, 4.3), constrained_layout=True)
plots.plot_std_histogram(z, gamma=cfg.gamma, ax=ax_std, threshold=0.01,
                         title="Per-dimension std: no dimension is dead")
plots.plot_matrix_heatmap(corr, ax=ax_corr, k=32, kind="correlation",
                          title="Correlation of the first 32 dimensions")
fig.suptitle("Invariance + variance: spread out, but redundant")
plt.show()

# %% [markdown]
# Left: every dimension has a clearly non-zero standard deviation (smallest 0.41, mean 0.83 on
# the 2000 test images; the epoch table's 0.90 is on the trainer's 512 augmented views), none is
# dead: complete collapse is gone. Right: the correlation matrix is anything but diagonal. Red
# and blue off the diagonal mean that two dimensions move together (or against each other) from
# image to image; most entries are close to $+1$ or $-1$ (89% of the pairs above 0.5 in size,
# 0.79 on average; the pale rows and columns are dimensions that partly escaped), so up to sign
# and scale the dimensions are copies of one another.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the singular values</b></summary>
#
# The singular values of the centred embeddings make "the same thing" precise: their effective
# rank (RankMe, [Garrido et al., ICML 2023](https://arxiv.org/abs/2210.02885)) counts how many directions the embeddings really use (chapter 6
# explains the measure).
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
s = diagnostics.singular_values(z)
share = (s**2).cumsum(0) / (s**2).sum()  # fraction of the total variance in the top k directions
for k in (1, 2, 5):
    print(f"the top {k} direction(s) hold {share[k - 1]:.3%} of the variance, "
          f"the other {z.shape[1] - k} together {1 - share[k - 1]:.3%}")
print(f"effective rank {diagnostics.effective_rank(s):.1f} of {z.shape[1]} dimensions")
assert report.dead_fraction == 0, "the variance term should leave no dead dimension"
assert report.effective_rank < 0.25 * z.shape[1], "expected dimensional collapse without the covariance term"

# %% [markdown]
# This is **dimensional collapse** ([Jing et al., 2022](https://arxiv.org/abs/2110.09348)): the embeddings are spread out,
# and the variance term is (nearly) satisfied, but they live close to a low-dimensional subspace
# of the 512-dimensional space: one or a few directions carry almost all of the variance, and the
# effective rank is a small fraction of the dimension. Nothing in $s$ or $v$ objects: the
# variance term looks at each dimension on its own, and one good direction copied into 512
# dimensions (plus a little noise) satisfies all 512 hinges at once. The paper's ablation reports
# the same at scale: on ImageNet, invariance + variance reaches 57.5% linear accuracy against
# 68.6% for the full loss after 100 epochs (Table 7). Chapter 4 adds the term that looks at
# *pairs* of dimensions.

# %% [markdown]
# ## The real-data check
#
# The 48-step run is too short to learn the classes. Chapter 7's grid
# (`load_results("ablation_grid")`) trained the book's baseline, the demo preset, at its full
# budget (780 steps) on three seeds (inside chapter 1's four-seed band, 0.846 to 0.861), and the
# same recipe with one coefficient changed, one seed
# each, among them $\mu = 0$ (no variance term) and $\nu = 0$ (invariance + variance, the loss
# above). Their $k$-NN accuracy ([glossary](glossary.md)) and embeddings at the last step:

# %% jupyter={"source_hidden": true}
def span(runs, key, fmt=".3f"):
    """'lowest to highest' of a stored field over runs, formatted (one value when they agree)."""
    low, high = (format(f(r[key] for r in runs), fmt) for f in (min, max))
    return low if low == high else f"{low} to {high}"


grid = {row["name"]: row for row in load_results("ablation_grid")["runs"]}
preset = [row for row in grid.values() if row["factor"] in (None, "seed")]  # the demo preset, seeds 0, 1, 2
rows = {f"demo preset ({len(preset)} seeds)": preset, "mu = 0, no v (seed 0)": [grid["std_coeff=0"]],
        "nu = 0, s + v (seed 0)": [grid["cov_coeff=0"]]}
print(f"{'780 steps':>24}  {'k-NN':>16}  {'mean std':>12}  {'v':>12}  {'dead dims':>9}  {'eff. rank':>12}")
for name, runs in rows.items():
    print(f"{name:>24}  {span(runs, 'knn', '.4f'):>16}  {span(runs, 'emb_std_mean', '.2f'):>12}  {span(runs, 'variance', '.2f'):>12}"
          f"  {span(runs, 'emb_dead_fraction', '.0%'):>9}  {span(runs, 'emb_effective_rank', '.1f'):>12}")
print(f"{'random encoder (3 seeds)':>24}  {span(preset, 'knn_random_init', '.4f'):>16}")
no_v, no_c = grid["std_coeff=0"], grid["cov_coeff=0"]
assert no_c["emb_effective_rank"] < 0.1 * min(r["emb_effective_rank"] for r in preset), "s + v collapses dimensionally"
assert no_c["knn"] < min(r["knn"] for r in preset) - 0.3, "and learns far less than the preset"
assert no_v["emb_dead_fraction"] > 0.9 and no_v["knn"] < max(r["knn_random_init"] for r in preset) + 0.01, \
    "without v: complete collapse, k-NN at chance"

# %% [markdown]
# Both claims hold at the full budget. Without $v$ ($\mu = 0$: $s$ and $c$ only, both smallest at
# a point) the run collapses completely: mean std 0.00, $v$ = 0.99, 99 % of the dimensions dead,
# $k$-NN 0.1115, at the random encoder's level (its effective rank, 99.9, counts the noise of a
# collapsed cloud: read collapse on the std, never on the rank). With $v$ but without $c$
# ($\nu = 0$) the spread is kept (std 1.04, $v$ = 0.00), but the 512 dimensions use about 2.6
# directions, and the $k$-NN, 0.2480, is far below the demo preset's 0.8530 to 0.8605 (effective
# rank 92.4 to 94.3). One seed per ablated run, but both gaps are many times the spread of the
# preset's three seeds.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the variance term as a plug-in (SimSiam)</b></summary>
#
# The variance term does not need the rest of VICReg. The paper
# ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)) adds it to BYOL and SimSiam, which
# avoid collapse with architectural tricks (a predictor on one branch, a stop-gradient, and for
# BYOL a momentum encoder), and reports that it stabilises their training and improves their
# results, and that with it they no longer collapse once part of that machinery, the predictor,
# is removed.
# A small version of that experiment: a **SimSiam-style** method with a stop-gradient but **no
# predictor and no momentum encoder**, each view pulled towards the other, detached, view,
#
# $$ \tfrac{1}{2}\bigl[s(Z, \operatorname{sg}(Z')) + s(Z', \operatorname{sg}(Z))\bigr], $$
#
# with VICReg's squared distance $s$ (SimSiam itself uses a negative cosine similarity), trained
# with and without $\mu\,v$. A dozen lines of training loop, built from the library's model,
# augmentation and loss terms:
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
train_images, _ = data.in_memory_uint8(load_dataset("shapes", split="train"))  # uint8 (N, 3, 32, 32)


def siamese_run(std_coeff, steps, seed=0):
    """Stop-gradient Siamese training (no predictor, no momentum encoder) + std_coeff * v.

    Returns the trained model and the mean per-dimension std of the embeddings at every step."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    augment = TwoViewBatchAugment(make_augment_config(cfg))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(seed)
    spread = []
    for _ in range(steps):
        batch = train_images[torch.randint(len(train_images), (cfg.batch_size,), generator=g)]
        view_a, view_b = augment(batch, generator=g)
        z_a, z_b = model(view_a)[1], model(view_b)[1]  # (batch, 512) each
        s = (invariance_loss(z_a, z_b.detach()) + invariance_loss(z_b, z_a.detach())) / 2
        v = (variance_loss(z_a) + variance_loss(z_b)) / 2
        loss = cfg.sim_coeff * s + std_coeff * v  # the demo's lambda
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        spread.append(z_a.detach().std(0).mean().item())
    return model, spread


steps = 60 if FAST else 100
siamese = {"stop-gradient only": siamese_run(0.0, steps),
           f"stop-gradient + {cfg.std_coeff:g} v": siamese_run(cfg.std_coeff, steps)}

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
fig, ax = plt.subplots(figsize=(9, 4), constrained_layout=True)
for name, (_, spread) in siamese.items():
    ax.plot(range(1, steps + 1), spread, label=name)
ax.axhline(cfg.gamma, color="0.5", linestyle="--", label=r"target $\gamma$")
ax.set(yscale="log", xlabel="training step", ylabel="mean per-dimension std (log)",
       title="SimSiam-style training without a predictor, with and without v")
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the axes, off the curves
plt.show()

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the variance term as a plug-in (reading the figure)</b></summary>
#
# Without the variance term nothing in the loss resists the shortcut of chapter 2: the stop-
# gradient only stops the gradient through one branch at a time, each branch still pulls itself
# towards the other, and the spread falls step after step (note the logarithmic axis). With
# $\mu\,v$ added the hinge holds the spread up near $\gamma$. So in this experiment the variance
# term does one job of SimSiam's predictor, keeping the embeddings from collapsing, without a
# predictor or a momentum encoder. The figure measures only that, the spread: whether the
# representation is as useful as one trained with a predictor, these 100 steps do not say (the
# paper's comparisons of accuracy are on ImageNet).
#
# </details>

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: what the BatchNorm in the expander does</b></summary>
#
# The expander's hidden blocks are Linear, **BatchNorm** ([Ioffe and Szegedy, 2015](https://arxiv.org/abs/1502.03167)), ReLU
# (official code and library alike); only its last layer is a plain `Linear(bias=False)`.
# In training mode BatchNorm standardises every hidden unit over the batch (mean 0, standard
# deviation 1 across the images), then applies its own learnable scale and shift (initialised to
# 1 and 0). So the spread of a hidden unit no longer depends on the weights before it, only on one
# learnable scale per unit; it keeps the hidden layers well conditioned whatever the backbone
# does, and, like the variance term, it couples the images of a batch. Does it prevent collapse?
# The last Linear layer has no BatchNorm after it, and it is the layer through which chapter 2's
# shortcut runs (the invariance term's gradient pulls its weights smaller, and can also turn
# them).
# The next cell measures, for both models above (training mode, as the loss sees them, on a
# held-out batch), the spread of the last hidden layer, the norm of the last layer's weight and
# the spread of the embeddings:
#
# </details>

# %% jupyter={"source_hidden": true} tags=["hide-cell"]
test_images, _ = data.in_memory_uint8(load_dataset("shapes", split="test"))
held_out, _ = TwoViewBatchAugment(make_augment_config(cfg))(
    test_images[:256], generator=torch.Generator().manual_seed(1))
print(f"{'':>22} {'hidden std (after BN, ReLU)':>28} {'|W_last|':>9} {'embedding std':>14}")
for name, (model, _) in siamese.items():
    with torch.no_grad():
        hidden = model.expander[:-1](model.backbone(held_out))  # (256, 1024), input of the last Linear
        z = model.expander[-1](hidden)
    print(f"{name:>22} {hidden.std(0).mean():>28.3f} {model.expander[-1].weight.norm():>9.2f}"
          f" {z.std(0).mean():>14.4f}")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: what the BatchNorm in the expander does (reading the table)</b></summary>
#
# Compare the columns. BatchNorm keeps the last hidden layer spread out in both models (0.349
# and 0.242), whether or not they collapsed, so a healthy hidden layer says nothing about the
# embedding; the embedding's spread, the output of the one layer without BatchNorm after it, is
# what separates the collapsed model from the other: 0.025 against 1.007, about 40 times
# smaller. The weight norm shows *how* that layer collapsed, and it was not by shrinking:
# $\lVert W \rVert$ is 17.22 against 20.56, both *above* the 13.1 of PyTorch's default
# initialisation of the $1024 \to 512$ layer ($\sqrt{512/3}$). The collapsed model's hidden layer
# is even more spread out than the healthy one's (x1.44) and its weight 16% smaller (x0.84):
# together a factor of 1.2 the *other* way, so all of the factor of 40 (about 50 once those two
# are divided out) is direction: the rows of the collapsed model's $W$ turned away from the
# directions in which its hidden layer varies, as in chapter 2's invariance-only run. BatchNorm
# standardises what goes *into* the last layer; only the variance term acts on what comes out of
# it.
#
# </details>

# %% [markdown]
# > **Takeaways**
# >
# > - $v(Z)$ is a hinge on each dimension's **standard deviation** over the batch, averaged over the
# >   dimensions: zero once every std reaches $\gamma$, about $\gamma$ at complete collapse.
# > - On the std, the hinge pushes a collapsing dimension with a constant strength down to
# >   $\sigma \approx \sqrt{\epsilon}$; a hinge on the variance would push in proportion to the
# >   spread that is left.
# > - It forbids the point: in the playground the spread ends at or above $\gamma$ (1.07 to 1.33)
# >   on three of three seeds, where $s$ alone collapses it; on images at the full budget, without
# >   $v$ the run collapses completely (99 % of the dimensions dead, $k$-NN 0.1115).
# > - It does not forbid copies: with $s + v$ the two coordinates end perfectly correlated, a line
# >   (dimensional collapse); on images at the full budget the 512 dimensions use about 2.6
# >   directions, and the $k$-NN is 0.2480 against the demo preset's 0.8530 to 0.8605.
# > - No explicit negative pairs, but $v$ couples the images of a batch through its variances.

# %% [markdown]
# ## Exercise: predict, then run
#
# **How strong must the hinge be?** In the playground, keep $\lambda = 25$, $\nu = 0$ (no covariance),
# $\gamma = 1$, and weaken the variance term a hundredfold, from $\mu = 50$ to $\mu = 0.5$. Before
# running anything, predict the final standard deviation of the embedding (the `std` that
# `playground.embedding_stats` returns, a number) and write it in `my_std`. The hidden cell trains
# that loss on three fresh seeds (3, 4, 5) and accepts your number if it is within 0.3 of their
# mean; it says "not answered yet" while `my_std` is `None`.

# %%
my_std = None  # replace None with your predicted std (a number)

# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
# Answer: about gamma. In the playground the invariance term can be made tiny at full spread (the
# clusters are an invariant feature), so there is no force that the hinge must outweigh: any mu > 0
# holds the std up. On images (the fold "where the spread settles") s and v do pull against each
# other, and a weak mu settles lower.
ex_stds = [playground.embedding_stats(playground.train(lambda_=25.0, mu=0.5, nu=0.0, seed=s).embeddings)["std"]
           for s in (3, 4, 5)]
measured = sum(ex_stds) / len(ex_stds)
if not FAST:  # 400 steps
    assert 0.8 < measured < 1.4, f"the worked solution expects a std near gamma = 1, got {ex_stds}"
if my_std is None:
    print("my_std: not answered yet")
else:
    assert abs(my_std - measured) < 0.3, f"my_std = {my_std} is off: the runs end at a mean std of {measured:.3f}"
    print(f"my_std = {my_std}: right (measured {measured:.3f})")
print(f"mu = 0.5, seeds 3-5: final std {', '.join(f'{s:.3f}' for s in ex_stds)} (mean {measured:.3f})")
print("Solution: near gamma = 1 on every seed: the hinge needs little weight when s does not resist the spread")
