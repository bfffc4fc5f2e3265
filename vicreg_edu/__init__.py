"""vicreg_edu: learn, run and scale VICReg (Bardes, Ponce & LeCun, ICLR 2022).

One module per concept: ``loss`` (the objective), ``augment`` (two views), ``data`` (datasets and
loaders), ``models`` (backbones, expander), ``train`` (the trainer), ``evaluate`` (k-NN, linear
probe), ``diagnostics`` (collapse measures), ``plots`` (figures), ``config`` (presets), ``cli``,
``checkpoint``, ``errors``, ``distributed``, ``optim``, ``slurm``, ``experiments``, ``baselines``,
``widgets``.

Example:
    >>> import torch
    >>> from vicreg_edu import vicreg_loss
    >>> terms = vicreg_loss(torch.randn(32, 16), torch.randn(32, 16))
    >>> sorted(terms._fields)
    ['covariance', 'invariance', 'loss', 'variance']
"""
from .config import Config, get_config
from .loss import VICRegLoss, covariance_loss, invariance_loss, variance_loss, vicreg_loss

__version__ = "0.1.0"
__all__ = ["Config", "get_config", "VICRegLoss", "vicreg_loss", "invariance_loss", "variance_loss",
           "covariance_loss"]
# The trainer: ``from vicreg_edu.train import train`` (not imported here to keep this import light).
