"""``vicreg-edu submit`` on a real SLURM: 2 tasks on 1 node, and a pre-empted job that resumes exactly.

The cluster is a single-node SLURM started for this module by ``tests/slurm_fixture.py`` (needs
root and Debian's slurm-wlm + munge, which ``scripts/system_deps.sh`` installs; otherwise the
SLURM tests skip and say why). Both jobs train the same tiny demo recipe with 2 gloo processes:

- ``straight``: runs to the end; it must show world=2, a checkpoint and the metrics.
- ``preempted``: once it has checkpointed a few steps, gets USR2, the signal SLURM sends
  ``--signal-delay`` seconds before the time limit and on pre-emption (submitit's own test hook,
  ``job._interrupt(timeout=True)``, sends the same). submitit calls ``TrainingJob.checkpoint``,
  requeues the job with ``scontrol requeue``; the second attempt resumes with ``--resume auto``
  and must end with the same weights as ``straight``, bit for bit (same processes, same order of
  floating-point operations, exact RNG and data-order restore). SLURM holds a requeued job for
  about 2 minutes before it may start again (``Reason=BeginTime``); the test lifts that hold
  (``scontrol update JobId=... StartTime=now``) to stay short.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from slurm_fixture import LocalSlurm, skip_reason
from vicreg_edu import cli, slurm

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
# 256 Shapes images, batch 64 over 2 processes: 4 steps per epoch, 8 steps; a checkpoint every step
RECIPE = ["train_size=256", "test_size=128", "batch_size=64", "epochs=2", "diag_size=64", "knn_every=0",
          "warmup_epochs=1", "final_eval=false", "progress=false", "tensorboard=false", "log_every=1", "ckpt_every=1"]
TOTAL_STEPS = 8
JOB_TIMEOUT = 900  # generous: the test machine may be shared; the jobs themselves are small


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with LocalSlurm(tmp_path_factory.mktemp("slurm")) as c:
        yield c


def submit(cluster: LocalSlurm, folder: Path, *options: str) -> tuple[str, Path, Path]:
    """``vicreg-edu submit`` 2 CPU tasks of the recipe; return (job id, out_dir, log folder)."""
    out_dir, logs = folder / "run", folder / "logs"
    cmd = [sys.executable, "-m", "vicreg_edu", "submit", "--tasks-per-node", "2", "--gpus-per-node", "0",
           "--log-dir", f"{logs}/%j", *options, "--", "--preset", "demo", "--out-dir", str(out_dir), "--set", *RECIPE]
    env = {**cluster.env, "VICREG_EDU_FAST": "1", "PYTHONPATH": str(ROOT)}  # the job imports this checkout
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_id = re.search(r"submitted job (\d+): 1 node\(s\) x 2 task\(s\) = 2 processes \(gloo on CPU\)", proc.stdout)
    assert job_id, proc.stdout
    assert f"logs:        {logs}/{job_id.group(1)}" in proc.stdout  # the log folder is printed
    return job_id.group(1), out_dir, logs / job_id.group(1)


def logged_steps(out_dir: Path) -> list[int]:
    path = out_dir / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # the line being written right now
            continue
        if record["kind"] == "step":
            steps.append(record["step"])
    return steps


def checkpoint(out_dir: Path) -> dict:
    return torch.load(out_dir / "checkpoint.pt", map_location="cpu", weights_only=False)


def read_logs(log_dir: Path) -> str:
    return "\n".join(f"===== {f.name}\n{f.read_text()}" for f in sorted(log_dir.glob("*_log.*")))


@pytest.fixture(scope="module")
def straight(cluster, tmp_path_factory):
    """The recipe run to the end without interruption (also the reference of the pre-emption test)."""
    t0 = time.time()
    job_id, out_dir, log_dir = submit(cluster, tmp_path_factory.mktemp("straight"))
    info = cluster.wait(job_id, JOB_TIMEOUT)
    print(f"straight: job {job_id} {info['JobState']} restarts {info['Restarts']} in {time.time() - t0:.0f} s")
    return dict(job_id=job_id, info=info, out_dir=out_dir, log_dir=log_dir)


def test_two_tasks_on_one_node(straight):
    info, out_dir, logs = straight["info"], straight["out_dir"], read_logs(straight["log_dir"])
    assert info["JobState"] == "COMPLETED" and info["NumTasks"] == "2" and info["Restarts"] == "0", (info, logs)
    for rank in (0, 1):  # both tasks ran, as torch.distributed ranks of one world of 2, on gloo
        assert re.search(rf"task {rank}/2 \(local {rank}\) on \S+ \| master \S+:\d+ \| gloo \(CPU\)", logs), logs
    assert "world=2 device=cpu" in logs and "batch 64 (32/proc)" in logs, logs
    assert "Job completed successfully" in logs
    ckpt = checkpoint(out_dir)
    assert ckpt["step"] == TOTAL_STEPS and ckpt["config"]["batch_size"] == 64
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "step"] == list(range(1, TOTAL_STEPS + 1))
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records if r["kind"] == "step")


def test_preempted_job_requeues_and_resumes_exactly(cluster, straight, tmp_path_factory):
    t0 = time.time()
    job_id, out_dir, log_dir = submit(cluster, tmp_path_factory.mktemp("preempted"))
    deadline = time.time() + JOB_TIMEOUT
    while not (steps := logged_steps(out_dir)) or steps[-1] < 2:  # step 2 logged: step 1's checkpoint is on disk
        state = cluster.job(job_id).get("JobState")
        assert state in ("PENDING", "RUNNING", "CONFIGURING"), (state, read_logs(log_dir))
        assert time.time() < deadline, f"job {job_id} did not reach step 2 in {JOB_TIMEOUT} s"
        time.sleep(0.05)
    signalled_at = steps[-1]
    cluster.run(["scancel", "--signal=USR2", job_id])  # what SLURM sends at the time limit / on pre-emption
    # SLURM holds a requeued batch job for about 2 minutes (Reason=BeginTime); let it start now
    while not ((info := cluster.job(job_id)).get("JobState") == "PENDING" and info.get("Restarts") != "0"):
        assert info.get("JobState") in ("RUNNING", "COMPLETING", "REQUEUED"), (info, read_logs(log_dir))
        assert time.time() < deadline, f"job {job_id} was not requeued: {info}"
        time.sleep(0.2)
    if info.get("Reason") == "BeginTime":
        cluster.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"])
    info = cluster.wait(job_id, JOB_TIMEOUT)
    logs = read_logs(log_dir)
    print(f"preempted: job {job_id} {info['JobState']} restarts {info['Restarts']} in {time.time() - t0:.0f} s; "
          f"USR2 after step {signalled_at}")
    assert signalled_at < TOTAL_STEPS, "the job finished before it could be pre-empted"
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, logs)
    # submitit caught the signal on rank 0, called TrainingJob.checkpoint and requeued the job
    assert "Caught signal SIGUSR2" in logs and "this job is preempted" in logs, logs
    assert "USR2 received: requeueing" in logs and f"Requeued job {job_id}" in logs, logs
    resumed = re.search(rf"job {job_id} attempt 2 \| task 0/2.*\n.*resuming from \S+checkpoint.pt at step (\d+)", logs)
    assert resumed, logs
    assert 1 <= int(resumed.group(1)) < TOTAL_STEPS
    # the resumed run ends where the uninterrupted one does, bit for bit
    a, b = checkpoint(straight["out_dir"]), checkpoint(out_dir)
    assert a["step"] == b["step"] == TOTAL_STEPS
    differing = [name for name in a["net"] if not torch.equal(a["net"][name], b["net"][name])]
    assert not differing, f"{len(differing)} tensors differ after resume, e.g. {differing[:3]}"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])) for k in sa)
    steps = logged_steps(out_dir)
    assert steps == list(range(1, TOTAL_STEPS + 1)), "metrics after resume must not repeat or skip steps"


def test_argument_checks(capsys):
    """No cluster needed: the pieces of the launcher that run before sbatch."""
    parser = cli.build_parser()

    def parse(*argv):
        return parser.parse_args(["submit", *argv])

    args = parse("--nodes", "2", "--gpus-per-node", "4", "--", "--preset", "demo")
    assert slurm.resources(args) == (4, 8)
    args = parse("--tasks-per-node", "2", "--slurm-arg", "exclusive", "--slurm-arg", "mail-type=END")
    assert slurm.resources(args) == (2, 2) and args.slurm_args == [("exclusive", True), ("mail-type", "END")]
    with pytest.raises(slurm.SubmitError, match="one process per GPU"):
        slurm.resources(parse("--gpus-per-node", "2", "--tasks-per-node", "3"))
    with pytest.raises(slurm.SubmitError, match="--signal-delay 120 s is not shorter than --time 2 min"):
        slurm.resources(parse("--time", "2"))
    with pytest.raises(slurm.SubmitError, match="bad trainer arguments.*invalid choice: 'nope'"):
        cli.submit_config(parse("--", "--preset", "nope"))
    with pytest.raises(slurm.SubmitError, match="always resumes with --resume auto"):
        slurm.job_config(cli.submit_config(parse("--", "--resume", "other.pt")))
    cfg = slurm.job_config(cli.submit_config(parse("--", "--set", "out_dir=rel/dir")))
    assert cfg.out_dir == str(Path("rel/dir").resolve()) and cfg.resume == "auto"
    # what the user meets: one line and status 2, before anything reaches sbatch
    assert cli.main(["submit", "--tasks-per-node", "4", "--", "--set", "batch_size=6"]) == 2
    assert capsys.readouterr().err == ("vicreg-edu: error: batch_size=6 is not divisible by the world size 4 into "
                                       "batches of at least 2 images (variance): try batch_size=8\n")


def test_skip_reason_names_what_is_missing(monkeypatch):
    """Where SLURM cannot start, the tests skip with a reason that says what to do."""
    import slurm_fixture

    monkeypatch.setattr(slurm_fixture.os, "geteuid", lambda: 1000)
    assert "needs root" in slurm_fixture.skip_reason()
    monkeypatch.setattr(slurm_fixture.os, "geteuid", lambda: 0)
    monkeypatch.setattr(slurm_fixture, "_which", lambda name: None if name in ("munged", "slurmd") else "/bin/" + name)
    reason = slurm_fixture.skip_reason()
    assert "missing munged, slurmd" in reason and "scripts/system_deps.sh" in reason
