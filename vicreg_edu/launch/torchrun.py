"""``python -m vicreg_edu.launch.torchrun ARGS``: torchrun for SLURM logs.

The same launcher as ``torchrun ARGS`` (``torch.distributed.run``, every option the same), with two
differences that matter on a cluster:

- its agent forwards SLURM's time-limit signals: unless ``--signals-to-handle`` (or
  ``PET_SIGNALS_TO_HANDLE``) is given, it handles :data:`~vicreg_edu.distributed.TORCHRUN_SIGNALS`
  (its own default lacks SIGUSR1/SIGUSR2, whose default action would end it without a checkpoint);
- a stop signal ends it with one line and the signal's exit status (128 + signum) instead of the
  agent's ``SignalException`` traceback (or the ``ChildFailedError`` report when only the trainers
  were signalled): the trainers have written their checkpoint and said so in their own line.

Any other failure keeps torchrun's report. Example (2 CPU processes)::

    python -m vicreg_edu.launch.torchrun --standalone --nproc_per_node=2 -m vicreg_edu train --preset demo
"""

from __future__ import annotations

import os
import signal
import sys

from ..distributed import STOP_SIGNALS, TORCHRUN_SIGNALS


def with_signals(argv: list[str]) -> list[str]:
    """``argv`` with ``--signals-to-handle`` set to :data:`TORCHRUN_SIGNALS` unless the user set it.

    >>> with_signals(["--nproc_per_node=2", "-m", "vicreg_edu"])[0]
    '--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2'
    >>> with_signals(["--signals_to_handle", "SIGTERM", "x.py"])
    ['--signals_to_handle', 'SIGTERM', 'x.py']
    """
    given = any(a.split("=")[0] in ("--signals-to-handle", "--signals_to_handle") for a in argv)
    if given or "PET_SIGNALS_TO_HANDLE" in os.environ:
        return list(argv)
    return [f"--signals-to-handle={TORCHRUN_SIGNALS}", *argv]


def main(argv: list[str] | None = None) -> int:
    """Run torchrun on ``argv``; return its exit status (see the module docstring)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    argv = with_signals(sys.argv[1:] if argv is None else argv)
    try:
        torchrun_main(argv)
    except SignalException as e:
        name = signal.Signals(int(e.sigval)).name
        print(
            f"torchrun: stopped by {name}; its trainers got the signal and have exited (the checkpoint line above)",
            file=sys.stderr,
            flush=True,
        )
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        # 128 + signum: a trainer stopped on a signal after its checkpoint; -signum: one the agent then
        # signalled itself after it had left its handlers (it had stopped with the others already)
        codes = {128 - f.exitcode if f.exitcode < 0 else f.exitcode for f in e.failures.values()}
        graceful = any(f.exitcode > 0 for f in e.failures.values())
        if graceful and codes <= {128 + int(s) for s in STOP_SIGNALS}:  # the trainers stopped on a signal
            code = max(codes)
            print(
                f"torchrun: its trainers stopped on {signal.Signals(code - 128).name} (the checkpoint line above)",
                file=sys.stderr,
                flush=True,
            )
            return code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
