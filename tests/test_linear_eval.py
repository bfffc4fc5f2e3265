"""The paper's evaluation (``linear_eval``) and the torchvision export (``export``) on CPU.

The data is a tiny ImageFolder in ImageNet's on-disk format (synset-like folders ``n0000000X``,
``<synset>_<k>.JPEG`` files written by PIL, 64x64), evaluated at crop 32 / resize 36 so every
run takes about a second. The backbone is a small CNN inside a checkpoint in the trainer's format
(``checkpoint.training_state``), with BatchNorm running statistics that are not the defaults, so
"frozen in eval mode" is visible. The ResNet-50 round trip builds a real ResNet-50.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from conftest import ROOT, _subprocess_env as subprocess_env
from PIL import Image
from torch import nn

from vicreg_edu import cli
from vicreg_edu import linear_eval as L
from vicreg_edu.checkpoint import atomic_save, rng_state, training_state
from vicreg_edu.config import get_config
from vicreg_edu.errors import CheckpointError, ConfigError, DataError, DataNotFoundError
from vicreg_edu.export import export_backbone, load_torchvision_backbone, torchvision_features
from vicreg_edu.models import VICRegWithProbe, build_model

SYNSETS = [f"n{i:08d}" for i in range(1, 7)]  # n00000001 ... n00000006
TRAIN_PER_CLASS, VAL_PER_CLASS = 8, 3
SMALL = dict(epochs=2, batch_size=16, lr_head=0.05, crop_size=32, resize_size=36, workers=0, log_every=1)


def write_imagenet_like(root, garbage=()):
    """``root/{train,val}/<synset>/<synset>_<k>.JPEG``; the names in ``garbage`` get bytes that are no image."""
    rng = np.random.default_rng(0)
    for split, n in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        for c, synset in enumerate(SYNSETS):
            (root / split / synset).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                name = f"{synset}_{k + (100 if split == 'val' else 0)}.JPEG"
                if name in garbage:
                    (root / split / synset / name).write_bytes(b"not a JPEG\n" * 20)
                    continue
                colour = np.array([40 * c, 255 - 40 * c, 120]) + rng.integers(-20, 20, 3)
                arr = np.clip(colour + rng.normal(0, 25, (64, 64, 3)), 0, 255).astype(np.uint8)
                arr[: 8 * (c + 1)] = 255 - arr[: 8 * (c + 1)]  # a class-dependent band
                Image.fromarray(arr).save(root / split / synset / name, quality=90)
    return root


def write_trainer_checkpoint(path, backbone="small_cnn", expander="32-16", data_dir=None, seed=0):
    """A checkpoint in the trainer's format; parameters perturbed, BatchNorm statistics set by a forward pass."""
    cfg = get_config(
        "demo",
        backbone=backbone,
        expander=expander,
        dataset="imagefolder",
        augment="imagenet",
        data_dir=str(data_dir or path.parent),
    )
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for name, t in model.named_parameters():
            t.add_(torch.randn_like(t) * t.abs().mean().clamp_min(0.05) * 0.5)  # no zero-init BN weights left
        for m in model.modules():  # running statistics of the activations, as after training (not 0 / 1)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = None
        model.train()(torch.randn(16, 3, 32, 32))
        model.eval()
    net = VICRegWithProbe(model, 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    state = training_state(
        net,
        opt,
        torch.optim.SGD(net.probe.parameters(), lr=0.1),
        torch.amp.GradScaler("cpu", enabled=False),
        1,
        0.1,
        cfg,
        [rng_state()],
    )
    atomic_save(state, path)
    return path, model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_imagenet_like(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="module")
def trainer_ckpt(tmp_path_factory, folder):
    return write_trainer_checkpoint(tmp_path_factory.mktemp("run") / "checkpoint.pt", data_dir=folder)[0]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, folder, trainer_ckpt):
    """The linear protocol, uninterrupted, 1 process: (result, backbone state before, after, out_dir)."""
    backbone, dim, _ = L.load_backbone(checkpoint=trainer_ckpt)
    before = copy.deepcopy(backbone.state_dict())
    out = tmp_path_factory.mktemp("one")
    result = L.run_protocol(backbone, dim, folder, L.protocol_config("linear", **SMALL), out, device="cpu")
    return result, before, backbone.state_dict(), out


def head_of(out_dir):
    return torch.load(out_dir / L.CHECKPOINT_NAME, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------------------------
# (a) the linear protocol end to end


def test_official_hyper_parameters():
    lin, semi1, semi10 = (
        L.protocol_config(),
        L.protocol_config("semi", 1, subset="s"),
        L.protocol_config("semi", 10, subset="s"),
    )
    assert (lin.epochs, lin.batch_size, lin.lr_head, lin.weight_decay, lin.momentum) == (100, 256, 0.02, 1e-6, 0.9)
    assert (lin.crop_size, lin.resize_size, lin.finetune) == (224, 256, False)
    assert (semi1.epochs, semi1.lr_backbone, semi1.lr_head, semi1.weight_decay) == (20, 0.03, 0.08, 0.0)
    assert (semi10.epochs, semi10.lr_backbone, semi10.lr_head, semi10.finetune) == (20, 0.01, 0.1, True)
    assert L.protocol_config("semi", 10, subset="s", lr_head=0.2, epochs=None).lr_head == 0.2  # overridable


def test_linear_protocol_one_process(one_process, folder):
    result, before, after, out = one_process
    assert result["finished"] and result["epoch"] == 2 and len(result["history"]) == 2
    assert (result["train_size"], result["val_size"], result["num_classes"]) == (48, 18, 6)
    for key in ("top1", "top5", "best_top1", "best_top5"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["top1"] <= result["top5"] and result["top1"] > 0.4  # learnt: chance is 1/6
    ckpt = head_of(out)
    assert ckpt["format"] == "vicreg-edu-eval" and ckpt["epoch"] == 2 and ckpt["backbone"] is None
    assert ckpt["head"]["weight"].shape == (6, 128)
    assert json.loads((out / L.RESULTS_NAME).read_text())["top1"] == result["top1"]
    # frozen: parameters *and* BatchNorm running statistics untouched (the backbone ran in eval mode)
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the head was trained: far from its N(0, 0.01) start, and the cosine lr halved in epoch 2
    g = torch.Generator().manual_seed(0)
    assert (ckpt["head"]["weight"] - torch.randn((6, 128), generator=g) * 0.01).abs().max() > 1e-2
    assert [h["lr_head"] for h in result["history"]] == [0.05, 0.025]


def test_views_are_keyed_by_seed_epoch_index(folder):
    train = L.load_folders(folder, L.EvalConfig(crop_size=32, resize_size=36))[0]
    views = L.KeyedViews(train, L.train_transform(L.EvalConfig(crop_size=32)), seed=0)
    a, b = views[(5, 1)][0], views[(5, 1)][0]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    c = views[(5, 1)][0]
    assert torch.equal(a, b) and torch.equal(a, c) and a.shape == (3, 32, 32)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert not torch.equal(a, views[(5, 2)][0])  # the same image in another epoch: another view
    assert not torch.equal(a, L.KeyedViews(train, views.transform, seed=1)[(5, 1)][0])


def test_global_batches_split_across_processes():
    one = list(L.GlobalBatchSampler(50, 16, 0, 1, seed=3))
    two = [list(L.GlobalBatchSampler(50, 16, r, 2, seed=3)) for r in range(2)]
    assert len(one) == 48 and all(len(t) == 24 for t in two)  # 3 whole global batches, the last 2 images dropped
    for k in range(3):  # the k-th local batches of the 2 processes make the k-th global batch
        assert sorted(one[16 * k : 16 * (k + 1)]) == sorted(two[0][8 * k : 8 * (k + 1)] + two[1][8 * k : 8 * (k + 1)])
    with pytest.raises(ConfigError, match="not divisible by the number of processes 3"):
        L.GlobalBatchSampler(50, 16, 0, 3)


# ----------------------------------------------------------------------------------------------
# (b) 2 gloo processes (torchrun, DataLoader workers) == 1 process (no workers)


@pytest.mark.slow
def test_two_processes_equal_one_process(one_process, folder, trainer_ckpt, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "vicreg_edu",
        "eval",
        "--protocol",
        "linear",
        "--checkpoint",
        trainer_ckpt,
        "--data-dir",
        folder,
        "--out-dir",
        out,
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--lr-head",
        "0.05",
        "--crop-size",
        "32",
        "--resize-size",
        "36",
        "--workers",
        "1",
        "--device",
        "cpu",
    ]
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world=2" in proc.stdout and re.search(r"top-1 \d+\.\d\d%  top-5 \d+\.\d\d%", proc.stdout), proc.stdout
    result, _, _, one_out = one_process
    ddp, one = head_of(out), head_of(one_out)
    for k in ("weight", "bias"):
        torch.testing.assert_close(ddp["head"][k], one["head"][k], rtol=1e-5, atol=5e-7)  # measured: 6e-8 apart
    assert [(h["top1"], h["top5"]) for h in ddp["history"]] == [(h["top1"], h["top5"]) for h in result["history"]]
    # the tolerance has teeth: another seed (batch order, views, head init) moves the head far more
    backbone, dim, _ = L.load_backbone(checkpoint=trainer_ckpt)
    L.run_protocol(
        backbone, dim, folder, L.protocol_config("linear", **{**SMALL, "seed": 1}), tmp_path / "s1", device="cpu"
    )
    assert (head_of(tmp_path / "s1")["head"]["weight"] - one["head"]["weight"]).abs().max() > 1e-3


# ----------------------------------------------------------------------------------------------
# (c) resume


def test_a_stop_signal_mid_epoch_checkpoints_and_resumes_exactly(one_process, folder, trainer_ckpt, tmp_path, capsys):
    """SIGUSR2 during epoch 1's second step (of 3): the protocol finishes the step, writes eval_checkpoint.pt at
    it, says so in one line and raises Preempted (exit 140); --resume auto continues at that step and ends
    with the uninterrupted run's head, bitwise."""
    import os
    import signal
    import types

    from vicreg_edu.distributed import Preempted

    calls = {"n": 0}

    def cross_entropy(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGUSR2)
        return torch.nn.functional.cross_entropy(*args, **kwargs)

    backbone, dim, _ = L.load_backbone(checkpoint=trainer_ckpt)
    real_f = L.F
    L.F = types.SimpleNamespace(cross_entropy=cross_entropy)
    try:
        with pytest.raises(Preempted) as stopped:
            L.run_protocol(backbone, dim, folder, L.protocol_config("linear", **SMALL), tmp_path, device="cpu")
    finally:
        L.F = real_f
    assert stopped.value.code == 128 + signal.SIGUSR2
    line = f"vicreg-edu: stopped by SIGUSR2 at epoch 1 step 2/3; evaluation checkpoint written to {tmp_path}"
    assert capsys.readouterr().err.startswith(line)
    saved = head_of(tmp_path)
    assert (saved["epoch"], saved["step"], saved["history"]) == (0, 2, [])
    backbone, dim, _ = L.load_backbone(checkpoint=trainer_ckpt)
    resumed = L.run_protocol(
        backbone, dim, folder, L.protocol_config("linear", **SMALL), tmp_path, resume="auto", device="cpu"
    )
    assert "resumed from" in capsys.readouterr().out
    result, _, _, one_out = one_process
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed["history"]] == [
        {k: v for k, v in h.items() if k != "seconds"} for h in result["history"]
    ]
    a, b = head_of(tmp_path), head_of(one_out)
    assert all(torch.equal(a["head"][k], b["head"][k]) for k in ("weight", "bias"))


def test_resume_equals_uninterrupted(one_process, folder, trainer_ckpt, tmp_path):
    cfg = L.protocol_config("linear", **SMALL)
    backbone, dim, _ = L.load_backbone(checkpoint=trainer_ckpt)
    first = L.run_protocol(
        backbone, dim, folder, L.protocol_config("linear", **SMALL, max_epochs=1), tmp_path, device="cpu"
    )
    assert not first["finished"] and first["epoch"] == 1 and "--resume auto" in L.format_result(first)
    backbone, dim, _ = L.load_backbone(checkpoint=trainer_ckpt)  # a fresh process would reload it
    resumed = L.run_protocol(backbone, dim, folder, cfg, tmp_path, resume="auto", device="cpu")
    result, _, _, one_out = one_process
    assert resumed["finished"] and resumed["history"][1:] and resumed["history"][0] == first["history"][0]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed["history"]] == [
        {k: v for k, v in h.items() if k != "seconds"} for h in result["history"]
    ]
    a, b = head_of(tmp_path), head_of(one_out)
    assert all(torch.equal(a["head"][k], b["head"][k]) for k in ("weight", "bias"))
    assert torch.equal(a["optimizer"]["state"][0]["momentum_buffer"], b["optimizer"]["state"][0]["momentum_buffer"])
    with pytest.raises(CheckpointError, match=r"cannot resume .*lr_head: checkpoint 0.05 vs now 0.1"):
        L.run_protocol(
            backbone,
            dim,
            folder,
            L.protocol_config("linear", **{**SMALL, "lr_head": 0.1}),
            tmp_path,
            resume="auto",
            device="cpu",
        )


# ----------------------------------------------------------------------------------------------
# (d) torchvision round trip


@pytest.mark.slow
def test_export_round_trip_through_torchvision(tmp_path):
    ckpt, model = write_trainer_checkpoint(tmp_path / "checkpoint.pt", backbone="resnet50", expander="32-16")
    path = export_backbone(ckpt, tmp_path / "resnet50.pth")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert not any(k.startswith("fc.") for k in state) and "layer4.2.bn3.num_batches_tracked" in state
    x = torch.randn(2, 3, 64, 64)
    ours = model.backbone.eval()(x)
    tv = torchvision.models.resnet50()
    tv.fc = nn.Identity()  # the documented fc rule: the file has no fc, like the official resnet50.pth
    tv.load_state_dict(state, strict=True)
    assert torch.equal(tv.eval()(x), ours) and ours.shape == (2, 2048) and ours.abs().max() > 0
    missing, unexpected = torchvision.models.resnet50().load_state_dict(state, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and unexpected == []
    # back: the exported file, and torchvision's own full state dict (with fc, dropped), load into our backbone
    loaded, dim = load_torchvision_backbone(path, "resnet50")
    assert dim == 2048 and torch.equal(loaded(x), ours)
    full = torchvision.models.resnet50()
    full.load_state_dict({**state, "fc.weight": full.fc.weight, "fc.bias": full.fc.bias})
    torch.save({"state_dict": {f"module.{k}": v for k, v in full.state_dict().items()}}, tmp_path / "tv.pth")
    assert torch.equal(load_torchvision_backbone(tmp_path / "tv.pth")[0](x), ours)


def test_export_and_load_errors(tmp_path, trainer_ckpt):
    with pytest.raises(ConfigError, match="its backbone is 'small_cnn'; export writes a torchvision ResNet"):
        export_backbone(trainer_ckpt, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match=r"holds a trainer checkpoint: use --checkpoint "):
        load_torchvision_backbone(trainer_ckpt)
    torch.save(torchvision_features("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(CheckpointError, match=r"does not fit a torchvision resnet50: \d+ missing keys"):
        load_torchvision_backbone(tmp_path / "r18.pth", "resnet50")
    assert load_torchvision_backbone(tmp_path / "r18.pth", "resnet18")[1] == 512


# ----------------------------------------------------------------------------------------------
# (e) semi-supervised fine-tuning on a subset list; errors


def test_semi_trains_only_on_the_subset_and_resumes(tmp_path, trainer_ckpt):
    subset = [f"{s}_{k}.JPEG" for s in SYNSETS for k in (1, 4)]  # 12 of the 48 training images
    others = {f"{s}_{k}.JPEG" for s in SYNSETS for k in range(TRAIN_PER_CLASS)} - set(subset)
    root = write_imagenet_like(tmp_path / "data", garbage=others)  # reading any other image would fail
    (tmp_path / "10percent.txt").write_text("\n".join(subset) + "\n")
    cfg = dict(SMALL, batch_size=4, subset=str(tmp_path / "10percent.txt"))
    backbone, dim, _ = L.load_backbone(checkpoint=trainer_ckpt)
    before = copy.deepcopy(backbone.state_dict())
    result = L.run_protocol(backbone, dim, root, L.protocol_config("semi", 10, **cfg), tmp_path / "a", device="cpu")
    assert result["finished"] and result["train_size"] == 12 and 0 <= result["top1"] <= result["top5"] <= 1
    moved = max((before[k].float() - v.float()).abs().max().item() for k, v in backbone.state_dict().items())
    assert moved > 1e-3  # the whole network was trained
    fresh, _, _ = L.load_backbone(checkpoint=trainer_ckpt)
    L.run_protocol(fresh, dim, root, L.protocol_config("semi", 10, **cfg, max_epochs=1), tmp_path / "b", device="cpu")
    fresh, _, _ = L.load_backbone(checkpoint=trainer_ckpt)
    L.run_protocol(fresh, dim, root, L.protocol_config("semi", 10, **cfg), tmp_path / "b", resume="auto", device="cpu")
    a, b = head_of(tmp_path / "a"), head_of(tmp_path / "b")
    assert all(torch.equal(a["backbone"][k], b["backbone"][k]) for k in a["backbone"])
    assert all(torch.equal(a["head"][k], b["head"][k]) for k in a["head"])


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_user_errors_are_one_line(tmp_path, folder, trainer_ckpt, capsys):
    (tmp_path / "bad.txt").write_text("n00000001_1.JPEG\nn00000002_999.JPEG\n")
    base = ["eval", "--checkpoint", trainer_ckpt, "--data-dir", folder, "--crop-size", "32", "--workers", "0"]
    cases = [
        (
            ["--protocol", "semi", "--percent", "10", "--subset", tmp_path / "bad.txt"],
            r"names 1 image\(s\) that are not in .*train \(first: n00000002_999\.JPEG\); expected file names",
        ),
        (["--protocol", "semi", "--percent", "5", "--subset", tmp_path / "bad.txt"], r"percent=5: .* takes 1 or 10"),
        (["--protocol", "semi", "--percent", "1", "--subset", tmp_path / "none.txt"], r"no subset file at .*none\.txt"),
        (["--protocol", "linear", "--data-dir", tmp_path / "nowhere"], r"expected the folder .*nowhere/train"),
        (["--protocol", "linear", "--weights", trainer_ckpt], r"give either a checkpoint .* or weights"),
        (
            ["--subset", tmp_path / "bad.txt"],
            r"--subset, --data-dir, --crop-size, --workers: only with --protocol linear\|semi",
        ),
    ]
    for extra, message in cases:
        code, out, err = run_cli(base + extra, capsys)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (extra, err)
        assert err.startswith("vicreg-edu: error: ") and re.search(message, err), (message, err)
    with pytest.raises(DataNotFoundError):
        L.load_folders(tmp_path / "nowhere", L.EvalConfig())
    with pytest.raises(DataError):
        L.apply_subset(L.load_folders(folder, L.EvalConfig())[0], ["x.JPEG"])
    with pytest.raises(ConfigError, match="needs subset="):
        L.protocol_config("semi", 1)


def test_export_cli(tmp_path, capsys):
    ckpt, _ = write_trainer_checkpoint(tmp_path / "checkpoint.pt", backbone="resnet18", expander="16")
    code, out, _ = run_cli(["export", "--checkpoint", ckpt, "--out", tmp_path / "r18.pth"], capsys)
    assert code == 0 and "wrote" in out and (tmp_path / "r18.pth").is_file()
    code, _, err = run_cli(["export", "--checkpoint", tmp_path / "missing.pt", "--out", tmp_path / "x.pth"], capsys)
    assert code == 2 and re.search(r"^vicreg-edu: error: no checkpoint at .*missing\.pt", err) and err.count("\n") == 1
