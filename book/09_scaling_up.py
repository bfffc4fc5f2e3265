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
# shows how the *same* trainer gets there: the two presets of the paper's runs, what fits on which
# GPUs, the exact `torchrun` and SLURM commands, ImageNet as it comes out of its archives, how a
# pre-empted job loses no step, and the paper's evaluation protocol, so a number can be compared
# with 73.2%. The cells run the very same script with two processes on the CPU, so every command
# shown is known to work, and end with the full-scale command.

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
from vicreg_edu import config, optim

print("fast mode:", FAST)

# %% [markdown]
# ## The paper's two runs as presets
#
# The official repository (facebookresearch/vicreg, `README.md` and `main_vicreg.py`) launches two
# runs, and each is a preset here. `imagenet-resnet50` is the paper's 1000-epoch run: a global
# batch of 2048 on 4 nodes of 8 GPUs, 64 images per GPU, base learning rate 0.2.
# `imagenet-resnet50-100ep` is the official single-node run: 100 epochs, batch 512 on 8 GPUs,
# again 64 per GPU, base learning rate 0.3. We ask for `fast=False` so the cell prints the full
# recipes even when the test suite runs the book in fast mode.

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
# Read it top to bottom: an `imagefolder` dataset (ImageNet as `train/<synset>/*.JPEG`), a
# ResNet-50 whose 2048-d output feeds an expander with three layers of 8192 units, LARS
# ([You et al., 2017](https://arxiv.org/abs/1708.03888)) with the linear learning-rate scaling rule
# (peak $0.2 \times 2048 / 256 = 1.6$ and $0.3 \times 512 / 256 = 0.6$), 10 warm-up epochs,
# the loss weights 25/25/1, mixed precision chosen for the GPU (`amp="auto"`, below),
# synchronised batch norm, 10 data-loading workers per GPU, a checkpoint every 1000 steps and a
# per-epoch collapse report on 2048 held-out images. The batch is **global**: with $W$ processes
# each sees `batch_size / W` images, and the variance and covariance terms are computed on the
# embeddings gathered from all processes, so the loss is that of one batch of 2048 however many
# GPUs share it. Why the *gradient* is then the single-process one is the next section.

# %% [markdown]
# ## The gathered loss and its gradient
#
# The variance and covariance terms are statistics of the whole batch: the standard deviation of
# a dimension over 64 images is not the one over 2048. So every process $r$ of $W$ sends its
# embeddings $Z_r$ (64 rows) to all others, and each computes the same $v$ and $c$ on the
# gathered $Z = [Z_0; \dots; Z_{W-1}]$ (2048 rows). In `vicreg_edu.loss` this is
# `gather_with_grad`, the official code's `FullGatherLayer`. The forward pass is a plain
# `all_gather` of equal shares (the loaders give every process the same number of images, and the
# gather checks it instead of exchanging sizes every step). The backward pass is where it matters: rank $r$'s network produced only $Z_r$, so
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
# ## Precision
#
# The official `main_vicreg.py` runs the whole forward pass, the loss included, under fp16
# autocast with a `GradScaler`: the paper's V100 GPUs have no bfloat16 arithmetic. fp16 has a
# narrow exponent range (largest value 65504, smallest normal number about $6 \times 10^{-5}$),
# so small gradients underflow unless the loss is multiplied by a large factor before the
# backward pass; the scaler does that, divides the gradients back before the optimiser step and
# skips a step (lowering the factor) when a gradient overflows. bfloat16 keeps float32's exponent
# range with fewer mantissa bits and needs no scaler. So `amp="auto"` means: **bf16** where the GPU
# has it (`torch.cuda.is_bf16_supported()`: A100, H100 and newer), **fp16 with the GradScaler**
# elsewhere (V100, T4), no autocast on a CPU; the first line the trainer prints says which and
# why, e.g. `amp=auto -> fp16 + GradScaler (no bf16 on this GPU)`. The scaler's state is saved in
# the checkpoint (the official code does not save it).
#
# Two places where this trainer computes in more precision than the official code. The VICReg
# loss runs in float32 (`vicreg_loss` casts the
# embeddings and leaves autocast), where the official code computes it in fp16. And the
# covariance term's $N \times N$ Gram side, used when the gathered batch is smaller than the
# 8192 dimensions, runs in float64 on a GPU: that costs about as much as float32 on A100, H100
# and H200 (full-rate float64), but 32 to 64 times the float32 time on most other GPUs, V100
# included; on a GPU the start line says so (`covariance Gram in float64: ...`). On a 32-GPU run
# the gathered batch (2048) is below 8192, so this is the side the loss takes.

# %% [markdown]
# ## What fits on which GPUs
#
# Memory decides how many images each GPU can take. The model is built on PyTorch's `meta`
# device, which records shapes without allocating, so we can count the parameters of the full
# model on any laptop:

# %%
with torch.device("meta"):
    big = models.VICReg(backbone=full.backbone, expander=full.expander)
n_backbone = sum(p.numel() for p in big.backbone.parameters())
n_expander = sum(p.numel() for p in big.expander.parameters())
print(f"backbone (ResNet-50 without its classifier): {n_backbone / 1e6:6.1f} M parameters")
print(f"expander {full.expander} (2048 -> 8192 -> 8192 -> 8192): {n_expander / 1e6:6.1f} M parameters")
print(f"weights + gradients + LARS momentum in fp32: {3 * 4 * (n_backbone + n_expander) / 1e9:.1f} GB on every GPU")

# %% [markdown]
# The expander has six times more parameters than the encoder it sits on, and those fixed 2 GB
# come before a single activation. The activations grow with the images per GPU. The table below
# is an **estimate** (there is no GPU in this book's build): `vicreg_edu.memory` runs one whole
# training step (both views, the loss on the gathered batch, the probe, backward, the LARS step)
# on *fake* tensors, which carry shapes and dtypes but no data, and counts the bytes alive at the
# peak; the count is then multiplied by a headroom of 1.2 for the allocator and the CUDA
# libraries. That factor is calibrated on the one published figure, the paper's 11.3 GB per GPU at
# 64 images (fp16, 32 V100s); `bench/README.md` also compares the count with the loss's peak
# measured on an H200, which it underestimates by 64-300 MiB.

# %%
print(f"estimated peak memory per GPU (GB, x{memory.HEADROOM} headroom), {memory.describe(full)}, 8 GPUs:")
print(f"{'images/GPU':>10s} " + " ".join(f"{amp:>7s}" for amp in memory.AMPS))
for per_gpu in (32, 64, 128, 256):
    row = [memory.step_memory(full, per_gpu, amp, world=8) * memory.HEADROOM / memory.GB for amp in memory.AMPS]
    print(f"{per_gpu:>10d} " + " ".join(f"{gb:7.1f}" for gb in row))

# %% [markdown]
# bf16 and fp16 take the same bytes; fp32 1.4 to 1.8 times as many. At the 1000-epoch preset's
# batch of 2048 on *one* node, each of 8 GPUs takes 256 images: about 32 GB in bf16, which fits
# an 80 GB GPU and, by this estimate, a 40 GB one, but leaves no room on a 32 GB V100. `memory.launch_plan` turns the
# table into a command per hardware class, keeping 10% spare; before training starts on a GPU,
# the trainer compares the same estimate with `torch.cuda.mem_get_info()` and stops with one line
# naming a per-GPU batch that fits (`--set memory_check=false` goes on with a warning instead).

# %%
for hardware, spec in memory.HARDWARE.items():
    plan = memory.launch_plan(**spec)
    print(f"{hardware}:\n    {plan.command}\n    ({plan.note})")

# %% [markdown]
# Fewer images per GPU than the paper's 2048 / 32 = 64 change the global batch, and then the
# learning rate: the paper's appendix C.4 gives tuned base learning rates for small batches
# (`PAPER_BASE_LR`, used by the V100 line above). The 100-epoch preset follows the official launch
# (0.3 at batch 512), not the appendix's 0.4; the repository's issue #23 asks which is right and has
# no answer.
#
# What does the paper's "11 hours per 100 epochs on 32 V100 GPUs" mean per step?

# %%
imagenet_train = 1_281_167  # ILSVRC-2012 training images
gpus, hours_per_100 = 32, 11.0  # paper: 32 V100, 11 h per 100 epochs
steps_per_epoch = imagenet_train // full.batch_size  # the trainer drops the last partial batch
imgs_per_s = 100 * imagenet_train / (hours_per_100 * 3600)
step_s = full.batch_size / imgs_per_s
print(f"steps per epoch: {steps_per_epoch}; steps in {full.epochs} epochs: {steps_per_epoch * full.epochs:,}")
print(f"throughput: {imgs_per_s:,.0f} images/s in total, {imgs_per_s / gpus:.0f} per GPU")
print(f"{full.epochs} epochs: {hours_per_100 * full.epochs / 100:.0f} h on {gpus} GPUs")
print(f"a checkpoint every {full.ckpt_every} steps = every {full.ckpt_every * step_s / 60:.0f} min")

# %% [markdown]
# About four and a half days of 32 GPUs: no queue gives a job that long in one piece, and
# pre-emptible queues stop jobs at any moment, so the run must survive being stopped. Periodic
# checkpoints bound what a crash loses; a pre-emption, which comes with a signal, loses nothing
# (below). The data loader must also keep up: about 100 images per second per GPU to decode,
# crop and jitter, which is why the preset asks for 10 workers per GPU and `vicreg-edu submit`
# requests 10 CPUs per task.

# %% [markdown]
# ## ImageNet as it comes
#
# Pre-training reads only `train/`: the 1000 synset folders (`n01440764/`, ...) of `*.JPEG` files
# that `ILSVRC2012_img_train.tar` extracts to. The per-epoch collapse report and the k-NN
# evaluation want held-out images. They use `val/` when it is there, in either layout: sorted into
# synset folders (what `torchvision.datasets.ImageNet` leaves behind), or flat as
# `ILSVRC2012_img_val.tar` extracts it (50,000 files in one folder), with the labels read from the
# devkit (`ILSVRC2012_devkit_t12.tar.gz`, torchvision's `meta.bin`, or Kaggle's
# `LOC_val_solution.csv`) and nothing moved or written in the data folder. Without `val/` they use
# a fixed slice of `train/`, chosen by a hash of each file's path (the same on every machine),
# which is left out of the k-NN memory bank. The cell writes a tiny folder in the real layout, with
# `train/` only, and asks what the trainer would use.

# %%
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
print(f"k-NN bank {len(splits.train)} images, held-out queries {len(splits.test)}")

# %% [markdown]
# ## Launching: one node, many nodes, SLURM
#
# The trainer is `python -m vicreg_edu train`, started once per GPU by `torchrun`, which sets
# `RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`. The trainer reads them
# (`vicreg_edu.distributed.setup`), joins the process group (NCCL on GPUs, gloo on CPUs), takes
# GPU `LOCAL_RANK`, converts batch norm to synchronised batch norm and wraps the model in
# `DistributedDataParallel`. Nothing else changes between a laptop and a cluster.
#
# **One node, 8 GPUs**: the official 100-epoch run (64 images per GPU, any GPU of 16 GB or more):
#
# ```bash
# torchrun --nproc_per_node=8 -m vicreg_edu train --preset imagenet-resnet50-100ep \
#     --set data_dir=/datasets/imagenet
# ```
#
# **Four nodes × 8 GPUs**: the paper's 1000-epoch run. Run the same command on every node;
# torchrun's `c10d` rendezvous, hosted by `$HEAD_NODE` (any one of the nodes), connects them:
#
# ```bash
# torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=$HEAD_NODE:29500 \
#     --rdzv_id=vicreg -m vicreg_edu train --preset imagenet-resnet50 \
#     --set data_dir=/datasets/imagenet out_dir=/checkpoints/vicreg --resume auto
# ```
#
# **SLURM, two ways.** `vicreg-edu submit` (`pip install 'vicreg-edu[slurm]'`) goes through
# submitit, as the official `run_with_submitit.py`: one task per GPU, each running the same
# `train`; everything after `--` is the argument list of `vicreg-edu train`, checked before
# anything is submitted. It requests, unless told otherwise, the official launcher's resources:
# `num_workers` CPUs per task, 40 GB of memory per GPU, and `USR2` 120 s before the time limit;
# it prints them before submitting. The next cell parses the command with the real parsers and
# prints that block (parsing needs neither submitit nor SLURM).

# %%
submit_cmd = ("vicreg-edu submit --nodes 4 --gpus-per-node 8 --partition gpu --time 4320 -- "
              "--preset imagenet-resnet50 --set data_dir=/datasets/imagenet out_dir=/checkpoints/vicreg")
submit_args = cli.build_parser().parse_args(shlex.split(submit_cmd)[1:])
cfg_slurm = cli.submit_config(submit_args)
print("\n".join(slurm.request(submit_args, cfg_slurm).lines()))
tasks_per_node, slurm_world = slurm.resources(submit_args)
print(f"trainer: batch {cfg_slurm.batch_size} -> {cfg_slurm.batch_size // slurm_world} images per GPU, "
      f"resume={slurm.job_config(cfg_slurm).resume!r}, out_dir {cfg_slurm.out_dir}")

# %% [markdown]
# Without submitit, the package ships an sbatch script for `srun torchrun`: one task per node, each
# running torchrun with a c10d rendezvous on the job's first node. Copy it, edit its `#SBATCH`
# lines for your site, and submit it with the trainer's arguments:
#
# ```bash
# vicreg-edu submit --print-sbatch > vicreg.sbatch
# sbatch vicreg.sbatch --preset imagenet-resnet50 --set data_dir=/datasets/imagenet out_dir=/shared/vicreg
# ```
#
# Its resource lines, read from the installed copy:

# %%
script = slurm.sbatch_script().read_text()
print("\n".join(line for line in script.splitlines() if line.startswith("#SBATCH")))
print([line.strip() for line in script.splitlines() if "torchrun --nnodes" in line][0])

# %% [markdown]
# Both are tested on a real SLURM (`tests/test_slurm.py` starts a one-node SLURM on the test
# machine and runs them with CPU tasks and gloo); on a GPU cluster the same path runs with NCCL.
# `out_dir` must be on a file system every node sees.

# %% [markdown]
# ## Pre-emption without losing a step
#
# SLURM pre-empts a job by sending **SIGTERM** to every process, then SIGKILL after the partition's
# grace time; `scontrol requeue` does the same. USR2 comes only before the time limit, and only
# when the job asked for it. So the trainer handles SIGTERM (and USR1 and USR2): the signal only
# sets a flag; the processes agree on it with a small all-reduce one step later (a lagged check,
# so no step waits for it), finish that step, write `checkpoint.pt` at it and exit with status
# 143 (128 + 15, the status SIGTERM itself would give; `torchrun` around them then exits with 1),
# so SLURM sees an unfinished job and a
# requeued job resumes where this one stopped. A second signal while the checkpoint is written is
# ignored, and the file is written atomically (a temporary file, `fsync`, then a rename), so a
# SIGKILL at any instant leaves the old checkpoint or the new one, never half a file. Under
# submitit, USR2 (the time limit) is handed on to submitit's own handler after the checkpoint,
# which requeues the job.
#
# This is the log of task 0 of a job pre-empted for real on the test suite's SLURM
# (`scontrol requeue` once step 1 was logged, no periodic checkpoints: `ckpt_every=0`), written by
# the test itself:

# %%
log = (resources.files("vicreg_edu.results") / "slurm_preemption_log.txt").read_text()
print(log)

# %% [markdown]
# How to read it. Attempt 1 got SIGTERM after step 1 had been logged; its tasks finished step 3
# (the step on which the lagged check agreed), wrote the checkpoint there, printed the `stopped
# by SIGTERM at step 3` line and exited with 143. SLURM requeued the job; attempt 2 resumed at
# step 3 and ended with weights equal, tensor for tensor, to an uninterrupted job's. A job's grace
# time must cover about two steps and one checkpoint write (at the paper's speed about 0.6 s a
# step; the full model's weights and LARS momentum are about 1.4 GB).
#
# ## A smoke run of the very same script
#
# The next cells run `torchrun` (as `python -m torch.distributed.run`) with two processes on the
# CPU: gloo instead of NCCL, the built-in Shapes data and the small CNN instead of ImageNet and
# ResNet-50, 16 steps. Everything else is the code path of the cluster run: process group, split
# batch, gathered loss, synchronised batch norm, DDP, rank-0 logging and checkpointing, and the
# signal handling. We start it, send it SIGTERM once a few steps are logged, as SLURM would, then
# restart the same command with `--resume auto`. The runs are far too short to learn the classes,
# so the final k-NN evaluation is switched off: its number would be at chance and mean nothing.

# %%
smoke_dir = Path("runs/ch09_smoke")
shutil.rmtree(smoke_dir, ignore_errors=True)
smoke_set = ["epochs=2", "train_size=512", "test_size=256", "batch_size=64", "diag_size=64", "knn_every=0",
             "log_every=1", "ckpt_every=0", "final_eval=false", "tensorboard=false", f"out_dir={smoke_dir}"]
cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
       "-m", "vicreg_edu", "train", "--preset", "demo", "--set", *smoke_set, "--resume", "auto"]
env = dict(os.environ, OMP_NUM_THREADS="1")
print("$ python", shlex.join(cmd[1:]))


def logged_steps():
    path = smoke_dir / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")] if path.exists() else []
    return [r["step"] for r in records if r["kind"] == "step"]


first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
deadline = time.time() + 600
while len(logged_steps()) < 4 and first.poll() is None and time.time() < deadline:
    time.sleep(0.05)
print("steps logged before the signal:", logged_steps())
first.send_signal(signal.SIGTERM)  # what SLURM sends on pre-emption
out, err = first.communicate(timeout=300)
print(out.strip().splitlines()[0])
print("exit status", first.returncode, "|", [line for line in err.splitlines() if "stopped by" in line][0])
stopped = torch.load(smoke_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["step"]
print("checkpoint at step", stopped, "| last step logged:", logged_steps()[-1])
assert stopped == logged_steps()[-1] and stopped < 16

# %% [markdown]
# The first line printed by the trainer is the one to check on a cluster: `world=2` processes,
# a global batch of 64 split into 32 per process, the precision chosen (`amp=auto -> none (CPU)`)
# and the learning rate after linear scaling ($0.015 \times 64 / 256 = 0.00375$). The signal
# arrived once step 4 had been logged; the processes stopped at step 6, the step on which the
# lagged check agreed, checkpointed at it and exited (the trainers with 143, torchrun with 1). The
# checkpoint holds the last logged step: nothing is lost, although no periodic checkpoint was ever
# written (`ckpt_every=0`).
#
# Now the "requeued job": the very same command.

# %%
second = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
assert second.returncode == 0, second.stderr[-3000:]
print("\n".join(line for line in second.stdout.splitlines() if line.startswith(("VICReg", "epoch"))))
steps = logged_steps()
print("steps in metrics.jsonl:", steps)
assert steps == list(range(1, 17))

# %% [markdown]
# The resumed run picked up at step 6 and the metrics file holds every step once. The epoch lines
# show the loss terms after 16 steps on 512 images ($v$ the average of the two branches' variance
# terms, $c$ the sum of their covariance terms, as everywhere in the book), far from a trained
# model: the online probe is at chance (0.11), which says only that 16 steps teach nothing, so
# no accuracy of this run is evidence of anything; the point is that the command works. The trainer also refuses to resume with a
# different recipe (a changed learning rate would give a run that is neither the old one nor a new
# one), and says so in one line (the trainers exit with 2, torchrun with 1):

# %%
changed = [*cmd[:cmd.index("--resume")], "base_lr=0.05", "--resume", "auto"]  # the same --set list, one more key
refused = subprocess.run(changed, capture_output=True, text=True, timeout=300, env=env)
print("exit status", refused.returncode)
print([line for line in refused.stderr.splitlines() if line.startswith("vicreg-edu: error")][0])

# %% [markdown]
# ## The paper's evaluation
#
# A pre-training run is judged by the paper's protocol, not by the trainer's k-NN. The official
# `evaluate.py` freezes the backbone and trains a linear classifier on its 2048-d output: SGD with
# momentum 0.9, batch 256, 100 epochs, a cosine schedule, learning rate 0.02, weight decay
# $10^{-6}$, random resized crops and flips for training, resize to 256 and a centre crop of 224
# for validation. The semi-supervised protocol fine-tunes the whole network for 20 epochs on 1% or
# 10% of the labels (the SimCLR subset lists: one file name a line), with separate learning rates
# for the backbone and the classifier and no weight decay. `vicreg_edu.linear_eval` implements
# both, under `torchrun` (DDP, loader workers, a checkpoint every epoch, `--resume auto`), and
# reports top-1 and top-5. Its hyper-parameters, as the command line builds them:

# %%
# NBVAL_CHECK_OUTPUT
for protocol, percent in (("linear", None), ("semi", 1), ("semi", 10)):
    ecfg = linear_eval.protocol_config(protocol, percent, subset=f"{percent}percent.txt" if percent else "")
    print(f"{protocol:>6s} {ecfg.percent:>3d}%: epochs {ecfg.epochs}, batch {ecfg.batch_size}, "
          f"lr head {ecfg.lr_head:g}, lr backbone {ecfg.lr_backbone:g}, weight decay {ecfg.weight_decay:g}, "
          f"crop {ecfg.crop_size} / resize {ecfg.resize_size}")

# %% [markdown]
# Before spending GPU-days, check the evaluation itself against the paper with the official
# pretrained weights (`resnet50.pth` from the repository's README, a torchvision-style state dict
# without the classifier). The same loader takes them and our exported backbones:
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
# learning rate (chapter 5). The plot evaluates the official schedule at
# every step of the two presets.

# %%
def schedule(cfg, n_images=imagenet_train):
    """Per-step learning rate of a config (x in epochs), as the trainer computes it."""
    per_epoch = n_images // cfg.batch_size
    total, warmup = cfg.epochs * per_epoch, round(cfg.warmup_epochs * per_epoch)
    steps = np.union1d(np.arange(0, total, max(1, total // 20_000)), [warmup, total])
    lrs = np.array([optim.learning_rate(int(s), total, warmup, cfg.lr, cfg.end_lr_ratio) for s in steps])
    return steps / per_epoch, lrs


short = get_config("imagenet-resnet50-100ep", fast=False)
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
# ([Goyal et al., 2017](https://arxiv.org/abs/1706.02677)). The rule is a starting point, not a law: the paper's appendix C.4 gives
# tuned `base_lr` values for small batches instead of the 0.2 used at batch 2048, and LARS adapts
# the step of each weight matrix to its norm, which is what keeps large batches stable.

# %%
print(f"{'batch':>6s} {'base_lr':>8s} {'peak lr':>8s}")
for batch, base in sorted(config.PAPER_BASE_LR.items()):
    print(f"{batch:>6d} {base:>8g} {batch / 256 * base:>8.3f}")

# %% [markdown]
# ## What the curves of a full run look like
#
# We cannot show a real 1000-epoch run here (and will not draw a made-up one), so here is what
# to expect and what to watch, from the paper and from the diagnostics of chapters 5 and 6.
# The trainer writes the same `metrics.jsonl` on the cluster as on the laptop, so
# `vicreg_edu.plots.plot_training_curves` and `plot_collapse_panels` read a cluster run
# unchanged (copy the file, or open the TensorBoard events in `out_dir/tb`).
#
# - **Accuracy grows with training time, with diminishing returns.** The paper reports 68.6%
#   linear top-1 after 100 epochs (Table 7, batch 2048) and 73.2% after 1000 (Table 1).
# - **The loss terms**, read with the table "healthy run vs collapse" of chapter 6. The variance
#   term should fall to near zero early and stay there; one that climbs back towards
#   $\gamma - \sqrt{\epsilon} \approx 0.99$, with the standard deviation falling to 0, is complete
#   collapse. The first author's answer in
#   [facebookresearch/vicreg#14](https://github.com/facebookresearch/vicreg/issues/14): the
#   covariance term should stay roughly stable and mostly the invariance term falls; a covariance
#   term of 0 most likely means collapse. For dimensional collapse, watch the effective rank.
# - **Instabilities** most often show up in or right after the warm-up, when the learning rate
#   reaches its peak. A NaN loss stops the trainer with the step and the last good checkpoint
#   (checkpoints are never written from a NaN state). Resuming with a lower `base_lr` or a longer
#   `warmup_epochs` changes the recipe, which `--resume` refuses by default; name the keys you
#   change on purpose with `--set resume_changes=base_lr,warmup_epochs` and the trainer resumes,
#   recording the change in `metrics.jsonl` (only optimisation settings can be changed this way).
# - **Throughput** is printed as images per second in the step records (`imgs_per_s`). At the
#   paper's speed a 32-GPU run processes about 3200 images per second; far less usually means
#   the data loader is starving the GPUs (more `num_workers`, and CPUs per task to run them).

# %% [markdown]
# ## Where this run differs from the official one
#
# - **Precision**: bf16 autocast where the GPU supports it, fp16 with a GradScaler elsewhere (the
#   official code: fp16 everywhere); the loss in float32 and the covariance term's Gram side in
#   float64 on a GPU (official: the loss under fp16 autocast).
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
# - **The 100-epoch preset** takes the official launch's base learning rate 0.3 at batch 512,
#   where the paper's appendix gives 0.4.
# - **Evaluation**: the differences listed in the section above.

# %% [markdown]
# ## The full-scale command
#
# The smoke run above used the same module and flags as this command; only the preset, the data
# folder and the process layout differ.

# %%
data_dir, out_dir = "/datasets/imagenet", "/checkpoints/vicreg"
train_args = ["--preset", "imagenet-resnet50", "--set", f"data_dir={data_dir}", f"out_dir={out_dir}"]
rendezvous = ["--nnodes=4", "--nproc_per_node=8", "--rdzv_backend=c10d",
              "--rdzv_endpoint=$HEAD_NODE:29500", "--rdzv_id=vicreg"]
print("# on each of the 4 nodes:")
print(" ".join(["torchrun", *rendezvous, "-m", "vicreg_edu", "train", *train_args, "--resume", "auto"]))
print("# or through SLURM (submitit):")
print(" ".join(["vicreg-edu submit --nodes 4 --gpus-per-node 8 --partition gpu --", *train_args]))
print("# then the paper's evaluation:")
print(f"torchrun --nproc_per_node=8 -m vicreg_edu eval --protocol linear --data-dir {data_dir} "
      f"--checkpoint {out_dir}/checkpoint.pt")

# %% [markdown]
# ## Exercise
#
# **Sixteen GPUs.** Your cluster has 2 nodes × 8 GPUs and you keep 64 images per GPU. Using the
# linear scaling rule with the preset's `base_lr` of 0.2, what is the peak learning rate, and how
# many optimiser steps does the 10-epoch warm-up last on ImageNet's 1,281,167 training images
# (the trainer drops the last incomplete batch of every epoch)? Write your numbers below, then run
# the answer cell; it says "not answered yet" while they are `None`, and accepts answers within
# 1e-6 of the exact values.

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
assert optim.learning_rate(expected_warmup, 1000 * 1251, expected_warmup, expected_lr) == expected_lr
for what, mine, expected in [("peak lr", my_peak_lr, expected_lr), ("warm-up steps", my_warmup_steps, expected_warmup)]:
    if mine is None:
        print(f"{what}: not answered yet (replace None in the cell above, then rerun both cells)")
    else:
        assert abs(mine - expected) < 1e-6, f"{what}: {mine} is wrong; check the global batch and the steps per epoch"
        print(f"{what}: {mine} is right")
print(f"worked solution: peak learning rate {expected_lr:g}, warm-up {expected_warmup} steps")
