"""The loaders' shared plumbing: which samples a process reads, and its worker processes.

Both image-folder loaders (:class:`~vicreg_edu.data.DataLoaderTwoViews`, the PIL path, and
:class:`~vicreg_edu.gpu_pipeline.DeviceTwoViewLoader`, the device path) and the in-memory loader
read their epoch through :class:`ShardSampler` (``DistributedSampler``'s order, whole batches, a
resumable start), refuse a training set smaller than one batch (:func:`check_batches`), and
start workers that leave pre-emption signals to the main process (:func:`ignore_stop_signals`,
:func:`stop_workers`).
"""

from __future__ import annotations

import signal

from torch.utils.data import DistributedSampler, Sampler

from .config import check_batch_split
from .errors import DataError

__all__ = ["ShardSampler", "check_batches", "ignore_stop_signals", "stop_workers"]


def ignore_stop_signals(worker_id: int = 0) -> None:
    """``worker_init_fn`` of the trainer's loader workers: ignore SIGTERM, SIGUSR1 and SIGUSR2.

    SLURM sends its pre-emption SIGTERM to every process of a job, loader workers included. A
    worker killed by it makes the main process raise ("DataLoader worker ... is killed by signal")
    before it can checkpoint the step it reached; ignoring the signal leaves the stop to the main
    process, which finishes the step, checkpoints and then shuts its workers down itself
    (:meth:`DataLoaderTwoViews.close`). Python's own exit stops daemonic children with SIGTERM and
    then waits for them, so a loader still open at exit is closed first (:func:`_close_open_loaders`).
    """
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)


class ShardSampler(Sampler):
    """This process's sample indices for one epoch, whole batches only, from batch ``start`` on.

    The order is ``DistributedSampler``'s (shuffled with ``seed + epoch``, rank r takes positions
    r, r + W, r + 2W, ...), used on one process too, so every loader has ``set_epoch`` and a run
    resumed mid-epoch reads exactly the batches it had not read.

    Example:
        >>> s = ShardSampler(10, batch_size=3, rank=0, world=1, seed=0)
        >>> s.set_epoch(0, start=2); len(s), len(list(s))
        (3, 3)
    """

    def __init__(self, n: int, batch_size: int, rank: int, world: int, seed: int):
        self.order = DistributedSampler(
            range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size, self.start = batch_size, 0
        self.steps = len(self.order) // batch_size  # whole batches per epoch

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.order.set_epoch(epoch)
        self.start = start

    def __len__(self) -> int:
        return (self.steps - self.start) * self.batch_size

    def __iter__(self):
        return iter(list(self.order)[self.start * self.batch_size : self.steps * self.batch_size])


def check_batches(steps: int, n: int, batch_size: int, world: int) -> None:
    """Refuse a batch that does not split over ``world`` processes, or a set smaller than one batch."""
    check_batch_split(batch_size, world)
    if steps == 0:
        raise DataError(
            f"the training set ({n} images) is smaller than one batch (batch_size={batch_size}); lower batch_size"
        )


def stop_workers(batches) -> None:
    """Stop the worker processes of a DataLoader iterator (``iter(loader)``; None: nothing to do).

    Told to stop through their queues (torch's own shutdown), then killed if still alive: the
    trainer's workers ignore SIGTERM (:func:`ignore_stop_signals`).
    """
    if batches is None or not hasattr(batches, "_workers"):  # single-process iterator: no workers
        return
    batches._shutdown_workers()
    for w in batches._workers:
        if w.is_alive():
            w.kill()
            w.join()
