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
# top-1 accuracy on ImageNet ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906)), comes from a ResNet-50
# ([He et al., 2016](https://arxiv.org/abs/1512.03385)) trained for 1000 epochs on the 1.28 million ImageNet training images
# ([Russakovsky et al., 2015](https://arxiv.org/abs/1409.0575)) with a global batch of 2048 spread over 32 GPUs. This chapter
# shows how the *same* trainer gets there: the `imagenet-resnet50` preset, what it costs in
# memory and time, the exact `torchrun` and SLURM commands, how a pre-empted job resumes, and the
# learning-rate schedule. Then it runs the very same script with two processes on the CPU, so
# the command is known to work, and prints the full-scale command.

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
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from vicreg_edu import Config, FAST, VICReg, covariance_loss, get_config, variance_loss
from vicreg_edu.checkpoint import check_resume_config
from vicreg_edu.cli import add_train_args, config_from_args
from vicreg_edu.optim import learning_rate

print("fast mode:", FAST)

# %% [markdown]
# ## The `imagenet-resnet50` preset
#
# A preset is a named `Config`; `get_config("imagenet-resnet50", fast=False)` is the paper's
# recipe as written in the official code (`main_vicreg.py` of facebookresearch/vicreg), with one
# deliberate deviation, mixed precision, explained below the printout. We ask for `fast=False`
# explicitly, so the cell prints the full recipe even when the test suite runs the book in fast
# mode. The fields that matter:

# %%
# NBVAL_CHECK_OUTPUT
full = get_config("imagenet-resnet50", fast=False)
fields = ["dataset", "backbone", "expander", "epochs", "batch_size", "optimizer", "base_lr",
          "weight_decay", "momentum", "lars_eta", "warmup_epochs", "end_lr_ratio",
          "sim_coeff", "std_coeff", "cov_coeff", "amp", "sync_bn", "num_workers",
          "ckpt_every", "log_every"]
for name in fields:
    print(f"{name:>14s} = {getattr(full, name)!r}")
print(f"{'lr (peak)':>14s} = {full.lr:g}   # base_lr * batch_size / 256")

# %% [markdown]
# Read it top to bottom: an `imagefolder` dataset (ImageNet laid out as `train/<class>/*.JPEG`
# and `val/<class>/*.JPEG`), a ResNet-50 whose 2048-d output feeds an expander with three layers
# of 8192 units, 1000 epochs at a global batch of 2048, LARS ([You et al., 2017](https://arxiv.org/abs/1708.03888)) with the linear
# learning-rate scaling rule (peak learning rate $0.2 \times 2048 / 256 = 1.6$), 10 warm-up
# epochs, the loss weights 25/25/1, mixed precision on GPUs (`amp="auto"`) and synchronised
# batch norm across GPUs. The README's cheaper 100-epoch variant is
# `get_config("imagenet-resnet50", epochs=100, batch_size=512, base_lr=0.3)`.
#
# **Where we deviate from the official code: bf16 instead of fp16.** The official
# `main_vicreg.py` runs the forward pass under fp16 autocast with a `GradScaler`. It had to: the
# paper's V100 GPUs have no bfloat16 arithmetic. fp16 has a narrow exponent range (largest value
# 65504, smallest normal number about $6 \times 10^{-5}$), so small gradients underflow to zero
# unless the loss is multiplied by a large factor before the backward pass; the scaler does that,
# divides the gradients back before the optimiser step, and skips a step (lowering the factor)
# when a gradient overflows. bfloat16 keeps float32's exponent range with fewer mantissa bits, so
# it needs no scaler; A100, H100 and newer GPUs compute in it at the same speed as fp16. So
# `amp="auto"` means bf16 on a GPU (and no autocast on a CPU). To reproduce the official setting
# exactly, pass `amp="fp16"`: the trainer then enables a `GradScaler` (and, unlike the official
# code, saves its state in the checkpoint). In both cases the VICReg loss itself is computed in
# float32 (`vicreg_loss` casts the embeddings), as in the official code.
#
# `batch_size` is **global**: with $W$ processes each sees `batch_size / W` images, and the
# variance and covariance terms are computed on the embeddings gathered from all processes, so
# the loss is the one of a single batch of 2048 no matter how many GPUs share it. Why the
# *gradient* is also the single-process one takes an argument, made in the next section.

# %% [markdown]
# ## The gathered loss and its gradient
#
# The variance and covariance terms are statistics of the whole batch: the standard deviation of
# a dimension over 64 images is not the one over 2048. So every process $r$ of $W$ sends its
# embeddings $Z_r$ (64 rows) to all others, and each computes the same $v$ and $c$ on the
# gathered $Z = [Z_0; \dots; Z_{W-1}]$ (2048 rows). In `vicreg_edu.loss` this is
# `gather_with_grad`, the official code's `FullGatherLayer`. The forward pass is a plain
# `all_gather`. The backward pass is where it matters: rank $r$'s network produced only $Z_r$, so
# only the gradient with respect to $Z_r$ can flow back into it.
#
# Write $G(Z) = \mu\, v(Z) + \nu\, c(Z)$. Every rank computes the same $G$ from the same $Z$, so
# every rank holds the same upstream gradient $\partial G / \partial Z$, an array of
# $2048 \times d$ numbers. `gather_with_grad`'s backward **sums** it over the ranks (an
# all-reduce), which gives $W\, \partial G / \partial Z$, and hands rank $r$ its own rows,
# $W\, \partial G / \partial Z_r$. Rank $r$ backpropagates them through its copy of the network.
# DDP then **averages** the parameter gradients of the $W$ ranks:
#
# $$ \frac1W \sum_{r} W \,\frac{\partial G}{\partial Z_r}\frac{\partial Z_r}{\partial \theta}
#    = \sum_r \frac{\partial G}{\partial Z_r}\frac{\partial Z_r}{\partial \theta}
#    = \frac{\partial G}{\partial \theta} , $$
#
# the gradient a single process would get from the whole batch. The sum in the backward pass
# cancels DDP's average. A gather that only routes each rank's own rows back, without the sum,
# gives $\frac1W \partial G / \partial \theta$: the variance and covariance terms silently
# weigh $W$ times less than on one GPU (a bug that a user found in another library,
# [lightly#1528](https://github.com/lightly-ai/lightly/issues/1528)). A plain `all_gather` passes
# no gradient at all, so only the invariance term trains the network. The invariance term needs
# none of this: it compares the two views of the *same* image, so each rank computes it on its
# own rows, and DDP's average of the $W$ local means is the global mean.
#
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

# %% [markdown]
# ## Memory and time budget
#
# The model is built on PyTorch's `meta` device, which records shapes without allocating
# memory, so we can count the parameters of the full-size model on any laptop.

# %%
with torch.device("meta"):
    big = VICReg(backbone=full.backbone, expander=full.expander)
n_backbone = sum(p.numel() for p in big.backbone.parameters())
n_expander = sum(p.numel() for p in big.expander.parameters())
print(f"backbone (ResNet-50 without its classifier): {n_backbone / 1e6:6.1f} M parameters")
print(f"expander {full.expander} (2048 -> 8192 -> 8192 -> 8192): {n_expander / 1e6:6.1f} M parameters")
print(f"expander / backbone: {n_expander / n_backbone:.1f}x")
state_gb = 3 * 4 * (n_backbone + n_expander) / 1e9  # fp32 weights + gradients + LARS momentum
print(f"weights + gradients + momentum in fp32: {state_gb:.1f} GB on every GPU")

# %% [markdown]
# The expander has six times more parameters than the encoder it sits on, almost all of them in
# the two $8192 \times 8192$ matrices. In compute it is cheap: one image costs about as many
# multiply-adds in the expander as it has weights (the count printed above), against about
# $4 \times 10^9$ for a ResNet-50 forward pass at 224 pixels ([He et al., 2016](https://arxiv.org/abs/1512.03385)). In memory it is
# not: weights, gradients and the LARS momentum buffer take about 2 GB on every GPU before a
# single activation is stored. The paper reports **11.3 GB per GPU** for the whole run (64
# images per GPU) and **11 hours per 100 epochs on 32 V100 GPUs** ([Bardes et al., 2022](https://arxiv.org/abs/2105.04906))
# (appendix, running time and memory usage). Small GPUs run out of memory with this expander
# (facebookresearch/vicreg issue #7); the ways out are more GPUs with fewer images each (the
# global batch and therefore the loss stay the same), bf16 autocast, or a narrower expander at a
# known cost in accuracy (paper Table 12: 65.1% with 2048 units vs 68.6% with 8192 at 100 epochs).
#
# What does "11 hours per 100 epochs" mean per step and per GPU? The arithmetic, from the paper's
# numbers and the size of ImageNet's training set:

# %%
imagenet_train = 1_281_167  # ILSVRC-2012 training images
gpus, hours_per_100 = 32, 11.0  # paper: 32 V100, 11 h per 100 epochs
steps_per_epoch = imagenet_train // full.batch_size  # the trainer drops the last partial batch
imgs_per_s = 100 * imagenet_train / (hours_per_100 * 3600)
step_s = full.batch_size / imgs_per_s
print(f"steps per epoch: {steps_per_epoch}; steps in {full.epochs} epochs: {steps_per_epoch * full.epochs:,}")
print(f"throughput: {imgs_per_s:,.0f} images/s in total, {imgs_per_s / gpus:.0f} per GPU "
      f"({2 * imgs_per_s / gpus:.0f} views/s: two views per image)")
print(f"one step of {full.batch_size} images: {step_s:.2f} s")
print(f"{full.epochs} epochs: {hours_per_100 * full.epochs / 100:.0f} h on {gpus} GPUs "
      f"= {hours_per_100 * full.epochs / 100 * gpus:,.0f} GPU-hours")
print(f"a checkpoint every {full.ckpt_every} steps = every {full.ckpt_every * step_s / 60:.0f} min "
      f"({full.ckpt_every / steps_per_epoch:.1f} epochs)")

# %% [markdown]
# So the 1000-epoch run takes about four and a half days of 32 GPUs. No SLURM queue gives a
# job that long in one piece, and preemptible queues can stop it at any moment: the run must
# survive being killed. With a checkpoint every 1000 steps, a kill loses at most one interval
# of work, the minutes printed above at the paper's speed; the next section shows how the run
# picks up again.

# %% [markdown]
# ## Launching: one node, many nodes, SLURM
#
# The trainer is one module, `vicreg_edu.train`, started once per GPU by `torchrun`, which sets
# `RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`. The trainer reads them
# (`vicreg_edu.distributed.setup`), joins the process group (NCCL on GPUs, gloo on CPUs), takes
# GPU `LOCAL_RANK`, converts batch norm to synchronised batch norm and wraps the model in
# `DistributedDataParallel`. Nothing else changes between a laptop and a cluster.
#
# **One node, 8 GPUs** (the README's 100-epoch setting: batch 512, 64 per GPU):
#
# ```bash
# torchrun --nproc_per_node=8 -m vicreg_edu.train --preset imagenet-resnet50 \
#     --set data_dir=/datasets/imagenet epochs=100 batch_size=512 base_lr=0.3
# ```
#
# **Four nodes × 8 GPUs** (the paper's 1000-epoch run: batch 2048, 64 per GPU). Run the same
# command on every node; torchrun's `c10d` rendezvous, hosted by `$HEAD_NODE` (any one of the
# nodes), connects them and assigns the ranks:
#
# ```bash
# torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=$HEAD_NODE:29500 \
#     --rdzv_id=vicreg -m vicreg_edu.train --preset imagenet-resnet50 \
#     --set data_dir=/datasets/imagenet out_dir=/checkpoints/vicreg --resume auto
# ```
#
# **SLURM through submitit** (`pip install 'vicreg-edu[slurm]'`): `vicreg-edu submit` (the module
# `vicreg_edu.slurm`, so a pip install has it) asks SLURM for the nodes, starts one task per GPU
# and runs the same `train` in each; everything after `--` is the argument list of
# `vicreg-edu train`, checked before anything is submitted:
#
# ```bash
# vicreg-edu submit --nodes 4 --gpus-per-node 8 --cpus-per-task 10 --partition gpu --time 4320 \
#     -- --preset imagenet-resnet50 --set data_dir=/datasets/imagenet out_dir=/checkpoints/vicreg \
#     batch_size=2048 ckpt_every=1000
# ```
#
# It prints the job id, the log folder (`runs/slurm/<job id>/`, one log per task) and where the
# checkpoint and metrics go. In each task the launcher reads the rank, world size and master
# address from submitit's environment and exports them under the names `torchrun` uses, so the
# trainer cannot tell the difference. The same command with CPU tasks tries a cluster (or a
# SLURM on one machine, as in the test suite) without GPUs:
#
# ```bash
# vicreg-edu submit --tasks-per-node 2 --gpus-per-node 0 -- --preset demo
# ```
#
# **What you change for a GPU cluster**: `--gpus-per-node` (one task per GPU; the trainer then
# takes `cuda:LOCAL_RANK` and NCCL instead of gloo, nothing else to set), `--nodes`, and your
# site's `--partition`, `--account`, `--qos` or `--constraint` (e.g. `'a100|h100'`); `--mem` and
# `--cpus-per-task` (data-loading workers) as your admins advise; `--setup 'module load cuda'`
# for lines the job needs before it starts, and `--slurm-arg key=value` for any other sbatch
# option. `out_dir` and `--log-dir` must be on a file system that every node sees.
#
# These commands are not decoration: the next cells parse them with the real argument parsers of
# `torchrun`, of `vicreg_edu.train` and of `vicreg-edu submit`, so a renamed flag breaks the book.

# %%
from torch.distributed.run import parse_args as torchrun_parse_args
import argparse

multi_node = ("torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=$HEAD_NODE:29500 "
              "--rdzv_id=vicreg -m vicreg_edu.train --preset imagenet-resnet50 "
              "--set data_dir=/datasets/imagenet out_dir=/checkpoints/vicreg --resume auto")
launcher = torchrun_parse_args(shlex.split(multi_node)[1:])
train_parser = argparse.ArgumentParser()
add_train_args(train_parser)
cfg_big = config_from_args(train_parser.parse_args(launcher.training_script_args))
world = int(launcher.nnodes) * int(launcher.nproc_per_node)
print(f"torchrun: {launcher.nnodes} nodes x {launcher.nproc_per_node} processes, rendezvous "
      f"{launcher.rdzv_backend} at {launcher.rdzv_endpoint}, module {launcher.training_script}")
print(f"trainer:  preset epochs={cfg_big.epochs} batch={cfg_big.batch_size} -> "
      f"{cfg_big.batch_size // world} images per GPU, lr={cfg_big.lr:g}, resume={cfg_big.resume!r}, "
      f"data_dir={cfg_big.data_dir}")
assert world == 32 and cfg_big.batch_size % world == 0 and cfg_big.resume == "auto"

# %%
from vicreg_edu import slurm  # parsing needs neither submitit nor SLURM; submitting needs both

submit_cmd = ("vicreg-edu submit --nodes 4 --gpus-per-node 8 --cpus-per-task 10 --partition gpu --time 4320 "
              "-- --preset imagenet-resnet50 --set data_dir=/datasets/imagenet out_dir=/checkpoints/vicreg "
              "batch_size=2048 ckpt_every=1000")
submit_args = slurm.build_parser().parse_args(shlex.split(submit_cmd)[2:])
tasks_per_node, slurm_world = slurm.resources(submit_args)
train_argv, cfg_slurm = slurm.train_arguments(submit_args, slurm_world)
print(f"vicreg-edu submit: {submit_args.nodes} nodes x {tasks_per_node} tasks = {slurm_world} processes, "
      f"{submit_args.gpus_per_node} GPUs per node (NCCL), partition {submit_args.partition}, "
      f"{submit_args.time} min per job, USR2 {submit_args.signal_delay} s before the limit")
print(f"each task runs:    vicreg-edu train {' '.join(slurm.with_resume_auto(train_argv))}")
print(f"trainer:           batch {cfg_slurm.batch_size} -> {cfg_slurm.batch_size // slurm_world} images per GPU, "
      f"checkpoint every {cfg_slurm.ckpt_every} steps in {cfg_slurm.out_dir}")
assert slurm_world == world and cfg_slurm.batch_size // slurm_world == 64

# %% [markdown]
# ## Resuming after pre-emption
#
# `--resume auto` (or `resume="auto"` in a `Config`) means: if `<out_dir>/checkpoint.pt` exists,
# continue from it; otherwise start fresh. So the *same* command serves for the first start and
# for every restart, which is exactly what a requeued SLURM job or `torchrun --max-restarts=3`
# (torchrun restarting crashed workers) needs. Three details make it safe:
#
# - **Atomic checkpoints.** `checkpoint.atomic_save` writes `checkpoint.pt.tmp`, flushes it to disk
#   (`fsync`), then renames it over `checkpoint.pt`. A rename is atomic on POSIX file systems, so a
#   job killed at any instant leaves either the old checkpoint or the new one, never half a file.
# - **Everything that determines the future is saved**: model and online-probe weights, both
#   optimiser states, the gradient scaler, the step, and the random-number state of every process.
#   The data order and the augmentations are derived from the seed, the epoch and the step, so a
#   resumed run sees the same batches and the same views as an uninterrupted one (the test suite
#   checks that a run killed and resumed ends with the same weights).
# - **A changed recipe is refused.** Resuming with, say, a different learning rate would silently
#   produce a run that is neither the old one nor a new one; the trainer raises instead.
#   Checkpoints are written at the end of every epoch and every `ckpt_every` steps, and never when
#   the loss has become NaN, so a diverged run keeps its last good checkpoint.

# %% [markdown]
# ## Pre-emption on a real SLURM
#
# With `vicreg-edu submit`, a pre-empted or timed-out job goes through four hands. SLURM sends
# `USR2` (submitit asks for it `--signal-delay` seconds before the time limit with
# `#SBATCH --signal=USR2@120`; schedulers send it on pre-emption). submitit's handler on rank 0
# calls the launcher's `TrainingJob.checkpoint`, which returns the same job with `--resume auto`;
# submitit pickles it and runs `scontrol requeue`. SLURM stops all tasks and later starts the job
# again under the same id, and the trainer continues from `<out_dir>/checkpoint.pt`, which it
# writes atomically every `ckpt_every` steps and at every epoch end. So on a real cluster,
# set `ckpt_every` to what you can afford to redo: at most that many steps are lost.
#
# This path is tested on a real SLURM, not a mock. `tests/test_slurm.py` (part of `make test`)
# starts a single-node SLURM on the test machine (Debian 12's `slurm-wlm` 22.05 and `munge`, as
# root, from a temporary `slurm.conf`: one node with the machine's 2 CPUs, `select/cons_tres`)
# and submits the demo preset shrunk to 8 steps (256 images, batch 64 split over 2 gloo
# processes, a checkpoint every step) twice, with
#
# ```bash
# vicreg-edu submit --tasks-per-node 2 --gpus-per-node 0 -- --preset demo --out-dir run \
#     --set train_size=256 test_size=128 batch_size=64 epochs=2 ckpt_every=1 ...
# ```
#
# once straight through, once pre-empted: when the job has logged step 2, the test sends it the
# same signal SLURM would (`scancel --signal=USR2 <job>`). Here is the log of task 0 of that
# second job, from the run of 30 November 2026 on a shared 2-core CPU machine (job 2; its `.out`
# and `.err` logs interleaved by time, paths shortened, the `Loading pickle`, `SIGCONT` and
# PyTorch deprecation-warning lines left out). The demo preset's `base_lr` was 0.01 on that day,
# hence `lr 0.0025` at batch 64; today's 0.015 gives 0.00375, as the smoke run further down prints:
#
# ```text
# submitit INFO (2026-11-30 11:46:34,016) - Starting with JobEnvironment(job_id=2, hostname=vm, local_rank=0(2), node=0(1), global_rank=0(2))
# [vicreg-edu submit] job 2 attempt 1 | task 0/2 (local 0) on vm | master vm:56427 | gloo (CPU) | OMP_NUM_THREADS=1
# [vicreg-edu submit] no checkpoint yet: training starts at step 0
# VICReg | small_cnn + expander 512-512-512 | shapes | world=2 device=cpu amp=None | batch 64 (32/proc) | 4 steps/epoch x 2 epochs | lr 0.0025 adamw
# submitit INFO (2026-11-30 11:48:11,470) - Job has not timed out. Ran 1 minutes out of requested 4320 minutes.
# submitit WARNING (2026-11-30 11:48:11,470) - Caught signal SIGUSR2 on vm: this job is preempted.
# submitit INFO (2026-11-30 11:48:11,470) - Calling checkpoint method.
# [vicreg-edu submit] USR2 received: requeueing; the next attempt resumes from the latest checkpoint (--resume auto)
# submitit INFO (2026-11-30 11:48:11,525) - Requeued job 2 (30 remaining timeouts)
# submitit INFO (2026-11-30 11:48:11,525) - Exiting gracefully after preemption/timeout.
# submitit ERROR (2026-11-30 11:48:11,583) - Submitted job triggered an exception
# slurmstepd-vm: error: *** STEP 2.0 ON vm CANCELLED AT 2026-11-30T11:48:11 DUE TO JOB REQUEUE ***
# submitit WARNING (2026-11-30 11:48:11,648) - Bypassing signal SIGTERM
# submitit INFO (2026-11-30 11:48:19,536) - Starting with JobEnvironment(job_id=2, hostname=vm, local_rank=0(2), node=0(1), global_rank=0(2))
# [vicreg-edu submit] job 2 attempt 2 | task 0/2 (local 0) on vm | master vm:56427 | gloo (CPU) | OMP_NUM_THREADS=1
# [vicreg-edu submit] resuming from .../preempted0/run/checkpoint.pt at step 1
# VICReg | small_cnn + expander 512-512-512 | shapes | world=2 device=cpu amp=None | batch 64 (32/proc) | 4 steps/epoch x 2 epochs | lr 0.0025 adamw
# [vicreg-edu submit] task 0 done (status 0): 34.7 s CPU, 154.7 s wall in this attempt
# submitit INFO (2026-11-30 11:51:04,571) - Job completed successfully
# ```
#
# How to read it. The signal reached rank 0 while it was writing the checkpoint of step 2; the
# handler's exit interrupted that write (the `ERROR` line; the `.err` log shows `torch.save`
# failing mid-file), and `checkpoint.pt` still held step 1, because a new checkpoint replaces
# the old one by an atomic rename only once it is complete. SLURM cancelled the job step
# "due to job requeue" (`scontrol show job 2` then says `Restarts=1`). A requeued job is held
# for about two minutes before it may start again (`Reason=BeginTime`); the test lifts that hold
# with `scontrol update JobId=2 StartTime=now`, hence the 8 seconds between the attempts. Attempt
# 2 resumed at step 1, redid step 2, and ended at step 8 with a model state equal, all 41 tensors, to
# those of the uninterrupted job (the test compares them with `torch.equal`: the largest
# difference is exactly 0) and with the same optimiser state. Both jobs ran on the CPU with gloo
# (the test machine has no GPU); on a GPU cluster the same path runs with NCCL.
#
# A real time limit goes the same way. Run once by hand on the same machine and day (not part of
# the tests), a longer demo job submitted with `--time 3 --signal-delay 60` got `USR2` from SLURM
# itself two minutes into each attempt; submitit logged `this job is timed-out` and requeued it
# (`29 remaining timeouts`; the second time, the stopping job step killed submitit's own
# `scontrol requeue` before it returned, so the log shows an exception, but SLURM had requeued
# the job), and the third attempt resumed at step 2. The machine was so busy that the first
# attempt spent its whole two minutes starting up: size `--time` and `--signal-delay` so that an
# attempt gets past its start-up and its first checkpoint.
#
# %% [markdown]
# ## A smoke run of the very same script
#
# The next cells run `python -m torch.distributed.run` (that is `torchrun`) with two processes on
# the CPU: the gloo backend instead of NCCL, the built-in Shapes data and the small CNN instead
# of ImageNet and ResNet-50, a handful of steps. Everything else is the code path of the
# cluster run: process group, split batch, gathered loss, synchronised batch norm, DDP, rank-0
# logging and checkpointing. First, a run that stops after 12 of its 16 steps (`max_steps`
# plays the part of a time limit or a pre-emption).

# %%
smoke_dir = Path("runs/ch09_smoke")
shutil.rmtree(smoke_dir, ignore_errors=True)
smoke_set = ["epochs=2", "train_size=512", "test_size=256", "batch_size=64",
             "diag_size=64", "knn_every=0", "tensorboard=false", f"out_dir={smoke_dir}"]


def torchrun(*train_args, nproc=2):
    """Run `torchrun --standalone --nproc_per_node=nproc -m vicreg_edu.train ...`; print stdout."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "vicreg_edu.train", "--preset", "demo", *train_args]
    print("$ python", shlex.join(cmd[1:]))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    print(proc.stdout)
    if proc.returncode != 0:
        print(proc.stderr[-4000:])
    return proc


# %%
first = torchrun("--set", *smoke_set, "max_steps=12", "final_eval=false")
assert first.returncode == 0, "the smoke run failed (its stderr is printed above)"
assert "world=2" in first.stdout and "batch 64 (32/proc)" in first.stdout
ckpt = torch.load(smoke_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
print("checkpoint written at step", ckpt["step"], "with", len(ckpt["rng"]), "random-number states")
assert ckpt["step"] == 12

# %% [markdown]
# The first line printed by the trainer is the one to check on a cluster: `world=2` processes,
# a global batch of 64 split into 32 per process (`batch_size=64` in the command replaces the demo
# preset's 128, so the 512 images make 8 steps an epoch), and the learning rate after linear
# scaling of the demo preset's `base_lr` of 0.015, $0.015 \times 64 / 256 = 0.00375$ (the `lr`
# field of that line).
# The epoch lines show the loss and its three terms (invariance $s$, variance $v$, covariance
# $c$), the online linear probe's accuracy and the embedding's effective rank (chapter 6); the
# second one reports the interrupted epoch at step 12. The checkpoint holds one random-number
# state per process.
#
# Now the "requeued job": the same command with `--resume auto` and without the step limit. It
# continues at step 12 and finishes the remaining four steps, then runs the final k-NN
# evaluation on rank 0.

# %%
second = torchrun("--set", *smoke_set, "--resume", "auto")
assert second.returncode == 0, "the resumed smoke run failed (its stderr is printed above)"
ckpt = torch.load(smoke_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
steps = [r["step"] for r in map(json.loads, (smoke_dir / "metrics.jsonl").read_text().splitlines())
         if r["kind"] == "step"]
print("final checkpoint at step", ckpt["step"], "| steps logged in metrics.jsonl:", steps)
assert ckpt["step"] == 16 and steps == sorted(set(steps)) and steps[-1] == 16

# %% [markdown]
# The resumed run picked up at step 12 (its progress bar, on stderr, starts at 12/16), and the
# metrics file holds each step once: records written after the last checkpoint by an
# interrupted run are dropped on resume, so the curves have no duplicated stretch. The numbers
# themselves mean little after 16 steps on a few hundred images; the point is that the command
# works.
#
# Finally, resuming with a different recipe. `check_resume_config` is what the trainer calls
# right after loading a checkpoint:

# %%

changed = Config(**ckpt["config"]).replace(base_lr=0.05)
try:
    check_resume_config(ckpt["config"], changed)
except ValueError as refused:
    print("ValueError:", refused)
else:
    raise AssertionError("a changed learning rate must be refused")

# %% [markdown]
# ## The learning-rate schedule of the full recipe
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
# [Goyal et al., 2017](https://arxiv.org/abs/1706.02677)). The factor 0.001 is the config field `end_lr_ratio`. The demo preset of
# the earlier chapters does not use the official value: its cosine stops at $0.75 \times$ the peak
# after a 1-epoch warm-up, because 10 epochs are too few to spend the second half of them at a small
# learning rate (in the recipe search, `load_results("recipe_search")`, seed 0: $k$-NN 0.712 with
# this schedule and `base_lr` 0.015, stage "schedule2", against 0.615 with the official decay and
# `base_lr` 0.01, stage "confirm"). The plot evaluates the official schedule at
# every step of the 1000-epoch recipe and of the README's 100-epoch variant.

# %%
def schedule(cfg, n_images=imagenet_train):
    """Per-step learning rate of a config (x in epochs), as the trainer computes it."""
    per_epoch = n_images // cfg.batch_size
    total, warmup = cfg.epochs * per_epoch, round(cfg.warmup_epochs * per_epoch)
    steps = np.union1d(np.arange(0, total, max(1, total // 20_000)), [warmup, total])
    lrs = np.array([learning_rate(int(s), total, warmup, cfg.lr, cfg.end_lr_ratio) for s in steps])
    return steps / per_epoch, lrs


short = get_config("imagenet-resnet50", fast=False, epochs=100, batch_size=512, base_lr=0.3)
curves = {"1000 epochs, batch 2048, base_lr 0.2": schedule(full),
          "100 epochs, batch 512, base_lr 0.3": schedule(short)}

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
for label, (epochs, lrs) in curves.items():
    axes[0].plot(epochs, lrs, label=label)
    axes[1].plot(epochs, lrs, label=label)
axes[0].set(xlabel="epoch", ylabel="learning rate", title="Warm-up + cosine: the whole run")
axes[1].set(xlabel="epoch", ylabel="learning rate", xlim=(0, 30), title="The first 30 epochs: 10 of warm-up")
axes[1].axvline(full.warmup_epochs, color="grey", ls="--", lw=1)
axes[0].legend()
plt.show()

# %% [markdown]
# The 1000-epoch run climbs to its peak in ten epochs, then spends most of its time at a high
# learning rate: a cosine is back at half its height only halfway through the decay, at epoch
# $(10 + 1000)/2 = 505$. The 100-epoch variant has a smaller peak (a smaller batch) and the same
# shape compressed tenfold; the warm-up is 10 epochs in both, so it is a tenth of the short run.
# Both end at $0.001 \times$ their peak (the next cell checks these numbers).

# %%
epochs_1000, lrs_1000 = curves["1000 epochs, batch 2048, base_lr 0.2"]
peak, end = lrs_1000.max(), lrs_1000[-1]
decayed = (epochs_1000 > full.warmup_epochs) & (lrs_1000 <= (peak + end) / 2)
half = epochs_1000[np.argmax(decayed)]  # first epoch after the warm-up below the midpoint
print(f"peak {peak:.2f} at epoch {epochs_1000[lrs_1000.argmax()]:.0f}, final {end:.4f}, "
      f"half-way down at epoch {half:.0f}")
assert abs(peak - full.lr) < 1e-12 and abs(end - full.lr * full.end_lr_ratio) < 1e-12 and abs(half - 505) < 1

# %% [markdown]
# ### The linear scaling rule
#
# The peak learning rate is `base_lr * batch_size / 256`: double the batch, double the learning
# rate, so that an epoch moves the weights about as far whatever the batch size
# ([Goyal et al., 2017](https://arxiv.org/abs/1706.02677)). The rule is a starting point, not a law: the paper's appendix gives
# tuned `base_lr` values for small batches (0.8 at batch 128, 0.5 at 256, 0.4 at 512) instead of
# the 0.2 or 0.3 used at large batches, and LARS ([You et al., 2017](https://arxiv.org/abs/1708.03888)) adapts the step of each
# weight matrix to its norm, which is what keeps batch 2048 stable.

# %%
paper_base_lr = {128: 0.8, 256: 0.5, 512: 0.4, 2048: 0.2}  # paper appendix C.4; 2048: official recipe
print(f"{'batch':>6s} {'GPUs x 64':>10s} {'lr, base 0.2':>13s} {'lr, paper':>10s}")
for batch in (128, 256, 512, 1024, 2048, 4096):
    rule = get_config("imagenet-resnet50", fast=False, batch_size=batch).lr
    paper = f"{batch / 256 * paper_base_lr[batch]:.3f}" if batch in paper_base_lr else "-"
    print(f"{batch:>6d} {batch // 64:>10d} {rule:>13.3f} {paper:>10s}")

# %% [markdown]
# ## What the curves of a full run look like
#
# We cannot show a real 1000-epoch run here (and will not draw a made-up one), so here is what
# to expect and what to watch, from the paper and from the diagnostics of chapters 5 and 6.
# The trainer writes the same `metrics.jsonl` on the cluster as on the laptop, so
# `vicreg_edu.plots.plot_training_curves` and `plot_collapse_curves` read a cluster run
# unchanged (copy the file, or open the TensorBoard events in `out_dir/tb`).
#
# - **Accuracy grows with training time, with diminishing returns.** The paper reports 68.6%
#   linear top-1 after 100 epochs (Table 7, batch 2048) and 73.2% after 1000 (Table 1). The online
#   probe printed in the epoch lines should follow the same trend, usually below a proper linear
#   evaluation: it is trained on augmented views while the encoder changes under it.
# - **The loss terms**, read with the table "healthy run vs collapse" of chapter 6. The variance
#   term should fall to near zero early (every embedding dimension reaches a standard deviation
#   of about $\gamma = 1$) and stay there; a variance term that climbs back towards
#   $\gamma - \sqrt{\epsilon} \approx 0.99$, with the standard deviation falling to 0, is complete
#   collapse. The covariance term need not fall: it typically stays roughly flat or rises slowly
#   while the other two terms fall
#   ([facebookresearch/vicreg#14](https://github.com/facebookresearch/vicreg/issues/14)). The
#   invariance term falls but is not expected to reach zero: two crops of one image share only
#   part of their content. A covariance term of (nearly) 0 *together with* an invariance term of
#   (nearly) 0 is the warning sign: the embeddings have shrunk to a point, and the standard
#   deviation and $v$ confirm it. For dimensional collapse, watch the effective rank.
# - **Instabilities** most often show up in or right after the warm-up, when the learning rate
#   reaches its peak. A NaN loss stops the trainer with the step and the last good
#   checkpoint; lower `base_lr`, lengthen `warmup_epochs` or switch off mixed precision, then
#   resume.
# - **Throughput** is printed as images per second in the step records (`imgs_per_s`). At the
#   paper's speed a 32-GPU run processes about 3200 images per second; far less usually means
#   the data loader is starving the GPUs (raise `num_workers`).

# %% [markdown]
# ## The full-scale command
#
# The smoke run above used the same module and the same flags as this command; only the preset,
# the data folder and the process layout differ.

# %%
data_dir, out_dir = "/datasets/imagenet", "/checkpoints/vicreg"
train_args = ["--preset", "imagenet-resnet50", "--set", f"data_dir={data_dir}", f"out_dir={out_dir}",
              "--resume", "auto"]
rendezvous = ["--nnodes=4", "--nproc_per_node=8", "--rdzv_backend=c10d",
              "--rdzv_endpoint=$HEAD_NODE:29500", "--rdzv_id=vicreg"]
print("# on each of the 4 nodes:")
print(" ".join(["torchrun", *rendezvous, "-m", "vicreg_edu.train", *train_args]))
print("# or through SLURM:")
print(" ".join(["vicreg-edu submit --nodes 4 --gpus-per-node 8 --partition gpu --", *train_args[:-2]]))

# %% [markdown]
# ## Exercise
#
# **Sixteen GPUs.** Your cluster has 2 nodes × 8 GPUs and you keep 64 images per GPU. Using the
# linear scaling rule with the preset's `base_lr` of 0.2, what is the peak learning rate, and how
# many optimiser steps does the 10-epoch warm-up last on ImageNet's 1,281,167 training images
# (the trainer drops the last incomplete batch of every epoch)? Write your numbers below, then run
# the answer cell.

# %%
my_peak_lr = None  # replace None with your peak learning rate (a number)
my_warmup_steps = None  # replace None with your number of warm-up steps (an integer)

# %% cellView="form" collapsed=true jupyter={"outputs_hidden": true, "source_hidden": true} mystnb={"code_prompt_hide": "Hide solution", "code_prompt_show": "Show solution"} tags=["solution", "hide-cell"]
# @title Solution (run this cell to check your answer; open it to read the worked answer)
# Answer: global batch = 16 GPUs x 64 = 1024, so lr = 0.2 * 1024 / 256 = 0.8.
# Steps per epoch = 1281167 // 1024 = 1251, so the warm-up lasts 10 * 1251 = 12510 steps.
cfg16 = get_config("imagenet-resnet50", fast=False, batch_size=16 * 64)
expected_lr = cfg16.lr
expected_warmup = round(cfg16.warmup_epochs * (imagenet_train // cfg16.batch_size))
assert abs(expected_lr - 0.8) < 1e-12 and expected_warmup == 12510
assert learning_rate(expected_warmup, 1000 * 1251, expected_warmup, expected_lr) == expected_lr
for what, mine, expected in [("peak lr", my_peak_lr, expected_lr), ("warm-up steps", my_warmup_steps, expected_warmup)]:
    if mine is None:
        print(f"{what}: not answered yet (replace None in the cell above, then rerun both cells)")
    else:
        assert abs(mine - expected) < 1e-6, f"{what}: {mine} is wrong; check the global batch and the steps per epoch"
        print(f"{what}: {mine} is right")
print(f"worked solution: peak learning rate {expected_lr:g}, warm-up {expected_warmup} steps")
