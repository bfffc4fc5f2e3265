"""A checkpoint write that fails (a full disk or quota) ends in one line naming the path and the space
needed; the temporary file is removed and the previous checkpoint is left intact.

Two ways: a simulated ``OSError(ENOSPC)`` from ``torch.save`` (any machine), and a real 1 MB tmpfs
(only where this process may mount one, e.g. as root in a container); the trainer's own path through
``vicreg-edu train`` on the simulated error.
"""

import errno
import os
import subprocess
import uuid

import pytest
import torch

import vicreg_edu.checkpoint as C
import vicreg_edu.trainer as T
from vicreg_edu import cli
from vicreg_edu.errors import CheckpointError


def _state(megabytes: float, fill: float) -> dict:
    return {"step": 1, "w": torch.full((int(megabytes * 1e6 / 4),), fill)}


def _check_failed_write(path, error: CheckpointError, previous_fill: float):
    text = str(error)
    assert "\n" not in text and str(path) in text and "it needs about" in text, text
    assert "temporary file was removed and the previous checkpoint.pt is kept" in text, text
    assert not path.with_name(path.name + ".tmp").exists()
    kept = torch.load(path, weights_only=True)
    assert kept["w"][0].item() == previous_fill  # the previous checkpoint, intact


def test_enospc_during_the_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    C.atomic_save(_state(0.1, 1.0), path)
    real_save = torch.save

    def save_then_disk_full(obj, f, *args, **kwargs):
        f.write(b"x" * 1000)  # part of the file is written, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save_then_disk_full)
    with pytest.raises(CheckpointError) as failed:
        C.atomic_save(_state(0.2, 2.0), path)
    assert "No space left on device; it needs about 0.2 MB" in str(failed.value)
    monkeypatch.setattr(torch, "save", real_save)
    _check_failed_write(path, failed.value, 1.0)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MB tmpfs mounted at ``tmp_path/fs`` (skipped where mounting is not allowed)."""
    mount = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        reason = done.stderr.decode().strip()[:100]
        pytest.skip(f"cannot mount a tmpfs here ({reason}); the simulated ENOSPC test covers the path")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_real_full_disk_keeps_the_previous_checkpoint(tiny_tmpfs):
    """On a 1 MB tmpfs: a 0.4 MB checkpoint, then a 0.8 MB one that does not fit beside it (torch reports
    the failed write as a RuntimeError): one line, temp file gone, the 0.4 MB checkpoint still loads."""
    path = tiny_tmpfs / "checkpoint.pt"
    C.atomic_save(_state(0.4, 1.0), path)
    with pytest.raises(CheckpointError) as failed:
        C.atomic_save(_state(0.8, 2.0), path)
    assert "it needs about 0.8 MB" in str(failed.value) and "MB free there" in str(failed.value)
    _check_failed_write(path, failed.value, 1.0)


def test_the_trainer_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys, tiny):
    """`vicreg-edu train` with a disk that fills at the second checkpoint: exit 2, one line, epoch 1's kept."""
    real_save, calls = torch.save, {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            f.write(b"x" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    cfg = tiny(tmp_path)
    monkeypatch.setattr(cli, "config_from_args", lambda args: cfg)
    assert cli.main(["train"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vicreg-edu: error: could not write the checkpoint {cfg.out_dir}/"), err
    assert "No space left on device" in err[0] and "the previous checkpoint.pt is kept" in err[0]
    monkeypatch.setattr(torch, "save", real_save)
    assert T.load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4  # epoch 1 of 4 steps
    assert not (tmp_path / "checkpoint.pt.tmp").exists()
