"""The trainer end to end on CPU: DDP == one process, exact resume, crash safety, bad input, learning."""

import json
import math
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, _subprocess_env as subprocess_env, _tiny as tiny, as_set_args, imagefolder_set_args
from conftest import load_state as state

from vicreg_edu import cli
from vicreg_edu.config import get_config
from vicreg_edu.models import VICRegWithProbe, build_model

import vicreg_edu.trainer as T


def torchrun(*args, timeout=300):
    """``torchrun --standalone --nproc_per_node=2 -m vicreg_edu train ARGS`` (gloo on CPU); must succeed."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "vicreg_edu",
        "train",
        *args,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world=2" in proc.stdout
    return proc


def run_torchrun(out_dir, *extra):
    torchrun("--preset", "demo", "--set", *as_set_args(**DDP_RUN, out_dir=out_dir), *extra)
    return state(out_dir)


# 2 steps per epoch, 3 steps: crosses an epoch boundary (sampler.set_epoch) inside the warm-up.
# LARS (the ImageNet recipe's optimiser) rather than the demo's AdamW: Adam divides each update by
# sqrt(v), so for parameters whose gradient is ~0 it turns float rounding (1e-7, different
# reduction order on 2 processes) into lr-sized steps, which says nothing about the bookkeeping.
# float64 (parameters, activations and loss): in float32 the two sides differ by 1e-5 on some CPUs
# from the reduction order alone (BatchNorm biases), which is rounding, not bookkeeping. In float64
# they agree to 4e-15 (measured), while a wrong reduction (no SyncBN, a gather without gradients, a wrong
# gradient average) moves parameters by 1e-3 or more.
DDP_RUN = dict(train_size=128, max_steps=3, optimizer="lars", base_lr=0.3, weight_decay=1e-4, dtype="float64")


def max_difference(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point())


def test_two_processes_equal_one_process(tmp_path):
    """torchrun --nproc_per_node=2 (gloo) on the same global batches gives the same parameters."""
    ddp = run_torchrun(tmp_path / "ddp")
    T.train(tiny(tmp_path / "one", **DDP_RUN))
    one = state(tmp_path / "one")
    assert ddp["step"] == one["step"] == 3
    for name, p_one in one["net"].items():
        if p_one.is_floating_point():  # parameters and BatchNorm running statistics
            assert p_one.dtype == torch.float64, name
            torch.testing.assert_close(
                ddp["net"][name], p_one, rtol=1e-9, atol=1e-9, msg=f"parameter/buffer {name} differs"
            )
    # the logged loss is the global batch's (the mean over the processes), the one process computes
    records = lambda run: [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    logged = lambda run: [(r["step"], r["loss"], r["invariance"]) for r in records(run) if r["kind"] == "step"]  # noqa: E731
    assert [s for s, *_ in logged("ddp")] == [s for s, *_ in logged("one")] == [2, 3]  # the epoch end, the last
    for (_, *a), (_, *b) in zip(logged("ddp"), logged("one")):
        assert a == pytest.approx(b, rel=1e-9)
    # the comparison has teeth: the weights moved, and without synchronised BatchNorm (per-process
    # statistics over half batches) the same check fails by orders of magnitude
    torch.manual_seed(0)
    init = VICRegWithProbe(build_model(tiny(tmp_path)), 10).double().state_dict()
    assert max_difference(one["net"], init) > 1e-2
    unsynced = run_torchrun(tmp_path / "unsynced", "sync_bn=false")
    assert max_difference(unsynced["net"], one["net"]) > 1e-3


def test_resume_is_exact(tmp_path):
    """k steps, checkpoint, resume for k more == 2k steps straight (bitwise on CPU)."""
    T.train(tiny(tmp_path / "straight", max_steps=6))
    T.train(tiny(tmp_path / "resumed", max_steps=3))  # stops mid-epoch (4 steps per epoch)
    assert state(tmp_path / "resumed")["step"] == 3
    T.train(tiny(tmp_path / "resumed", max_steps=6, resume="auto"))
    a, b = state(tmp_path / "straight"), state(tmp_path / "resumed")
    assert a["step"] == b["step"] == 6
    for name in a["net"]:
        assert torch.equal(a["net"][name], b["net"][name]), name
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert sa.keys() == sb.keys() and all(torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])) for k in sa)
    steps = [
        r["step"]
        for r in map(json.loads, (tmp_path / "resumed/metrics.jsonl").read_text().splitlines())
        if r["kind"] == "step"
    ]
    assert steps == sorted(set(steps)), "metrics after resume must not repeat steps"


def test_resume_with_other_recipe_is_refused(tmp_path):
    T.train(tiny(tmp_path, max_steps=2))
    with pytest.raises(ValueError, match=r"cannot resume.*cov_coeff: checkpoint 0.5 vs now 2.0"):
        T.train(tiny(tmp_path, max_steps=4, resume="auto", cov_coeff=2.0))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        T.train(tiny(tmp_path, resume=str(tmp_path / "missing.pt")))


def test_resume_with_changed_optimisation_settings(tmp_path, capsys):
    """Chapter 9's advice after a NaN (lower base_lr, longer warmup_epochs, then resume): refused by default with a
    message that names resume_changes; allowed with it, printed, recorded in metrics.jsonl, and in effect."""
    from vicreg_edu.optim import learning_rate

    T.train(tiny(tmp_path, max_steps=3, log_every=1))
    new = dict(base_lr=0.005, warmup_epochs=2.0, weight_decay=0.01, probe_lr=2e-3)
    keys = "base_lr,weight_decay,warmup_epochs,probe_lr"
    with pytest.raises(
        ValueError,
        match=r"cannot resume.*base_lr: checkpoint 0.015 vs now 0.005.*"
        rf"allow the change with --set resume_changes={keys} \(resume_changes may",
    ):
        T.train(tiny(tmp_path, max_steps=6, resume="auto", log_every=1, **new))
    with pytest.raises(
        ValueError,
        match=r"cannot resume.*\(seed: checkpoint 0 vs now 1\)\. Use the original "
        r"settings or a new out_dir \(resume_changes may list only the optimisation",
    ):
        T.train(tiny(tmp_path, max_steps=6, resume="auto", resume_changes=keys, seed=1, **new))
    with pytest.raises(ValueError, match="resume_changes='base_lr,seed' lists seed, which a resume cannot change"):
        tiny(tmp_path, resume_changes="base_lr,seed")
    capsys.readouterr()
    T.train(tiny(tmp_path, max_steps=6, resume="auto", log_every=1, resume_changes=keys.replace(",", ", "), **new))
    assert (
        "resuming at step 3 with changed settings (resume_changes): base_lr 0.015 -> 0.005, weight_decay 0.05 -> "
        "0.01, warmup_epochs 1.0 -> 2.0, probe_lr 0.001 -> 0.002"
    ) in capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in records if r["kind"] == "resume_changes"] == [
        {
            "kind": "resume_changes",
            "step": 3,
            "changes": {
                "base_lr": {"checkpoint": 0.015, "now": 0.005},
                "weight_decay": {"checkpoint": 0.05, "now": 0.01},
                "warmup_epochs": {"checkpoint": 1.0, "now": 2.0},
                "probe_lr": {"checkpoint": 0.001, "now": 0.002},
            },
        }
    ]
    lrs = {r["step"]: r["lr"] for r in records if r["kind"] == "step"}
    assert lrs[4] == pytest.approx(learning_rate(3, 8, 8, 0.005 * 64 / 256, 0.75))  # the new schedule from step 4
    saved = state(tmp_path)
    assert saved["step"] == 6 and saved["config"]["base_lr"] == 0.005
    assert saved["optimizer"]["param_groups"][0]["weight_decay"] == 0.01  # not the checkpoint's 0.05
    assert saved["probe_optimizer"]["param_groups"][0]["lr"] == 0.002


def test_lars_settings_reach_the_optimizer(tmp_path):
    state_ = T.build_state(T.setup(tiny(tmp_path, optimizer="lars", lars_eta=0.02, lars_clip=True, momentum=0.8)), 10)
    assert {k: state_.optimizer.param_groups[0][k] for k in ("eta", "clip", "momentum")} == dict(
        eta=0.02, clip=True, momentum=0.8
    )


def test_sigkill_mid_epoch_leaves_a_readable_checkpoint(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "vicreg_edu",
        "train",
        "--preset",
        "demo",
        "--set",
        *as_set_args(epochs=200, ckpt_every=1, out_dir=tmp_path),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = tmp_path / "checkpoint.pt"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # wait until a few mid-epoch checkpoints have been written
            if ckpt.exists() and state(tmp_path)["step"] >= 6 and state(tmp_path)["step"] % 4:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    saved = state(tmp_path)  # readable: atomic rename never leaves a torn file
    assert saved["step"] >= 6
    assert not (tmp_path / "checkpoint.pt.tmp").exists() or saved  # a stale .tmp is harmless
    resumed = T.train(tiny(tmp_path, epochs=200, ckpt_every=1, resume="auto", max_steps=saved["step"] + 2))
    assert state(tmp_path)["step"] == saved["step"] + 2
    assert resumed.history[-1]["step"] == saved["step"] + 2


def test_batch_not_divisible_by_world_size(tmp_path, monkeypatch):
    monkeypatch.setattr(T.distributed, "get_world_size", lambda: 3)
    with pytest.raises(ValueError, match="batch_size=64 is not divisible by the world size 3"):
        T.train(tiny(tmp_path))


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="download"):
        T.train(tiny(tmp_path, dataset="cifar10", augment="cifar", data_dir=str(tmp_path / "nowhere")))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = T.vicreg_loss

    def poisoned(z_a, *args, **kwargs):  # from the 6th step on, the embeddings blow up
        calls["n"] += 1
        return real(z_a * (float("nan") if calls["n"] >= 6 else 1.0), *args, **kwargs)

    monkeypatch.setattr(T, "vicreg_loss", poisoned)
    # the loss is checked at each record (log_every=5, and every epoch end: 4 steps per epoch), so
    # the NaN of step 6 is caught at step 8, before the epoch-2 checkpoint could be written
    with pytest.raises(
        FloatingPointError, match=r"diverged at step 8: non-finite VICReg loss \(loss=nan.*last good checkpoint"
    ):
        T.train(tiny(tmp_path, max_steps=12))
    saved = state(tmp_path)
    assert saved["step"] == 4  # the epoch-1 checkpoint, not overwritten by the NaN state
    assert all(torch.isfinite(v).all() for v in saved["net"].values() if v.is_floating_point())


def test_amp_auto_fits_the_device(tmp_path, monkeypatch):
    """amp=auto: bf16 on a GPU with native bf16, fp16 + GradScaler on one without (emulated bf16 does
    not count), none on the CPU or in float64; explicit settings kept. The start line's words say why."""
    cfg, cuda, cpu = get_config("demo", fast=False), torch.device("cuda", 0), torch.device("cpu")
    asked = []
    for native, dtype, words in (
        (True, torch.bfloat16, "amp=auto -> bf16 (cuda bf16 supported)"),
        (False, torch.float16, "amp=auto -> fp16 + GradScaler (no bf16 on this GPU)"),
    ):
        monkeypatch.setattr(
            torch.cuda,
            "is_bf16_supported",
            lambda including_emulation=True, native=native: asked.append(including_emulation) or native,
        )
        assert T._amp_dtype(cfg, cuda) == dtype
        # the demo's batch 128 < its 512-d embedding: the covariance takes the Gram side, float64 on a GPU
        assert T.precision_note(cfg, cuda) == f"{words}; {T.GRAM_FLOAT64_NOTE}"
    assert asked and not any(asked)  # asked with including_emulation=False every time
    assert "Gram" not in T.precision_note(cfg.replace(batch_size=1024), cuda)  # N >= D: the (D, D) side
    assert T.precision_note(cfg.replace(gram_dtype="float32"), cuda).endswith(T.GRAM_FLOAT32_NOTE)
    assert T.build_criterion(cfg.replace(gram_dtype="float32")).keywords["gram_dtype"] == "float32"  # reaches the loss
    asked.clear()
    assert T.precision_note(cfg, cpu) == "amp=auto -> none (CPU)" and T._amp_dtype(cfg, cpu) is None
    assert asked == []  # no GPU query on the CPU
    assert T.amp_dtype(cfg.replace(dtype="float64"), cuda, True) == (None, "amp=auto -> none (dtype=float64)")
    assert T.amp_dtype(cfg.replace(amp="fp16"), cpu, False) == (torch.float16, "amp=fp16 -> fp16 + GradScaler (as set)")
    assert T.amp_dtype(cfg.replace(amp="bf16"), cuda, False) == (torch.bfloat16, "amp=bf16 -> bf16 (as set)")
    for amp, scaled in (("fp16", True), ("bf16", False), ("none", False)):  # the GradScaler runs for fp16 only
        run = T.setup(tiny(tmp_path, amp=amp))
        assert T.build_state(run, 10).scaler.is_enabled() is scaled, amp


def test_collapse_report_views_on_rank0_cpu_in_batches(tmp_path, monkeypatch):
    """The diagnostic views: built by rank 0 only, left on the CPU, forwarded DIAG_BATCH (256) at a time,
    with the numbers of one forward of them all; diag_size=0 builds none."""
    from vicreg_edu.diagnostics import collapse_report
    from vicreg_edu.views import make_augment_config

    cfg = tiny(tmp_path, diag_size=600)
    run, aug, built = T.setup(cfg), make_augment_config(cfg), []
    real = T.diagnostic_views
    monkeypatch.setattr(T, "diagnostic_views", lambda *a, **k: built.append(a[3]) or real(*a, **k))
    assert T.build_diag_views(T.Run(cfg, run.device, 1, 2, run.dtype, None, run.out_dir), aug) is None  # rank 1
    assert T.build_diag_views(T.setup(tiny(tmp_path, diag_size=0)), aug) is None and built == []
    views = T.build_diag_views(run, aug)
    assert built == [600] and len(views) == 600 and views.view_a.device.type == "cpu"
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    sizes = []
    model.register_forward_hook(lambda module, inputs, output: sizes.append(len(inputs[0])))
    record = T.collapse_record(run, model, views)
    assert sizes == [256, 256, 256, 256, 88, 88]  # (view a, view b) per batch
    with torch.no_grad():
        r_a, e_a = model(views.view_a)
        e_b = model(views.view_b)[1]
    whole = collapse_report(e_a, e_b).as_dict()
    assert record["emb_n"] == 600 and views.view_a.device.type == "cpu"
    for key in ("std_mean", "effective_rank", "alignment_mse", "off_diagonal_energy"):
        assert record[f"emb_{key}"] == pytest.approx(whole[key], rel=1e-4), key
    assert record["repr_effective_rank"] == pytest.approx(collapse_report(r_a).as_dict()["effective_rank"], rel=1e-4)
    assert T.collapse_record(run, model, None) == {}


def test_logs_for_a_cluster(tmp_path, capsys, monkeypatch):
    """No terminal on stderr (a file, a SLURM log, a notebook): no tqdm bar even with progress=true, but a
    plain line every print_every steps (step, epoch, loss, images/s, ETA) and one per epoch, also with
    progress=false; the start lines say that TensorBoard is missing and how to add it, and where a run
    starts or resumes; on a terminal the tqdm bar comes back."""
    import tqdm

    bars = []
    monkeypatch.setattr(tqdm, "tqdm", lambda *a, **k: bars.append(k) or pytest.fail("no bar without a terminal"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed: its import fails
    for progress in (True, False):
        out_dir = tmp_path / f"progress_{progress}"
        T.train(tiny(out_dir, max_steps=6, print_every=2, progress=progress, tensorboard=True))
        out, err = capsys.readouterr()
        lines = out.splitlines()
        assert "TensorBoard: not installed, no events written (pip install 'vicreg-edu[tensorboard]'" in out
        assert "\r" not in out + err and bars == []
        steps = [line for line in lines if line.startswith("step ")]
        assert [line.split()[1] for line in steps] == ["2/6", "4/6", "6/6"], lines
        assert re.fullmatch(
            r"step 2/6 \(epoch 0\.50/2\) \| loss \d+\.\d{3} \(s [\d.]+, v [\d.]+, c [\d.]+\) \| \d+ images/s \| "
            r"lr [\d.e-]+ \| ETA \d+:\d\d:\d\d",
            steps[0],
        ), steps[0]
        epochs = [line.split(":")[0] for line in lines if line.startswith("epoch ")]
        assert epochs == ["epoch 1/2 (step 4)", "epoch 2/2 (step 6)"], lines  # max_steps ends the run with one
        assert "starting at step 0" in lines
    T.train(tiny(out_dir, max_steps=8, print_every=2, resume="auto"))
    out = capsys.readouterr().out
    assert f"resumed from {out_dir / 'checkpoint.pt'} at step 6 (epoch 1.5 of 2)" in out.splitlines()
    assert "TensorBoard: off (tensorboard=false)" in out
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with pytest.raises(pytest.fail.Exception, match="no bar without a terminal"):
        T.train(tiny(tmp_path / "tty", max_steps=2, progress=True))
    assert bars and bars[0]["total"] == 8


def test_diag_size_zero_switches_the_collapse_report_off(tmp_path, capsys):
    result = T.train(tiny(tmp_path, diag_size=0, max_steps=4))
    assert "collapse report: off (diag_size=0)" in capsys.readouterr().out
    (epoch,) = result.epochs
    assert epoch["epoch"] == 1 and "online_probe_acc" in epoch
    assert not any(k.startswith(("emb_", "repr_")) for k in epoch), epoch


def test_unequal_share_stops_training(tmp_path, monkeypatch):
    """The loss's all-gather exchanges no sizes, so the trainer checks each batch is batch_size / world."""
    real = T.make_two_view_loader

    class OneImageShort:  # the second batch lacks an image
        def __init__(self, loader):
            self.loader, self.num_classes = loader, loader.num_classes

        def __len__(self):
            return len(self.loader)

        def set_epoch(self, *args, **kwargs):
            self.loader.set_epoch(*args, **kwargs)

        def close(self):
            self.loader.close()

        def __iter__(self):
            for i, (x_a, x_b, y) in enumerate(self.loader):
                yield (x_a[:-1], x_b[:-1], y[:-1]) if i == 1 else (x_a, x_b, y)

    monkeypatch.setattr(T, "make_two_view_loader", lambda *args, **kwargs: OneImageShort(real(*args, **kwargs)))
    with pytest.raises(RuntimeError, match="this process got 63 images, expected batch_size / world = 64"):
        T.train(tiny(tmp_path, max_steps=3))


def test_cli_help_lists_presets():
    out = subprocess.run(
        [sys.executable, "-m", "vicreg_edu.cli", "train", "--help"],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for preset in ("demo", "cifar10", "cifar100", "imagenet-resnet50"):
        assert preset in out
    assert "--set" in out and "--resume" in out


def test_demo_fast_mode_learns(tmp_path):
    """The demo preset in fast mode beats a random encoder and raw pixels by a clear k-NN margin.

    Fast mode trains 3 of the preset's 10 epochs (234 steps of 128) on the 10,000 Shapes images;
    k-NN on the 2,000 test images. Measured with today's preset (batch 128, 25/50/0.5, crops
    0.8-1, AdamW lr 0.0075 with a cosine to 0.75 x the peak, Shapes without noisy backgrounds;
    30 Nov 2026, 1 thread, ~60 CPU-s a run): seed 0 -> trained 0.4395, random init 0.114, raw
    pixels 0.141 (embedding std 0.76); seed 1 -> 0.407, 0.1125, 0.141 (std 0.70). Asserted: at
    least +0.15 over the random encoder and +0.12 over raw pixels, well under the smallest
    observed gaps (+0.29, +0.27) and far above 5 standard errors of a
    k-NN accuracy on 2,000 test images (sqrt(0.4 * 0.6 / 2000) = 0.011), so a seed change does not
    flip it while a run that learns nothing (chance is 0.10) fails.
    """
    cfg = get_config("demo", fast=True, out_dir=str(tmp_path), progress=False, tensorboard=False)
    assert (cfg.epochs, cfg.batch_size, cfg.train_size, cfg.test_size) == (3, 128, 0, 0)
    result = T.train(cfg)
    final = result.final
    print(final)
    assert set(final) == {"trained", "random_init", "raw_pixels"}
    assert final["trained"] > final["random_init"] + 0.15, final
    assert final["trained"] > final["raw_pixels"] + 0.12, final
    epochs = [r for r in map(json.loads, result.metrics_path.read_text().splitlines()) if r["kind"] == "epoch"]
    assert len(epochs) == cfg.epochs and all(math.isfinite(r["emb_effective_rank"]) for r in epochs)
    assert (
        epochs[-1]["emb_std_mean"] > 0.4
    )  # measured 0.76 / 0.70 (seeds 0, 1): not collapsed (invariance-only goes to ~0)


def test_eval_cli_on_a_checkpoint(tmp_path, capsys):
    from vicreg_edu.evaluate import evaluate_checkpoint, load_checkpoint_model

    T.train(tiny(tmp_path, max_steps=2))
    model, cfg = load_checkpoint_model(tmp_path / "checkpoint.pt")
    assert cfg.train_size == 256 and not model.training
    knn = evaluate_checkpoint(tmp_path / "checkpoint.pt", "knn")
    assert set(knn) == {"trained", "random_init", "raw_pixels"} and all(0 <= v <= 1 for v in knn.values())
    assert (
        cli.main(["eval", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--method", "linear", "--epochs", "2"]) == 0
    )
    assert "linear accuracy, trained" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="train first"):
        evaluate_checkpoint(tmp_path / "nope.pt")


# ----------------------------------------------------------------------------------------------
# your own images: an ImageFolder in real file formats (conftest.write_image_folder), end to end


def _accuracies(out: str) -> dict[str, float]:
    """``{"knn trained": 0.5, ...}`` from the lines `vicreg-edu eval` prints."""
    found = re.findall(r"^(knn|linear) accuracy, (\w+)\s+([\d.]+)%$", out, flags=re.M)
    return {f"{m} {name}": float(v) / 100 for m, name, v in found}


def _evaluate_both(checkpoint, capsys) -> dict[str, float]:
    for method in ("knn", "linear"):
        assert cli.main(["eval", "--checkpoint", str(checkpoint), "--method", method, "--epochs", "5"]) == 0
    acc = _accuracies(capsys.readouterr().out)
    assert set(acc) == {"knn trained", "knn random_init", "linear trained"}, acc  # no raw pixels for a folder
    assert all(0 <= v <= 1 for v in acc.values())
    return acc


def test_imagefolder_one_process_trains_evaluates_and_resumes_exactly(tmp_path, image_folder, capsys):
    """`vicreg-edu train` on PNG/JPEG, RGB/greyscale/RGBA, one image smaller than the crop, one process."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert cli.main(["train", "--set", *imagefolder_set_args(image_folder, straight, max_steps=6)]) == 0
    out = capsys.readouterr().out
    assert "imagefolder | world=1" in out and "4 steps/epoch" in out and "k-NN accuracy" in out
    assert "device=cpu amp=auto -> none (CPU) | batch 4" in out
    # 3 steps (mid-epoch), then resume to 6: crosses the epoch boundary (set_epoch on one process)
    assert cli.main(["train", "--set", *imagefolder_set_args(image_folder, resumed, max_steps=3)]) == 0
    assert state(resumed)["step"] == 3
    assert (
        cli.main(["train", "--resume", "auto", "--set", *imagefolder_set_args(image_folder, resumed, max_steps=6)]) == 0
    )
    a, b = state(straight), state(resumed)
    assert a["step"] == b["step"] == 6
    for name in a["net"]:  # the DataLoader path resumes exactly too (no workers: the views use the saved RNG)
        assert torch.equal(a["net"][name], b["net"][name]), name
    _evaluate_both(straight / "checkpoint.pt", capsys)


def test_imagefolder_two_processes_train_resume_and_evaluate(tmp_path, image_folder, capsys):
    """torchrun, 2 gloo processes, on the same folder: 3 steps, resume to 6, then `vicreg-edu eval`."""
    out = tmp_path / "ddp"
    torchrun("--set", *imagefolder_set_args(image_folder, out, max_steps=3, final_eval=False))
    assert state(out)["step"] == 3 and len(state(out)["rng"]) == 2
    proc = torchrun("--resume", "auto", "--set", *imagefolder_set_args(image_folder, out, max_steps=6))
    assert "k-NN accuracy" in proc.stdout and proc.stdout.count("VICReg |") == 1  # rank 0 prints
    assert state(out)["step"] == 6
    steps = [
        r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "step"
    ]
    assert steps == [1, 2, 3, 4, 5, 6]
    _evaluate_both(out / "checkpoint.pt", capsys)
