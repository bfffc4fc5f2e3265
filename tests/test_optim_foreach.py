"""LARS's list-wide update (``foreach=True``: ``torch._foreach_*`` over a group) against the
parameter-by-parameter one (``foreach=False``): the same numbers, bitwise, on CPU.

Both run the same arithmetic in the same order per element (decay add, the two norms, ``eta * ||w||
/ ||g||``, the clip, the ``where``, the multiply, momentum, the step); on CPU ``torch._foreach_*``
runs the per-tensor kernels, so the comparison is ``torch.equal``, not a tolerance. On a GPU the
fused kernels may reduce the norms in another order (float32 rounding); the GPU suite's profile
counts the optimiser's kernels, not its numbers.

``python tests/test_optim_foreach.py [threads]`` times both updates on a ResNet-18 + 2048x3
expander's parameters on CPU (the figures behind ``optim.FOREACH_DEFAULT``, bench/README.md).
"""

from __future__ import annotations

import copy
import sys
import time

import pytest
import torch
from torch import nn

from vicreg_edu.optim import LARS, build_optimizer


def _model(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False),
        nn.BatchNorm2d(8),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Linear(16, 4, bias=True),
    ).to(dtype)


def _run(model: nn.Module, foreach: bool, steps: int, **kw) -> tuple[nn.Module, LARS]:
    """``steps`` LARS steps on seeded gradients; a schedule with lr = 0 first (warm-up's first step)."""
    model = copy.deepcopy(model)
    opt = LARS(model.parameters(), foreach=foreach, **kw)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        opt.param_groups[0]["lr"] = 0.3 * step / steps
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        if step == 2:
            model[0].weight.grad.zero_()  # with weight_decay = 0: ||g|| = 0, the trust ratio's fallback 1
        opt.step()
    return model, opt


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("weight_decay", [1e-4, 0.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_foreach_equals_per_parameter_bitwise(clip, weight_decay, dtype):
    base = _model(dtype)
    kw = dict(weight_decay=weight_decay, momentum=0.9, eta=0.02, clip=clip)
    each, opt_each = _run(base, False, 6, **kw)
    fused, opt_fused = _run(base, True, 6, **kw)
    for (name, a), b in zip(each.named_parameters(), fused.parameters()):
        assert not torch.equal(a, dict(base.named_parameters())[name]), name  # the steps moved it
        assert torch.equal(a, b), (name, (a - b).abs().max().item())
    for a, b in zip(each.parameters(), fused.parameters()):
        assert torch.equal(opt_each.state[a]["mu"], opt_fused.state[b]["mu"])


def test_foreach_trust_ratio_and_exclusion_rule():
    """One step from zero momentum: a weight matrix moves by lr * eta * ||w|| / ||g + wd w|| * (g + wd w),
    a 1-D parameter by lr * g (no decay, no rescaling), a zero weight by lr * (g + wd w) (trust 1)."""
    w, b, z = nn.Parameter(torch.randn(5, 3)), nn.Parameter(torch.randn(3)), nn.Parameter(torch.zeros(2, 2))
    w0, b0 = w.detach().clone(), b.detach().clone()
    for p in (w, b, z):
        p.grad = torch.randn(p.shape)
    gw, gb, gz = w.grad.clone(), b.grad.clone(), z.grad.clone()
    LARS([w, b, z], lr=0.5, weight_decay=0.1, eta=0.01, foreach=True).step()
    d = gw + 0.1 * w0
    torch.testing.assert_close(w.detach(), w0 - 0.5 * 0.01 * w0.norm() / d.norm() * d)
    torch.testing.assert_close(b.detach(), b0 - 0.5 * gb)
    torch.testing.assert_close(z.detach(), -0.5 * gz)


def test_foreach_mixed_dtypes_and_missing_grads():
    a, b, c = (
        nn.Parameter(torch.randn(3, 3)),
        nn.Parameter(torch.randn(3, 3, dtype=torch.float64)),
        nn.Parameter(torch.randn(4, 2)),
    )
    a.grad, b.grad = torch.randn(3, 3), torch.randn(3, 3, dtype=torch.float64)  # c has no gradient
    twins = [nn.Parameter(p.detach().clone()) for p in (a, b, c)]
    for t, p in zip(twins, (a, b, c)):
        t.grad = None if p.grad is None else p.grad.clone()
    LARS([a, b, c], lr=0.1, weight_decay=1e-3, foreach=True).step()
    LARS(twins, lr=0.1, weight_decay=1e-3, foreach=False).step()
    for p, t in zip((a, b, c), twins):
        assert p.dtype == t.dtype and torch.equal(p, t)


def test_flag_reaches_groups_and_old_state_dicts_load():
    model = _model()
    opt = build_optimizer(model, "lars", 1e-6, foreach=False)
    assert opt.param_groups[0]["foreach"] is False
    saved = opt.state_dict()
    del saved["param_groups"][0]["foreach"]  # a checkpoint written before the flag existed
    fresh = LARS(model.parameters())
    fresh.load_state_dict(saved)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    fresh.step()  # no KeyError: the default applies


def test_default_is_per_parameter_on_cpu(monkeypatch):
    calls = []
    monkeypatch.setattr(LARS, "_step_each", lambda self, group, params: calls.append("each"))
    monkeypatch.setattr(LARS, "_step_foreach", lambda self, group, params: calls.append("foreach"))
    w = nn.Parameter(torch.randn(2, 2))
    w.grad = torch.ones(2, 2)
    for flag in (None, True, False):
        LARS([w], foreach=flag).step()
    assert calls == ["each", "foreach", "each"]


def bench(repeats: int = 30) -> dict[str, float]:
    """Median wall and CPU (process) seconds of one LARS step, per parameter vs foreach (ResNet-18 + 2048x3)."""
    from vicreg_edu.config import get_config
    from vicreg_edu.models import build_model

    model = build_model(get_config("cifar10", fast=False))
    out = {}
    for foreach in (False, True, False, True):  # interleaved: a shared machine's load hits both
        opt = LARS(model.parameters(), lr=0.1, weight_decay=1e-6, foreach=foreach)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        opt.step()
        wall, cpu = [], []
        for _ in range(repeats):
            t = time.perf_counter(), time.process_time()
            opt.step()
            wall.append(time.perf_counter() - t[0])
            cpu.append(time.process_time() - t[1])
        for clock, times in (("wall", wall), ("cpu", cpu)):
            out.setdefault(f"{clock} s, foreach={foreach}", []).append(sorted(times)[len(times) // 2])
    result = {k: min(v) for k, v in out.items()}
    for clock in ("wall", "cpu"):
        result[f"{clock}: per_parameter/foreach"] = (
            result[f"{clock} s, foreach=False"] / result[f"{clock} s, foreach=True"]
        )
    result["parameters"] = len(list(model.parameters()))
    return result


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    print(bench())
