r"""Launch ``vicreg-edu train`` on a SLURM cluster through submitit, with pre-emption and resume.

    vicreg-edu submit --nodes 4 --gpus-per-node 8 --partition gpu --time 4320 \
        -- --preset imagenet-resnet50 --set data_dir=/datasets/imagenet out_dir=/checkpoints/vicreg ckpt_every=500
    vicreg-edu submit --tasks-per-node 2 --gpus-per-node 0 -- --preset demo    # CPU tasks (gloo), e.g. to smoke-test
    python -m vicreg_edu.slurm ...                                            # same, without the console script

Everything after ``--`` is the argument list of ``vicreg-edu train`` (checked here, before anything
is submitted). Needs ``pip install 'vicreg-edu[slurm]'`` (submitit) and SLURM's ``sbatch``.

How a job runs. SLURM starts ``nodes x tasks-per-node`` tasks (one process per GPU; with
``--gpus-per-node 0`` the tasks are CPU processes). In each task :class:`TrainingJob` reads
submitit's job environment, exports the variables ``torchrun`` would set (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and calls the very same
``vicreg_edu.train.main``, whose ``distributed.setup`` picks NCCL on GPUs and gloo on CPUs.

Pre-emption and time limits. submitit asks SLURM for ``--signal=USR2@<signal-delay>``: SLURM
sends USR2 that many seconds before the time limit (and schedulers send it on pre-emption).
submitit's handler then calls :meth:`TrainingJob.checkpoint`, which returns the same job with
``--resume auto``; submitit pickles it and runs ``scontrol requeue``. The requeued job continues
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
import sys
import time
from pathlib import Path

from .errors import UserError


class SubmitError(UserError, ValueError):
    """A submission that cannot work (bad option or trainer arguments, no sbatch, sbatch refused it)."""


class TrainingJob:
    """The picklable callable submitit runs in every SLURM task: one torch.distributed process of ``train``.

    Args:
        train_argv: arguments of ``vicreg-edu train`` (e.g. ``["--preset", "demo", "--set", "epochs=2"]``);
            ``--resume auto`` is added (every attempt), so a requeued job continues from its checkpoint.
        gpus_per_node: 0 hides the GPUs from the task (``CUDA_VISIBLE_DEVICES=""``), so ``device=auto``
            trains on the CPU with gloo; otherwise task ``LOCAL_RANK`` uses ``cuda:LOCAL_RANK`` with NCCL.
    """

    def __init__(self, train_argv: list[str], gpus_per_node: int = 0):
        self.train_argv = list(train_argv)
        self.gpus_per_node = gpus_per_node

    def __call__(self) -> int:
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
        from .train import main as train_main

        status = train_main(with_resume_auto(self.train_argv))
        print(f"[vicreg-edu submit] task {dist_env.rank} done (status {status}): {time.process_time():.1f} s CPU, "
              f"{time.time() - t0:.1f} s wall in this attempt", flush=True)
        if status:  # the trainer printed `vicreg-edu: error: ...` above; make SLURM/submitit see a failure
            raise RuntimeError(f"vicreg-edu train exited with status {status} (its error is in this task's log)")
        return status

    def resume_note(self) -> str:
        """What ``--resume auto`` will do: start fresh, or continue from ``<out_dir>/checkpoint.pt`` at step N."""
        out_dir = next((self.train_argv[i + 1] for i in range(len(self.train_argv) - 2, -1, -1)
                        if self.train_argv[i] == "--out-dir"), None)
        ckpt = Path(out_dir) / "checkpoint.pt" if out_dir else None
        if ckpt is None or not ckpt.is_file():
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
              "checkpoint (--resume auto)", flush=True)
        return submitit.helpers.DelayedSubmission(TrainingJob(with_resume_auto(self.train_argv), self.gpus_per_node))


def with_resume_auto(train_argv: list[str]) -> list[str]:
    """``train_argv`` with any ``--resume X`` replaced by ``--resume auto`` (at the end).

    >>> with_resume_auto(["--preset", "demo", "--resume", "old.pt"])
    ['--preset', 'demo', '--resume', 'auto']
    """
    out, skip = [], False
    for a in train_argv:
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif not a.startswith("--resume="):
            out.append(a)
    return out + ["--resume", "auto"]


def _key_value(text: str) -> tuple[str, str | bool]:
    key, sep, value = text.partition("=")
    if not key or key.startswith("-"):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (an sbatch option without its dashes, e.g. "
                                         f"mail-type=END) or KEY alone for a flag; got {text!r}")
    return key, (value if sep else True)


class _TrainArgsParser(argparse.ArgumentParser):
    """Parses the trainer's arguments at submission; a mistake is a :class:`SubmitError`, not a usage dump."""

    def error(self, message: str):
        raise SubmitError(f"bad trainer arguments after `--`: {message} (see `vicreg-edu train --help`)")


def add_submit_args(parser: argparse.ArgumentParser) -> None:
    """The options of ``vicreg-edu submit`` (and ``python -m vicreg_edu.slurm``)."""
    g = parser.add_argument_group("resources")
    g.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    g.add_argument("--gpus-per-node", type=int, default=0,
                   help="GPUs per node (default 0: CPU tasks with gloo; >0: one task per GPU, NCCL)")
    g.add_argument("--tasks-per-node", type=int, default=None,
                   help="processes per node (default: --gpus-per-node, or 1 without GPUs)")
    g.add_argument("--cpus-per-task", type=int, default=None,
                   help="CPU cores per task, e.g. 10 for data loading on a GPU node (default: SLURM's, 1)")
    g.add_argument("--mem", default=None, help="memory per node in SLURM syntax, e.g. 64G (default: SLURM's)")
    g.add_argument("--time", type=int, default=4320,
                   help="time limit of each job in minutes (default 4320 = 3 days); jobs requeue at the limit")
    s = parser.add_argument_group("scheduling")
    s.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's default)")
    s.add_argument("--account", default=None, help="SLURM account to charge")
    s.add_argument("--qos", default=None, help="SLURM quality of service")
    s.add_argument("--constraint", default=None, help="node features, e.g. 'a100|h100'")
    s.add_argument("--job-name", default="vicreg", help="SLURM job name (default vicreg)")
    s.add_argument("--slurm-arg", dest="slurm_args", action="append", type=_key_value, default=[],
                   metavar="KEY=VALUE", help="any other sbatch option, repeatable: --slurm-arg exclusive "
                   "--slurm-arg mail-type=END --slurm-arg reservation=big")
    s.add_argument("--setup", action="append", default=[], metavar="CMD",
                   help="shell line run before the tasks start, repeatable (e.g. 'module load cuda/12.4')")
    r = parser.add_argument_group("pre-emption and logs")
    r.add_argument("--signal-delay", type=int, default=120,
                   help="seconds before the time limit at which SLURM sends USR2 (checkpoint + requeue; default 120)")
    r.add_argument("--max-requeues", type=int, default=30,
                   help="requeues after time limits before giving up (pre-emptions do not count; default 30)")
    r.add_argument("--log-dir", default="runs/slurm/%j",
                   help="submitit folder for the sbatch script, pickles and per-task logs; %%j = job id "
                        "(default runs/slurm/%%j)")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, metavar="-- TRAIN_ARGS",
                        help="arguments of `vicreg-edu train`, after a `--`")


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


def train_arguments(args: argparse.Namespace, world: int):
    """Check the trainer's arguments here, before submitting; return ``(argv, Config)``.

    The argv gets an absolute ``--out-dir``, so the job writes where you expect whatever its cwd.
    """
    from .cli import add_train_args, config_from_args

    argv = list(args.train_args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    parser = _TrainArgsParser(prog="vicreg-edu train", add_help=False)
    add_train_args(parser)
    parsed = parser.parse_args(argv)
    if parsed.resume not in (None, "auto"):
        raise SubmitError(f"--resume {parsed.resume}: a submitted job always resumes with --resume auto from "
                          f"<out_dir>/checkpoint.pt (so a requeued job continues); to start from another "
                          f"checkpoint, copy it there first")
    try:
        cfg = config_from_args(parsed)
    except (ValueError, TypeError, KeyError) as e:  # an unknown key or a bad value in --set
        raise SubmitError(f"bad trainer arguments after `--`: {e}") from e
    if cfg.batch_size % world or cfg.batch_size // world < 2:
        raise SubmitError(f"batch_size={cfg.batch_size} must split into >= 2 images on each of the {world} "
                          f"processes (nodes x tasks-per-node); e.g. --set batch_size={max(2, cfg.batch_size // world) * world}")
    out_dir = str(Path(cfg.out_dir).expanduser().resolve())
    return argv + ["--out-dir", out_dir], cfg.replace(out_dir=out_dir)


def submit(args: argparse.Namespace):
    """Submit one training job from parsed ``submit`` options; return the ``submitit.Job``."""
    tasks, world = resources(args)
    train_argv, cfg = train_arguments(args, world)
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
        job = executor.submit(TrainingJob(train_argv, args.gpus_per_node))
    except submitit.core.utils.FailedJobError as e:  # sbatch said no: bad partition, account, resources...
        raise SubmitError(f"sbatch refused the job: {' '.join(str(e).split())}") from e
    job_folder = Path(str(job.paths.folder)).resolve()
    print(f"submitted job {job.job_id}: {args.nodes} node(s) x {tasks} task(s) = {world} processes "
          f"({'gloo on CPU' if not args.gpus_per_node else f'{args.gpus_per_node} GPUs per node, NCCL'})")
    print(f"  logs:        {job_folder}  (task 0: {Path(str(job.paths.stdout)).name})")
    print(f"  checkpoint:  {cfg.out_dir}/checkpoint.pt   metrics: {cfg.out_dir}/metrics.jsonl")
    print(f"  follow:      tail -f {job.paths.stdout}   |   squeue -j {job.job_id}   |   scancel {job.job_id}")
    return job


def submit_from_args(args: argparse.Namespace) -> int:
    """Entry point of ``vicreg-edu submit``: submit, print the job id and folders, return 0.

    A mistake the user can fix raises :class:`SubmitError` (a ``UserError``), which the command
    line prints as one line ``vicreg-edu: error: ...`` with exit status 2.
    """
    submit(args)
    return 0


def build_parser(prog: str = "vicreg-edu submit") -> argparse.ArgumentParser:
    """The parser of ``python -m vicreg_edu.slurm``: :func:`add_submit_args` plus ``--debug``."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of errors")
    add_submit_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m vicreg_edu.slurm [options] -- [train arguments]``; exit status 2 on a user error."""
    args = build_parser("python -m vicreg_edu.slurm").parse_args(argv)
    try:
        return submit_from_args(args)
    except UserError as e:
        if args.debug or os.environ.get("VICREG_EDU_DEBUG", "") not in ("", "0"):
            raise
        print(f"vicreg-edu: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
