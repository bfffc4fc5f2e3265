"""Per-GPU memory of a training step: the fake-tensor estimate, and on CUDA the measured peak beside it.

    python bench/memory.py                          # ImageNet presets' model, 32-256 per GPU, bf16/fp16/fp32
    python bench/memory.py --world 8 32             # with DDP buckets and the gathered loss of 8 / 32 GPUs
    python bench/memory.py --preset cifar10 --batches 256 512
    python bench/memory.py --cache                  # the grid of memory.CACHED_ESTIMATES, as a Python literal
    python bench/memory.py --loss-check             # the loss alone vs the H200 figures in bench/results/

Estimate: ``vicreg_edu.memory.estimate_step_memory`` (one trainer step on fake tensors, live storage
bytes counted by a TorchDispatchMode; no GPU needed). On a CUDA machine each row also runs the
same step for real (``memory.measure_step_memory``: one warm-up step, then the peak of
``torch.cuda.max_memory_allocated()`` over a second) and prints measured / estimate.
``--loss-check`` repeats ``bench/loss.py``'s memory protocol (peak over the first forward +
backward of ``vicreg_loss(check_finite=False)`` beyond the two (N, D) inputs) on fake tensors and
puts it beside the H200 figures of ``bench/results/gpu_suite_h200_2026-11-30.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vicreg_edu import memory as M  # noqa: E402
from vicreg_edu.config import apply_overrides, get_config  # noqa: E402

H200_JSON = ROOT / "bench" / "results" / "gpu_suite_h200_2026-11-30.json"
GB = 1e9


def loss_peak_fake(n: int, d: int) -> int:
    """bench/loss.py's protocol on fake tensors: peak bytes of loss forward + backward beyond z_a, z_b."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from vicreg_edu.loss import vicreg_loss

    mem = M.LiveBytes()
    with FakeTensorMode(), mem, M._loss_on_gpu_path():
        z_a, z_b = torch.empty(n, d).requires_grad_(), torch.empty(n, d).requires_grad_()
        before = mem.live
        mem.reset()
        vicreg_loss(z_a, z_b, check_finite=False).loss.backward()
    return mem.peak - before


def h200_loss_peaks() -> dict[tuple[int, int], float]:
    """(N, D) -> MiB measured on the H200 for the sync-free loss call (``ours_nosync_peak_mib``)."""
    rows = json.loads(H200_JSON.read_text())["measurements"]["loss_vs_lightly"]["results"]["rows"]
    return {(r["N"], r["D"]): r["ours_nosync_peak_mib"] for r in rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="imagenet-resnet50")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--batches", nargs="*", type=int, default=[32, 64, 128, 256], help="images per GPU")
    p.add_argument("--amps", nargs="*", default=list(M.AMPS), choices=M.AMPS)
    p.add_argument("--world", nargs="*", type=int, default=[1], help="processes (1 = no DDP)")
    p.add_argument("--cache", action="store_true", help="print the CACHED_ESTIMATES grid as a Python literal")
    p.add_argument("--loss-check", action="store_true", help="the loss alone vs the H200 measurement")
    p.add_argument("--no-measure", action="store_true", help="estimates only, even on CUDA")
    args = p.parse_args(argv)

    if args.loss_check:
        print("loss alone, forward + backward beyond the inputs (check_finite=False), MiB")
        print(f"{'N':>6s} {'D':>6s} | {'fake count':>10s} {'H200':>8s} {'H200 - fake':>11s}")
        for (n, d), measured in h200_loss_peaks().items():
            fake = loss_peak_fake(n, d) / 2**20
            print(f"{n:>6d} {d:>6d} | {fake:>10.1f} {measured:>8.1f} {measured - fake:>11.1f}")
        return 0

    cfg = apply_overrides(get_config(args.preset, fast=False), args.set)
    if args.cache:
        grid = {}
        for world in (1, 8, 32):
            for batch in (32, 64, 128, 256, 512):
                for amp in M.AMPS:
                    grid[batch, amp, world] = M.estimate_step_memory(cfg, batch, amp, world)
                    print(f"# {batch} {amp} {world}: {grid[batch, amp, world] / GB:.2f} GB", file=sys.stderr)
        print("CACHED_ESTIMATES: dict[tuple[int, str, int], int] = {")
        for key, value in grid.items():
            print(f"    {key!r}: {value},")
        print("}")
        return 0

    measure = torch.cuda.is_available() and not args.no_measure
    where = f"measured on {torch.cuda.get_device_name()}" if measure else "no CUDA here: estimates only"
    print(
        f"{M.describe(cfg)}, {M.make_augment_config(cfg).size} px, {cfg.optimizer}; torch {torch.__version__}; {where}"
    )
    print(
        "estimate = fake-tensor count of one trainer step (vicreg_edu.memory.estimate_step_memory); "
        f"preflight asks for {M.HEADROOM} x estimate"
    )
    head = f"{'per GPU':>7s} {'amp':>4s} {'world':>5s} | {'estimate GB':>11s} {'x' + str(M.HEADROOM):>6s}"
    if measure:
        head += f" | {'measured GB':>11s} {'1st step':>8s} {'meas/est':>8s}"
    print(head + f" | {'s':>4s}")
    for world in args.world:
        for batch in args.batches:
            for amp in args.amps:
                t = time.perf_counter()
                est = M.estimate_step_memory(cfg, batch, amp, world)
                row = f"{batch:>7d} {amp:>4s} {world:>5d} | {est / GB:>11.2f} {M.HEADROOM * est / GB:>6.1f}"
                if measure:
                    try:
                        got = M.measure_step_memory(cfg, batch, amp, world)
                        row += (
                            f" | {got['steady_step'] / GB:>11.2f} {got['first_step'] / GB:>8.2f} "
                            f"{got['steady_step'] / est:>8.3f}"
                        )
                    except torch.OutOfMemoryError:
                        torch.cuda.empty_cache()
                        row += f" | {'OOM':>11s} {'':>8s} {'':>8s}"
                print(row + f" | {time.perf_counter() - t:>4.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
