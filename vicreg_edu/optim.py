"""Optimisers and the learning-rate schedule of the VICReg recipe.

- :class:`LARS` (You, Gitman & Ginsburg, 2017) as used by the official VICReg code: SGD with
  momentum whose update for each weight matrix is rescaled by ``eta * ||w|| / ||g + wd * w||``;
  biases and BatchNorm parameters (the 1-D tensors) get neither weight decay nor the rescaling.
  ``clip=True`` is solo-learn's ``clip_lr`` (its CIFAR recipe): the rescaled learning rate of a
  layer is capped at the global one.
- :func:`build_optimizer` also offers plain SGD and AdamW for small experiments.
- :func:`learning_rate`: linear warm-up, then a per-step cosine decay to ``end_lr_ratio`` x peak
  (facebookresearch/vicreg ``main_vicreg.py: adjust_learning_rate``).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn


FOREACH_DEFAULT = "cuda"  # LARS(foreach=None): the list-wide update for parameters on this device type only


def exclude_bias_and_norm(p: torch.Tensor) -> bool:
    """True for parameters LARS leaves alone: biases and norm-layer scales/shifts (``ndim == 1``)."""
    return p.ndim == 1


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling, as in the official VICReg ``main_vicreg.py``.

    For each parameter ``w`` with gradient ``g`` (per step, in this order)::

        g <- g + weight_decay * w                       (skipped for 1-D params)
        t <- eta * ||w|| / ||g||      if both norms > 0, else 1 (t = 1 for 1-D params)
        t <- min(t / lr, 1)           only with clip=True, and only where the norms gave t (lr > 0)
        g <- g * t
        m <- momentum * m + g
        w <- w - lr * m

    With ``clip=True`` the step of a weight matrix is ``min(eta * ||w|| / ||g||, lr) * g``: the
    layer's own LARS learning rate, capped at the scheduled one (solo-learn ``solo/utils/lars.py``
    ``clip_lr``, after NVIDIA apex's LARC). Without it the step is ``lr * eta * ||w|| / ||g|| * g``
    (official VICReg). At lr = 0 (the first warm-up step) the clipped factor is 1, as in solo-learn.
    solo-learn's trust ratio has the denominator ``||grad|| + wd * ||w|| + 1e-8`` where this one,
    like the official VICReg code, has ``||grad + wd * w||``; with weight_decay = 0 they agree.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (set every step by the schedule).
        weight_decay: L2 coefficient (official: 1e-6).
        momentum: heavy-ball momentum (0.9).
        eta: trust coefficient (0.001).
        clip: cap each layer's LARS learning rate at ``lr`` (solo-learn ``clip_lr``; default off).
        foreach: one ``torch._foreach_*`` call per operation over all parameters of a group (of one
            device and dtype) instead of a few kernels per parameter; the same update (bitwise on
            CPU, ``tests/test_optim_foreach.py``). ``None``: on parameters of the device type
            :data:`FOREACH_DEFAULT` (CUDA: fewer kernel launches), per parameter elsewhere (on
            CPU the two run at the same speed within noise; bench/README.md).

    Example:
        >>> w = nn.Parameter(torch.ones(3, 3)); opt = LARS([w], lr=0.1)
        >>> w.sum().backward(); opt.step()
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 0.0,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        eta: float = 0.001,
        clip: bool = False,
        foreach: bool | None = None,
    ):
        if lr < 0 or weight_decay < 0 or not 0 <= momentum < 1 or eta <= 0:
            raise ValueError(
                f"LARS expects lr >= 0, weight_decay >= 0, 0 <= momentum < 1, eta > 0; "
                f"got lr={lr}, weight_decay={weight_decay}, momentum={momentum}, eta={eta}"
            )
        super().__init__(
            params,
            dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta, clip=bool(clip), foreach=foreach),
        )

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (documented in the class)
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            foreach = group.get("foreach")  # .get: groups of state dicts saved without it
            for same in _by_device_and_dtype(params):
                if foreach if foreach is not None else same[0].device.type == FOREACH_DEFAULT:
                    self._step_foreach(group, same)
                else:
                    self._step_each(group, same)
        return loss

    def _momentum(self, p: torch.Tensor) -> torch.Tensor:
        state = self.state[p]
        if "mu" not in state:
            state["mu"] = torch.zeros_like(p)
        return state["mu"]

    def _step_each(self, group: dict, params: list[torch.Tensor]) -> None:
        """The update parameter by parameter (a few kernels per parameter)."""
        for p in params:
            g = p.grad
            if not exclude_bias_and_norm(p):
                g = g.add(p, alpha=group["weight_decay"])
                w_norm, g_norm = torch.norm(p), torch.norm(g)
                one = torch.ones_like(w_norm)
                ratio = group["eta"] * w_norm / g_norm
                if group.get("clip", False):  # solo-learn clip_lr; .get: groups of state dicts saved without it
                    ratio = (ratio / group["lr"]).clamp(max=1.0) if group["lr"] > 0 else one
                trust = torch.where((w_norm > 0) & (g_norm > 0), ratio, one)
                g = g.mul(trust)
            mu = self._momentum(p)
            mu.mul_(group["momentum"]).add_(g)
            p.add_(mu, alpha=-group["lr"])

    def _step_foreach(self, group: dict, params: list[torch.Tensor]) -> None:
        """The same update on parameters of one device and dtype, each op once over the list
        (``torch._foreach_*``); the trust ratios of all weight matrices in one vector. No host sync."""
        scaled = [p for p in params if not exclude_bias_and_norm(p)]
        grads = [p.grad for p in params if exclude_bias_and_norm(p)]
        if scaled:
            g = torch._foreach_add([p.grad for p in scaled], scaled, alpha=group["weight_decay"])
            w_norm, g_norm = torch.stack(torch._foreach_norm(scaled)), torch.stack(torch._foreach_norm(g))
            one = torch.ones_like(w_norm)
            ratio = group["eta"] * w_norm / g_norm
            if group.get("clip", False):
                ratio = (ratio / group["lr"]).clamp(max=1.0) if group["lr"] > 0 else one
            trust = torch.where((w_norm > 0) & (g_norm > 0), ratio, one)
            torch._foreach_mul_(g, list(trust.unbind()))
            grads = list(g) + grads
            params = scaled + [p for p in params if exclude_bias_and_norm(p)]
        mus = [self._momentum(p) for p in params]
        torch._foreach_mul_(mus, group["momentum"])
        torch._foreach_add_(mus, grads)
        torch._foreach_add_(params, mus, alpha=-group["lr"])


def _by_device_and_dtype(params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """``params`` split into lists of one device and dtype (what one ``_foreach_*`` call takes)."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for p in params:
        groups.setdefault((p.device, p.dtype), []).append(p)
    return list(groups.values())


def build_optimizer(
    model: nn.Module,
    name: str,
    weight_decay: float,
    momentum: float = 0.9,
    eta: float = 0.001,
    clip: bool = False,
    foreach: bool | None = None,
) -> torch.optim.Optimizer:
    """The optimiser for ``model``'s parameters; the schedule sets ``lr`` each step.

    Args:
        name: ``lars`` (official recipe), ``sgd`` or ``adamw``. For SGD/AdamW, 1-D parameters
            (biases, norms) get no weight decay, as with LARS.
        eta, clip, foreach: LARS only (``Config.lars_eta``, ``Config.lars_clip``; ``foreach``:
            :class:`LARS`'s list-wide update, ``None`` for :data:`FOREACH_DEFAULT`).

    Raises:
        ValueError: unknown optimiser name.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "lars":
        return LARS(params, lr=0.0, weight_decay=weight_decay, momentum=momentum, eta=eta, clip=clip, foreach=foreach)
    decay = [p for p in params if not exclude_bias_and_norm(p)]
    no_decay = [p for p in params if exclude_bias_and_norm(p)]
    groups = [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=0.0, momentum=momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=0.0)
    raise ValueError(f"unknown optimizer {name!r}; choose lars, sgd or adamw")


def learning_rate(step: int, total_steps: int, warmup_steps: int, peak_lr: float, end_lr_ratio: float = 0.001) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up from 0, then cosine to ``end_lr_ratio * peak``.

    Mirrors ``adjust_learning_rate`` in facebookresearch/vicreg ``main_vicreg.py``.

    Example:
        >>> learning_rate(0, 100, 10, 1.0), learning_rate(10, 100, 10, 1.0), round(learning_rate(100, 100, 10, 1.0), 6)
        (0.0, 1.0, 0.001)
    """
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    q = 0.5 * (1 + math.cos(math.pi * min(step - warmup_steps, decay_steps) / decay_steps))
    end_lr = peak_lr * end_lr_ratio
    return peak_lr * q + end_lr * (1 - q)
