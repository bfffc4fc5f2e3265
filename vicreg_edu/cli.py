"""``vicreg-edu``: train, evaluate, submit to SLURM and inspect presets from the command line.

    vicreg-edu train --preset demo                     # the README's main job: train + k-NN table
    vicreg-edu train --preset cifar10 --set data_dir=~/data download=true epochs=200
    vicreg-edu train --set dataset=imagefolder augment=imagenet data_dir=~/my_images   # your own images
    vicreg-edu eval --checkpoint runs/demo/checkpoint.pt --method knn
    vicreg-edu eval --protocol linear --data-dir /imagenet --checkpoint runs/x/checkpoint.pt  # the paper's protocol
    vicreg-edu export --checkpoint runs/x/checkpoint.pt --out resnet50.pth   # torchvision ResNet-50 weights
    vicreg-edu submit --nodes 4 --gpus-per-node 8 -- --preset imagenet-resnet50   # SLURM (submitit)
    vicreg-edu presets --show imagenet-resnet50         # every knob of a preset

``python -m vicreg_edu ...`` is the same command; several processes:

    torchrun --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2 --nproc_per_node=N \\
        -m vicreg_edu train ...

(USR1/USR2 in the list: torchrun then passes SLURM's time-limit signal on to the trainers).
This module is the only one that parses arguments: ``submit`` hands :mod:`vicreg_edu.slurm` the
options and a validated :class:`~vicreg_edu.config.Config`.

Errors you can fix (a bad setting, missing or unreadable data, a missing or foreign checkpoint)
print one line, ``vicreg-edu: error: ...``, and exit with status 2; ``--debug`` (or
``VICREG_EDU_DEBUG=1``) shows the Python traceback instead. Anything else is a bug and raises.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

from .config import PRESETS, Config, apply_overrides, check_device, get_config
from . import slurm
from .errors import UserError, one_line
from .slurm import SubmitError

PROG = "vicreg-edu"
RANK_0_GRACE_S = 3.0  # seconds the other ranks wait before exiting on an error only rank 0 reports


class _Parser(argparse.ArgumentParser):
    """argparse, but under torchrun only rank 0 prints usage errors (every rank still exits 2)."""

    def error(self, message: str):
        if _rank() != 0:
            time.sleep(RANK_0_GRACE_S)  # torchrun stops every worker once one exits: let rank 0 print first
            sys.exit(2)
        super().error(message)


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _presets_help() -> str:
    lines = []
    for name, factory in PRESETS.items():
        cfg = factory()
        lines.append(
            f"  {name:<24s} {cfg.dataset}, {cfg.backbone} + expander {cfg.expander}, "
            f"batch {cfg.batch_size}, {cfg.epochs} epochs, {cfg.optimizer} base_lr {cfg.base_lr}"
        )
    return "presets:\n" + "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# train


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``vicreg-edu train`` (also those after ``--`` of ``vicreg-edu submit``)."""
    parser.add_argument(
        "--preset",
        default="demo",
        choices=sorted(PRESETS),
        help="named configuration (default: demo). See vicreg_edu/config.py.",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override config fields, e.g. --set epochs=5 batch_size=128 aug.jitter_p=0 "
        "(keys: see `vicreg-edu presets --show demo`)",
    )
    parser.add_argument("--epochs", type=int, help="shortcut for --set epochs=N")
    parser.add_argument("--out-dir", help="shortcut for --set out_dir=PATH")
    parser.add_argument("--data-dir", help="shortcut for --set data_dir=PATH")
    parser.add_argument("--resume", help="'auto' (latest checkpoint in out_dir) or a checkpoint path")
    _add_debug(parser)


def _add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of errors (also: VICREG_EDU_DEBUG=1)"
    )


def config_from_args(args: argparse.Namespace) -> Config:
    """The :class:`Config` described by parsed ``train`` arguments (validated)."""
    cfg = apply_overrides(get_config(args.preset), args.overrides)
    shortcuts = {"epochs": args.epochs, "out_dir": args.out_dir, "data_dir": args.data_dir, "resume": args.resume}
    return cfg.replace(**{k: v for k, v in shortcuts.items() if v is not None})


# ----------------------------------------------------------------------------------------------
# submit


def _key_value(text: str) -> tuple[str, str | bool]:
    key, sep, value = text.partition("=")
    if not key or key.startswith("-"):
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE (an sbatch option without its dashes, e.g. "
            f"mail-type=END) or KEY alone for a flag; got {text!r}"
        )
    return key, (value if sep else True)


class _TrainArgsParser(argparse.ArgumentParser):
    """Parses the trainer's arguments at submission; a mistake is a :class:`SubmitError`, not a usage dump."""

    def error(self, message: str):
        raise SubmitError(f"bad trainer arguments after `--`: {message} (see `vicreg-edu train --help`)")


def _add_resource_args(parser: argparse.ArgumentParser) -> None:
    """``submit``'s resources: nodes, GPUs, tasks, CPUs, memory, time."""
    g = parser.add_argument_group("resources")
    g.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    g.add_argument(
        "--gpus-per-node",
        type=int,
        default=0,
        help="GPUs per node (default 0: CPU tasks with gloo; >0: one task per GPU, NCCL)",
    )
    g.add_argument(
        "--tasks-per-node",
        type=int,
        default=None,
        help="processes per node (default: --gpus-per-node, or 1 without GPUs)",
    )
    g.add_argument(
        "--cpus-per-task",
        type=int,
        default=None,
        help="CPU cores per task (default: the config's num_workers data-loading workers, at least 1, "
        "as the official launcher's 10 for 10 workers)",
    )
    g.add_argument(
        "--mem",
        default=None,
        help="memory per node in SLURM syntax, e.g. 64G (default: 40G per GPU as the official launcher; "
        "4G per task without GPUs)",
    )
    g.add_argument(
        "--time",
        type=int,
        default=4320,
        help="time limit of each job in minutes (default 4320 = 3 days); jobs requeue at the limit",
    )


def _add_scheduling_args(parser: argparse.ArgumentParser) -> None:
    """``submit``'s scheduling options: partition, account, qos, extra sbatch options."""
    s = parser.add_argument_group("scheduling")
    s.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's default)")
    s.add_argument("--account", default=None, help="SLURM account to charge")
    s.add_argument("--qos", default=None, help="SLURM quality of service")
    s.add_argument("--constraint", default=None, help="node features, e.g. 'a100|h100'")
    s.add_argument("--job-name", default="vicreg", help="SLURM job name (default vicreg)")
    s.add_argument(
        "--slurm-arg",
        dest="slurm_args",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, repeatable: --slurm-arg exclusive "
        "--slurm-arg mail-type=END --slurm-arg reservation=big",
    )
    s.add_argument(
        "--setup",
        action="append",
        default=[],
        metavar="CMD",
        help="shell line run before the tasks start, repeatable (e.g. 'module load cuda/12.4')",
    )


def _add_preemption_args(parser: argparse.ArgumentParser) -> None:
    """``submit``'s pre-emption and log options."""
    r = parser.add_argument_group("pre-emption and logs")
    r.add_argument(
        "--signal-delay",
        type=int,
        default=120,
        help="seconds before the time limit at which SLURM sends USR2 (checkpoint + requeue; default 120)",
    )
    r.add_argument(
        "--max-requeues",
        type=int,
        default=30,
        help="requeues after time limits before giving up (pre-emptions do not count; default 30)",
    )
    r.add_argument(
        "--requeue",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ask sbatch for --requeue, so SLURM may requeue the job after a pre-emption or a node failure "
        "(default; --no-requeue to leave it out)",
    )
    r.add_argument(
        "--log-dir",
        default="runs/slurm/%j",
        help="submitit folder for the sbatch script, pickles and per-task logs; %%j = job id (default runs/slurm/%%j)",
    )


def add_submit_args(parser: argparse.ArgumentParser) -> None:
    """The options of ``vicreg-edu submit`` (the trainer's arguments follow a ``--``)."""
    _add_resource_args(parser)
    _add_scheduling_args(parser)
    _add_preemption_args(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the request and its sbatch options, check on this host what can be checked (data_dir and "
        "out_dir, GPUs for a GPU preset, the batch over the processes) and submit nothing",
    )
    parser.add_argument(
        "--print-sbatch",
        action="store_true",
        help="print the path (stderr) and content (stdout) of the package's sbatch script for "
        "multi-node `srun torchrun` runs without submitit, and submit nothing",
    )
    parser.add_argument(
        "train_args",
        nargs=argparse.REMAINDER,
        metavar="-- TRAIN_ARGS",
        help="arguments of `vicreg-edu train`, after a `--`; or `-- eval --protocol linear|semi ...` to submit "
        "the paper's evaluation (resumes with --resume auto after a requeue)",
    )


def submit_config(args: argparse.Namespace) -> Config:
    """The validated :class:`Config` of the trainer's arguments after ``--`` of ``vicreg-edu submit``.

    Raises:
        SubmitError: an unknown option, preset or key, or a bad value.
    """
    argv = list(args.train_args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    parser = _TrainArgsParser(prog="vicreg-edu train", add_help=False)
    add_train_args(parser)
    try:
        return config_from_args(parser.parse_args(argv))
    except (ValueError, TypeError, KeyError) as e:  # an unknown key or a bad value in --set
        raise SubmitError(f"bad trainer arguments after `--`: {e}") from e


# ----------------------------------------------------------------------------------------------
# the vicreg-edu command


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``vicreg-edu`` parser (also ``python -m vicreg_edu`` and ``torchrun -m vicreg_edu``)."""
    parser = _Parser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_presets_help()
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,export,submit,presets}")

    p_train = sub.add_parser(
        "train",
        help="pre-train VICReg (then k-NN: trained vs random encoder vs raw pixels)",
        description=_TRAIN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_presets_help(),
    )
    add_train_args(p_train)

    p_eval = sub.add_parser(
        "eval",
        help="evaluate a frozen backbone: quick k-NN / linear probe (--method), or "
        "the paper's protocol (--protocol linear|semi, also under torchrun)",
        description=_EVAL_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_eval_args(p_eval)

    p_export = sub.add_parser(
        "export",
        help="write a checkpoint's backbone as a torchvision ResNet state dict "
        "(the official resnet50.pth layout, no fc)",
    )
    p_export.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by `train` (resnet18/resnet50)")
    p_export.add_argument("--out", required=True, help="the file to write, e.g. resnet50.pth")
    _add_debug(p_export)

    p_submit = sub.add_parser(
        "submit",
        help="submit `train` to SLURM through submitit (pip install "
        "'vicreg-edu[slurm]'); `vicreg-edu submit --help` for its options",
    )
    _add_debug(p_submit)
    add_submit_args(p_submit)

    p_presets = sub.add_parser("presets", help="list the presets, or print every field of one")
    p_presets.add_argument("--show", metavar="PRESET", choices=sorted(PRESETS), help="print this preset as JSON")
    _add_debug(p_presets)
    return parser


def _guarded(job, args: argparse.Namespace | None = None) -> int:
    """Run ``job()``; a :class:`UserError` becomes one line on stderr (rank 0) and exit status 2."""
    debug = bool(getattr(args, "debug", False)) or os.environ.get("VICREG_EDU_DEBUG", "") not in ("", "0")
    try:
        status = job()
    except UserError as e:
        if debug:
            raise
        if _rank() == 0:
            print(f"{PROG}: error: {one_line(e)}", file=sys.stderr, flush=True)
        else:  # torchrun stops every worker once one exits: give rank 0 the time to print the line first
            time.sleep(RANK_0_GRACE_S)
        return 2
    return status if isinstance(status, int) and not isinstance(status, bool) and status != 0 else 0


_TRAIN_DESCRIPTION = """\
Pre-train VICReg, then print the k-NN table. What it writes to <out_dir>: checkpoint.pt (every epoch,
every ckpt_every steps, and at a stop signal), metrics.jsonl (every log_every steps), config.json, and
TensorBoard events in tb/ when tensorboard is installed (pip install 'vicreg-edu[tensorboard]'; the
start lines say where they go or that the package is missing; --set tensorboard=false).

Progress: a tqdm bar when stderr is a terminal; otherwise (a file, a SLURM log, a notebook) a plain
line every print_every steps (step, epoch, the global batch's loss, images/s, ETA) and one per epoch.
SIGTERM, SIGUSR1 or SIGUSR2 finish the step, write the checkpoint and stop with one line; --resume
auto continues exactly and says "resumed from PATH at step N". Under torchrun, name the signals:

  torchrun --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2 --nproc_per_node=8 \\
      -m vicreg_edu train --preset imagenet-resnet50 --set data_dir=/imagenet
"""
_EVAL_DESCRIPTION = """\
Without --protocol: the quick evaluation of a trainer checkpoint on its own dataset (k-NN, or a
linear probe on precomputed features, one process).

With --protocol: the paper's evaluation (official evaluate.py; vicreg_edu/linear_eval.py) on an
image folder, one process or under torchrun, checkpointed every epoch, printing top-1 / top-5:

  vicreg-edu eval --protocol linear --data-dir /imagenet --checkpoint runs/x/checkpoint.pt
  vicreg-edu eval --protocol linear --data-dir /imagenet --weights resnet50.pth    # official weights: 73.2 %
  vicreg-edu eval --protocol semi --percent 1 --subset 1percent.txt --data-dir /imagenet --weights resnet50.pth
  torchrun --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2 --nproc_per_node=8 \\
      -m vicreg_edu eval --protocol linear ... --resume auto

Defaults: linear 100 epochs, batch 256, --lr-head 0.02, --weight-decay 1e-6; semi 20 epochs,
--weight-decay 0, --lr-backbone/--lr-head 0.03/0.08 (1 %) or 0.01/0.1 (10 %). The subset lists are
SimCLR's imagenet_subsets/{1,10}percent.txt (github.com/google-research/simclr).
"""
_PROTOCOL_ONLY = (
    "percent",
    "subset",
    "weights",
    "data_dir",
    "batch_size",
    "lr_head",
    "lr_backbone",
    "weight_decay",
    "crop_size",
    "resize_size",
    "workers",
    "seed",
    "max_epochs",
    "log_every",
    "out_dir",
    "resume",
)


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``vicreg-edu eval``: the quick evaluation, and the protocol's (all default None)."""
    p.add_argument("--checkpoint", help="a checkpoint.pt written by `train`")
    p.add_argument(
        "--method",
        choices=["knn", "linear"],
        default="knn",
        help="without --protocol: knn: weighted k-NN (k=20, cosine, T=0.07); linear: linear probe on "
        "precomputed frozen features",
    )
    p.add_argument("--epochs", type=_positive_int, help="training epochs (default 100; --protocol semi: 20)")
    p.add_argument("--device", default="auto", help="auto (GPU if available), cpu, cuda or cuda:N")
    g = p.add_argument_group("the paper's protocol")
    g.add_argument(
        "--protocol",
        choices=["linear", "semi"],
        help="linear: frozen backbone + linear head; semi: fine-tune all on a 1 %% / 10 %% subset",
    )
    g.add_argument("--percent", type=int, metavar="{1,10}", help="semi: which subset (sets the official lrs)")
    g.add_argument("--subset", metavar="FILE", help="semi: SimCLR-format list, one training image file name a line")
    g.add_argument(
        "--weights",
        metavar="FILE",
        help="instead of --checkpoint: a torchvision-layout ResNet state "
        "dict (the official resnet50.pth, or `vicreg-edu export`'s)",
    )
    g.add_argument(
        "--backbone",
        choices=["resnet18", "resnet50"],
        default="resnet50",
        help="architecture of --weights (default resnet50)",
    )
    g.add_argument(
        "--data-dir",
        metavar="ROOT",
        help="folder with train/<class>/ and val/<class>/ (default: the checkpoint's training folder)",
    )
    g.add_argument("--batch-size", type=_positive_int, help="global batch, split over the processes (default 256)")
    g.add_argument("--lr-head", "--lr-classifier", dest="lr_head", type=float, help="the head's learning rate")
    g.add_argument("--lr-backbone", type=float, help="the backbone's learning rate (semi)")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--crop-size", type=_positive_int, help="train crop and val centre crop (default 224)")
    g.add_argument("--resize-size", type=_positive_int, help="val resize before the centre crop (default 256)")
    g.add_argument("--workers", type=int, help="DataLoader workers per process (default 8)")
    g.add_argument("--seed", type=int, help="head initialisation, batch order and views (default 0)")
    g.add_argument("--max-epochs", type=int, help="stop after N epochs of this call (go on with --resume auto)")
    g.add_argument("--log-every", type=_positive_int, help="print the loss every N steps (default 100)")
    g.add_argument(
        "--out-dir",
        help="for eval_checkpoint.pt and eval_results.json (default: <folder of the input>/eval_<protocol>[<percent>])",
    )
    g.add_argument("--resume", help="'auto' (out-dir's eval_checkpoint.pt if it is there) or a checkpoint path")
    _add_debug(p)


def _run_protocol(args: argparse.Namespace) -> None:
    from . import distributed
    from .linear_eval import EvalConfig, evaluate_protocol, format_result, protocol_config

    settable = {f.name for f in dataclasses.fields(EvalConfig)} - {"protocol", "percent"}
    keys = [k for k in vars(args) if k in settable]  # the EvalConfig fields this command line sets
    try:
        cfg = protocol_config(args.protocol, args.percent, **{k: getattr(args, k) for k in keys})
        result = evaluate_protocol(
            cfg,
            args.checkpoint,
            args.weights,
            args.backbone,
            args.data_dir,
            args.out_dir,
            args.resume or "",
            args.device,
        )
        if distributed.is_main_process():
            print(format_result(result), flush=True)
    finally:
        distributed.cleanup()


def _run_eval(args: argparse.Namespace) -> None:
    from .evaluate import evaluate_checkpoint

    if args.device != "auto":
        check_device(args.device)
    if args.protocol:
        return _run_protocol(args)
    extra = ["--" + k.replace("_", "-") for k in _PROTOCOL_ONLY if getattr(args, k) is not None]
    if extra:
        raise UserError(f"{', '.join(extra)}: only with --protocol linear|semi (the paper's evaluation)")
    if args.checkpoint is None:
        raise UserError("eval needs --checkpoint, a checkpoint.pt written by `vicreg-edu train`")
    kwargs = {"epochs": args.epochs or 100} if args.method == "linear" else {}
    results = evaluate_checkpoint(args.checkpoint, args.method, args.device, **kwargs)
    for name, acc in results.items():
        print(f"{args.method} accuracy, {name:<12s} {acc * 100:6.2f}%")


def _run_export(args: argparse.Namespace) -> None:
    from .export import export_backbone

    path = export_backbone(args.checkpoint, args.out)
    print(
        f"wrote {path}: the backbone as a torchvision ResNet state dict without fc (the official resnet50.pth "
        f"layout). Evaluate it: vicreg-edu eval --protocol linear --weights {path} --data-dir ROOT "
        "(add --backbone resnet18 for a ResNet-18)"
    )


def _run_train(args: argparse.Namespace) -> None:
    from .trainer import train_and_report

    train_and_report(config_from_args(args))


class _EvalArgsParser(argparse.ArgumentParser):
    """Parses ``eval``'s arguments at submission; a mistake is a :class:`SubmitError`."""

    def error(self, message: str):
        raise SubmitError(f"bad eval arguments after `-- eval`: {message} (see `vicreg-edu eval --help`)")


def submit_eval_args(argv: list[str]) -> argparse.Namespace:
    """The parsed arguments of ``vicreg-edu submit ... -- eval ARGS`` (``--protocol`` required).

    Raises:
        SubmitError: an unknown option or a bad value, or no ``--protocol``.
    """
    parser = _EvalArgsParser(prog="vicreg-edu eval", add_help=False)
    _add_eval_args(parser)
    args = parser.parse_args(argv)
    if not args.protocol:
        raise SubmitError(
            "`submit -- eval` runs the paper's protocol: add --protocol linear or --protocol semi (the quick "
            "k-NN of `vicreg-edu eval --checkpoint` needs no cluster)"
        )
    return args


def _run_submit(args: argparse.Namespace) -> int:
    argv = list(args.train_args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if argv[:1] == ["eval"]:
        slurm.submit_eval(args, argv[1:], submit_eval_args(argv[1:]), main)
        return 0
    slurm.submit(args, submit_config(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vicreg-edu``; returns the exit status (0, or 2 for an error you can fix)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return _guarded(lambda: _run_train(args), args)
    if args.command == "eval":
        return _guarded(lambda: _run_eval(args), args)
    if args.command == "export":
        return _guarded(lambda: _run_export(args), args)
    if args.command == "submit":
        return _guarded(lambda: _run_submit(args), args)
    print(json.dumps(get_config(args.show).to_dict(), indent=2) if args.show else _presets_help())
    return 0


if __name__ == "__main__":
    sys.exit(main())
