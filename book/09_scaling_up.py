# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 9. Scaling up: ImageNet ResNet-50 on many GPUs
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vicreg-edu/vicreg-edu/blob/main/book/09_scaling_up.ipynb)
#
# Every run in this book so far fitted on a laptop CPU. The paper's headline number, 73.2% linear
# top-1 accuracy on ImageNet ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)), comes from a
# ResNet-50 ([He et al., 2016](https://arxiv.org/abs/1512.03385)) trained for 1000 epochs on the 1.28
# million ImageNet training images ([Russakovsky et al., 2015](https://arxiv.org/abs/1409.0575)) with a
# global batch of 2048 spread over 32 GPUs. This chapter asks: **what has to change, and what
# must not, when the same trainer goes from one CPU process to 32 GPUs?** The loss must still see
# one batch of 2048 although each GPU holds only its share (the idea); the batch and the learning
# rate must fit the GPUs at hand, each number with its source (the plans); and a job the cluster
# stops at any moment must lose no step (the run: the trainer under `torchrun`, stopped and
# resumed). Side studies are folded under "Going deeper".

# %%
try:
    import vicreg_edu
except ImportError:  # Colab: install the library from the repository, once
    import subprocess, sys
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "vicreg-edu @ git+https://github.com/vicreg-edu/vicreg-edu"], check=True)
    import vicreg_edu

# %%
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from vicreg_edu import FAST, covariance_loss, get_config, variance_loss
from vicreg_edu import cli, data, linear_eval, memory, models, slurm
from vicreg_edu import optim

print("fast mode:", FAST)

# %% [markdown]
# ## The recipe: the paper's runs as presets
#
# The official repository (facebookresearch/vicreg, `README.md` and `main_vicreg.py`) launches two
# runs, and each is a preset here. We ask for `fast=False` so the cell prints the full recipes even
# when the test suite runs the book in fast mode.

# %%
# NBVAL_CHECK_OUTPUT
full = get_config("imagenet-resnet50", fast=False)
short = get_config("imagenet-resnet50-100ep", fast=False)
fields = ["dataset", "backbone", "expander", "epochs", "batch_size", "optimizer", "base_lr", "weight_decay",
          "momentum", "lars_eta", "warmup_epochs", "end_lr_ratio", "sim_coeff", "std_coeff", "cov_coeff",
          "amp", "sync_bn", "num_workers", "ckpt_every", "diag_size"]
print(f"{'field':>14s}   {'imagenet-resnet50':<20s} imagenet-resnet50-100ep")
for name in fields:
    print(f"{name:>14s} = {getattr(full, name)!r:<20} {getattr(short, name)!r}")
for name, cfg, gpus in (("imagenet-resnet50", full, 32), ("imagenet-resnet50-100ep", short, 8)):
    print(f"{name}: peak lr {cfg.lr:g} (base_lr x batch / 256), {gpus} GPUs x {cfg.batch_size // gpus} images")

# %% [markdown]
# `imagenet-resnet50` is the paper's 1000-epoch run: a ResNet-50 whose 2048-d output feeds an
# expander of three 8192-unit layers, LARS ([You et al., 2017](https://arxiv.org/abs/1708.03888))
# at base learning rate 0.2 with the linear scaling rule (peak $0.2 \times 2048 / 256 = 1.6$),
# 10 warm-up epochs, on 4 nodes of 8 GPUs, 64 images each. Its loss weights are the official
# code's, $\lambda, \mu, \nu = 25, 25, 1$, tuned together with that code's $/2$ on the variance
# term, which the library keeps: this $\mu = 25$ is half the demo preset's $\mu = 50$ (chapter 3's
# fold on the $/2$).
#
# `imagenet-resnet50-100ep` is the official single-node launch: 100 epochs, batch 512 on 8 GPUs,
# base learning rate 0.3. The paper's own 100-epoch numbers (68.6% in its Table 7, the expander
# widths of Table 12) were trained at **batch 2048 with base learning rate 0.3**, as the first author
# answers in [facebookresearch/vicreg#13](https://github.com/facebookresearch/vicreg/issues/13).
# The batch is **global**: with $W$ processes each sees `batch_size / W` images.

# %% [markdown]
# ## The idea: one batch, many GPUs
#
# Data-parallel training runs one process per GPU. Each process, numbered by its **rank**
# $r = 0, \dots, W-1$, holds a full copy of the network and takes its share of the batch;
# PyTorch's `DistributedDataParallel` (**DDP**) averages the parameter gradients of the $W$
# copies after every backward pass, so all copies take the same step. That is enough for a loss
# that is a mean over images, but the variance and covariance terms are statistics of the whole
# batch: the standard deviation of a dimension over 64 images is not the one over 2048. So every
# rank sends its embeddings $Z_r$ (64 rows) to all others (an **all-gather**), and each computes the
# same $v$ and $c$ on the gathered $Z = [Z_0; \dots; Z_{W-1}]$ (2048 rows). In `vicreg_edu.loss`
# this is `gather_with_grad`, the official code's `FullGatherLayer`: in the forward pass a plain
# `all_gather` of equal shares. The backward pass is where it matters: rank $r$'s network
# produced only $Z_r$, so only the gradient with respect to $Z_r$ can flow back into it.
#
# Write $G(Z) = \mu\, v(Z) + \nu\, c(Z)$. Every rank computes the same $G$ from the same $Z$, so
# every rank holds the same upstream gradient $\partial G / \partial Z$. `gather_with_grad`'s
# backward **sums** it over the ranks (an **all-reduce**: every rank receives the sum of a tensor
# over all ranks), which gives $W\, \partial G / \partial Z$,
# and hands rank $r$ its own rows, $W\, \partial G / \partial Z_r$. Rank $r$ backpropagates them
# through its copy of the network. DDP then **averages** the parameter gradients of the $W$ ranks:
#
# $$ \frac1W \sum_{r} W \,\frac{\partial G}{\partial Z_r}\frac{\partial Z_r}{\partial \theta}
#    = \sum_r \frac{\partial G}{\partial Z_r}\frac{\partial Z_r}{\partial \theta}
#    = \frac{\partial G}{\partial \theta} , $$
#
# the gradient a single process would get from the whole batch: the sum in the backward pass
# cancels DDP's average. A gather that only routes each rank's own rows back, without the sum,
# gives $\frac1W \partial G / \partial \theta$: the variance and covariance terms silently
# weigh $W$ times less than on one GPU (a bug that a user found in another library,
# [lightly#1528](https://github.com/lightly-ai/lightly/issues/1528)). A plain `all_gather` passes
# no gradient at all. The invariance term needs none of this: it compares the two views of the
# *same* image, so each rank computes it on its own rows, and DDP's average of the $W$ local
# means is the global mean. The picture, for the $W = 4$ ranks of 16 images that the next cells use:

# %%
fig, ax = plt.subplots(figsize=(11, 3.9))
ax.set_axis_off()
ax.set(xlim=(0, 11.2), ylim=(-0.9, 4.1))
rank_box = dict(boxstyle="round,pad=0.3", fc="#eef3fb", ec="#4a6fa5")
loss_box = dict(boxstyle="round,pad=0.4", fc="#fdf1e3", ec="#c9822b")
arrow = dict(arrowstyle="->", color="#333333", lw=1.2)
for r in range(4):
    y = 3.6 - r
    ax.text(1.0, y, f"rank {r}: 16 images", ha="center", va="center", bbox=rank_box, fontsize=9)
    ax.text(3.25, y, rf"$Z_{r} = f_\theta(x_{r})$, 16 rows", ha="center", va="center", bbox=rank_box, fontsize=9)
    ax.annotate("", xy=(2.25, y), xytext=(1.85, y), arrowprops=arrow)
    ax.annotate("", xy=(5.3, 2.1), xytext=(4.3, y), arrowprops=arrow)
ax.text(6.25, 2.1, "all_gather\n$Z = [Z_0; Z_1; Z_2; Z_3]$\n64 rows, on every rank", ha="center", va="center",
        bbox=loss_box, fontsize=9)
ax.annotate("", xy=(8.6, 2.1), xytext=(7.5, 2.1), arrowprops=arrow)
ax.text(9.45, 2.1, r"$G(Z) = \mu\, v(Z) + \nu\, c(Z)$" + "\nthe same number\non every rank", ha="center",
        va="center", bbox=loss_box, fontsize=9)
ax.text(5.6, -0.45, r"backward: all-reduce SUM of $\partial G/\partial Z$ ($\times W$), rank $r$ keeps rows $Z_r$;"
        r"  DDP AVERAGES the $W$ parameter gradients ($\div W$): $\partial G/\partial\theta$ exactly",
        ha="center", va="center", fontsize=9.5, color="#8a1c1c")
ax.set_title("The gathered loss: the statistics of one batch, the gradient of one process", fontsize=11)
plt.show()

# %% [markdown]
# The next cell checks the argument with autograd on one CPU, playing $W = 4$ ranks: a linear
# "network", the gradient of $G$ on the whole batch, then the per-rank backward passes with and
# without the sum, averaged as DDP does. (The test suite checks the real thing with two gloo
# processes: `tests/test_loss_distributed.py`.)

# %%
torch.manual_seed(0)
W, n_per_rank = 4, 16
x = torch.randn(W * n_per_rank, 12)  # the global batch: rank r holds rows r*16 .. r*16+15
net = torch.nn.Linear(12, 8)  # every rank holds an identical copy


def G(z):  # the part of the loss computed on the gathered batch
    return 25 * variance_loss(z) + 1 * covariance_loss(z)


net.zero_grad()
G(net(x)).backward()
one_process = net.weight.grad.clone()  # dG/dtheta, one process, the whole batch

z = net(x).detach().requires_grad_()
(upstream,) = torch.autograd.grad(G(z), z)  # dG/dZ, (64, 8): the same on every rank


def ddp_gradient(backward_factor):
    """Each rank backpropagates backward_factor * its rows of dG/dZ; DDP averages the ranks."""
    per_rank = []
    for r in range(W):
        rows = slice(r * n_per_rank, (r + 1) * n_per_rank)
        net.zero_grad()
        net(x[rows]).backward(backward_factor * upstream[rows])
        per_rank.append(net.weight.grad.clone())
    return torch.stack(per_rank).mean(0)


with_sum, without_sum = ddp_gradient(W), ddp_gradient(1)  # all-reduce sum = W x the same tensor
for name, g in [("gather with the sum (gather_with_grad)", with_sum), ("gather without the sum", without_sum)]:
    print(f"{name:>40}: |grad - one process| / |one process| = {(g - one_process).norm() / one_process.norm():.2e}")
assert torch.allclose(with_sum, one_process, rtol=1e-4, atol=1e-6)
assert torch.allclose(without_sum, one_process / W, rtol=1e-4, atol=1e-6)

# %% [markdown]
# With the sum, the DDP-averaged gradient equals the one-process gradient up to float32
# rounding; without it, it is off by 75%: exactly the factor $1/W = 1/4$.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: precision (bf16, fp16, and the float64 side of the covariance)</b></summary>
#
# The official `main_vicreg.py` runs the whole forward pass, the loss included, under fp16
# autocast with a `GradScaler`: the paper's V100 GPUs have no bfloat16 arithmetic. fp16 has a
# narrow exponent range (largest value 65504, smallest normal number about $6 \times 10^{-5}$),
# so small gradients underflow unless the loss is multiplied by a large factor before the
# backward pass; the scaler does that, divides the gradients back before the optimiser step and
# skips a step (lowering the factor) when a gradient overflows. bfloat16 keeps float32's exponent
# range with fewer mantissa bits and needs no scaler. So `amp="auto"` means: **bf16** where the GPU
# has it (Ampere and newer: A100, A10, L4, L40S, H100, H200), **fp16 with the GradScaler** elsewhere
# (V100, T4), no autocast on a CPU; the first line the trainer prints says which and why, e.g.
# `amp=auto -> fp16 + GradScaler (no bf16 on this GPU)`. The scaler's state is saved in the
# checkpoint (the official code does not save it).
#
# Two places where this trainer computes in more precision than the official code. The VICReg
# loss runs in float32 (`vicreg_loss` casts the embeddings and leaves autocast), where the official
# code computes it in fp16. And the covariance term's $N \times N$ Gram side, used when the
# gathered batch is smaller than the 8192 dimensions (always, at batch 2048), runs in float64 on a
# GPU. On a CPU the loss computes it in float32 and reads one number back to decide whether to redo
# it in float64 (chapter 4's fallback). On a GPU that read would make the CPU wait for the GPU
# to finish its queued work at every step, so the trainer skips the check and computes that side in
# float64 directly. How much float64 costs depends on the card: A100, H100 and H200 run float64
# matrix products on float64 tensor cores at about their plain (non-tensor-core) float32 rate, far
# below the TF32 and bf16 tensor-core rates of the rest of the step; V100 runs float64 at half its
# float32 rate; A10, L4, L40S and the RTX cards at 1/32 to 1/64 of it. On those, set `gram_dtype=float32`
# (the `vicreg_loss` argument and the config field of that name; the plans below do it for the
# "slow float64" class): the terms then agree with float64 to about $10^{-5}$ relative
# (`tests/test_loss.py`), except on batches whose off-diagonal covariance is tiny next to its
# diagonal, where float32 loses digits.
#
# </details>

# %% [markdown]
# ## What fits where, and how long it takes
#
# Memory decides how many images each GPU can take. `vicreg_edu.memory` runs one whole training
# step on *fake* tensors, which carry shapes and dtypes but no data, counts the bytes alive at the
# peak, and multiplies by a headroom of 1.2 calibrated on the paper's 11.3 GB per GPU at 64 images
# (the fold below has the table and its checks). This section counts memory in GiB ($2^{30}$
# bytes), the unit of GPU memory: a card sold as "32 GB" holds about 32 GiB. The figure sets the
# estimate for 8 GPUs against what `memory.launch_plan` lets a plan use of each GPU: 90% of what
# is left once 1 GiB is set aside for the CUDA context, $0.9 \times (\text{memory} - 1)$ GiB.

# %%
per_gpu_sizes = [32, 64, 128, 256, 512]
need_gib = {amp: [memory.step_memory(full, b, amp, world=8) * memory.HEADROOM / 2**30 for b in per_gpu_sizes]
            for amp in ("bf16", "fp32")}
fig, ax = plt.subplots(figsize=(7.5, 4.2))
for amp, style in (("bf16", "o-"), ("fp32", "s--")):
    ax.plot(per_gpu_sizes, need_gib[amp], style, label="bf16 or fp16 (the same bytes)" if amp == "bf16" else "fp32")
for size in (16, 24, 32, 40, 80):
    usable = 0.9 * (size - 1)  # GiB a plan may use (memory.launch_plan): 0.9 x (memory - 1 GiB)
    ax.axhline(usable, color="grey", lw=0.8, ls=":")
    ax.text(31, usable, f"{size} GiB GPU: {usable:.1f} usable", va="bottom", fontsize=8, color="grey")
ax.set(xscale="log", yscale="log", xlabel="images per GPU (global batch / number of GPUs)",
       ylabel="GiB per GPU (estimate x 1.2)", title="ResNet-50 + 8192x3, one training step, 8 GPUs")
ax.set_xticks(per_gpu_sizes, [str(b) for b in per_gpu_sizes])
ax.set_yticks([5, 10, 20, 40, 80], ["5", "10", "20", "40", "80"])
ax.minorticks_off()
ax.legend(loc="lower right")
plt.show()
for amp in ("bf16", "fp32"):
    print(f"{amp} (GiB per GPU): " + ", ".join(f"{b} images {gib:.1f}" for b, gib in zip(per_gpu_sizes, need_gib[amp])))

# %% [markdown]
# The activations grow with the images per GPU, and fp32 needs 1.4 to 1.9 times the bytes of bf16.
# At batch 2048 on *one* node, each of 8 GPUs takes 256 images: 29.7 GiB in bf16, which fits
# 40 and 80 GiB GPUs (35.1 and 71.1 GiB usable). A 32 GiB V100 (27.9 usable; its fp16 takes the
# same bytes) takes 128 images (16.6 GiB) but not 256, so on 8 of them the global batch becomes 1024.
#
# A smaller batch raises the question of the learning rate. At 1000 epochs the paper publishes one
# value, base rate 0.2 at batch 2048, and its rule $\text{lr} = \text{base\_lr} \times \text{batch} / 256$:
# a plan at a smaller batch keeps 0.2 and lets the rule lower the peak. `memory.launch_plan` makes
# one plan per set of GPUs, each value with its source; the table gives the time of 1000 epochs
# where a rate has been measured (`memory.MEASURED_RATES`):

# %%
measured = {"8 x 80 GB (A100 / H100 / H200)": "H200", "8 x 32 GB (V100)": "V100", "8 x 16 GB (V100)": "V100",
            "4 nodes x 8 x 32 GB (V100, the paper's)": "V100"}
plans = {hardware: memory.launch_plan(**spec) for hardware, spec in memory.HARDWARE.items()}
print(f"{'GPUs':<41s} {'batch':>5s} {'per GPU':>7s} {'GiB':>5s} {'peak lr':>7s}  1000 epochs take")
for hardware, plan in plans.items():
    if hardware in measured:
        gpu = measured[hardware]
        hours = f"{memory.expected_time(plan, memory.MEASURED_RATES[gpu][0])['run_h']:,.0f} h at the {gpu} rate"
        if gpu == "H200":  # a step rate without the data pipeline: bound it by the measured CPU loader
            fed = memory.expected_time(plan, memory.MEASURED_RATES[gpu][0], loader_cores=full.num_workers)
            hours += f" ({fed['run_h']:,.0f} h fed by {full.num_workers} PIL loader cores per GPU)"
    else:
        hours = "no measured rate"
    print(f"{hardware:<41s} {plan.global_batch:>5d} {plan.per_gpu:>7d} {plan.need_gib:>5.1f} "
          f"{plan.base_lr * plan.global_batch / 256:>7.2f}  {hours}")

# %% [markdown]
# The hours mean different things. The H200 rate is the trainer's own step with the images
# already in GPU memory: no JPEG decoding, no gradient all-reduce, so 23 hours on 8 H200s is a
# floor; fed by the preset's 10 CPU loader cores per GPU, the same GPUs wait for data and take 32
# hours. An A100 is slower than an H200; an H100 (SXM) has the H200's compute with less memory
# bandwidth, so it is at best about as fast. Neither was measured here. The V100 rate is the
# paper's whole job, 110 hours for 1000 epochs on its 32 V100s, applied per GPU to the other V100
# plans: 440 hours, 18 days, on 8. The folds below print each plan's command and the sources of
# the rates.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the launch commands, the measured rates, and the 100-epoch learning rates</b></summary>
#
# The folded cell below prints, for each set of GPUs, the command `memory.launch_plan` gives
# (`torchrun` on one node, `vicreg-edu submit` across nodes), its memory and learning-rate note,
# and the three measured rates with what each includes. At 137 images per CPU-second, the preset's
# 10 loader cores per GPU deliver 1,373 images/s, which is why the H200 plan takes 117 s per epoch
# instead of 83 (a core of a cluster node may be faster than this shared one; `--set pipeline=gpu`
# decodes and augments on the GPU instead, at a GPU cost not measured here). The "slow float64"
# class sets `gram_dtype=float32` (the precision fold above). An H200 has 141 GB, so the 80 GiB
# plan fits it with room to spare.
#
# The appendix's larger base rates for small batches (0.8, 0.5 at 128, 256) were tuned for
# 100-epoch runs, so only 100-epoch plans use them; at 512 the 100-epoch plan follows the official
# launch's 0.3, not the appendix's 0.4 (the schedule fold below prints the whole table with sources).
#
# </details>

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: each plan's command, and the measured rates
for hardware, plan in plans.items():
    print(f"{hardware}:\n    {plan.command}\n    {plan.note}")
    if hardware in measured:
        gpu = measured[hardware]
        t = memory.expected_time(plan, memory.MEASURED_RATES[gpu][0])
        print(f"    if every GPU trains at the {gpu} rate below: {t['epoch_s']:,.0f} s per epoch, "
              f"{t['run_h']:,.0f} h for {plan.epochs} epochs, {t['gpu_h']:,.0f} GPU-hours")
        if gpu == "H200":
            fed = memory.expected_time(plan, memory.MEASURED_RATES[gpu][0], loader_cores=full.num_workers)
            print(f"    fed by the PIL loader on {full.num_workers} cores per GPU ({fed['images_per_s_per_gpu']:,.0f} "
                  f"images/s): {fed['epoch_s']:,.0f} s per epoch, {fed['run_h']:,.0f} h, {fed['gpu_h']:,.0f} GPU-hours")
for gpu, (rate, how) in memory.MEASURED_RATES.items():
    print(f"{gpu} rate: {rate:,.0f} images/s per GPU: {how}")
print(f"PIL loader: {memory.PIL_IMAGES_PER_CORE_S[0]:.0f} images per CPU-second: {memory.PIL_IMAGES_PER_CORE_S[1]}")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: where the memory estimate comes from, and the paper's speed per step</b></summary>
#
# The model is built on PyTorch's `meta` device, which records shapes without allocating, so the
# folded cells below count the parameters of the full model on any laptop, then print the per-GPU
# table the figure above draws (fp16 included), and turn the paper's "11 hours per 100 epochs on
# 32 V100 GPUs" into steps. The estimator counts what `torch.cuda.max_memory_allocated()` counts,
# less what operators allocate and free inside a kernel (cuDNN and cuBLAS workspaces); the headroom
# 1.2 covers that, the allocator's reserve and the CUDA context. `bench/README.md` compares the
# count with the loss's peak measured on an H200 (it underestimates by 64-300 MiB) and with the
# paper's 11.3 GB (the paper does not say how it measured; read as $10^9$ bytes, our count at the
# paper's layout, 32 GPUs of 64 images, is 0.84 of it, which is where the 1.2 comes from). The
# table below is in GiB, as the figure. Before training
# starts on a GPU, the trainer compares the same estimate with `torch.cuda.mem_get_info()` and
# stops with one line naming a per-GPU batch that fits (`--set memory_check=false` goes on with a
# warning instead).
#
# </details>

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: the parameters, the per-GPU table, the paper's speed per step
with torch.device("meta"):
    big = models.VICReg(backbone=full.backbone, expander=full.expander)
n_backbone = sum(p.numel() for p in big.backbone.parameters())
n_expander = sum(p.numel() for p in big.expander.parameters())
print(f"backbone (ResNet-50 without its classifier): {n_backbone / 1e6:6.1f} M parameters")
print(f"expander {full.expander} (2048 -> 8192 -> 8192 -> 8192): {n_expander / 1e6:6.1f} M parameters")
print(f"weights + gradients + LARS momentum in fp32: {3 * 4 * (n_backbone + n_expander) / 2**30:.1f} GiB on every GPU")
print(f"\nestimated peak memory per GPU (GiB, x{memory.HEADROOM} headroom), {memory.describe(full)}, 8 GPUs:")
print(f"{'images/GPU':>10s} " + " ".join(f"{amp:>7s}" for amp in memory.AMPS))
for per_gpu in (32, 64, 128, 256):
    row = [memory.step_memory(full, per_gpu, amp, world=8) * memory.HEADROOM / 2**30 for amp in memory.AMPS]
    print(f"{per_gpu:>10d} " + " ".join(f"{gib:7.1f}" for gib in row))
imagenet_train = memory.IMAGENET_TRAIN  # ILSVRC-2012 training images
gpus, hours_per_100 = 32, 11.0  # paper: 32 V100, 11 h per 100 epochs
steps_per_epoch = imagenet_train // full.batch_size  # the trainer drops the last partial batch
imgs_per_s = 100 * imagenet_train / (hours_per_100 * 3600)
step_s = full.batch_size / imgs_per_s
print(f"\nsteps per epoch: {steps_per_epoch}; steps in {full.epochs} epochs: {steps_per_epoch * full.epochs:,}")
print(f"throughput: {imgs_per_s:,.0f} images/s in total, {imgs_per_s / gpus:.0f} per GPU; {step_s:.2f} s per step")
print(f"a checkpoint every {full.ckpt_every} steps = every {full.ckpt_every * step_s / 60:.0f} min")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: ImageNet as it comes out of its archives</b></summary>
#
# Pre-training reads only `train/`: the 1000 synset folders (`n01440764/`, ...) of `*.JPEG` files
# that `ILSVRC2012_img_train.tar` extracts to. The per-epoch collapse report and the k-NN
# evaluation want held-out images. They use `val/` when it is there, in either layout: sorted into
# synset folders (what `torchvision.datasets.ImageNet` leaves behind), or flat as
# `ILSVRC2012_img_val.tar` extracts it (50,000 files in one folder), with the labels read from the
# devkit (`ILSVRC2012_devkit_t12.tar.gz`, torchvision's `meta.bin`, or Kaggle's
# `LOC_val_solution.csv`) and nothing moved or written in the data folder. Without `val/` they use
# a fixed slice of `train/` (2% of ImageNet's 1.28 million; at least 1,000 images and at most a
# fifth of a small folder, hence 24 of the 120 images below), chosen by a hash of each file's path
# (the same on every machine)
# and left out of the k-NN memory bank. **That slice is not held out from pre-training**:
# pre-training reads all of `train/` (it needs no labels), so without `val/` the collapse report
# and the k-NN queries are images the encoder has trained on, and their numbers flatter it a
# little; put `val/` in place for numbers to quote. The folded cell below writes a tiny folder in
# the real layout, with `train/` only, and asks what the trainer would use.
#
# </details>

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: a train/-only ImageNet folder, and what the trainer holds out
root = Path("runs/ch09_imagenet")
shutil.rmtree(root, ignore_errors=True)
rng = np.random.default_rng(0)
for c, synset in enumerate(["n01440764", "n01443537", "n01484850"]):
    (root / "train" / synset).mkdir(parents=True)
    for i in range(40):
        pixels = (rng.random((48, 48, 3)) * 80 + 60 * c).astype(np.uint8)
        Image.fromarray(pixels).save(root / "train" / synset / f"{synset}_{i}.JPEG")
print("held out:", data.held_out_source("imagenet", root))
splits = data.eval_splits("imagenet", root)
print(f"k-NN bank {len(splits.train)} images, held-out queries {len(splits.test)} (both also pre-trained on)")

# %% [markdown]
# ## The run that shows it: a job stopped and resumed
#
# `torchrun` starts the trainer once per GPU (NCCL between GPUs, gloo on CPUs). A 1000-epoch run
# takes days: no queue gives a job that long in one piece, and pre-emptible queues stop jobs at any
# moment. SLURM stops
# a job by sending **SIGTERM** to every process and **SIGKILL** `KillWait` seconds later
# (`slurm.conf`, 30 s by default; a pre-empting partition's `GraceTime`, 0 by default, comes on
# top); before the time limit it sends the signal the job asked for (`--signal=USR2@120`). Under
# `torchrun` the launcher is signalled too: it passes the signals it handles on to the trainers
# and kills them after its own `--shutdown-timeout` (30 s by default). USR1 and USR2 are not among
# the signals it handles by default, so every `torchrun` line here names them with
# `--signals-to-handle`. The trainer's handler only sets a flag; the processes agree on it with a
# small all-reduce whose result is read one step later (reading it at once would make every step
# wait for it), finish that step, write
# `checkpoint.pt` atomically and exit with status 128 + the signal's number (143 for SIGTERM). The
# window, the shorter of `KillWait` and torchrun's timeout, must hold about two steps and one
# checkpoint write (1.4 GB for the full model).
#
# The next cells run `torchrun` with two processes on the CPU: gloo instead of NCCL, the built-in
# Shapes data and the small CNN instead of ImageNet and ResNet-50, 16 steps; everything else is the
# cluster run's code path. We send SIGTERM to the launcher once a few steps are logged, as SLURM
# would, then restart the same command with `--resume auto`. The runs are far too short to learn
# anything, so the final k-NN evaluation is off: its number would be at chance.

# %%
smoke_dir = Path("runs/ch09_smoke")
shutil.rmtree(smoke_dir, ignore_errors=True)
smoke_set = ["epochs=2", "train_size=512", "test_size=256", "batch_size=64", "diag_size=64", "knn_every=0",
             "log_every=1", "print_every=4", "ckpt_every=0", "final_eval=false", "tensorboard=false",
             f"out_dir={smoke_dir}"]
cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
       "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2",
       "-m", "vicreg_edu", "train", "--preset", "demo", "--set", *smoke_set, "--resume", "auto"]
env = dict(os.environ, OMP_NUM_THREADS="1")
print("$ python", shlex.join(cmd[1:]))


def logged_steps():
    path = smoke_dir / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")] if path.exists() else []
    return [r["step"] for r in records if r["kind"] == "step"]


def trainer_lines(text, starts=("VICReg", "resum", "starting", "step ", "epoch ", "vicreg-edu: stopped")):
    """The trainer's own lines of a log (start, resume, progress, epoch, stop), without torchrun's."""
    return "\n".join(line for line in text.splitlines() if line.lstrip().startswith(starts))


first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
deadline = time.time() + 600
while len(logged_steps()) < 4 and first.poll() is None and time.time() < deadline:
    time.sleep(0.05)
print("steps logged before the signal:", logged_steps())
first.send_signal(signal.SIGTERM)  # what SLURM sends on pre-emption (here to the launcher)
out, err = first.communicate(timeout=300)
print(trainer_lines(out + "\n" + err))
print("exit status of torchrun:", first.returncode)
stopped = torch.load(smoke_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["step"]
print("checkpoint at step", stopped, "| last step logged:", logged_steps()[-1])
assert stopped == logged_steps()[-1] and stopped < 16

# %% [markdown]
# The trainer's first line is the one to check on a cluster: `world=2` processes, a global batch
# of 64 split into 32 per process, the precision (`amp=auto -> none (CPU)`) and the learning rate
# after linear scaling ($0.015 \times 64 / 256 = 0.00375$). A log file gets a plain progress line
# every `print_every` steps (here 4) instead of a progress bar. The signal arrived once step 4 had
# been logged; the processes stopped at step 6, the step on which the lagged check agreed, and
# checkpointed there (the trainers exit with 143, torchrun then with 1): nothing is lost, although
# no periodic checkpoint was ever written.
#
# Now the "requeued job": the very same command.

# %%
second = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
assert second.returncode == 0, second.stderr[-3000:]
print(trainer_lines(second.stdout + "\n" + second.stderr))
steps = logged_steps()
print("steps in metrics.jsonl:", steps)
assert steps == list(range(1, 17))

# %% [markdown]
# The resumed run picked up at step 6 and the metrics file holds every step once. The epoch lines
# show the loss terms after 16 steps, far from a trained model: the probe is at chance (about 0.1 with
# 10 classes), and the point is only that the command works.
#
# The same thing on a real cluster. This is the log of task 0 of a job pre-empted for real on the
# test suite's one-node SLURM (`scontrol requeue` once step 1 was logged, no periodic checkpoints),
# written by the test itself:

# %%
log = (resources.files("vicreg_edu.results") / "slurm_preemption_log.txt").read_text()
print(log)

# %% [markdown]
# How to read it. Attempt 1 got SIGTERM after step 1 had been logged; its tasks finished step 3
# (the step on which the lagged check agreed), wrote the checkpoint there, printed the `stopped
# by SIGTERM at step 3` line and exited with 143. SLURM requeued the job; attempt 2 resumed at
# step 3 and ended with weights equal, tensor for tensor, to an uninterrupted job's.

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: a resume with a changed recipe is refused</b></summary>
#
# The trainer refuses to resume with a different recipe (a changed learning rate would give a run
# that is neither the old one nor a new one), and says so in one line; the folded cell below tries
# it. After a NaN, name the keys you change on purpose, `--set resume_changes=base_lr,warmup_epochs`,
# and the trainer resumes and records the change in `metrics.jsonl` (only optimisation settings can
# be changed this way).
#
# </details>

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: resuming with another base_lr
changed = [*cmd[:cmd.index("--resume")], "base_lr=0.05", "--resume", "auto"]  # the same --set list, one more key
refused = subprocess.run(changed, capture_output=True, text=True, timeout=300, env=env)
print("exit status", refused.returncode)
print([line for line in refused.stderr.splitlines() if line.startswith("vicreg-edu: error")][0])

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: SLURM, two ways (submitit and the shipped sbatch script)</b></summary>
#
# `vicreg-edu submit` (`pip install 'vicreg-edu[slurm]'`) goes through submitit, as the official
# `run_with_submitit.py`: one task per GPU, each running the same `train`; everything after `--` is
# the argument list of `vicreg-edu train`, checked before anything is submitted. It requests, unless
# told otherwise, the official launcher's resources: `num_workers` CPUs per task, 40 GB of memory per
# GPU, and `USR2` 120 s before the time limit; it prints them before submitting. The first folded
# cell below parses such a command with the real parsers and prints that block (parsing needs
# neither submitit nor SLURM).
#
# Without submitit, the package ships an sbatch script for `srun torchrun`: one task per node, each
# running torchrun with a c10d rendezvous on the job's first node (through
# `python -m vicreg_edu.launch.torchrun`: torchrun with USR1/USR2 forwarded by default, whose stop on
# a signal ends in one line and the signal's exit status). Copy it, edit its `#SBATCH`
# lines for your site, and submit it with the trainer's arguments:
#
# ```bash
# vicreg-edu submit --print-sbatch > vicreg.sbatch
# sbatch vicreg.sbatch --preset imagenet-resnet50 --set data_dir=/datasets/imagenet out_dir=/shared/vicreg
# ```
#
# The second folded cell prints its resource lines and its `torchrun` line, read from the installed
# copy. Both paths are tested on a real SLURM (`tests/test_slurm.py` starts a one-node SLURM on the
# test machine and runs them with CPU tasks and gloo); on a GPU cluster the same path runs with
# NCCL. `out_dir` must be on a file system every node sees.
#
# </details>

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: what vicreg-edu submit would request
submit_cmd = ("vicreg-edu submit --nodes 4 --gpus-per-node 8 --partition gpu --time 4320 -- "
              "--preset imagenet-resnet50 --set data_dir=/datasets/imagenet out_dir=/checkpoints/vicreg")
submit_args = cli.build_parser().parse_args(shlex.split(submit_cmd)[1:])
cfg_slurm = cli.submit_config(submit_args)
print("\n".join(slurm.request(submit_args, cfg_slurm).lines()))
tasks_per_node, slurm_world = slurm.resources(submit_args)
print(f"trainer: batch {cfg_slurm.batch_size} -> {cfg_slurm.batch_size // slurm_world} images per GPU, "
      f"resume={slurm.job_config(cfg_slurm).resume!r}, out_dir {cfg_slurm.out_dir}")

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: the shipped sbatch script's resources and torchrun line
script = slurm.sbatch_script().read_text()
print("\n".join(line for line in script.splitlines() if line.startswith("#SBATCH")))
start = next(i for i, line in enumerate(script.splitlines()) if "torchrun --nnodes" in line)
print("\n".join(line.strip() for line in script.splitlines()[start:start + 4]))

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the paper's evaluation protocols</b></summary>
#
# A pre-training run is judged by the paper's protocol, not by the trainer's k-NN. The official
# `evaluate.py` freezes the backbone and trains a linear classifier on its 2048-d output: SGD with
# momentum 0.9, batch 256, 100 epochs, a cosine schedule, learning rate 0.02, weight decay
# $10^{-6}$, random resized crops and flips for training, resize to 256 and a centre crop of 224
# for validation. The semi-supervised protocol fine-tunes the whole network for 20 epochs on 1% or
# 10% of the labels (the SimCLR subset lists: one file name a line), with separate learning rates
# for the backbone and the classifier and no weight decay. `vicreg_edu.linear_eval` implements
# both, under `torchrun` (DDP, loader workers, a checkpoint every epoch, `--resume auto`), and
# reports top-1 and top-5; the folded cell below prints the hyper-parameters as the command line
# builds them. Before spending GPU-days, check the evaluation itself against the paper with the
# official pretrained weights (`resnet50.pth` from the repository's README, a torchvision-style
# state dict without the classifier). The same loader takes them and our exported backbones:
#
# ```bash
# vicreg-edu eval --protocol linear --data-dir /datasets/imagenet --weights resnet50.pth   # paper: 73.2 / 91.1
# torchrun --nproc_per_node=8 -m vicreg_edu eval --protocol linear --data-dir /datasets/imagenet \
#     --checkpoint /checkpoints/vicreg/checkpoint.pt --resume auto
# torchrun --nproc_per_node=8 -m vicreg_edu eval --protocol semi --percent 1 --subset 1percent.txt \
#     --data-dir /datasets/imagenet --checkpoint /checkpoints/vicreg/checkpoint.pt      # paper: 54.8
# vicreg-edu export --checkpoint /checkpoints/vicreg/checkpoint.pt --out vicreg_resnet50.pth
# ```
#
# `export` writes the backbone in that same torchvision layout, which
# `torchvision.models.resnet50()` loads with `strict=True` once its `fc` is replaced by
# `nn.Identity()` (the test suite checks the round trip). Where the evaluation differs from the
# official script: each training view's randomness is keyed by (seed, epoch, image), so 2
# processes give the same classifier as 1; the last incomplete batch of an epoch is dropped; the
# validation set is split across processes.
#
# </details>

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: the evaluation protocols' hyper-parameters
# NBVAL_CHECK_OUTPUT
for protocol, percent in (("linear", None), ("semi", 1), ("semi", 10)):
    ecfg = linear_eval.protocol_config(protocol, percent, subset=f"{percent}percent.txt" if percent else "")
    print(f"{protocol:>6s} {ecfg.percent:>3d}%: epochs {ecfg.epochs}, batch {ecfg.batch_size}, "
          f"lr head {ecfg.lr_head:g}, lr backbone {ecfg.lr_backbone:g}, weight decay {ecfg.weight_decay:g}, "
          f"crop {ecfg.crop_size} / resize {ecfg.resize_size}")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: the learning-rate schedule and the linear scaling rule</b></summary>
#
# `vicreg_edu.optim.learning_rate` is the schedule of the official code: a linear warm-up from 0
# to the peak over the first 10 epochs, then a cosine decay, updated every step, down to
# $0.001 \times$ the peak:
#
# $$
# \eta(t) = \begin{cases} \eta_{\max}\, t / T_w & t < T_w \\
#   \eta_{\text{end}} + (\eta_{\max} - \eta_{\text{end}})\,\tfrac12\bigl(1 + \cos\bigl(\pi\,\tfrac{t - T_w}{T - T_w}\bigr)\bigr) & t \ge T_w \end{cases}
# \qquad \eta_{\text{end}} = 0.001\,\eta_{\max},
# $$
#
# with $t$ the step, $T_w$ the warm-up steps and $T$ the total steps ([Loshchilov and Hutter, 2017](https://arxiv.org/abs/1608.03983);
# [Goyal et al., 2017](https://arxiv.org/abs/1706.02677)). The factor 0.001 is the config field
# `end_lr_ratio`. The demo preset of the earlier chapters stops its cosine at $0.75 \times$ the
# peak after a 1-epoch warm-up, because 10 epochs are too few to spend the second half of them at
# a small learning rate (chapter 5). The folded cells below plot the official schedule at every
# step of the two presets and check its numbers: the 1000-epoch run climbs to its peak in ten
# epochs, then decays slowly: a cosine falls to half its height only halfway through the decay, at
# epoch $(10 + 1000)/2 = 505$. The 100-epoch variant has a smaller peak (a smaller batch), the same
# 10-epoch warm-up (a tenth of its run instead of a hundredth) and a cosine ten times shorter.
#
# The peak is `base_lr * batch_size / 256`: double the batch, double the learning rate, so that an
# epoch moves the weights about as far whatever the batch size (Goyal et al., 2017). The rule is a
# starting point, not a law: LARS adapts the step of each weight matrix to its norm, which is what
# keeps large batches stable, and the paper's appendix tuned higher base rates for small batches at
# 100 epochs. The last folded cell prints `memory.PLAN_BASE_LR`, the values the plans use, each with
# its source. The 100-epoch preset follows the official launch (0.3 at batch 512), not the
# appendix's 0.4; the repository's issue
# [#23](https://github.com/facebookresearch/vicreg/issues/23) asks which is right and has no answer.
#
# </details>

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: the schedule of the two presets, step by step
def schedule(cfg, n_images=memory.IMAGENET_TRAIN):
    """Per-step learning rate of a config (x in epochs), as the trainer computes it."""
    per_epoch = n_images // cfg.batch_size
    total, warmup = cfg.epochs * per_epoch, round(cfg.warmup_epochs * per_epoch)
    steps = np.union1d(np.arange(0, total, max(1, total // 20_000)), [warmup, total])
    lrs = np.array([optim.learning_rate(int(s), total, warmup, cfg.lr, cfg.end_lr_ratio) for s in steps])
    return steps / per_epoch, lrs


curves = {"1000 epochs, batch 2048, base_lr 0.2": schedule(full),
          "100 epochs, batch 512, base_lr 0.3": schedule(short)}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
for label, (epochs, lrs) in curves.items():
    axes[0].plot(epochs, lrs, label=label)
    axes[1].plot(epochs, lrs, label=label)
axes[0].set(xlabel="epoch", ylabel="learning rate", title="Warm-up + cosine: the whole run")
axes[1].set(xlabel="epoch", ylabel="learning rate", xlim=(0, 30), title="The first 30 epochs: 10 of warm-up")
axes[1].axvline(full.warmup_epochs, color="grey", ls="--", lw=1)
axes[0].legend()
plt.show()

# %% cellView="form" jupyter={"source_hidden": true} mystnb={"code_prompt_hide": "Hide the side study", "code_prompt_show": "Show the side study"} tags=["hide-cell"]
# @title Going deeper: the schedule's numbers, and the base learning rates the plans use
epochs_1000, lrs_1000 = curves["1000 epochs, batch 2048, base_lr 0.2"]
peak, end = lrs_1000.max(), lrs_1000[-1]
decayed = (epochs_1000 > full.warmup_epochs) & (lrs_1000 <= (peak + end) / 2)
half = epochs_1000[np.argmax(decayed)]  # first epoch after the warm-up below the midpoint
print(f"peak {peak:.2f} at epoch {epochs_1000[lrs_1000.argmax()]:.0f}, final {end:.4f}, "
      f"half-way down at epoch {half:.0f}")
assert abs(peak - full.lr) < 1e-12 and abs(end - full.lr * full.end_lr_ratio) < 1e-12 and abs(half - 505) < 1
for epochs, table in memory.PLAN_BASE_LR.items():
    print(f"\n{epochs} epochs: {'batch':>6s} {'base_lr':>8s} {'peak lr':>8s}  source")
    for batch, (base, source) in sorted(table.items(), reverse=True):
        print(f"{'':>11s} {batch:>6d} {base:>8g} {batch / 256 * base:>8.3f}  {source}")

# %% [markdown] tags=["dropdown"]
# <details>
# <summary><b>Going deeper: what the curves of a full run look like, and where this run differs from the official one</b></summary>
#
# We cannot show a real 1000-epoch run here (and will not draw a made-up one), so here is what
# to expect and what to watch, from the paper and from the diagnostics of chapters 5 and 6. The
# trainer writes the same `metrics.jsonl` on the cluster as on the laptop, so
# `vicreg_edu.plots.plot_training_curves` and `plot_collapse_panels` read a cluster run unchanged.
#
# - **Accuracy grows with training time, with diminishing returns.** The paper reports 68.6%
#   linear top-1 after 100 epochs (Table 7, batch 2048) and 73.2% after 1000 (Table 1).
# - **The loss terms**, read with the table "healthy run vs collapse" of chapter 6. The variance
#   term should fall and then level off well below its collapse value (how low depends on the
#   weights and the budget: at the official 25/25/1, chapter 5's 10-epoch Shapes run ends near 0.48);
#   one that climbs back towards
#   $\gamma - \sqrt{\epsilon} \approx 0.99$, with the standard deviation falling to 0, is complete
#   collapse. The first author's answer in
#   [facebookresearch/vicreg#14](https://github.com/facebookresearch/vicreg/issues/14): the
#   covariance term should stay roughly stable and mostly the invariance term falls; a covariance
#   term of 0 most likely means collapse. For dimensional collapse, watch the effective rank.
# - **Instabilities** most often show up in or right after the warm-up, when the learning rate
#   reaches its peak. A NaN loss stops the trainer with the step and the last good checkpoint
#   (checkpoints are never written from a NaN state).
# - **Throughput** is printed as images per second in the step records (`imgs_per_s`). At the
#   paper's speed a 32-GPU run processes about 3200 images per second; far less usually means
#   the data loader is starving the GPUs (more `num_workers`, and CPUs per task to run them).
#
# Where this run differs from the official one:
#
# - **Precision**: bf16 autocast where the GPU supports it, fp16 with a GradScaler elsewhere (the
#   official code: fp16 everywhere); the loss in float32 and the covariance term's Gram side in
#   float64 on a GPU (`gram_dtype=float32` to change it; official: the loss under fp16 autocast).
# - **The loss** divides by the actual global batch (the official code divides by the configured
#   one) and the last incomplete batch of an epoch is dropped; the variance term keeps the official
#   code's /2 (chapter 3).
# - **Augmentation randomness** is drawn per image from a generator seeded by (seed, epoch, image)
#   rather than from each loader worker's random state, so a resumed run, or one with another
#   number of workers, sees the same views.
# - **Extra work on rank 0**: an online linear probe on detached features (it never reaches the
#   encoder), and a per-epoch collapse report on 2048 held-out images.
# - **Checkpoints** hold the scaler, the step and every process's random state, and are also
#   written on SIGTERM/USR1/USR2; a changed recipe is refused on resume.
#
# </details>

# %% [markdown]
# ## The full-scale command
#
# The smoke run above used the same module and flags as this command; only the preset, the data
# folder and the process layout differ.

# %%
data_dir, out_dir = "/datasets/imagenet", "/checkpoints/vicreg"
train_args = ["--preset", "imagenet-resnet50", "--set", f"data_dir={data_dir}", f"out_dir={out_dir}"]
rendezvous = ["--nnodes=4", "--nproc_per_node=8", "--rdzv_backend=c10d",
              "--rdzv_endpoint=$HEAD_NODE:29500", "--rdzv_id=vicreg",
              "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2"]
print("# on each of the 4 nodes:")
print(" ".join(["torchrun", *rendezvous, "-m", "vicreg_edu", "train", *train_args, "--resume", "auto"]))
print("# or through SLURM (submitit):")
print(" ".join(["vicreg-edu submit --nodes 4 --gpus-per-node 8 --partition gpu --", *train_args]))
print("# then the paper's evaluation:")
print(f"torchrun --nproc_per_node=8 -m vicreg_edu eval --protocol linear --data-dir {data_dir} "
      f"--checkpoint {out_dir}/checkpoint.pt")

# %% [markdown]
# > **Takeaways**
# >
# > - The variance and covariance terms are statistics of the **global** batch: every rank gathers
# >   all embeddings, and the gather's backward **sums** the gradient over ranks so that DDP's
# >   average gives exactly the one-process gradient (without the sum, $1/W$ of it: 75% off at $W = 4$).
# > - Memory sets the images per GPU (16.6 GiB for 128, 29.7 GiB for 256 in bf16, with the
# >   headroom); a smaller global batch keeps the 1000-epoch base rate 0.2, and the linear scaling
# >   rule lowers the peak learning rate with the batch.
# > - Expected times come only from measured rates: 23 hours for 1000 epochs on 8 H200s for the
# >   step alone, 32 hours once 10 CPU cores per GPU decode the JPEGs; 110 hours on the paper's 32 V100s.
# > - A stop signal costs no step: the processes agree one step later, checkpoint at that step and
# >   resume exactly, as the smoke run and the real SLURM log show; under `torchrun`, name USR1/USR2
# >   in `--signals-to-handle` and keep the checkpoint inside `KillWait` and `--shutdown-timeout`.

# %% [markdown]
# ## Exercise: predict, then run
#
# **A rank that forgets the gather.** Suppose each of $W$ ranks computed the covariance term $c$
# on its own $n$ rows instead of on the gathered $nW$. Take embeddings whose dimensions are
# independent standard Gaussians, so that every bit of $c$ is sampling noise. Predict, as a formula
# in $n$ and $W$, how many times larger the average of the $W$ per-rank values of $c$ is than $c$ of
# the gathered batch (on average over many batches). A hint: chapter 4 measured how large $c$ of
# such embeddings is on a batch of $m$ rows; start from there.
#
# Write your formula in `my_ratio` below, then run the answer cell: it simulates fresh cases
# (other $n$, $W$ and numbers of dimensions), compares them with your formula within 4%, and says
# "not answered yet" while `my_ratio` returns `None`.

# %%
def my_ratio(n, world):
    """Your prediction: mean per-rank c (n rows each) / c of the gathered n * world rows."""
    return None  # replace None with an expression in n and world

# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
# Answer: with independent unit-variance dimensions one off-diagonal entry of a sample covariance of m rows
# has E[C_jk^2] = 1/(m - 1), so E[c] = (D - 1)/(m - 1) and the ratio is (n W - 1)/(n - 1), whatever D.
def c_batched(z):
    """covariance_loss of each (m, D) batch in a (trials, m, D) tensor."""
    zc = z - z.mean(-2, keepdim=True)
    cov = zc.transpose(-1, -2) @ zc / (z.shape[-2] - 1)
    return (cov.square().sum((-1, -2)) - cov.diagonal(dim1=-2, dim2=-1).square().sum(-1)) / z.shape[-1]


def simulated_ratio(n, world, d, trials=2000, seed=0):
    z = torch.randn(trials, n * world, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    per_rank = torch.stack([c_batched(part) for part in z.split(n, dim=1)]).mean()
    return (per_rank / c_batched(z).mean()).item()


probe = torch.randn(40, 6, dtype=torch.float64)
assert torch.allclose(c_batched(probe), covariance_loss(probe))  # the same c as the library's
fresh = [(8, 4, 12), (4, 8, 30), (10, 16, 6), (32, 2, 20)]  # (n per rank, W, dimensions)
for n, world, d in fresh:
    measured_ratio, formula = simulated_ratio(n, world, d, seed=n + world), (n * world - 1) / (n - 1)
    assert abs(measured_ratio / formula - 1) < 0.04, (n, world, d, measured_ratio, formula)
mine = [my_ratio(n, world) for n, world, _ in fresh]
if any(m is None for m in mine):
    print("not answered yet (replace None in my_ratio above, then rerun both cells)")
else:
    for (n, world, d), m in zip(fresh, mine):
        sim = simulated_ratio(n, world, d, seed=n + world)
        assert abs(m / sim - 1) < 0.04, f"n={n}, W={world}: you predict {m:.3g}, the simulation gives {sim:.3g}"
    print("your formula matches the simulations of all four fresh cases")
print("worked solution: the ratio is (n W - 1)/(n - 1); 16 rows on each of 4 ranks give 63/15 = 4.2 times "
      "the gathered c: sampling noise that a loss on local rows would fight instead of real correlations")
