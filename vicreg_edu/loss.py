"""The VICReg loss: invariance, variance and covariance.

Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022, arXiv 2105.04906, Section 3 and Algorithm 1 (equation
numbers below are the arXiv version's). Given two batches of embeddings Z, Z' of shape (N, D):

    s(Z, Z')  invariance   mean squared distance between the two branches        Eq. (5)
    v(Z)      variance     mean_j relu(gamma - sqrt(Var(Z[:, j]) + eps))          Eq. (1), (2)
    c(Z)      covariance   sum_{j != k} C(Z)[j, k]**2 / D,  C = centred Z^T Z/(N-1)  Eq. (3), (4)

    loss = lambda * s + mu * (v(Z) + v(Z')) / 2 + nu * (c(Z) + c(Z'))             Eq. (6)

with lambda = sim_coeff = 25, mu = std_coeff = 25, nu = cov_coeff = 1, gamma = 1, eps = 1e-4.

Conventions, paper vs official code (facebookresearch/vicreg, main_vicreg.py):
* s is ``F.mse_loss``, the mean over all N*D entries, in the paper's Algorithm 1 (pseudo-code)
  and in the official code alike. Only the paper's Eq. (5) sums over the D dimensions (its s is
  D times this one); Eq. (5) is the outlier. The coefficients 25/25/1 go with the mean.
* the variance term: Algorithm 1 and Eq. (6) add v(Z) + v(Z') *without* /2; the official
  main_vicreg.py divides by 2, (v(Z) + v(Z'))/2 (official issues #8, #26). We keep the /2, so
  our numbers match the official code and lightly (solo-learn drops it, which doubles the
  effective weight of the variance term).

How this file reads: :func:`vicreg_loss_reference` first, the loss in the paper's form (as
Algorithm 1 and ``VICReg.forward``, ~20 lines), then :func:`vicreg_loss`, the one the trainer
calls: the same numbers (tests/test_loss.py checks it), computed faster and with checks:

* Cost: c is the expensive part. The covariance matrix costs N*D*D flops and D*D memory; when
  N < D we use the N x N Gram matrix instead (N*N*D flops), see :func:`covariance_loss`.
* All statistics are computed in float32 (float64 inputs stay float64), also under autocast.
* Host syncs: by default the loss checks its input for NaN/Inf and raises a ValueError (one
  read back to the host). ``check_finite=False`` skips it; then, on a GPU, the loss reads
  nothing back to the host (no sync), see :func:`vicreg_loss`.
* Precision of the Gram side without host reads: ``gram_dtype="float64"`` (default) or
  ``"float32"`` for GPUs with little float64 throughput (1/32 to 1/64 of float32 on A10, L4,
  L40S and the RTX cards; V100 runs float64 at half its float32 rate; A100, H100 and H200 run
  float64 matrix products on FP64 tensor cores at about the plain float32 rate, TF32 off), see
  :class:`_SecondMoments`.
* Distributed training (``torch.distributed`` initialised): s is the mean over this rank's
  local batch; v and c are computed over the global batch, gathered from every rank with
  :func:`gather_with_grad`, whose backward passes gradients back to the rank that produced
  them. Why this gives exactly the single-process gradient is worked out in that function's
  docstring. The actual global N is used (not a configured batch size as in the official code).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


class VICRegTerms(NamedTuple):
    """Result of :func:`vicreg_loss`; every field is a 0-dim tensor.

    loss        weighted total: sim_coeff*s + std_coeff*(v_a+v_b)/2 + cov_coeff*(c_a+c_b)
    invariance  s, unweighted
    variance    (v_a + v_b) / 2, unweighted
    covariance  c_a + c_b, unweighted
    """

    loss: Tensor
    invariance: Tensor
    variance: Tensor
    covariance: Tensor


# ----------------------------------------------------------------------------
# the loss as the paper writes it (Algorithm 1; official VICReg.forward)


def off_diagonal(m: Tensor) -> Tensor:
    """The off-diagonal entries of a square (D, D) matrix, flattened to (D*D - D,)."""
    d = m.shape[0]
    return m.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()


def vicreg_loss_reference(z_a, z_b, lam=25.0, mu=25.0, nu=1.0, gamma=1.0, eps=1e-4) -> VICRegTerms:
    """VICReg on (N, D) embeddings z_a, z_b, written as the paper's Algorithm 1.

    lam, mu, nu are the paper's lambda, mu, nu (:func:`vicreg_loss`'s sim_coeff, std_coeff,
    cov_coeff). One process, no input checks, builds the (D, D) covariance matrices: for reading
    and testing; train with :func:`vicreg_loss`, which returns the same four numbers.
    """
    n, d = z_a.shape
    # invariance: mean squared distance between the two views' embeddings
    invariance = F.mse_loss(z_a, z_b)
    # variance: hinge on the standard deviation of every dimension, per branch
    std_a = torch.sqrt(z_a.var(dim=0) + eps)
    std_b = torch.sqrt(z_b.var(dim=0) + eps)
    variance = (F.relu(gamma - std_a).mean() + F.relu(gamma - std_b).mean()) / 2  # /2: official code
    # covariance: squared off-diagonal entries of each branch's covariance matrix, over D
    z_a = z_a - z_a.mean(dim=0)
    z_b = z_b - z_b.mean(dim=0)
    cov_a = (z_a.T @ z_a) / (n - 1)  # (D, D)
    cov_b = (z_b.T @ z_b) / (n - 1)
    covariance = off_diagonal(cov_a).pow(2).sum() / d + off_diagonal(cov_b).pow(2).sum() / d
    loss = lam * invariance + mu * variance + nu * covariance
    return VICRegTerms(loss, invariance, variance, covariance)


# ----------------------------------------------------------------------------
# the loss the trainer calls: same numbers, Gram side when N < D, checks, distributed


def vicreg_loss(
    z_a: Tensor,
    z_b: Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
    check_finite: bool = True,
    gram_dtype: str = "float64",
) -> VICRegTerms:
    """The VICReg loss of paper Eq. (6): ``lambda s + mu (v_a + v_b) / 2 + nu (c_a + c_b)``.

    The numbers of :func:`vicreg_loss_reference`, without a (D, D) matrix when N < D, in float32
    (float64 stays float64) also under autocast. Under torch.distributed, s uses this rank's
    batch and v, c the batch gathered from all ranks (:func:`gather_with_grad`).

    Args:
        z_a, z_b: (N, D) embeddings (expander outputs) of the two views, row i of each from
            the same image.
        sim_coeff, std_coeff, cov_coeff: weights lambda, mu, nu (paper: 25, 25, 1).
        gamma, eps: target std and the epsilon of the variance term.
        check_finite: raise a ValueError on NaN/Inf input (one read back to the host). With
            ``False`` NaN/Inf propagate and a GPU reads nothing back (the Gram side then runs in
            ``gram_dtype``, see :class:`_SecondMoments`); use it under ``torch.compile``.
        gram_dtype: ``"float64"`` or ``"float32"``: the precision of the covariance term's
            Gram side (N < D) when the loss reads nothing back to the host (a GPU with
            ``check_finite=False``). ``"float32"`` is for GPUs with slow float64; it agrees with
            float64 to about 1e-6 relative on ordinary batches, but loses digits when the
            off-diagonal covariance is tiny next to the diagonal (tests/test_loss.py: 0.5 % off
            on a batch with one dimension 1000x the others). Where host reads are free (CPU) or
            allowed (``check_finite=True``), the Gram side starts in float32 and switches to
            float64 only in that regime, whatever ``gram_dtype`` says.
    Returns:
        VICRegTerms(loss, invariance, variance, covariance), 0-dim tensors; only ``loss`` is
        weighted, ``variance`` is (v_a + v_b)/2 and ``covariance`` is c_a + c_b.
    Raises:
        ValueError: z_a and z_b shapes differ, not 2-D, integer dtype, batch < 2, NaN/Inf
            (with ``check_finite``; the message names z_a or z_b), a ``gram_dtype`` other than
            ``"float32"`` / ``"float64"``.

    Example:
        >>> z_a, z_b = torch.randn(32, 16), torch.randn(32, 16)
        >>> terms = vicreg_loss(z_a, z_b)
        >>> torch.allclose(terms.loss, vicreg_loss_reference(z_a, z_b).loss)
        True
    """
    gram_float64 = _check_gram_dtype(gram_dtype)
    distributed = _distributed()
    _check_pair(z_a, z_b, min_batch=1 if distributed else 2)
    z_a, z_b = _as_float32(z_a), _as_float32(z_b)

    # invariance s, Eq. (5): mean squared distance, on this rank's batch (before the gather, as
    # the official code)
    s = _invariance(z_a, z_b)

    z_a, z_b = gather_with_grad(z_a), gather_with_grad(z_b)  # (N_global, D): v and c see every rank
    if distributed:  # global checks, so that every rank raises together
        _check_pair(z_a, z_b)
    if check_finite:
        _check_finite(z_a=z_a, z_b=z_b)
    host_reads = check_finite or _host_reads_are_free(z_a)
    var_a, c_a = _variance_and_covariance(z_a, host_reads, gram_float64)  # Var(Z[:, j]) (D,) and c(Z)
    var_b, c_b = _variance_and_covariance(z_b, host_reads, gram_float64)

    # variance v, Eq. (1)-(2): hinge on each dimension's std, mean of the two branches
    v = (_hinge(var_a, gamma, eps) + _hinge(var_b, gamma, eps)) / 2
    # covariance c, Eq. (3)-(4): squared off-diagonal covariances over D, summed over the branches
    c = c_a + c_b

    loss = sim_coeff * s + std_coeff * v + cov_coeff * c  # Eq. (6)
    return VICRegTerms(loss, s, v, c)


class VICRegLoss(nn.Module):
    """nn.Module wrapper of :func:`vicreg_loss` (same arguments, stored as attributes).

    Example:
        >>> criterion = VICRegLoss(sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0)
        >>> terms = criterion(torch.randn(8, 4), torch.randn(8, 4))
        >>> terms.loss.dim()
        0
    """

    def __init__(
        self,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        check_finite: bool = True,
        gram_dtype: str = "float64",
    ):
        super().__init__()
        _check_gram_dtype(gram_dtype)
        self.sim_coeff, self.std_coeff, self.cov_coeff = sim_coeff, std_coeff, cov_coeff
        self.gamma, self.eps, self.check_finite, self.gram_dtype = gamma, eps, check_finite, gram_dtype

    def forward(self, z_a: Tensor, z_b: Tensor) -> VICRegTerms:
        return vicreg_loss(
            z_a,
            z_b,
            self.sim_coeff,
            self.std_coeff,
            self.cov_coeff,
            self.gamma,
            self.eps,
            check_finite=self.check_finite,
            gram_dtype=self.gram_dtype,
        )

    def extra_repr(self) -> str:
        return (
            f"sim_coeff={self.sim_coeff}, std_coeff={self.std_coeff}, "
            f"cov_coeff={self.cov_coeff}, gamma={self.gamma}, eps={self.eps}"
        )


# ----------------------------------------------------------------------------
# the three terms one at a time (single process, with input checks)


def invariance_loss(z_a: Tensor, z_b: Tensor) -> Tensor:
    """s(Z, Z'): mean squared error between the two branches (Algorithm 1's ``mse_loss``).

    Args:
        z_a, z_b: (N, D) embeddings of two views of the same N images.
    Returns:
        0-dim tensor, the mean over all N*D entries of (z_a - z_b)**2 (as Algorithm 1 and the
        official code's ``F.mse_loss``; the paper's Eq. (5) sums over D instead of averaging).
    Raises:
        ValueError: shapes differ, not 2-D, integer dtype, N < 2, non-finite values.

    Example:
        >>> z = torch.randn(8, 4)
        >>> invariance_loss(z, z).item()
        0.0
    """
    _check_pair(z_a, z_b)
    _check_finite(z_a=z_a, z_b=z_b)
    return _invariance(z_a, z_b)


def variance_loss(z: Tensor, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """v(Z): hinge on the per-dimension standard deviation, paper Eq. (1) and (2).

    v(Z) = mean_j relu(gamma - sqrt(Var(Z[:, j]) + eps)), with the unbiased variance (N-1).

    Args:
        z: (N, D) embeddings, N >= 2.
        gamma: target standard deviation (paper: 1).
        eps: added to the variance before the square root (keeps the gradient finite).
    Returns:
        0-dim tensor in [0, gamma]; 0 when every dimension has std >= gamma.
    Raises:
        ValueError: not 2-D, integer dtype, N < 2, non-finite values.

    Example (a constant batch has zero variance, so v = gamma - sqrt(eps)):
        >>> round(variance_loss(torch.ones(4, 3)).item(), 6)
        0.99
    """
    _check_embedding(z, "z")
    _check_finite(z=z)
    return _variance(z, gamma, eps)


def covariance_loss(z: Tensor) -> Tensor:
    """c(Z): squared off-diagonal entries of the covariance matrix over D, paper Eq. (3), (4).

    c(Z) = sum_{j != k} C[j, k]**2 / D,  C = (Z - mean)^T (Z - mean) / (N - 1)   # (D, D)

    Computed without the (D, D) matrix when N < D (through the (N, N) Gram matrix, which has
    the same Frobenius norm); how and how accurately: :class:`_SecondMoments`.

    Args:
        z: (N, D) embeddings, N >= 2.
    Returns:
        0-dim tensor >= 0 (float32, or float64 for float64 input).
    Raises:
        ValueError: not 2-D, integer dtype, N < 2, non-finite values.

    Example (two identical columns with variance 1 give C[0,1] = C[1,0] = 1, so c = 2/2):
        >>> x = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]]) * (3 / 4) ** 0.5
        >>> round(covariance_loss(torch.cat([x, x], dim=1)).item(), 6)
        1.0
    """
    _check_embedding(z, "z")
    _check_finite(z=z)
    return _variance_and_covariance(z, host_reads=True)[1]


# ----------------------------------------------------------------------------
# input checks


def _check_embedding(z: Tensor, name: str = "z", min_batch: int = 2) -> None:
    """Raise ValueError unless z is a floating (N, D) tensor with N >= min_batch."""
    if not isinstance(z, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, D), got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(z.shape)}")
    if not (z.is_floating_point()):
        raise ValueError(f"{name} must have a floating dtype (float16/bfloat16/float32/float64), got {z.dtype}")
    if z.shape[0] < min_batch:
        raise ValueError(
            f"{name} needs a batch of at least {min_batch} rows (the variance over the batch is "
            f"undefined for N < 2), got shape {tuple(z.shape)}"
        )
    if z.shape[1] < 1:
        raise ValueError(f"{name} needs at least one dimension, got shape {tuple(z.shape)}")


def _check_finite(**tensors: Tensor) -> None:
    """Raise ValueError naming the first tensor with NaN/Inf entries (one host sync for all).

    A sum is NaN/Inf exactly when an entry is (or when it overflows, then the exact count
    below decides): one pass over the data instead of the four of ``isfinite(t).all()``.
    """
    sums = [t.sum(dtype=torch.promote_types(t.dtype, torch.float32)) for t in tensors.values()]
    flags = torch.isfinite(torch.stack(sums)).tolist()
    for (name, t), ok in zip(tensors.items(), flags):
        bad = 0 if ok else int((~torch.isfinite(t)).sum())
        if bad:
            raise ValueError(
                f"{name} must contain only finite values, found {bad} NaN/Inf entries "
                f"out of {t.numel()} (shape {tuple(t.shape)})"
            )


def _check_pair(z_a: Tensor, z_b: Tensor, min_batch: int = 2) -> None:
    _check_embedding(z_a, "z_a", min_batch)
    _check_embedding(z_b, "z_b", min_batch)
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b must have the same shape (N, D), got {tuple(z_a.shape)} and {tuple(z_b.shape)}")


def _check_gram_dtype(gram_dtype: str) -> bool:
    """True for ``"float64"``, False for ``"float32"``; anything else raises a one-line ValueError."""
    if gram_dtype not in ("float32", "float64"):
        raise ValueError(f"gram_dtype must be 'float32' or 'float64', got {gram_dtype!r}")
    return gram_dtype == "float64"


def _as_float32(z: Tensor) -> Tensor:
    """float16/bfloat16 -> float32; float32 and float64 are returned as they are."""
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z


def _host_reads_are_free(z: Tensor) -> bool:
    """Reading a value of z on the host costs no device sync: a CPU tensor, in eager mode."""
    return z.device.type == "cpu" and not torch.compiler.is_compiling()


# ----------------------------------------------------------------------------
# the fast statistics


# When N < D the off-diagonal energy is a difference of two float32 sums (see
# covariance_loss). If that difference is smaller than this fraction of the sums, rounding in
# float32 could dominate it, so the term is recomputed in float64.
_CANCELLATION_TOL = 0.1


def _invariance(z_a: Tensor, z_b: Tensor) -> Tensor:
    with torch.autocast(z_a.device.type, enabled=False):
        return F.mse_loss(_as_float32(z_a), _as_float32(z_b))


def _variance(z: Tensor, gamma: float, eps: float) -> Tensor:
    with torch.autocast(z.device.type, enabled=False):
        return _hinge(_as_float32(z).var(dim=0), gamma, eps)


def _hinge(var: Tensor, gamma: float, eps: float) -> Tensor:
    """v from the (D,) per-dimension variances: mean_j relu(gamma - sqrt(var_j + eps))."""
    return F.relu(gamma - torch.sqrt(var + eps)).mean()


def _variance_and_covariance(z: Tensor, host_reads: bool, gram_float64: bool = True) -> tuple[Tensor, Tensor]:
    """((D,) unbiased per-dimension variance, c(Z)) of an (N, D) batch, from one centring and one matmul.

    host_reads=False: no value is read back to the host (the Gram side runs in float64, or in
    float32 with ``gram_float64=False``).
    """
    with torch.autocast(z.device.type, enabled=False):
        z = _as_float32(z)
        n, d = z.shape
        off_diagonal_energy, col_sq = _SecondMoments.apply(z, host_reads, gram_float64)
        return col_sq / (n - 1), off_diagonal_energy / ((n - 1) ** 2 * d)


def _squared_norm(m: Tensor) -> Tensor:
    """Sum of squares of all entries of a 2-D m, without allocating m * m.

    Row norms first: on CPU, torch's float32 vector_norm over one long flattened vector loses
    accuracy (about 1e-2 relative at 8192 x 8192 entries), while per row it is accurate.
    """
    return torch.linalg.vector_norm(m, dim=1).square().sum()


class _SecondMoments(torch.autograd.Function):
    """Off-diagonal energy and diagonal of X^T X for the centred X = Z - mean(Z), Z (N, D).

        E = sum_{j != k} (X^T X)[j, k]^2    scalar, on the cheaper side (see covariance_loss)
        q = diag(X^T X)                      (D,), column sums of squares: q / (N-1) = Var

    Backward, for upstream gradients g_E (scalar) and g_q (D,):
        dL/dX = 4 g_E (X X^T X - X diag(q)) + 2 X diag(g_q)       # = 4 g_E X C_off + ...
    One matmul (autograd would do two). Every column of dL/dX sums to zero because 1^T X = 0,
    so it is unchanged by the backward of the centring: dL/dZ = dL/dX.

    How it is computed:

    * E = ||X^T X||_F^2 - sum_j q_j^2: no index mask, no copy of the matrix.
    * ||X^T X||_F = ||X X^T||_F (both squared equal sum_i sigma_i^4 over the singular values of
      X). So when N < D the (N, N) Gram matrix X X^T is formed (N*N*D flops, N*N memory)
      instead of the (D, D) one (N*D*D flops, D*D memory); q costs only N*D. X X^T is
      symmetric: 3 of its 4 half-blocks are multiplied (25% fewer flops).
    * when N >= D, X^T X is formed once and its diagonal zeroed in place (no subtraction).
    * accuracy: the N < D subtraction loses digits when the off-diagonal energy is tiny next
      to the diagonal one (one dimension with 1000x the std of the others, or a few orthogonal
      live dimensions among many dead ones). If the float32 difference is below 10% of the
      diagonal part, E and its gradient are recomputed in float64 (tests/test_loss.py shows
      plain float32 off by 0.5% there). That decision reads one number back to the host;
      without host reads (``host_reads=False``, a GPU with ``check_finite=False``) the Gram
      side runs in float64 directly (``gram_float64``): about the plain float32 rate (FP64 tensor
      cores, TF32 off) on A100/H100/H200, half the float32 rate on V100, up to 2.3x the time
      on a CPU (bench/README.md), 32-64x slower on A10/L4/L40S/RTX cards, where
      ``gram_float64=False`` keeps it in float32 and skips the check (no host read), accepting
      the cancellation error above.
    * sums of squares are taken row by row: torch's float32 CPU ``vector_norm`` over 1e7
      entries in one go is off by ~1e-2.
    """

    @staticmethod
    def forward(ctx, z: Tensor, host_reads: bool, gram_float64: bool = True) -> tuple[Tensor, Tensor]:
        ctx.in_dtype = z.dtype
        x = z - z.mean(dim=0)  # (N, D)
        n, d = x.shape
        if n >= d:  # covariance side: one (D, D) matrix, diagonal read then zeroed in place
            cov = x.T @ x  # (D, D)
            col_sq = cov.diagonal().clone()
            cov.diagonal().zero_()
            ctx.save_for_backward(x, cov)
            ctx.side = "cov"
            return _squared_norm(cov), col_sq
        if x.dtype != torch.float64 and not host_reads and gram_float64:
            x = x.double()  # the cancellation check below would need a host read: float64 now
        energy, gram, col_sq = _gram_energy(x)
        if host_reads and x.dtype != torch.float64 and energy < _CANCELLATION_TOL * col_sq.square().sum():
            # float32 cancellation regime: redo it (and later the backward) in float64
            x = x.double()
            energy, gram, col_sq = _gram_energy(x)
        ctx.save_for_backward(x, gram, col_sq)
        ctx.side = "gram"
        return energy.to(ctx.in_dtype), col_sq.to(ctx.in_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_energy: Tensor, grad_col_sq: Tensor) -> tuple[Tensor, None, None]:
        scale = 4 * grad_energy
        if ctx.side == "cov":
            x, cov_off = ctx.saved_tensors
            grad = (x @ cov_off).mul_(scale)  # (N, D)
            grad.addcmul_(x, 2 * grad_col_sq)
        else:
            x, gram, col_sq = ctx.saved_tensors  # maybe float64, see forward
            grad = (gram @ x).mul_(scale)  # (N, D)
            grad.addcmul_(x, 2 * grad_col_sq - scale * col_sq)
        return grad.to(ctx.in_dtype), None, None


def _gram_energy(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(||X X^T||_F^2 - ||diag X^T X||^2, the (N, N) Gram matrix, the (D,) column norms^2)."""
    # X X^T is symmetric: compute 3 of its 4 row blocks' products, 25% fewer flops than x @ x.T
    top, bottom = x[: len(x) // 2], x[len(x) // 2 :]
    upper_right = top @ bottom.T
    gram = torch.cat(  # (N, N)
        [torch.cat([top @ top.T, upper_right], 1), torch.cat([upper_right.T, bottom @ bottom.T], 1)]
    )
    col_sq = x.square().sum(dim=0)  # (D,) = diag(X^T X)
    return _squared_norm(gram) - col_sq.square().sum(), gram, col_sq


# ----------------------------------------------------------------------------
# distributed gather


# one all-gather into a single (W * N_r, ...) tensor (newer torch calls it all_gather_single)
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 of equal-size tensors, whose backward sums the gradients of all ranks
    (the official FullGatherLayer). No sizes are exchanged: every rank must hold the same N_r."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x = x.contiguous()
        out = x.new_empty((dist.get_world_size() * x.shape[0],) + x.shape[1:])
        _all_gather_single(out, x)
        ctx.rows = slice(dist.get_rank() * x.shape[0], (dist.get_rank() + 1) * x.shape[0])
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rows]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(z: Tensor, rows: int | None = None) -> Tensor:
    """Concatenate every rank's (N_r, D) tensor into (W * N_r, D), letting gradients through.

    Identity when torch.distributed is not initialised (or has one process). Rows are in rank
    order, so rank r's rows are at offset r * N_r. Every rank must hold the same number of rows
    N_r (the trainer's loaders give each rank batch_size / W and the trainer checks it): one
    all-gather of equal-size tensors, no exchange of sizes and nothing read back to the host.
    Ranks holding different N_r are not detected by the collective (gloo aborts the process
    or returns garbage, NCCL hangs or returns garbage); pass ``rows`` to check the local shape.

    Why the gradient is exactly the single-process one. Let Z = [Z_0; ...; Z_{W-1}] be the
    global batch, Z_r = f_theta(inputs of rank r), and G(Z) the global part of the loss
    (mu*v + nu*c). Every rank computes the same G(Z) from the same gathered Z, so every rank's
    upstream gradient dG/dZ is the same (N, D) tensor. The backward all-reduces (sums) it, which
    gives W * dG/dZ, and returns this rank's rows, W * dG/dZ_r, which then flows into rank r's
    copy of the network: rank r holds W * dG/dZ_r . dZ_r/dtheta. DDP averages over ranks:
        (1/W) sum_r W * dG/dZ_r . dZ_r/dtheta = sum_r dG/dZ_r . dZ_r/dtheta = dG/dtheta,
    the single-process gradient. The invariance term is a local mean s_r; DDP's average gives
    (1/W) sum_r ds_r/dtheta = d/dtheta of the global mean when ranks hold equal batches.
    A gather without the all-reduce (or a plain ``dist.all_gather``, which has no gradient)
    gives dG/dtheta / W or only the invariance gradient: silently wrong (lightly issue #1528);
    tests/test_loss_distributed.py checks both.

    Args:
        z: (N_r, D) tensor on this rank, N_r the same on every rank.
        rows: the N_r every rank holds, if known: a different ``len(z)`` raises (a host-side
            check of the shape, no sync).
    Returns:
        (W * N_r, D) tensor; ``z`` itself when not distributed.
    Raises:
        ValueError: ``rows`` is given and ``z`` has another number of rows.

    Example (single process):
        >>> z = torch.randn(4, 3)
        >>> gather_with_grad(z) is z
        True
    """
    if rows is not None and z.shape[0] != rows:
        raise ValueError(
            f"gather_with_grad: this rank holds {z.shape[0]} rows, expected {rows}: every rank must "
            "hold the same number (the all-gather exchanges no sizes)"
        )
    if not _distributed():
        return z
    return _GatherWithGrad.apply(z)
