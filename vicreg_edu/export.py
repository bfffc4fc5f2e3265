"""Backbone weights in torchvision's layout: export ours, load the official ``resnet50.pth``.

The official pretrained file (facebookresearch/vicreg README, ``resnet50.pth``) is the state dict
of their ``resnet.py`` ResNet-50: torchvision's key names (``conv1.weight``, ``bn1.running_mean``,
``layer1.0.conv1.weight``, ..., ``layer4.2.bn3.num_batches_tracked``) and **no** ``fc``, because
their ResNet ends at the pooled 2048-d features. (Their ``resnet.py`` pads the input by one
pixel and gives ``conv1`` padding 2 where torchvision gives padding 3: the same zeros, no
parameter involved, so the same tensors under the same keys are the same network.)

Our ``resnet18`` / ``resnet50`` backbones are torchvision ResNets whose ``fc`` is ``nn.Identity``
(:mod:`vicreg_edu.models`), so their state dict already has exactly that layout:

- :func:`export_backbone` writes a trainer checkpoint's backbone as such a file (float32, no ``fc``);
- :func:`load_torchvision_backbone` reads one (ours, the official ``resnet50.pth``, or a torchvision
  classification checkpoint, whose ``fc`` is dropped) into :func:`~vicreg_edu.models.build_backbone`'s model.

The ``fc`` rule, for loading an exported file into plain torchvision::

    net = torchvision.models.resnet50()
    net.fc = torch.nn.Identity()                      # the file has no fc, like the official one
    net.load_state_dict(torch.load("resnet50.pth"), strict=True)   # net(x): (B, 2048) features

or keep torchvision's classifier and load with ``strict=False``: the only missing keys are then
``fc.weight`` and ``fc.bias`` (a fresh classifier to train), and nothing is unexpected.
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path

import torch
import torchvision
from torch import nn

from .checkpoint import UNREADABLE_FILE_ERRORS, atomic_save, load_checkpoint
from .errors import CheckpointError, CheckpointNotFoundError, ConfigError, strip_ansi
from .models import build_backbone

TORCHVISION_BACKBONES = ("resnet18", "resnet50")
"""Our backbones whose state dict is a torchvision ResNet's (minus ``fc``)."""
_PREFIX = "model.backbone."  # where the backbone sits in a trainer checkpoint's "net" (VICRegWithProbe)


def torchvision_features(name: str = "resnet50") -> nn.Module:
    """``torchvision.models.<name>(weights=None)`` with ``fc = Identity``: images (B, 3, H, W) -> (B, D)."""
    net = getattr(torchvision.models, name)(weights=None)
    net.fc = nn.Identity()
    return net


def backbone_state_dict(checkpoint: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The backbone of a ``vicreg-edu train`` checkpoint: ``(state dict with torchvision keys, backbone name)``.

    Raises:
        CheckpointNotFoundError / CheckpointError: the checkpoint is missing / unreadable.
        ConfigError: its backbone has no torchvision layout (``small_cnn``, ``resnet18_cifar``).
    """
    ckpt = load_checkpoint(checkpoint)
    name = ckpt["config"].get("backbone")
    if name not in TORCHVISION_BACKBONES:
        raise ConfigError(
            f"{checkpoint}: its backbone is {name!r}; export writes a torchvision ResNet state dict, "
            f"which only {' and '.join(TORCHVISION_BACKBONES)} have"
        )
    state = {k[len(_PREFIX) :]: v.detach().cpu() for k, v in ckpt["net"].items() if k.startswith(_PREFIX)}
    if not state:
        raise CheckpointError(f"{checkpoint} is not a readable vicreg-edu checkpoint (no {_PREFIX}* weights)")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, name


def export_backbone(checkpoint: str | Path, out_path: str | Path) -> Path:
    """Write a trainer checkpoint's backbone as a torchvision ResNet state dict (the official
    ``resnet50.pth`` layout: torchvision key names, float32, no ``fc``); return ``out_path``.

    Before writing, the state dict is loaded with ``strict=True`` into
    ``torchvision.models.<backbone>()`` whose ``fc`` is ``nn.Identity`` (see the module docstring),
    so a file that torchvision would refuse is never written. The write is atomic.

    Raises:
        CheckpointNotFoundError / CheckpointError / ConfigError: see :func:`backbone_state_dict`.
    """
    state, name = backbone_state_dict(checkpoint)
    try:
        torchvision_features(name).load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            f"{checkpoint}: its backbone does not fit torchvision's {name} ({str(e).splitlines()[0]})"
        ) from e
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(state, out_path)
    return out_path


def _first_line(e: BaseException) -> str:
    """The first line of an error's text, without terminal colour codes, at most 160 characters."""
    return strip_ansi((str(e).strip().splitlines() or [type(e).__name__])[0])[:160]


def _unwrap(obj) -> dict:
    """A state dict from the usual containers: ``{"state_dict": ...}``, ``{"model": ...}``, DDP's
    ``module.`` prefix, and a whole official checkpoint (``backbone.*`` kept, the projector dropped)."""
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    state = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in obj.items()}
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    return {k: v for k, v in state.items() if not k.startswith("fc.")}  # a torchvision classifier's fc


class _Inert:
    """What a global outside the allowlist becomes when :func:`restricted_load` reads a file: a class that
    accepts any arguments and any state and does nothing (no code of the file's runs)."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __setstate__(self, state):
        pass


def _allowed_globals() -> dict:
    """The globals ``torch.load(weights_only=True)`` allows (tensors, storages, dtypes, OrderedDict)."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return _get_allowed_globals()
    except (ImportError, AttributeError):  # a torch without it: the few a state dict needs
        import collections

        return {
            "collections.OrderedDict": collections.OrderedDict,
            "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
            "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
        }


class _RestrictedUnpickler(pickle.Unpickler):
    """Tensors and containers as ``weights_only`` reads them; every other global (an optimiser's filter
    function, a numpy RNG state, a config class) becomes an inert stand-in instead of an error."""

    def find_class(self, module: str, name: str):
        allowed = _allowed_globals().get(f"{module}.{name}")
        if allowed is not None:
            return allowed
        return type(name, (_Inert,), {"__module__": f"inert:{module}"})


_restricted_pickle = types.ModuleType("vicreg_edu_restricted_pickle")
_restricted_pickle.Unpickler = _RestrictedUnpickler
_restricted_pickle.load = lambda f, **kw: _RestrictedUnpickler(f, **kw).load()
_restricted_pickle.__name__ = "vicreg_edu_restricted_pickle"


def restricted_load(path: str | Path):
    """``torch.load`` of a whole training checkpoint without running its code: the tensors come back, every
    global outside ``weights_only``'s allowlist becomes an inert stand-in (e.g. the official
    ``resnet50_fullckpt.pth``, whose LARS state pickles ``exclude_bias_and_norm`` by name)."""
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)


def read_torchvision_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a torchvision-layout state dict file (``fc`` dropped, common prefixes removed).

    Raises:
        CheckpointNotFoundError: no file at ``path``.
        CheckpointError: not a state dict of tensors (e.g. a ``vicreg-edu train`` checkpoint, which
            takes ``--checkpoint``).
    """
    path = Path(path)
    hint = (
        "expected a torchvision-layout ResNet state dict such as the official resnet50.pth or one written "
        "by `vicreg-edu export`; a `vicreg-edu train` checkpoint goes to --checkpoint"
    )
    if not path.is_file():
        raise CheckpointNotFoundError(f"no weights file at {path}; {hint}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # globals beyond tensors: a whole training checkpoint (ours, the official one)
        obj = None
    except UNREADABLE_FILE_ERRORS as e:
        raise CheckpointError(f"{path} is not a readable weights file ({_first_line(e)}); {hint}") from e
    if obj is None:
        try:
            obj = restricted_load(path)
        except UNREADABLE_FILE_ERRORS + (TypeError, IndexError, KeyError) as e:
            raise CheckpointError(f"{path} is not a readable weights file ({_first_line(e)}); {hint}") from e
    if isinstance(obj, dict) and obj.get("format") == "vicreg-edu":
        raise CheckpointError(
            f"{path} holds a trainer checkpoint: use --checkpoint {path} (--weights takes a torchvision-layout "
            "ResNet state dict such as the official resnet50.pth or resnet50_fullckpt.pth, or `vicreg-edu export`'s)"
        )
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds {type(obj).__name__}; {hint}")
    state = _unwrap(obj)
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path} is not a state dict of tensors; {hint}")
    return state


def load_torchvision_backbone(path: str | Path, backbone: str = "resnet50") -> tuple[nn.Module, int]:
    """Load a torchvision-layout file (e.g. the official ``resnet50.pth``) into our backbone.

    Returns ``(module in eval mode, repr_dim)``; the module is ``build_backbone(backbone)``'s
    torchvision ResNet with ``fc = Identity``, mapping images ``(B, 3, H, W)`` to ``(B, repr_dim)``.
    The keys must match exactly (``strict=True``) once ``fc`` and the ``module.`` / ``backbone.``
    prefixes are removed.

    Raises:
        CheckpointNotFoundError / CheckpointError: missing / unreadable file, or weights of another
            architecture (the message names a few missing and unexpected keys).
        ConfigError: ``backbone`` is not a torchvision ResNet.
    """
    if backbone not in TORCHVISION_BACKBONES:
        raise ConfigError(
            f"backbone={backbone!r}: a torchvision-layout weights file fits {' or '.join(TORCHVISION_BACKBONES)}"
        )
    state = read_torchvision_state_dict(path)
    net, dim = build_backbone(backbone)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{path} does not fit a torchvision {backbone}: {len(missing)} missing keys "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, "
            f"{len(shapes)} of another shape {shapes[:3]}"
        )
    net.load_state_dict({k: v.to(expected[k].dtype) if v.is_floating_point() else v for k, v in state.items()})
    return net.eval(), dim
