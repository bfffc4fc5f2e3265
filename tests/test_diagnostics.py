"""Collapse diagnostics on constructed embeddings whose answers are known."""

import json
import math

import numpy as np
import pytest
import torch

from vicreg_edu.diagnostics import (
    CollapseReport,
    alignment,
    collapse_report,
    correlation_matrix,
    covariance_matrix,
    dead_fraction,
    effective_rank,
    low_rank_copy,
    numerical_rank,
    off_diagonal_energy,
    per_dim_std,
    singular_values,
)

REPORT_KEYS = [
    "n",
    "dim",
    "std_mean",
    "std_min",
    "dead_fraction",
    "effective_rank",
    "numerical_rank",
    "off_diagonal_energy",
    "alignment_mse",
    "alignment_cosine",
]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def collapsed_to_k(n, d, k, seed=0, dtype=torch.float64):
    """(n, d) embeddings spanning exactly k directions: (n, k) Gaussian codes times k orthonormal
    rows, plus a constant offset. The spectrum is that of the codes, so erank is close to k."""
    g = gen(seed)
    codes = torch.randn(n, k, generator=g, dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))  # (d, k)
    offset = torch.randn(1, d, generator=g, dtype=torch.float64)
    return (codes @ basis.T + offset).to(dtype)


def with_spectrum(n, d, s, seed=0):
    """(n, d) embeddings whose centred singular values are exactly s (then zeros)."""
    g = gen(seed)
    r = len(s)
    u = torch.randn(n, r, generator=g, dtype=torch.float64)
    u, _ = torch.linalg.qr(u - u.mean(0))  # orthonormal columns orthogonal to the ones vector
    v, _ = torch.linalg.qr(torch.randn(d, r, generator=g, dtype=torch.float64))
    return u @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ v.T + 5.0


# -----------------------------------------------------------------------------
# complete collapse


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_complete_collapse_constant_rows(dtype):
    row = torch.randn(1, 48, generator=gen(1), dtype=dtype) * 3 + 1  # non-zero point
    z = row.repeat(200, 1)
    assert torch.equal(per_dim_std(z), torch.zeros(48, dtype=torch.float64))
    assert dead_fraction(z) == 1.0
    assert torch.equal(singular_values(z), torch.zeros(48, dtype=torch.float64))
    assert effective_rank(z) == 0.0  # documented convention: all-zero spectrum -> 0
    assert numerical_rank(z) == 0
    assert off_diagonal_energy(z) == 0.0
    assert torch.equal(correlation_matrix(z), torch.zeros(48, 48, dtype=torch.float64))
    r = collapse_report(z, z)
    assert (r.std_mean, r.std_min, r.dead_fraction) == (0.0, 0.0, 1.0)
    assert (r.effective_rank, r.numerical_rank, r.off_diagonal_energy) == (0.0, 0, 0.0)


def test_complete_collapse_uncentred_has_rank_one():
    z = torch.full((64, 16), 2.5, dtype=torch.float64)
    assert numerical_rank(z, center=False) == 1
    assert effective_rank(z, center=False, eps=0) == pytest.approx(1.0, abs=1e-12)


# -----------------------------------------------------------------------------
# dimensional collapse


@pytest.mark.parametrize("k", [1, 3, 8, 17])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dimensional_collapse_to_k(k, dtype):
    z = collapsed_to_k(4096, 64, k, seed=k, dtype=dtype)
    assert numerical_rank(z) == k
    # Codes are isotropic with N >> k, so the k singular values agree to a few % and the
    # RankMe entropy is within 1% of log k's exponent.
    assert abs(effective_rank(z) - k) < 0.01 * k
    r = collapse_report(z)
    assert r.numerical_rank == k
    assert abs(r.effective_rank - k) < 0.01 * k
    assert r.std_min > 0  # no dimension is constant: the collapse is in the directions


@pytest.mark.parametrize("method", ["svd", "gram"])
def test_rank_of_float64_collapse_with_either_method(method):
    # the Gram route is less precise; its default tolerance accounts for that
    z = collapsed_to_k(256, 512, 7, seed=1)  # N < D: Gram on the N side
    assert numerical_rank(z, method=method) == 7
    assert collapse_report(z, method=method).numerical_rank == 7
    iso = torch.randn(64, 32, generator=gen(12), dtype=torch.float64)
    assert numerical_rank(iso, method=method) == 32


def test_numerical_rank_matches_torch_matrix_rank():
    for k in (2, 5, 11):
        z = collapsed_to_k(300, 40, k, seed=k)
        zc = z - z.mean(0)
        assert numerical_rank(z) == int(torch.linalg.matrix_rank(zc)) == k
        assert numerical_rank(z, tol=1e300) == 0
        assert numerical_rank(z, tol=0.0) >= k


def test_effective_rank_of_exact_spectrum():
    s = [4.0, 2.0, 1.0, 0.5, 0.25]
    z = with_spectrum(500, 20, s)
    got = singular_values(z)
    assert torch.allclose(got[:5], torch.tensor(s, dtype=torch.float64), atol=1e-10)
    assert torch.all(got[5:] < 1e-10)
    p = np.array(s) / sum(s)
    expected = math.exp(-(p * np.log(p)).sum())  # ~ 3.62, between 1 and 5
    assert effective_rank(z, eps=0) == pytest.approx(expected, rel=1e-9)
    assert effective_rank(got, eps=0) == pytest.approx(expected, rel=1e-9)
    assert effective_rank(z) == pytest.approx(expected, rel=1e-4)  # RankMe eps = 1e-7
    assert numerical_rank(z) == 5


def test_effective_rank_known_spectra():
    assert effective_rank(torch.ones(6), eps=0) == pytest.approx(6.0, rel=1e-12)
    assert effective_rank(torch.tensor([3.0, 0.0, 0.0]), eps=0) == pytest.approx(1.0, rel=1e-12)
    assert effective_rank(torch.tensor([0.0, 3.0, 3.0]), eps=0) == pytest.approx(2.0, rel=1e-12)
    assert effective_rank(torch.zeros(5)) == 0.0
    z = torch.randn(100, 10, generator=gen(2), dtype=torch.float64)
    # invariant to scale and translation
    assert effective_rank(7 * z + 3) == pytest.approx(effective_rank(z), rel=1e-10)


# -----------------------------------------------------------------------------
# isotropic Gaussian: no collapse


def test_isotropic_gaussian():
    n, d = 8192, 32
    z = torch.randn(n, d, generator=gen(3), dtype=torch.float64)
    r = collapse_report(z)
    # Marchenko-Pastur: singular values sqrt(N)(1 +- sqrt(D/N)); erank deficit ~ D^2 / (8N)
    assert d * (1 - d / n) < r.effective_rank <= d
    assert r.numerical_rank == d
    corr = correlation_matrix(z)
    assert torch.allclose(corr.diagonal(), torch.ones(d, dtype=torch.float64))
    assert (corr - torch.eye(d, dtype=torch.float64)).abs().max() < 5 / math.sqrt(n)
    # E[C_ij^2] = 1/(N-1) for independent unit-variance dims, so c(Z) ~ (D-1)/(N-1)
    assert r.off_diagonal_energy == pytest.approx((d - 1) / (n - 1), rel=0.15)
    assert r.std_mean == pytest.approx(1.0, abs=0.02)
    assert r.dead_fraction == 0.0


# -----------------------------------------------------------------------------
# second moments against direct formulas


@pytest.mark.parametrize("shape", [(50, 12), (12, 50)])  # N > D and N < D (Gram side)
def test_second_moments_match_direct_formulas(shape):
    z = torch.randn(*shape, generator=gen(4), dtype=torch.float64) @ torch.randn(
        shape[1], shape[1], generator=gen(5), dtype=torch.float64
    )
    d = shape[1]
    cov = covariance_matrix(z)
    assert torch.allclose(cov, torch.cov(z.T), atol=1e-10)
    assert torch.allclose(per_dim_std(z), z.std(dim=0), atol=1e-12)
    off = cov - torch.diag(cov.diagonal())
    direct = float((off**2).sum() / d)  # VICReg eq. 4
    assert direct > 1.0
    assert off_diagonal_energy(z) == pytest.approx(direct, rel=1e-9)
    assert collapse_report(z).off_diagonal_energy == pytest.approx(direct, rel=1e-9)
    corr = correlation_matrix(z)
    assert torch.allclose(corr, torch.corrcoef(z.T), atol=1e-10)
    s = torch.linalg.svdvals(z - z.mean(0))
    for method in ("svd", "gram", "auto"):
        assert torch.allclose(singular_values(z, method=method), s, rtol=1e-8, atol=1e-8)


def test_gram_and_svd_agree_on_float32():
    z = torch.randn(300, 80, generator=gen(6))
    a = singular_values(z, method="gram")
    b = singular_values(z, method="svd")
    assert torch.allclose(a, b, rtol=1e-7, atol=1e-7 * float(b[0]))


def test_dead_fraction_counts_dims_below_threshold():
    g = gen(7)
    z = torch.randn(400, 10, generator=g, dtype=torch.float64)
    z[:, :3] = 1.0  # dead
    z[:, 3] = 0.005 * z[:, 3]  # std ~0.005: dead at 0.01, alive at 0.001
    assert dead_fraction(z) == pytest.approx(0.4)
    assert dead_fraction(z, threshold=0.001) == pytest.approx(0.3)
    assert dead_fraction(z, threshold=0.0) == 0.0
    corr = correlation_matrix(z)
    assert torch.all(corr[:3] == 0) and torch.all(corr[:, :3] == 0)
    assert torch.allclose(corr[3:, 3:].diagonal(), torch.ones(7, dtype=torch.float64))


# -----------------------------------------------------------------------------
# alignment


def test_alignment_identical_opposite_scaled_views():
    z = torch.randn(64, 16, generator=gen(8))
    mse, cos = alignment(z, z.clone())
    assert mse == 0.0
    assert cos == pytest.approx(1.0, abs=1e-6)
    mean_sq = float((z.double() ** 2).mean())
    mse, cos = alignment(z, -z)
    assert mse == pytest.approx(4 * mean_sq, rel=1e-6)
    assert cos == pytest.approx(-1.0, abs=1e-6)
    mse, cos = alignment(z, 2 * z)
    assert mse == pytest.approx(mean_sq, rel=1e-6)
    assert cos == pytest.approx(1.0, abs=1e-6)
    # equals the VICReg invariance term (F.mse_loss)
    w = torch.randn(64, 16, generator=gen(9))
    assert alignment(z, w)[0] == pytest.approx(float(torch.nn.functional.mse_loss(z, w)), rel=1e-6)


def test_report_with_identical_views_and_dict_format():
    z = torch.randn(128, 32, generator=gen(10))
    d = collapse_report(z, z).as_dict()
    assert list(d) == REPORT_KEYS
    assert d["alignment_mse"] == 0.0
    assert d["alignment_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert (d["n"], d["dim"]) == (128, 32)
    assert isinstance(d["n"], int) and isinstance(d["numerical_rank"], int)
    assert all(isinstance(d[k], float) for k in REPORT_KEYS if k not in ("n", "dim", "numerical_rank"))
    assert json.loads(json.dumps(d)) == d
    single = collapse_report(z).as_dict()
    assert list(single) == REPORT_KEYS[:-2]  # no second view -> no alignment keys
    assert isinstance(collapse_report(z), CollapseReport)


def test_inputs_that_require_grad_numpy_and_float32():
    z = torch.randn(100, 20, generator=gen(11), requires_grad=True)
    r = collapse_report(z, z * 1.0)
    assert r.numerical_rank == 20
    assert z.grad is None
    assert not per_dim_std(z).requires_grad
    zn = z.detach().numpy()
    assert collapse_report(zn).effective_rank == pytest.approx(r.effective_rank, rel=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    z = collapsed_to_k(1024, 256, 9, dtype=torch.float32)
    cpu = collapse_report(z, z + 0.01).as_dict()
    gpu = collapse_report(z.cuda(), z.cuda() + 0.01).as_dict()
    assert gpu["numerical_rank"] == cpu["numerical_rank"] == 9
    for key in cpu:
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-5, abs=1e-9), key


# -----------------------------------------------------------------------------
# errors


def test_errors_on_bad_input():
    good = torch.randn(8, 4)
    for fn in (
        per_dim_std,
        dead_fraction,
        covariance_matrix,
        correlation_matrix,
        off_diagonal_energy,
        singular_values,
        numerical_rank,
        collapse_report,
    ):
        with pytest.raises(ValueError, match="2-D"):
            fn(torch.randn(8))
        with pytest.raises(ValueError, match="2-D"):
            fn(torch.randn(2, 8, 4))
        with pytest.raises(ValueError, match="N=1"):
            fn(torch.randn(1, 4))
        bad = good.clone()
        bad[3, 1] = float("nan")
        with pytest.raises(ValueError, match="non-finite"):
            fn(bad)
        bad[3, 1] = float("inf")
        with pytest.raises(ValueError, match="non-finite"):
            fn(bad)
        with pytest.raises(TypeError, match="torch.Tensor"):
            fn([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="same shape"):
        alignment(good, torch.randn(8, 5))
    with pytest.raises(ValueError, match="same shape"):
        collapse_report(good, torch.randn(7, 4))
    with pytest.raises(ValueError, match="non-finite"):
        collapse_report(good, torch.full((8, 4), float("nan")))
    with pytest.raises(TypeError, match="real"):
        per_dim_std(torch.randn(8, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="method"):
        singular_values(good, method="qr")
    with pytest.raises(ValueError, match="threshold"):
        dead_fraction(good, threshold=-1)
    with pytest.raises(ValueError, match="tol"):
        numerical_rank(good, tol=-1.0)
    with pytest.raises(ValueError, match=">= 0"):
        effective_rank(torch.tensor([1.0, -0.5]))
    with pytest.raises(ValueError, match="singular values"):
        effective_rank(torch.randn(2, 3, 4))


# ----------------------------------------------------------------------------- low_rank_copy


def test_low_rank_copy_keeps_each_std_and_mean_in_rank_directions():
    """Chapter 6's hands-on dimensional collapse: k directions, every dimension's spread kept."""
    z = torch.randn(400, 24, generator=gen(1)) * torch.linspace(0.2, 2.0, 24) + 3.0
    for k in (1, 3, 7):
        low = low_rank_copy(z, k)
        assert low.shape == z.shape and low.dtype == torch.float64
        assert numerical_rank(low) == k
        assert effective_rank(low) <= k + 1e-3
        torch.testing.assert_close(per_dim_std(low), per_dim_std(z).double())
        torch.testing.assert_close(low.mean(0), z.double().mean(0))
    assert effective_rank(z) > 15  # the original is far from collapsed


def test_low_rank_copy_without_keep_std_is_the_projection():
    z = torch.randn(300, 16, generator=gen(2))
    low = low_rank_copy(z, 2, keep_std=False)
    centred = z.double() - z.double().mean(0)
    vh = torch.linalg.svd(centred, full_matrices=False).Vh[:2]
    torch.testing.assert_close(low, z.double().mean(0) + centred @ vh.T @ vh)
    assert per_dim_std(low).mean() < per_dim_std(z).mean()  # a projection loses spread


def test_low_rank_copy_uses_the_basis_of_another_view():
    """Both views collapse onto the first view's directions: together they still span k directions."""
    z_a = torch.randn(300, 12, generator=gen(3))
    z_b = z_a + 0.3 * torch.randn(300, 12, generator=gen(4))
    low_a, low_b = low_rank_copy(z_a, 3), low_rank_copy(z_b, 3, basis=z_a)
    assert numerical_rank(torch.cat([low_a - low_a.mean(0), low_b - low_b.mean(0)])) == 3
    torch.testing.assert_close(low_b - low_a, low_rank_copy(z_b - z_a, 3, basis=z_a))  # one linear map
    ratio = per_dim_std(low_b) / per_dim_std(z_b)  # the first view's scales: the second's std about kept
    assert 0.8 < float(ratio.min()) and float(ratio.max()) < 1.25, ratio


@pytest.mark.parametrize("rank", [0, 13, 2.5, True])
def test_low_rank_copy_refuses_a_bad_rank(rank):
    with pytest.raises(ValueError, match="rank must be an integer"):
        low_rank_copy(torch.randn(50, 12), rank)


def test_low_rank_copy_refuses_a_basis_of_another_width():
    with pytest.raises(ValueError, match="basis must have"):
        low_rank_copy(torch.randn(50, 12), 2, basis=torch.randn(50, 10))
