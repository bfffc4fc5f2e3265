"""NT-Xent, the contrastive loss of SimCLR, as the sample-contrastive baseline for VICReg.

SimCLR (Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020, Eq. 1 and Algorithm 1) normalises the 2N embeddings of a batch's two
views to the unit sphere and, for each of them, asks a softmax over the 2N - 1 others to pick its
partner (the other view of the same image) at temperature tau:

    l(i, j) = -log( exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau) )
    L = (1 / 2N) sum over the N positive pairs of [ l(2k-1, 2k) + l(2k, 2k-1) ]

with ``sim(u, v) = u.v / (|u| |v|)``. The 2N - 2 other embeddings are the *negatives*: the loss
needs them to avoid collapse, so it compares every image with every other one through a
(2N, 2N) similarity matrix, where VICReg's variance and covariance terms work on (D, D)
statistics of the embedding (``vicreg_edu.loss``).

The trainer runs it with ``Config(method="simclr", temperature=...)``; :func:`nt_xent_terms` returns
the same :class:`~vicreg_edu.loss.VICRegTerms` as the VICReg loss, so the logs, checkpoints and
collapse reports are shared: ``loss`` is NT-Xent (optimised) and the three VICReg terms of the same
embeddings are measured without gradient, for monitoring only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .loss import VICRegTerms, _check_finite, _check_pair, gather_with_grad, vicreg_loss


def nt_xent_loss(z_a: Tensor, z_b: Tensor, temperature: float = 0.5, check_finite: bool = True) -> Tensor:
    """NT-Xent (normalised temperature-scaled cross-entropy), SimCLR Eq. 1 averaged over the 2N views.

    Args:
        z_a, z_b: (N, D) embeddings of two views of the same N images (row i of each is image i);
            under ``torch.distributed`` each rank holds its (N_r, D) share and the negatives are
            the gathered global batch (:func:`~vicreg_edu.loss.gather_with_grad`).
        temperature: tau > 0; SimCLR uses 0.5 on CIFAR-10 and 0.1 on ImageNet at batch 4096.
        check_finite: raise on NaN/Inf input (one read back to the host); ``False`` lets them through.
    Returns:
        0-dim float32 tensor (float64 for float64 input). It is ``log(2N - 1)`` when all 2N
        embeddings point the same way (a collapsed encoder gets no lower than that) and tends to 0
        only as every partner's similarity goes to 1 and every negative's to -1 with tau -> 0.
    Raises:
        ValueError: shapes differ, not 2-D, integer dtype, N < 2, non-finite values, tau <= 0.

    Example (a collapsed batch: every similarity is 1, the loss is log(2N - 1)):
        >>> import math
        >>> z = torch.ones(4, 3)
        >>> abs(nt_xent_loss(z, z).item() - math.log(7)) < 1e-6
        True
    """
    _check_pair(z_a, z_b)
    if check_finite:
        _check_finite(z_a=z_a, z_b=z_b)
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    dtype = torch.float64 if z_a.dtype == torch.float64 else torch.float32
    with torch.autocast(z_a.device.type, enabled=False):
        z_a, z_b = gather_with_grad(z_a.to(dtype)), gather_with_grad(z_b.to(dtype))  # (N, D) global batch
        n = z_a.shape[0]
        z = F.normalize(torch.cat([z_a, z_b]), dim=1)  # (2N, D) on the unit sphere
        logits = z @ z.T / temperature  # (2N, 2N) cosine similarities / tau
        self_pairs = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_pairs, float("-inf"))  # k != i in the softmax
        partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # a_i <-> b_i
        return F.cross_entropy(logits, partner)  # mean over the 2N rows


def nt_xent_terms(
    z_a: Tensor, z_b: Tensor, temperature: float = 0.5, gamma: float = 1.0, eps: float = 1e-4, check_finite: bool = True
) -> VICRegTerms:
    """:func:`nt_xent_loss` as the trainer's criterion: ``loss`` is NT-Xent, the rest are measured.

    ``invariance``, ``variance`` and ``covariance`` are VICReg's unweighted s, (v_a + v_b) / 2 and
    c_a + c_b of the same (N, D) embeddings (:func:`~vicreg_edu.loss.vicreg_loss` on detached
    copies, no gradient): a SimCLR run's logs read on the same axes as a VICReg run's.

    Example:
        >>> terms = nt_xent_terms(torch.randn(8, 4), torch.randn(8, 4))
        >>> terms.loss.requires_grad, terms.variance.requires_grad
        (False, False)
    """
    loss = nt_xent_loss(z_a, z_b, temperature, check_finite=check_finite)
    with torch.no_grad():
        measured = vicreg_loss(z_a.detach(), z_b.detach(), gamma=gamma, eps=eps, check_finite=False)
    return VICRegTerms(loss, measured.invariance, measured.variance, measured.covariance)


def load_method_comparison() -> dict:
    """The stored VICReg vs SimCLR comparison (``scripts/method_comparison.py``), arranged per arm.

    Returns ``{"vicreg": [...], "simclr": [...], "temperature_sweep": [...], "temperature": tau,
    "memory": {...}, "raw": <the JSON>}``: ``vicreg`` the demo preset's runs (one record per seed,
    the run trained by the script where there is one, else the recipe search's stored run of that
    seed), ``simclr`` the runs at the chosen temperature ``tau`` (one per seed), ``temperature_sweep``
    the seed-0 SimCLR runs of every temperature tried; each record holds ``seed``, ``knn``,
    ``knn_random_init``, ``linear_probe``, ``emb_effective_rank`` and ``train_cpu_s``.
    ``memory``: peak bytes of the loss alone and of a whole demo step, per batch size.

    Raises:
        FileNotFoundError: the results file is not there (run the script).
    """
    from .results import load_results

    raw = load_results("method_comparison")
    runs = raw.get("runs", [])
    tau = raw.get("simclr_temperature")
    vicreg = {r["seed"]: r for r in raw.get("vicreg_stored", [])}
    vicreg.update({r["seed"]: r for r in runs if r["method"] == "vicreg"})
    simclr = [r for r in runs if r["method"] == "simclr" and r["temperature"] == tau]
    sweep = [r for r in runs if r["method"] == "simclr" and r["seed"] == 0]
    return {
        "vicreg": [vicreg[s] for s in sorted(vicreg)],
        "simclr": sorted(simclr, key=lambda r: r["seed"]),
        "temperature_sweep": sorted(sweep, key=lambda r: r["temperature"]),
        "temperature": tau,
        "memory": raw.get("memory", {}),
        "raw": raw,
    }
