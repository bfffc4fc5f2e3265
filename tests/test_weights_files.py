"""``--weights`` reads whole training checkpoints without running their code.

The official ``resnet50_fullckpt.pth`` (facebookresearch/vicreg ``main_vicreg.py``) is
``{"epoch", "model": DDP state dict (module.backbone.*, module.projector.*), "optimizer": LARS state}``
whose param groups pickle the ``exclude_bias_and_norm`` filter function by name: ``weights_only=True``
refuses it. A small fake with the same structure (a ResNet-18 instead of a ResNet-50, the function
under a module name this process then forgets, and a pickled call that would create a folder) is read
here: the backbone comes back bitwise, nothing of the file runs. Our own trainer checkpoint passed to
``--weights`` is named as such. No message carries terminal colour codes.
"""

import collections
import os
import sys
import types

import pytest
import torch

from vicreg_edu import cli, export
from vicreg_edu.errors import CheckpointError, one_line
from vicreg_edu.models import build_backbone


class _WouldRun:
    """Unpickled by a plain ``torch.load(weights_only=False)``, this calls ``os.mkdir(marker)``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.fixture
def official_full_checkpoint(tmp_path, monkeypatch):
    """A file shaped like ``resnet50_fullckpt.pth`` (ResNet-18 inside); returns ``(path, backbone state, marker)``."""
    torch.manual_seed(0)
    net, _ = build_backbone("resnet18")
    backbone = net.state_dict()
    model = collections.OrderedDict((f"module.backbone.{k}", v) for k, v in backbone.items())
    model["module.projector.0.weight"] = torch.randn(64, 512)
    model["module.projector.1.running_mean"] = torch.zeros(64)

    def exclude_bias_and_norm(p):
        return p.ndim == 1

    exclude_bias_and_norm.__module__, exclude_bias_and_norm.__qualname__ = "main_vicreg", "exclude_bias_and_norm"
    fake = types.ModuleType("main_vicreg")
    fake.exclude_bias_and_norm = exclude_bias_and_norm
    monkeypatch.setitem(sys.modules, "main_vicreg", fake)  # so pickle can save the function by name
    marker = tmp_path / "code-ran"
    optimizer = {
        "state": {0: {"mu": torch.zeros(3)}},
        "param_groups": [
            {
                "lr": 0.2,
                "weight_decay": 1e-6,
                "weight_decay_filter": exclude_bias_and_norm,
                "lars_adaptation_filter": exclude_bias_and_norm,
                "params": [0],
                "extra": _WouldRun(marker),
            }
        ],
    }
    path = tmp_path / "resnet50_fullckpt.pth"
    torch.save({"epoch": 1000, "model": model, "optimizer": optimizer}, path)
    monkeypatch.delitem(sys.modules, "main_vicreg")  # as on a machine without the official code
    return path, backbone, marker


def test_the_official_full_checkpoint_loads_without_running_its_code(official_full_checkpoint):
    path, backbone, marker = official_full_checkpoint
    with pytest.raises(Exception, match="(?i)weights.only|unsupported global"):
        torch.load(path, weights_only=True)  # what a plain read meets
    net, dim = export.load_torchvision_backbone(path, "resnet18")
    assert dim == 512 and not marker.exists()  # the pickled os.mkdir did not run
    loaded = net.state_dict()
    assert loaded.keys() == backbone.keys()
    assert all(torch.equal(loaded[k], backbone[k]) for k in backbone)  # bitwise, projector dropped


def test_a_trainer_checkpoint_given_to_weights_is_named(tmp_path, capsys, tiny):
    from vicreg_edu.trainer import train

    train(tiny(tmp_path, max_steps=1))
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(CheckpointError) as refused:
        export.read_torchvision_state_dict(ckpt)
    assert str(refused.value).startswith(f"{ckpt} holds a trainer checkpoint: use --checkpoint {ckpt}")
    status = cli.main(["eval", "--protocol", "linear", "--weights", str(ckpt), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "holds a trainer checkpoint: use --checkpoint" in err, err
    assert "\x1b" not in err


def test_messages_carry_no_terminal_colour_codes(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(CheckpointError) as refused:
        export.read_torchvision_state_dict(garbage)
    assert "\x1b" not in str(refused.value) and str(garbage) in str(refused.value)
    assert one_line(RuntimeError("\x1b[1mWeights only load failed\x1b[0m\n  more")) == "Weights only load failed more"
