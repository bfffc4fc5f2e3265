"""``vicreg-edu submit`` and the shipped sbatch script on a real SLURM: runs, time limits, pre-emptions.

The cluster is a single-node SLURM started for this module by ``tests/slurm_fixture.py`` (needs
root and Debian's slurm-wlm + munge, which ``scripts/system_deps.sh`` installs; otherwise the
SLURM tests skip and say why). Every job trains the same tiny demo recipe with 2 gloo processes:

- ``straight``: ``vicreg-edu submit``, 2 tasks, to the end; world=2, a checkpoint, the metrics, and
  the request printed before submission is what submitit's sbatch file asks for.
- time limit: once it has checkpointed a few steps, gets USR2, the signal SLURM sends
  ``--signal-delay`` seconds before the time limit (submitit's ``--signal=USR2@120``). The trainer
  finishes its step and checkpoints, submitit calls ``TrainingJob.checkpoint`` and requeues.
- pre-emption: ``scontrol requeue`` of the running job, which is how SLURM pre-empts (SIGTERM to
  every process of the job, SIGKILL after ``KillWait``, 30 s here), with ``ckpt_every=0`` so the
  only checkpoint mid-epoch is the one the trainer writes on SIGTERM, at the step it reached.
- the sbatch script (``vicreg_edu/launch/multinode.sbatch``): ``srun torchrun --nproc_per_node=2``,
  pre-empted in the same way; SIGTERM reaches the trainers through srun and torchrun.

Each interrupted job resumes with ``--resume auto`` and must end with the same weights and
optimiser state as ``straight``, bit for bit (same processes, same order of floating-point
operations, exact RNG and data-order restore), with every step logged once. SLURM holds a
requeued job for about 2 minutes before it may start again (``Reason=BeginTime``); the tests
lift that hold (``scontrol update JobId=... StartTime=now+2``) to stay short.

``VICREG_EDU_SAVE_SLURM_LOG=vicreg_edu/results/slurm_preemption_log.txt`` makes the pre-emption
test write the trimmed task-0 log of its job there (chapter 9 shows it).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from slurm_fixture import LocalSlurm, free_port, skip_reason
from vicreg_edu import cli, config, distributed, slurm

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
# 256 Shapes images, batch 64 over 2 processes: 4 steps per epoch, 8 steps; a checkpoint every step
RECIPE = [
    "train_size=256",
    "test_size=128",
    "batch_size=64",
    "epochs=2",
    "diag_size=64",
    "knn_every=0",
    "warmup_epochs=1",
    "final_eval=false",
    "progress=false",
    "tensorboard=false",
    "log_every=1",
    "ckpt_every=1",
]
TOTAL_STEPS = 8
STEPS_PER_EPOCH = 4
# checkpoints only at epoch ends (steps 4 and 8): a pre-emption mid-epoch 1 finds no periodic checkpoint, so a
# resume from beyond the last step logged proves the trainer wrote one when SIGTERM came
RECIPE_NO_PERIODIC_CKPT = [*RECIPE[:-1], "ckpt_every=0"]
SBATCH = ROOT / "vicreg_edu" / "launch" / "multinode.sbatch"
JOB_TIMEOUT = 900  # generous: the test machine may be shared; the jobs themselves are small


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with LocalSlurm(tmp_path_factory.mktemp("slurm")) as c:
        yield c


def submit(cluster: LocalSlurm, folder: Path, *options: str, recipe=RECIPE) -> tuple[str, Path, Path]:
    """``vicreg-edu submit`` 2 CPU tasks of the recipe; return (job id, out_dir, log folder)."""
    out_dir, logs = folder / "run", folder / "logs"
    cmd = [
        sys.executable,
        "-m",
        "vicreg_edu",
        "submit",
        "--tasks-per-node",
        "2",
        "--gpus-per-node",
        "0",
        "--time",
        "20",
        "--log-dir",
        f"{logs}/%j",
        *options,
        "--",
        "--preset",
        "demo",
        "--out-dir",
        str(out_dir),
        "--set",
        *recipe,
    ]
    env = {**cluster.env, "VICREG_EDU_FAST": "1", "PYTHONPATH": str(ROOT)}  # the job imports this checkout
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the request is printed before submission, with the derived CPUs (num_workers=0: 1) and memory (4 GB per task)
    assert proc.stdout.startswith(
        "requesting: 1 node x 2 tasks = 2 processes (gloo on CPU), 1 CPU per task, "
        "8G memory per node, time 20 min, signal USR2 at -120 s, "
    ), proc.stdout
    job_id = re.search(r"submitted job (\d+): 1 node\(s\) x 2 task\(s\) = 2 processes \(gloo on CPU\)", proc.stdout)
    assert job_id, proc.stdout
    assert f"logs:        {logs}/{job_id.group(1)}" in proc.stdout  # the log folder is printed
    # ... and is what submitit's sbatch script asks SLURM for
    sbatch_lines = set((logs / job_id.group(1) / f"{job_id.group(1)}_submission.sh").read_text().splitlines())
    assert {
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=8G",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --ntasks-per-node=2",
        "#SBATCH --time=20",
    } <= sbatch_lines, sbatch_lines
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
    assert logs.count("OMP_NUM_THREADS=1 = torch threads 1") == 2, logs  # 1 CPU per task: no oversubscription
    assert "Job completed successfully" in logs
    ckpt = checkpoint(out_dir)
    assert ckpt["step"] == TOTAL_STEPS and ckpt["config"]["batch_size"] == 64
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "step"] == list(range(1, TOTAL_STEPS + 1))
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records if r["kind"] == "step")


def wait_until_logged(cluster: LocalSlurm, job_id: str, out_dir: Path, logs, step: int) -> int:
    """Poll metrics.jsonl until ``step`` is logged (training is under way); return the last step logged."""
    deadline = time.time() + JOB_TIMEOUT
    while not (steps := logged_steps(out_dir)) or steps[-1] < step:
        state = cluster.job(job_id).get("JobState")
        assert state in ("PENDING", "RUNNING", "CONFIGURING"), (state, logs())
        assert time.time() < deadline, f"job {job_id} did not reach step {step} in {JOB_TIMEOUT} s"
        time.sleep(0.05)
    return steps[-1]


def wait_requeued_then_done(cluster: LocalSlurm, job_id: str, logs) -> dict[str, str]:
    """Wait for the job to be back in the queue, lift SLURM's hold on it, wait for its end; its last record."""
    deadline = time.time() + JOB_TIMEOUT
    while not ((info := cluster.job(job_id)).get("JobState") == "PENDING" and info.get("Restarts") != "0"):
        assert info.get("JobState") in ("RUNNING", "COMPLETING", "REQUEUED"), (info, logs())
        assert time.time() < deadline, f"job {job_id} was not requeued: {info}"
        time.sleep(0.2)
    # SLURM holds a requeued batch job for about 2 minutes (Reason=BeginTime); let it start in 2 s. Not at
    # once: slurmd revokes the old run's credential at its end and refuses ("Job credential revoked", the
    # job FAILED) a new one created in the same second.
    if info.get("Reason") == "BeginTime":
        cluster.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now+2"])
    return cluster.wait(job_id, JOB_TIMEOUT)


def assert_same_run(reference: Path, out_dir: Path) -> None:
    """The resumed run ends where the uninterrupted one does, bit for bit, and its metrics have every step once."""
    a, b = checkpoint(reference), checkpoint(out_dir)
    assert a["step"] == b["step"] == TOTAL_STEPS
    differing = [name for name in a["net"] if not torch.equal(a["net"][name], b["net"][name])]
    assert not differing, f"{len(differing)} tensors differ after resume, e.g. {differing[:3]}"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])) for k in sa)
    assert logged_steps(out_dir) == list(range(1, TOTAL_STEPS + 1)), "metrics after resume repeat or skip steps"


def test_time_limit_signal_requeues_and_resumes_exactly(cluster, straight, tmp_path_factory):
    """USR2, what SLURM sends --signal-delay s before the time limit: submitit requeues, the job resumes exactly."""
    t0 = time.time()
    job_id, out_dir, log_dir = submit(cluster, tmp_path_factory.mktemp("time_limit"))
    logs = lambda: read_logs(log_dir)  # noqa: E731
    signalled_at = wait_until_logged(cluster, job_id, out_dir, logs, 2)  # step 1's checkpoint is on disk
    cluster.run(["scancel", "--signal=USR2", job_id])  # what SLURM sends at the time limit (submitit's --signal)
    info = wait_requeued_then_done(cluster, job_id, logs)
    logs = read_logs(log_dir)
    print(
        f"time limit: job {job_id} {info['JobState']} restarts {info['Restarts']} in {time.time() - t0:.0f} s; "
        f"USR2 after step {signalled_at}"
    )
    assert signalled_at < TOTAL_STEPS, "the job finished before it could be signalled"
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, logs)
    # submitit caught the signal on rank 0, called TrainingJob.checkpoint and requeued the job
    assert "Caught signal SIGUSR2" in logs and f"Requeued job {job_id}" in logs, logs
    assert "USR2 received: requeueing" in logs, logs
    resumed = re.search(rf"job {job_id} attempt 2 \| task 0/2.*\n.*resuming from \S+checkpoint.pt at step (\d+)", logs)
    assert resumed, logs
    assert signalled_at <= int(resumed.group(1)) < TOTAL_STEPS  # the trainer checkpointed at the step reached
    assert_same_run(straight["out_dir"], out_dir)


def test_preempted_job_checkpoints_on_sigterm_and_resumes_exactly(cluster, straight, tmp_path_factory):
    """A real pre-emption: ``scontrol requeue`` of the running job, as SLURM pre-empts (SIGTERM to every
    process, SIGKILL after KillWait = 30 s); the trainer checkpoints at the step reached, the requeued
    job resumes there and ends bit for bit where the uninterrupted one does."""
    t0 = time.time()
    job_id, out_dir, log_dir = submit(cluster, tmp_path_factory.mktemp("preempted"), recipe=RECIPE_NO_PERIODIC_CKPT)
    logs = lambda: read_logs(log_dir)  # noqa: E731
    last_logged = wait_until_logged(cluster, job_id, out_dir, logs, 1)  # training (and its handlers) under way
    requeued_at = time.time()
    cluster.run(["scontrol", "requeue", job_id])  # SIGCONT + SIGTERM to the tasks now, SIGKILL 30 s later
    info = wait_requeued_then_done(cluster, job_id, logs)
    logs = read_logs(log_dir)
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    stops = [r for r in records if r["kind"] == "stop"]
    print(
        f"pre-empted: job {job_id} {info['JobState']} restarts {info['Restarts']} in {time.time() - t0:.0f} s; "
        f"scontrol requeue after step {last_logged}, stop records {stops}"
    )
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, logs)
    # attempt 1: SIGTERM -> the step in flight (and the one that agrees on stopping) finish -> checkpoint there
    assert len(stops) == 1 and stops[0]["signal"] == "SIGTERM", (stops, logs)
    stopped_at = stops[0]["step"]
    # no step lost, in epoch 1 (on a loaded machine the signal may land as the epoch's last step ends: step 4)
    assert last_logged <= stopped_at <= STEPS_PER_EPOCH, (last_logged, stopped_at)
    assert f"vicreg-edu: stopped by SIGTERM at step {stopped_at}; checkpoint written" in logs, logs
    assert "Bypassing signal SIGTERM" in logs, logs  # submitit's own handler, called once the checkpoint is written
    # attempt 2 starts from that checkpoint: the step reached, not the last epoch end (there is none yet)
    resumed = re.search(rf"job {job_id} attempt 2 \| task 0/2.*\n.*resuming from \S+checkpoint.pt at step (\d+)", logs)
    assert resumed and int(resumed.group(1)) == stopped_at, logs
    assert_same_run(straight["out_dir"], out_dir)
    if os.environ.get("VICREG_EDU_SAVE_SLURM_LOG"):
        save_preemption_log(
            Path(os.environ["VICREG_EDU_SAVE_SLURM_LOG"]),
            job_id,
            log_dir,
            records,
            last_logged,
            time.time() - requeued_at,
        )


# the lines of a task's log that tell the story (the rest: warnings, torch's banners)
_INFORMATIVE = re.compile(
    r"\[vicreg-edu submit\]|^VICReg \||^vicreg-edu: |submitit (INFO|WARNING|ERROR)"
    r"|Bypassing|Requeued|Job completed|exit code|Exited"
)


def save_preemption_log(
    path: Path, job_id: str, log_dir: Path, records: list[dict], last_logged: int, seconds: float
) -> None:
    """The task-0 log of the pre-empted job, trimmed to its informative lines (chapter 9 shows it)."""
    at = next(i for i, r in enumerate(records) if r["kind"] == "stop")
    before = [r["step"] for r in records[:at] if r["kind"] == "step"]
    after = [r["step"] for r in records[at:] if r["kind"] == "step"]
    lines = [
        f"# tests/test_slurm.py::test_preempted_job_checkpoints_on_sigterm_and_resumes_exactly "
        f"({time.strftime('%Y-%m-%d')}, local one-node SLURM, 2 gloo tasks on CPU, ckpt_every=0)",
        f"# `scontrol requeue {job_id}` once step {last_logged} was logged (SIGTERM to every task, "
        f"SIGKILL after KillWait=30 s); requeued, hold lifted, done {seconds:.0f} s later",
        f"# metrics.jsonl: attempt 1 logged steps {before}, then a stop record at step {records[at]['step']} "
        f"({records[at]['signal']}); attempt 2 logged steps {after}",
    ]
    tmp = str(log_dir.parents[1])  # this test's temporary folder: <tmp> in the saved log
    shown: set[str] = set()
    for name in (f"{job_id}_0_log.out", f"{job_id}_0_log.err"):  # submitit's own lines go to both
        kept = [
            line.replace(tmp, "<tmp>")
            for line in (log_dir / name).read_text().splitlines()
            if _INFORMATIVE.search(line) and line not in shown
        ]
        shown.update(line.replace("<tmp>", tmp) for line in kept)
        lines += [
            f"===== {name} (task 0, both attempts; {len(kept)} informative lines"
            f"{', those not in the .out above' if name.endswith('.err') else ''})",
            *kept,
        ]
    lines.append("# the resumed run's final weights and optimiser state: torch.equal to the uninterrupted job's")
    path.write_text("\n".join(lines) + "\n")


def test_sbatch_script_is_valid_for_sbatch(cluster, tmp_path):
    """`sbatch --test-only` reads every #SBATCH line of the script (the control: an unknown option fails)."""
    # command-line options override the script's 4 x 8 GPU request, which this one-node cluster cannot meet
    overrides = ["--nodes=1", "--gpus-per-node=0", "--cpus-per-task=2", "--mem=1G", "--time=5"]
    ok = cluster.run(["sbatch", "--test-only", *overrides, str(SBATCH)], check=False)
    assert ok.returncode == 0 and "to start at" in ok.stderr, ok.stderr
    bad = tmp_path / "bad.sbatch"
    bad.write_text(SBATCH.read_text().replace("#SBATCH --requeue\n", "#SBATCH --requeue-me\n"))
    refused = cluster.run(["sbatch", "--test-only", *overrides, str(bad)], check=False)
    assert refused.returncode != 0 and "unrecognized option '--requeue-me'" in refused.stderr, refused.stderr


def submit_sbatch_script(cluster: LocalSlurm, folder: Path) -> tuple[str, Path, Path]:
    """``sbatch multinode.sbatch`` of the recipe: 1 node, torchrun --nproc_per_node=2 on CPU (gloo)."""
    out_dir, log = folder / "run", folder / "job.out"
    torchrun = Path(sys.executable).parent / "torchrun"
    assert torchrun.is_file(), f"no torchrun next to {sys.executable}"
    env = {
        **cluster.env,
        "VICREG_EDU_FAST": "1",
        "PYTHONPATH": str(ROOT),
        "NPROC_PER_NODE": "2",
        "RDZV_PORT": str(free_port()),
        "PATH": f"{torchrun.parent}{os.pathsep}{cluster.env['PATH']}",
    }
    proc = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--nodes=1",
            "--gpus-per-node=0",
            "--cpus-per-task=2",
            "--mem=4G",
            "--time=20",
            f"--output={log}",
            str(SBATCH),
            "--preset",
            "demo",
            "--out-dir",
            str(out_dir),
            "--set",
            *RECIPE_NO_PERIODIC_CKPT,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip(), out_dir, log


def test_sbatch_script_trains_with_torchrun_and_survives_preemption(cluster, straight, tmp_path):
    """The shipped script on this SLURM: 1 node, torchrun --nproc_per_node=2 (gloo), pre-empted mid-epoch by
    ``scontrol requeue``: SIGTERM reaches the trainers through srun and torchrun, they checkpoint at the step
    reached, the requeued job resumes there and ends as submitit's uninterrupted two tasks do, bit for bit."""
    t0 = time.time()
    job_id, out_dir, log = submit_sbatch_script(cluster, tmp_path)
    text = lambda: log.read_text() if log.exists() else ""  # noqa: E731
    last_logged = wait_until_logged(cluster, job_id, out_dir, text, 1)
    cluster.run(["scontrol", "requeue", job_id])
    info = wait_requeued_then_done(cluster, job_id, text)
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    stops = [r for r in records if r["kind"] == "stop"]
    print(
        f"sbatch script: job {job_id} {info['JobState']} restarts {info['Restarts']} in {time.time() - t0:.0f} s; "
        f"scontrol requeue after step {last_logged}, stop records {stops}"
    )
    log_text = text()
    assert info["JobState"] == "COMPLETED" and info["NumNodes"] == "1" and info["Restarts"] == "1", (info, log_text)
    for attempt in (1, 2):
        assert re.search(
            rf"job {job_id} attempt {attempt}: 1 node\(s\) x 2 process\(es\), rendezvous \S+:\d+", log_text
        ), log_text
    assert log_text.count("world=2 device=cpu") == 2 and "batch 64 (32/proc)" in log_text, log_text
    # the batch shell outlived the SIGTERM, torchrun passed it on, the trainers stopped together mid-epoch
    assert "SIGTERM (pre-emption or requeue): waiting for the trainers" in log_text, log_text
    assert len(stops) == 1 and stops[0]["signal"] == "SIGTERM", (stops, log_text)
    assert last_logged <= stops[0]["step"] < STEPS_PER_EPOCH, (last_logged, stops)
    assert f"vicreg-edu: stopped by SIGTERM at step {stops[0]['step']}; checkpoint written" in log_text, log_text
    assert log_text.rstrip().endswith("srun exited with status 0"), log_text
    assert_same_run(straight["out_dir"], out_dir)  # the launcher and the pre-emption change nothing


def test_sbatch_script_checkpoints_first_then_requeues_at_the_time_limit(cluster, straight, tmp_path):
    """The shipped script's time-limit path on this SLURM: USR2 to the batch shell (what --signal=B:USR2@120
    sends; here `scancel --batch --signal=USR2`) -> the trap passes USR2 to the job's step -> torchrun
    forwards it, the trainers checkpoint at the step reached and exit -> only then `scontrol requeue`; the
    requeued job resumes there and ends as the uninterrupted run does, bit for bit."""
    job_id, out_dir, log = submit_sbatch_script(cluster, tmp_path)
    text = lambda: log.read_text() if log.exists() else ""  # noqa: E731
    wait_until_logged(cluster, job_id, out_dir, text, 1)
    cluster.run(["scancel", "--batch", "--signal=USR2", job_id])
    info = wait_requeued_then_done(cluster, job_id, text)
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    stops = [r for r in records if r["kind"] == "stop"]
    log_text = text()
    report = f"{info}\n--- job log:\n{log_text}\n--- daemons:\n{cluster.logs('slurmctld')}{cluster.logs('slurmd')}"
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", report
    assert len(stops) == 1 and stops[0]["signal"] == "SIGUSR2", (stops, log_text)
    order = [
        f"USR2: time limit in 120 s: asking the trainers to checkpoint (scancel --signal=USR2 {job_id})",
        f"vicreg-edu: stopped by SIGUSR2 at step {stops[0]['step']}; checkpoint written to",
        "torchrun: stopped by SIGUSR2",
        f"time limit: the trainers have checkpointed: scontrol requeue {job_id}",
        f"resumed from {out_dir / 'checkpoint.pt'} at step {stops[0]['step']}",
    ]
    at = [log_text.find(line) for line in order]
    assert all(i >= 0 for i in at) and at == sorted(at), (at, log_text)
    assert "Traceback" not in log_text, log_text
    assert_same_run(straight["out_dir"], out_dir)


def test_submitted_eval_runs_the_protocol_on_two_tasks(cluster, tmp_path):
    """`vicreg-edu submit -- eval --protocol linear ...` on this SLURM: 2 CPU tasks (gloo) run the paper's
    linear protocol on a tiny ImageNet-like folder to the end; eval_results.json is written."""
    from test_linear_eval import write_imagenet_like, write_trainer_checkpoint

    data = write_imagenet_like(tmp_path / "imagenet")
    (tmp_path / "run").mkdir()
    ckpt = write_trainer_checkpoint(tmp_path / "run" / "checkpoint.pt", data_dir=data)[0]
    logs = tmp_path / "logs"
    evaluation = ["--protocol", "linear", "--checkpoint", str(ckpt), "--data-dir", str(data), "--epochs", "2"]
    evaluation += ["--batch-size", "16", "--lr-head", "0.05", "--crop-size", "32", "--resize-size", "36"]
    evaluation += ["--workers", "0", "--log-every", "1"]
    cmd = [sys.executable, "-m", "vicreg_edu", "submit", "--tasks-per-node", "2", "--gpus-per-node", "0"]
    cmd += ["--time", "20", "--log-dir", f"{logs}/%j", "--", "eval", *evaluation]
    env = {**cluster.env, "VICREG_EDU_FAST": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_id = re.search(r"submitted job (\d+): 1 node\(s\) x 2 task\(s\) = 2 processes", proc.stdout)
    assert job_id, proc.stdout
    info = cluster.wait(job_id.group(1), JOB_TIMEOUT)
    text = read_logs(logs / job_id.group(1))
    assert info["JobState"] == "COMPLETED", (info, text)
    results = json.loads((tmp_path / "run" / "eval_linear" / "eval_results.json").read_text())
    assert results["finished"] and results["epoch"] == 2 and results["train_size"] == 48, results
    assert "linear evaluation, epoch 2/2: top-1" in text and "world=2" in text, text


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
    assert capsys.readouterr().err == (
        "vicreg-edu: error: batch_size=6 is not divisible by the world size 4 into "
        "batches of at least 2 images (variance): try batch_size=8\n"
    )


def test_skip_reason_names_what_is_missing(monkeypatch):
    """Where SLURM cannot start, the tests skip with a reason that says what to do."""
    import slurm_fixture

    monkeypatch.setattr(slurm_fixture.os, "geteuid", lambda: 1000)
    assert "needs root" in slurm_fixture.skip_reason()
    monkeypatch.setattr(slurm_fixture.os, "geteuid", lambda: 0)
    monkeypatch.setattr(slurm_fixture, "_which", lambda name: None if name in ("munged", "slurmd") else "/bin/" + name)
    reason = slurm_fixture.skip_reason()
    assert "missing munged, slurmd" in reason and "scripts/system_deps.sh" in reason


def test_requested_resources_are_derived_printed_and_overridable(capsys, monkeypatch, tmp_path):
    """No cluster needed: what `vicreg-edu submit` asks SLURM for, from the config, unless told otherwise."""
    monkeypatch.setattr(config, "FAST", False)  # the presets at full size, also under make test's VICREG_EDU_FAST=1
    parser = cli.build_parser()

    def request(*argv):
        args = parser.parse_args(["submit", *argv])
        return slurm.request(args, cli.submit_config(args))

    # the paper's 4 x 8 GPU run: the official run_with_submitit.py's numbers (10 CPUs for 10 workers, 40 GB/GPU)
    r = request("--nodes", "4", "--gpus-per-node", "8", "--", "--preset", "imagenet-resnet50")
    assert (r.nodes, r.tasks_per_node, r.world, r.cpus_per_task, r.mem, r.signal_delay_s, r.max_requeues) == (
        4,
        8,
        32,
        10,
        "320G",
        120,
        30,
    )
    assert r.lines()[0] == (
        "requesting: 4 nodes x 8 tasks = 32 processes (8 GPUs per node, NCCL), 10 CPUs per task, "
        "320G memory per node, time 4320 min (72 h), signal USR2 at -120 s, "
        "partition (cluster default)"
    )
    assert "num_workers=10" in r.lines()[1] and "40 GB per GPU x 8" in r.lines()[2]
    # CPUs follow num_workers; without workers one CPU; CPU tasks get 4 GB each
    assert (
        request("--gpus-per-node", "2", "--", "--preset", "imagenet-resnet50", "--set", "num_workers=6").cpus_per_task
        == 6
    )
    r = request("--tasks-per-node", "3", "--", "--preset", "demo")
    assert (r.cpus_per_task, r.mem, r.gpus_per_node) == (1, "12G", 0)
    assert r.lines()[0].startswith("requesting: 1 node x 3 tasks = 3 processes (gloo on CPU), 1 CPU per task, 12G ")
    # every number can be overridden, and then says so
    r = request(
        "--gpus-per-node",
        "8",
        "--cpus-per-task",
        "12",
        "--mem",
        "500G",
        "--signal-delay",
        "300",
        "--partition",
        "gpu",
        "--",
        "--preset",
        "imagenet-resnet50",
    )
    assert (r.cpus_per_task, r.mem, r.signal_delay_s, r.cpus_from, r.mem_from) == (
        12,
        "500G",
        300,
        "--cpus-per-task",
        "--mem",
    )
    assert ", 12 CPUs per task, 500G memory per node," in r.lines()[0] and r.lines()[0].endswith(
        "signal USR2 at -300 s, partition gpu"
    )
    assert request("--mem", "64GB").mem == "64GB" and request("--mem", "0").mem == "0"  # sbatch: 0 = all of it
    # bad values: one line and status 2, before anything reaches sbatch
    for argv, message in [
        (["--mem", "1.5G"], "--mem 1.5G: expected SLURM's memory syntax"),
        (["--mem", "lots"], "--mem lots: expected SLURM's memory syntax"),
        (["--cpus-per-task", "0"], "--cpus-per-task must be positive, got 0"),
        (["--signal-delay", "0"], "--signal-delay must be positive, got 0"),
        (["--signal-delay", "600", "--time", "10"], "--signal-delay 600 s is not shorter than"),
    ]:
        assert cli.main(["submit", *argv]) == 2, argv
        out, err = capsys.readouterr()
        assert err.startswith(f"vicreg-edu: error: {message}") and err.count("\n") == 1 and out == "", (argv, err)
    # the block is printed before sbatch is called (here sbatch is missing, so nothing is submitted)
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    argv = ["--nodes", "4", "--gpus-per-node", "8", "--", "--preset", "imagenet-resnet50"]
    argv += ["--set", f"data_dir={tmp_path / 'imagenet'}", f"out_dir={tmp_path / 'out'}"]
    assert cli.main(["submit", *argv]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == request(*argv).lines()
    assert err.startswith("vicreg-edu: error: sbatch not found"), err


def test_dry_run_prints_the_request_and_refuses_what_would_fail_on_the_node(capsys, monkeypatch, tmp_path):
    """`submit --dry-run`: the request, its sbatch options (--requeue included) and the checks passed, nothing
    submitted (no submitit or sbatch needed); a missing data_dir, an unwritable out_dir, a GPU preset without
    GPUs or a batch the processes do not divide: one line and status 2."""
    monkeypatch.setattr(config, "FAST", False)
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)  # no sinfo, no sbatch: a dry run needs neither
    data, out = tmp_path / "imagenet", tmp_path / "runs" / "x"
    (data / "train").mkdir(parents=True)
    good = ["--dry-run", "--nodes", "2", "--gpus-per-node", "8", "--", "--preset", "imagenet-resnet50"]

    def run(*argv, data_dir=data, out_dir=out):
        status = cli.main(["submit", *argv, "--set", f"data_dir={data_dir}", f"out_dir={out_dir}"])
        return status, *capsys.readouterr()

    status, stdout, err = run(*good)
    assert status == 0 and err == "", err
    lines = stdout.splitlines()
    assert lines[0].startswith("requesting: 2 nodes x 8 tasks = 16 processes (8 GPUs per node, NCCL)")
    assert any(
        line.startswith("  requeue:       --requeue (SLURM may requeue the job after a pre-emption") for line in lines
    )
    for option in ("--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--signal=USR2@120", "--requeue"):
        assert f"  #SBATCH {option}" in lines, (option, lines)
    assert lines[-2] == (
        f"checks passed: batch 2048 over 16 processes; 8 GPUs per node asked for; data_dir {data} readable; "
        f"out_dir {out} can be created (in {tmp_path})"
    )
    assert lines[-1] == "dry run: nothing submitted" and not out.exists()
    # the partition's time limit, where sinfo tells it (a stand-in sinfo here)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sinfo").write_text('#!/bin/sh\nprintf "gpu* 2-00:00:00\\nshort 1:00:00\\n"\n')
    (bin_dir / "sinfo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(slurm.shutil, "which", lambda name: str(bin_dir / name) if name == "sinfo" else None)
    status, stdout, err = run(*good)  # the default --time 4320 on the default partition gpu (2880 min)
    assert status == 2 and "--time 4320 min is more than partition gpu's limit of 2880 min (sinfo)" in err, err
    status, stdout, err = run("--time", "60", "--partition", "short", *good)
    assert status == 0 and "--time 60 min within partition short's 60 min" in stdout, err
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    status, stdout, _ = run("--no-requeue", *good)
    assert status == 0 and "  #SBATCH --requeue" not in stdout.splitlines() and "--no-requeue (" in stdout

    refusals = [
        (good, dict(data_dir=tmp_path / "nope"), f"data_dir='{tmp_path / 'nope'}' is not a readable folder"),
        (good, dict(data_dir=tmp_path), f"data_dir='{tmp_path}' has no train/ folder"),
        (good, dict(out_dir="/proc/x"), "out_dir='/proc/x' cannot be created: /proc is not a writable folder"),
        (["--dry-run", "--", "--preset", "imagenet-resnet50"], {}, "is a GPU run, but no GPUs are asked for"),
        (["--dry-run", "--gpus-per-node", "3", "--", "--preset", "imagenet-resnet50"], {}, "not divisible"),
    ]
    for argv, where, message in refusals:
        status, stdout, err = run(*argv, **where)
        assert status == 2 and err.count("\n") == 1 and message in err, (argv, err)
        assert err.startswith("vicreg-edu: error: ") and "dry run: nothing submitted" not in stdout


def test_submit_eval_dry_run_builds_the_job_command(capsys, tmp_path):
    """`submit -- eval --protocol ...`: the request from the eval's own workers and batch, the job's eval command
    with absolute paths, an explicit --out-dir and --resume auto (a requeued job continues); what cannot work
    is refused in one line."""
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")
    argv = ["--dry-run", "--tasks-per-node", "2", "--", "eval", "--protocol", "linear", "--workers", "3"]
    argv += ["--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--data-dir", str(tmp_path / "data")]
    assert cli.main(["submit", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("requesting: 1 node x 2 tasks = 2 processes (gloo on CPU), 3 CPUs per task")
    command = next(line for line in lines if line.startswith("  command: "))
    assert command == (
        f"  command: vicreg-edu eval --protocol linear --workers 3 --checkpoint {tmp_path / 'run' / 'checkpoint.pt'} "
        f"--data-dir {tmp_path / 'data'} --out-dir {tmp_path / 'run' / 'eval_linear'} --resume auto on 2 processes"
    )
    job_argv = command.removeprefix("  command: vicreg-edu eval ").removesuffix(" on 2 processes").split()
    parsed = cli.build_parser().parse_args(["eval", *job_argv])  # the job's command line parses
    assert (parsed.protocol, parsed.resume, parsed.workers) == ("linear", "auto", 3)
    for extra, message in [
        (["--protocol", "linear", "--checkpoint", str(tmp_path / "none.pt")], "none.pt: no such file on this host"),
        (["--checkpoint", str(tmp_path / "run" / "checkpoint.pt")], "add --protocol linear or --protocol semi"),
        (["--protocol", "linear", "--bogus"], "bad eval arguments after `-- eval`: unrecognized arguments: --bogus"),
    ]:
        assert cli.main(["submit", "--dry-run", "--", "eval", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("vicreg-edu: error: ") and message in err and err.count("\n") == 1, err


def sbatch_options(text: str) -> dict[str, str]:
    """The ``#SBATCH --key[=value]`` lines of a script (sbatch reads them up to the first command)."""
    options = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH"):
            key, _, value = line.split(None, 1)[1].partition("=")
            options[key] = value
        elif line.strip() and not line.startswith("#"):
            break
    return options


def test_sbatch_script_is_shipped_and_printed(capsys):
    """`vicreg-edu submit --print-sbatch`: the path on stderr, the script on stdout (so `> my.sbatch` copies it)."""
    assert slurm.sbatch_script() == SBATCH and SBATCH.is_file() and os.access(SBATCH, os.X_OK)
    import tomllib

    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(Path("multinode.sbatch").match(p) for p in package_data["vicreg_edu.launch"])
    assert (ROOT / "vicreg_edu" / "launch" / "__init__.py").is_file()  # a package, so setuptools ships its data
    assert cli.main(["submit", "--print-sbatch"]) == 0
    out, err = capsys.readouterr()
    assert out == SBATCH.read_text() and err.splitlines()[0] == f"# {SBATCH}"
    options = sbatch_options(out)
    # one torchrun per node; the official launcher's 10 CPUs and 40 GB per GPU; USR2 to the batch shell; requeue
    assert set(options) == {
        "--job-name",
        "--nodes",
        "--ntasks-per-node",
        "--gpus-per-node",
        "--cpus-per-task",
        "--mem",
        "--time",
        "--signal",
        "--requeue",
        "--open-mode",
        "--output",
    }, options
    gpus = int(options["--gpus-per-node"])
    assert options["--ntasks-per-node"] == "1" and int(options["--cpus-per-task"]) == 10 * gpus
    assert options["--mem"] == f"{40 * gpus}G" and options["--signal"] == "B:USR2@120"
    assert options["--open-mode"] == "append"  # a requeued job appends to its log instead of truncating it


def _stub_bin(tmp_path: Path, srun_body: str) -> Path:
    """``scontrol``, ``scancel`` and ``srun`` stand-ins: srun writes its argv (NUL-separated) to $ARGV_FILE, then
    runs srun_body; scontrol and scancel append their command lines to $CALLS."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(
        '#!/bin/sh\necho "scontrol $*" >> "$CALLS"\n'
        '[ "$1 $2" = "show hostnames" ] && printf "gpu-a7\\ngpu-a8\\n"\nexit 0\n'
    )
    (bin_dir / "srun").write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\0" "$a"; done > "$ARGV_FILE"\n' + srun_body)
    (bin_dir / "scancel").write_text('#!/bin/sh\necho "scancel $*" >> "$CALLS"\nexit 0\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def test_sbatch_script_runs_srun_torchrun_with_a_valid_command_line(tmp_path, monkeypatch):
    """The script under bash with stand-ins for srun/scontrol: the srun + torchrun + trainer command it builds."""
    import torch.distributed.run as torchrun

    monkeypatch.setattr(config, "FAST", False)  # the preset at full size, also under make test's VICREG_EDU_FAST=1

    bin_dir = _stub_bin(tmp_path, "exit 3\n")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "ARGV_FILE": str(tmp_path / "argv"),
        "CALLS": str(tmp_path / "calls"),
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "gpu-a[7-8]",
        "SLURM_NNODES": "2",
        "SLURM_GPUS_ON_NODE": "8",
        "SLURM_CPUS_PER_TASK": "80",
    }
    env.pop("NPROC_PER_NODE", None)
    train_args = ["--preset", "imagenet-resnet50", "--set", "data_dir=/datasets/imagenet", "out_dir=/shared/v r"]
    proc = subprocess.run(["bash", str(SBATCH), *train_args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr  # srun's exit status is the job's
    port = 15000 + 4242 % 17000  # from the job id: two jobs on one head node do not collide
    assert (
        f"job 4242 attempt 1: 2 node(s) x 8 process(es), rendezvous gpu-a7:{port}, torchrun shutdown timeout 100 s"
        in proc.stdout
    )
    assert "srun exited with status 3" in proc.stdout
    assert (tmp_path / "calls").read_text() == "scontrol show hostnames gpu-a[7-8]\n"
    argv = (tmp_path / "argv").read_text().split("\0")[:-1]
    at = argv.index("vicreg_edu.launch.torchrun")  # torchrun with one-line stops
    assert argv[: at - 2] == ["--ntasks-per-node=1", "--cpus-per-task=80", "--kill-on-bad-exit=1"], argv
    assert argv[at - 2 : at] == ["python", "-m"], argv
    args = torchrun.parse_args(argv[at + 1 :])  # torchrun's own parser
    assert (
        args.nnodes,
        args.nproc_per_node,
        args.rdzv_backend,
        args.rdzv_endpoint,
        args.rdzv_id,
        args.module,
        args.training_script,
    ) == ("2", "8", "c10d", f"gpu-a7:{port}", "4242", True, "vicreg_edu")
    # torchrun's agent forwards USR1/USR2 (its default would end it) and waits for the checkpoint write
    assert args.signals_to_handle.split(",") == distributed.TORCHRUN_SIGNALS.split(",")
    assert args.shutdown_timeout == 120 - 20
    assert args.training_script_args == ["train", "--resume", "auto", *train_args]
    trainer = cli.build_parser().parse_args(args.training_script_args)  # ... and the trainer's
    cfg = cli.config_from_args(trainer)
    assert (cfg.resume, cfg.out_dir, cfg.data_dir, cfg.batch_size) == (
        "auto",
        "/shared/v r",
        "/datasets/imagenet",
        2048,
    )


def test_sbatch_script_requeues_at_the_time_limit_and_waits_on_sigterm(tmp_path):
    """USR2 (time limit) -> USR2 to the job's steps (the trainers checkpoint), and only once srun has exited
    `scontrol requeue`; SIGTERM (pre-emption) -> keep waiting for the trainers; bounded by MAX_REQUEUES."""
    bin_dir = _stub_bin(tmp_path, "sleep 4\nexit 5\n")
    for restarts, requeued in (("0", True), ("30", False)):
        calls = tmp_path / f"calls{restarts}"
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "ARGV_FILE": str(tmp_path / "argv"),
            "CALLS": str(calls),
            "SLURM_JOB_ID": "9",
            "SLURM_JOB_NODELIST": "gpu-a7",
            "SLURM_NNODES": "1",
            "SLURM_CPUS_PER_TASK": "2",
            "NPROC_PER_NODE": "2",
            "SLURM_RESTART_COUNT": restarts,
        }
        (tmp_path / "argv").unlink(missing_ok=True)
        shell = subprocess.Popen(
            ["bash", str(SBATCH), "--preset", "demo"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.time() + 30
        while not (tmp_path / "argv").exists():  # srun has started
            assert time.time() < deadline and shell.poll() is None
            time.sleep(0.05)
        shell.send_signal(signal.SIGUSR2)
        time.sleep(0.5)
        assert calls.read_text().splitlines()[-1] == "scancel --signal=USR2 9"  # passed on at once
        shell.send_signal(signal.SIGTERM)
        out, _ = shell.communicate(timeout=30)
        assert shell.returncode == 5, out  # the shell outlived both signals and waited for srun
        assert "USR2: time limit in 120 s: asking the trainers to checkpoint (scancel --signal=USR2 9)" in out, out
        assert "SIGTERM (pre-emption or requeue): waiting for the trainers" in out, out
        lines = out.splitlines()
        exited = next(i for i, line in enumerate(lines) if "srun exited with status 5" in line)
        if requeued:  # the requeue comes after the trainers have exited (their checkpoint written)
            assert "time limit: the trainers have checkpointed: scontrol requeue 9" in "\n".join(lines[exited:]), out
            assert calls.read_text().splitlines()[-1] == "scontrol requeue 9"
        else:
            assert "already requeued 30 times (MAX_REQUEUES=30): not requeueing" in out, out
            assert "requeue" not in calls.read_text()
