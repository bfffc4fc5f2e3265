"""The image-folder loader that decodes and augments on the device (``Config.pipeline = "gpu"``).

The PIL path (:class:`~vicreg_edu.data.DataLoaderTwoViews`) spends several ms of CPU per image
on its two views (decode, RandomResizedCrop, colour jitter, blur in PIL: 7.3-7.7 ms per 500x375
JPEG in two runs of ``bench/jpeg_pipeline.py`` on 2026-12-07), so it takes many loader processes
to keep one GPU busy (14-15 cores per H200 at the trainer's measured ImageNet step). Here the
loader processes only read the files' bytes and their image sizes (from the JPEG header; with
the parameter draw 0.07-0.10 ms per image in the same runs); the main process then, per step,

1. draws every random parameter of the GLOBAL batch on the CPU from a generator keyed by
   ``(seed, epoch, step)`` (``BatchAugment.sample``: the official recipe's crop, flip, colour
   jitter, grayscale, blur and solarization draws) and keeps this rank's rows, as
   :class:`~vicreg_edu.data.InMemoryTwoViewLoader` does,
2. turns the crop draws into integer boxes with torchvision's ``RandomResizedCrop`` rule,
3. decodes the files on ``device`` (``torchvision.io.decode_jpeg``: nvJPEG on CUDA, libjpeg-turbo
   on the CPU; formats it refuses are decoded by PIL on the host),
4. crops and resizes each image's two boxes to the view size (antialiased bicubic), and
5. runs the colour ops of both views as one batch (:func:`~vicreg_edu.batch_augment.augment_batches`)
   and normalises on the device.

:class:`~vicreg_edu.jpeg_decode.JpegTwoViewDecoder` does steps 2-5. The views are a function of
``(seed, epoch, step)`` and the files: the same for any ``num_workers``, for W processes (rank r
gets rows r, r + W, ... of the one-process batch) and for a run resumed mid-epoch. They follow
the PIL path's distributions (``tests/test_gpu_pipeline.py``), not its random stream: switching
``pipeline`` changes the views, so it is a trajectory key of the config.

Shapes: iteration yields ``(view_a, view_b, labels)``: two float32 (B, 3, size, size) and int64
(B,) on ``device``, B = batch_size / world.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset

from . import distributed
from .shards import ShardSampler, check_batches, ignore_stop_signals, stop_workers
from .errors import DataError
from .jpeg_decode import JpegTwoViewDecoder
from .views import AugmentConfig

STEP_KEY = 1_000_003  # the per-step generator's seed: seed * STEP_KEY + epoch * steps + step


def file_samples(dataset: Dataset) -> tuple[list[tuple[str, int]], list[str]]:
    """``(samples, classes)`` of a dataset of image files: ``samples[i] = (path, label)`` of item i.

    Accepts what :func:`~vicreg_edu.data.load_dataset` returns for image folders (an ImageFolder,
    a flat val/ with labels) and ``Subset`` views of them (``train_size``).

    Raises:
        TypeError: the dataset does not keep its images as files (Shapes, CIFAR: use the
            in-memory loader).
    """
    if isinstance(dataset, Subset):
        samples, classes = file_samples(dataset.dataset)
        return [samples[i] for i in dataset.indices], classes
    samples, classes = getattr(dataset, "samples", None), getattr(dataset, "classes", None)
    if samples is None or classes is None:
        raise TypeError(
            f"pipeline='gpu' reads image files: {type(dataset).__name__} has no .samples (path, label) list "
            "(in-memory datasets are already augmented on the device)"
        )
    return list(samples), list(classes)


class EncodedFiles(Dataset):
    """Item i of a file list: ``(file bytes, (height, width) from the header, label, path)``.

    What the loader processes do for the device pipeline: one file read and a header parse (PIL
    opens lazily: no pixel is decoded). Bytes, not tensors, travel back from the processes (a
    tensor would need a shared-memory file descriptor each: 256 per batch).
    """

    def __init__(self, samples: Sequence[tuple[str, int]]):
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        try:
            with open(path, "rb") as f:
                data = f.read()
            with Image.open(io.BytesIO(data)) as img:
                size = (img.height, img.width)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(
                f"cannot read the image file {path} ({type(e).__name__}: {e}); remove or replace it"
            ) from None
        return data, size, label, path


def collate_files(items):
    """A batch of :class:`EncodedFiles` items: ``(list of bytes, list of sizes, labels (B,), paths)``."""
    data, sizes, labels, paths = zip(*items)
    return list(data), list(sizes), torch.tensor(labels, dtype=torch.int64), list(paths)


class DeviceTwoViewLoader:
    """Batches of two views decoded and augmented on ``device`` from image files (see the module doc).

    The trainer's loader interface: ``len`` (steps per epoch), ``set_epoch(epoch, start=0)``,
    iteration -> ``(view_a, view_b, labels)`` on ``device``, ``num_classes``, ``close()``.

    Args:
        dataset: image files with labels (:func:`file_samples` reads it).
        cfg: the recipe; batch_size: the GLOBAL batch.
        seed: the shuffle's and the views' seed; num_workers: processes reading the files.
        device: where decode and augmentation run (``"cuda"``; ``"cpu"`` runs the same code).
        decode_batch: files per ``decode_jpeg`` call.
        rank, world: this process and the number of processes (default: from torch.distributed).

    Example:
        >>> import tempfile, pathlib
        >>> from vicreg_edu.views import imagenet_augment
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for k in range(4):
        ...     (root / f"c{k % 2}").mkdir(exist_ok=True)
        ...     Image.new("RGB", (50, 40), (60 * k, 90, 30)).save(root / f"c{k % 2}" / f"{k}.jpg")
        >>> import torchvision
        >>> loader = DeviceTwoViewLoader(torchvision.datasets.ImageFolder(root), imagenet_augment(size=16), 2)
        >>> loader.set_epoch(0); a, b, y = next(iter(loader)); len(loader), a.shape, a.dtype
        (2, torch.Size([2, 3, 16, 16]), torch.float32)
    """

    def __init__(
        self,
        dataset: Dataset,
        cfg: AugmentConfig,
        batch_size: int,
        *,
        seed: int = 0,
        num_workers: int = 0,
        device: torch.device | str = "cpu",
        decode_batch: int = 64,
        rank: int | None = None,
        world: int | None = None,
    ):
        rank = distributed.get_rank() if rank is None else rank
        world = distributed.get_world_size() if world is None else world
        samples, classes = file_samples(dataset)
        self.device = torch.device(device)
        self.decoder = JpegTwoViewDecoder(cfg, self.device, decode_batch)
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.sampler = ShardSampler(len(samples), max(batch_size // world, 1), rank, world, seed)
        check_batches(self.sampler.steps, len(samples), batch_size, world)
        self.num_classes = len(classes)
        self.epoch = 0
        self.loader = DataLoader(
            EncodedFiles(samples),
            batch_size=self.sampler.batch_size,
            sampler=self.sampler,
            drop_last=True,
            num_workers=num_workers,
            collate_fn=collate_files,
            persistent_workers=num_workers > 0,
            worker_init_fn=ignore_stop_signals if num_workers > 0 else None,
        )

    def __len__(self) -> int:
        return self.sampler.steps

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch, start)

    def close(self) -> None:
        """Stop the file-reading processes now (as :meth:`DataLoaderTwoViews.close`)."""
        it, self.loader._iterator = self.loader._iterator, None
        stop_workers(it)

    def step_params(self, step: int) -> list[dict[str, torch.Tensor]]:
        """This rank's rows of the global batch's draw at ``step`` of the current epoch (both views)."""
        gen = torch.Generator().manual_seed(self.seed * STEP_KEY + self.epoch * len(self) + step)
        views = self.decoder.views
        params = [view.sample(self.batch_size, gen) for view in views]
        return [{k: v[self.rank :: self.world] for k, v in p.items()} for p in params]

    def __iter__(self):
        start = self.sampler.start
        for i, (data, sizes, labels, paths) in enumerate(self.loader):
            params = self.step_params(start + i)
            images = self.decoder.decode(data, [os.fspath(p) for p in paths])
            for img, hw, path in zip(images, sizes, paths):
                if tuple(img.shape[1:]) != tuple(hw):
                    raise DataError(f"{path}: decoded as {tuple(img.shape[1:])}, its header says {tuple(hw)}")
            view_a, view_b = self.decoder.views_from(images, params, self.decoder.boxes(params, sizes))
            yield view_a, view_b, labels.to(self.device, non_blocking=True)
