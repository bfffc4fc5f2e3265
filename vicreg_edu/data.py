"""Datasets and loaders: CIFAR-10/100, ImageFolder (ImageNet-like), and the trainer's batches.

The built-in dataset, ``Shapes``, is generated in :mod:`vicreg_edu.shapes`; ``load_dataset("shapes")``
returns it like the others.

Other datasets
--------------
``load_dataset("cifar10"|"cifar100", root, ...)`` wraps torchvision's classes (``download=True``
fetches them; without it a missing folder raises FileNotFoundError with instructions), and
``load_dataset("imagefolder"|"imagenet", root, split)`` reads ``root/train`` or ``root/val`` with
``torchvision.datasets.ImageFolder``. ``TwoViewDataset`` turns any of them into
``((view_a, view_b), label)`` pairs and ``DataLoaderTwoViews`` batches them (one shard per process).

ImageNet as it comes
--------------------
Pre-training reads ``root/train/<synset>/*.JPEG`` and nothing else. What is held out, for the
per-epoch diagnostics and the k-NN evaluation (:func:`eval_splits`, :func:`diagnostic_views`;
:func:`held_out_source` says which in a few words, for the log):

- ``root/val/<synset>/*.JPEG`` (class folders, as ``torchvision.datasets.ImageNet`` leaves them):
  read with ImageFolder, labels indexing train/'s classes (a val/ class that train/ lacks is left
  out, a train/ class that val/ lacks is simply absent).
- ``root/val/*.JPEG``, flat (the ILSVRC2012 val archive extracted as it is), labelled by the first
  of these in ``root``: ``meta.bin`` (the file ``torchvision.datasets.ImageNet`` writes from the
  devkit; read with its ``load_meta_file``), ``ILSVRC2012_devkit_t12.tar.gz`` or its extracted
  folder (read in memory the way torchvision's ``parse_devkit_archive`` reads it, which needs
  scipy; its md5 check is skipped), ``LOC_val_solution.csv`` (Kaggle's ImageNet localisation
  download: the first synset of each row). Nothing is written into ``root`` and no file is
  moved: torchvision's ImageNet would write ``meta.bin`` there and sort val/ into class folders
  (only from the val tar archive), which fails on read-only cluster storage.
- no ``root/val``: a fixed held-out slice of train/ (:func:`held_out_indices`: 2 % of the images,
  at least 1000 and at most a fifth, picked by a hash of their file names). Pre-training still
  reads these images, as it reads all of train/ (it uses no labels); the k-NN memory bank leaves
  them out, so no query finds itself.

The trainer's batches: one loader interface
-------------------------------------------
:func:`make_two_view_loader` returns one of two loaders with the same small interface (after
airbench's ``CifarLoader``): ``len(loader)`` steps per epoch, ``loader.set_epoch(epoch, start)``
(shuffle of that epoch, from step ``start`` on: resuming mid-epoch), iteration yielding this
process's ``(view_a, view_b, labels)`` on the device, and ``loader.num_classes``.

- :class:`InMemoryTwoViewLoader` (Shapes, CIFAR): the whole split is one uint8 tensor on the
  device and both views of a batch are made there at once (``batch_augment.TwoViewBatchAugment``).
- :class:`DataLoaderTwoViews` (image folders, ``pipeline="pil"``): a ``DataLoader`` with workers
  running the PIL transforms (``augment.TwoViewTransform``) and shipping uint8 views, normalised
  on the device.
- :class:`~vicreg_edu.gpu_pipeline.DeviceTwoViewLoader` (image folders, ``pipeline="gpu"``):
  workers read the files; decode (nvJPEG on CUDA) and the batched augmentation run on the device.

All shard the data with the same :class:`ShardSampler` (DistributedSampler's shuffle, on one
process too), so ``set_epoch`` works everywhere.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import hashlib
import io
import os
import pickle
import random
import re
import tarfile
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from torchvision.datasets.folder import is_image_file

from . import distributed
from .augment import TwoViewTransform
from .batch_augment import TwoViewBatchAugment
from .config import IN_MEMORY_DATASETS
from .errors import DataError, DataNotFoundError
from .gpu_pipeline import DeviceTwoViewLoader
from .shapes import Shapes
from .shards import ShardSampler, check_batches, ignore_stop_signals, stop_workers
from .views import AugmentConfig

DEFAULT_ROOT = Path("data")

# -----------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (torchvision) and ImageFolder


class _CIFAR10NoMD5(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10 with the md5 checks replaced by "the files exist".

    Used only with ``load_dataset(..., verify_md5=False)``: for tests that write a tiny folder in
    the real pickle format (whose checksums cannot match the real files), or for a copy of CIFAR
    whose checksums you have verified another way. Everything else (unpickling, reshaping to
    HWC, the ``meta`` class names) is torchvision's own code.
    """

    def _check_integrity(self) -> bool:
        return all(
            os.path.isfile(os.path.join(self.root, self.base_folder, name))
            for name, _ in self.train_list + self.test_list
        )

    def _load_meta(self) -> None:
        path = os.path.join(self.root, self.base_folder, self.meta["filename"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CIFAR metadata file not found: {path}")
        with open(path, "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


class _CIFAR100NoMD5(_CIFAR10NoMD5, torchvision.datasets.CIFAR100):
    """torchvision's CIFAR100 with the md5 checks replaced by "the files exist" (see above)."""


_CIFAR = {
    "cifar10": (torchvision.datasets.CIFAR10, _CIFAR10NoMD5, "CIFAR-10"),
    "cifar100": (torchvision.datasets.CIFAR100, _CIFAR100NoMD5, "CIFAR-100"),
}


def _load_cifar(name, root, split, transform, download, verify_md5):
    cls, cls_no_md5, title = _CIFAR[name]
    folder = Path(root) / cls.base_folder
    if not download and not folder.is_dir():
        raise DataNotFoundError(
            f"{title} not found: expected the folder {folder} (the python version: "
            f"{', '.join(n for n, _ in cls.train_list + cls.test_list)}, {cls.meta['filename']}). "
            f"Pass download=True to fetch it, or download {cls.url} and extract it into {Path(root)}."
        )
    if not verify_md5 and download:
        raise ValueError("download=True downloads and checks the real files; use it with verify_md5=True")
    try:
        return (cls if verify_md5 else cls_no_md5)(
            str(root), train=(split == "train"), transform=transform, download=download
        )
    except (RuntimeError, FileNotFoundError) as err:  # torchvision: "Dataset not found or corrupted"
        raise DataNotFoundError(
            f"{title} in {folder} is incomplete or its md5 checksums do not match the official files "
            f"({err}). Re-download it with download=True (after removing the folder)."
        ) from err


# -----------------------------------------------------------------------------
# ImageNet as it comes: train/<synset>/*.JPEG; val/ in class folders, flat with labels, or absent

IMAGE_FOLDERS = ("imagefolder", "imagenet")
DEVKIT = "ILSVRC2012_devkit_t12"
VAL_LABEL_FILES = ("meta.bin", f"{DEVKIT}.tar.gz", DEVKIT, "LOC_val_solution.csv")
"""The files in ``root`` that label a flat val/, looked for in this order."""
HELD_OUT_SEED = 0  # salt of the hash that picks the held-out slice (held_out_indices)
_VAL_NUMBER = re.compile(r"ILSVRC2012_val_(\d+)$")
_LAYOUT = (
    "one sub-folder of images per class: root/train/<class>/*.JPEG, as ImageNet's "
    "root/train/n01440764/n01440764_10026.JPEG; root/val/ is optional"
)


class _ClassFolder(torchvision.datasets.ImageFolder):
    """ImageFolder whose labels index given classes (train/'s); sub-folders of other names are left out."""

    def __init__(self, root: str, classes: list[str], transform: Callable | None = None):
        self.given_classes = list(classes)
        super().__init__(root, transform=transform, loader=read_image)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        present = {c: i for i, c in enumerate(self.given_classes) if os.path.isdir(os.path.join(directory, c))}
        if not present:
            raise FileNotFoundError(f"no sub-folder of {directory} is named like a class of train/")
        return self.given_classes, present


class _LabelledFiles(Dataset):
    """Image files with known labels (a flat val/): item i is ``(image or transform(image), label)``."""

    def __init__(self, samples: list[tuple[str, int]], classes: list[str], transform: Callable | None = None):
        self.samples, self.classes, self.transform = samples, classes, transform
        self.targets = [y for _, y in samples]
        self.class_to_idx = {c: i for i, c in enumerate(classes)}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        img = read_image(path)
        return (img if self.transform is None else self.transform(img)), label


def _image_folder(name: str, folder: Path, transform: Callable | None, classes: list[str] | None = None) -> Dataset:
    """ImageFolder over ``folder`` (labels indexing ``classes`` when given), with one-line errors."""
    if not folder.is_dir():
        raise DataNotFoundError(f"{name}: expected the folder {folder} with {_LAYOUT}")
    try:
        if classes is None:
            return torchvision.datasets.ImageFolder(str(folder), transform=transform, loader=read_image)
        return _ClassFolder(str(folder), classes, transform)
    except FileNotFoundError as e:  # torchvision: no class folder, or no image file in them
        raise DataError(f"{name}: {folder} holds no images ({e}); expected {_LAYOUT}") from None


def _val_layout(root: Path) -> tuple[str, Path | None]:
    """``("sorted" | "flat" | "none", the file labelling a flat val/ or None)``."""
    val = root / "val"
    if not val.is_dir():
        return "none", None
    with os.scandir(val) as entries:
        if any(e.is_dir() for e in entries):
            return "sorted", None
    return "flat", next((root / f for f in VAL_LABEL_FILES if (root / f).exists()), None)


def _devkit_val_synsets(path: Path) -> list[str]:
    """The synset of val image k at position k - 1, from the ILSVRC2012 devkit (archive or folder).

    Reads ``data/meta.mat`` and ``data/ILSVRC2012_validation_ground_truth.txt`` in memory with the
    rule of torchvision's ``parse_devkit_archive``: the leaf synsets (``num_children == 0``) map
    ``ILSVRC2012_ID`` to ``WNID``. No md5 check, nothing written.
    """
    try:
        import scipy.io
    except ImportError:
        raise DataError(f"reading {path} needs scipy (pip install scipy), as torchvision's ImageNet does") from None
    members = [f"{DEVKIT}/data/meta.mat", f"{DEVKIT}/data/ILSVRC2012_validation_ground_truth.txt"]
    try:
        if path.is_dir():
            meta, truth = [(path.parent / m).read_bytes() for m in members]
        else:
            with tarfile.open(path) as tar:
                meta, truth = [tar.extractfile(m).read() for m in members]
        synsets = scipy.io.loadmat(io.BytesIO(meta), squeeze_me=True)["synsets"]
        idx_to_wnid = {int(s[0]): str(s[1]) for s in synsets if int(s[4]) == 0}  # (ID, WNID, .., num_children)
        return [idx_to_wnid[int(i)] for i in truth.decode().split()]
    except (OSError, KeyError, ValueError, IndexError, AttributeError, tarfile.TarError) as e:
        raise DataError(f"cannot read the ImageNet devkit {path} ({type(e).__name__}: {e})") from None


def _flat_val_labels(label_file: Path, stems: list[str]) -> dict[str, str]:
    """File name (no extension) -> synset for the val files that ``label_file`` labels."""
    if label_file.name == "LOC_val_solution.csv":  # ImageId,PredictionString ("n01751748 x0 y0 x1 y1 ...")
        with open(label_file, newline="") as f:
            return {row["ImageId"]: row["PredictionString"].split()[0] for row in csv.DictReader(f)}
    if label_file.name == "meta.bin":  # torchvision's (wnid_to_classes, val_wnids)
        synsets = torchvision.datasets.imagenet.load_meta_file(str(label_file.parent))[1]
    else:
        synsets = _devkit_val_synsets(label_file)
    numbers = {s: int(m.group(1)) for s in stems if (m := _VAL_NUMBER.match(s))}
    return {s: synsets[k - 1] for s, k in numbers.items() if 0 < k <= len(synsets)}


def _flat_val(name: str, root: Path, label_file: Path | None, transform, classes: list[str] | None) -> Dataset:
    """``root/val/*.JPEG`` labelled by ``label_file``; labels index ``classes`` (default: the synsets found)."""
    val = root / "val"
    with os.scandir(val) as entries:
        files = sorted(e.name for e in entries if e.is_file() and is_image_file(e.name))
    if not files:
        raise DataError(f"{name}: {val} holds no images; expected {_LAYOUT}")
    if label_file is None:
        raise DataNotFoundError(
            f"{name}: {val} holds {len(files)} images in no class folders and {root} has none of "
            f"{', '.join(VAL_LABEL_FILES)}"
            " to label them: add the ILSVRC2012 devkit archive (or torchvision's meta.bin), sort val/ into class "
            "folders, or remove val/ to hold out a slice of train/"
        )
    stems = [os.path.splitext(f)[0] for f in files]
    labels = _flat_val_labels(label_file, stems)
    unlabelled = [f for f, s in zip(files, stems) if s not in labels]
    if unlabelled:
        raise DataError(
            f"{name}: {label_file} has no label for {len(unlabelled)} of the {len(files)} images in "
            f"{val} (first: {unlabelled[0]})"
        )
    classes = classes or sorted(set(labels.values()))
    index = {c: i for i, c in enumerate(classes)}
    samples = [(str(val / f), index[labels[s]]) for f, s in zip(files, stems) if labels[s] in index]
    if not samples:
        raise DataError(f"{name}: no image in {val} is of a class of {root / 'train'} (labels from {label_file})")
    return _LabelledFiles(samples, classes, transform)


def _train_classes(root: Path) -> list[str] | None:
    try:
        return torchvision.datasets.folder.find_classes(str(root / "train"))[0]
    except (FileNotFoundError, NotADirectoryError):
        return None


def _load_image_folder(name: str, root, split: str, transform: Callable | None) -> Dataset:
    """load_dataset for ``imagefolder`` / ``imagenet``: train/, or val/ in either layout."""
    if root is None:
        raise ValueError(f"{name}: pass root=, the folder that holds train/ (and optionally val/)")
    root = Path(root)
    if split == "train":
        return _image_folder(name, root / "train", transform)
    kind, label_file = _val_layout(root)
    if kind == "none":
        raise DataNotFoundError(
            f"{name}: expected the folder {root / 'val'} with one sub-folder of images per class, or flat with one "
            f"of {', '.join(VAL_LABEL_FILES)} in {root}; without val/, eval_splits() holds out a slice of train/"
        )
    if kind == "sorted":
        return _image_folder(name, root / "val", transform, _train_classes(root))
    return _flat_val(name, root, label_file, transform, _train_classes(root))


def load_dataset(
    name: str,
    root: str | Path | None = None,
    split: str = "train",
    transform: Callable | None = None,
    download: bool = False,
    *,
    verify_md5: bool = True,
) -> Dataset:
    """Load a dataset by name; every dataset returns ``(image or transform(image), label)``.

    Args:
        name: ``"shapes"`` (built-in, no files), ``"cifar10"``, ``"cifar100"``, ``"imagefolder"``
            or its alias ``"imagenet"`` (``root/train`` with one folder per class; ``root/val`` in
            class folders or flat with a label file: see "ImageNet as it comes" above).
        root: data folder; default ``./data`` for CIFAR (which then lives in
            ``./data/cifar-10-batches-py``); required for ImageFolder; ignored for shapes.
        split: ``"train"``, or ``"test"`` / ``"val"`` (the same thing: shapes and CIFAR call it
            test, the ImageFolder reads ``root/val``, whose labels index train/'s classes).
        transform: applied to the PIL image.
        download: CIFAR only; fetch the files if missing (torchvision's downloader).
        verify_md5: CIFAR only; check the official md5 checksums (torchvision's default). False
            only checks that the files exist: for tiny test folders in the real format.

    Raises:
        DataNotFoundError (a FileNotFoundError): the data is not there (the message says how to get it).
        DataError: an image folder holds no images, or a flat val/ has files its labels do not cover.
        ValueError: unknown name or split.

    Example:
        >>> ds = load_dataset("shapes", split="test")
        >>> len(ds), ds[0][0].size
        (2000, (32, 32))
    """
    if split not in ("train", "test", "val"):
        raise ValueError(f"split must be 'train', 'test' or 'val', got {split!r}")
    if name == "shapes":
        return Shapes("train" if split == "train" else "test", transform=transform)
    if name in _CIFAR:
        return _load_cifar(name, DEFAULT_ROOT if root is None else root, split, transform, download, verify_md5)
    if name in IMAGE_FOLDERS:
        return _load_image_folder(name, root, split, transform)
    raise ValueError(f"unknown dataset {name!r}; expected 'shapes', 'cifar10', 'cifar100', 'imagefolder' or 'imagenet'")


def read_image(path: str) -> Image.Image:
    """Open an image file as RGB (greyscale, palette and RGBA images are converted).

    Raises:
        DataError: the file is not a readable image; the message names the file.
    """
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read the image file {path} ({type(e).__name__}: {e}); remove or replace it") from None


def in_memory_uint8(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of an in-memory dataset as one uint8 tensor, for the batched GPU augmentation.

    Args:
        dataset: a dataset with ``.data`` (uint8 array (N, H, W, 3)) and ``.targets`` (N labels):
            ``Shapes``, CIFAR-10, CIFAR-100.

    Returns:
        ``(images uint8 (N, 3, H, W), labels int64 (N,))``, both on CPU.

    Raises:
        TypeError: the dataset keeps its images on disk (e.g. ImageFolder).

    Example:
        >>> x, y = in_memory_uint8(Shapes("test", n=20))
        >>> x.shape, x.dtype, y.shape
        (torch.Size([20, 3, 32, 32]), torch.uint8, torch.Size([20]))
    """
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", None)
    if data is None or targets is None:
        raise TypeError(
            f"in_memory_uint8 needs a dataset with .data (N, H, W, 3) uint8 and .targets, like Shapes or "
            f"CIFAR10; {type(dataset).__name__} has none (images on disk: use DataLoaderTwoViews)"
        )
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[-1] != 3:
        raise TypeError(f".data must be uint8 of shape (N, H, W, 3), got {data.dtype} {data.shape}")
    x = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
    return x, torch.as_tensor(np.asarray(targets), dtype=torch.int64)


# -----------------------------------------------------------------------------
# What is held out: val/, or a fixed slice of train/ (for the diagnostics and the k-NN evaluation)


def held_out_indices(names: list[str]) -> tuple[list[int], list[int]]:
    """The fixed held-out slice of train/ (file names relative to it), used when there is no val/.

    Returns ``(held_out, rest)``: the ``min(max(n // 50, 1000), n // 5)`` names (2 % of ImageNet's
    1.28 M, at least 1000, at most a fifth of a small folder) that come first when sorted by a hash
    of ``HELD_OUT_SEED`` and the name, in that order, so any first k of them are a random sample
    across classes; ``rest``: the other indices, ascending. It depends on the names only (no RNG,
    no library version): a folder gives the same slice in every run, process and machine.

    Example:
        >>> held, rest = held_out_indices([f"n01440764/n01440764_{i}.JPEG" for i in range(20)])
        >>> len(held), len(rest), sorted(held + rest) == list(range(20))
        (4, 16, True)
    """
    n = len(names)
    salt = f"{HELD_OUT_SEED}/".encode()
    order = sorted(range(n), key=lambda i: hashlib.blake2b(salt + names[i].encode(), digest_size=8).digest())
    k = min(max(n // 50, 1000), n // 5)
    return order[:k], sorted(order[k:])


def _train_names(train: Dataset) -> list[str]:
    """The file names of an ImageFolder relative to its folder (held_out_indices' input)."""
    return [path[len(train.root) :].replace(os.sep, "/").lstrip("/") for path, _ in train.samples]


def held_out_source(name: str, root=None) -> str:
    """Which images the diagnostics and the k-NN evaluation hold out, in a few words (for the log).

    Looks only at the folder layout (no file listing of train/).

    Example:
        >>> held_out_source("shapes")
        'the test split'
    """
    if name not in IMAGE_FOLDERS:
        return "the test split"
    if root is None:
        raise ValueError(f"{name}: pass root=, the folder that holds train/ (and optionally val/)")
    kind, label_file = _val_layout(Path(root))
    if kind == "sorted":
        return "val/ (class folders)"
    if kind == "flat":
        return f"val/ (flat, labels from {label_file.name if label_file else 'nowhere'})"
    return "a fixed held-out slice of train/ (no val/; picked by file-name hash: data.held_out_indices)"


class EvalSplits(NamedTuple):
    """A labelled evaluation: ``train`` (the k-NN memory bank), ``test`` (the queries), ``source`` (in words)."""

    train: Dataset
    test: Dataset
    source: str


def eval_splits(
    name: str, root=None, transform: Callable | None = None, *, download: bool = False, verify_md5: bool = True
) -> EvalSplits:
    """The k-NN memory bank and queries of a dataset, both yielding ``(image or transform(image), label)``.

    Shapes / CIFAR: the train and test splits. Image folders: train/ and val/ when there is a
    val/ (either layout), else train/ without the held-out slice and the slice
    (:func:`held_out_indices`; pre-training still reads it). ``source`` = :func:`held_out_source`.

    Example:
        >>> bank, queries, source = eval_splits("shapes")
        >>> len(bank), len(queries), source
        (10000, 2000, 'the test split')
    """
    kw = {"transform": transform, "download": download, "verify_md5": verify_md5}
    if name not in IMAGE_FOLDERS:
        return EvalSplits(
            load_dataset(name, root, "train", **kw), load_dataset(name, root, "test", **kw), held_out_source(name, root)
        )
    train = load_dataset(name, root, "train", transform)
    if _val_layout(Path(root))[0] != "none":
        return EvalSplits(train, load_dataset(name, root, "val", transform), held_out_source(name, root))
    held, rest = held_out_indices(_train_names(train))
    return EvalSplits(Subset(train, rest), Subset(train, held), held_out_source(name, root))


def _held_out_images(name: str, root) -> Dataset:
    """eval_splits' queries without listing train/ when there is a val/ (image folders only)."""
    if root is not None and _val_layout(Path(root))[0] != "none":
        return load_dataset(name, root, "val")
    train = load_dataset(name, root, "train")
    return Subset(train, held_out_indices(_train_names(train))[0])


# -----------------------------------------------------------------------------
# Two views and the loader


@contextlib.contextmanager
def _keyed_rng(*key: int):
    """Seed torch's (CPU), numpy's and random's global generators from ``key``; restore them on exit.

    The seeds come from ``numpy.random.SeedSequence(key)``, so nearby keys give unrelated streams.
    CUDA generators are left alone.
    """
    words = np.random.SeedSequence([k % 2**64 for k in key]).generate_state(4, np.uint64)
    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.default_generator.manual_seed(int(words[0]))
    np.random.seed(words[1:3].view(np.uint32))
    random.seed(int(words[3]))
    try:
        yield
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])


class TwoViewDataset(Dataset):
    """Wrap a dataset of ``(image, label)`` so that each item is ``((view_a, view_b), label)``.

    ``ds[i]`` draws the views from the global RNGs as they are. ``ds[(epoch, i)]`` draws them (and
    anything random in ``base[i]``) from torch's, numpy's and random's generators seeded by
    ``(seed, epoch, i)`` and restored afterwards: a sample's views are then a function of
    ``(seed, epoch, i)``, whatever worker, worker count, rank or resume point reads it.
    :class:`DataLoaderTwoViews` reads it that way.

    Args:
        base: a dataset returning untransformed images (PIL), e.g. ``load_dataset("cifar10")``.
        two_view_transform: callable image -> (view_a, view_b), e.g. ``augment.TwoViewTransform``;
            its randomness must come from torch, numpy or random's global generators (true of
            torchvision's transforms and of ``TwoViewTransform``).
        seed: the run's seed, first part of the ``(seed, epoch, i)`` key.

    Example:
        >>> from vicreg_edu.augment import TwoViewTransform
        >>> from vicreg_edu.views import shapes_augment
        >>> ds = TwoViewDataset(Shapes("test", n=10), TwoViewTransform(shapes_augment()), seed=0)
        >>> (a, b), y = ds[(3, 0)]
        >>> a.shape, torch.equal(a, ds[(3, 0)][0][0])
        (torch.Size([3, 32, 32]), True)
    """

    def __init__(self, base: Dataset, two_view_transform: Callable, seed: int = 0):
        if not callable(two_view_transform):
            raise TypeError(f"two_view_transform must be callable, got {type(two_view_transform).__name__}")
        self.base, self.two_view_transform, self.seed = base, two_view_transform, seed

    def __len__(self) -> int:
        return len(self.base)

    def _views(self, i: int):
        img, label = self.base[i]
        view_a, view_b = self.two_view_transform(img)
        return (view_a, view_b), label

    def __getitem__(self, key):
        if isinstance(key, tuple):
            epoch, i = key
            with _keyed_rng(self.seed, epoch, i):
                return self._views(i)
        return self._views(key)


# -----------------------------------------------------------------------------
# The trainer's loaders: len = steps per epoch, set_epoch(epoch, start), iter -> (view_a, view_b, labels)


class InMemoryTwoViewLoader:
    """Batches of two views made on the device from one uint8 tensor (Shapes, CIFAR).

    Each step draws the augmentation parameters of the GLOBAL batch from a per-step seed
    (``seed * 1_000_003 + epoch * len(self) + step``) and keeps this rank's rows: rank r's samples
    sit at positions r, r + W, ... of the global batch (the sampler interleaves), so W processes
    see exactly the views one process would, and a resumed run sees the same views.

    Args:
        images: uint8 (N, 3, H, W) on the device; labels: int64 (N,) on the device.
        augment: the two-view batch augmentation; batch_size: the GLOBAL batch.
        rank, world: this process and the number of processes (default: from torch.distributed).

    Example:
        >>> from vicreg_edu.views import shapes_augment
        >>> x, y = in_memory_uint8(Shapes("test", n=64))
        >>> loader = InMemoryTwoViewLoader(x, y, TwoViewBatchAugment(shapes_augment()), batch_size=16)
        >>> loader.set_epoch(0); a, b, labels = next(iter(loader)); len(loader), a.shape
        (4, torch.Size([16, 3, 32, 32]))
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        augment: TwoViewBatchAugment,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int | None = None,
        world: int | None = None,
    ):
        rank = distributed.get_rank() if rank is None else rank
        world = distributed.get_world_size() if world is None else world
        self.images, self.labels, self.augment = images, labels, augment
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.sampler = ShardSampler(len(images), max(batch_size // world, 1), rank, world, seed)
        check_batches(self.sampler.steps, len(images), batch_size, world)
        self.num_classes = int(labels.max()) + 1
        self.epoch = 0

    def __len__(self) -> int:
        return self.sampler.steps

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch, start)

    def close(self) -> None:
        """Nothing to stop (no worker processes): the loaders' common interface."""

    def __iter__(self):
        order = torch.tensor(list(self.sampler), device=self.images.device)
        local, aug = self.sampler.batch_size, self.augment
        for i, step in enumerate(range(self.sampler.start, len(self))):
            idx = order[i * local : (i + 1) * local]
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * len(self) + step)
            pa, pb = aug.view_a.sample(self.batch_size, gen), aug.view_b.sample(self.batch_size, gen)
            pa, pb = ({k: v[self.rank :: self.world] for k, v in p.items()} for p in (pa, pb))
            x = self.images[idx]
            view_a, view_b = aug.apply(x, (pa, pb))  # on a GPU the two views run as one batch
            yield view_a, view_b, self.labels[idx]


class _EpochKeys(Sampler):
    """A ShardSampler's indices as ``(epoch, index)`` keys, which TwoViewDataset seeds each sample's views from."""

    def __init__(self, shard: ShardSampler):
        self.shard = shard

    def __len__(self) -> int:
        return len(self.shard)

    def __iter__(self):
        epoch = self.shard.order.epoch
        return ((epoch, i) for i in self.shard)


_OPEN_LOADERS: weakref.WeakSet = weakref.WeakSet()  # DataLoaderTwoViews with worker processes


@atexit.register  # after multiprocessing's exit hook was registered (torch imports it): runs before it
def _close_open_loaders() -> None:
    """Stop the workers of every loader still open, as the interpreter exits.

    Without it, multiprocessing's exit hook sends the workers SIGTERM, which they ignore
    (:func:`ignore_stop_signals`), and then waits for them forever: e.g. after a run that raised,
    whose traceback keeps its loader alive.
    """
    for loader in list(_OPEN_LOADERS):
        loader.close()


class DataLoaderTwoViews:
    """Batches of two views from a ``DataLoader`` whose workers run the PIL transforms (image folders).

    Sample i's views in epoch e are drawn from generators seeded by ``(seed, e, i)``
    (:class:`TwoViewDataset`), not from the workers' random streams: the batches are the same
    for any ``num_workers``, for W processes (interleaved, as the in-memory loader) and for a run
    resumed mid-epoch with ``set_epoch(e, start)``.

    The workers may ship uint8 views (``TwoViewTransform(cfg, normalize=False)``, what
    :func:`make_two_view_loader` uses: a quarter of the bytes of float32 through shared memory and
    the copy to the GPU); they are normalised on ``device`` with ``mean`` and ``std`` by the same
    operations as ``ToTensor`` + ``Normalize``, so the batches equal the float32 path's.

    Args:
        dataset: yields ``(PIL image, label)``; two_view_transform: PIL image -> (view_a, view_b),
            float or uint8 tensors.
        batch_size: the GLOBAL batch; device: where the batches go.
        seed: the shuffle's and the views' seed; num_workers: loader processes.
        mean, std: the normalisation of uint8 views (default: ``two_view_transform.cfg``'s).

    Example:
        >>> from vicreg_edu.views import shapes_augment
        >>> loader = DataLoaderTwoViews(Shapes("test", n=32), TwoViewTransform(shapes_augment()), batch_size=8)
        >>> loader.set_epoch(0); a, b, labels = next(iter(loader)); len(loader), a.shape
        (4, torch.Size([8, 3, 32, 32]))
    """

    def __init__(
        self,
        dataset: Dataset,
        two_view_transform: Callable,
        batch_size: int,
        *,
        seed: int = 0,
        num_workers: int = 0,
        device: torch.device | str = "cpu",
        rank: int | None = None,
        world: int | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ):
        rank = distributed.get_rank() if rank is None else rank
        world = distributed.get_world_size() if world is None else world
        self.device = torch.device(device)
        cfg = getattr(two_view_transform, "cfg", None)
        self.mean = tuple(mean) if mean is not None else getattr(cfg, "mean", None)
        self.std = tuple(std) if std is not None else getattr(cfg, "std", None)
        self._norm: tuple[torch.Tensor, torch.Tensor] | None = None
        self.sampler = ShardSampler(len(dataset), max(batch_size // world, 1), rank, world, seed)
        check_batches(self.sampler.steps, len(dataset), batch_size, world)
        classes = getattr(dataset, "classes", None) or getattr(getattr(dataset, "dataset", None), "classes", None)
        self.num_classes = len(classes)
        self.loader = DataLoader(
            TwoViewDataset(dataset, two_view_transform, seed=seed),
            batch_size=self.sampler.batch_size,
            sampler=_EpochKeys(self.sampler),
            drop_last=True,
            num_workers=num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=num_workers > 0,
            worker_init_fn=ignore_stop_signals if num_workers > 0 else None,
        )
        if num_workers > 0:
            _OPEN_LOADERS.add(self)

    def __len__(self) -> int:
        return self.sampler.steps

    def close(self) -> None:
        """Stop the worker processes now (the trainer calls it when a run ends, however it ends).

        They ignore SIGTERM (:func:`ignore_stop_signals`): they are told to stop through their
        queues and, if still alive after that, killed. A later ``iter()`` starts new ones.
        """
        it, self.loader._iterator = self.loader._iterator, None  # persistent workers' iterator
        stop_workers(it)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.sampler.set_epoch(epoch, start)

    def _ready(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of views on the device; uint8 ones normalised there (``ToTensor`` + ``Normalize``'s ops)."""
        x = x.to(self.device, non_blocking=True)
        if x.dtype != torch.uint8:
            return x
        if self._norm is None:
            if self.mean is None or self.std is None:
                raise ValueError("the transform ships uint8 views: pass mean= and std= to normalise them")
            self._norm = tuple(torch.tensor(v, device=self.device).view(1, 3, 1, 1) for v in (self.mean, self.std))
        mean, std = self._norm
        return x.float().div_(255).sub_(mean).div_(std)

    def __iter__(self):
        for (x_a, x_b), y in self.loader:
            yield self._ready(x_a), self._ready(x_b), y.to(self.device, non_blocking=True)


def first_items(data, n: int):
    """The first n items of (images, labels) tensors or of a dataset (n = 0: all)."""
    if isinstance(data, tuple):
        return (data[0][:n], data[1][:n]) if n else data
    return torch.utils.data.Subset(data, range(min(n, len(data)))) if n else data


def make_two_view_loader(
    name: str,
    root,
    aug: AugmentConfig,
    batch_size: int,
    *,
    train_size: int = 0,
    download: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    rank: int | None = None,
    world: int | None = None,
    pipeline: str = "pil",
):
    """The training loader of a dataset: in memory for Shapes/CIFAR; for image folders the PIL
    DataLoader (``pipeline="pil"``) or the device pipeline (``pipeline="gpu"``).

    Returns an :class:`InMemoryTwoViewLoader`, a :class:`DataLoaderTwoViews` (workers ship uint8
    views, normalised on ``device``) or a :class:`~vicreg_edu.gpu_pipeline.DeviceTwoViewLoader`
    (workers read the files; decode and augmentation on ``device``). Same interface: ``len``,
    ``set_epoch(epoch, start=0)``, iteration -> ``(view_a, view_b, labels)`` on ``device``,
    ``num_classes``. ``batch_size`` is global; ``train_size`` keeps the first N images (0 = all).
    ``pipeline`` is ignored for in-memory datasets (already augmented on the device).

    Example:
        >>> from vicreg_edu.views import shapes_augment
        >>> loader = make_two_view_loader("shapes", None, shapes_augment(), 128, train_size=512)
        >>> len(loader), loader.num_classes
        (4, 10)
    """
    if name in IN_MEMORY_DATASETS:
        images, labels = first_items(in_memory_uint8(load_dataset(name, root, "train", download=download)), train_size)
        device = torch.device(device)
        return InMemoryTwoViewLoader(
            images.to(device),
            labels.to(device),
            TwoViewBatchAugment(aug),
            batch_size,
            seed=seed,
            rank=rank,
            world=world,
        )
    if pipeline not in ("pil", "gpu"):
        raise ValueError(f"pipeline must be 'pil' or 'gpu', got {pipeline!r}")
    base = first_items(load_dataset(name, root, "train"), train_size)
    if pipeline == "gpu":
        return DeviceTwoViewLoader(
            base, aug, batch_size, seed=seed, num_workers=num_workers, device=device, rank=rank, world=world
        )
    return DataLoaderTwoViews(
        base,
        TwoViewTransform(aug, normalize=False),
        batch_size,
        seed=seed,
        num_workers=num_workers,
        device=device,
        rank=rank,
        world=world,
    )


DIAG_EPOCH = 2**32 - 1  # the epoch in the diagnostic views' keys: one no run reaches


class DiagnosticViews:
    """Two fixed views of held-out images, kept on the CPU; :meth:`batches` sends them to the device.

    Attributes:
        view_a, view_b: CPU tensors (n, 3, size, size). Image folders: uint8, the pixels of the PIL
            pipeline before ``ToTensor`` + ``Normalize`` (exact: PIL works in 8 bits), n x 3 x size^2
            bytes each (2 x 308 MB for 2048 views at 224 px, a quarter of float32). Shapes / CIFAR:
            float32, already normalised (the batched augmentation's output; 6 MB per 512 views of 32 px).
        mean, std: the normalisation :meth:`batches` applies to uint8 views.
        source: which images (:func:`held_out_source`).
    """

    def __init__(self, view_a: torch.Tensor, view_b: torch.Tensor, mean, std, source: str):
        self.view_a, self.view_b, self.mean, self.std, self.source = view_a, view_b, tuple(mean), tuple(std), source

    def __len__(self) -> int:
        return len(self.view_a)

    def batches(
        self, batch_size: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(view_a, view_b)`` of up to ``batch_size`` images at a time, normalised, on ``device`` as ``dtype``.

        Shapes: two (b, 3, size, size) per step; uint8 views are normalised on the device in
        float32 (the same numbers as ``ToTensor`` + ``Normalize``), then cast to ``dtype``.
        """
        device = torch.device(device)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)

        def ready(v: torch.Tensor) -> torch.Tensor:
            v = v.to(device, non_blocking=True)
            if v.dtype == torch.uint8:
                v = v.float().div_(255).sub_(mean).div_(std)
            return v.to(dtype)

        for i in range(0, len(self), batch_size):
            yield ready(self.view_a[i : i + batch_size]), ready(self.view_b[i : i + batch_size])


def diagnostic_views(
    name: str, root, aug: AugmentConfig, n: int, seed: int = 0, *, num_workers: int = 0
) -> DiagnosticViews | None:
    """Two fixed views of the first ``n`` held-out images, for the per-epoch collapse report; ``n=0``: None (off).

    Held out: the test split (Shapes, CIFAR), else val/ or the held-out slice of train/ (as
    :func:`eval_splits`; fewer than ``n`` if there are fewer). The same views for every epoch,
    process count and ``num_workers`` (loader processes that read the images): the batched
    augmentation from a generator seeded with ``seed``, or image i's PIL views from generators
    keyed by ``(seed, DIAG_EPOCH, i)``. Build them on one process (rank 0); they stay on the CPU
    (see :class:`DiagnosticViews` for the dtypes and sizes).

    Example:
        >>> from vicreg_edu.views import shapes_augment
        >>> views = diagnostic_views("shapes", None, shapes_augment(), 64)
        >>> len(views), views.view_a.device.type, diagnostic_views("shapes", None, shapes_augment(), 0)
        (64, 'cpu', None)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int (0 = no diagnostic views), got {n!r}")
    if n == 0:
        return None
    source = held_out_source(name, root)
    if name in IN_MEMORY_DATASETS:
        x, _ = first_items(in_memory_uint8(load_dataset(name, root, "test")), n)
        view_a, view_b = TwoViewBatchAugment(aug)(x, torch.Generator().manual_seed(seed))
        return DiagnosticViews(view_a, view_b, aug.mean, aug.std, source)
    held = first_items(_held_out_images(name, root), n)
    ds = TwoViewDataset(held, TwoViewTransform(aug, normalize=False), seed=seed)
    views = [torch.empty((len(held), 3, aug.size, aug.size), dtype=torch.uint8) for _ in range(2)]
    keys = [(DIAG_EPOCH, i) for i in range(len(held))]
    done = 0
    loader = DataLoader(
        ds,
        batch_size=64,
        sampler=keys,
        num_workers=num_workers,
        worker_init_fn=ignore_stop_signals if num_workers > 0 else None,
    )
    batches = iter(loader)
    try:  # a worker's error ends the loop: its workers stop here, not at exit (they ignore SIGTERM)
        for (x_a, x_b), _ in batches:
            views[0][done : done + len(x_a)], views[1][done : done + len(x_b)] = x_a, x_b
            done += len(x_a)
    finally:
        stop_workers(batches)
    return DiagnosticViews(views[0], views[1], aug.mean, aug.std, source)
