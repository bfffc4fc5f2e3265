"""vicreg_edu: learn, run and scale VICReg (Bardes, Ponce & LeCun, ICLR 2022, arXiv 2105.04906).

The names the book's chapters use, importable from here (``from vicreg_edu import train, get_config``):

=========================  ===================================================================
configuration              :class:`Config`, :func:`get_config` (named presets), :data:`FAST`
                           (``VICREG_EDU_FAST=1``: CI-sized runs)
the loss (paper Eq. 6)     :func:`vicreg_loss` (s, v, c and the weighted total),
                           :func:`invariance_loss`, :func:`variance_loss`, :func:`covariance_loss`,
                           :class:`VICRegLoss`
training                   :func:`train` -> :class:`TrainResult`; :func:`format_final`
models                     :class:`VICReg` (backbone + expander), :func:`build_model`
data and views             :class:`Shapes` (built-in dataset), :func:`load_dataset`,
                           :func:`in_memory_uint8`, :func:`make_augment_config`,
                           :class:`TwoViewBatchAugment`, :class:`TwoViewTransform`
evaluation                 :func:`load_eval_data` -> :class:`EvalData`, :func:`extract_features`,
                           :func:`knn_accuracy`, :func:`linear_probe`, :func:`load_checkpoint_model`
diagnostics and results    :func:`collapse_report`, :func:`effective_rank`, :func:`load_results`
explorers                  :class:`Explorer` (precomputed figures switched by sliders and
                           checkboxes in the browser, missing ones trained live in a kernel)
=========================  ===================================================================

Figures are in :mod:`vicreg_edu.plots`, further measures in :mod:`vicreg_edu.diagnostics`, chapter
7's sliders in :mod:`vicreg_edu.widgets`. One module per concept: ``loss``, ``views`` (what the two
views are), ``augment`` (making them from PIL images), ``batch_augment`` (the same on device batches),
``shapes`` (the built-in dataset), ``data``, ``models``, ``trainer``, ``evaluate``,
``diagnostics``, ``plots``, ``config``, ``optim``, ``checkpoint``, ``distributed``, ``errors``,
``cli`` (the only argument parser; ``python -m vicreg_edu``), ``slurm``, ``experiments`` (chapter
7's grid), ``baselines``, ``results``, ``widgets``, ``explorer``,
``playground`` (the 2-D toy of chapters 1-4), ``contrastive`` (NT-Xent, SimCLR's loss behind the
trainer's ``method`` switch), ``jpeg_decode`` and ``gpu_pipeline`` (image folders decoded and
augmented on the device: ``pipeline="gpu"``), ``memory`` (per-GPU memory and launch plans),
``linear_eval`` (the paper's evaluation protocols), ``export`` (torchvision weights).

Example:
    >>> import torch
    >>> from vicreg_edu import vicreg_loss
    >>> terms = vicreg_loss(torch.randn(32, 16), torch.randn(32, 16))
    >>> sorted(terms._fields)
    ['covariance', 'invariance', 'loss', 'variance']
"""

from .augment import TwoViewTransform
from .batch_augment import TwoViewBatchAugment
from .config import FAST, Config, get_config
from .data import in_memory_uint8, load_dataset
from .diagnostics import collapse_report, effective_rank
from .evaluate import EvalData, extract_features, knn_accuracy, linear_probe, load_checkpoint_model, load_eval_data
from .explorer import Explorer
from .loss import VICRegLoss, covariance_loss, invariance_loss, variance_loss, vicreg_loss
from .models import VICReg, build_model
from .results import load_results
from .shapes import Shapes
from .trainer import TrainResult, format_final, train
from .views import make_augment_config

__version__ = "0.1.0"
__all__ = [
    "Config",
    "get_config",
    "FAST",
    "vicreg_loss",
    "invariance_loss",
    "variance_loss",
    "covariance_loss",
    "VICRegLoss",
    "train",
    "TrainResult",
    "format_final",
    "VICReg",
    "build_model",
    "Shapes",
    "load_dataset",
    "in_memory_uint8",
    "make_augment_config",
    "TwoViewBatchAugment",
    "TwoViewTransform",
    "load_eval_data",
    "EvalData",
    "extract_features",
    "knn_accuracy",
    "linear_probe",
    "load_checkpoint_model",
    "collapse_report",
    "effective_rank",
    "load_results",
    "Explorer",
]
