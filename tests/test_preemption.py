"""Pre-emption without loss: SIGTERM (SIGUSR1/USR2) mid-epoch -> checkpoint at the step reached ->
exit 128 + signum -> ``--resume auto`` ends bitwise equal to an uninterrupted run.

SLURM pre-empts with SIGTERM (SIGKILL after the partition's GraceTime) and signals USR2 before the
time limit; torchrun forwards a SIGTERM it gets to its workers. The subprocess tests send the
signal as soon as ``metrics.jsonl`` shows step 2 (``log_every=1``), with ``ckpt_every=0``: no
checkpoint exists before the signal, so the one found after it was written by the stop.
"""

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, _subprocess_env as subprocess_env, _tiny as tiny, as_set_args
from conftest import load_state as state

from vicreg_edu.distributed import TORCHRUN_SIGNALS, Preempted, StopSignals

import vicreg_edu.trainer as T

# 16 steps per epoch, 2 epochs: the signal lands early in epoch 1 and the resumed run crosses the
# epoch end (checkpoint, set_epoch) before it finishes
RUN = dict(train_size=512, batch_size=32, epochs=2, log_every=1, ckpt_every=0)
STEPS_PER_EPOCH = 16


def command(out_dir, *extra, processes=1, wrapper=False):
    """The trainer's command line: ``python -m vicreg_edu train``, or torchrun as the docs write it
    (``--signals-to-handle`` with SIGUSR1/SIGUSR2, so its agent forwards them instead of dying), or
    with ``wrapper`` ``python -m vicreg_edu.launch.torchrun`` (the same, ending a stop in one line)."""
    train = ["-m", "vicreg_edu", "train", "--preset", "demo", "--set", *as_set_args(**RUN, out_dir=out_dir), *extra]
    if processes == 1:
        return [sys.executable, *train]
    if wrapper:
        return [
            sys.executable,
            "-m",
            "vicreg_edu.launch.torchrun",
            "--standalone",
            f"--nproc_per_node={processes}",
            *train,
        ]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        f"--signals-to-handle={TORCHRUN_SIGNALS}",
        *train,
    ]


def finish(cmd, timeout=300):
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def records(out_dir):
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]  # the last line may be half written


def worker_pid(parent: int, rank: int) -> int:
    """The pid of the torchrun worker (a child of ``parent``) whose environment has ``RANK=rank`` (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            if f"RANK={rank}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:  # the process has gone
            continue
    raise AssertionError(f"no worker with RANK={rank} under pid {parent}")


def signal_mid_epoch(cmd, out_dir, signum=signal.SIGTERM, rank=None, group=False, timeout=240):
    """Start ``cmd`` (in a session of its own); once step 2 is logged, send ``signum`` to it, to its
    torchrun worker ``rank``, or with ``group`` to its whole process group (torchrun and its workers,
    as SLURM signals a job step); return ``(status, stderr)``. The stdout goes to ``<out_dir>.stdout``."""
    err = out_dir.parent / f"{out_dir.name}.stderr"
    with open(err, "w") as stderr, open(out_dir.parent / f"{out_dir.name}.stdout", "w") as stdout:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=subprocess_env(), stdout=stdout, stderr=stderr, start_new_session=True
        )
    try:
        deadline = time.time() + timeout
        while not (
            (out_dir / "metrics.jsonl").exists()
            and any(r["kind"] == "step" and r["step"] >= 2 for r in records(out_dir))
        ):
            assert proc.poll() is None, err.read_text()[-3000:]
            assert time.time() < deadline, "no step 2 logged in time"
            time.sleep(0.02)
        assert not (out_dir / "checkpoint.pt").exists()  # ckpt_every=0, mid-epoch: nothing saved yet
        if group:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid if rank is None else worker_pid(proc.pid, rank), signum)
        status = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return status, err.read_text()


def check_stopped_at_last_logged_step(out_dir, stderr, world, signame="SIGTERM"):
    """The checkpoint is at the last logged step, mid-epoch, with a ``stop`` record; returns the step."""
    saved = state(out_dir)
    logged = [r["step"] for r in records(out_dir) if r["kind"] == "step"]
    assert saved["step"] == logged[-1], (saved["step"], logged)  # no step lost
    assert 2 <= saved["step"] < STEPS_PER_EPOCH, saved["step"]  # mid-epoch: the stop wrote it
    assert len(saved["rng"]) == world
    stop = records(out_dir)[-1]
    assert stop.pop("write_s") > 0, stop  # the write, timed
    assert stop == {
        "kind": "stop",
        "step": saved["step"],
        "epoch": saved["step"] / STEPS_PER_EPOCH,
        "signal": signame,
        "checkpoint": str(out_dir / "checkpoint.pt"),
    }
    line = re.compile(
        rf"vicreg-edu: stopped by {signame} at step {saved['step']}; checkpoint written to "
        rf"{re.escape(str(out_dir / 'checkpoint.pt'))} in \d+\.\d s; resume with --resume auto\n"
    )
    assert len(line.findall(stderr)) == 1, stderr[-3000:]  # rank 0 only
    assert not (out_dir / "checkpoint.pt.tmp").exists()
    return saved["step"]


def assert_same_run(a, b):
    """Bitwise the same weights, buffers and optimiser state at the same final step."""
    assert a["step"] == b["step"] == RUN["epochs"] * STEPS_PER_EPOCH
    for name in a["net"]:
        assert torch.equal(a["net"][name], b["net"][name]), name
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert sa.keys() == sb.keys() and all(torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])) for k in sa)


@pytest.mark.slow
def test_sigterm_mid_epoch_one_process(tmp_path):
    """`python -m vicreg_edu train`, SIGTERM mid-epoch: exit 143, checkpoint at the last step, exact resume."""
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    finish(command(straight))
    status, stderr = signal_mid_epoch(command(stopped), stopped)
    assert status == 128 + signal.SIGTERM == 143, stderr[-3000:]
    step = check_stopped_at_last_logged_step(stopped, stderr, world=1)
    finish(command(stopped, "--resume", "auto"))
    assert_same_run(state(straight), state(stopped))
    logged = [r["step"] for r in records(stopped) if r["kind"] == "step"]
    assert logged == list(range(1, RUN["epochs"] * STEPS_PER_EPOCH + 1)), logged  # each step once
    assert [r["kind"] for r in records(stopped)].count("stop") == 1 and step in logged


@pytest.mark.slow
def test_usr2_to_the_torchrun_process_group_two_processes(tmp_path):
    """USR2 to torchrun's process group (torchrun and its 2 gloo workers, as SLURM's ``--signal=USR2@...``
    reaches a job step): torchrun, started as the docs write it (``--signals-to-handle`` with SIGUSR2),
    forwards it instead of dying; both workers stop at the same step after writing the checkpoint, rank 0
    says so in one line; ``--resume auto`` says where it resumes and ends bitwise equal to the
    uninterrupted run. torchrun itself exits non-zero (its SignalException), the workers with 140.

    Then SIGTERM to worker rank 1 only, under ``python -m vicreg_edu.launch.torchrun``: rank 0 stops at the
    same step (the flags are all-reduced; without that it would wait forever in the next gradient
    all-reduce), and the launcher ends with one line, no traceback. Last, USR2 to the launcher's whole
    process group: status 140 and one line, no traceback anywhere.
    """
    straight, stopped, one_rank = tmp_path / "straight", tmp_path / "stopped", tmp_path / "one_rank"
    finish(command(straight, processes=2))
    status, stderr = signal_mid_epoch(command(stopped, processes=2), stopped, signal.SIGUSR2, group=True)
    assert status != 0 and "got signal: 12" in stderr, stderr[-3000:]  # torchrun's agent handled USR2
    step = check_stopped_at_last_logged_step(stopped, stderr, world=2, signame="SIGUSR2")
    assert "Traceback" not in stderr.split("vicreg-edu: stopped by")[0], stderr[-3000:]  # the trainers: no traceback
    resumed = finish(command(stopped, "--resume", "auto", processes=2))
    line = f"resumed from {stopped / 'checkpoint.pt'} at step {step} (epoch {step / STEPS_PER_EPOCH:.4g} of 2)"
    assert resumed.stdout.count(line) == 1, resumed.stdout[-3000:]
    assert_same_run(state(straight), state(stopped))

    status, stderr = signal_mid_epoch(command(one_rank, processes=2, wrapper=True), one_rank, rank=1)
    assert status == 143 and "Traceback" not in stderr, stderr[-3000:]  # torchrun saw its workers exit
    assert stderr.rstrip().endswith("torchrun: its trainers stopped on SIGTERM (the checkpoint line above)"), stderr
    check_stopped_at_last_logged_step(one_rank, stderr, world=2)  # rank 0 wrote it and printed the line
    finish(command(one_rank, "--resume", "auto", processes=2))
    assert_same_run(state(straight), state(one_rank))

    quiet = tmp_path / "quiet"
    status, stderr = signal_mid_epoch(command(quiet, processes=2, wrapper=True), quiet, signal.SIGUSR2, group=True)
    assert status == 140 and "Traceback" not in stderr, stderr[-3000:]
    assert stderr.rstrip().endswith(
        "torchrun: stopped by SIGUSR2; its trainers got the signal and have exited (the checkpoint line above)"
    ), stderr
    check_stopped_at_last_logged_step(quiet, stderr, world=2, signame="SIGUSR2")


def _signal_at_step(monkeypatch, step, signum):
    """Make the trainer's ``step``-th loss computation send ``signum`` to this process."""
    real, calls = T.vicreg_loss, {"n": 0}

    def loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "vicreg_loss", loss)


def test_second_sigterm_during_the_checkpoint_write(tmp_path, monkeypatch):
    """A SIGTERM at step 3 (of 4 per epoch), another halfway through writing the checkpoint: the second is
    ignored, the checkpoint at step 3 is complete, the previous Python handler runs once (after the
    write), then Preempted(143); the handler that was there before is back."""
    _signal_at_step(monkeypatch, 3, signal.SIGTERM)
    real_save = torch.save

    def save_with_a_signal_halfway(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGTERM)
        f.write(data[len(data) // 2 :])

    monkeypatch.setattr(torch, "save", save_with_a_signal_halfway)
    calls = []

    def previous(signum, frame):  # e.g. a job runner's handler; reads the checkpoint when it runs
        calls.append((signum, state(tmp_path)["step"]))

    old = signal.signal(signal.SIGTERM, previous)
    try:
        with pytest.raises(Preempted) as stopped:
            T.train(tiny(tmp_path, max_steps=8, log_every=1))
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)
    assert (stopped.value.code, stopped.value.signum, stopped.value.step) == (143, signal.SIGTERM, 3)
    assert calls == [(signal.SIGTERM, 3)]
    assert state(tmp_path)["step"] == 3 and not (tmp_path / "checkpoint.pt.tmp").exists()
    assert str(stopped.value).startswith("stopped by SIGTERM at step 3; checkpoint written to")


def test_usr2_calls_the_previous_handler_after_the_checkpoint(tmp_path, monkeypatch):
    """USR2 with a handler like submitit's (requeue, then sys.exit(-1)): it runs after the checkpoint at
    the step reached, and its exit goes through."""
    _signal_at_step(monkeypatch, 2, signal.SIGUSR2)
    calls = []

    def requeue_and_exit(signum, frame):
        calls.append(state(tmp_path)["step"])
        sys.exit(-1)

    old = signal.signal(signal.SIGUSR2, requeue_and_exit)
    try:
        with pytest.raises(SystemExit) as stopped:
            T.train(tiny(tmp_path, max_steps=8, log_every=5))
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert stopped.value.code == -1 and not isinstance(stopped.value, Preempted)
    assert calls == [2]
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert (last["kind"], last["signal"], last["step"]) == ("stop", "SIGUSR2", 2)


def test_handlers_only_in_the_main_thread_and_restored(tmp_path, monkeypatch):
    """In a thread, train() installs nothing and runs; in the main thread its handler is there while it
    trains and the previous one is back after an exception."""
    real, seen = T.vicreg_loss, []

    def loss(*args, **kwargs):
        seen.append(signal.getsignal(signal.SIGTERM))
        if len(seen) == 3:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "vicreg_loss", loss)
    before, errors = signal.getsignal(signal.SIGTERM), []
    thread = threading.Thread(target=lambda: errors.extend(_errors_of(T.train, tiny(tmp_path / "t", max_steps=2))))
    thread.start()
    thread.join()
    assert errors == [] and seen == [before, before]
    with pytest.raises(RuntimeError, match="boom"):
        T.train(tiny(tmp_path / "main", max_steps=2))
    assert isinstance(getattr(seen[2], "__self__", None), StopSignals)
    assert signal.getsignal(signal.SIGTERM) is before


def _errors_of(fn, *args):
    try:
        fn(*args)
    except BaseException as e:  # noqa: BLE001 - reported by the test
        return [e]
    return []


@pytest.mark.slow
def test_sigterm_to_every_process_with_loader_workers(tmp_path, image_folder):
    """SLURM signals every process of a job, DataLoader workers included: the workers ignore it, the
    trainer finishes its step, checkpoints it and exits 143 (a worker killed by the SIGTERM would make
    the trainer raise before it could checkpoint)."""
    from conftest import imagefolder_set_args

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "vicreg_edu",
        "train",
        "--set",
        *imagefolder_set_args(image_folder, out, epochs=100, num_workers=2, final_eval=False),
    ]
    err = tmp_path / "stderr"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )  # its own process group, as a SLURM job step
    try:
        deadline = time.time() + 240
        while not (
            (out / "metrics.jsonl").exists() and any(r["kind"] == "step" and r["step"] >= 2 for r in records(out))
        ):
            assert proc.poll() is None, err.read_text()[-3000:]
            assert time.time() < deadline, "no step 2 logged in time"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGTERM)  # the trainer and its loader workers
        status = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = err.read_text()
    assert status == 143, text[-3000:]
    assert "is killed by signal" not in text, text[-3000:]
    saved = state(out)
    logged = [r["step"] for r in records(out) if r["kind"] == "step"]
    assert saved["step"] == logged[-1] >= 2 and records(out)[-1]["kind"] == "stop", (saved["step"], logged)
    assert f"stopped by SIGTERM at step {saved['step']}" in text
