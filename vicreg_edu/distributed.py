"""torch.distributed in a handful of helpers; everything works without a process group too.

The trainer is started either as one plain process or by ``torchrun`` (which sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``). Multi-node and SLURM runs go
through ``torchrun``'s rendezvous or submitit, never a launcher of our own.

BatchNorm across processes: ``torch.nn.SyncBatchNorm`` only runs on GPUs (it raises
"SyncBatchNorm expected input tensor to be on GPU" on CPU tensors), so on CPU/gloo
:func:`convert_sync_batchnorm` swaps in :class:`SyncBatchNormCPU`, a two-pass batch norm whose
statistics are all-reduced with the autograd-aware ``torch.distributed.nn.functional.all_reduce``.
With it, W processes on B/W images each compute what one process computes on B images, which
the tests check parameter by parameter.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    """True when a process group is initialised (e.g. under ``torchrun``)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank, 0 without a process group."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes, 1 without a process group."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 logs, prints and writes checkpoints."""
    return get_rank() == 0


def setup(device: str = "auto") -> torch.device:
    """Initialise the process group when started by ``torchrun``; return this process's device.

    ``device="auto"`` picks ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU. The backend
    is NCCL on GPUs and gloo on CPUs. Without ``torchrun`` variables nothing is initialised.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    elif device == "cuda":
        device = f"cuda:{local_rank}"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not is_distributed():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
    return dev


def cleanup() -> None:
    """Destroy the process group if this module created one (safe to call always)."""
    if is_distributed():
        dist.destroy_process_group()


class SyncBatchNormCPU(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover the global batch, on any device (CPU included).

    Two passes, each one all-reduce: the mean over all processes' samples, then the variance
    around it. Gradients flow through the all-reduces, so after DDP's averaging the parameters
    receive the gradient of the global-batch computation. Outside training, or without a process
    group, it is an ordinary BatchNorm.

    Shapes: input ``(N, C)`` or ``(N, C, *)``; statistics per channel ``C``.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got shape {tuple(input.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed() and get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor(float(x.numel() // x.size(1)), device=x.device)
        total = all_reduce(count.detach())
        mean = all_reduce(x.sum(dims)) / total
        var = all_reduce((x - mean.view(shape)).pow(2).sum(dims)) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * total / (total - 1), alpha=m)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm by a synchronised one: torch's on CUDA, :class:`SyncBatchNormCPU` elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if isinstance(model, nn.modules.batchnorm._BatchNorm) and not isinstance(model, SyncBatchNormCPU):
        new = SyncBatchNormCPU(model.num_features, model.eps, model.momentum, model.affine,
                               model.track_running_stats)
        ref = next(iter(model.state_dict().values()), None)  # keep the layer's device and float dtype
        if ref is not None:
            new = new.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)
        new.load_state_dict(model.state_dict())
        new.train(model.training)
        return new
    for name, child in model.named_children():
        model.add_module(name, convert_sync_batchnorm(child, device))
    return model
