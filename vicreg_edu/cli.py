"""``vicreg-edu``: train, evaluate, submit to SLURM and inspect presets from the command line.

    vicreg-edu train --preset demo                     # the README's main job: train + k-NN table
    vicreg-edu train --preset cifar10 --set data_dir=~/data download=true epochs=200
    vicreg-edu train --set dataset=imagefolder augment=imagenet data_dir=~/my_images   # your own images
    vicreg-edu eval --checkpoint runs/demo/checkpoint.pt --method knn
    vicreg-edu submit --nodes 4 --gpus-per-node 8 -- --preset imagenet-resnet50   # SLURM (submitit)
    vicreg-edu presets --show imagenet-resnet50         # every knob of a preset

For several processes use ``torchrun ... -m vicreg_edu.train`` (same arguments as ``train``).

Errors you can fix (a bad setting, missing or unreadable data, a missing or foreign checkpoint)
print one line, ``vicreg-edu: error: ...``, and exit with status 2; ``--debug`` (or
``VICREG_EDU_DEBUG=1``) shows the Python traceback instead. Anything else is a bug and raises.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys

from .config import PRESETS, Config, apply_overrides, check_device, get_config
from .errors import UserError

PROG = "vicreg-edu"


class _Parser(argparse.ArgumentParser):
    """argparse, but under torchrun only rank 0 prints usage errors (every rank still exits 2)."""

    def error(self, message: str):
        if _rank() != 0:
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
        lines.append(f"  {name:<18s} {cfg.dataset}, {cfg.backbone} + expander {cfg.expander}, "
                     f"batch {cfg.batch_size}, {cfg.epochs} epochs, {cfg.optimizer} base_lr {cfg.base_lr}")
    return "presets:\n" + "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# train: shared by `vicreg-edu train` and `python -m vicreg_edu.train`


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``vicreg-edu train`` and ``python -m vicreg_edu.train``."""
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS),
                        help="named configuration (default: demo). See vicreg_edu/config.py.")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config fields, e.g. --set epochs=5 batch_size=128 aug.jitter_p=0 "
                             "(keys: see `vicreg-edu presets --show demo`)")
    parser.add_argument("--epochs", type=int, help="shortcut for --set epochs=N")
    parser.add_argument("--out-dir", help="shortcut for --set out_dir=PATH")
    parser.add_argument("--data-dir", help="shortcut for --set data_dir=PATH")
    parser.add_argument("--resume", help="'auto' (latest checkpoint in out_dir) or a checkpoint path")
    _add_debug(parser)


def _add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of errors (also: VICREG_EDU_DEBUG=1)")


def config_from_args(args: argparse.Namespace) -> Config:
    """The :class:`Config` described by parsed ``train`` arguments (validated)."""
    cfg = apply_overrides(get_config(args.preset), args.overrides)
    shortcuts = {"epochs": args.epochs, "out_dir": args.out_dir, "data_dir": args.data_dir, "resume": args.resume}
    return cfg.replace(**{k: v for k, v in shortcuts.items() if v is not None})


def run_from_args(args: argparse.Namespace):
    """Train from parsed arguments, print the final k-NN table on rank 0, tear the process group down."""
    from . import distributed as D
    from .train import format_final, train

    try:
        result = train(config_from_args(args))
        if D.is_main_process() and result.final:
            print(format_final(result))
        return result
    finally:
        D.cleanup()


def train_main(argv: list[str] | None = None) -> int:
    """``python -m vicreg_edu.train`` (one process or under torchrun)."""
    from . import train as train_module

    parser = _Parser(prog="python -m vicreg_edu.train", description=train_module.__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_presets_help())
    add_train_args(parser)
    args = parser.parse_args(argv)
    return _guarded(lambda: run_from_args(args), args)


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


def build_parser(with_submit_args: bool = False) -> argparse.ArgumentParser:
    """The ``vicreg-edu`` parser. The ``submit`` arguments come from :mod:`vicreg_edu.slurm`, imported
    only when ``submit`` is the command (``with_submit_args``), so other commands never need it."""
    parser = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog=_presets_help())
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,submit,presets}")

    p_train = sub.add_parser("train", help="pre-train VICReg (then k-NN: trained vs random encoder vs raw pixels)",
                             formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_presets_help())
    add_train_args(p_train)

    p_eval = sub.add_parser("eval", help="evaluate a checkpoint's frozen backbone with k-NN or a linear probe")
    p_eval.add_argument("--checkpoint", required=True, help="path to a checkpoint.pt written by `train`")
    p_eval.add_argument("--method", choices=["knn", "linear"], default="knn",
                        help="knn: weighted k-NN (k=20, cosine, T=0.07); linear: linear probe on frozen features")
    p_eval.add_argument("--epochs", type=_positive_int, default=100, help="linear probe epochs (default 100)")
    p_eval.add_argument("--device", default="auto", help="auto (GPU if available), cpu, cuda or cuda:N")
    _add_debug(p_eval)

    p_submit = sub.add_parser("submit", help="submit `train` to SLURM through submitit (pip install "
                                             "'vicreg-edu[slurm]'); `vicreg-edu submit --help` for its options")
    _add_debug(p_submit)
    if with_submit_args:
        importlib.import_module("vicreg_edu.slurm").add_submit_args(p_submit)

    p_presets = sub.add_parser("presets", help="list the presets, or print every field of one")
    p_presets.add_argument("--show", metavar="PRESET", choices=sorted(PRESETS), help="print this preset as JSON")
    _add_debug(p_presets)
    return parser


def _wants_submit(argv: list[str]) -> bool:
    commands = [a for a in argv if not a.startswith("-")]
    return bool(commands) and commands[0] == "submit"


def _one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if any("Original Traceback" in line for line in lines):  # re-raised from a DataLoader worker:
        lines = [re.sub(r"^[\w.]+: ", "", lines[-1], count=1)]  # its last line, "module.Class: message"
    return " ".join(lines) or type(err).__name__


def _guarded(job, args: argparse.Namespace | None = None) -> int:
    """Run ``job()``; a :class:`UserError` becomes one line on stderr (rank 0) and exit status 2."""
    debug = bool(getattr(args, "debug", False)) or os.environ.get("VICREG_EDU_DEBUG", "") not in ("", "0")
    try:
        status = job()
    except UserError as e:
        if debug:
            raise
        if _rank() == 0:
            print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr, flush=True)
        return 2
    return status if isinstance(status, int) and not isinstance(status, bool) and status != 0 else 0


def _missing_slurm(e: ModuleNotFoundError) -> UserError:
    if e.name == "submitit":
        return UserError("`vicreg-edu submit` needs submitit: pip install 'vicreg-edu[slurm]' (or pip install submitit)")
    return UserError(f"`vicreg-edu submit` is not available in this installation ({e})")


def _run_eval(args: argparse.Namespace) -> None:
    from .evaluate import evaluate_checkpoint

    if args.device != "auto":
        check_device(args.device)
    kwargs = {"epochs": args.epochs} if args.method == "linear" else {}
    results = evaluate_checkpoint(args.checkpoint, args.method, args.device, **kwargs)
    for name, acc in results.items():
        print(f"{args.method} accuracy, {name:<12s} {acc * 100:6.2f}%")


def _run_submit(args: argparse.Namespace) -> int:
    slurm = importlib.import_module("vicreg_edu.slurm")
    try:
        return slurm.submit_from_args(args)
    except ModuleNotFoundError as e:
        if e.name != "submitit":
            raise
        raise _missing_slurm(e) from e


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vicreg-edu``; returns the exit status (0, or 2 for an error you can fix)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(with_submit_args=_wants_submit(argv))
    except ModuleNotFoundError as e:  # vicreg_edu.slurm (or what it needs) is missing
        if e.name not in ("vicreg_edu.slurm", "submitit") or "--debug" in argv:
            raise
        print(f"{PROG}: error: {_missing_slurm(e)}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command == "train":
        return _guarded(lambda: run_from_args(args), args)
    if args.command == "eval":
        return _guarded(lambda: _run_eval(args), args)
    if args.command == "submit":
        return _guarded(lambda: _run_submit(args), args)
    print(json.dumps(get_config(args.show).to_dict(), indent=2) if args.show else _presets_help())
    return 0


if __name__ == "__main__":
    sys.exit(main())
