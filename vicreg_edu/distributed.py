"""torch.distributed in a handful of helpers; everything works without a process group too.

The trainer is started either as one plain process or by ``torchrun`` (which sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``). Multi-node and SLURM runs go
through ``torchrun``'s rendezvous or submitit, never a launcher of our own.

BatchNorm across processes: ``torch.nn.SyncBatchNorm`` only runs on GPUs (it raises
"SyncBatchNorm expected input tensor to be on GPU" on CPU tensors), so on CPU/gloo
:func:`convert_sync_batchnorm` swaps in :class:`SyncBatchNormCPU`, a two-pass batch norm whose
statistics are all-reduced with :func:`all_reduce_with_grad` (whose backward all-reduces the gradient).
With it, W processes on B/W images each compute what one process computes on B images, which
the tests check parameter by parameter.

Stop signals: :class:`StopSignals` turns SIGTERM, SIGUSR1 and SIGUSR2 into a flag that the
training loop polls once per step, all processes agreeing on the step to stop at; the trainer
then writes a checkpoint and raises :class:`Preempted`.
"""

from __future__ import annotations

import os
import signal
import threading

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


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; backward: the gradient summed over ranks too.

    Every rank's output y = sum_s x_s feeds that rank's own loss L_r, so dL/dx_r = sum_s dL_s/dy:
    the all-reduce of the output gradients (what ``torch.distributed.nn.functional.all_reduce``,
    now deprecated, computes for a sum).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``sum`` of ``x`` over all ranks, differentiable (see :class:`_AllReduceSum`); needs a process group."""
    return _AllReduceSum.apply(x)


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
        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor(float(x.numel() // x.size(1)), device=x.device)
        total = all_reduce_with_grad(count.detach())
        mean = all_reduce_with_grad(x.sum(dims)) / total
        var = all_reduce_with_grad((x - mean.view(shape)).pow(2).sum(dims)) / total
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
        new = SyncBatchNormCPU(model.num_features, model.eps, model.momentum, model.affine, model.track_running_stats)
        ref = next(iter(model.state_dict().values()), None)  # keep the layer's device and float dtype
        if ref is not None:
            new = new.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)
        new.load_state_dict(model.state_dict())
        new.train(model.training)
        return new
    for name, child in model.named_children():
        model.add_module(name, convert_sync_batchnorm(child, device))
    return model


# ----------------------------------------------------------------------------------------------
# stop signals (pre-emption, time limits)

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, name))
"""What SLURM sends before it ends a job: SIGTERM on pre-emption or ``scancel`` (SIGKILL follows
after KillWait, plus a pre-empting partition's GraceTime), USR1/USR2 at ``--signal=...@delay``
before the time limit."""


TORCHRUN_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2"
"""What ``torchrun --signals-to-handle`` (or ``PET_SIGNALS_TO_HANDLE``) must list so that its agent
forwards SLURM's time-limit signals to the trainers: its default, SIGTERM,SIGINT,SIGHUP,SIGQUIT, leaves
USR1/USR2 to their default action, which ends the agent (exit 138/140) and the job without a checkpoint."""


class Preempted(SystemExit):
    """Training stopped on a signal after writing a checkpoint at ``step``.

    A :class:`SystemExit` whose ``code`` is ``128 + signum`` (143 for SIGTERM), the status the
    signal's default action would give: uncaught, it ends the process with that status (the
    command line, torchrun, a SLURM task), so schedulers see an unfinished job; ``except
    Exception`` does not swallow it, and submitit does not store it as the job's result.
    """

    def __init__(self, signum: int, step: int, message: str):
        super().__init__(128 + signum)
        self.signum, self.step, self.message = signum, step, message

    def __str__(self) -> str:
        return self.message


class StopSignals:
    """A context manager: while active, :data:`STOP_SIGNALS` only set a flag, which :meth:`poll` reads.

    The handler records the first signal and ignores the repeats (torchrun forwards SIGTERM to
    its workers, which SLURM has usually signalled already), so a second signal can neither
    interrupt the checkpoint being written nor stop the process. On exit the previous handlers
    come back, also after an exception. Only the main thread may install handlers: elsewhere
    (a notebook's worker thread) nothing is installed and the flag stays 0.

    All processes must stop at the same step, or the ones still training would wait forever in
    the next collective. Under a process group :meth:`poll` therefore all-reduces the flags (max)
    through the job's own process group and backend (no side group: a gloo group inside an NCCL
    job would need gloo's network set-up too), asynchronously and one step late: step k launches
    the reduction of the flags as they are after step k and reads the result at step k + 1 (the
    highest signal number wins if processes got different ones). With gloo the flag is a CPU
    tensor. With NCCL it is a tensor on this process's GPU, copied to pinned host memory behind
    the reduction on the current stream; step k + 1 waits for that copy (a CUDA event), i.e. for
    step k's GPU work while step k + 1's is already queued, so the GPU never runs dry. The cost is
    one more step after a signal. :meth:`sync` is the blocking version, for the end of an epoch.
    """

    def __init__(self):
        self.received = 0  # the first stop signal this process got (0: none)
        self.agreed = 0  # the signal all processes agreed to stop on (0: keep training)
        self._previous: dict[int, object] = {}
        self._pending = None  # (wait, tensor) of the reduction launched by the last poll

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        if not self.received:
            self.received = signum

    def _reduce(self):
        """Launch the all-reduce (max) of this process's flag; return ``(wait, host tensor)``."""
        if dist.get_backend() == "nccl":
            flag = torch.tensor(
                [self.received], dtype=torch.int64, device=torch.device("cuda", torch.cuda.current_device())
            )
            work = dist.all_reduce(flag, op=dist.ReduceOp.MAX, async_op=True)
            work.wait()  # the current stream waits for the reduction; the host does not
            host = torch.empty(1, dtype=torch.int64, pin_memory=True)
            host.copy_(flag, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            return done.synchronize, host
        flag = torch.tensor([self.received], dtype=torch.int64)
        return dist.all_reduce(flag, op=dist.ReduceOp.MAX, async_op=True).wait, flag

    def _read(self) -> int:
        wait, flag = self._pending
        wait()
        self._pending = None
        return int(flag[0])

    def poll(self) -> int:
        """Once per step, on every process: the agreed stop signal (0 = go on); see the class docstring."""
        if self.agreed or get_world_size() == 1:
            self.agreed = self.agreed or self.received
            return self.agreed
        if self._pending is not None:
            self.agreed = self._read()
        if not self.agreed:
            self._pending = self._reduce()
        return self.agreed

    def sync(self) -> int:
        """Like :meth:`poll`, but agrees on the flags as they are now (one blocking all-reduce)."""
        if self.agreed or get_world_size() == 1:
            return self.poll()
        if self._pending is not None:
            self._read()
        self._pending = self._reduce()
        self.agreed = self._read()
        return self.agreed

    def forward(self) -> None:
        """Call the Python handler the agreed signal had before, if any, with ``frame=None``.

        submitit's USR2 handler checkpoints the job object, requeues it and exits (rank 0) or
        returns (other ranks); its SIGTERM handler logs "Bypassing signal SIGTERM" and returns.
        """
        previous = self._previous.get(self.agreed)
        if callable(previous):
            previous(self.agreed, None)
