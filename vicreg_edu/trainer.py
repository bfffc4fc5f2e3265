"""Train VICReg: one code path from a CPU demo to multi-GPU ImageNet ResNet-50.

One process (CPU or one GPU)::

    vicreg-edu train --preset demo                        # built-in data, minutes on a laptop
    python -m vicreg_edu train --preset cifar10 --set data_dir=~/data download=true

Several processes on one node (DDP; NCCL on GPUs, gloo on CPUs)::

    torchrun --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2 --nproc_per_node=8 \\
        -m vicreg_edu train --preset imagenet-resnet50 --set data_dir=/imagenet

Several nodes (run on every node; torchrun's c10d rendezvous connects them)::

    torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=$HEAD:29500 \\
        --rdzv_id=vicreg --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2 \\
        -m vicreg_edu train --preset imagenet-resnet50 --set data_dir=/imagenet

``--signals-to-handle`` (or ``PET_SIGNALS_TO_HANDLE``) with USR1/USR2: torchrun's agent then passes
SLURM's time-limit signal on to the trainers; its default list lacks them, so the signal would end
the agent and the job without a checkpoint (:data:`~vicreg_edu.distributed.TORCHRUN_SIGNALS`).
``python -m vicreg_edu.launch.torchrun`` is torchrun with that list by default and a stop that ends
in one line instead of the agent's traceback (what the shipped sbatch script runs).

SLURM: ``vicreg-edu submit`` submits the same ``train`` through submitit.

Read it top to bottom: :func:`train` sets up with :func:`start` (processes, seeds, data, model,
optimisers, resume) and builds the loss criterion once (:func:`build_criterion`), then runs
:func:`train_one_epoch` (each :func:`train_step`: two views -> forward -> VICReg loss (+ online
probe) -> backward -> step; then log, checkpoint) and :func:`end_of_epoch` (probe accuracy,
collapse report, k-NN, checkpoint) for every epoch, then the final k-NN evaluation. Three objects
carry the run: :class:`Run` (fixed: where, how, how long), :class:`State` (what a step changes and
a checkpoint holds) and :class:`MetricsLog` (records, its throughput timer and progress bar). The pieces live in the
module of their concept: models in ``models``, views in ``augment``, batches in ``data``,
checkpoints in ``checkpoint``, evaluation in ``evaluate``, processes and signals in
``distributed``; arguments are parsed in ``cli``.

Pre-emption: SIGTERM, SIGUSR1 or SIGUSR2 during training finishes the current step (all
processes agree on it), writes the checkpoint at that step (every process waits for the write; its
time is logged) and stops with one line and exit status 128 + the signal number (143 for SIGTERM);
``--resume auto`` then continues exactly where it stopped and says so ("resumed from PATH at step N").

Logs: a tqdm bar when stderr is a terminal; otherwise (a file, a SLURM log, a notebook) a plain line
every ``print_every`` steps with the global batch's loss, images/s and the ETA, and a line per epoch.
"""

from __future__ import annotations

import functools
import json
import math
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from . import data, distributed
from .checkpoint import (
    atomic_save,
    check_resume_config,
    find_checkpoint,
    load_checkpoint,
    restore_training_state,
    rng_state,
    training_state,
)
from .config import Config, check_batch_split, parse_expander_spec
from .data import DiagnosticViews, diagnostic_views, make_two_view_loader
from .diagnostics import collapse_report
from .errors import ConfigError, TrainingDiverged
from .evaluate import EvalData, knn_comparison, load_eval_data
from .contrastive import nt_xent_terms
from .loss import VICRegTerms, vicreg_loss
from .memory import preflight
from .models import VICReg, VICRegWithProbe, build_model
from .optim import build_optimizer, learning_rate
from .results import stored_supervised_knn
from .views import make_augment_config


@dataclass
class TrainResult:
    """What :func:`train` hands back (on every rank; ``final`` is filled on rank 0)."""

    model: VICReg  # the trained model (unwrapped, eval mode)
    config: Config
    out_dir: Path
    history: list[dict] = field(default_factory=list)  # step records (loss and its three terms, lr)
    epochs: list[dict] = field(default_factory=list)  # epoch records (collapse report, probe, k-NN)
    final: dict[str, float] = field(default_factory=dict)  # k-NN: trained / random_init / raw_pixels
    wall_time: float = 0.0

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"


# ----------------------------------------------------------------------------------------------
# set-up: processes and precision, the training state, the log


@dataclass(frozen=True)
class Run:
    """Where, how and how long this process trains; never changed once built.

    :func:`setup` builds it before the data exists (the step counts are still 0, enough for
    :func:`build_state` and :func:`build_diag_views`); :func:`start` then builds the run's own
    with :meth:`with_steps` from the loader's length. What changes while training lives in
    :class:`State`, :class:`MetricsLog` or :class:`EpochEval`.
    """

    cfg: Config
    device: torch.device
    rank: int
    world: int
    dtype: torch.dtype  # parameters, activations and loss: float32, or float64 for exactness tests
    amp_dtype: torch.dtype | None  # autocast dtype (bf16/fp16) or None, see amp_dtype()
    out_dir: Path
    steps_per_epoch: int = 0  # the loader's length
    total_steps: int = 0  # epochs x steps_per_epoch: the learning-rate schedule's length
    warmup_steps: int = 0  # warmup_epochs x steps_per_epoch, rounded
    stop_at: int = 0  # the last step of this run (max_steps, or all epochs)

    def with_steps(self, steps_per_epoch: int) -> Run:
        """This run with its step counts, derived from the loader's ``steps_per_epoch``."""
        cfg, total_steps = self.cfg, self.cfg.epochs * steps_per_epoch
        return replace(
            self,
            steps_per_epoch=steps_per_epoch,
            total_steps=total_steps,
            warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
            stop_at=min(total_steps, cfg.max_steps) if cfg.max_steps else total_steps,
        )

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def ckpt_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def epoch_end(self, step: int) -> bool:
        """Whether ``step`` closes an epoch (or the run): :func:`end_of_epoch` follows, and saves."""
        return step % self.steps_per_epoch == 0 or step == self.stop_at

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of views in the run's dtype and memory format (channels-last unless switched off)."""
        x = x.to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @property
    def channels_last(self) -> bool:
        return self.cfg.channels_last


GRAM_FLOAT64_NOTE = (
    "covariance Gram in float64: about the plain float32 rate on A100/H100/H200 (FP64 tensor cores), half on V100, "
    "1/32-1/64 on A10/L4/L40S/RTX (gram_dtype=float32 there)"
)
GRAM_FLOAT32_NOTE = "covariance Gram in float32 (gram_dtype=float32)"


def amp_dtype(cfg: Config, device: torch.device, bf16_supported: bool) -> tuple[torch.dtype | None, str]:
    """The autocast dtype of a run, and the words the start line says it with.

    ``amp=auto``: bf16 on a CUDA device with native bf16 (``bf16_supported``: A100, H100, ...),
    fp16 with the GradScaler on one without (V100, T4), none on the CPU and with ``dtype=float64``.
    ``bf16``, ``fp16`` and ``none`` are kept as set. The loss itself computes in float32 (and the
    Gram side of the covariance in float64 on a GPU, see ``loss._SecondMoments``).

    >>> amp_dtype(Config(), torch.device("cuda", 0), bf16_supported=False)
    (torch.float16, 'amp=auto -> fp16 + GradScaler (no bf16 on this GPU)')
    >>> amp_dtype(Config(), torch.device("cpu"), bf16_supported=False)[1]
    'amp=auto -> none (CPU)'
    """
    if cfg.amp != "auto":
        choice, why = cfg.amp, "as set"
    elif cfg.dtype != "float32":
        choice, why = "none", f"dtype={cfg.dtype}"
    elif device.type != "cuda":
        choice, why = "none", device.type.upper()
    elif bf16_supported:
        choice, why = "bf16", "cuda bf16 supported"
    else:
        choice, why = "fp16", "no bf16 on this GPU"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[choice]
    return dtype, f"amp={cfg.amp} -> {choice}{' + GradScaler' if choice == 'fp16' else ''} ({why})"


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 on this CUDA device (compute capability 8.0 or more); the bf16 that torch emulates
    on older GPUs (``is_bf16_supported()``'s default) is slower than fp16 there and does not count."""
    if device.type != "cuda":
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.3 has no emulation and no argument
        return torch.cuda.is_bf16_supported()


def precision_note(cfg: Config, device: torch.device) -> str:
    """What the start line says about precision: the autocast choice, and on a GPU the covariance's Gram side."""
    _, note = amp_dtype(cfg, device, bf16_supported(device))
    if device.type == "cuda" and cfg.batch_size < parse_expander_spec(cfg.expander)[-1]:  # N < D: Gram side
        note += f"; {GRAM_FLOAT64_NOTE if cfg.gram_dtype == 'float64' else GRAM_FLOAT32_NOTE}"
    return note


def _amp_dtype(cfg: Config, device: torch.device):
    """The autocast dtype :func:`amp_dtype` picks on ``device`` (bf16 support queried)."""
    return amp_dtype(cfg, device, bf16_supported(device))[0]


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write a probe file in it, so a bad ``out_dir`` fails before any training."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{distributed.get_rank()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"out_dir={str(folder)!r} is not a writable folder ({e.strerror or e}); choose another out_dir"
        ) from None


def setup(cfg: Config) -> Run:
    """Start the process group (under torchrun), pick the device and precision, seed every RNG."""
    device = distributed.setup(cfg.device)
    rank, world = distributed.get_rank(), distributed.get_world_size()
    check_batch_split(cfg.batch_size, world)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    dtype = {"float32": torch.float32, "float64": torch.float64}[cfg.dtype]
    run = Run(cfg, device, rank, world, dtype, _amp_dtype(cfg, device), Path(cfg.out_dir))
    preflight(cfg, device, world, run.amp_dtype)  # on CUDA: stop here if a step cannot fit in the free memory
    if run.master:
        check_writable(run.out_dir)
    return run


@dataclass
class State:
    """What a step changes and a checkpoint holds."""

    net: VICRegWithProbe  # the model + online probe (unwrapped)
    optimizer: torch.optim.Optimizer  # encoder + expander (LARS / SGD / AdamW)
    probe_optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # loss scaling for fp16 (a no-op otherwise)
    step: int = 0


def build_state(run: Run, num_classes: int) -> State:
    """Model (seeded by :func:`setup`), synchronised BatchNorm across processes, optimisers, scaler."""
    cfg = run.cfg
    net = VICRegWithProbe(build_model(cfg), num_classes).to(run.device, run.dtype)
    if run.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if run.world > 1 and cfg.sync_bn:
        net = distributed.convert_sync_batchnorm(net, run.device)
    optimizer = build_optimizer(net.model, cfg.optimizer, cfg.weight_decay, cfg.momentum, cfg.lars_eta, cfg.lars_clip)
    probe_optimizer = torch.optim.AdamW(net.probe.parameters(), lr=cfg.probe_lr, weight_decay=1e-6)
    scaler = torch.amp.GradScaler(run.device.type, enabled=run.amp_dtype == torch.float16)
    return State(net, optimizer, probe_optimizer, scaler)


def save_checkpoint(run: Run, state: State, terms: dict[str, float]) -> float:
    """Gather every rank's RNG state; rank 0 writes the checkpoint atomically; every rank waits for the
    write (a barrier), so no process exits or moves on before the file is complete. Returns the write's
    seconds (rank 0; 0.0 elsewhere).

    ``terms``: the last logged loss terms (:attr:`MetricsLog.last`); if one is not finite nothing is
    written (a good checkpoint is never overwritten by a diverged state) and TrainingDiverged is raised.
    A failed write (a full disk) raises :class:`~vicreg_edu.errors.CheckpointError` on rank 0, with the
    previous checkpoint intact (:func:`~vicreg_edu.checkpoint.atomic_save`).
    """
    _check_finite(run, state.step, terms)
    rng = [None] * run.world
    if run.world > 1:
        torch.distributed.all_gather_object(rng, rng_state())
    else:
        rng = [rng_state()]
    seconds = 0.0
    if run.master:
        t0 = time.perf_counter()
        atomic_save(
            training_state(
                state.net,
                state.optimizer,
                state.probe_optimizer,
                state.scaler,
                state.step,
                state.step / run.steps_per_epoch,
                run.cfg,
                rng,
            ),
            run.ckpt_path,
        )
        seconds = time.perf_counter() - t0
    if run.world > 1:
        torch.distributed.barrier()
    return seconds


def _diverged(run: Run, step: int, what: str) -> TrainingDiverged:
    ckpt = run.ckpt_path
    last = f"the last good checkpoint is kept at {ckpt}" if ckpt.is_file() else "no checkpoint was written yet"
    return TrainingDiverged(
        f"training diverged at step {step}: {what}; {last}. Typical fixes: a lower base_lr "
        "or a longer warmup_epochs (resume with them: --resume auto --set base_lr=... "
        "warmup_epochs=... resume_changes=base_lr,warmup_epochs), or amp=none."
    )


def _check_finite(run: Run, step: int, values: dict[str, float]) -> None:
    if not all(math.isfinite(v) for v in values.values()):
        terms = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        raise _diverged(run, step, f"non-finite VICReg loss ({terms})")


def tensorboard_writer(cfg: Config, out_dir: Path):
    """``(SummaryWriter or None, the start line's words about it)``: events in ``out_dir/tb`` when
    ``tensorboard=true`` and the package is installed; otherwise the line says why there are none."""
    if not cfg.tensorboard:
        return None, "TensorBoard: off (tensorboard=false)"
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None, (
            "TensorBoard: not installed, no events written (pip install 'vicreg-edu[tensorboard]' to add them; "
            "--set tensorboard=false hides this line); the records are in metrics.jsonl"
        )
    tb = out_dir / "tb"
    return SummaryWriter(str(tb)), f"TensorBoard: events in {tb} (tensorboard --logdir {tb})"


def use_tqdm(cfg: Config) -> bool:
    """A tqdm bar only with ``progress=true`` and a terminal on stderr (files, SLURM logs, notebooks: plain lines)."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(cfg.progress and callable(isatty) and isatty())


def duration(seconds: float) -> str:
    """``seconds`` as ``[Dd ]H:MM:SS``.

    >>> duration(59.6), duration(3725), duration(3 * 86400 + 7)
    ('0:01:00', '1:02:05', '3d 0:00:07')
    """
    days, rest = divmod(int(round(seconds)), 86400)
    h, rest = divmod(rest, 3600)
    text = f"{h}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}d {text}" if days else text


class MetricsLog:
    """The run's records and what shows them, with the throughput timer and the progress display it owns.

    Records are kept on every rank (``history``, ``epochs``); rank 0 also writes ``metrics.jsonl``,
    TensorBoard events (when installed) and the progress: a tqdm bar when stderr is a terminal and
    ``progress=true`` (:func:`use_tqdm`), else a plain line every ``print_every`` steps (step, epoch,
    loss, images/s, ETA); an epoch line at every epoch end either way. ``last`` holds the last logged
    loss terms: the mean over all processes (the loss of the global batch). The loop calls
    :meth:`start_epoch`, then per step :meth:`due` / :meth:`step` (on logged steps) and :meth:`advance`,
    and :meth:`epoch` at an epoch end.
    """

    def __init__(self, run: Run, step: int, resumed: bool):
        self.run, self.history, self.epochs = run, [], []
        self.last = {"loss": float("nan")}
        self._timer = (time.perf_counter(), step)  # throughput since the last record: (time, step)
        self._since: tuple[float, int] | None = None  # (time, step) of this session's first step: the ETA's rate
        self._file = self._writer = self._bar = None
        self.tensorboard_note = ""
        self.write_s = 0.0  # seconds the last checkpoint write took (rank 0)
        if not run.master:
            return
        cfg = run.cfg
        (run.out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self._file = self._open_metrics(step, resumed)
        self._writer, self.tensorboard_note = tensorboard_writer(cfg, run.out_dir)
        if use_tqdm(cfg):
            from tqdm import tqdm

            self._bar = tqdm(total=run.total_steps, initial=step, desc="VICReg", unit="step", dynamic_ncols=True)

    def _open_metrics(self, step: int, resumed: bool):
        """``metrics.jsonl`` opened for appending; on a resume the records newer than the checkpoint are dropped."""
        path, kept = self.run.out_dir / "metrics.jsonl", []
        if resumed and path.exists():
            kept = [r for r in map(json.loads, path.read_text().splitlines()) if r.get("step", 0) <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        return open(path, "a")

    def __call__(self, record: dict) -> None:
        """Keep ``record`` (step and epoch kinds) and write it to metrics.jsonl and TensorBoard (rank 0)."""
        {"step": self.history, "epoch": self.epochs}.get(record["kind"], []).append(record)
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        if self._writer is not None:
            for k, v in record.items():
                if k not in ("kind", "step", "epoch") and isinstance(v, (int, float)):
                    self._writer.add_scalar(f"{record['kind']}/{k}", v, record["step"])

    def start_epoch(self, step: int) -> None:
        """Restart the throughput timer at ``step``, so images/s excludes the epoch-end work."""
        self._timer = (time.perf_counter(), step)
        if self._since is None:
            self._since = self._timer

    def due(self, step: int) -> bool:
        """Whether ``step`` is logged by the schedule: every ``log_every`` and every ``print_every`` steps.
        The same on every process (the record all-reduces), whether or not rank 0 shows a bar."""
        cfg = self.run.cfg
        return step % cfg.log_every == 0 or bool(cfg.print_every and step % cfg.print_every == 0)

    def _prints(self, step: int) -> bool:
        every = self.run.cfg.print_every
        return bool(every) and self._bar is None and step % every == 0

    def step(self, step: int, terms: VICRegTerms, lr: float) -> None:
        """A step record: the loss terms averaged over the processes (one all-reduce and one device sync,
        checked finite), the lr and the global images/s since the last record; the bar or a plain line
        shows them. Every process calls it at the same steps."""
        values = torch.stack([t.detach().to(torch.float64) for t in terms])
        if self.run.world > 1:
            torch.distributed.all_reduce(values)
            values /= self.run.world
        self.last = dict(zip(terms._fields, (float(v) for v in values.cpu())))  # the record's one device sync
        _check_finite(self.run, step, self.last)
        (t, s), now = self._timer, time.perf_counter()
        imgs_per_s = (step - s) * self.run.cfg.batch_size / max(now - t, 1e-9)
        self._timer = (now, step)
        self(
            {
                "kind": "step",
                "step": step,
                "epoch": step / self.run.steps_per_epoch,
                **self.last,
                "lr": lr,
                "imgs_per_s": imgs_per_s,
            }
        )
        last = self.last
        if self._bar is not None:
            self._bar.set_postfix(
                loss=f"{last['loss']:.3f}",
                s=f"{last['invariance']:.3f}",
                v=f"{last['variance']:.3f}",
                c=f"{last['covariance']:.3f}",
                img_s=f"{imgs_per_s:.0f}",
            )
        elif self.run.master and self._prints(step):
            print(self.step_line(step, imgs_per_s, lr, now), flush=True)

    def step_line(self, step: int, imgs_per_s: float, lr: float, now: float) -> str:
        """The plain progress line: step, epoch, loss of the global batch and its terms, images/s, lr, ETA."""
        run, last = self.run, self.last
        t0, s0 = self._since or (now, step)
        eta = (run.stop_at - step) * (now - t0) / (step - s0) if step > s0 else float("nan")
        return (
            f"step {step}/{run.stop_at} (epoch {step / run.steps_per_epoch:.2f}/{run.cfg.epochs}) | "
            f"loss {last['loss']:.3f} (s {last['invariance']:.3f}, v {last['variance']:.3f}, "
            f"c {last['covariance']:.3f}) | {imgs_per_s:.0f} images/s | lr {lr:.4g} | "
            f"ETA {duration(eta) if math.isfinite(eta) else '?'}"
        )

    def advance(self) -> None:
        """One step done: the progress bar moves on."""
        if self._bar is not None:
            self._bar.update(1)

    def epoch(self, record: dict) -> None:
        """An epoch record, logged, and its line printed (under the progress bar if there is one; rank 0)."""
        self(record)
        if self._bar is not None:
            self._bar.write(epoch_line(self.run.cfg, record, self.last))
        elif self.run.master:
            print(epoch_line(self.run.cfg, record, self.last), flush=True)

    def close(self) -> None:
        for handle in (self._bar, self._file, self._writer):
            if handle is not None:
                handle.close()
        self._bar = self._file = self._writer = None


def epoch_line(cfg: Config, record: dict, last: dict[str, float]) -> str:
    """The line printed at the end of an epoch (the loss: the last logged global-batch value)."""
    return (
        f"epoch {record['epoch']}/{cfg.epochs} (step {record['step']}): loss {last['loss']:.3f} "
        f"(s {last['invariance']:.3f}, v {last['variance']:.3f}, c {last['covariance']:.3f}) "
        f"| probe {record['online_probe_acc']:.3f}"
        + (f" | emb eff. rank {record['emb_effective_rank']:.1f}" if "emb_effective_rank" in record else "")
        + (f" | k-NN {record['knn_acc']:.3f}" if "knn_acc" in record else "")
    )


# ----------------------------------------------------------------------------------------------
# the loop


def build_criterion(cfg: Config):
    """The VICReg loss with the run's coefficients, built once: ``criterion(z_a, z_b) -> VICRegTerms``.

    In the run's dtype; variance and covariance over the global batch under DDP. No finiteness check
    inside (it would wait for the GPU every step): :meth:`MetricsLog.step` checks every record.
    ``method="simclr"``: NT-Xent at ``cfg.temperature`` instead (:func:`~vicreg_edu.contrastive.nt_xent_terms`;
    the three VICReg terms are then measured, not optimised).
    """
    if cfg.method == "simclr":
        return functools.partial(
            nt_xent_terms, temperature=cfg.temperature, gamma=cfg.gamma, eps=cfg.eps, check_finite=False
        )
    return functools.partial(
        vicreg_loss,
        sim_coeff=cfg.sim_coeff,
        std_coeff=cfg.std_coeff,
        cov_coeff=cfg.cov_coeff,
        gamma=cfg.gamma,
        eps=cfg.eps,
        check_finite=False,
        gram_dtype=cfg.gram_dtype,
    )


def train_step(
    run: Run, state: State, model, criterion, x_a: torch.Tensor, x_b: torch.Tensor, y: torch.Tensor
) -> tuple[VICRegTerms, torch.Tensor, float]:
    """One optimisation step on this process's share of the global batch (two views + labels).

    Returns the loss terms (on the device, not synced), the online probe's logits and the step's lr.
    """
    cfg = run.cfg
    lr = learning_rate(state.step, run.total_steps, run.warmup_steps, cfg.lr, cfg.end_lr_ratio)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    with run.autocast():
        z_a, z_b, logits = model(run.prepare(x_a), run.prepare(x_b))
    terms = criterion(z_a.to(run.dtype), z_b.to(run.dtype))
    probe_loss = F.cross_entropy(logits.to(run.dtype), y)  # on detached representations
    state.optimizer.zero_grad(set_to_none=True)
    state.probe_optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(terms.loss + probe_loss).backward()  # DDP averages the gradients here
    state.scaler.step(state.optimizer)
    state.scaler.step(state.probe_optimizer)
    state.scaler.update()
    state.step += 1
    return terms, logits, lr


def check_share(run: Run, y: torch.Tensor) -> None:
    """The loss's all-gather needs equal shares (no sizes are exchanged): batch_size / world images."""
    share = run.cfg.batch_size // run.world
    if len(y) != share:
        raise RuntimeError(
            f"this process got {len(y)} images, expected batch_size / world = {share}: "
            "the loader must give every process an equal share"
        )


def train_one_epoch(
    run: Run, state: State, model, criterion, loader, log: MetricsLog, signals: distributed.StopSignals
) -> tuple[torch.Tensor, int]:
    """One pass over ``loader`` (from the step it was set to start at); stops early at ``run.stop_at``,
    or after a stop signal, with a checkpoint at the step reached (``signals.agreed`` is then set).

    ``model``: ``state.net`` as the loop calls it (see :func:`wrap_model`). Returns the online
    probe's ``(correct, seen)`` counts on this process.
    """
    cfg = run.cfg
    correct, seen = torch.zeros((), device=run.device), 0
    log.start_epoch(state.step)
    model.train()
    for x_a, x_b, y in loader:
        check_share(run, y)
        terms, logits, lr = train_step(run, state, model, criterion, x_a, x_b, y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)

        end = run.epoch_end(state.step)  # end_of_epoch saves then
        ckpt_due = bool(cfg.ckpt_every and state.step % cfg.ckpt_every == 0)
        stop = signals.poll()  # SIGTERM/USR1/USR2 on any process (all agree on the step)
        if log.due(state.step) or ckpt_due or end or stop:
            log.step(state.step, terms, lr)  # one device sync per record
        log.advance()
        if (ckpt_due or stop) and not end:
            log.write_s = save_checkpoint(run, state, log.last)
        if stop or state.step >= run.stop_at:
            break
    return correct, seen


DIAG_BATCH = 256  # diagnostic views forwarded at a time (224 px: 154 MB of float32 per view and batch)


@dataclass
class EpochEval:
    """What the epoch ends evaluate: the collapse report's fixed views (rank 0; None elsewhere, or
    with ``diag_size=0``) and the k-NN data (every process: each extracts its share of the images),
    loaded by the first k-NN and kept for the later ones."""

    diag_views: DiagnosticViews | None
    knn_data: EvalData | None = None


def unlabelled_flat_val(cfg: Config) -> Path | None:
    """``data_dir/val`` when it is flat (no class folders) and nothing labels it (no devkit, ``meta.bin``
    or ``LOC_val_solution.csv``), else None."""
    if cfg.dataset not in data.IMAGE_FOLDERS or not cfg.data_dir:
        return None
    root = Path(cfg.data_dir).expanduser()
    return root / "val" if data._val_layout(root) == ("flat", None) else None


def check_val_for_evaluation(cfg: Config) -> None:
    """Before any training: the k-NN (``knn_every``, ``final_eval``) needs val/'s labels; a flat val/ without
    them is refused now, in one line, rather than after the last epoch."""
    val = unlabelled_flat_val(cfg)
    if val is not None and (cfg.final_eval or cfg.knn_every):
        raise ConfigError(
            f"{val} holds images in no class folders and nothing labels them (none of "
            f"{', '.join(data.VAL_LABEL_FILES)} in {val.parent}), but the k-NN evaluation needs labels: add the "
            "ILSVRC2012 devkit there, or train without it: --set final_eval=false knn_every=0 (the collapse "
            "report is then off too, or set diag_size=0)"
        )


def build_diag_views(run: Run, aug) -> DiagnosticViews | None:
    """The collapse report's fixed views: built on rank 0 only, kept on the CPU; None with ``diag_size=0``
    or when val/ is flat and unlabelled (its views would be held out but unlabelled; the line says so).

    Built under ``fork_rng``, so this process's random streams (model initialisation, views) are
    the same whether or not it builds them.
    """
    cfg = run.cfg
    if not run.master or cfg.diag_size == 0:
        return None
    if unlabelled_flat_val(cfg) is not None:  # the start line says why the report is off
        return None
    with torch.random.fork_rng(devices=[]):
        return diagnostic_views(cfg.dataset, cfg.data_dir, aug, cfg.diag_size, cfg.seed, num_workers=cfg.num_workers)


@torch.no_grad()
def collapse_record(run: Run, model: VICReg, diag_views: DiagnosticViews | None) -> dict[str, float]:
    """The collapse report of the embeddings (``emb_*``) and of the representations (``repr_*``);
    ``{}`` without views. The views go to the device :data:`DIAG_BATCH` at a time."""
    if diag_views is None:
        return {}
    was_training = model.training
    model.eval()
    r_a, e_a, e_b = [], [], []
    for v_a, v_b in diag_views.batches(DIAG_BATCH, run.device, run.dtype):
        with run.autocast():
            r, e = model(run.prepare(v_a))
            e_b.append(model(run.prepare(v_b))[1].float())
        r_a.append(r.float())
        e_a.append(e.float())
    model.train(was_training)
    record = {f"emb_{k}": v for k, v in collapse_report(torch.cat(e_a), torch.cat(e_b)).as_dict().items()}
    record.update(
        {
            f"repr_{k}": v
            for k, v in collapse_report(torch.cat(r_a)).as_dict().items()
            if k in ("std_mean", "effective_rank", "dead_fraction")
        }
    )
    return record


def probe_accuracy(run: Run, correct: torch.Tensor, seen: int) -> float:
    """The online probe's accuracy over this epoch's steps on all processes (one all-reduce)."""
    if run.world > 1:
        torch.distributed.all_reduce(correct)
        seen *= run.world
    return correct.item() / max(seen, 1)


def knn_record(run: Run, state: State, epoch: int, evals: EpochEval) -> dict[str, float]:
    """``{"knn_acc": ...}`` every ``knn_every`` epochs (not at the last step: the final k-NN follows), else ``{}``."""
    cfg = run.cfg
    if not (cfg.knn_every and (epoch + 1) % cfg.knn_every == 0 and state.step < run.stop_at):
        return {}
    evals.knn_data = evals.knn_data or load_eval_data(cfg)
    return {
        "knn_acc": knn_comparison(state.net.model, cfg, run.device, run.amp_dtype, evals.knn_data, baselines=False)[
            "trained"
        ]
    }


def end_of_epoch(
    run: Run, state: State, epoch: int, probe_counts: tuple[torch.Tensor, int], evals: EpochEval, log: MetricsLog
) -> dict:
    """The epoch record (online probe: all processes; collapse report, k-NN: rank 0), logged, then the checkpoint."""
    record = {
        "kind": "epoch",
        "epoch": epoch + 1,
        "step": state.step,
        "online_probe_acc": probe_accuracy(run, *probe_counts),
    }
    if run.master:
        record.update(collapse_record(run, state.net.model, evals.diag_views))
    record.update(knn_record(run, state, epoch, evals))  # all processes: each takes its share of the images
    log.epoch(record)
    log.write_s = save_checkpoint(run, state, log.last)
    return record


def wrap_model(run: Run, net: VICRegWithProbe) -> torch.nn.Module:
    """``net`` as the loop calls it: DDP-wrapped under a process group, then compiled with ``compile=true``."""
    if run.world > 1:
        net = DDP(net, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    return torch.compile(net) if run.cfg.compile else net


def start(cfg: Config) -> tuple[Run, State, object, torch.nn.Module, EpochEval, MetricsLog]:
    """Processes, checkpoint to resume from, data, model and optimisers, the log and the start line.

    Returns ``(run, state, loader, model, evals, log)``: ``model`` is ``state.net`` as the loop calls
    it (:func:`wrap_model`), ``evals`` what the epoch ends evaluate.
    """
    check_val_for_evaluation(cfg)  # a flat unlabelled val/ with a k-NN asked for: refused before anything runs
    run = setup(cfg)  # processes, device, precision, seeds; out_dir writable
    resume_path = find_checkpoint(cfg)  # a bad checkpoint fails before any data is read
    ckpt = load_checkpoint(resume_path) if resume_path else None
    changes = check_resume_config(ckpt["config"], cfg) if ckpt is not None else {}  # resume_changes only

    aug = make_augment_config(cfg)
    loader = make_two_view_loader(
        cfg.dataset,
        cfg.data_dir,
        aug,
        cfg.batch_size,
        train_size=cfg.train_size,
        download=cfg.download,
        seed=cfg.seed,
        num_workers=cfg.num_workers,
        device=run.device,
        pipeline=cfg.pipeline,
    )
    evals = EpochEval(build_diag_views(run, aug))  # rank 0, CPU
    state = build_state(run, loader.num_classes)
    if ckpt is not None:
        state.step = restore_training_state(
            ckpt, state.net, state.optimizer, state.probe_optimizer, state.scaler, run.rank
        )
    model = wrap_model(run, state.net)
    run = run.with_steps(len(loader))
    log = MetricsLog(run, state.step, resumed=ckpt is not None)
    if run.master:
        print_start_lines(run, evals.diag_views, log.tensorboard_note)
        print(resume_line(run, resume_path, state.step), flush=True)
    report_resume_changes(run, state.step, changes, log)
    return run, state, loader, model, evals, log


def resume_line(run: Run, resume_path: Path | None, step: int) -> str:
    """Where this run starts: ``resumed from PATH at step N (epoch E)``, or from scratch at step 0."""
    if resume_path is not None:
        return f"resumed from {resume_path} at step {step} (epoch {step / run.steps_per_epoch:.4g} of {run.cfg.epochs})"
    if run.cfg.resume == "auto":
        return f"resume=auto: no checkpoint at {run.ckpt_path} yet: starting at step 0"
    return "starting at step 0"


def print_start_lines(run: Run, diag_views: DiagnosticViews | None, tensorboard_note: str = "") -> None:
    """What this run is (model, data, processes, precision, batch, steps, lr), its collapse-report views
    and where its TensorBoard events go (or why there are none)."""
    cfg = run.cfg
    method = f"SimCLR (NT-Xent, temperature {cfg.temperature:g})" if cfg.method == "simclr" else "VICReg"
    print(
        f"{method} | {cfg.backbone} + expander {cfg.expander} | {cfg.dataset} | world={run.world} "
        f"device={run.device} {precision_note(cfg, run.device)} | batch {cfg.batch_size} "
        f"({cfg.batch_size // run.world}/proc) | {run.steps_per_epoch} steps/epoch x {cfg.epochs} epochs "
        f"| lr {cfg.lr:g} {cfg.optimizer}",
        flush=True,
    )
    val = unlabelled_flat_val(cfg)
    if diag_views is not None:
        line = f"collapse report: {len(diag_views)} held-out images from {diag_views.source}"
        if "slice of train/" in diag_views.source:  # no val/: the loader reads all of train/
            line += " (pre-training reads these images too: without val/ they are held out of the k-NN only)"
    elif cfg.diag_size and val is not None:
        line = (
            f"collapse report: off: {val} is flat without labels (no devkit, meta.bin or LOC_val_solution.csv "
            "beside it), so it is not read and pre-training reads train/ only; --set diag_size=0 switches the "
            "report off without this line, the ILSVRC2012 devkit beside val/ lets it use val/"
        )
    else:
        line = "collapse report: off (diag_size=0)"
    print(line, flush=True)
    if tensorboard_note:
        print(tensorboard_note, flush=True)


def report_resume_changes(run: Run, step: int, changes: dict, log: MetricsLog) -> None:
    """The settings a resume changed on purpose (``resume_changes``): a record in metrics.jsonl and a line."""
    if not changes:
        return
    log(
        {
            "kind": "resume_changes",
            "step": step,
            "changes": {k: {"checkpoint": a, "now": b} for k, (a, b) in changes.items()},
        }
    )
    if run.master:
        print(
            f"resuming at step {step} with changed settings (resume_changes): "
            + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()),
            flush=True,
        )


def stop_on_signal(run: Run, state: State, log: MetricsLog, signals: distributed.StopSignals) -> None:
    """After a stop signal (the checkpoint at ``state.step`` is written): a ``stop`` record, one line on
    stderr (rank 0), the signal's previous Python handler if it had one, then :class:`~.distributed.Preempted`."""
    name = signal.Signals(signals.agreed).name
    log(
        {
            "kind": "stop",
            "step": state.step,
            "epoch": state.step / run.steps_per_epoch,
            "signal": name,
            "checkpoint": str(run.ckpt_path),
            "write_s": round(log.write_s, 3),
        }
    )
    log.close()
    written = f" in {log.write_s:.1f} s" if run.master else ""
    message = (
        f"stopped by {name} at step {state.step}; checkpoint written to {run.ckpt_path}{written}; "
        "resume with --resume auto"
    )
    if run.master:
        print(f"vicreg-edu: {message}", file=sys.stderr, flush=True)
    signals.forward()  # e.g. submitit's USR2 handler: requeue the job, then exit
    raise distributed.Preempted(signals.agreed, state.step, message)


def train(cfg: Config) -> TrainResult:
    """Run VICReg pre-training as described by ``cfg``; see the module docstring for launch commands.

    While it trains, SIGTERM, SIGUSR1 and SIGUSR2 (pre-emption, time limit) finish the current step,
    write a checkpoint at it and raise :class:`~vicreg_edu.distributed.Preempted` (a ``SystemExit``
    with status 128 + the signal number) after the signal's previous handler, if any, has run;
    ``resume="auto"`` continues exactly. Outside the main thread no handlers are installed.

    Example:
        >>> from vicreg_edu.config import get_config
        >>> cfg = get_config("demo", epochs=1, train_size=512, test_size=256, progress=False)
        >>> result = train(cfg)  # doctest: +SKIP
        >>> result.final["trained"] > result.final["random_init"]  # doctest: +SKIP
    """
    t0 = time.time()
    criterion = build_criterion(cfg)
    with distributed.StopSignals() as signals:  # from here on a stop signal only sets a flag
        run, state, loader, model, evals, log = start(cfg)
        try:
            start_epoch, skip = divmod(state.step, run.steps_per_epoch)
            for epoch in range(start_epoch, cfg.epochs):
                if state.step >= run.stop_at or signals.agreed:
                    break
                loader.set_epoch(epoch, start=skip if epoch == start_epoch else 0)
                probe_counts = train_one_epoch(run, state, model, criterion, loader, log, signals)
                if run.epoch_end(state.step):  # else a signal stopped it mid-epoch, checkpoint written
                    end_of_epoch(run, state, epoch, probe_counts, evals, log)
                    signals.sync()  # a signal during the epoch-end work stops here
            if signals.agreed:
                stop_on_signal(run, state, log, signals)
        finally:
            loader.close()  # loader workers stop now, not when the loader is garbage-collected

    state.net.eval()
    result = TrainResult(model=state.net.model, config=cfg, out_dir=run.out_dir, history=log.history, epochs=log.epochs)
    if cfg.final_eval:  # all processes, each on its share of the images (evaluate.knn_comparison)
        final = knn_comparison(state.net.model, cfg, run.device, run.amp_dtype, evals.knn_data)
        if run.master:
            result.final = final
            log({"kind": "final", "step": state.step, **{f"knn_{k}": v for k, v in final.items()}})
    log.close()
    result.wall_time = time.time() - t0
    return result


def format_final(result: TrainResult) -> str:
    """A small table: k-NN accuracy of the trained encoder next to its baselines."""
    names = {
        "trained": "VICReg-trained encoder",
        "random_init": "randomly initialised encoder",
        "raw_pixels": "raw pixels",
    }
    lines = [f"k-NN accuracy (k=20, cosine, T=0.07) on the {result.config.dataset} test split:"]
    lines += [f"  {names[k]:<30s} {v * 100:6.2f}%" for k, v in result.final.items()]
    ceiling = stored_supervised_knn(result.config)
    if ceiling is not None:
        lines.append(f"  {'supervised, same budget *':<30s} {ceiling * 100:6.2f}%")
        lines.append("  * same backbone and epochs trained with labels, stored: python -m vicreg_edu.baselines")
    rates = [r["imgs_per_s"] for r in result.history[1:]]  # the first record includes the warm-up
    speed = f" (training {statistics.median(rates):.0f} images/s)" if rates else ""
    lines.append(f"wall time {result.wall_time:.1f} s{speed}; metrics in {result.metrics_path}")
    return "\n".join(lines)


def train_and_report(cfg: Config) -> TrainResult:
    """:func:`train`, then the k-NN table on rank 0, then the process group torn down.

    What ``vicreg-edu train`` (also under ``torchrun``) and a SLURM job (``vicreg-edu submit``) run.
    """
    try:
        result = train(cfg)
        if distributed.is_main_process() and result.final:
            print(format_final(result))
        return result
    finally:
        distributed.cleanup()
