"""``vicreg-edu``: train, evaluate and inspect presets from the command line.

    vicreg-edu train --preset demo                     # the README's main job: train + k-NN table
    vicreg-edu train --preset cifar10 --set data_dir=~/data download=true epochs=200
    vicreg-edu eval --checkpoint runs/demo/checkpoint.pt --method knn
    vicreg-edu presets --show imagenet-resnet50         # every knob of a preset

For several processes use ``torchrun ... -m vicreg_edu.train`` (same arguments as ``train``).
"""
from __future__ import annotations

import argparse
import json
import sys

from .config import PRESETS, get_config


def _presets_help() -> str:
    lines = []
    for name, factory in PRESETS.items():
        cfg = factory()
        lines.append(f"  {name:<18s} {cfg.dataset}, {cfg.backbone} + expander {cfg.expander}, "
                     f"batch {cfg.batch_size}, {cfg.epochs} epochs, {cfg.optimizer} base_lr {cfg.base_lr}")
    return "presets:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .train import add_train_args

    parser = argparse.ArgumentParser(prog="vicreg-edu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_presets_help())
    sub = parser.add_subparsers(dest="command", required=True)

    p_train = sub.add_parser("train", help="pre-train VICReg (then k-NN: trained vs random encoder vs raw pixels)",
                             formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_presets_help())
    add_train_args(p_train)

    p_eval = sub.add_parser("eval", help="evaluate a checkpoint's frozen backbone with k-NN or a linear probe")
    p_eval.add_argument("--checkpoint", required=True, help="path to a checkpoint.pt written by `train`")
    p_eval.add_argument("--method", choices=["knn", "linear"], default="knn",
                        help="knn: weighted k-NN (k=20, cosine, T=0.07); linear: linear probe on frozen features")
    p_eval.add_argument("--epochs", type=int, default=100, help="linear probe epochs (default 100)")
    p_eval.add_argument("--device", default="auto")

    p_presets = sub.add_parser("presets", help="list the presets, or print every field of one")
    p_presets.add_argument("--show", metavar="PRESET", choices=sorted(PRESETS), help="print this preset as JSON")

    args = parser.parse_args(argv)
    if args.command == "train":
        from .train import run_from_args

        run_from_args(args)
    elif args.command == "eval":
        from .evaluate import evaluate_checkpoint

        kwargs = {"epochs": args.epochs} if args.method == "linear" else {}
        results = evaluate_checkpoint(args.checkpoint, args.method, args.device, **kwargs)
        for name, acc in results.items():
            print(f"{args.method} accuracy, {name:<12s} {acc * 100:6.2f}%")
    else:
        if args.show:
            print(json.dumps(get_config(args.show).to_dict(), indent=2))
        else:
            print(_presets_help())
    return 0


if __name__ == "__main__":
    sys.exit(main())
