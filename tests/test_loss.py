"""Tests for vicreg_edu.loss: closed forms, an independent re-implementation, gradients,
the Gram/covariance switch, float32 accuracy, autocast and input errors."""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import vicreg_edu.loss as L
from vicreg_edu.loss import (
    VICRegLoss,
    VICRegTerms,
    covariance_loss,
    gather_with_grad,
    invariance_loss,
    variance_loss,
    vicreg_loss,
    vicreg_loss_reference,
)

# shapes on both sides of the Gram (N < D) / covariance (N >= D) switch
SHAPES = [(2, 3), (5, 1), (7, 100), (16, 64), (32, 32), (64, 16), (100, 7)]


# ----------------------------------------------------------------------------
# an independent implementation, written from the paper's equations with loops / sums


def paper_terms(z_a, z_b, gamma=1.0, eps=1e-4):
    """s, v(Z), v(Z'), c(Z), c(Z') from Eq. (1)-(5) of arXiv 2105.04906, in float64."""
    z_a, z_b = z_a.double(), z_b.double()
    n, d = z_a.shape

    # s: official convention, mean over the n*d entries (paper Eq. 5 sums over d)
    s = sum(((z_a[i] - z_b[i]) ** 2).sum() for i in range(n)) / (n * d)

    def v(z):  # Eq. (1), (2)
        total = 0.0
        for j in range(d):
            col = z[:, j]
            var = ((col - col.sum() / n) ** 2).sum() / (n - 1)
            total = total + torch.clamp(gamma - torch.sqrt(var + eps), min=0)
        return total / d

    def c(z):  # Eq. (3), (4)
        mean = z.sum(0) / n
        cov = torch.zeros(d, d, dtype=z.dtype)
        for i in range(n):
            cov = cov + torch.outer(z[i] - mean, z[i] - mean)
        cov = cov / (n - 1)
        off = (
            sum((cov[j, k] ** 2 for j in range(d) for k in range(d) if j != k), torch.zeros((), dtype=z.dtype))
            if d < 40
            else ((cov**2).sum() - (torch.diagonal(cov) ** 2).sum())
        )
        return off / d

    return s, v(z_a), v(z_b), c(z_a), c(z_b)


def paper_loss(z_a, z_b, lam=25.0, mu=25.0, nu=1.0, gamma=1.0, eps=1e-4):
    s, va, vb, ca, cb = paper_terms(z_a, z_b, gamma, eps)
    return lam * s + mu * (va + vb) / 2 + nu * (ca + cb)


def random_pair(n, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z_a = torch.randn(n, d, generator=g, dtype=dtype) * torch.rand(d, generator=g, dtype=dtype) * 2
    z_b = z_a + 0.5 * torch.randn(n, d, generator=g, dtype=dtype)
    return z_a, z_b


@pytest.mark.parametrize("n,d", SHAPES)
def test_matches_paper_reimplementation(n, d):
    z_a, z_b = random_pair(n, d, seed=n * 1000 + d)
    s, va, vb, ca, cb = paper_terms(z_a, z_b, gamma=1.3, eps=1e-3)
    terms = vicreg_loss(z_a, z_b, 2.0, 3.0, 5.0, gamma=1.3, eps=1e-3)
    torch.testing.assert_close(terms.invariance, s, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(terms.variance, (va + vb) / 2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(terms.covariance, ca + cb, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(terms.loss, 2 * s + 3 * (va + vb) / 2 + 5 * (ca + cb), rtol=1e-10, atol=1e-12)
    # the single-term functions agree with the paper too
    torch.testing.assert_close(invariance_loss(z_a, z_b), s, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(variance_loss(z_a, gamma=1.3, eps=1e-3), va, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(covariance_loss(z_b), cb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n,d", [(8, 40), (40, 8), (64, 200), (200, 64)])
def test_gradient_matches_paper_reimplementation(n, d):
    """The hand-written backward of the covariance term against autograd on the reference."""
    z_a, z_b = random_pair(n, d, seed=7)
    ours = [z.clone().requires_grad_() for z in (z_a, z_b)]
    ref = [z.clone().requires_grad_() for z in (z_a, z_b)]
    vicreg_loss(*ours).loss.backward()
    paper_loss(*ref).backward()
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o.grad, r.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n,d", [(16, 64), (64, 16)])
def test_float32_close_to_float64(n, d):
    z_a, z_b = random_pair(n, d, seed=3)
    t32 = vicreg_loss(z_a.float(), z_b.float())
    t64 = vicreg_loss(z_a, z_b)
    assert t32.loss.dtype == torch.float32 and t64.loss.dtype == torch.float64
    for a, b in zip(t32, t64):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------
# the paper-form reference at the top of loss.py and the fast path agree


@pytest.mark.parametrize("n,d", SHAPES)
def test_fast_path_matches_paper_form(n, d):
    """vicreg_loss (Gram side when N < D, hand-written backward) == vicreg_loss_reference
    (Algorithm 1 with the official /2), values and input gradients, in float64."""
    z_a, z_b = random_pair(n, d, seed=n * 7 + d)
    fast = [z.clone().requires_grad_() for z in (z_a, z_b)]
    ref = [z.clone().requires_grad_() for z in (z_a, z_b)]
    t_fast = vicreg_loss(*fast, 2.0, 3.0, 5.0, gamma=1.3, eps=1e-3)
    t_ref = vicreg_loss_reference(*ref, lam=2.0, mu=3.0, nu=5.0, gamma=1.3, eps=1e-3)
    for a, b in zip(t_fast, t_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    t_fast.loss.backward()
    t_ref.loss.backward()
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)


def test_paper_form_matches_the_independent_reimplementation():
    z_a, z_b = random_pair(9, 13, seed=5)
    s, va, vb, ca, cb = paper_terms(z_a, z_b)
    t = vicreg_loss_reference(z_a, z_b)
    for got, want in zip(t[1:], (s, (va + vb) / 2, ca + cb)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n,d", [(64, 256), (256, 64)])
def test_fast_path_matches_paper_form_float32(n, d):
    z_a, z_b = (z.float() for z in random_pair(n, d, seed=11))
    for a, b in zip(vicreg_loss(z_a, z_b), vicreg_loss_reference(z_a, z_b)):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=1e-6)


# ----------------------------------------------------------------------------
# check_finite=False: no host sync


def test_unchecked_nan_propagates_without_raising():
    z = torch.randn(8, 16)
    broken = z.clone()
    broken[3, 2] = float("nan")
    for n_d in [(8, 16), (8, 4)]:  # Gram side and covariance side
        a, b = broken[:, : n_d[1]].clone().requires_grad_(), z[:, : n_d[1]]
        t = vicreg_loss(a, b, check_finite=False)
        assert torch.isnan(t.loss) and torch.isnan(t.covariance)
        t.loss.backward()  # no error in the backward either
        assert torch.isnan(a.grad).any()
        with pytest.raises(ValueError, match="z_a must contain only finite values"):
            vicreg_loss(a, b)  # the default still raises


@pytest.mark.parametrize("n,d", [(8, 32), (32, 8)])
def test_unchecked_loss_reads_nothing_back_on_a_gpu(n, d, monkeypatch):
    """The sync-free promise, without a GPU: forward on fake CUDA tensors, and forward +
    backward on fake CPU tensors with the CPU's free reads switched off (the GPU decision).
    Fake tensors have no data: any read back to the host (.item(), bool(), .tolist(), a
    data-dependent branch) raises DataDependentOutputException.
    Teeth: the default check_finite=True, and the CPU's data-dependent precision check, do read."""
    from torch._subclasses.fake_tensor import DataDependentOutputException, FakeTensorMode

    with FakeTensorMode():
        z_a, z_b = torch.empty(n, d, device="cuda"), torch.empty(n, d, device="cuda")
        t = vicreg_loss(z_a, z_b, check_finite=False)
        assert t.loss.device.type == "cuda" and t.loss.dtype == torch.float32
        with pytest.raises(DataDependentOutputException):
            vicreg_loss(z_a, z_b)
    with FakeTensorMode():  # CPU, reads allowed: the Gram side's precision check reads
        if n < d:
            with pytest.raises(DataDependentOutputException):
                vicreg_loss(torch.empty(n, d), torch.empty(n, d), check_finite=False)
    monkeypatch.setattr(L, "_host_reads_are_free", lambda z: False)
    with FakeTensorMode():
        z_a, z_b = torch.empty(n, d, requires_grad=True), torch.empty(n, d, requires_grad=True)
        vicreg_loss(z_a, z_b, check_finite=False).loss.backward()
        assert z_a.grad.shape == (n, d) and z_a.grad.dtype == torch.float32


def test_unchecked_loss_traces_as_one_graph():
    """torch.compile(fullgraph=True) refuses any graph break, e.g. a host read."""
    import torch._dynamo

    torch._dynamo.reset()
    f = torch.compile(lambda a, b: vicreg_loss(a, b, check_finite=False).loss, fullgraph=True, backend="eager")
    z_a, z_b = random_pair(8, 32, seed=2, dtype=torch.float32)
    torch.testing.assert_close(f(z_a, z_b), vicreg_loss(z_a, z_b).loss, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("make", ["random", "dominant_column"])
def test_sync_free_float64_gram_side_agrees(make, monkeypatch):
    """What a GPU computes with check_finite=False (Gram side in float64) against the CPU's
    data-dependent choice: same values and gradients to float32 precision."""
    z = random_pair(32, 128, seed=4)[0] if make == "random" else dominant_column_batch()
    z_b = z + 0.1 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0), dtype=z.dtype)
    runs = []
    for free in (True, False):
        monkeypatch.setattr(L, "_host_reads_are_free", lambda _z, free=free: free)
        a, b = z.float().requires_grad_(), z_b.float().requires_grad_()
        t = vicreg_loss(a, b, check_finite=False)
        t.loss.backward()
        runs.append((t, a.grad))
    (t1, g1), (t2, g2) = runs
    for x, y in zip(t1, t2):
        assert x.dtype == y.dtype == torch.float32
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6 * g1.abs().max().item())


class _Float64Ops(TorchDispatchMode):
    """Records the operators that return a float64 tensor."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in torch.utils._pytree.tree_leaves(out)):
            self.ops.append(str(func))
        return out


@pytest.mark.parametrize("n,d", [(32, 128), (64, 512), (128, 64)])
def test_float32_gram_side_close_to_float64(n, d, monkeypatch):
    """gram_dtype="float32" (GPUs with slow float64), as a GPU runs it (no host reads): no float64
    operator at all, and the terms and gradients within float32 rounding of the float64 default."""
    monkeypatch.setattr(L, "_host_reads_are_free", lambda _z: False)
    z_a, z_b = random_pair(n, d, seed=5, dtype=torch.float32)
    runs = {}
    for gram_dtype in ("float64", "float32"):
        a, b = z_a.clone().requires_grad_(), z_b.clone().requires_grad_()
        with _Float64Ops() as seen:
            t = vicreg_loss(a, b, check_finite=False, gram_dtype=gram_dtype)
            t.loss.backward()
        runs[gram_dtype] = (t, a.grad, seen.ops)
    (t64, g64, ops64), (t32, g32, ops32) = runs["float64"], runs["float32"]
    assert ops32 == []
    assert (len(ops64) > 0) == (n < d)  # teeth: the default uses float64 on the Gram side only
    for x, y in zip(t32, t64):
        assert x.dtype == y.dtype == torch.float32
        torch.testing.assert_close(x, y, rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(g32, g64, rtol=1e-4, atol=1e-5 * g64.abs().max().item())
    # the default is float64, and the module passes the argument on
    a, b = z_a.clone(), z_b.clone()
    assert torch.equal(vicreg_loss(a, b, check_finite=False).loss, t64.loss.detach())
    module = VICRegLoss(check_finite=False, gram_dtype="float32")
    assert torch.equal(module(a, b).loss, t32.loss.detach())


def test_float32_gram_side_reads_nothing_back(monkeypatch):
    """The float32 Gram side keeps the sync-free promise: no host read on fake tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    monkeypatch.setattr(L, "_host_reads_are_free", lambda _z: False)
    with FakeTensorMode():
        z_a, z_b = torch.empty(8, 32, requires_grad=True), torch.empty(8, 32, requires_grad=True)
        vicreg_loss(z_a, z_b, check_finite=False, gram_dtype="float32").loss.backward()
        assert z_a.grad.dtype == torch.float32


def test_bad_gram_dtype_is_one_line():
    z = torch.randn(4, 8)
    for bad in ("float16", "fp32", None):
        with pytest.raises(ValueError, match=r"^gram_dtype must be 'float32' or 'float64', got "):
            vicreg_loss(z, z, gram_dtype=bad)
    with pytest.raises(ValueError, match="gram_dtype"):
        VICRegLoss(gram_dtype="bf16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_unchecked_loss_makes_no_cuda_sync():
    z_a, z_b = (torch.randn(256, 2048, device="cuda", requires_grad=True) for _ in range(2))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        vicreg_loss(z_a, z_b, check_finite=False).loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


# ----------------------------------------------------------------------------
# closed forms


def test_identical_branches_give_zero_invariance():
    z = torch.randn(16, 8)
    assert vicreg_loss(z, z).invariance.item() == 0.0
    assert invariance_loss(z, z.clone()).item() == 0.0


def test_invariance_is_mean_squared_difference():
    z_a = torch.zeros(4, 5)
    z_b = torch.full((4, 5), 3.0)
    assert invariance_loss(z_a, z_b).item() == pytest.approx(9.0)


@pytest.mark.parametrize("gamma,eps", [(1.0, 1e-4), (2.0, 1e-2), (0.5, 0.0)])
def test_constant_batch_variance(gamma, eps):
    z = torch.full((10, 6), 3.7, dtype=torch.float64)
    assert variance_loss(z, gamma, eps).item() == pytest.approx(gamma - math.sqrt(eps), abs=1e-12)


def test_variance_zero_when_std_above_gamma():
    z = torch.randn(512, 4, generator=torch.Generator().manual_seed(0)) * 5
    assert variance_loss(z).item() == 0.0
    # and it is the per-dimension mean: two dims at std 0, two at std 5 -> (1 - 0.01) / 2
    z[:, :2] = 1.0
    assert variance_loss(z).item() == pytest.approx(0.99 / 2, abs=1e-6)


def test_variance_uses_unbiased_estimate():
    z = torch.tensor([[0.0], [2.0]])  # unbiased var 2, biased var 1
    assert variance_loss(z, gamma=2.0, eps=0.0).item() == pytest.approx(2.0 - math.sqrt(2.0))


def test_whitened_independent_gaussians_have_small_covariance():
    n, d = 20000, 16
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    # independent unit Gaussians: E[c] = (d - 1) / n ~ 7.5e-4
    assert covariance_loss(z).item() < 3 * (d - 1) / n
    # exactly whitened (ZCA): C = I, so c = 0 and v = 0 for gamma = 1
    x = z - z.mean(0)
    evals, evecs = torch.linalg.eigh(x.T @ x / (n - 1))
    white = x @ evecs @ torch.diag(evals.rsqrt()) @ evecs.T
    assert covariance_loss(white).item() < 1e-20
    assert variance_loss(white).item() == 0.0
    # the same data correlated is penalised
    assert covariance_loss(z @ torch.randn(d, d, generator=g, dtype=torch.float64)).item() > 1.0


def test_two_copies_of_a_column_hand_computed():
    # x and y centred and orthogonal, N = 4: Var(x) = Cov(x, x) = 4/3, Cov(x, y) = 0.
    x = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    y = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
    # columns [x, x, y]: the only off-diagonal entries are C[0,1] = C[1,0] = 4/3; D = 3 < N
    z = torch.stack([x, x, y], dim=1)
    assert covariance_loss(z).item() == pytest.approx(2 * (4 / 3) ** 2 / 3, rel=1e-12)
    # plus 5 constant columns (no covariance), D = 8 > N = 4: the Gram side, same sum, / 8
    z = torch.cat([z, torch.full((4, 5), 2.5, dtype=torch.float64)], dim=1)
    assert covariance_loss(z).item() == pytest.approx(2 * (4 / 3) ** 2 / 8, rel=1e-12)


def test_total_weights_and_symmetry():
    z_a, z_b = random_pair(12, 30, seed=1)
    t = vicreg_loss(z_a, z_b, sim_coeff=2.0, std_coeff=3.0, cov_coeff=0.5)
    assert isinstance(t, VICRegTerms) and all(x.dim() == 0 for x in t)
    expected = 2.0 * t.invariance + 3.0 * t.variance + 0.5 * t.covariance
    torch.testing.assert_close(t.loss, expected)
    # v is the average of the branches, c their sum
    torch.testing.assert_close(t.variance, (variance_loss(z_a) + variance_loss(z_b)) / 2)
    torch.testing.assert_close(t.covariance, covariance_loss(z_a) + covariance_loss(z_b))
    swapped = vicreg_loss(z_b, z_a, sim_coeff=2.0, std_coeff=3.0, cov_coeff=0.5)
    for a, b in zip(t, swapped):
        torch.testing.assert_close(a, b)


def test_module_matches_function():
    z_a, z_b = random_pair(10, 6, seed=2)
    m = VICRegLoss(sim_coeff=1.0, std_coeff=2.0, cov_coeff=3.0, gamma=1.5, eps=1e-3)
    f = vicreg_loss(z_a, z_b, 1.0, 2.0, 3.0, 1.5, 1e-3)
    for a, b in zip(m(z_a, z_b), f):
        torch.testing.assert_close(a, b)
    assert "sim_coeff=1.0" in repr(m)


def test_gather_is_identity_without_process_group():
    z = torch.randn(4, 3)
    assert gather_with_grad(z) is z


# ----------------------------------------------------------------------------
# gradients (float64 gradcheck, both sides of the switch)


@pytest.mark.parametrize("n,d", [(6, 4), (4, 6), (5, 5)])
def test_gradcheck_each_term(n, d):
    g = torch.Generator().manual_seed(n * 10 + d)
    z_a = (torch.randn(n, d, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    z_b = (torch.randn(n, d, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    assert torch.autograd.gradcheck(invariance_loss, (z_a, z_b))
    # std ~0.5 < gamma: the hinge is active, away from its kink
    assert torch.autograd.gradcheck(lambda z: variance_loss(z), (z_a,))
    assert torch.autograd.gradcheck(covariance_loss, (z_a,))
    assert torch.autograd.gradcheck(lambda a, b: vicreg_loss(a, b).loss, (z_a, z_b))


def test_covariance_gradient_on_gram_side_in_float64_fallback():
    """The cancellation regime (below) also needs an accurate gradient."""
    z = dominant_column_batch()
    z32 = z.float().requires_grad_()
    z64 = z.clone().requires_grad_()
    covariance_loss(z32).backward()
    covariance_loss(z64).backward()
    torch.testing.assert_close(z32.grad.double(), z64.grad, rtol=1e-4, atol=1e-6 * z64.grad.abs().max().item())


# ----------------------------------------------------------------------------
# efficiency and accuracy of the off-diagonal energy


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_no_d_by_d_matrix_when_batch_is_smaller():
    n, d = 32, 1024
    z_a, z_b = (torch.randn(n, d).requires_grad_() for _ in range(2))
    with _LargestTensor() as probe:
        vicreg_loss(z_a, z_b).loss.backward()
    assert probe.largest <= n * d  # a covariance matrix would have d * d = 32 n * d entries


def test_covariance_side_builds_one_d_by_d_matrix():
    n, d = 256, 64
    z = torch.randn(n, d).requires_grad_()
    counts = []

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor) and out.shape == (d, d):
                counts.append(str(func))
            return out

    with Count():
        covariance_loss(z)
    assert len(counts) == 1, counts


def dominant_column_batch(n=64, d=512, seed=0):
    """N < D, one dimension with 1000x the std of the others: the off-diagonal energy is
    ~1e-5 of the diagonal energy, so ||C||^2 - ||diag C||^2 cancels almost all digits."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    z[:, 0] *= 1e3
    return z


def orthogonal_live_dead_batch(n=64, d=512, seed=0):
    """N < D, n-1 orthogonal dimensions with std ~1 and the rest nearly constant."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n - 1, generator=g, dtype=torch.float64))
    q = q - q.mean(0)
    return torch.cat([10 * q, 1e-3 * torch.randn(n, d - n + 1, generator=g, dtype=torch.float64)], 1)


@pytest.mark.parametrize("make", [dominant_column_batch, orthogonal_live_dead_batch])
def test_gram_side_accurate_when_off_diagonal_is_tiny(make, monkeypatch):
    z = make()
    n, d = z.shape
    x = z - z.mean(0)
    cov = x.T @ x / (n - 1)
    off = (cov**2).sum() - (cov.diagonal() ** 2).sum()
    diag = (cov.diagonal() ** 2).sum()
    assert off / diag < 0.05  # this is the cancellation regime
    exact = (off / d).item()
    got = covariance_loss(z.float()).item()
    assert abs(got - exact) / exact < 2e-5
    if make is dominant_column_batch:
        # teeth: the plain float32 subtraction is visibly wrong here
        monkeypatch.setattr(L, "_CANCELLATION_TOL", 0.0)
        naive = covariance_loss(z.float()).item()
        assert abs(naive - exact) / exact > 1e-3


def test_large_float32_sum_is_accurate():
    """D x D / N x N sums of ~1e7 entries: float32 reductions must not drift (CPU vector_norm
    over a flat vector loses ~1e-3 here)."""
    n, d = 1024, 4096
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    exact = covariance_loss(z.double()).item()
    assert covariance_loss(z).item() == pytest.approx(exact, rel=2e-6)


# ----------------------------------------------------------------------------
# autocast


def test_statistics_in_float32_under_autocast():
    torch.manual_seed(0)
    proj = torch.nn.Linear(32, 64)
    x_a, x_b = torch.randn(48, 32), torch.randn(48, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_a, z_b = proj(x_a), proj(x_b)
        assert z_a.dtype == torch.bfloat16
        inside = vicreg_loss(z_a, z_b)
        # float32 input under autocast must not be computed in bfloat16 either
        f32 = vicreg_loss(z_a.float(), z_b.float())
    outside = vicreg_loss(z_a.float(), z_b.float())
    for a, b, c in zip(inside, f32, outside):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, c, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(b, c, rtol=1e-6, atol=1e-7)
    inside.loss.backward()
    assert proj.weight.grad is not None and torch.isfinite(proj.weight.grad).all()


def test_float16_input_is_upcast():
    z_a, z_b = (t.half() for t in random_pair(16, 8, seed=4))
    t = vicreg_loss(z_a, z_b)
    assert t.loss.dtype == torch.float32
    torch.testing.assert_close(t.loss, vicreg_loss(z_a.float(), z_b.float()).loss)


# ----------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "z_a,z_b,match",
    [
        (torch.randn(8, 4), torch.randn(8, 5), r"same shape.*\(8, 4\).*\(8, 5\)"),
        (torch.randn(8, 4), torch.randn(7, 4), r"same shape"),
        (torch.randn(8, 4, 2), torch.randn(8, 4, 2), r"z_a must be 2-D"),
        (torch.randn(8), torch.randn(8), r"2-D \(N, D\), got shape \(8,\)"),
        (torch.randn(1, 4), torch.randn(1, 4), r"at least 2 rows"),
        (torch.ones(8, 4, dtype=torch.long), torch.ones(8, 4, dtype=torch.long), r"floating dtype.*int64"),
        (torch.randn(8, 4), torch.ones(8, 4, dtype=torch.int32), r"z_b must have a floating dtype"),
        (torch.randn(8, 4), torch.randn(8, 0), r"same shape|at least one dimension"),
    ],
)
def test_bad_input_raises(z_a, z_b, match):
    with pytest.raises(ValueError, match=match):
        vicreg_loss(z_a, z_b)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_names_the_branch(bad):
    z = torch.randn(8, 4)
    broken = z.clone()
    broken[3, 2] = bad
    with pytest.raises(ValueError, match=r"z_a must contain only finite values, found 1 NaN/Inf"):
        vicreg_loss(broken, z)
    with pytest.raises(ValueError, match=r"z_b must contain only finite values"):
        vicreg_loss(z, broken)
    with pytest.raises(ValueError, match=r"finite"):
        covariance_loss(broken)


def test_single_term_functions_check_input():
    with pytest.raises(ValueError, match="at least 2 rows"):
        variance_loss(torch.randn(1, 3))
    with pytest.raises(ValueError, match="2-D"):
        covariance_loss(torch.randn(3))
    with pytest.raises(ValueError, match="floating dtype"):
        covariance_loss(torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="same shape"):
        invariance_loss(torch.randn(3, 2), torch.randn(3, 3))
    with pytest.raises(ValueError, match="torch.Tensor"):
        variance_loss([[1.0, 2.0], [3.0, 4.0]])
