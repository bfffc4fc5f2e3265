"""Collapse diagnostics: measure complete and dimensional collapse of an embedding.

VICReg (Bardes, Ponce & LeCun, ICLR 2022, arXiv 2105.04906) exists to prevent *collapse*:

- complete collapse: every input is mapped to the same embedding, so every dimension has
  zero spread (the variance term, Sec. 3.1 eq. 1, fights this);
- dimensional collapse: embeddings spread out but live in a low-dimensional subspace, so the
  dimensions are correlated (the covariance term, Sec. 3.1 eqs. 3-4, fights this).

Every function here is a pure function of an embedding matrix ``z`` of shape ``(N, D)``
(N samples, D dimensions), float32 or float64, on any device. Inputs are detached and computed
on in float64, so they may require grad; nothing is modified. The results are plain Python
floats/ints or float64 tensors on the input's device.

Conventions (also stated in each docstring):

- standard deviations and covariances use the unbiased 1/(N-1) estimator, like the VICReg loss;
- the singular value spectrum is that of the *centred* embeddings (column means removed), so a
  complete collapse to any point -- not just to the origin -- has spectrum 0 and rank 0;
- effective rank is RankMe (Garrido et al., ICML 2023, arXiv 2210.02885); an all-zero spectrum
  has effective rank 0 and numerical rank 0 by convention.

Example::

    >>> z = torch.randn(512, 64)
    >>> report = collapse_report(z, z + 0.1 * torch.randn_like(z)).as_dict()
    >>> 60 < report["effective_rank"] <= 64  # no collapse: close to D
    True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "per_dim_std",
    "dead_fraction",
    "covariance_matrix",
    "correlation_matrix",
    "off_diagonal_energy",
    "singular_values",
    "spectrum",
    "effective_rank",
    "numerical_rank",
    "default_rank_tolerance",
    "alignment",
    "CollapseReport",
    "collapse_report",
]

RANKME_EPS = 1e-7  # the epsilon of RankMe (Garrido et al., ICML 2023, eq. 1)


# -----------------------------------------------------------------------------
# input checking


def _as_tensor(z, name: str) -> torch.Tensor:
    if isinstance(z, np.ndarray):
        z = torch.from_numpy(z)
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(z).__name__}")
    if z.is_complex() or z.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {z.dtype}")
    return z


def _check_embeddings(z, name: str = "z", min_rows: int = 1) -> torch.Tensor:
    """Validate an (N, D) embedding and return it detached, as float64, on its own device."""
    z = _as_tensor(z, name)
    if z.dim() != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) embedding matrix, got shape {tuple(z.shape)}")
    n, d = z.shape
    if d < 1:
        raise ValueError(f"{name} must have at least 1 dimension (D >= 1), got shape {(n, d)}")
    if n < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples) for this statistic, got N={n}")
    z = z.detach()
    if not torch.isfinite(z).all():
        bad = int((~torch.isfinite(z)).sum())
        raise ValueError(f"{name} contains {bad} non-finite values (NaN or Inf); expected all finite")
    return z.to(torch.float64)


def _input_eps(z) -> float:
    """Machine epsilon of the precision the numbers were given in (float64 for integers)."""
    dtype = _as_tensor(z, "z").dtype
    return torch.finfo(dtype).eps if dtype.is_floating_point else torch.finfo(torch.float64).eps


def _centre(z: torch.Tensor) -> torch.Tensor:
    """Subtract the column means. Shifting by the first row first makes constant columns
    exactly 0 (a float64 mean of 200 equal numbers is not always that number), so complete
    collapse gives an exactly zero spectrum."""
    shifted = z - z[:1]
    return shifted - shifted.mean(dim=0, keepdim=True)


# -----------------------------------------------------------------------------
# spread: the quantity the variance term acts on


def per_dim_std(z) -> torch.Tensor:
    """Standard deviation of each embedding dimension over the batch.

    This is the ``std`` inside the VICReg variance term (paper eq. 1) without its ``+ eps``:
    ``sqrt(Var(z[:, j]))`` with the unbiased 1/(N-1) variance.

    Args:
        z: embeddings, shape (N, D), N >= 2.
    Returns:
        float64 tensor of shape (D,) on z's device.
    Raises:
        ValueError: z is not 2-D, has N < 2, or holds NaN/Inf.

    Example::

        >>> per_dim_std(torch.tensor([[0., 1.], [2., 1.]]))
        tensor([1.4142, 0.0000], dtype=torch.float64)
    """
    z = _check_embeddings(z, min_rows=2)
    return z.var(dim=0, unbiased=True).sqrt()


def dead_fraction(z, threshold: float = 0.01) -> float:
    """Fraction of embedding dimensions whose std is below ``threshold`` (dead dimensions).

    Under complete collapse every dimension is dead (fraction 1.0). The threshold is absolute,
    in the embedding's units; VICReg pushes every std towards gamma = 1, so 0.01 is "1% of the
    target spread".

    Args:
        z: embeddings, shape (N, D), N >= 2.
        threshold: a dimension is dead when ``per_dim_std(z)[j] < threshold``; must be >= 0.
    Returns:
        float in [0, 1].

    Example::

        >>> dead_fraction(torch.tensor([[0., 1.], [2., 1.]]))
        0.5
    """
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    std = per_dim_std(z)
    return float((std < threshold).double().mean())


# -----------------------------------------------------------------------------
# correlation: the quantity the covariance term acts on


def covariance_matrix(z) -> torch.Tensor:
    """Covariance matrix of the embedding dimensions, as in the VICReg covariance term.

    ``C = (z - mean)^T (z - mean) / (N - 1)`` (paper eq. 3).

    Args:
        z: embeddings, shape (N, D), N >= 2.
    Returns:
        float64 tensor of shape (D, D), symmetric.

    Example::

        >>> covariance_matrix(torch.tensor([[0., 0.], [2., 2.]]))
        tensor([[2., 2.],
                [2., 2.]], dtype=torch.float64)
    """
    z = _check_embeddings(z, min_rows=2)
    zc = _centre(z)
    return zc.T @ zc / (z.shape[0] - 1)


def correlation_matrix(z) -> torch.Tensor:
    """Pearson correlation matrix of the embedding dimensions.

    ``R[i, j] = C[i, j] / (std_i * std_j)``. A dead dimension (std exactly 0) has no defined
    correlation; by convention its row and column, diagonal included, are 0, so a completely
    collapsed embedding gives the all-zero matrix (a blank heatmap) rather than NaN.

    Args:
        z: embeddings, shape (N, D), N >= 2.
    Returns:
        float64 tensor of shape (D, D), entries in [-1, 1], diagonal 1 for live dimensions.

    Example::

        >>> correlation_matrix(torch.tensor([[0., 0.], [2., -2.], [1., 5.]]))[0, 0]
        tensor(1., dtype=torch.float64)
    """
    cov = covariance_matrix(z)
    std = cov.diagonal().clamp_min(0).sqrt()
    live = std > 0
    inv = torch.where(live, 1.0 / torch.where(live, std, torch.ones_like(std)), torch.zeros_like(std))
    corr = cov * inv[:, None] * inv[None, :]
    corr = corr.clamp(-1.0, 1.0)  # rounding can give 1 + 1e-16
    corr.diagonal().copy_(live.to(corr.dtype))
    return corr


def off_diagonal_energy(z) -> float:
    """Sum of squared off-diagonal covariances divided by D: the VICReg covariance term c(Z).

    ``c(Z) = (1/D) * sum_{i != j} C[i, j]^2`` (paper eq. 4), for one branch. It is 0 exactly
    when the dimensions are decorrelated, and large when they move together (dimensional
    collapse with non-zero spread).

    Computed with the smaller Gram matrix, so the D x D matrix is not formed when N < D:
    ``sum_ij C_ij^2 = ||zc^T zc||_F^2 / (N-1)^2 = ||zc zc^T||_F^2 / (N-1)^2`` (both equal
    ``sum_k s_k^4 / (N-1)^2`` for the singular values s_k of the centred zc), minus the squared
    per-dimension variances on the diagonal.

    Args:
        z: embeddings, shape (N, D), N >= 2.
    Returns:
        float >= 0.

    Example::

        >>> off_diagonal_energy(torch.tensor([[0., 0.], [2., 2.]]))  # C = [[2, 2], [2, 2]]
        4.0
    """
    z = _check_embeddings(z, min_rows=2)
    n, d = z.shape
    zc = _centre(z)
    gram = zc @ zc.T if n < d else zc.T @ zc  # (min(N,D), min(N,D))
    frob2 = (gram**2).sum() / (n - 1) ** 2
    return _off_diagonal_energy_from(frob2, z.var(dim=0), n)


def _off_diagonal_energy_from(frob2: torch.Tensor, var: torch.Tensor, n: int) -> float:
    """(||C||_F^2 - sum_j C_jj^2) / D, clipped at 0 against rounding."""
    diag2 = (var.double() ** 2).sum()
    return max(float(frob2 - diag2), 0.0) / var.numel()


# -----------------------------------------------------------------------------
# spectrum and rank: how many directions the embeddings really use


def _resolve_method(z, method: str) -> str:
    if method not in ("auto", "svd", "gram"):
        raise ValueError(f"method must be 'auto', 'svd' or 'gram', got {method!r}")
    if method == "auto":
        low_precision = _as_tensor(z, "z").dtype in (torch.float32, torch.float16, torch.bfloat16)
        method = "gram" if low_precision else "svd"
    return method


def singular_values(z, center: bool = True, method: str = "auto") -> torch.Tensor:
    """Singular values of the (centred) embedding matrix, in decreasing order.

    Centring (the default) removes the mean embedding first, so the spectrum describes the
    *spread* of the embeddings: a complete collapse to any point has all singular values 0.
    ``center=False`` gives the spectrum of the raw matrix, as in the RankMe paper, where a
    collapse to a non-zero point has rank 1.

    Two ways to compute them (both in float64):

    - ``"svd"``: ``torch.linalg.svdvals`` of the (N, D) matrix; accurate to ~1e-16 * s_max.
    - ``"gram"``: eigenvalues of the *smaller* Gram matrix, z z^T (N x N) when N < D, else
      z^T z (D x D); their square roots are the same non-zero singular values. About 5x faster
      for N=2048, D=8192 on CPU (5 s vs 27 s on 2 cores), but small singular values are only
      resolved down to ~1e-8 * s_max, the precision float32 input already has.
    - ``"auto"`` (default): ``"gram"`` for float32/float16/bfloat16 input, ``"svd"`` for
      float64 (or integer) input, so the result is always more precise than the data.

    Args:
        z: embeddings, shape (N, D), N >= 2 when centring (N >= 1 otherwise).
        center: subtract the column means first.
        method: "auto", "svd" or "gram".
    Returns:
        float64 tensor of shape (min(N, D),), non-negative, decreasing, on z's device.

    Example::

        >>> singular_values(torch.tensor([[1., 0.], [-1., 0.]]))
        tensor([1.4142, 0.0000], dtype=torch.float64)
    """
    method = _resolve_method(z, method)
    x = _check_embeddings(z, min_rows=2 if center else 1)
    if center:
        x = _centre(x)
    if method == "svd":
        return torch.linalg.svdvals(x)
    n, d = x.shape
    gram = x @ x.T if n < d else x.T @ x  # (min(N,D), min(N,D))
    eig = torch.linalg.eigvalsh(gram)  # increasing
    return eig.clamp_min(0).sqrt().flip(0)


def spectrum(z_or_s, center: bool = True, method: str = "auto") -> torch.Tensor:
    """Singular values, largest first: of an embedding (N, D) (see :func:`singular_values`), or a
    1-D tensor of singular values checked (finite, >= 0) and sorted.

    Example:
        >>> spectrum(torch.tensor([1.0, 3.0, 2.0])).tolist()
        [3.0, 2.0, 1.0]
    """
    x = _as_tensor(z_or_s, "z_or_singular_values")
    if x.dim() == 1:
        s = x.detach().to(torch.float64)
        if s.numel() == 0:
            raise ValueError("singular values must be a non-empty 1-D tensor, got an empty one")
        if not torch.isfinite(s).all() or (s < 0).any():
            raise ValueError("singular values must be finite and >= 0")
        return s.sort(descending=True).values
    if x.dim() == 2:
        return singular_values(x, center=center, method=method)
    raise ValueError(
        f"expected an (N, D) embedding matrix or a 1-D tensor of singular values, got shape {tuple(x.shape)}"
    )


def effective_rank(z_or_singular_values, eps: float = RANKME_EPS, center: bool = True) -> float:
    """Effective rank of an embedding: RankMe (Garrido et al., ICML 2023, eq. 1).

    ``p_k = s_k / ||s||_1 + eps``,  ``erank = exp(-sum_k p_k log p_k)``,
    with s the singular values of the centred embeddings (see :func:`singular_values`).

    It is a smooth count of the directions in use: k equal non-zero singular values give k;
    an isotropic Gaussian cloud gives close to D; dimensional collapse to k directions gives
    about k. The paper's ``eps = 1e-7`` keeps log finite and adds a tiny bias (each zero singular
    value contributes ~1.6e-6 to the entropy); ``eps=0`` uses the exact entropy with 0 log 0 = 0.
    Convention: if every singular value is 0 (complete collapse) the effective rank is 0.0
    (the formula would give 0/0).

    Args:
        z_or_singular_values: embeddings (N, D), or a 1-D tensor of singular values (>= 0).
        eps: RankMe's epsilon, >= 0.
        center: centre the embeddings first (ignored for singular values).
    Returns:
        float in [0, min(N, D)] (up to eps).

    Example::

        >>> round(effective_rank(torch.tensor([1., 1., 1., 0.]), eps=0), 6)
        3.0
    """
    if not (isinstance(eps, (int, float)) and eps >= 0):
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")
    s = spectrum(z_or_singular_values, center=center)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total + eps
    entropy = -torch.special.xlogy(p, p).sum()
    return float(torch.exp(entropy))


def default_rank_tolerance(s_max: float, n: int, d: int, eps: float, method: str = "svd") -> float:
    """The tolerance ``torch.linalg.matrix_rank`` uses: ``s_max * max(N, D) * eps``.

    For singular values from the Gram matrix (``method="gram"``) it is at least
    ``s_max * sqrt(max(N, D) * eps_float64)``, the precision of that route (it only matters for
    float64 input: for float32 the first term is already ~1000x larger).
    """
    tol = s_max * max(n, d) * eps
    if method == "gram":
        tol = max(tol, s_max * math.sqrt(max(n, d) * torch.finfo(torch.float64).eps))
    return tol


def numerical_rank(z, tol: Optional[float] = None, center: bool = True, method: str = "auto") -> int:
    """Number of singular values of the centred embeddings above a tolerance.

    Default tolerance as in ``torch.linalg.matrix_rank`` (and numpy): ``s_max * max(N, D) * eps``,
    with eps the machine epsilon of z's dtype (1.19e-7 for float32, 2.2e-16 for float64), the
    precision the numbers carry. Embeddings spanning exactly k directions have rank k. By
    convention (which the formula gives by itself) an all-zero spectrum has rank 0. When the
    spectrum comes from the Gram matrix (see :func:`singular_values`; the default for float32
    input), the tolerance is raised to that route's precision (:func:`default_rank_tolerance`).

    Args:
        z: embeddings, shape (N, D), N >= 2.
        tol: absolute tolerance on singular values (>= 0), or None for the default.
        center: centre the embeddings first.
        method: spectrum method, see :func:`singular_values`.
    Returns:
        int in [0, min(N, D)] (centring also caps it at N - 1).

    Example::

        >>> numerical_rank(torch.tensor([[1., 2.], [2., 4.], [3., 6.]]))
        1
    """
    method = _resolve_method(z, method)
    s = singular_values(z, center=center, method=method)
    n, d = z.shape
    return _numerical_rank_from(s, n, d, _input_eps(z), tol, method)


def _numerical_rank_from(s: torch.Tensor, n: int, d: int, eps: float, tol: Optional[float], method: str) -> int:
    if tol is None:
        tol = default_rank_tolerance(float(s.max()), n, d, eps, method)
    elif not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0 or None, got {tol!r}")
    return int((s > tol).sum())


# -----------------------------------------------------------------------------
# alignment of the two views: the quantity the invariance term acts on


def alignment(z_a, z_b) -> tuple[float, float]:
    """How close the embeddings of two views of the same inputs are.

    Returns ``(mse, mean_cosine)``:

    - ``mse = mean over all N*D entries of (z_a - z_b)^2``: exactly the VICReg invariance term
      s(Z, Z') (paper eq. 5, ``F.mse_loss``); 0 for identical views;
    - ``mean_cosine = mean_i cos(z_a[i], z_b[i])``: 1 for identical (non-zero) rows, scale-free.
      A zero row has cosine 0 (``F.cosine_similarity``'s convention, eps = 1e-8).

    Args:
        z_a, z_b: embeddings of the two views, same shape (N, D), N >= 1, row i of each from the
            same input.
    Returns:
        tuple of two floats.

    Example::

        >>> z = torch.randn(8, 4)
        >>> alignment(z, z)
        (0.0, 1.0)
    """
    a = _check_embeddings(z_a, "z_a")
    b = _check_embeddings(z_b, "z_b")
    if a.shape != b.shape:
        raise ValueError(f"z_a and z_b must have the same shape (N, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"z_a and z_b must be on the same device, got {a.device} and {b.device}")
    mse = float(F.mse_loss(a, b))
    cos = float(F.cosine_similarity(a, b, dim=1).mean().clamp(-1.0, 1.0))
    return mse, cos


# -----------------------------------------------------------------------------
# a dimensional collapse made by hand, for teaching


def low_rank_copy(z, rank: int, basis=None, keep_std: bool = True) -> torch.Tensor:
    """A dimensionally collapsed copy of ``z``: its rows projected on ``rank`` principal directions.

    The centred rows of ``z`` are projected on the top ``rank`` right singular vectors of the
    centred ``basis`` (``z`` itself when None), and the column means of ``z`` are added back. With
    ``keep_std`` every column is then rescaled so that, on ``basis``, it keeps the standard
    deviation it had (unbiased, as :func:`per_dim_std`): each dimension keeps its spread while all
    of them move together in ``rank`` directions, the dimensional collapse of a run whose variance
    term is active (Jing et al., ICLR 2022), seen by the effective rank (<= ``rank``) and the
    covariance term, not by the std. Both the directions and the scales come from ``basis``, so
    ``low_rank_copy(z_b, k, basis=z_a)`` applies to the second view the same linear map as
    ``low_rank_copy(z_a, k)`` to the first. A column whose projection has no spread stays
    constant. Rescaling columns keeps the rank: the result has numerical rank <= ``rank``.

    Args:
        z: embeddings, shape (N, D), N >= 2.
        rank: number of directions kept, 1 <= rank <= min(N, D) of ``basis``.
        basis: (M, D) embeddings whose principal directions are used, or None for ``z``.
        keep_std: rescale each column to ``z``'s per-dimension std (default) or leave the projection.
    Returns:
        float64 tensor (N, D) on z's device.
    Raises:
        ValueError: bad shapes, NaN/Inf, or ``rank`` out of range.

    Example::

        >>> z = torch.randn(256, 32)
        >>> low = low_rank_copy(z, 3)
        >>> effective_rank(low) < 3.01, bool(torch.allclose(per_dim_std(low), per_dim_std(z)))
        (True, True)
    """
    x = _check_embeddings(z, min_rows=2)
    ref = x if basis is None else _check_embeddings(basis, "basis", min_rows=2)
    if ref.shape[1] != x.shape[1] or ref.device != x.device:
        raise ValueError(
            f"basis must have z's D = {x.shape[1]} columns and its device, got {tuple(ref.shape)} on {ref.device}"
        )
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(ref.shape):
        raise ValueError(f"rank must be an integer in [1, {min(ref.shape)}] (min(N, D) of the basis), got {rank!r}")
    directions = torch.linalg.svd(_centre(ref), full_matrices=False).Vh[:rank]  # (rank, D)
    project = directions.T @ directions  # (D, D)
    if keep_std:
        spread = (_centre(ref) @ project).std(dim=0, unbiased=True)
        alive = spread > 1e-12 * spread.max()  # below: rounding noise of a column the directions miss
        project = project * torch.where(alive, ref.std(dim=0, unbiased=True) / spread.clamp(min=1e-300), 0.0)
    mean = x.mean(dim=0, keepdim=True)
    return mean + (x - mean) @ project


# -----------------------------------------------------------------------------
# everything at once, for the trainer's per-epoch log and the notebooks


@dataclass
class CollapseReport:
    """All collapse diagnostics of one embedding batch (see :func:`collapse_report`).

    ``alignment_mse`` / ``alignment_cosine`` are None when only one view was given.
    """

    n: int
    dim: int
    std_mean: float
    std_min: float
    dead_fraction: float
    effective_rank: float
    numerical_rank: int
    off_diagonal_energy: float
    alignment_mse: Optional[float] = None
    alignment_cosine: Optional[float] = None

    def as_dict(self) -> dict:
        """Flat dict of floats/ints (JSON-ready); the alignment keys are left out when None."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def collapse_report(
    z_a,
    z_b=None,
    threshold: float = 0.01,
    tol: Optional[float] = None,
    eps: float = RANKME_EPS,
    method: str = "auto",
) -> CollapseReport:
    """Every collapse diagnostic of a batch of embeddings, in one cheap pass.

    The single-embedding statistics (std, dead fraction, ranks, off-diagonal energy) are those
    of ``z_a``; ``z_b``, if given, is only used for the alignment. Cost: one per-dimension
    variance and one spectrum (:func:`singular_values`; with the default ``method="auto"``
    float32 input uses the float64 Gram matrix of the smaller side: for N=2048, D=8192, about
    8 s on 2 CPU cores and 0.04 s on an H100; float64 input takes the exact SVD, 0.35 s on an
    H100, pass ``method="gram"`` for speed). The off-diagonal energy is derived from the
    spectrum, so the D x D covariance matrix is never formed.

    Args:
        z_a: embeddings, shape (N, D), N >= 2.
        z_b: embeddings of the second view, same shape, or None.
        threshold: dead-dimension threshold (see :func:`dead_fraction`).
        tol: numerical-rank tolerance (see :func:`numerical_rank`); None for the default.
        eps: RankMe epsilon (see :func:`effective_rank`).
        method: spectrum method (see :func:`singular_values`).
    Returns:
        CollapseReport; ``.as_dict()`` has keys n, dim, std_mean, std_min, dead_fraction,
        effective_rank, numerical_rank, off_diagonal_energy[, alignment_mse, alignment_cosine].

    Example::

        >>> r = collapse_report(torch.ones(16, 8))  # complete collapse
        >>> r.dead_fraction, r.effective_rank, r.numerical_rank
        (1.0, 0.0, 0)
    """
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    z = _check_embeddings(z_a, "z_a", min_rows=2)
    n, d = z.shape
    var = z.var(dim=0, unbiased=True)
    std = var.sqrt()
    method = _resolve_method(z_a, method)
    s = singular_values(z_a, center=True, method=method)
    mse = cos = None
    if z_b is not None:
        mse, cos = alignment(z_a, z_b)
    return CollapseReport(
        n=n,
        dim=d,
        std_mean=float(std.mean()),
        std_min=float(std.min()),
        dead_fraction=float((std < threshold).double().mean()),
        effective_rank=effective_rank(s, eps=eps),
        numerical_rank=_numerical_rank_from(s, n, d, _input_eps(z_a), tol, method),
        off_diagonal_energy=_off_diagonal_energy_from((s**4).sum() / (n - 1) ** 2, var, n),
        alignment_mse=mse,
        alignment_cosine=cos,
    )


# -----------------------------------------------------------------------------
# 2-D views of the embeddings (plots.plot_embedding_2d draws them)
