r"""Launch ``vicreg-edu train`` on a SLURM cluster through submitit, with pre-emption and resume.

    vicreg-edu submit --nodes 4 --gpus-per-node 8 --partition gpu --time 4320 \
        -- --preset imagenet-resnet50 --set data_dir=/datasets/imagenet out_dir=/checkpoints/vicreg ckpt_every=500
    vicreg-edu submit --tasks-per-node 2 --gpus-per-node 0 -- --preset demo    # CPU tasks (gloo), e.g. to smoke-test

Everything after ``--`` is the argument list of ``vicreg-edu train``; :mod:`vicreg_edu.cli` parses
both and hands this module the options and a validated :class:`~vicreg_edu.config.Config`, so a
mistake is reported before anything is submitted. Needs ``pip install 'vicreg-edu[slurm]'``
(submitit) and SLURM's ``sbatch``.

How a job runs. SLURM starts ``nodes x tasks-per-node`` tasks (one process per GPU; with
``--gpus-per-node 0`` the tasks are CPU processes). In each task :class:`TrainingJob` reads
submitit's job environment, exports the variables ``torchrun`` would set (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and calls
``vicreg_edu.train.train_and_report`` on the job's config (as the official ``run_with_submitit.py``
calls ``main_vicreg.main``), whose ``distributed.setup`` picks NCCL on GPUs and gloo on CPUs.

Pre-emption and time limits. submitit asks SLURM for ``--signal=USR2@<signal-delay>``: SLURM
sends USR2 that many seconds before the time limit (and schedulers send it on pre-emption).
submitit's handler then calls :meth:`TrainingJob.checkpoint`, which returns the same job (its config
has ``resume="auto"``); submitit pickles it and runs ``scontrol requeue``. The requeued job continues
from ``<out_dir>/checkpoint.pt``, which the trainer writes atomically at every epoch end and every
``ckpt_every`` steps, so at most ``ckpt_every`` steps are redone, and the resumed run is exact
(same weights as an uninterrupted run; ``tests/test_slurm.py`` checks it on a real SLURM).
``out_dir`` and ``--log-dir`` must be on a filesystem every node sees.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import time
from pathlib import Path

from .config import Config, check_batch_split
from .errors import UserError, one_line


class SubmitError(UserError, ValueError):
    """A submission that cannot work (bad option or trainer arguments, no sbatch, sbatch refused it)."""


class TrainingJob:
    """The picklable callable submitit runs in every SLURM task: one torch.distributed process of ``train``.

    Args:
        config: ``Config.to_dict()`` of the run, with ``resume="auto"`` (every attempt continues from
            ``<out_dir>/checkpoint.pt`` when there is one) and an absolute ``out_dir``.
        gpus_per_node: 0 hides the GPUs from the task (``CUDA_VISIBLE_DEVICES=""``), so ``device=auto``
            trains on the CPU with gloo; otherwise task ``LOCAL_RANK`` uses ``cuda:LOCAL_RANK`` with NCCL.
    """

    def __init__(self, config: dict, gpus_per_node: int = 0):
        self.config = dict(config)
        self.gpus_per_node = gpus_per_node

    def __call__(self) -> None:
        import submitit

        t0 = time.time()
        env = submitit.JobEnvironment()
        if self.gpus_per_node == 0:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        if "OMP_NUM_THREADS" not in os.environ:  # as torchrun: one process per task must not oversubscribe
            os.environ["OMP_NUM_THREADS"] = os.environ.get("SLURM_CPUS_PER_TASK", "1")
        dist_env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False,
                                                                         overwrite=True)
        backend = "gloo (CPU)" if self.gpus_per_node == 0 else "nccl (GPU)"
        print(f"[vicreg-edu submit] job {env.job_id} attempt {int(os.environ.get('SLURM_RESTART_COUNT', 0)) + 1} | "
              f"task {dist_env.rank}/{dist_env.world_size} (local {dist_env.local_rank}) on {socket.gethostname()} | "
              f"master {dist_env.master_addr}:{dist_env.master_port} | {backend} | "
              f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}", flush=True)
        if dist_env.rank == 0:
            print(f"[vicreg-edu submit] {self.resume_note()}", flush=True)
        from .train import train_and_report

        try:
            train_and_report(Config(**self.config))
        except UserError as e:  # one line in the task's log; SLURM/submitit see a failed job
            if dist_env.rank == 0:
                print(f"vicreg-edu: error: {one_line(e)}", flush=True)
            raise RuntimeError(f"vicreg-edu train stopped: {one_line(e)}") from None
        print(f"[vicreg-edu submit] task {dist_env.rank} done: {time.process_time():.1f} s CPU, "
              f"{time.time() - t0:.1f} s wall in this attempt", flush=True)

    def resume_note(self) -> str:
        """What ``resume="auto"`` will do: start fresh, or continue from ``<out_dir>/checkpoint.pt`` at step N."""
        ckpt = Path(self.config["out_dir"]) / "checkpoint.pt"
        if not ckpt.is_file():
            return "no checkpoint yet: training starts at step 0"
        try:
            import torch

            step = torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)["step"]
        except Exception as e:  # the trainer itself reports an unreadable checkpoint properly
            return f"found {ckpt} but could not read its step ({type(e).__name__})"
        return f"resuming from {ckpt} at step {step}"

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on USR2 (time limit or pre-emption): requeue this job, resuming from its checkpoint."""
        import submitit

        print("[vicreg-edu submit] USR2 received: requeueing; the next attempt resumes from the latest "
              "checkpoint (resume=auto)", flush=True)
        return submitit.helpers.DelayedSubmission(TrainingJob(self.config, self.gpus_per_node))


def job_config(cfg: Config) -> Config:
    """The config a submitted job runs: ``resume="auto"`` and an absolute ``out_dir``.

    Raises:
        SubmitError: ``cfg.resume`` names a checkpoint file (a job always resumes from its own out_dir).
    """
    if cfg.resume not in ("", "auto"):
        raise SubmitError(f"--resume {cfg.resume}: a submitted job always resumes with --resume auto from "
                          f"<out_dir>/checkpoint.pt (so a requeued job continues); to start from another "
                          f"checkpoint, copy it there first")
    return cfg.replace(resume="auto", out_dir=str(Path(cfg.out_dir).expanduser().resolve()))


def resources(args: argparse.Namespace) -> tuple[int, int]:
    """``(tasks_per_node, world_size)`` from the parsed options, checked."""
    if args.nodes < 1:
        raise SubmitError(f"--nodes must be >= 1, got {args.nodes}")
    if args.gpus_per_node < 0:
        raise SubmitError(f"--gpus-per-node must be >= 0, got {args.gpus_per_node}")
    tasks = args.tasks_per_node if args.tasks_per_node is not None else (args.gpus_per_node or 1)
    if tasks < 1:
        raise SubmitError(f"--tasks-per-node must be >= 1, got {tasks}")
    if args.gpus_per_node and tasks != args.gpus_per_node:
        raise SubmitError(f"--tasks-per-node {tasks} with --gpus-per-node {args.gpus_per_node}: the trainer runs "
                          "one process per GPU (task LOCAL_RANK uses cuda:LOCAL_RANK), so they must be equal")
    for name in ("cpus_per_task", "time", "signal_delay", "max_requeues"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "max_requeues" else 1):
            raise SubmitError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.signal_delay >= args.time * 60:
        raise SubmitError(f"--signal-delay {args.signal_delay} s is not shorter than --time {args.time} min: SLURM "
                          "would send USR2 at once and the job would requeue without training")
    return tasks, args.nodes * tasks


def submit(args: argparse.Namespace, cfg: Config):
    """Submit one training job: the parsed ``submit`` options and the run's config; return the ``submitit.Job``."""
    tasks, world = resources(args)
    check_batch_split(cfg.batch_size, world)
    cfg = job_config(cfg)
    try:
        import submitit
    except ImportError:
        raise SubmitError("submitit is not installed: pip install 'vicreg-edu[slurm]' (or pip install submitit)")
    if shutil.which("sbatch") is None:
        raise SubmitError("sbatch not found: run this on a SLURM login node (tests/slurm_fixture.py shows a "
                          "single-node SLURM on one machine)")
    executor = submitit.AutoExecutor(folder=args.log_dir, cluster="slurm", slurm_max_num_timeout=args.max_requeues)
    params = dict(name=args.job_name, nodes=args.nodes, tasks_per_node=tasks, timeout_min=args.time,
                  slurm_signal_delay_s=args.signal_delay)
    if args.gpus_per_node:
        params["gpus_per_node"] = args.gpus_per_node  # 0 is left out: clusters without GPU gres reject it
    optional = {"cpus_per_task": args.cpus_per_task, "slurm_mem": args.mem, "slurm_partition": args.partition,
                "slurm_account": args.account, "slurm_qos": args.qos, "slurm_constraint": args.constraint}
    params.update({k: v for k, v in optional.items() if v is not None})
    if args.slurm_args:
        params["slurm_additional_parameters"] = dict(args.slurm_args)
    if args.setup:
        params["slurm_setup"] = list(args.setup)
    executor.update_parameters(**params)
    try:
        job = executor.submit(TrainingJob(cfg.to_dict(), args.gpus_per_node))
    except submitit.core.utils.FailedJobError as e:  # sbatch said no: bad partition, account, resources...
        raise SubmitError(f"sbatch refused the job: {' '.join(str(e).split())}") from e
    job_folder = Path(str(job.paths.folder)).resolve()
    print(f"submitted job {job.job_id}: {args.nodes} node(s) x {tasks} task(s) = {world} processes "
          f"({'gloo on CPU' if not args.gpus_per_node else f'{args.gpus_per_node} GPUs per node, NCCL'})")
    print(f"  logs:        {job_folder}  (task 0: {Path(str(job.paths.stdout)).name})")
    print(f"  checkpoint:  {cfg.out_dir}/checkpoint.pt   metrics: {cfg.out_dir}/metrics.jsonl")
    print(f"  follow:      tail -f {job.paths.stdout}   |   squeue -j {job.job_id}   |   scancel {job.job_id}")
    return job
