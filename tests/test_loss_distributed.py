"""Two CPU processes (gloo) with DistributedDataParallel against one process on the whole batch.

Checks what lightly issue #1528 got wrong: with the global batch split over ranks, the mean
of the ranks' losses and the DDP-averaged parameter gradients must equal the single-process
loss and gradients. To show the test has teeth, the same run with two broken gathers (a
plain all_gather, which carries no gradient; and one that only keeps the local slot's
gradient without summing over ranks) must give different gradients.

The projector is Linear-ReLU-Linear without BatchNorm: plain BatchNorm normalises with each
rank's local batch statistics, so the two-process and one-process forward passes would differ
(the official code uses SyncBatchNorm, which needs CUDA/NCCL). The CPU replacement,
``distributed.SyncBatchNormCPU``, is checked on its own against one BatchNorm over the whole batch.

The workers turn DeprecationWarning and FutureWarning into errors: the gather and the
all-reduce must not use deprecated torch.distributed calls (``torch.distributed.nn.functional``
warns with a FutureWarning, ``all_gather_into_tensor`` too on newer torch).
"""

import os
import time
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import vicreg_edu.loss as L
from vicreg_edu.distributed import SyncBatchNormCPU
from vicreg_edu.loss import gather_with_grad, vicreg_loss

WORLD = 2
N, D_IN = 16, 6  # global batch of 16 rows: 8 per rank
D_OUTS = (12, 24)  # 16 >= 12: covariance side of the loss; 16 < 24: Gram side


def make_projector(d_out):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(D_IN, 32), torch.nn.ReLU(), torch.nn.Linear(32, d_out, bias=False)
    ).double()


def make_views():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, D_IN, generator=g, dtype=torch.float64)
    return x + 0.3 * torch.randn(N, D_IN, generator=g, dtype=torch.float64), x


def run_step(model, x_a, x_b, **coeffs):
    """One forward (both views in one call: no BatchNorm, so this equals two calls) + backward."""
    z = model(torch.cat([x_a, x_b]))
    terms = vicreg_loss(*z.chunk(2), **coeffs)
    terms.loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return [t.detach() for t in terms], grads


# gathers that a reader might write, both wrong -------------------------------------------


def plain_gather(z):
    """dist.all_gather has no autograd: v and c send no gradient to the network."""
    chunks = [torch.empty_like(z) for _ in range(dist.get_world_size())]
    dist.all_gather(chunks, z.detach())
    return torch.cat(chunks)


def local_slot_gather(z):
    """Keeps the gradient of this rank's own rows only, without summing it over ranks."""
    chunks = [torch.empty_like(z) for _ in range(dist.get_world_size())]
    dist.all_gather(chunks, z.detach())
    chunks[dist.get_rank()] = z
    return torch.cat(chunks)


# the worker -----------------------------------------------------------------------------


def batch_norm_step(bn, rows=slice(None)):
    """Forward + backward of sum(w * bn(x)) on ``rows`` of a fixed (N, 4, 3) input x and weight w:
    (output, input gradient, weight and bias gradients)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(N, 4, 3, generator=g, dtype=torch.float64).mul(3).add(1)[rows].requires_grad_()
    w = torch.randn(N, 4, 3, generator=g, dtype=torch.float64)[rows]
    y = bn(x)
    (y * w).sum().backward()
    return y.detach(), x.grad, bn.weight.grad.clone(), bn.bias.grad.clone()


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            warnings.simplefilter("error", FutureWarning)
            results = _worker_steps(rank)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _worker_steps(rank):
    x_a, x_b = make_views()
    half = slice(rank * N // WORLD, (rank + 1) * N // WORLD)
    results = {}
    for d_out in D_OUTS:
        model = torch.nn.parallel.DistributedDataParallel(make_projector(d_out))
        for name, gather in [("ours", gather_with_grad), ("plain", plain_gather), ("local_slot", local_slot_gather)]:
            L.gather_with_grad = gather  # vicreg_loss looks the name up at call time
            results[name, d_out] = run_step(model, x_a[half], x_b[half])
        L.gather_with_grad = gather_with_grad
    # the global gather itself, forward and backward: d(sum(w * gathered))/dz = W * w[rows]
    z = torch.arange(6.0).reshape(2, 3).add(10 * rank).requires_grad_()
    gathered = gather_with_grad(z, rows=2)
    w = torch.arange(gathered.numel(), dtype=gathered.dtype).reshape(gathered.shape)
    (gathered * w).sum().backward()
    results["gather"] = (gathered.detach(), z.grad)
    try:  # the local shape check, before any collective
        gather_with_grad(z[:1], rows=2)
    except ValueError as e:
        results["rows_error"] = str(e)
    bn = SyncBatchNormCPU(4).double()
    results["batch_norm"] = batch_norm_step(bn, half)
    return results


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    start = time.perf_counter()
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    assert time.perf_counter() - start < 60
    return [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def single_process(d_out, **coeffs):
    model = make_projector(d_out)
    return run_step(model, *make_views(), **coeffs)


@pytest.mark.parametrize("d_out", D_OUTS)
def test_mean_of_rank_losses_equals_single_process_loss(two_rank_results, d_out):
    (terms_ref, _) = single_process(d_out)
    per_rank = [r["ours", d_out][0] for r in two_rank_results]
    for i, name in enumerate(["loss", "invariance", "variance", "covariance"]):
        mean = sum(t[i] for t in per_rank) / WORLD
        assert rel_err(mean, terms_ref[i]) < 1e-12, name
    # v and c are global: every rank sees the same value
    for i in (2, 3):
        assert per_rank[0][i] == per_rank[1][i]


@pytest.mark.parametrize("d_out", D_OUTS)
def test_ddp_gradients_equal_single_process_gradients(two_rank_results, d_out):
    _, grads_ref = single_process(d_out)
    for r in two_rank_results:
        for g, g_ref in zip(r["ours", d_out][1], grads_ref):
            assert rel_err(g, g_ref) < 1e-6


@pytest.mark.parametrize("d_out", D_OUTS)
@pytest.mark.parametrize("broken", ["plain", "local_slot"])
def test_broken_gathers_give_wrong_gradients(two_rank_results, broken, d_out):
    """Same forward values, different gradients: this is what the test above guards against."""
    terms_ref, grads_ref = single_process(d_out)
    r = two_rank_results[0][broken, d_out]
    mean_loss = sum(rr[broken, d_out][0][0] for rr in two_rank_results) / WORLD
    assert rel_err(mean_loss, terms_ref[0]) < 1e-12  # the loss value alone cannot tell
    assert max(rel_err(g, g_ref) for g, g_ref in zip(r[1], grads_ref)) > 1e-2


def test_gather_forward_and_backward(two_rank_results):
    full = torch.cat([torch.arange(6.0).reshape(2, 3), torch.arange(6.0).reshape(2, 3) + 10])
    w = torch.arange(12.0).reshape(4, 3)
    for rank, r in enumerate(two_rank_results):
        gathered, grad = r["gather"]
        assert torch.equal(gathered, full)  # rank order: rank r's rows at r * N_r
        assert torch.equal(grad, WORLD * w[2 * rank : 2 * rank + 2])  # all-reduced (summed) over the two ranks


def test_gather_checks_the_local_shape(two_rank_results):
    for r in two_rank_results:
        assert r["rows_error"] == (
            "gather_with_grad: this rank holds 1 rows, expected 2: every rank must hold the "
            "same number (the all-gather exchanges no sizes)"
        )
    with pytest.raises(ValueError, match="holds 3 rows, expected 4"):  # one process: checked too
        gather_with_grad(torch.zeros(3, 2), rows=4)
    z = torch.zeros(3, 2)
    assert gather_with_grad(z, rows=3) is z


def test_sync_batch_norm_cpu_equals_one_batch_norm(two_rank_results):
    """2 x 8 rows through SyncBatchNormCPU == 16 rows through one BatchNorm: outputs, input gradients, and
    the parameter gradients summed over the ranks (what DDP's average of W times the mean loss gives)."""
    y_ref, gx_ref, gw_ref, gb_ref = batch_norm_step(torch.nn.BatchNorm1d(4).double())
    ranks = [r["batch_norm"] for r in two_rank_results]
    torch.testing.assert_close(torch.cat([r[0] for r in ranks]), y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.cat([r[1] for r in ranks]), gx_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ranks[0][2] + ranks[1][2], gw_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ranks[0][3] + ranks[1][3], gb_ref, rtol=1e-10, atol=1e-12)
    # teeth: with per-rank statistics (a plain BatchNorm on each half) the input gradients differ
    halves = [batch_norm_step(torch.nn.BatchNorm1d(4).double(), slice(i * 8, (i + 1) * 8)) for i in (0, 1)]
    assert (torch.cat([h[1] for h in halves]) - gx_ref).abs().max() > 1e-3
