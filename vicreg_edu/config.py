"""Every knob of a VICReg run in one dataclass, and the named presets.

The CLI (``vicreg-edu train --preset demo --set epochs=5``), ``python -m vicreg_edu train``
and the notebooks (``get_config("demo", epochs=5)``) all build their configuration here.

Presets
-------
``demo``               built-in Shapes dataset, small CNN, CPU-friendly: learns in minutes on 2 cores.
``cifar10``/``cifar100`` solo-learn's CIFAR recipe: ResNet-18 (CIFAR stem), 2048x3, LARS (clipped), batch 256.
``imagenet-resnet50``  the paper's 1000-epoch run (ResNet-50, expander 8192-8192-8192, batch 2048,
                       LARS, base lr 0.2; 4 nodes x 8 GPUs, 64 images per GPU).
``imagenet-resnet50-100ep`` the official 100-epoch launch (batch 512, base lr 0.3; 1 node x 8 GPUs).

Fewer GPUs: :func:`paper_base_lr` (the paper's small-batch learning rates, from its 100-epoch runs) and
``vicreg_edu.memory.launch_plan`` (the command that fits a number and size of GPUs, with the base lr
for its batch and number of epochs: ``memory.PLAN_BASE_LR``).

Fast mode
---------
``VICREG_EDU_FAST=1`` (read here and nowhere else) makes :func:`get_config` shrink the *amount*
of work (epochs, dataset size, widths) so tests and notebooks run in CI on a CPU; the code path
is unchanged. Explicit overrides passed to :func:`get_config` win over the fast-mode shrink.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ConfigError
from .views import DATASET_STATS, make_augment_config

DATASETS = ("shapes", "cifar10", "cifar100", "imagefolder", "imagenet")
"""Names of ``Config.dataset``: the built-in Shapes, torchvision's CIFAR sets, image folders (ImageNet)."""
IN_MEMORY_DATASETS = ("shapes", "cifar10", "cifar100")
"""Small-image datasets held as one uint8 tensor and augmented on the device (see ``data``)."""
BACKBONES = ("small_cnn", "resnet18_cifar", "resnet18", "resnet50")
"""Names of ``Config.backbone`` (built by ``models.build_backbone``)."""

FAST: bool = os.environ.get("VICREG_EDU_FAST", "0").lower() not in ("", "0", "false", "no")
"""True when the environment asks for the CI-sized version of every run (``VICREG_EDU_FAST=1``)."""


def rule(
    default: Any = dataclasses.MISSING,
    *,
    factory=None,
    low=None,
    above=None,
    high=None,
    choices=None,
    trajectory: bool = False,
    resume_change: bool = False,
):
    """A :class:`Config` field with its rules, which :func:`validate` and the resume check read.

    ``low`` / ``above``: the smallest value allowed / a strict lower bound; ``high``: the largest;
    ``choices``: the allowed values; ``trajectory``: changing it changes a run's optimisation
    trajectory, so a resume with another value is refused (:data:`TRAJECTORY_KEYS`);
    ``resume_change``: a trajectory key that ``resume_changes`` may list (:data:`RESUME_CHANGEABLE`).
    """
    meta = {k: v for k, v in dict(low=low, above=above, high=high, choices=choices).items() if v is not None}
    meta.update(trajectory=trajectory, resume_change=resume_change)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Config:
    """A complete, serialisable description of a VICReg training run.

    Names follow the paper (Bardes, Ponce & LeCun, ICLR 2022, Eq. 6): ``sim_coeff`` is lambda,
    ``std_coeff`` is mu, ``cov_coeff`` is nu; ``gamma`` and ``eps`` enter the variance term.

    Every field is checked when the config is built (also by ``replace``, :func:`get_config`
    and ``--set``): a bad type, value or name raises :class:`~vicreg_edu.errors.ConfigError`
    naming the field and what it accepts (see :func:`validate`).

    Example:
        >>> cfg = Config(epochs=2, batch_size=64)
        >>> cfg.lr  # base_lr * batch_size / 256
        0.05
        >>> Config(gamma=-1)
        Traceback (most recent call last):
        ...
        vicreg_edu.errors.ConfigError: gamma=-1 is out of range: gamma must be a number > 0
    """

    # --- data -------------------------------------------------------------------------------
    # shapes | cifar10 | cifar100 | imagefolder (alias imagenet)
    dataset: str = rule("shapes", choices=DATASETS, trajectory=True)
    data_dir: str | None = rule(None)  # root folder; None = default location of the dataset
    download: bool = rule(False)  # CIFAR only: let torchvision download it
    train_size: int = rule(0, low=0, trajectory=True)  # use only the first N training images (0 = all)
    test_size: int = rule(0, low=0)  # use only the first N test images (0 = all)
    augment: str = rule("shapes", trajectory=True)  # shapes | cifar | imagenet: the AugmentConfig recipe
    aug: dict[str, Any] = rule(factory=dict, trajectory=True)  # AugmentConfig overrides, e.g. {"jitter_p": 0}
    num_workers: int = rule(0, low=0)  # DataLoader workers (image-folder datasets; in-memory sets use none)
    # image folders: "pil" = workers decode + augment in PIL (uint8 views); "gpu" = workers read the
    # files, decode (nvJPEG on CUDA) + augmentation on the device (vicreg_edu.gpu_pipeline)
    pipeline: str = rule("pil", choices=("pil", "gpu"), trajectory=True)

    # --- model ------------------------------------------------------------------------------
    # small_cnn | resnet18_cifar | resnet18 | resnet50
    backbone: str = rule("small_cnn", choices=BACKBONES, trajectory=True)
    expander: str = rule("512-512-512", trajectory=True)  # official spec format, e.g. "8192-8192-8192"

    # --- loss (paper Eq. 6) -----------------------------------------------------------------
    sim_coeff: float = rule(25.0, low=0, trajectory=True)  # lambda, weight of the invariance term s
    std_coeff: float = rule(25.0, low=0, trajectory=True)  # mu, weight of the variance term v
    cov_coeff: float = rule(1.0, low=0, trajectory=True)  # nu, weight of the covariance term c
    gamma: float = rule(1.0, above=0, trajectory=True)  # target standard deviation in the variance hinge
    eps: float = rule(1e-4, above=0, trajectory=True)  # numerical stabiliser inside the square root
    # vicreg | simclr: the loss the trainer optimises (simclr: NT-Xent, vicreg_edu.contrastive; the
    # three VICReg terms are then logged, not optimised, and sim/std/cov_coeff, gamma, eps are unused)
    method: str = rule("vicreg", choices=("vicreg", "simclr"), trajectory=True)
    temperature: float = rule(0.5, above=0, trajectory=True)  # NT-Xent temperature tau (method="simclr" only)

    # --- optimisation -----------------------------------------------------------------------
    epochs: int = rule(30, low=1, trajectory=True, resume_change=True)
    batch_size: int = rule(256, low=2, trajectory=True)  # GLOBAL batch; each of W processes sees batch_size / W
    optimizer: str = rule("lars", choices=("lars", "sgd", "adamw"), trajectory=True)  # lars | sgd | adamw
    # lr = base_lr * batch_size / 256 (official main_vicreg.py)
    base_lr: float = rule(0.2, above=0, trajectory=True, resume_change=True)
    weight_decay: float = rule(1e-6, low=0, trajectory=True, resume_change=True)
    momentum: float = rule(0.9, low=0, high=1, trajectory=True, resume_change=True)
    lars_eta: float = rule(0.001, above=0, trajectory=True, resume_change=True)
    lars_clip: bool = rule(False, trajectory=True)  # solo-learn clip_lr: per-layer lr min(eta * trust, lr) (optim.LARS)
    # linear warm-up, then cosine decay per step
    warmup_epochs: float = rule(10.0, low=0, trajectory=True, resume_change=True)
    # final lr = end_lr_ratio * peak lr (official: 0.001)
    end_lr_ratio: float = rule(0.001, low=0, high=1, trajectory=True, resume_change=True)
    # online linear probe (AdamW) on detached representations
    probe_lr: float = rule(1e-3, above=0, trajectory=True, resume_change=True)
    max_steps: int = rule(0, low=0)  # stop after this many steps (0 = run all epochs); schedule unchanged
    seed: int = rule(0, low=0, high=2**31 - 1, trajectory=True)

    # --- system -----------------------------------------------------------------------------
    device: str = rule("auto")  # auto | cpu | cuda | cuda:N
    # auto (bf16 on GPUs with bf16, else fp16 + GradScaler; off on CPU) | bf16 | fp16 | none
    amp: str = rule("auto", choices=("auto", "bf16", "fp16", "none"))
    channels_last: bool = rule(True)  # channels-last memory for conv nets (CPU too: 1.1-1.4x faster steps on the demo)
    compile: bool = rule(False)  # torch.compile the model
    # parameters and activations: float32 | float64 (float64: exactness tests)
    dtype: str = rule("float32", choices=("float32", "float64"), trajectory=True)
    sync_bn: bool = rule(True)  # synchronise BatchNorm statistics across processes
    # covariance term's Gram side (global batch < expander width) on a GPU: float64 | float32 (for GPUs whose
    # float64 runs at 1/32-1/64 of float32: A10, L4, L40S, RTX); loss.vicreg_loss's gram_dtype
    gram_dtype: str = rule("float64", choices=("float64", "float32"))
    # CUDA: stop if the step needs more memory than is free (memory.preflight); false: warn
    memory_check: bool = rule(True)

    # --- logging and checkpoints ------------------------------------------------------------
    out_dir: str = rule("runs/demo")
    log_every: int = rule(10, low=1)  # steps between metric records (and NaN checks)
    ckpt_every: int = rule(0, low=0)  # steps between mid-epoch checkpoints (0 = end of each epoch only)
    resume: str = rule("")  # "" = fresh run, "auto" = latest checkpoint in out_dir, or a path
    # optimisation keys a resume may change, e.g. "base_lr,warmup_epochs" (RESUME_CHANGEABLE)
    resume_changes: str = rule("")
    diag_size: int = rule(512, low=0)  # held-out images for the per-epoch collapse report
    knn_every: int = rule(0, low=0)  # epochs between k-NN evaluations during training (0 = only at the end)
    final_eval: bool = rule(True)  # k-NN of trained vs random encoder vs raw pixels at the end
    progress: bool = rule(True)  # tqdm progress bar on rank 0 when stderr is a terminal (else plain lines)
    # steps between plain progress lines (step, epoch, global-batch loss, images/s, ETA) on rank 0 when no
    # tqdm bar shows (stderr not a terminal: files, SLURM logs, notebooks; or progress=false); 0 = none.
    # An epoch line follows every epoch either way.
    print_every: int = rule(100, low=0)
    tensorboard: bool = rule(True)  # also write TensorBoard events when tensorboard is installed

    def __post_init__(self) -> None:
        validate(self)

    @property
    def lr(self) -> float:
        """Peak learning rate: ``base_lr * batch_size / 256`` (linear scaling, official code)."""
        return self.base_lr * self.batch_size / 256

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict copy (JSON-serialisable), stored in checkpoints and ``config.json``."""
        return asdict(self)

    def replace(self, **overrides: Any) -> "Config":
        """Copy with some fields changed; unknown keys raise ``ValueError`` (see :func:`check_keys`)."""
        check_keys(overrides)
        return dataclasses.replace(self, **overrides)


TRAJECTORY_KEYS = tuple(f.name for f in fields(Config) if f.metadata.get("trajectory"))
"""Fields whose change makes a checkpoint's optimisation trajectory different: resuming with another
value is refused. The others (out_dir, progress, log_every, resume, max_steps, device, num_workers,
...) may change between a run and its resumption."""
RESUME_CHANGEABLE = tuple(f.name for f in fields(Config) if f.metadata.get("resume_change"))
"""The keys ``resume_changes`` may list: the optimisation settings a resumed run may change on purpose
(after a NaN: a lower ``base_lr``, a longer ``warmup_epochs``); every other trajectory key must match."""


def _demo() -> Config:
    """Built-in Shapes data, small CNN, AdamW: a real VICReg run in about three minutes on 2 CPU cores.

    10 epochs of batch 128; a two-layer expander 1024-512; coefficients lambda/mu/nu = 25/50/0.5;
    AdamW at base lr 1.5e-2 with 1 warm-up epoch and a cosine that decays only to 0.75 x the peak;
    crops of scale 0.6-1 and no horizontal flips.
    Chosen by the recipe search (``scripts/recipe_search.py``; every run:
    ``load_results("recipe_search")``; what it found: ``vicreg_edu/results/README.md``).
    AdamW rather than LARS: LARS's trust ratio (eta = 0.001) limits each step's relative change of
    a weight matrix to about lr x 0.001, which suits ImageNet's 500k steps, not a demo's 780.
    """
    return Config(
        dataset="shapes",
        augment="shapes",
        aug={"crop_scale": (0.6, 1.0), "flip_p": 0.0},
        backbone="small_cnn",
        expander="1024-512",
        sim_coeff=25.0,
        std_coeff=50.0,
        cov_coeff=0.5,
        epochs=10,
        batch_size=128,
        optimizer="adamw",
        base_lr=1.5e-2,
        weight_decay=0.05,
        warmup_epochs=1,
        end_lr_ratio=0.75,
        out_dir="runs/demo",
        log_every=20,
        knn_every=5,
    )


# solo-learn's VICReg CIFAR recipe, as read (tests/test_presets.py holds _cifar against it)
SOLO_LEARN_CIFAR = (
    "vturrisi/solo-learn, scripts/pretrain/cifar/vicreg.yaml at commit "
    "9187ea39c2c3f43c455ab06664d2b019a9802954 (2026-04-22)"
)


# What the cifar presets still differ in from solo-learn (its scripts/pretrain/cifar/vicreg.yaml):
# - backbone: solo's CIFAR ``conv1`` is 3x3, stride 1, **padding 2** (34x34 maps after it; ours
#   padding 1, 32x32) with PyTorch's default init (ours Kaiming normal), and its torchvision
#   ResNet-18 has ``zero_init_residual=False`` (ours True, as the official VICReg ResNet-50);
# - projector: solo's last ``Linear`` has a bias (our expander's has none, as the official one);
# - LARS trust ratio: solo divides by ``||grad|| + wd * ||w|| + 1e-8``, we by
#   ``||grad + wd * w||`` (the official VICReg code), which is never larger: the same at weight
#   decay 0, a ratio at least as large here at 1e-4 (``optim.LARS``);
# - schedule: solo's warm-up starts at ``warmup_start_lr`` 3e-5, ours at 0;
# - online probe: solo trains ``Linear(512, classes)`` in the same LARS optimiser (lr
#   ``classifier_lr`` 0.1, no weight decay) on both views; ours is a separate AdamW (lr 1e-3) on
#   view a. Both see detached features, so neither changes the encoder;
# - precision: solo ``16-mixed`` (fp16 autocast + GradScaler); ours ``amp=auto`` (bf16 on CUDA);
#   ``--set amp=fp16`` matches it;
# - augmentation code: solo applies torchvision/PIL transforms image by image (crop, jitter,
#   grayscale, solarize, flip); ours runs the same distributions batched on the device
#   (``batch_augment.BatchAugment``, flip before the colour ops, which it commutes with); pixel
#   rounding and interpolation details differ.
def _cifar(dataset: str) -> Config:
    """solo-learn's VICReg CIFAR recipe: 92.07% CIFAR-10 / 68.54% CIFAR-100 linear (its README).

    From ``scripts/pretrain/cifar/vicreg.yaml`` (:data:`SOLO_LEARN_CIFAR`) and the code it runs:
    ResNet-18 with the CIFAR stem, projector 2048-2048-2048, 1000 epochs, batch 256, LARS with
    lr 0.3 (0.3 x 256 / 256), momentum 0.9, ``eta: 0.02``, ``clip_lr: True`` (``lars_clip``),
    ``exclude_bias_n_norm: True`` (as our LARS always does), weight decay 1e-4, ``warmup_cosine``
    with solo's defaults (10 warm-up epochs, per step, down to ``min_lr`` 0: ``end_lr_ratio=0``),
    loss weights 25/25/1 with *no* /2 on the variance term: our ``std_coeff`` multiplies
    ``(v_a + v_b) / 2`` (the official convention, ``vicreg_edu.loss``), so ``std_coeff=50`` is
    their 25. The views: :func:`~vicreg_edu.views.cifar_augment` (crop scale 0.2-1, colour jitter
    (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2, no blur, solarization 0.1, flip 0.5, the same on
    both views), normalised with the statistics of the dataset trained on (solo's ``MEANS_N_STD``).

    How it still differs from solo-learn: the comment above this function.

    Fast mode shrinks sizes only (``_FAST_SHRINK``).
    """
    mean, std = DATASET_STATS[dataset]
    aug = {} if dataset == "cifar10" else {"mean": mean, "std": std}  # cifar_augment has CIFAR-10's
    return Config(
        dataset=dataset,
        augment="cifar",
        aug=aug,
        backbone="resnet18_cifar",
        expander="2048-2048-2048",
        sim_coeff=25.0,
        std_coeff=50.0,
        cov_coeff=1.0,
        epochs=1000,
        batch_size=256,
        optimizer="lars",
        base_lr=0.3,
        weight_decay=1e-4,
        momentum=0.9,
        lars_eta=0.02,
        lars_clip=True,
        warmup_epochs=10,
        end_lr_ratio=0.0,
        out_dir=f"runs/{dataset}",
        log_every=50,
        knn_every=10,
    )


PAPER_BASE_LR = {128: 0.8, 256: 0.5, 512: 0.4, 2048: 0.2}
"""Global batch -> ``base_lr`` from the paper: appendix C.4 for the small batches (100-epoch runs), 0.2 at 2048
(the 1000-epoch recipe). By number of epochs, each with its source: ``memory.PLAN_BASE_LR``."""


def paper_base_lr(batch_size: int) -> float:
    """The ``base_lr`` the paper gives for a global batch (lr = base_lr * batch_size / 256).

    Appendix C.4 (Bardes et al., ICLR 2022) for small batches: 0.8 at 128, 0.5 at 256, 0.4 at
    512, values for 100-epoch runs (the paper's own 100-epoch runs used 0.3 at batch 2048, first
    author in facebookresearch/vicreg#13); the recipe's 0.2 at 2048 (1000 epochs). A 1000-epoch
    run at a smaller batch has no published value: ``memory.launch_plan`` keeps 0.2 there. The
    official 100-epoch launch (README, batch 512) uses 0.3, not the appendix's 0.4
    (facebookresearch/vicreg issue #23 asks which is right; no reply there):
    ``imagenet-resnet50-100ep`` follows the launch. Other batch sizes have no value in the paper;
    pick one of these, or tune.

    Raises:
        ConfigError: a batch size the paper gives no value for.

    Example:
        >>> paper_base_lr(256), get_config("imagenet-resnet50-100ep", batch_size=256, base_lr=paper_base_lr(256)).lr
        (0.5, 0.5)
    """
    if batch_size not in PAPER_BASE_LR:
        raise ConfigError(
            f"the paper gives no base_lr for batch_size={batch_size}; it gives "
            + ", ".join(f"{lr} at {b}" for b, lr in PAPER_BASE_LR.items())
            + " (appendix C.4 and the 1000-epoch recipe): use one of these batch sizes"
        )
    return PAPER_BASE_LR[batch_size]


def _imagenet() -> Config:
    """The paper's 1000-epoch ImageNet run: 73.2% linear top-1 (paper Table 1).

    facebookresearch/vicreg ``main_vicreg.py`` defaults + README: ResNet-50, expander
    8192-8192-8192, global batch 2048, LARS (eta 0.001, momentum 0.9, no weight decay / adaptation
    on biases and BN), base lr 0.2 (lr = 0.2 * 2048 / 256 = 1.6), weight decay 1e-6, 10 warm-up
    epochs then cosine to 0.001 x, coefficients 25/25/1. The official launch is 4 nodes x 8 GPUs,
    64 images per GPU (``vicreg-edu submit --nodes 4 --gpus-per-node 8 -- --preset
    imagenet-resnet50 --set data_dir=...``). On fewer GPUs each holds 2048 / GPUs images (8 GPUs:
    256 each; what that needs: ``memory.step_memory``, table in bench/README.md); with a smaller
    global batch use :func:`paper_base_lr` (e.g. ``--set batch_size=512 base_lr=0.4``).
    ``memory.launch_plan`` gives the command for a given number and size of GPUs.
    """
    return Config(
        dataset="imagefolder",
        data_dir="/path/to/imagenet",
        augment="imagenet",
        backbone="resnet50",
        expander="8192-8192-8192",
        epochs=1000,
        batch_size=2048,
        optimizer="lars",
        base_lr=0.2,
        weight_decay=1e-6,
        warmup_epochs=10,
        num_workers=10,
        out_dir="runs/imagenet-resnet50",
        log_every=50,
        ckpt_every=1000,
        diag_size=2048,
        final_eval=False,
    )


def _imagenet_100ep() -> Config:
    """The official 100-epoch launch: one node of 8 GPUs, 64 images per GPU.

    facebookresearch/vicreg README: ``--epochs 100 --batch-size 512 --base-lr 0.3`` on
    ``--nproc_per_node=8`` (lr = 0.3 * 512 / 256 = 0.6); everything else as
    ``imagenet-resnet50``. The paper's 100-epoch figure, 68.6% (Table 7), is at batch 2048; the
    appendix's small-batch table gives base lr 0.4 at 512 (:func:`paper_base_lr`, which this
    launch does not use). Command: ``torchrun --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2
    --nproc_per_node=8 -m vicreg_edu train --preset imagenet-resnet50-100ep --set data_dir=...``.
    """
    return dataclasses.replace(
        _imagenet(), epochs=100, batch_size=512, base_lr=0.3, out_dir="runs/imagenet-resnet50-100ep"
    )


PRESETS = {
    "demo": _demo,
    "cifar10": lambda: _cifar("cifar10"),
    "cifar100": lambda: _cifar("cifar100"),
    "imagenet-resnet50": _imagenet,
    "imagenet-resnet50-100ep": _imagenet_100ep,
}
"""Name -> factory of the preset :class:`Config`. ``vicreg-edu train --help`` lists them."""

# What fast mode changes per preset: only sizes (epochs, images, widths), never the code path.
_IMAGENET_FAST = dict(
    epochs=1, train_size=64, test_size=32, batch_size=32, expander="256-256-256", warmup_epochs=0, num_workers=0
)
_FAST_SHRINK = {
    # demo: 3 of the 10 epochs (234 steps of 128 images, all 10k images); it already beats a
    # random encoder and raw pixels by a wide k-NN margin (measured seeds: tests/test_train.py)
    "demo": dict(epochs=3, knn_every=0, diag_size=256),
    "cifar10": dict(epochs=1, train_size=512, test_size=256, expander="256-256-256", warmup_epochs=0),
    "cifar100": dict(epochs=1, train_size=512, test_size=256, expander="256-256-256", warmup_epochs=0),
    "imagenet-resnet50": _IMAGENET_FAST,
    "imagenet-resnet50-100ep": _IMAGENET_FAST,
}


# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# Validation, from each field's rule()


def _fail(name: str, value: Any, problem: str, rule: str) -> ConfigError:
    return ConfigError(f"{name}={value!r} {problem}: {name} must be {rule}")


def _check_number(cfg: Config, f: dataclasses.Field) -> None:
    """A numeric field against its rule(): type (that of its default), lower and upper bounds."""
    kind, name, rule_ = type(f.default), f.name, f.metadata
    low, closed = (rule_["low"], True) if "low" in rule_ else (rule_["above"], False)
    value, upper = getattr(cfg, name), rule_.get("high")
    text = ("an integer" if kind is int else "a number") + (f" >= {low:g}" if closed else f" > {low:g}")
    text += f" and <= {upper:g}" if upper is not None else ""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or (kind is int and not isinstance(value, int)):
        raise _fail(name, value, f"has the wrong type ({type(value).__name__})", text)
    if (
        not math.isfinite(value)
        or value < low
        or (value == low and not closed)
        or (upper is not None and value > upper)
    ):
        raise _fail(name, value, "is out of range", text)
    if kind is float:
        object.__setattr__(cfg, name, float(value))


def check_batch_split(batch_size: int, world: int) -> None:
    """The global batch must split into equal shares of at least 2 images (the variance needs 2).

    >>> check_batch_split(64, 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    vicreg_edu.errors.ConfigError: batch_size=64 is not divisible by the world size 3 ... try batch_size=63
    """
    if batch_size % world or batch_size // world < 2:
        raise ConfigError(
            f"batch_size={batch_size} is not divisible by the world size {world} into batches of "
            f"at least 2 images (variance): try batch_size={max(batch_size // world, 2) * world}"
        )


def check_device(device: str) -> None:
    """Check that ``device`` (auto, cpu, cuda, cuda:N) exists on this machine.

    Raises:
        ConfigError: not a device name, or a GPU that is not there (suggesting ``device=cpu``).
    """
    import torch

    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise _fail("device", device, "is not a device", "auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={device!r} but no CUDA GPU is available here "
                "(torch.cuda.is_available() is False); use device=cpu (or device=auto)"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={device!r} but this machine has {torch.cuda.device_count()} GPU(s) "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}); use device=cuda or device=auto"
            )
    elif dev.type != "cpu":
        raise _fail("device", device, "is not supported", "auto, cpu, cuda or cuda:N")


def validate(cfg: Config) -> None:
    """Check every field of ``cfg`` (types, ranges, names, device); called when a Config is built.

    Raises:
        ConfigError: the first bad field, with its value and what it accepts.
    """
    for f in fields(cfg):  # types of the non-numeric fields
        value, default = getattr(cfg, f.name), f.default
        if isinstance(value, os.PathLike) and f.name in ("data_dir", "out_dir", "resume"):
            object.__setattr__(cfg, f.name, value := os.fspath(value))
        if isinstance(default, bool) and not isinstance(value, bool):
            raise _fail(f.name, value, "has the wrong type", "true or false")
        if isinstance(default, str) and not isinstance(value, str):
            raise _fail(f.name, value, "has the wrong type", "a string")
    if cfg.data_dir is not None and not isinstance(cfg.data_dir, str):
        raise _fail("data_dir", cfg.data_dir, "has the wrong type", "a folder path or None")
    if not isinstance(cfg.aug, dict):
        raise _fail("aug", cfg.aug, "has the wrong type", "a dict of AugmentConfig overrides")
    for f in fields(cfg):
        if "low" in f.metadata or "above" in f.metadata:
            _check_number(cfg, f)
    if cfg.sim_coeff == cfg.std_coeff == cfg.cov_coeff == 0:
        raise ConfigError(
            "sim_coeff, std_coeff and cov_coeff are all 0: the loss would be 0; "
            "set at least one of them > 0 (the paper uses 25, 25, 1)"
        )
    for f in fields(cfg):
        if "choices" in f.metadata and getattr(cfg, f.name) not in f.metadata["choices"]:
            raise _fail(f.name, getattr(cfg, f.name), "is unknown", "one of " + ", ".join(f.metadata["choices"]))
    if cfg.dataset in ("imagefolder", "imagenet") and not cfg.data_dir:
        raise ConfigError(
            f"dataset={cfg.dataset} needs data_dir, the folder that holds train/ (one sub-folder "
            "of images per class; val/ is optional)"
        )
    if cfg.dtype == "float64" and cfg.amp in ("bf16", "fp16"):
        raise ConfigError(f"dtype=float64 needs amp=none or auto (amp={cfg.amp} would compute in half precision)")
    if not cfg.out_dir:
        raise _fail("out_dir", cfg.out_dir, "is empty", "a folder path")
    try:
        parse_expander_spec(cfg.expander)
    except ValueError as e:
        raise ConfigError(f"expander={cfg.expander!r}: {e}") from None
    make_augment_config(cfg)  # augment name and aug overrides (ConfigError naming them)
    check_device(cfg.device)
    bad = [k for k in resume_change_keys(cfg.resume_changes) if k not in RESUME_CHANGEABLE]
    if bad:
        raise _fail(
            "resume_changes",
            cfg.resume_changes,
            f"lists {', '.join(bad)}, which a resume cannot change",
            "a comma-separated list of optimisation keys: " + ", ".join(RESUME_CHANGEABLE),
        )


def resume_change_keys(text: str) -> list[str]:
    """``"base_lr, warmup_epochs"`` -> ``["base_lr", "warmup_epochs"]`` (``Config.resume_changes``)."""
    return [k.strip() for k in text.split(",") if k.strip()]


def parse_expander_spec(spec: str) -> list[int]:
    """Parse an expander spec like the official ``--mlp 8192-8192-8192`` into layer widths.

    Args:
        spec: positive integers joined by ``-``, e.g. ``"8192-8192-8192"`` or ``"512"``.

    Returns:
        list of widths, e.g. ``[8192, 8192, 8192]``; the last is the embedding dimension.

    Raises:
        TypeError: spec is not a str.
        ValueError: empty spec, a part that is not an integer, or a width < 1.

    Example:
        >>> parse_expander_spec("2048-2048")
        [2048, 2048]
    """
    if not isinstance(spec, str):
        raise TypeError(f"expander spec must be a str like '8192-8192-8192', got {type(spec).__name__}")
    if spec.strip() == "":
        raise ValueError("expander spec is empty; expected widths joined by '-', e.g. '8192-8192-8192'")
    widths = []
    for part in spec.strip().split("-"):
        part = part.strip()
        if not part.isdigit():
            raise ValueError(
                f"bad expander spec {spec!r}: {part!r} is not a positive integer; "
                "expected widths joined by '-', e.g. '8192-8192-8192'"
            )
        if int(part) < 1:
            raise ValueError(f"bad expander spec {spec!r}: widths must be >= 1, got {int(part)}")
        widths.append(int(part))
    return widths


def check_keys(overrides: dict[str, Any]) -> None:
    """Raise ``ConfigError`` naming any key that is not a :class:`Config` field."""
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown}; valid keys are: {', '.join(sorted(known))}")


def get_config(preset: str = "demo", fast: bool | None = None, **overrides: Any) -> Config:
    """Build the :class:`Config` of a named preset, with fast-mode shrink and your overrides.

    Args:
        preset: one of :data:`PRESETS` (``demo``, ``cifar10``, ``cifar100``, ``imagenet-resnet50``,
            ``imagenet-resnet50-100ep``).
        fast: shrink the run for CI; default :data:`FAST` (the ``VICREG_EDU_FAST`` variable).
        **overrides: any :class:`Config` field; these win over the preset and the fast shrink.

    Raises:
        ValueError: unknown preset or unknown key.

    Example:
        >>> get_config("demo", epochs=3, fast=False).epochs
        3
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    check_keys(overrides)
    cfg = PRESETS[preset]()
    if FAST if fast is None else fast:
        cfg = dataclasses.replace(cfg, **_FAST_SHRINK[preset])
    return dataclasses.replace(cfg, **overrides)


def parse_override(item: str) -> tuple[str, Any]:
    """Parse one ``--set key=value`` item; values are read as Python/JSON literals when possible.

    ``aug.jitter_p=0`` sets one entry of the ``aug`` dict.

    Example:
        >>> parse_override("epochs=5"), parse_override("aug.jitter_p=0.0"), parse_override("backbone=resnet18")
        (('epochs', 5), ('aug.jitter_p', 0.0), ('backbone', 'resnet18'))
    """
    import ast

    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r} (e.g. --set epochs=5)")
    key, raw = item.split("=", 1)
    key = key.strip().replace("-", "_")
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    if lowered in ("none", "null"):
        return key, None
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw


def apply_overrides(cfg: Config, items: list[str]) -> Config:
    """Apply ``--set key=value`` strings to ``cfg`` (types follow the field's current value)."""
    updates: dict[str, Any] = {}
    aug = dict(cfg.aug)
    for item in items:
        key, value = parse_override(item)
        if key.startswith("aug."):
            aug[key[4:]] = value
            continue
        check_keys({key: value})
        current = getattr(cfg, key)
        if isinstance(current, bool) and not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} expects true/false, got {value!r}")
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(current, float) and isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf"):
            value = float(value)  # then refused by the range check, with the field's range
        if isinstance(current, str) and not isinstance(value, str):
            value = str(value)  # e.g. --set expander=2048 must stay a spec string
        updates[key] = value
    if aug != cfg.aug:
        updates["aug"] = aug
    return dataclasses.replace(cfg, **updates)
