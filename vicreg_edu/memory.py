"""How much GPU memory a training step needs, worked out without a GPU, and the check before training.

:func:`estimate_step_memory` runs one step of the trainer's loop (``trainer.train_step``: both
views through encoder + expander under autocast, the online probe, the VICReg loss in float32,
``zero_grad``, backward, the optimiser steps) on *fake* tensors
(``torch._subclasses.fake_tensor.FakeTensorMode``: every tensor has a shape, a dtype and a
device but no data, so a ResNet-50 step at any batch costs a few CPU seconds and no memory).
A :class:`LiveBytes` dispatch mode sees every tensor an operator returns, adds the bytes of each
new storage (rounded up to 512 bytes, as the CUDA caching allocator does) and subtracts them
when Python frees the storage; the estimate is the peak of that count during a steady-state step
(the previous step's gradients and the optimiser state already exist, as from the second step
on). It counts what ``torch.cuda.max_memory_allocated()`` counts, with these exceptions:

- memory that operators use inside a kernel and free before returning (cuDNN and cuBLAS
  workspaces, reduction buffers) is not seen; neither is the caching allocator's reserve
  (``memory_reserved`` > ``memory_allocated``) nor the CUDA context;
- tensors kept outside the step (diagnostic views, an in-memory dataset on the GPU) are not in it;
- the tensors are fake CPU tensors under CPU autocast: autograd on fake CUDA tensors needs a
  CUDA build. Both autocasts give the same dtypes to the large tensors of these models
  (``tests/test_memory.py`` compares the forward ops on fake CUDA and fake CPU tensors), and
  the loss is made to take its GPU path (float64 Gram side, no host read);
- under DDP (``world > 1``) the gradient buckets (one more copy of the gradients, DDP's default
  ``gradient_as_bucket_view=False``) and the loss over the gathered global batch are counted;
  SyncBatchNorm's small statistics buffers are not.

:data:`HEADROOM` (x 1.2) covers what the count misses when :func:`preflight` compares it with
the free memory of the GPU; ``bench/README.md`` ("Per-GPU memory") has the table for the
ImageNet presets' model, the checks against a measurement on an H200 and the paper's 11.3 GB,
and how :data:`CACHED_ESTIMATES` was made. :func:`step_memory` reads that table for the ImageNet
presets' model and estimates anything else; :func:`launch_plan` gives the command that fits a
number and size of GPUs, with the learning rate for its batch (:data:`PLAN_BASE_LR`, each value
with its source) and, from :data:`MEASURED_RATES`, the expected epoch time and GPU-hours
(:func:`expected_time`).
"""

from __future__ import annotations

import contextlib
import json
import warnings
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .config import Config, get_config
from .distributed import TORCHRUN_SIGNALS
from .errors import ConfigError
from .views import make_augment_config

AMPS = ("bf16", "fp16", "fp32")
"""Precisions of :func:`estimate_step_memory`: bf16 / fp16 autocast, or none (fp32)."""
HEADROOM = 1.2
""":func:`preflight` asks for this multiple of the estimate (workspaces, allocator reserve, context).

Set from one figure, the paper's 11.3 GB per GPU at 64 images per GPU (bench/README.md)."""
GB = 1e9
_AMP_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
_NUM_CLASSES = {"shapes": 10, "cifar10": 10, "cifar100": 100, "imagefolder": 1000, "imagenet": 1000}


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages alive now (``live``) and their maximum since the last ``reset`` (``peak``).

    Counts every storage an operator returns (views and in-place results share their input's
    storage and are not counted again), each rounded up to a multiple of 512 bytes. Tensors made
    before the mode was entered are not counted; enter it before building the model.

    Example:
        >>> with LiveBytes() as mem:
        ...     a = torch.empty(1024, 256)       # 1 MiB
        ...     b = a[:10].mul_(2)               # a view, changed in place: no new storage
        ...     del a, b
        >>> mem.live, mem.peak
        (0, 1048576)
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def reset(self) -> None:
        """Start a new peak from what is alive now."""
        self.peak = self.live

    def _count(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self._sizes:
            return
        size = -(-storage.nbytes() // 512) * 512
        self._sizes[key] = size
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._count(t)
        return out


@contextlib.contextmanager
def _autocast(dtype: torch.dtype | None):
    """CPU autocast to ``dtype`` (None: off) through the low-level switches, as ``torch.autocast`` does."""
    if dtype is None:
        yield
        return
    enabled, previous = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")
    torch.set_autocast_enabled("cpu", True)
    torch.set_autocast_dtype("cpu", dtype)
    torch.autocast_increment_nesting()
    try:
        yield
    finally:
        if torch.autocast_decrement_nesting() == 0:
            torch.clear_autocast_cache()
        torch.set_autocast_enabled("cpu", enabled)
        torch.set_autocast_dtype("cpu", previous)


@contextlib.contextmanager
def _loss_on_gpu_path():
    """Make :func:`vicreg_edu.loss.vicreg_loss` take its GPU path (no host reads) on fake CPU tensors."""
    from . import loss

    original = loss._host_reads_are_free
    loss._host_reads_are_free = lambda z: False
    try:
        yield
    finally:
        loss._host_reads_are_free = original


def _check_amp(amp: str) -> None:
    if amp not in AMPS:
        raise ConfigError(f"amp={amp!r} for a memory estimate: choose one of {', '.join(AMPS)}")


def _step_objects(cfg: Config, num_classes: int | None):
    """``cfg``'s network with its probe and both optimisers, on the default device (as the trainer builds them)."""
    from .models import VICRegWithProbe, build_model
    from .optim import build_optimizer

    net = VICRegWithProbe(build_model(cfg), num_classes or _NUM_CLASSES.get(cfg.dataset, 1000))
    if cfg.channels_last and torch.get_default_device().type == "cuda":
        net = net.to(memory_format=torch.channels_last)  # same bytes; the fake count skips the copy
    optimizer = build_optimizer(
        net.model, cfg.optimizer, cfg.weight_decay, cfg.momentum, cfg.lars_eta, getattr(cfg, "lars_clip", False)
    )
    probe_optimizer = torch.optim.AdamW(net.probe.parameters(), lr=cfg.probe_lr, weight_decay=1e-6)
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr
    return net, optimizer, probe_optimizer


def _training_step(
    cfg: Config,
    per_gpu_batch: int,
    amp: str,
    world: int,
    num_classes: int | None,
    autocast,
    measure_from,
    warm_steps: int,
) -> None:
    """Build ``cfg``'s model and optimisers on the default device and run the trainer's step on it.

    The step mirrors ``trainer.train_step`` (same order, same calls). Before the measured step
    the state of a running loop is made: ``warm_steps`` full steps, or (0) zero gradients and one
    optimiser step, which leave the same tensors alive. ``measure_from()`` is called when the
    measured step's batch is on the device, just before its forward.
    """
    from .loss import vicreg_loss

    dtype = torch.get_default_dtype()
    size = make_augment_config(cfg).size
    net, optimizer, probe_optimizer = _step_objects(cfg, num_classes)
    params = [p for p in net.parameters() if p.requires_grad]
    buckets = torch.empty(sum(p.numel() for p in params), dtype=dtype) if world > 1 else None  # DDP's

    loss_kwargs = {k: getattr(cfg, k) for k in ("sim_coeff", "std_coeff", "cov_coeff", "gamma", "eps", "gram_dtype")}

    def prepare(x):
        return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x

    def gathered(z):  # under DDP the variance and covariance see world * per_gpu_batch rows
        return z if world == 1 else torch.cat([z, z.new_zeros(((world - 1) * len(z), z.shape[1]))])

    def batch():  # the loader's output, on the device: two float32 views and the labels
        views = torch.randn(2, per_gpu_batch, 3, size, size).unbind(0)
        return views[0], views[1], torch.randint(0, net.probe.out_features, (per_gpu_batch,))

    def step(x_a, x_b, y):
        with autocast():
            z_a, z_b, logits = net(prepare(x_a), prepare(x_b))
        terms = vicreg_loss(gathered(z_a.to(dtype)), gathered(z_b.to(dtype)), **loss_kwargs, check_finite=False)
        probe_loss = F.cross_entropy(logits.to(dtype), y)
        optimizer.zero_grad(set_to_none=True)
        probe_optimizer.zero_grad(set_to_none=True)
        (terms.loss + probe_loss).backward()  # fp16's GradScaler multiplies a scalar: no memory
        optimizer.step()
        probe_optimizer.step()

    if warm_steps == 0:
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer.step()
        probe_optimizer.step()
    for _ in range(warm_steps):
        step(*batch())
    x_a, x_b, y = batch()
    measure_from()
    step(x_a, x_b, y)
    del buckets


def estimate_step_memory(
    cfg: Config, per_gpu_batch: int, amp: str, world: int = 1, num_classes: int | None = None
) -> int:
    """Peak bytes of one training step of ``cfg``'s model on one GPU, counted on fake tensors.

    Mirrors ``trainer.train_step``: ``per_gpu_batch`` images per view arrive as float32
    batches on the device, are copied to channels-last (``cfg.channels_last``), go through
    :class:`~vicreg_edu.models.VICRegWithProbe` under autocast, then the VICReg loss (float32,
    ``check_finite=False``), the probe's cross-entropy, ``zero_grad(set_to_none=True)`` (after
    the forward, as the trainer does: the previous gradients are alive during the forward),
    backward, and the steps of ``cfg.optimizer`` and of the probe's AdamW. See the module
    docstring for what the count includes and what it misses.

    Args:
        cfg: model (``backbone``, ``expander``), image size (``augment`` / ``aug``), optimiser.
        per_gpu_batch: images per view on this GPU (``batch_size / world``).
        amp: ``bf16``, ``fp16`` or ``fp32`` (no autocast).
        world: processes; above 1 adds the DDP gradient buckets and the gathered loss.
        num_classes: the probe's classes (default: from ``cfg.dataset``).

    Returns:
        bytes at the peak (what ``torch.cuda.max_memory_allocated()`` would report, less what
        the count cannot see).

    Example:
        >>> cfg = Config(backbone="small_cnn", expander="64-64")
        >>> estimate_step_memory(cfg, 32, "fp32") < estimate_step_memory(cfg, 64, "fp32")
        True
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    _check_amp(amp)
    _check_sizes(per_gpu_batch, world)
    mem = LiveBytes()
    previous = torch.get_default_dtype()
    torch.set_default_dtype({"float32": torch.float32, "float64": torch.float64}[cfg.dtype])
    try:
        with FakeTensorMode(), mem, _loss_on_gpu_path(), torch.device("cpu"):
            _training_step(
                cfg, per_gpu_batch, amp, world, num_classes, lambda: _autocast(_AMP_DTYPE[amp]), mem.reset, warm_steps=0
            )
    finally:
        torch.set_default_dtype(previous)
    return mem.peak


def measure_step_memory(
    cfg: Config, per_gpu_batch: int, amp: str, world: int = 1, num_classes: int | None = None, device: str = "cuda"
) -> dict[str, int]:
    """The same step on a real GPU: ``torch.cuda.max_memory_allocated()`` over it, in bytes.

    Runs one warm-up step (cuDNN picks its kernels, as ``cudnn.benchmark`` does in the trainer)
    then measures a second. Returns ``{"first_step": ..., "steady_step": ...}``: the peak of the
    warm-up step (from an empty GPU) and of the measured one. ``world > 1`` is emulated on this
    one GPU as the estimate does (buckets, a batch of ``world * per_gpu_batch`` rows in the loss).
    """
    _check_amp(amp)
    _check_sizes(per_gpu_batch, world)
    dev = torch.device(device)
    torch.backends.cudnn.benchmark = True
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    first = {}

    def measure_from():
        torch.cuda.synchronize(dev)
        first["peak"] = torch.cuda.max_memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)

    dtype = _AMP_DTYPE[amp]
    with torch.device(dev):
        _training_step(
            cfg,
            per_gpu_batch,
            amp,
            world,
            num_classes,
            lambda: torch.autocast("cuda", dtype=dtype, enabled=dtype is not None),
            measure_from,
            warm_steps=1,
        )
    torch.cuda.synchronize(dev)
    steady = torch.cuda.max_memory_allocated(dev)
    torch.cuda.empty_cache()
    return {"first_step": first["peak"], "steady_step": steady}


def _check_sizes(per_gpu_batch: int, world: int) -> None:
    if per_gpu_batch < 2 or world < 1:
        raise ConfigError(
            f"per_gpu_batch={per_gpu_batch}, world={world}: need 2 or more images per GPU and 1 or more processes"
        )


# ----------------------------------------------------------------------------------------------
# the table for the ImageNet presets' model, and lookups


def _model_key(cfg: Config) -> tuple:
    """What the cached table depends on: model, image size, probe classes, optimiser, dtypes, layout."""
    return (
        cfg.backbone,
        cfg.expander,
        make_augment_config(cfg).size,
        _NUM_CLASSES.get(cfg.dataset, 1000),
        cfg.optimizer,
        cfg.dtype,
        cfg.gram_dtype,
        cfg.channels_last,
    )


_IMAGENET_KEY = _model_key(get_config("imagenet-resnet50", fast=False))

# Made by `python bench/memory.py --cache` (estimate_step_memory, torch 2.14.1, CPU; 4 min on 2 cores):
# (images per GPU, amp, world) -> bytes, for ResNet-50 + 8192-8192-8192 at 224 px, LARS, probe
# of 1000 classes. tests/test_memory.py recomputes an entry and compares.
CACHED_ESTIMATES: dict[tuple[int, str, int], int] = {
    (32, "bf16", 1): 5364184064,
    (32, "fp16", 1): 5364184064,
    (32, "fp32", 1): 7682586624,
    (64, "bf16", 1): 8247176704,
    (64, "fp16", 1): 8247176704,
    (64, "fp32", 1): 13236552704,
    (128, "bf16", 1): 14013162496,
    (128, "fp16", 1): 14013162496,
    (128, "fp32", 1): 24344595968,
    (256, "bf16", 1): 25545808384,
    (256, "fp16", 1): 25545808384,
    (256, "fp32", 1): 46591446016,
    (512, "bf16", 1): 48614482432,
    (512, "fp16", 1): 48614482432,
    (512, "fp32", 1): 91148563456,
    (32, "bf16", 8): 6096376320,
    (32, "fp16", 8): 6096376320,
    (32, "fp32", 8): 8450970112,
    (64, "bf16", 8): 9011481600,
    (64, "fp16", 8): 9011481600,
    (64, "fp32", 8): 14069237248,
    (128, "bf16", 8): 14848770560,
    (128, "fp16", 8): 14848770560,
    (128, "fp32", 8): 25312849920,
    (256, "bf16", 8): 26551660032,
    (256, "fp16", 8): 26551660032,
    (256, "fp32", 8): 47828386816,
    (512, "bf16", 8): 50070685184,
    (512, "fp16", 8): 50070685184,
    (512, "fp32", 8): 92972706816,
    (32, "bf16", 32): 6315397632,
    (32, "fp16", 32): 6315397632,
    (32, "fp32", 32): 8669991424,
    (64, "bf16", 32): 9484913664,
    (64, "fp16", 32): 9484913664,
    (64, "fp32", 32): 14542669312,
    (128, "bf16", 32): 15937192448,
    (128, "fp16", 32): 15937192448,
    (128, "fp32", 32): 26401271808,
    (256, "bf16", 32): 27551921664,
    (256, "fp16", 32): 27551921664,
    (256, "fp32", 32): 48827624448,
    (512, "bf16", 32): 51383373312,
    (512, "fp16", 32): 51383373312,
    (512, "fp32", 32): 94283346944,
}


def step_memory(cfg: Config, per_gpu_batch: int, amp: str, world: int = 1) -> int:
    """:func:`estimate_step_memory`, read from :data:`CACHED_ESTIMATES` when it holds this case.

    Other cases are estimated once per process (a few CPU seconds each) and remembered.
    """
    _check_amp(amp)
    if _model_key(cfg) == _IMAGENET_KEY and (per_gpu_batch, amp, world) in CACHED_ESTIMATES:
        return CACHED_ESTIMATES[per_gpu_batch, amp, world]
    key = (json.dumps(cfg.to_dict(), sort_keys=True, default=str), per_gpu_batch, amp, world)
    if key not in _ESTIMATES:
        _ESTIMATES[key] = estimate_step_memory(cfg, per_gpu_batch, amp, world)
    return _ESTIMATES[key]


_ESTIMATES: dict[tuple, int] = {}


def describe(cfg: Config) -> str:
    """``ResNet-50 + 8192x3``: the model in words, for messages."""
    names = {
        "resnet50": "ResNet-50",
        "resnet18": "ResNet-18",
        "resnet18_cifar": "ResNet-18 (CIFAR stem)",
        "small_cnn": "small CNN",
    }
    widths = cfg.expander.split("-")
    expander = f"{widths[0]}x{len(widths)}" if len(set(widths)) == 1 else cfg.expander
    return f"{names.get(cfg.backbone, cfg.backbone)} + {expander}"


# ----------------------------------------------------------------------------------------------
# before training

_FROM_CONFIG = "from cfg.amp"


def _amp_name(cfg: Config, amp) -> str:
    """``bf16`` / ``fp16`` / ``fp32`` from an autocast dtype (None: off), a name, or ``cfg.amp``."""
    if isinstance(amp, str) and amp == _FROM_CONFIG:
        amp = {"auto": "bf16" if cfg.dtype == "float32" else "fp32", "none": "fp32"}.get(cfg.amp, cfg.amp)
    elif amp is None or isinstance(amp, torch.dtype):
        amp = {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[amp]
    _check_amp(amp)
    return amp


def preflight(cfg: Config, device: torch.device, world: int, amp=_FROM_CONFIG) -> dict | None:
    """Before training on CUDA: does a step fit in this GPU's free memory? Stop (or warn) if not.

    Compares :data:`HEADROOM` x :func:`step_memory` at ``cfg.batch_size / world`` images per GPU
    with ``torch.cuda.mem_get_info(device)``. Each process checks its own GPU. Does nothing off
    CUDA. For the ImageNet presets' model the estimate comes from :data:`CACHED_ESTIMATES` (no
    delay); another model costs a few CPU seconds per estimate.

    Args:
        cfg: the run's config; ``cfg.memory_check=False`` turns the error into a warning.
        device: this process's device.
        world: number of processes (GPUs).
        amp: the precision the run uses (the trainer's autocast dtype, ``torch.bfloat16`` /
            ``torch.float16`` / None for no autocast, or ``bf16`` / ``fp16`` / ``fp32``); default
            from ``cfg.amp`` (``auto``: bf16). Pass the trainer's ``run.amp_dtype``.

    Returns:
        None off CUDA, else a dict (``need_bytes``, ``free_bytes``, ``per_gpu``, ``amp``) for the log.

    Raises:
        ConfigError: one line: the model, the per-GPU batch, the precision, what it needs, what is
            free, and a ``batch_size`` that fits (with its ``base_lr`` from :data:`PLAN_BASE_LR` when
            ``cfg.epochs`` is 100 or 1000) or how many GPUs the configured batch needs.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    amp = _amp_name(cfg, amp)
    per_gpu = cfg.batch_size // world
    need = HEADROOM * step_memory(cfg, per_gpu, amp, world)
    free, _total = torch.cuda.mem_get_info(device)
    info = {"need_bytes": int(need), "free_bytes": int(free), "per_gpu": per_gpu, "amp": amp}
    if need <= free:
        return info
    what = (
        f"{describe(cfg)} at {per_gpu} images per GPU in {amp} needs about {need / GB:.1f} GB; "
        f"this GPU has {free / GB:.1f} GB free"
    )
    message = f"{what}: {_advice(cfg, per_gpu, amp, world, free)}"
    if not cfg.memory_check:
        warnings.warn(f"{message} (memory_check=false: going on)", RuntimeWarning, stacklevel=2)
        return info
    raise ConfigError(message + ", or memory_check=false to try anyway")


def _fitting_per_gpu(cfg: Config, below: int, amp: str, world: int, free: float) -> int | None:
    """The largest power of two < ``below`` images per GPU whose step fits in ``free`` bytes."""
    b = 2 ** (max(below - 1, 1).bit_length() - 1)
    while b >= 2:
        if HEADROOM * step_memory(cfg, b, amp, world) <= free:
            return b
        b //= 2
    return None


def _advice(cfg: Config, per_gpu: int, amp: str, world: int, free: float) -> str:
    fit = _fitting_per_gpu(cfg, per_gpu, amp, world, free)
    if fit is None:
        return "not even 2 images per GPU fit: use a GPU with more free memory or a smaller model"
    need_fit = HEADROOM * step_memory(cfg, fit, amp, world) / GB
    global_batch = fit * world
    known = PLAN_BASE_LR.get(cfg.epochs, {}).get(global_batch)
    if known is not None:
        smaller = f"--set batch_size={global_batch} base_lr={known[0]} ({_SHORT_SOURCE[cfg.epochs, known[0]]}"
    else:
        smaller = f"--set batch_size={global_batch} (no published base_lr for it at {cfg.epochs} epochs"
    return (
        f"use {smaller}; {fit} per GPU needs ~{need_fit:.0f} GB) "
        f"or {cfg.batch_size // fit} GPUs for batch_size={cfg.batch_size}"
    )


# ----------------------------------------------------------------------------------------------
# the command for a number and size of GPUs

_SECTION_42 = "the paper's linear scaling rule lr = base_lr x batch / 256 (Section 4.2)"
PLAN_BASE_LR: dict[int, dict[int, tuple[float, str]]] = {
    1000: {
        2048: (0.2, "the paper's 1000-epoch recipe (Section 4.2; the official 4-node launch)"),
        **{
            b: (0.2, f"the 1000-epoch base_lr 0.2 with {_SECTION_42}; the paper has no 1000-epoch run at batch {b}")
            for b in (1024, 512, 256, 128)
        },
    },
    100: {
        2048: (
            0.3,
            "the paper's 100-epoch runs: 0.3 at batch 2048 (appendix C.4; first author, facebookresearch/vicreg#13)",
        ),
        1024: (0.3, "0.3, what the authors used at 100 epochs both at 2048 (vicreg#13) and at 512 (official launch)"),
        512: (0.3, "the official 100-epoch launch (README); appendix C.4 says 0.4, vicreg#23 asks which, unanswered"),
        256: (0.5, "appendix C.4's small-batch value (100 epochs); first author, vicreg#21"),
        128: (0.8, "appendix C.4's small-batch value (100 epochs)"),
    },
}
"""epochs -> global batch -> (base_lr, its source) for :func:`launch_plan` and the memory check's advice.

The paper's runs: 1000 epochs at batch 2048 with base_lr 0.2; 100 epochs at 2048 with 0.3 (the
ablations of Tables 7 and 12, 68.6 % linear top-1; vicreg#13). Appendix C.4's small-batch values
(0.4 / 0.5 / 0.8 at 512 / 256 / 128) come from the 100-epoch setting, so a 1000-epoch plan at a
smaller batch keeps 0.2 and lets the linear scaling rule lower the peak lr, as the paper's
recipe does; nobody has published a tuned 1000-epoch value below 2048."""
_SHORT_SOURCE = {
    (1000, 0.2): "the 1000-epoch base_lr with the linear scaling rule",
    (100, 0.3): "the authors' 100-epoch base_lr",
    (100, 0.5): "the paper's 100-epoch value for it",
    (100, 0.8): "the paper's 100-epoch value for it",
}

IMAGENET_TRAIN = 1_281_167
"""ILSVRC-2012 training images (the trainer drops each epoch's last incomplete batch)."""

MEASURED_RATES: dict[str, tuple[float, str]] = {
    "H200": (
        1925.7365638921726,
        "one H200, the trainer at 512 images per GPU, bf16, synthetic in-memory images augmented on the "
        "GPU: no JPEG decoding, no all-reduce (bench/results/gpu_suite_h200_2026-11-30.json, imagenet_step)",
    ),
    "V100": (
        100 * IMAGENET_TRAIN / (11 * 3600) / 32,
        "the paper's 11 h per 100 epochs on 32 V100s at 64 images per GPU, the official code, data "
        "pipeline included (appendix E)",
    ),
}
"""Training images per second per GPU that were measured, with how: the only rates an expected
epoch time is computed from (:func:`expected_time`). The H200 figure is a ceiling for a real run
(the JPEG pipeline and the gradient all-reduce only slow it); the V100 figure is a whole job's."""

PIL_IMAGES_PER_CORE_S: tuple[float, str] = (
    137.30228824475213,
    "the trainer's PIL path (decode + the official two-view augmentation) on one core of the shared "
    "CPU this book is built on, 500x375 JPEGs of 111 KB (bench/results/jpeg_pipeline_cpu_2026-12-07.json)",
)
"""Images (two views each) per CPU-second of the CPU data pipeline, measured: with ``k`` loader
cores per GPU it delivers at most ``k`` times this (:func:`expected_time`'s ``loader_cores``)."""


@dataclass
class LaunchPlan:
    """What to run on a given set of GPUs (see :func:`launch_plan`)."""

    preset: str
    overrides: dict
    per_gpu: int
    need_gib: float  # HEADROOM x the estimate, GiB
    command: str
    note: str
    epochs: int = 1000
    world: int = 1
    global_batch: int = 2048
    base_lr: float = 0.2
    lr_source: str = ""

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per ImageNet epoch (the last incomplete batch dropped)."""
        return IMAGENET_TRAIN // self.global_batch


def expected_time(
    plan: LaunchPlan,
    images_per_s_per_gpu: float,
    loader_cores: int | None = None,
    images_per_core_s: float = PIL_IMAGES_PER_CORE_S[0],
) -> dict[str, float]:
    """Epoch time, whole-run hours and GPU-hours of ``plan`` if each GPU trains at the given rate.

    ``images_per_s_per_gpu``: one of :data:`MEASURED_RATES` (say which when you quote the result).
    ``loader_cores``: CPU cores feeding each GPU (``num_workers``); the rate is then at most
    ``loader_cores * images_per_core_s`` (default: the measured PIL path, :data:`PIL_IMAGES_PER_CORE_S`).
    Returns ``epoch_s``, ``run_h``, ``gpu_h`` and the ``images_per_s_per_gpu`` used.

    Example:
        >>> plan = launch_plan(4, 8, 32, amp="fp16")
        >>> round(expected_time(plan, MEASURED_RATES["V100"][0])["run_h"])  # the paper: 11 h per 100 epochs
        110
    """
    rate = images_per_s_per_gpu
    if loader_cores is not None:
        rate = min(rate, loader_cores * images_per_core_s)
    images = plan.steps_per_epoch * plan.global_batch
    epoch_s = images / (plan.world * rate)
    run_h = epoch_s * plan.epochs / 3600
    return {"epoch_s": epoch_s, "run_h": run_h, "gpu_h": run_h * plan.world, "images_per_s_per_gpu": rate}


def _launch_command(nodes: int, gpus_per_node: int, train_args: str) -> str:
    """The engine for the job's size: SLURM (submitit) across nodes, torchrun on one node, else one process.

    torchrun is told to pass SLURM's USR1/USR2 on to the trainers (``distributed.TORCHRUN_SIGNALS``)."""
    if nodes > 1:
        return f"vicreg-edu submit --nodes {nodes} --gpus-per-node {gpus_per_node} -- {train_args}"
    if gpus_per_node > 1:
        return (
            f"torchrun --signals-to-handle={TORCHRUN_SIGNALS} --nproc_per_node={gpus_per_node} "
            f"-m vicreg_edu train {train_args}"
        )
    return f"vicreg-edu train {train_args}"


def launch_plan(
    nodes: int,
    gpus_per_node: int,
    gpu_memory_gib: float,
    amp: str = "bf16",
    epochs: int = 1000,
    data_dir: str = "/path/to/imagenet",
    slow_float64: bool = False,
) -> LaunchPlan:
    """The ImageNet run that fits ``nodes`` x ``gpus_per_node`` GPUs of ``gpu_memory_gib`` each.

    Tries the global batches of :data:`PLAN_BASE_LR` for ``epochs`` from the largest down (2048,
    1024, 512, 256, 128) and takes the first whose share per GPU fits with 10% to spare:
    :data:`HEADROOM` x :func:`step_memory` at most 0.9 x (the GPU's memory less 1 GiB for the
    CUDA context). A plan keeps that spare because the headroom was calibrated on one figure
    (``bench/README.md``); :func:`preflight` then checks the real free memory at the start. The
    base_lr comes with its source (``lr_source``): 1000 epochs keep the recipe's 0.2 at every
    batch (linear scaling), 100 epochs use the authors' 100-epoch values.

    Args:
        gpu_memory_gib: memory of one GPU as the vendor lists it (V100 16 or 32, A100 40 or 80,
            H100 80: GiB).
        amp: ``bf16`` on A100 / H100 / H200, ``fp16`` on V100 (no bf16 there), ``fp32``.
        slow_float64: the GPUs run float64 at 1/32-1/64 of float32 (A10, L4, L40S, RTX): the
            plan sets ``gram_dtype=float32`` for the covariance term's Gram side.

    Example:
        >>> launch_plan(4, 8, 32, amp="fp16").command.split(" -- ")[1]
        '--preset imagenet-resnet50 --set data_dir=/path/to/imagenet amp=fp16'
        >>> launch_plan(1, 8, 32, amp="fp16").overrides["batch_size"], launch_plan(1, 8, 32, amp="fp16").base_lr
        (1024, 0.2)
    """
    _check_amp(amp)
    if epochs not in PLAN_BASE_LR:
        raise ConfigError(
            f"epochs={epochs}: the paper's runs are 1000 epochs (imagenet-resnet50) or 100 (imagenet-resnet50-100ep)"
        )
    world = nodes * gpus_per_node
    usable = (gpu_memory_gib - 1) * 2**30
    preset = "imagenet-resnet50" if epochs == 1000 else "imagenet-resnet50-100ep"
    base = get_config(preset, fast=False)  # memory counted with the float64 Gram side: an upper bound for float32
    chain = sorted(PLAN_BASE_LR[epochs].items(), reverse=True)
    shares = [(b, lr) for b, lr in chain if b % world == 0 and b // world >= 2]
    needs = ((b, lr, HEADROOM * step_memory(base, b // world, amp, world)) for b, lr in shares)
    fit = next(((b, lr, need) for b, lr, need in needs if need <= 0.9 * usable), None)  # the largest that fits
    if fit is None:
        raise ConfigError(
            f"no batch of the paper's ({', '.join(str(b) for b, _ in chain)}) fits "
            f"{world} GPU(s) of {gpu_memory_gib:g} GiB in {amp}: use more or larger GPUs"
        )
    (global_batch, (base_lr, lr_source), need), per_gpu = fit, fit[0] // world
    overrides = {"data_dir": data_dir}
    if global_batch != base.batch_size:
        overrides["batch_size"] = global_batch
    if base_lr != base.base_lr:
        overrides["base_lr"] = base_lr
    if amp != "bf16":
        overrides["amp"] = "none" if amp == "fp32" else amp
    if slow_float64:
        overrides["gram_dtype"] = "float32"
    command = _launch_command(
        nodes, gpus_per_node, f"--preset {preset} --set " + " ".join(f"{k}={v}" for k, v in overrides.items())
    )
    note = (
        f"{per_gpu} images per GPU need ~{need / 2**30:.0f} GiB of {gpu_memory_gib:g}; batch {global_batch}, "
        f"base_lr {base_lr} (peak lr {base_lr * global_batch / 256:g}): {lr_source}"
    )
    return LaunchPlan(
        preset, overrides, per_gpu, need / 2**30, command, note, epochs, world, global_batch, base_lr, lr_source
    )


HARDWARE = {
    "8 x 80 GB (A100 / H100 / H200)": dict(nodes=1, gpus_per_node=8, gpu_memory_gib=80, amp="bf16"),
    "8 x 40 GB (A100)": dict(nodes=1, gpus_per_node=8, gpu_memory_gib=40, amp="bf16"),
    "8 x 32 GB (V100)": dict(nodes=1, gpus_per_node=8, gpu_memory_gib=32, amp="fp16"),
    "8 x 24 GB (A10 / L4 / RTX: slow float64)": dict(
        nodes=1, gpus_per_node=8, gpu_memory_gib=24, amp="bf16", slow_float64=True
    ),
    "8 x 16 GB (V100)": dict(nodes=1, gpus_per_node=8, gpu_memory_gib=16, amp="fp16"),
    "4 nodes x 8 x 32 GB (V100, the paper's)": dict(nodes=4, gpus_per_node=8, gpu_memory_gib=32, amp="fp16"),
}
"""Hardware classes for :func:`launch_plan` (the README's and chapter 9's table)."""
