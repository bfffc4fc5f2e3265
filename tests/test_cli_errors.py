"""Bad inputs get one line ``vicreg-edu: error: ...`` on stderr and exit status 2, never a traceback.

The table runs in-process (``cli.main(argv)`` with capsys); almost every case fails while the
config is validated, before any data is read, so the whole table takes seconds. A few cases run
as real processes: the console entry point, ``--debug`` / ``VICREG_EDU_DEBUG=1`` (traceback shown),
and ``python -m vicreg_edu train`` under torchrun (only rank 0 prints).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
from PIL import Image
from conftest import ROOT, _subprocess_env as subprocess_env, as_set_args

from vicreg_edu import cli

NO_GPU = not torch.cuda.is_available()


def run(argv, capsys) -> tuple[int, str, str]:
    """``cli.main(argv)`` -> (exit status, stdout, stderr); argparse's own errors exit through SystemExit."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad files and folders, written once: garbage / foreign checkpoints, empty and corrupt datasets."""
    root = tmp_path_factory.mktemp("bad")
    (root / "garbage.pt").write_bytes(b"this is not a checkpoint\n" * 10)
    torch.save({"state_dict": {"w": torch.zeros(2)}}, root / "foreign.pt")  # a .pt file of another program
    torch.save([1, 2, 3], root / "list.pt")
    (root / "empty_cifar" / "cifar-10-batches-py").mkdir(parents=True)
    (root / "empty_folder" / "train").mkdir(parents=True)
    (root / "empty_folder" / "val").mkdir(parents=True)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (root / "corrupt" / split / cls).mkdir(parents=True)
            for i in range(4):
                (root / "corrupt" / split / cls / f"{i}.png").write_bytes(b"\x89PNG but not really an image")
    for cls in ("a", "b"):  # readable val images, unreadable train images: the error comes from a loader worker
        for split in ("train", "val"):
            (root / "corrupt_train" / split / cls).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (20, 20), 60 * i).save(root / "corrupt_train" / "val" / cls / f"{i}.png")
            (root / "corrupt_train" / "train" / cls / f"{i}.jpg").write_bytes(b"\xff\xd8 truncated")
    (root / "a_file").write_text("not a folder")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real 2-step checkpoint (for the resume-with-another-recipe case)."""
    from conftest import _tiny

    from vicreg_edu.trainer import train

    out = tmp_path_factory.mktemp("trained")
    train(_tiny(out, max_steps=2))
    return out / "checkpoint.pt"


def T(*items):
    """``train --set`` with the tiny sizes plus ``items`` (later items win)."""
    return ["train", "--set", *as_set_args(), *items]


CASES = [  # (id, argv as a function of the bad files' folder and of tmp_path, regex the message must match)
    # --- the config: keys, syntax, types ---
    ("unknown key", lambda f, t: T("colour=red"), r"unknown config key\(s\) \['colour'\]"),
    ("--set without =", lambda f, t: T("epochs"), r"--set expects key=value, got 'epochs'"),
    ("epochs=abc", lambda f, t: T("epochs=abc"), r"epochs='abc' has the wrong type .*integer >= 1"),
    ("bool field gets a word", lambda f, t: T("progress=maybe"), r"'progress' expects true/false"),
    ("base_lr=fast", lambda f, t: T("base_lr=fast"), r"base_lr='fast' has the wrong type \(str\): .*number > 0"),
    ("warmup_epochs=inf", lambda f, t: T("warmup_epochs=inf"), r"warmup_epochs=inf is out of range"),
    # --- ranges ---
    ("epochs=-1", lambda f, t: T("epochs=-1"), r"epochs=-1 is out of range: epochs must be an integer >= 1"),
    ("--epochs 0", lambda f, t: T() + ["--epochs", "0"], r"epochs=0 is out of range"),
    ("batch_size=1", lambda f, t: T("batch_size=1"), r"batch_size=1 is out of range: .*>= 2"),
    ("base_lr=nan", lambda f, t: T("base_lr=nan"), r"base_lr=nan is out of range: base_lr must be a number > 0"),
    ("base_lr=0", lambda f, t: T("base_lr=0"), r"base_lr=0.0 is out of range"),
    ("gamma=-1", lambda f, t: T("gamma=-1"), r"gamma=-1.0 is out of range: gamma must be a number > 0"),
    ("eps=0", lambda f, t: T("eps=0"), r"eps=0.0 is out of range: eps must be a number > 0"),
    ("std_coeff=-5", lambda f, t: T("std_coeff=-5"), r"std_coeff=-5.0 is out of range: .*>= 0"),
    ("all coefficients 0", lambda f, t: T("sim_coeff=0", "std_coeff=0", "cov_coeff=0"), r"are all 0"),
    ("weight_decay=-1", lambda f, t: T("weight_decay=-1"), r"weight_decay=-1.0 is out of range"),
    ("momentum=1.5", lambda f, t: T("momentum=1.5"), r"momentum=1.5 is out of range: .*<= 1"),
    ("train_size=-3", lambda f, t: T("train_size=-3"), r"train_size=-3 is out of range"),
    ("log_every=0", lambda f, t: T("log_every=0"), r"log_every=0 is out of range"),
    ("seed=-1", lambda f, t: T("seed=-1"), r"seed=-1 is out of range"),
    # --- names ---
    ("bad expander", lambda f, t: T("expander=512-x"), r"expander='512-x'.*'x' is not a positive integer"),
    ("unknown backbone", lambda f, t: T("backbone=vgg16"), r"backbone='vgg16' is unknown: .*resnet50"),
    ("unknown amp", lambda f, t: T("amp=fp8"), r"amp='fp8' is unknown: amp must be one of auto, bf16"),
    ("unknown optimizer", lambda f, t: T("optimizer=adam"), r"optimizer='adam' is unknown: .*lars, sgd, adamw"),
    ("unknown dataset", lambda f, t: T("dataset=mnist"), r"dataset='mnist' is unknown"),
    ("unknown augment recipe", lambda f, t: T("augment=strong"), r"augment='strong' is not a recipe"),
    ("unknown aug field", lambda f, t: T("aug.blurr=1"), r"unknown AugmentConfig field\(s\) \['blurr'\]"),
    ("aug probability > 1", lambda f, t: T("aug.jitter_p=2"), r"jitter_p is a probability"),
    ("unknown dtype", lambda f, t: T("dtype=float16"), r"dtype='float16' is unknown"),
    ("float64 with bf16", lambda f, t: T("dtype=float64", "amp=bf16"), r"dtype=float64 needs amp=none"),
    ("unknown preset", lambda f, t: ["train", "--preset", "imagenet"], r"invalid choice: 'imagenet'"),
    # --- the machine ---
    pytest.param(
        "device=cuda without a GPU",
        lambda f, t: T("device=cuda"),
        r"no CUDA GPU is available.*use device=cpu",
        marks=pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU"),
    ),
    ("device=tpu", lambda f, t: T("device=tpu"), r"device='tpu' is not a device"),
    (
        "unwritable out_dir",
        lambda f, t: T(f"out_dir={f / 'a_file' / 'run'}"),
        r"out_dir=.*a_file/run' is not a writable",
    ),
    # --- data ---
    (
        "missing CIFAR folder",
        lambda f, t: T("dataset=cifar10", "augment=cifar", f"data_dir={f / 'nowhere'}", f"out_dir={t}"),
        r"CIFAR-10 not found: expected the folder .*nowhere",
    ),
    (
        "empty CIFAR folder",
        lambda f, t: T("dataset=cifar10", "augment=cifar", f"data_dir={f / 'empty_cifar'}", f"out_dir={t}"),
        r"CIFAR-10 .*empty_cifar.* incomplete",
    ),
    (
        "imagefolder without data_dir",
        lambda f, t: T("dataset=imagefolder", "augment=imagenet"),
        r"dataset=imagefolder needs data_dir",
    ),
    (
        "missing ImageFolder",
        lambda f, t: T("dataset=imagefolder", "augment=imagenet", f"data_dir={f / 'nowhere'}", f"out_dir={t}"),
        r"expected the folder .*nowhere/train",
    ),
    (
        "empty ImageFolder",
        lambda f, t: T("dataset=imagefolder", "augment=imagenet", f"data_dir={f / 'empty_folder'}", f"out_dir={t}"),
        r"empty_folder/train holds no images",
    ),
    (
        "corrupt image file",
        lambda f, t: T(
            "dataset=imagefolder",
            "augment=imagenet",
            f"data_dir={f / 'corrupt'}",
            "aug.size=16",
            "batch_size=4",
            "diag_size=4",
            f"out_dir={t}",
        ),
        r"cannot read the image file .*corrupt/(train|val)/a/\d\.png",
    ),
    (
        "corrupt image in a loader worker",
        lambda f, t: T(
            "dataset=imagefolder",
            "augment=imagenet",
            f"data_dir={f / 'corrupt_train'}",
            "aug.size=16",
            "batch_size=4",
            "diag_size=4",
            "num_workers=1",
            f"out_dir={t}",
        ),
        r"error: cannot read the image file .*corrupt_train/train/[ab]/\d\.jpg",
    ),
    (
        "batch larger than the data",
        lambda f, t: T("train_size=100", "batch_size=128", f"out_dir={t}"),
        r"training set \(100 images\) is smaller than one batch \(batch_size=128\)",
    ),
    # --- checkpoints ---
    (
        "eval: missing checkpoint",
        lambda f, t: ["eval", "--checkpoint", f / "missing.pt"],
        r"no checkpoint at .*missing\.pt",
    ),
    (
        "eval: garbage checkpoint",
        lambda f, t: ["eval", "--checkpoint", f / "garbage.pt"],
        r"garbage\.pt is not a readable vicreg-edu checkpoint",
    ),
    (
        "eval: foreign checkpoint",
        lambda f, t: ["eval", "--checkpoint", f / "foreign.pt"],
        r"foreign\.pt is not a readable vicreg-edu checkpoint \(it holds a dict without",
    ),
    (
        "eval: a list in a .pt",
        lambda f, t: ["eval", "--checkpoint", f / "list.pt"],
        r"list\.pt is not a readable vicreg-edu checkpoint \(it holds a list",
    ),
    (
        "eval: --epochs 0",
        lambda f, t: ["eval", "--checkpoint", f / "garbage.pt", "--epochs", "0"],
        r"expected a positive integer, got 0",
    ),
    (
        "eval: unknown method",
        lambda f, t: ["eval", "--checkpoint", f / "garbage.pt", "--method", "svm"],
        r"invalid choice: 'svm'",
    ),
    pytest.param(
        "eval: cuda without a GPU",
        lambda f, t: ["eval", "--checkpoint", f / "garbage.pt", "--device", "cuda"],
        r"no CUDA GPU is available.*use device=cpu",
        marks=pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU"),
    ),
    (
        "resume: missing path",
        lambda f, t: T(f"out_dir={t}") + ["--resume", f / "missing.pt"],
        r"resume='.*missing\.pt': no checkpoint at",
    ),
    (
        "resume: garbage checkpoint",
        lambda f, t: T(f"out_dir={t}") + ["--resume", f / "garbage.pt"],
        r"garbage\.pt is not a readable vicreg-edu checkpoint",
    ),
    (
        "resume: foreign checkpoint",
        lambda f, t: T(f"out_dir={t}") + ["--resume", f / "foreign.pt"],
        r"foreign\.pt is not a readable vicreg-edu checkpoint",
    ),
]


def _id(case):
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize("name, argv, message", CASES, ids=[_id(c) for c in CASES])
def test_bad_input_is_one_clean_line(name, argv, message, files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a case that wrongly trains writes its runs/ here
    code, out, err = run(argv(files, tmp_path / "run"), capsys)
    assert code == 2, (code, out[-2000:], err[-2000:])
    assert "Traceback" not in out + err, err
    last = err.strip().splitlines()[-1]
    assert re.search(r"^vicreg-edu( \w+)?: error: ", last), err
    assert re.search(message, last), f"{message!r} not in {last!r}"
    if "usage:" not in err:  # our own errors (argparse's add the usage above their line)
        assert err.count("\n") == 1, err


def test_resume_with_another_recipe_is_one_clean_line(trained, tmp_path, capsys):
    code, _, err = run(T("max_steps=4", "cov_coeff=2.0", f"out_dir={tmp_path}") + ["--resume", trained], capsys)
    assert code == 2 and "Traceback" not in err
    assert re.search(r"^vicreg-edu: error: cannot resume: .*cov_coeff: checkpoint 0.5 vs now 2.0", err), err


def test_real_bugs_still_raise(monkeypatch, capsys):
    import vicreg_edu.trainer

    def broken(cfg):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(vicreg_edu.trainer, "train", broken)
    with pytest.raises(ZeroDivisionError):
        cli.main(T())


def test_submit_without_submitit_is_a_clean_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if submitit were not installed
    code, _, err = run(["submit", "--", "--preset", "demo"], capsys)
    assert code == 2 and "Traceback" not in err
    assert re.search(r"^vicreg-edu: error: submitit is not installed: pip install 'vicreg-edu\[slurm\]'", err), err


def test_help_lists_commands(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in ("train", "eval", "submit", "presets"):
        assert command in out
    assert "exits with status 2" in out.replace("\n", " ") or "exit with status 2" in out.replace("\n", " ")


# ----------------------------------------------------------------------------------------------
# real processes


def _proc(args, **env):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**subprocess_env(), **env}, capture_output=True, text=True, timeout=300
    )


def test_console_entry_point_and_debug_flag():
    bad = ["-m", "vicreg_edu.cli", "train", "--set", "gamma=-1"]
    proc = _proc(bad)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == "vicreg-edu: error: gamma=-1.0 is out of range: gamma must be a number > 0\n"
    for debug in (_proc(bad + ["--debug"]), _proc(bad, VICREG_EDU_DEBUG="1")):
        assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError: gamma" in debug.stderr


def test_torchrun_only_rank_0_prints():
    base = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "vicreg_edu", "train"]
    proc = _proc(base + ["--set", "std_coeff=-5"])
    assert proc.returncode != 0
    assert proc.stderr.count("vicreg-edu: error: std_coeff=-5.0 is out of range") == 1, proc.stderr[-3000:]
    assert "vicreg_edu/" not in proc.stderr  # no frame of ours: torchrun's own summary only


def test_ranks_other_than_0_print_nothing(monkeypatch, capsys):
    """Under torchrun every rank parses the same arguments; only rank 0 reports (all exit 2)."""
    monkeypatch.setenv("RANK", "1")
    assert cli.main(["train", "--set", "gamma=0"]) == 2
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--no-such-flag"])
    assert exit_.value.code == 2 and capsys.readouterr() == ("", "")
    monkeypatch.setenv("RANK", "0")
    assert cli.main(["train", "--set", "gamma=0"]) == 2
    assert capsys.readouterr().err == "vicreg-edu: error: gamma=0.0 is out of range: gamma must be a number > 0\n"
