"""Train VICReg: one code path from a CPU demo to multi-GPU ImageNet ResNet-50.

One process (CPU or one GPU)::

    vicreg-edu train --preset demo                        # built-in data, minutes on a laptop
    python -m vicreg_edu.train --preset cifar10 --set data_dir=~/data download=true

Several processes on one node (DDP; NCCL on GPUs, gloo on CPUs)::

    torchrun --nproc_per_node=8 -m vicreg_edu.train --preset imagenet-resnet50 --set data_dir=/imagenet

Several nodes (run on every node; torchrun's c10d rendezvous connects them)::

    torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=$HEAD:29500 \
        --rdzv_id=vicreg -m vicreg_edu.train --preset imagenet-resnet50 --set data_dir=/imagenet

SLURM: ``scripts/submit_slurm.py`` submits the same ``train`` through submitit.

The loop, top to bottom: set up processes and seeds -> data -> model, loss, optimisers ->
resume -> for each step: lr schedule, two augmented views, forward, VICReg loss (+ online probe),
backward, step, log -> per epoch: collapse report, checkpoint -> final k-NN evaluation.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from . import augment as augment_lib
from . import distributed as D
from .config import TRAJECTORY_KEYS, Config, apply_overrides, get_config
from .data import DATASET_STATS, TwoViewDataset, in_memory_uint8, load_dataset, make_loader
from .diagnostics import collapse_report
from .evaluate import extract_features, knn_accuracy, normalize_uint8
from .loss import vicreg_loss
from .models import VICReg
from .optim import build_optimizer, learning_rate

IN_MEMORY = ("shapes", "cifar10", "cifar100")  # small images: kept as one uint8 tensor, augmented on the device


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
# building blocks shared with evaluate.py and the notebooks

def make_augment_config(cfg: Config):
    """The :class:`~vicreg_edu.augment.AugmentConfig` named by ``cfg.augment``, with ``cfg.aug`` overrides."""
    recipes = {"shapes": augment_lib.shapes_augment, "cifar": augment_lib.cifar_augment,
               "imagenet": augment_lib.imagenet_augment}
    if cfg.augment not in recipes:
        raise ValueError(f"unknown augment recipe {cfg.augment!r}; choose one of {sorted(recipes)}")
    try:
        return recipes[cfg.augment](**cfg.aug)
    except TypeError as e:
        raise ValueError(f"bad augmentation override in aug={cfg.aug}: {e}") from None


def build_model(cfg: Config) -> VICReg:
    """Backbone + expander as named in the config (random initialisation, nothing downloaded)."""
    return VICReg(backbone=cfg.backbone, expander=cfg.expander)


def _subset(images: torch.Tensor, labels: torch.Tensor, n: int):
    return (images[:n], labels[:n]) if n else (images, labels)


def load_eval_data(cfg: Config):
    """Frozen-feature evaluation data: ``((train_x, train_y), (test_x, test_y), (mean, std))``.

    In-memory datasets give uint8 tensors (normalised later); image folders give datasets that
    yield ``(eval-transformed tensor, label)``.
    """
    aug = make_augment_config(cfg)
    if cfg.dataset in IN_MEMORY:
        train = _subset(*in_memory_uint8(load_dataset(cfg.dataset, cfg.data_dir, "train", download=cfg.download)),
                        cfg.train_size)
        test = _subset(*in_memory_uint8(load_dataset(cfg.dataset, cfg.data_dir, "test", download=cfg.download)),
                       cfg.test_size)
        return train, test, (aug.mean, aug.std)
    tf = augment_lib.eval_transform(aug)
    train = load_dataset(cfg.dataset, cfg.data_dir, "train", transform=tf)
    test = load_dataset(cfg.dataset, cfg.data_dir, "val", transform=tf)
    if cfg.train_size:
        train = torch.utils.data.Subset(train, range(min(cfg.train_size, len(train))))
    if cfg.test_size:
        test = torch.utils.data.Subset(test, range(min(cfg.test_size, len(test))))
    return (train, None), (test, None), (aug.mean, aug.std)


def knn_comparison(model: VICReg, cfg: Config, device: torch.device, amp_dtype=None,
                   eval_data=None) -> dict[str, float]:
    """k-NN accuracy (k=20, T=0.07) of the model's backbone, of a randomly initialised backbone of
    the same architecture, and (in-memory datasets) of raw normalised pixels.

    ``eval_data``: the result of :func:`load_eval_data` if already loaded (else loaded here)."""
    (xtr, ytr), (xte, yte), stats = eval_data or load_eval_data(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 12345)
        random_model = build_model(cfg).to(device, next(model.parameters()).dtype).eval()
    out = {}
    for name, m in (("trained", model), ("random_init", random_model)):
        was_training = m.training
        m.eval()
        ftr, ltr = extract_features(m.backbone, xtr, *stats, device=device, amp_dtype=amp_dtype)
        fte, lte = extract_features(m.backbone, xte, *stats, device=device, amp_dtype=amp_dtype)
        out[name] = knn_accuracy(ftr, ytr if ltr is None else ltr, fte, yte if lte is None else lte)
        m.train(was_training)
    if isinstance(xtr, torch.Tensor):
        out["raw_pixels"] = knn_accuracy(normalize_uint8(xtr, *stats).flatten(1), ytr,
                                         normalize_uint8(xte, *stats).flatten(1), yte)
    return out


class VICRegWithProbe(nn.Module):
    """The VICReg model plus the online linear probe, wrapped together by DDP.

    The probe sees *detached* representations of view a, so its cross-entropy never reaches the
    encoder: it only reports, during training, how linearly separable the representations are.
    """

    def __init__(self, model: VICReg, num_classes: int):
        super().__init__()
        self.model = model
        self.probe = nn.Linear(model.repr_dim, num_classes)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor):
        r_a, z_a = self.model(x_a)  # (B, repr_dim), (B, embed_dim)
        _, z_b = self.model(x_b)
        return z_a, z_b, self.probe(r_a.detach())


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash at any moment leaves either the previous file or the new one, never a torn file.
    """
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def find_checkpoint(cfg: Config) -> Path | None:
    """Resolve ``cfg.resume``: "" -> None, "auto" -> ``out_dir/checkpoint.pt`` if it exists, else a path."""
    if not cfg.resume:
        return None
    path = Path(cfg.out_dir) / "checkpoint.pt" if cfg.resume == "auto" else Path(cfg.resume)
    if path.is_file():
        return path
    if cfg.resume == "auto":
        return None
    raise FileNotFoundError(f"resume={cfg.resume!r}: no checkpoint at {path}")


def check_resume_config(saved: dict, cfg: Config) -> None:
    """A resumed run must follow the same trajectory: differing keys are an error, not a silent change."""
    diff = {k: (saved.get(k), getattr(cfg, k)) for k in TRAJECTORY_KEYS if saved.get(k) != getattr(cfg, k)}
    if diff:
        lines = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"cannot resume: the config differs from the checkpoint's ({lines}). "
                         "Use the original settings or a new out_dir.")


def _amp_dtype(cfg: Config, device: torch.device):
    amp = cfg.amp if cfg.amp != "auto" else ("bf16" if device.type == "cuda" else "none")
    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}
    if amp not in table:
        raise ValueError(f"amp must be auto, bf16, fp16 or none; got {cfg.amp!r}")
    return table[amp]


def _diverged(step: int, what: str, ckpt: Path) -> FloatingPointError:
    last = f"the last good checkpoint is kept at {ckpt}" if ckpt.is_file() else "no checkpoint was written yet"
    return FloatingPointError(f"training diverged at step {step}: {what}; {last}. Typical fixes: lower "
                              "base_lr, longer warmup_epochs, optimizer=lars, or amp=none.")


def _check_finite(step: int, values: dict[str, float], ckpt: Path) -> None:
    if not all(math.isfinite(v) for v in values.values()):
        terms = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        raise _diverged(step, f"non-finite VICReg loss ({terms})", ckpt)


# ----------------------------------------------------------------------------------------------

def train(cfg: Config) -> TrainResult:
    """Run VICReg pre-training as described by ``cfg``; see the module docstring for launch commands.

    Example:
        >>> from vicreg_edu.config import get_config
        >>> result = train(get_config("demo", epochs=1, train_size=512, test_size=256, progress=False))  # doctest: +SKIP
        >>> result.final["trained"] > result.final["random_init"]  # doctest: +SKIP
    """
    t0 = time.time()
    # ---- processes, device, seeds ------------------------------------------------------------
    device = D.setup(cfg.device)
    rank, world = D.get_rank(), D.get_world_size()
    master = rank == 0
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} is not divisible by the world size {world}: each "
                         f"process needs batch_size / world_size images (try {cfg.batch_size // world * world})")
    local_bs = cfg.batch_size // world
    if local_bs < 2:
        raise ValueError(f"each process needs at least 2 images per batch (variance), got {local_bs}")
    amp_dtype = _amp_dtype(cfg, device)
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if cfg.dtype not in dtypes:
        raise ValueError(f"dtype must be float32 or float64; got {cfg.dtype!r}")
    dtype = dtypes[cfg.dtype]  # the loss runs in float32 under autocast, in float64 when asked
    if dtype == torch.float64 and amp_dtype is not None:
        raise ValueError("dtype=float64 needs amp=none (autocast would compute in half precision)")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    out_dir = Path(cfg.out_dir)

    # ---- data ---------------------------------------------------------------------------------
    aug_cfg = make_augment_config(cfg)
    if cfg.dataset in IN_MEMORY:
        # uint8 (N, 3, H, W) on the device; views are made there, a whole batch at once
        images, labels = _subset(*in_memory_uint8(load_dataset(cfg.dataset, cfg.data_dir, "train",
                                                               download=cfg.download)), cfg.train_size)
        num_classes = int(labels.max()) + 1
        images, labels = images.to(device), labels.to(device)
        sampler = torch.utils.data.DistributedSampler(range(len(images)), num_replicas=world, rank=rank,
                                                      shuffle=True, seed=cfg.seed, drop_last=True)
        steps_per_epoch = len(sampler) // local_bs
        two_view = augment_lib.TwoViewBatchAugment(aug_cfg)
        diag_x, _ = _subset(*in_memory_uint8(load_dataset(cfg.dataset, cfg.data_dir, "test")), cfg.diag_size)
        diag_gen = torch.Generator().manual_seed(cfg.seed)
        diag_views = tuple(v.to(dtype) for v in two_view(diag_x.to(device), diag_gen))
    else:
        base = load_dataset(cfg.dataset, cfg.data_dir, "train")
        if cfg.train_size:
            base = torch.utils.data.Subset(base, range(min(cfg.train_size, len(base))))
        num_classes = len(getattr(base, "classes", None) or base.dataset.classes)
        loader = make_loader(TwoViewDataset(base, augment_lib.TwoViewTransform(aug_cfg)), local_bs,
                             shuffle=True, drop_last=True, num_workers=cfg.num_workers, seed=cfg.seed)
        steps_per_epoch = len(loader)
        val = load_dataset(cfg.dataset, cfg.data_dir, "val")
        tv = augment_lib.TwoViewTransform(aug_cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            pairs = [tv(val[i][0]) for i in range(min(cfg.diag_size, len(val)))]
        diag_views = (torch.stack([a for a, _ in pairs]).to(device, dtype),
                      torch.stack([b for _, b in pairs]).to(device, dtype))
    if steps_per_epoch == 0:
        raise ValueError(f"the training set is smaller than one batch ({cfg.batch_size}); lower batch_size")

    def batches(epoch: int, skip: int):
        """Yield this process's ``(view_a, view_b, labels)`` for the steps ``skip..`` of ``epoch``."""
        if cfg.dataset in IN_MEMORY:
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler), device=device)
            for b in range(skip, steps_per_epoch):
                idx = order[b * local_bs:(b + 1) * local_bs]
                # augmentation parameters for the GLOBAL batch from a per-step seed; rank r's samples
                # sit at positions r, r + W, ... of it (DistributedSampler interleaves), so W processes
                # see exactly the views one process would, and a resumed run sees the same views.
                gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * steps_per_epoch + b)
                pa, pb = two_view.view_a.sample(cfg.batch_size, gen), two_view.view_b.sample(cfg.batch_size, gen)
                pa, pb = ({k: v[rank::world] for k, v in p.items()} for p in (pa, pb))
                x = images[idx]
                yield two_view.view_a.apply(x, pa), two_view.view_b.apply(x, pb), labels[idx]
        else:
            loader.sampler.set_epoch(epoch)
            for b, ((x_a, x_b), y) in enumerate(loader):
                if b >= skip:  # resuming mid-epoch re-reads the skipped batches (workers' RNG differs)
                    yield (x_a.to(device, non_blocking=True), x_b.to(device, non_blocking=True),
                           y.to(device, non_blocking=True))

    # ---- model, loss, optimisers --------------------------------------------------------------
    model = build_model(cfg)
    net = VICRegWithProbe(model, num_classes).to(device, dtype)
    if device.type == "cuda" and cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if world > 1 and cfg.sync_bn:
        net = D.convert_sync_batchnorm(net, device)
    optimizer = build_optimizer(net.model, cfg.optimizer, cfg.weight_decay, cfg.momentum, cfg.lars_eta)
    probe_optimizer = torch.optim.AdamW(net.probe.parameters(), lr=cfg.probe_lr, weight_decay=1e-6)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)

    # ---- resume -------------------------------------------------------------------------------
    step = 0
    ckpt_path = out_dir / "checkpoint.pt"
    resume_from = find_checkpoint(cfg)
    if resume_from is not None:
        ckpt = torch.load(resume_from, map_location="cpu", weights_only=False)
        check_resume_config(ckpt["config"], cfg)
        net.load_state_dict(ckpt["net"])
        optimizer.load_state_dict(ckpt["optimizer"])
        probe_optimizer.load_state_dict(ckpt["probe_optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        step = ckpt["step"]
        _set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
    ddp_net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else net
    fwd = torch.compile(ddp_net) if cfg.compile else ddp_net

    # ---- logging ------------------------------------------------------------------------------
    history: list[dict] = []
    epoch_records: list[dict] = []
    writer = None
    metrics_file = None
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        metrics_path = out_dir / "metrics.jsonl"
        kept = []
        if resume_from is not None and metrics_path.exists():  # drop records newer than the checkpoint
            kept = [r for r in map(json.loads, metrics_path.read_text().splitlines()) if r.get("step", 0) <= step]
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        metrics_file = open(metrics_path, "a")
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                writer = SummaryWriter(str(out_dir / "tb"))
            except ImportError:
                writer = None

    def log(record: dict) -> None:
        {"step": history, "epoch": epoch_records}.get(record["kind"], []).append(record)
        if master:
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
            if writer is not None:
                for k, v in record.items():
                    if k not in ("kind", "step", "epoch") and isinstance(v, (int, float)):
                        writer.add_scalar(f"{record['kind']}/{k}", v, record["step"])

    def save_checkpoint(step: int, last_values: dict[str, float]) -> None:
        _check_finite(step, last_values, ckpt_path)  # never overwrite a good checkpoint with NaNs
        rng = [None] * world
        if world > 1:
            torch.distributed.all_gather_object(rng, _rng_state())
        else:
            rng = [_rng_state()]
        if master:
            atomic_save(dict(net=net.state_dict(), optimizer=optimizer.state_dict(),
                             probe_optimizer=probe_optimizer.state_dict(), scaler=scaler.state_dict(),
                             step=step, epoch=step / steps_per_epoch, config=cfg.to_dict(), rng=rng), ckpt_path)

    bar = None
    if master and cfg.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=step, desc="VICReg", unit="step", dynamic_ncols=True)
    if master:
        print(f"VICReg | {cfg.backbone} + expander {cfg.expander} | {cfg.dataset} | world={world} "
              f"device={device} amp={amp_dtype} | batch {cfg.batch_size} ({local_bs}/proc) | "
              f"{steps_per_epoch} steps/epoch x {cfg.epochs} epochs | lr {cfg.lr:g} {cfg.optimizer}", flush=True)

    # ---- the training loop --------------------------------------------------------------------
    last = {"loss": float("nan")}
    eval_data = None  # loaded on first use by the k-NN evaluation (rank 0)
    stop_at = min(total_steps, cfg.max_steps) if cfg.max_steps else total_steps
    start_epoch, skip = divmod(step, steps_per_epoch)
    for epoch in range(start_epoch, cfg.epochs):
        if step >= stop_at:
            break
        ddp_net.train()
        t_log, step_log = time.perf_counter(), step  # throughput excludes the epoch-end work
        correct = torch.zeros((), device=device)
        seen = 0
        for x_a, x_b, y in batches(epoch, skip if epoch == start_epoch else 0):
            lr = learning_rate(step, total_steps, warmup_steps, cfg.lr, cfg.end_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x_a, x_b = x_a.to(dtype), x_b.to(dtype)
            if device.type == "cuda" and cfg.channels_last:
                x_a = x_a.contiguous(memory_format=torch.channels_last)
                x_b = x_b.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                z_a, z_b, logits = fwd(x_a, x_b)
            try:  # statistics in float32, over the global batch under DDP
                terms = vicreg_loss(z_a.to(dtype), z_b.to(dtype), cfg.sim_coeff, cfg.std_coeff, cfg.cov_coeff,
                                    cfg.gamma, cfg.eps)
            except ValueError as e:  # the loss refuses NaN/Inf embeddings: the run has diverged
                raise _diverged(step + 1, str(e), ckpt_path) from e
            probe_loss = F.cross_entropy(logits.to(dtype), y)
            optimizer.zero_grad(set_to_none=True)
            probe_optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms.loss + probe_loss).backward()
            scaler.step(optimizer)
            scaler.step(probe_optimizer)
            scaler.update()
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            step += 1

            ckpt_due = (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step % steps_per_epoch == 0 or step == stop_at
            if step % cfg.log_every == 0 or ckpt_due:
                last = {k: v.item() for k, v in terms._asdict().items()}  # one device sync per log
                _check_finite(step, last, ckpt_path)
                now = time.perf_counter()
                imgs_per_s = (step - step_log) * cfg.batch_size / max(now - t_log, 1e-9)  # global images/s
                t_log, step_log = now, step
                log({"kind": "step", "step": step, "epoch": step / steps_per_epoch, **last, "lr": lr,
                     "imgs_per_s": imgs_per_s})
                if bar is not None:
                    bar.set_postfix(loss=f"{last['loss']:.3f}", s=f"{last['invariance']:.3f}",
                                    v=f"{last['variance']:.3f}", c=f"{last['covariance']:.3f}",
                                    img_s=f"{imgs_per_s:.0f}")
            if bar is not None:
                bar.update(1)
            if ckpt_due and step % steps_per_epoch:  # mid-epoch checkpoint (epoch ends save below)
                save_checkpoint(step, last)
            if step >= stop_at:
                break

        # ---- end of epoch (or of a max_steps run): diagnostics, k-NN, checkpoint --------------
        if world > 1:
            torch.distributed.all_reduce(correct)
            seen *= world
        record = {"kind": "epoch", "epoch": epoch + 1, "step": step,
                  "online_probe_acc": correct.item() / max(seen, 1)}
        if master:
            net.eval()
            with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                r_a, e_a = net.model(diag_views[0])
                _, e_b = net.model(diag_views[1])
            record.update({f"emb_{k}": v for k, v in collapse_report(e_a.float(), e_b.float()).as_dict().items()})
            record.update({f"repr_{k}": v for k, v in collapse_report(r_a.float()).as_dict().items()
                           if k in ("std_mean", "effective_rank", "dead_fraction")})
            if cfg.knn_every and (epoch + 1) % cfg.knn_every == 0 and step < stop_at:
                eval_data = eval_data or load_eval_data(cfg)
                record["knn_acc"] = knn_comparison(net.model, cfg, device, amp_dtype, eval_data)["trained"]
            net.train()
        log(record)
        if bar is not None:
            bar.write(f"epoch {epoch + 1}/{cfg.epochs}: loss {last['loss']:.3f} "
                      f"(s {last['invariance']:.3f}, v {last['variance']:.3f}, c {last['covariance']:.3f}) | "
                      f"probe {record['online_probe_acc']:.3f} | emb eff. rank {record.get('emb_effective_rank', 0):.1f}"
                      + (f" | k-NN {record['knn_acc']:.3f}" if "knn_acc" in record else ""))
        save_checkpoint(step, last)
        if world > 1:
            torch.distributed.barrier()

    if bar is not None:
        bar.close()
    # ---- final evaluation (rank 0) ------------------------------------------------------------
    net.eval()
    result = TrainResult(model=net.model, config=cfg, out_dir=out_dir, history=history, epochs=epoch_records)
    if master and cfg.final_eval:
        result.final = knn_comparison(net.model, cfg, device, amp_dtype, eval_data)
        log({"kind": "final", "step": step, **{f"knn_{k}": v for k, v in result.final.items()}})
    result.wall_time = time.time() - t0
    if master:
        metrics_file.close()
        if writer is not None:
            writer.close()
    return result


def format_final(result: TrainResult) -> str:
    """A small table: k-NN accuracy of the trained encoder next to its baselines."""
    names = {"trained": "VICReg-trained encoder", "random_init": "randomly initialised encoder",
             "raw_pixels": "raw pixels"}
    lines = [f"k-NN accuracy (k=20, cosine, T=0.07) on the {result.config.dataset} test split:"]
    lines += [f"  {names[k]:<30s} {v * 100:6.2f}%" for k, v in result.final.items()]
    lines.append(f"wall time {result.wall_time:.1f} s; metrics in {result.metrics_path}")
    return "\n".join(lines)


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``vicreg-edu train`` and ``python -m vicreg_edu.train``."""
    from .config import PRESETS

    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS),
                        help="named configuration (default: demo). See vicreg_edu/config.py.")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config fields, e.g. --set epochs=5 batch_size=128 aug.jitter_p=0 "
                             "(keys: see `vicreg-edu presets --show demo`)")
    parser.add_argument("--epochs", type=int, help="shortcut for --set epochs=N")
    parser.add_argument("--out-dir", help="shortcut for --set out_dir=PATH")
    parser.add_argument("--data-dir", help="shortcut for --set data_dir=PATH")
    parser.add_argument("--resume", help="'auto' (latest checkpoint in out_dir) or a checkpoint path")


def config_from_args(args: argparse.Namespace) -> Config:
    """The :class:`Config` described by parsed ``train`` arguments."""
    cfg = apply_overrides(get_config(args.preset), args.overrides)
    shortcuts = {"epochs": args.epochs, "out_dir": args.out_dir, "data_dir": args.data_dir, "resume": args.resume}
    return cfg.replace(**{k: v for k, v in shortcuts.items() if v is not None})


def run_from_args(args: argparse.Namespace) -> TrainResult:
    """Train from parsed arguments, print the final k-NN table on rank 0, tear the process group down."""
    try:
        result = train(config_from_args(args))
        if D.is_main_process() and result.final:
            print(format_final(result))
        return result
    finally:
        D.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vicreg_edu.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_args(parser)
    run_from_args(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
