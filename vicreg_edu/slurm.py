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
``vicreg_edu.trainer.train_and_report`` on the job's config (as the official ``run_with_submitit.py``
calls ``main_vicreg.main``), whose ``distributed.setup`` picks NCCL on GPUs and gloo on CPUs.

Resources. Unless given, each task asks for ``--cpus-per-task`` = the config's ``num_workers``
(data-loading workers; at least 1), as the official launcher asks 10 CPUs per GPU task for its 10
workers: the main process of a GPU task mostly waits on the GPU, and 10 per GPU is what 8-GPU
nodes with 80 hardware threads can give (workers + 1 = 88 would not fit them). Memory, per node:
40 GB per GPU as the official launcher, or 4 GB per task without GPUs (a CPU smoke test of a
small run). The request is printed before sbatch sees it (:func:`request`, :class:`Request`).

Without submitit: ``vicreg_edu/launch/multinode.sbatch`` (:func:`sbatch_script`; ``vicreg-edu
submit --print-sbatch`` prints it) runs one ``torchrun`` per node under ``srun``, for clusters
where ``srun torchrun`` is the house style.

Pre-emption and time limits. While it trains (or runs ``-- eval --protocol``), the job catches
SIGTERM, SIGUSR1 and SIGUSR2: it finishes the current step (all processes agree on the step to stop
at), writes ``<out_dir>/checkpoint.pt`` at that step (every process waits for the write; its time
is logged), then hands the signal to the handler that was there before (submitit's) and exits with
128 + the signal number. Time limit: submitit asks SLURM for ``--signal=USR2@<signal-delay>``, so
USR2 comes that many seconds before the limit: the checkpoint is written first, then submitit's
handler calls :meth:`TrainingJob.checkpoint`, which returns the same job (its config has
``resume="auto"``), pickles it and runs ``scontrol requeue``. Pre-emption: SLURM sends SIGTERM to
every process of the job, then SIGKILL after ``KillWait`` (30 s by default; the partition's
``GraceTime`` for a pre-emption) and, with ``PreemptMode=REQUEUE`` or ``--requeue`` (asked by
default, :class:`Request`), requeues the job itself; submitit only logs "Bypassing signal SIGTERM".
Either way the requeued job continues from the checkpoint at the step reached (none is lost;
``ckpt_every`` is for crashes) and the resumed run is exact (same weights as an uninterrupted
run; ``tests/test_slurm.py`` checks both on a real SLURM). That kill window must cover one or two
steps plus a checkpoint write (ImageNet ResNet-50: 1.42 GB); the USR2 lead time (``--signal-delay``,
120 s) is the larger window. ``out_dir`` and ``--log-dir`` must be on a filesystem every node sees.
``--dry-run`` prints the request and its sbatch options and checks what the submitting host can
(``data_dir``, ``out_dir``, GPUs for a GPU preset, the batch over the processes) without submitting.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import Config, check_batch_split
from .errors import UserError, one_line


class SubmitError(UserError, ValueError):
    """A submission that cannot work (bad option or trainer arguments, no sbatch, sbatch refused it)."""


def task_environment(gpus_per_node: int):
    """In a SLURM task started by submitit: the CPU/GPU choice, the thread count and the variables
    torchrun would set (``RANK``, ``WORLD_SIZE``, ...); prints the task's line; returns submitit's
    ``TorchDistributedEnvironment``."""
    import submitit

    env = submitit.JobEnvironment()
    if gpus_per_node == 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if "OMP_NUM_THREADS" not in os.environ:  # as torchrun: one process per task must not oversubscribe
        os.environ["OMP_NUM_THREADS"] = os.environ.get("SLURM_CPUS_PER_TASK", "1")
    import torch  # already imported with this module: the variable alone would no longer change its threads

    torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
    dist_env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    backend = "gloo (CPU)" if gpus_per_node == 0 else "nccl (GPU)"
    print(
        f"[vicreg-edu submit] job {env.job_id} attempt {int(os.environ.get('SLURM_RESTART_COUNT', 0)) + 1} | "
        f"task {dist_env.rank}/{dist_env.world_size} (local {dist_env.local_rank}) on {socket.gethostname()} | "
        f"master {dist_env.master_addr}:{dist_env.master_port} | {backend} | "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} = torch threads {torch.get_num_threads()}",
        flush=True,
    )
    return dist_env


class EvalJob:
    """The picklable callable submitit runs in every SLURM task of ``submit -- eval``: one process of
    ``vicreg-edu eval --protocol ...`` (arguments with absolute paths and ``--resume auto``, so a
    requeued job continues from ``eval_checkpoint.pt``).

    ``main`` is the command line's entry point (:func:`vicreg_edu.cli.main`, passed in by the CLI and
    pickled by reference), so this module never imports the one that imports it.
    """

    def __init__(self, argv: list[str], gpus_per_node: int = 0, main: Callable[[list[str]], int] | None = None):
        self.argv = list(argv)
        self.gpus_per_node = gpus_per_node
        self.main = main

    def __call__(self) -> None:
        dist_env = task_environment(self.gpus_per_node)
        status = self.main(["eval", *self.argv])
        if status:
            raise RuntimeError(f"vicreg-edu eval stopped with status {status} (task {dist_env.rank})")

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on USR2 (after the protocol's checkpoint): requeue, resuming."""
        import submitit

        print("[vicreg-edu submit] USR2 received: requeueing the evaluation (--resume auto)", flush=True)
        return submitit.helpers.DelayedSubmission(EvalJob(self.argv, self.gpus_per_node, self.main))


def eval_job_argv(argv: list[str], args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """``eval``'s arguments for the job (paths absolute, ``--out-dir`` explicit, ``--resume auto``) and the
    host-side checks passed, in words.

    Raises:
        SubmitError: the input file, the data folder or the output folder is not usable from here.
    """
    if (args.checkpoint is None) == (args.weights is None):
        raise SubmitError("`submit -- eval` needs one of --checkpoint (a trainer checkpoint) or --weights")
    flag = "--checkpoint" if args.checkpoint else "--weights"
    source = Path(args.checkpoint or args.weights).expanduser().resolve()
    if not source.is_file():
        raise SubmitError(f"{flag} {source}: no such file on this host")
    passed = [f"input {source} found"]
    if args.data_dir is not None:
        data = Path(args.data_dir).expanduser().resolve()
        if not (data / "train").is_dir():
            raise SubmitError(f"--data-dir {data} has no train/ folder (expected train/<class>/ and val/<class>/)")
        passed.append(f"data_dir {data} readable")
    if args.out_dir:
        out = Path(args.out_dir).expanduser().resolve()
    else:
        out = source.parent / f"eval_{args.protocol}{args.percent if args.protocol == 'semi' and args.percent else ''}"
    base = _nearest_existing(out)
    if not _writable(base):
        raise SubmitError(f"--out-dir {out} cannot be written ({base} is not a writable folder)")
    passed.append(f"out_dir {out} writable")
    new = list(argv)
    for option in (flag, "--data-dir", "--subset", "--out-dir"):
        if option in new:
            new[new.index(option) + 1] = str(Path(new[new.index(option) + 1]).expanduser().resolve())
    if "--out-dir" not in new:
        new += ["--out-dir", str(out)]
    if args.resume is None:
        new += ["--resume", "auto"]
    return new, passed


def submit_eval(
    args: argparse.Namespace, argv: list[str], eval_args: argparse.Namespace, main: Callable[[list[str]], int]
):
    """``vicreg-edu submit [options] -- eval --protocol ...``: the paper's evaluation as a SLURM job
    (one task per GPU, or CPU tasks) whose tasks run ``main(["eval", ...])`` (the CLI's entry point);
    returns the ``submitit.Job`` (None with ``--dry-run``)."""
    job_argv, passed = eval_job_argv(argv, eval_args)
    workers = eval_args.workers if eval_args.workers is not None else 8
    return submit(
        args,
        types.SimpleNamespace(num_workers=workers, batch_size=eval_args.batch_size or 256),
        job=EvalJob(job_argv, args.gpus_per_node, main),
        passed=passed,
        what="vicreg-edu eval " + " ".join(job_argv),
    )


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
        t0 = time.time()
        dist_env = task_environment(self.gpus_per_node)
        if dist_env.rank == 0:
            print(f"[vicreg-edu submit] {self.resume_note()}", flush=True)
        from .trainer import train_and_report

        try:
            train_and_report(Config(**self.config))
        except UserError as e:  # one line in the task's log; SLURM/submitit see a failed job
            if dist_env.rank == 0:
                print(f"vicreg-edu: error: {one_line(e)}", flush=True)
            raise RuntimeError(f"vicreg-edu train stopped: {one_line(e)}") from None
        print(
            f"[vicreg-edu submit] task {dist_env.rank} done: {time.process_time():.1f} s CPU, "
            f"{time.time() - t0:.1f} s wall in this attempt",
            flush=True,
        )

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
        """Called by submitit on USR2 (the time limit; after the trainer's checkpoint): requeue this job, resuming."""
        import submitit

        print(
            "[vicreg-edu submit] USR2 received: requeueing; the next attempt resumes from the latest "
            "checkpoint (resume=auto)",
            flush=True,
        )
        return submitit.helpers.DelayedSubmission(TrainingJob(self.config, self.gpus_per_node))


def job_config(cfg: Config) -> Config:
    """The config a submitted job runs: ``resume="auto"`` and an absolute ``out_dir``.

    Raises:
        SubmitError: ``cfg.resume`` names a checkpoint file (a job always resumes from its own out_dir).
    """
    if cfg.resume not in ("", "auto"):
        raise SubmitError(
            f"--resume {cfg.resume}: a submitted job always resumes with --resume auto from "
            f"<out_dir>/checkpoint.pt (so a requeued job continues); to start from another "
            f"checkpoint, copy it there first"
        )
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
        raise SubmitError(
            f"--tasks-per-node {tasks} with --gpus-per-node {args.gpus_per_node}: the trainer runs "
            "one process per GPU (task LOCAL_RANK uses cuda:LOCAL_RANK), so they must be equal"
        )
    for name in ("cpus_per_task", "time", "signal_delay", "max_requeues"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "max_requeues" else 1):
            raise SubmitError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.mem is not None and not _MEM.fullmatch(args.mem):
        raise SubmitError(
            f"--mem {args.mem}: expected SLURM's memory syntax, an integer with an optional unit "
            f"K, M, G or T (MB without one), e.g. 64G or 64GB"
        )
    if args.signal_delay >= args.time * 60:
        raise SubmitError(
            f"--signal-delay {args.signal_delay} s is not shorter than --time {args.time} min: SLURM "
            "would send USR2 at once and the job would requeue without training"
        )
    return tasks, args.nodes * tasks


GPU_MEM_GB = 40  # per GPU, as the official run_with_submitit.py (mem_gb = 40 * num_gpus_per_node)
CPU_TASK_MEM_GB = 4  # per task without GPUs (one demo process, 1 full-size epoch on CPU: 1.5 GB peak RSS)
_MEM = re.compile(r"\d+([KMGT]B?)?", re.IGNORECASE)  # sbatch --mem: an integer, MB unless a unit follows


@dataclass(frozen=True)
class Request:
    """What ``vicreg-edu submit`` asks SLURM for; ``*_from`` says where each derived number came from."""

    nodes: int
    tasks_per_node: int
    gpus_per_node: int
    cpus_per_task: int
    cpus_from: str
    mem: str  # per node, sbatch syntax
    mem_from: str
    time_min: int
    signal_delay_s: int
    max_requeues: int
    partition: str | None = None
    requeue: bool = True

    @property
    def world(self) -> int:
        return self.nodes * self.tasks_per_node

    def lines(self) -> list[str]:
        """The block printed before submission."""

        def plural(n: int, word: str) -> str:
            return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith("s") else "s")

        hours = f" ({self.time_min / 60:g} h)" if self.time_min >= 60 else ""
        backend = f"{self.gpus_per_node} GPUs per node, NCCL" if self.gpus_per_node else "gloo on CPU"
        return [
            f"requesting: {plural(self.nodes, 'node')} x {plural(self.tasks_per_node, 'task')} = "
            f"{plural(self.world, 'process')} ({backend}), {plural(self.cpus_per_task, 'CPU')} per task, "
            f"{self.mem} memory per node, time {self.time_min} min{hours}, "
            f"signal USR2 at -{self.signal_delay_s} s, "
            f"partition {self.partition or '(cluster default)'}",
            f"  CPUs per task: {self.cpus_from}",
            f"  memory:        {self.mem_from}",
            f"  signal:        USR2 {self.signal_delay_s} s before the time limit (--signal-delay): checkpoint "
            f"and requeue, at most {self.max_requeues} times (--max-requeues)",
            "  requeue:       "
            + (
                "--requeue (SLURM may requeue the job after a pre-emption or a node failure; --no-requeue to refuse)"
                if self.requeue
                else "--no-requeue (a pre-empted job ends; the time-limit requeue still runs scontrol requeue)"
            ),
        ]


def request(args: argparse.Namespace, cfg: Config) -> Request:
    """The resources of a job: the options given, else derived from ``cfg`` (module docstring), checked.

    >>> from vicreg_edu import cli
    >>> args = cli.build_parser().parse_args(["submit", "--nodes", "4", "--gpus-per-node", "8"])
    >>> r = request(args, cli.get_config("imagenet-resnet50"))
    >>> (r.tasks_per_node, r.cpus_per_task, r.mem, r.signal_delay_s)
    (8, 10, '320G', 120)
    """
    tasks, _ = resources(args)
    if args.cpus_per_task is not None:
        cpus, cpus_from = args.cpus_per_task, "--cpus-per-task"
    else:
        cpus = max(1, cfg.num_workers)
        cpus_from = (
            f"num_workers={cfg.num_workers} data-loading workers (the official launcher: 10 for 10), "
            f"at least 1; --cpus-per-task to change"
        )
    if args.mem is not None:
        mem, mem_from = args.mem, "--mem"
    elif args.gpus_per_node:
        mem = f"{GPU_MEM_GB * args.gpus_per_node}G"
        mem_from = f"{GPU_MEM_GB} GB per GPU x {args.gpus_per_node} (the official launcher's); --mem to change"
    else:
        mem = f"{CPU_TASK_MEM_GB * tasks}G"
        mem_from = f"{CPU_TASK_MEM_GB} GB per CPU task x {tasks}; --mem to change"
    return Request(
        nodes=args.nodes,
        tasks_per_node=tasks,
        gpus_per_node=args.gpus_per_node,
        cpus_per_task=cpus,
        cpus_from=cpus_from,
        mem=mem,
        mem_from=mem_from,
        time_min=args.time,
        signal_delay_s=args.signal_delay,
        max_requeues=args.max_requeues,
        partition=args.partition,
        requeue=getattr(args, "requeue", True),
    )


def sbatch_script() -> Path:
    """The shipped ``srun torchrun`` sbatch script, ``vicreg_edu/launch/multinode.sbatch``."""
    return Path(__file__).resolve().parent / "launch" / "multinode.sbatch"


def print_sbatch() -> None:
    """``vicreg-edu submit --print-sbatch``: the script's path and how to use it on stderr, its text on stdout."""
    path = sbatch_script()
    print(
        f"# {path}\n# copy and edit the #SBATCH lines, then: sbatch vicreg.sbatch --preset ... --set out_dir=...\n"
        f"#   vicreg-edu submit --print-sbatch > vicreg.sbatch",
        file=sys.stderr,
        flush=True,
    )
    print(path.read_text(), end="", flush=True)


def needs_gpus(cfg: Config) -> bool:
    """A run that is meant for GPUs: a ResNet-50 not pinned to the CPU (the ImageNet presets)."""
    return cfg.backbone == "resnet50" and cfg.device != "cpu"


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable(folder: Path) -> bool:
    """A file can be created in ``folder`` (a probe file, removed at once; root passes ``os.access`` everywhere)."""
    if not folder.is_dir():
        return False
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".vicreg-write-test-"):
            return True
    except OSError:
        return False


def slurm_minutes(text: str) -> int | None:
    """A SLURM time limit as sinfo prints it (``%l``) in minutes; None for ``infinite`` or unreadable text.

    >>> slurm_minutes("3-00:00:00"), slurm_minutes("1:30:00"), slurm_minutes("45:00"), slurm_minutes("infinite")
    (4320, 90, 45, None)
    """
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", text.strip())
    if not m:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return days * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def partition_time_limit(partition: str | None) -> tuple[str, int] | None:
    """``(partition, MaxTime in minutes)`` from ``sinfo`` (the default partition when None); None when sinfo
    is missing, fails or says ``infinite``."""
    if shutil.which("sinfo") is None:
        return None
    import subprocess

    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %l"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    for line in out.stdout.splitlines():
        name, _, limit = line.strip().partition(" ")
        default = name.endswith("*")
        name = name.rstrip("*")
        if (partition is None and default) or name == partition:
            minutes = slurm_minutes(limit)
            return (name, minutes) if minutes is not None else None
    return None


def check_time(args: argparse.Namespace) -> list[str]:
    """``--time`` against the partition's limit when ``sinfo`` can tell it (the check passed, in words).

    Raises:
        SubmitError: ``--time`` is more than the partition allows (sbatch would refuse or pend forever).
    """
    limit = partition_time_limit(args.partition)
    if limit is None:
        return []
    name, minutes = limit
    if args.time > minutes:
        raise SubmitError(
            f"--time {args.time} min is more than partition {name}'s limit of {minutes} min (sinfo): "
            f"use --time {minutes} or less (the job checkpoints and requeues at every limit)"
        )
    return [f"--time {args.time} min within partition {name}'s {minutes} min"]


def check_submission(args: argparse.Namespace, cfg: Config) -> list[str]:
    """What the submitting host can check before the queue wait; returns the checks passed, in words.

    GPUs asked for a GPU run (:func:`needs_gpus`); ``data_dir`` is a readable folder (with ``train/``
    for an image folder); ``out_dir`` is a writable folder, or can be created (its nearest existing
    parent is writable). The world size dividing the batch is checked by :func:`submit` before.

    Raises:
        SubmitError: the first check that fails, in one line.
    """
    passed = []
    if needs_gpus(cfg) and not args.gpus_per_node:
        raise SubmitError(
            f"{cfg.backbone} on {cfg.dataset} is a GPU run, but no GPUs are asked for (--gpus-per-node 0): it "
            "would go out as CPU tasks with gloo; add --gpus-per-node N (one task per GPU), or --set device=cpu "
            "for a CPU smoke test"
        )
    if args.gpus_per_node:
        passed.append(f"{args.gpus_per_node} GPUs per node asked for")
    if cfg.dataset in ("imagefolder", "imagenet") or (cfg.data_dir and not cfg.download):
        if not cfg.data_dir:
            raise SubmitError(f"dataset={cfg.dataset} needs data_dir=... (the folder that holds train/)")
        data = Path(cfg.data_dir).expanduser()
        if not data.is_dir() or not os.access(data, os.R_OK | os.X_OK):
            raise SubmitError(
                f"data_dir={cfg.data_dir!r} is not a readable folder on this host ({data.resolve()}); the job "
                "would fail on the compute node: fix data_dir (it must be on a filesystem the nodes see)"
            )
        if cfg.dataset in ("imagefolder", "imagenet") and not (data / "train").is_dir():
            raise SubmitError(
                f"data_dir={cfg.data_dir!r} has no train/ folder (expected train/<class>/<image>, and optionally val/)"
            )
        passed.append(f"data_dir {data.resolve()} readable")
    out = Path(cfg.out_dir)
    base = _nearest_existing(out)
    if not _writable(base):
        where = "is not a writable folder" if base == out else f"cannot be created: {base} is not a writable folder"
        raise SubmitError(f"out_dir={cfg.out_dir!r} {where}; choose another out_dir (on a filesystem the nodes see)")
    passed.append(f"out_dir {out} {'writable' if base == out else f'can be created (in {base})'}")
    return passed


def submitit_parameters(args: argparse.Namespace, req: Request) -> dict:
    """What :func:`submit` hands ``submitit.AutoExecutor.update_parameters``."""
    params = dict(
        name=args.job_name,
        nodes=req.nodes,
        tasks_per_node=req.tasks_per_node,
        timeout_min=req.time_min,
        slurm_signal_delay_s=req.signal_delay_s,
        cpus_per_task=req.cpus_per_task,
        slurm_mem=req.mem,
    )
    if req.gpus_per_node:
        params["gpus_per_node"] = req.gpus_per_node  # 0 is left out: clusters without GPU gres reject it
    optional = {
        "slurm_partition": args.partition,
        "slurm_account": args.account,
        "slurm_qos": args.qos,
        "slurm_constraint": args.constraint,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    extra = dict(args.slurm_args or [])
    if req.requeue:
        extra.setdefault("requeue", True)
    if extra:
        params["slurm_additional_parameters"] = extra
    if args.setup:
        params["slurm_setup"] = list(args.setup)
    return params


def sbatch_lines(params: dict) -> list[str]:
    """The ``#SBATCH`` lines submitit writes for ``params`` (the ones this module sets)."""
    names = {
        "name": "job-name",
        "nodes": "nodes",
        "tasks_per_node": "ntasks-per-node",
        "timeout_min": "time",
        "cpus_per_task": "cpus-per-task",
        "slurm_mem": "mem",
        "gpus_per_node": "gpus-per-node",
        "slurm_partition": "partition",
        "slurm_account": "account",
        "slurm_qos": "qos",
        "slurm_constraint": "constraint",
    }
    lines = [f"#SBATCH --{names[k]}={v}" for k, v in params.items() if k in names]
    lines.append(f"#SBATCH --signal=USR2@{params['slurm_signal_delay_s']}")
    for k, v in params.get("slurm_additional_parameters", {}).items():
        lines.append(f"#SBATCH --{k.replace('_', '-')}" + ("" if v is True else f"={v}"))
    lines += [f"# setup: {line}" for line in params.get("slurm_setup", [])]
    return lines


def submit(args: argparse.Namespace, cfg: Config, job=None, passed=None, what: str = ""):
    """Submit one job: the parsed ``submit`` options and the run's config; return the ``submitit.Job``.

    ``job``: the callable the tasks run (default :class:`TrainingJob` of ``cfg``; :func:`submit_eval`
    passes an :class:`EvalJob` with its checks ``passed`` and its command ``what``). With ``--dry-run``,
    print the request and the sbatch options, run the checks (:func:`check_submission`) and submit
    nothing (None). With ``--print-sbatch``, print the shipped sbatch script instead (:func:`print_sbatch`).
    """
    if getattr(args, "print_sbatch", False):
        print_sbatch()
        return None
    req = request(args, cfg)
    tasks, world = req.tasks_per_node, req.world
    check_batch_split(cfg.batch_size, world)
    print("\n".join(req.lines()), flush=True)
    if job is None:
        cfg = job_config(cfg)
        passed = check_submission(args, cfg)
        job = TrainingJob(cfg.to_dict(), args.gpus_per_node)
        what = f"vicreg-edu train (resume=auto, out_dir {cfg.out_dir})"
    passed = list(passed or []) + check_time(args)
    params = submitit_parameters(args, req)
    if getattr(args, "dry_run", False):
        print("sbatch options (through submitit):")
        print("\n".join(f"  {line}" for line in sbatch_lines(params)))
        print(f"  command: {what} on {world} processes")
        print(f"checks passed: batch {cfg.batch_size} over {world} processes; " + "; ".join(passed))
        print("dry run: nothing submitted", flush=True)
        return None
    try:
        import submitit
    except ImportError:
        raise SubmitError("submitit is not installed: pip install 'vicreg-edu[slurm]' (or pip install submitit)")
    if shutil.which("sbatch") is None:
        raise SubmitError(
            "sbatch not found: run this on a SLURM login node (tests/slurm_fixture.py shows a "
            "single-node SLURM on one machine)"
        )
    executor = submitit.AutoExecutor(folder=args.log_dir, cluster="slurm", slurm_max_num_timeout=args.max_requeues)
    executor.update_parameters(**params)
    job_fn = job
    try:
        job = executor.submit(job_fn)
    except submitit.core.utils.FailedJobError as e:  # sbatch said no: bad partition, account, resources...
        raise SubmitError(f"sbatch refused the job: {' '.join(str(e).split())}") from e
    job_folder = Path(str(job.paths.folder)).resolve()
    print(
        f"submitted job {job.job_id}: {args.nodes} node(s) x {tasks} task(s) = {world} processes "
        f"({'gloo on CPU' if not args.gpus_per_node else f'{args.gpus_per_node} GPUs per node, NCCL'})"
    )
    print(f"  logs:        {job_folder}  (task 0: {Path(str(job.paths.stdout)).name})")
    if isinstance(job_fn, TrainingJob):
        print(f"  checkpoint:  {cfg.out_dir}/checkpoint.pt   metrics: {cfg.out_dir}/metrics.jsonl")
    else:
        print(f"  command:     {what}")
    print(f"  follow:      tail -f {job.paths.stdout}   |   squeue -j {job.job_id}   |   scancel {job.job_id}")
    return job
