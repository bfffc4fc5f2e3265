"""Benchmark: vicreg_edu's VICReg loss against lightly's VICRegLoss, forward + backward.

    python bench/loss.py                      # N in {256, 2048} x D in {2048, 8192}, 3 repeats
    python bench/loss.py --quick              # small sizes, 1 repeat (a smoke test)
    python bench/loss.py --sizes 2048x8192 --repeats 5 --device cuda
    python bench/loss.py --nosync             # also vicreg_loss(..., check_finite=False)

Both losses see the same float32 inputs (z_a ~ N(0, 1), z_b = z_a + 0.5 * noise, seed 0). lightly's
VICRegLoss(lambda_param=25, mu_param=25, nu_param=1, eps=1e-4) computes the same quantity as
vicreg_loss(z_a, z_b).loss with the defaults (mse over all entries, (v_a + v_b)/2, c_a + c_b,
gamma = 1, divided by N - 1 and D), so no rescaling is needed; the bench checks it by comparing
the loss values and the input gradients.

Each (implementation, size) runs in its own subprocess so that its peak memory is its own:
* CUDA: torch.cuda.max_memory_allocated() during the first forward + backward, minus what was
  allocated before it (the inputs).
* CPU: peak resident set size (getrusage ru_maxrss, the process's high-water mark) minus the
  resident size just before the first forward + backward. It counts every page the process
  touched, including allocator caches, so it is an upper bound on the tensors alive at the peak.
Times are the median of --repeats timed runs after that first, untimed run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_SIZES = "256x2048,256x8192,2048x2048,2048x8192"
QUICK_SIZES = "128x512,512x128,256x2048"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        try:
            n, d = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--sizes expects comma-separated NxD pairs like 256x2048, got {item!r}")
        if n < 2 or d < 1:
            raise SystemExit(f"--sizes needs N >= 2 and D >= 1, got {item!r}")
        sizes.append((n, d))
    return sizes


# ----------------------------------------------------------------------------
# worker: one implementation, one size, in its own process


def worker(impl: str, n: int, d: int, device: str, repeats: int, out: str) -> None:
    import torch

    if impl in ("ours", "ours_nosync", "ours_f64gram"):
        import vicreg_edu.loss as L

        if impl == "ours_f64gram":  # what a GPU does with check_finite=False, forced here on CPU
            L._host_reads_are_free = lambda z: False

        def loss_fn(a, b):
            return L.vicreg_loss(a, b, check_finite=impl == "ours").loss
    else:
        from lightly.loss import VICRegLoss

        loss_fn = VICRegLoss(lambda_param=25.0, mu_param=25.0, nu_param=1.0, eps=1e-4)

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    g = torch.Generator().manual_seed(0)
    z_a = torch.randn(n, d, generator=g)
    z_b = z_a + 0.5 * torch.randn(n, d, generator=g)
    z_a, z_b = z_a.to(dev).requires_grad_(), z_b.to(dev).requires_grad_()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step():
        z_a.grad = z_b.grad = None
        loss = loss_fn(z_a, z_b)
        loss.backward()
        return loss

    # first run: peak memory (and the values we compare)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        import psutil

        before = psutil.Process().memory_info().rss
    loss = step()
    sync()
    if cuda:
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    if cuda:  # one more warm-up: cuBLAS picks its kernels on first use
        step()

    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)

    torch.save(
        {
            "times": times,
            "peak": max(peak, 0),
            "loss": loss.item(),
            "grad_a": z_a.grad.float().cpu(),
            "grad_b": z_b.grad.float().cpu(),
            "threads": torch.get_num_threads(),
        },
        out,
    )


def run_case(impl, n, d, device, repeats, tmp):
    out = os.path.join(tmp, f"{impl}_{n}x{d}.pt")
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", impl, str(n), str(d), device, str(repeats), out]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    import torch

    return torch.load(out), None


def lightly_available() -> str | None:
    """None when lightly's VICRegLoss imports, else the reason."""
    proc = subprocess.run([sys.executable, "-c", "from lightly.loss import VICRegLoss"], capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "import failed"


# ----------------------------------------------------------------------------
# main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--sizes", default=None, help=f"comma-separated NxD (default {DEFAULT_SIZES})")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per case (default 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, 1 repeat")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--nosync",
        action="store_true",
        help="also time vicreg_loss(check_finite=False) (no host sync on a GPU; on CPU also "
        "with the GPU's float64 Gram side forced, to show its CPU cost)",
    )
    p.add_argument("--_worker", nargs=6, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.threads:  # inherited by the worker processes
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args._worker:
        impl, n, d, device, repeats, out = args._worker
        worker(impl, int(n), int(d), device, int(repeats), out)
        return 0

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch.cuda.is_available() is False")
    sizes = parse_sizes(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES))
    repeats = args.repeats or (1 if args.quick else 3)
    if repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {repeats}")

    missing = lightly_available()
    name = (
        torch.cuda.get_device_name(device) if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"VICReg loss forward+backward, float32, device {device} ({name}), torch {torch.__version__}")
    print(
        f"median of {repeats} timed run(s) after one untimed run; each case in its own process; "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    if missing:
        print(
            f"REFERENCE MISSING: lightly's VICRegLoss cannot be imported ({missing}); "
            "install it with `pip install -e '.[bench]'`. Timing vicreg_edu alone."
        )
    mem_what = "peak CUDA memory allocated" if device.startswith("cuda") else "peak RSS growth"
    header = (
        f"{'N':>5} {'D':>5} {'side':>4} | {'ours ms':>9} {'lightly ms':>10} {'ratio':>6} | "
        f"{'ours MiB':>8} {'lightly MiB':>11} | {'loss rel diff':>13} {'grad rel diff':>13}"
    )
    print(f"memory: {mem_what}; ratio = lightly time / ours")
    print(header)
    print("-" * len(header))

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for n, d in sizes:
            ours, err = run_case("ours", n, d, device, repeats, tmp)
            if ours is None:
                print(f"{n:>5} {d:>5}  ours failed: {err}")
                ok = False
                continue
            side = "gram" if n < d else "cov"
            t_ours = statistics.median(ours["times"]) * 1e3
            row = f"{n:>5} {d:>5} {side:>4} | {t_ours:>9.1f} "
            ref = None
            if not missing:
                ref, err = run_case("lightly", n, d, device, repeats, tmp)
                if ref is None:
                    print(f"{n:>5} {d:>5}  lightly failed: {err}")
            if ref is not None:
                t_ref = statistics.median(ref["times"]) * 1e3
                loss_diff = abs(ours["loss"] - ref["loss"]) / abs(ref["loss"])
                grads = [(ours[k] - ref[k]).norm() / ref[k].norm() for k in ("grad_a", "grad_b")]
                grad_diff = max(g.item() for g in grads)
                row += (
                    f"{t_ref:>10.1f} {t_ref / t_ours:>5.1f}x | {ours['peak'] / 2**20:>8.0f} "
                    f"{ref['peak'] / 2**20:>11.0f} | {loss_diff:>13.1e} {grad_diff:>13.1e}"
                )
                if loss_diff > 1e-4 or grad_diff > 1e-4:
                    row += "  DISAGREE"
                    ok = False
            else:
                row += f"{'-':>10} {'-':>6} | {ours['peak'] / 2**20:>8.0f} {'-':>11} | {'-':>13} {'-':>13}"
            print(row, flush=True)
            if args.nosync:
                extra = ["ours_nosync"] + (["ours_f64gram"] if device == "cpu" and n < d else [])
                for impl in extra:
                    res, err = run_case(impl, n, d, device, repeats, tmp)
                    if res is None:
                        print(f"{'':>16}{impl} failed: {err}")
                        continue
                    t = statistics.median(res["times"]) * 1e3
                    diff = abs(res["loss"] - ours["loss"]) / abs(ours["loss"])
                    print(
                        f"{'':>16}{impl:<13} {t:>9.1f} ms ({t / t_ours:.2f}x ours) "
                        f"{res['peak'] / 2**20:>6.0f} MiB, loss rel diff {diff:.1e}",
                        flush=True,
                    )
    print(f"load average {os.getloadavg()[0]:.2f} at the end (other processes share the CPU when > 0)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
