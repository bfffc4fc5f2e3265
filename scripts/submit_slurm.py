r"""Submit VICReg pre-training to a SLURM cluster with submitit (``pip install -e .[slurm]``).

Each SLURM task is one process; submitit's environment gives us the rank, world size and master
address, which we hand to torch.distributed through the variables ``torchrun`` would set, then run
the very same ``vicreg_edu.train.train``. Requeued (pre-empted) jobs resume from the latest
checkpoint because ``resume=auto`` is forced.

    python scripts/submit_slurm.py --nodes 4 --gpus-per-node 8 --partition gpu --time 4320 \
        -- --preset imagenet-resnet50 --set data_dir=/datasets/imagenet out_dir=/checkpoints/vicreg

Everything after ``--`` is the argument list of ``vicreg-edu train``.
"""
from __future__ import annotations

import argparse
import os
import sys


class Trainer:
    """A picklable callable submitit runs on every task; ``checkpoint`` makes pre-emption requeue it."""

    def __init__(self, train_argv: list[str]):
        self.train_argv = train_argv

    def __call__(self) -> None:
        import submitit

        env = submitit.JobEnvironment()
        dist_env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        os.environ.setdefault("LOCAL_RANK", str(dist_env.local_rank))
        print(f"task {env.global_rank}/{env.num_tasks} on {env.hostname}: master {dist_env.master_addr}:{dist_env.master_port}")
        from vicreg_edu.train import main

        main(self.train_argv + ["--resume", "auto"])

    def checkpoint(self):  # called by submitit on pre-emption / timeout: requeue the same job
        import submitit

        return submitit.helpers.DelayedSubmission(Trainer(self.train_argv))


def main() -> None:
    argv = sys.argv[1:]
    train_argv = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--cpus-per-task", type=int, default=10)
    p.add_argument("--partition", default=None)
    p.add_argument("--time", type=int, default=4320, help="minutes per job (requeued jobs resume)")
    p.add_argument("--log-dir", default="runs/slurm")
    args = p.parse_args(own)
    try:
        import submitit
    except ImportError:
        sys.exit("submitit is not installed: pip install -e '.[slurm]'")
    executor = submitit.AutoExecutor(folder=args.log_dir, slurm_max_num_timeout=30)
    executor.update_parameters(
        nodes=args.nodes, gpus_per_node=args.gpus_per_node, tasks_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task, timeout_min=args.time, name="vicreg",
        **({"slurm_partition": args.partition} if args.partition else {}))
    job = executor.submit(Trainer(train_argv))
    print(f"submitted job {job.job_id}; logs in {args.log_dir}")


if __name__ == "__main__":
    main()
