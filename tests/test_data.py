"""Datasets and loaders on real on-disk formats written into tmp_path."""

import pickle
import time

import numpy as np
import pytest
import torch
from PIL import Image

from vicreg_edu import shapes as S
from vicreg_edu.augment import TwoViewTransform
from vicreg_edu.batch_augment import TwoViewBatchAugment
from vicreg_edu.data import (
    DataLoaderTwoViews,
    InMemoryTwoViewLoader,
    TwoViewDataset,
    in_memory_uint8,
    load_dataset,
    make_two_view_loader,
)
from vicreg_edu.errors import DataError
from vicreg_edu.shapes import Shapes
from vicreg_edu.views import DATASET_STATS, SHAPES_MEAN, SHAPES_STD, cifar_augment, shapes_augment


# -----------------------------------------------------------------------------
# built-in Shapes


def test_shapes_deterministic_for_a_seed():
    a = Shapes("test", n=120, seed=3).data.copy()
    S._make_shapes.cache_clear()  # really regenerate, not the memoised copy
    b = Shapes("test", n=120, seed=3)
    assert np.array_equal(a, b.data)
    assert not np.array_equal(a, Shapes("test", n=120, seed=4).data)
    assert not np.array_equal(a, Shapes("train", n=120, seed=3).data)  # disjoint streams


def _texture(data: np.ndarray) -> np.ndarray:
    """Mean absolute difference of horizontally adjacent pixels: high only for noisy backgrounds."""
    return np.abs(np.diff(data.astype(np.float32) / 255, axis=2)).mean(axis=(1, 2, 3))


def test_shapes_backgrounds_switch():
    """Noisy backgrounds are off by default; with them on, only the would-be noisy images change."""
    default, every = Shapes("test", n=300, seed=2), Shapes("test", n=300, seed=2, backgrounds=S.BACKGROUNDS)
    assert default.backgrounds == ("flat", "gradient") and every.backgrounds == S.BACKGROUNDS
    assert default.targets == every.targets
    changed = np.any(default.data != every.data, axis=(1, 2, 3))
    assert 0.2 < changed.mean() < 0.5  # about a third of the images were drawn noisy
    tex_default, tex_every = _texture(default.data), _texture(every.data)
    assert tex_every[changed].min() > tex_default.max() * 0.5  # the changed ones are the textured ones
    assert tex_every[changed].mean() > 3 * tex_default.mean()
    flat = Shapes("test", n=300, seed=2, backgrounds=("flat",))
    assert np.array_equal(flat.data[changed], default.data[changed])  # would-be noisy: flat in both
    assert np.any(flat.data[~changed] != default.data[~changed])  # the gradients are gone too
    with pytest.raises(ValueError, match="backgrounds must be a non-empty subset"):
        Shapes("test", n=10, backgrounds=("striped",))
    with pytest.raises(ValueError, match="backgrounds must be a non-empty subset"):
        Shapes("test", n=10, backgrounds=())


@pytest.mark.parametrize("n", [200, 205])
def test_shapes_balanced_and_well_formed(n):
    ds = Shapes("train", n=n, seed=1)
    counts = np.bincount(ds.targets, minlength=len(ds.classes))
    assert len(ds.classes) == 10 and len(set(ds.classes)) == 10
    assert counts.max() - counts.min() <= 1 and counts.sum() == n
    assert ds.data.shape == (n, 32, 32, 3) and ds.data.dtype == np.uint8
    img, label = ds[0]
    assert isinstance(img, Image.Image) and img.size == (32, 32) and label == ds.targets[0]
    assert not np.array_equal(ds.targets[:20], sorted(ds.targets[:20]))  # shuffled, not blocked


def test_shapes_default_sizes_and_stats():
    t = time.perf_counter()
    test = Shapes("test")
    elapsed = time.perf_counter() - t
    assert len(test) == 2_000 and S.SHAPES_SPLIT_SIZES["train"] == 10_000
    assert elapsed < 15, f"generating 2000 images took {elapsed:.1f}s"
    # DATASET_STATS were measured on the default train split; another draw agrees to sampling error
    x = Shapes("train", n=3000).data.reshape(-1, 3).astype(np.float64) / 255
    mean, std = DATASET_STATS["shapes"]
    assert np.allclose(x.mean(0), mean, atol=0.01) and np.allclose(x.std(0), std, atol=0.01)
    assert (mean, std) == (SHAPES_MEAN, SHAPES_STD)


def _knn(train_x, train_y, test_x, test_y, k=20, t=0.07):
    """Cosine k-NN with exp(sim / t) weighted votes (the evaluation protocol of evaluate.py)."""
    a = torch.nn.functional.normalize(train_x, dim=1)
    b = torch.nn.functional.normalize(test_x, dim=1)
    sim, idx = (b @ a.T).topk(k, dim=1)
    votes = torch.zeros(len(b), int(train_y.max()) + 1).scatter_add_(1, train_y[idx], (sim / t).exp())
    return (votes.argmax(1) == test_y).float().mean().item()


def test_shapes_raw_pixel_knn_is_poor():
    """The point of the dataset: pixels alone do not give the class (chance = 0.10)."""
    (xtr, ytr), (xte, yte) = in_memory_uint8(Shapes("train", n=3000)), in_memory_uint8(Shapes("test", n=600))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in DATASET_STATS["shapes"])
    norm = lambda x: ((x.float() / 255 - mean) / std).flatten(1)  # noqa: E731
    acc = _knn(norm(xtr), ytr, norm(xte), yte)
    assert acc < 0.30, acc
    assert acc > 0.05, acc  # sanity: labels and images still belong together


def test_shapes_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        Shapes("validation")
    with pytest.raises(ValueError, match="positive"):
        Shapes("train", n=0)


# -----------------------------------------------------------------------------
# CIFAR in the real pickle format


def _write_cifar10(root, n_per_batch=4, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)  # rows: 1024 R, 1024 G, 1024 B
        labels = rng.integers(0, 10, n_per_batch).tolist()
        entry = {
            "batch_label": name,
            "labels": labels,
            "data": data,
            "filenames": [f"{name}_{i}.png" for i in range(n_per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
        written[name] = (data, labels)
    meta = {
        "label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
        "num_cases_per_batch": n_per_batch,
        "num_vis": 3072,
    }
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f)
    return written


def test_cifar10_pickle_round_trip(tmp_path):
    written = _write_cifar10(tmp_path)
    train = load_dataset("cifar10", root=tmp_path, split="train", verify_md5=False)
    test = load_dataset("cifar10", root=tmp_path, split="test", verify_md5=False)
    assert len(train) == 20 and len(test) == 4 and train.classes[0] == "airplane"
    data, labels = written["data_batch_2"]
    hwc = data[1].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(train.data[5], hwc) and train.targets[5] == labels[1]
    img, label = train[5]
    assert np.array_equal(np.asarray(img), hwc) and label == labels[1]
    x, y = in_memory_uint8(test)
    assert x.shape == (4, 3, 32, 32) and torch.equal(y, torch.tensor(written["test_batch"][1]))
    assert np.array_equal(
        x[0].permute(1, 2, 0).numpy(), written["test_batch"][0][0].reshape(3, 32, 32).transpose(1, 2, 0)
    )


def test_cifar10_with_md5_check_rejects_files_that_are_not_the_official_ones(tmp_path):
    _write_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="md5"):
        load_dataset("cifar10", root=tmp_path)


def test_cifar_missing_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True") as e:
        load_dataset("cifar10", root=tmp_path / "nowhere")
    assert "cifar-10-batches-py" in str(e.value)
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_dataset("cifar100", root=tmp_path)


def test_cifar100_pickle_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 6), ("test", 3)):
        entry = {
            "filenames": [f"{i}.png" for i in range(n)],
            "batch_label": name,
            "fine_labels": rng.integers(0, 100, n).tolist(),
            "coarse_labels": rng.integers(0, 20, n).tolist(),
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
        if name == "train":
            train_entry = entry
    with open(folder / "meta", "wb") as f:
        pickle.dump(
            {"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": [f"s{i}" for i in range(20)]}, f
        )
    ds = load_dataset("cifar100", root=tmp_path, split="train", verify_md5=False)
    assert len(ds) == 6 and len(ds.classes) == 100 and ds.targets == train_entry["fine_labels"]
    assert np.array_equal(ds.data[2], train_entry["data"][2].reshape(3, 32, 32).transpose(1, 2, 0))
    assert len(load_dataset("cifar100", root=tmp_path, split="test", verify_md5=False)) == 3


# -----------------------------------------------------------------------------
# ImageFolder


def test_imagefolder_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    saved = {}
    for split in ("train", "val"):
        for cls in ("dog", "cat"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i, ext in enumerate(("png", "jpg")):
                ramp = np.linspace(0, 1, 24)[None, :, None] * rng.uniform(0, 120, 3)  # smooth, JPEG-friendly
                arr = (rng.uniform(0, 120, 3) + ramp + np.zeros((20, 1, 1))).astype(np.uint8)
                path = tmp_path / split / cls / f"{i}.{ext}"
                Image.fromarray(arr).save(path)
                saved[str(path)] = arr
    ds = load_dataset("imagenet", root=tmp_path, split="train")
    assert ds.classes == ["cat", "dog"] and len(ds) == 4
    assert len(load_dataset("imagefolder", root=tmp_path, split="val")) == 4
    for (path, label), i in zip(ds.samples, range(len(ds))):
        img, y = ds[i]
        assert y == label == ds.class_to_idx[path.split("/")[-2]] and img.size == (24, 20)
        got = np.asarray(img).astype(int)
        if path.endswith(".png"):
            assert np.array_equal(got, saved[path])  # lossless
        else:
            assert np.abs(got - saved[path]).mean() < 40  # JPEG of noise: lossy but close
    a, b = TwoViewDataset(ds, TwoViewTransform(cifar_augment(size=16)))[0][0]
    assert a.shape == b.shape == (3, 16, 16)
    with pytest.raises(TypeError, match="ImageFolder"):
        in_memory_uint8(ds)


def test_imagefolder_missing_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="one sub-folder"):
        load_dataset("imagefolder", root=tmp_path, split="val")
    with pytest.raises(ValueError, match="root"):
        load_dataset("imagenet")


def test_load_dataset_names_and_splits():
    assert len(load_dataset("shapes", split="val")) == 2000
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="split"):
        load_dataset("shapes", split="dev")


# -----------------------------------------------------------------------------
# two views and the loader


def test_two_view_dataset_views_differ_label_kept():
    base = Shapes("test", n=30)
    ds = TwoViewDataset(base, TwoViewTransform(shapes_augment()))
    torch.manual_seed(0)
    for i in range(5):
        (a, b), y = ds[i]
        assert y == base.targets[i] and a.shape == (3, 32, 32) and not torch.allclose(a, b)


# -----------------------------------------------------------------------------
# the trainer's loaders: one interface for the in-memory and the DataLoader path


def _epoch(loader, epoch, start=0):
    loader.set_epoch(epoch, start)
    return list(loader)


@pytest.mark.parametrize("kind", ["in_memory", "dataloader"])
def test_loaders_share_one_interface(kind):
    """len = steps per epoch; set_epoch(e) fixes the shuffle of epoch e (on one process too);
    set_epoch(e, start) yields exactly the batches start.. of that epoch."""
    aug = shapes_augment()
    if kind == "in_memory":
        loader = make_two_view_loader("shapes", None, aug, 16, train_size=80, seed=3)
        assert isinstance(loader, InMemoryTwoViewLoader)
    else:
        loader = DataLoaderTwoViews(Shapes("test", n=80), TwoViewTransform(aug), 16, seed=3)
    assert len(loader) == 5 and loader.num_classes == 10
    first = _epoch(loader, 0)
    assert len(first) == 5
    a, b, y = first[0]
    assert a.shape == b.shape == (16, 3, 32, 32) and y.shape == (16,) and not torch.equal(a, b)
    labels = [y for _, _, y in first]
    assert all(torch.equal(u, v) for u, v in zip(labels, [y for _, _, y in _epoch(loader, 0)]))
    assert not all(torch.equal(u, v) for u, v in zip(labels, [y for _, _, y in _epoch(loader, 1)]))
    tail = _epoch(loader, 0, start=3)
    assert len(tail) == 2 and all(torch.equal(t[2], f[2]) for t, f in zip(tail, first[3:]))
    # the views are a function of (seed, epoch, step) in memory, of (seed, epoch, sample) on the
    # DataLoader path: resuming sees the same views
    assert all(torch.equal(t[0], f[0]) and torch.equal(t[1], f[1]) for t, f in zip(tail, first[3:]))


def test_in_memory_ranks_see_the_views_of_the_global_batch():
    """W ranks, each with batch / W images, get exactly the rows one process gets (interleaved)."""
    x, y = in_memory_uint8(Shapes("test", n=96))
    aug = TwoViewBatchAugment(shapes_augment())
    one = InMemoryTwoViewLoader(x, y, aug, 32, seed=1, rank=0, world=1)
    ranks = [InMemoryTwoViewLoader(x, y, aug, 32, seed=1, rank=r, world=2) for r in range(2)]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 3  # 48 images per rank: 3 batches of 16
    whole = _epoch(one, 2)[0]
    parts = [_epoch(r, 2)[0] for r in ranks]
    for i in range(3):  # view a, view b, labels: rank r holds rows r, r + 2, ...
        for r in range(2):
            assert torch.equal(parts[r][i], whole[i][r::2]), (i, r)


def test_loader_errors_name_the_problem():
    x, y = in_memory_uint8(Shapes("test", n=40))
    aug = TwoViewBatchAugment(shapes_augment())
    with pytest.raises(DataError, match=r"training set \(40 images\) is smaller than one batch \(batch_size=64\)"):
        InMemoryTwoViewLoader(x, y, aug, 64)
    with pytest.raises(ValueError, match="not divisible by the world size 3"):
        InMemoryTwoViewLoader(x, y, aug, 16, rank=0, world=3)


def test_corrupt_image_names_its_file(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.new("RGBA", (9, 7)).save(tmp_path / split / "a" / "ok.png")
    (tmp_path / "train" / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    ds = load_dataset("imagefolder", tmp_path, "train")
    assert ds[ds.samples.index((str(tmp_path / "train/a/ok.png"), 0))][0].mode == "RGB"  # RGBA -> RGB
    with pytest.raises(DataError, match=r"cannot read the image file .*train/a/broken\.jpg"):
        [ds[i] for i in range(len(ds))]


# -----------------------------------------------------------------------------
# loader workers ignore SIGTERM (pre-emption): they must still stop when a run or the interpreter ends


def test_loader_close_stops_its_workers():
    loader = DataLoaderTwoViews(Shapes("test", n=32), TwoViewTransform(shapes_augment()), batch_size=8, num_workers=2)
    loader.set_epoch(0)
    next(iter(loader))
    workers = list(loader.loader._iterator._workers)
    assert len(workers) == 2 and all(w.is_alive() for w in workers)
    loader.close()
    assert not any(w.is_alive() for w in workers)
    loader.set_epoch(1)  # usable again: new workers
    assert len(list(loader)) == len(loader)
    loader.close()


def test_trainer_stops_loader_workers_when_a_run_fails(tmp_path):
    """A worker's error ends the run; its workers are gone when train() raises, not at garbage collection."""
    import multiprocessing

    from conftest import _tiny

    from vicreg_edu.trainer import train

    root = tmp_path / "corrupt"
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(4):
                if split == "train":
                    (root / split / cls / f"{i}.jpg").write_bytes(b"\xff\xd8 truncated")
                else:
                    Image.new("L", (20, 20), 60 * i).save(root / split / cls / f"{i}.png")
    cfg = _tiny(
        tmp_path / "run",
        dataset="imagefolder",
        augment="imagenet",
        data_dir=str(root),
        aug={"size": 16},
        batch_size=4,
        diag_size=4,
        train_size=0,
        num_workers=1,
    )
    before = set(multiprocessing.active_children())
    with pytest.raises(DataError, match="cannot read the image file"):
        train(cfg)
    assert set(multiprocessing.active_children()) <= before


def test_interpreter_exits_with_a_loader_still_open(tmp_path):
    """A loader kept alive to the end (here by a reference cycle, as a traceback does) does not hang
    the exit: multiprocessing's exit hook would SIGTERM the workers, which ignore it, then wait."""
    import subprocess
    import sys

    from conftest import _subprocess_env

    code = (
        "from vicreg_edu.data import DataLoaderTwoViews\n"
        "from vicreg_edu.shapes import Shapes\n"
        "from vicreg_edu.augment import TwoViewTransform\n"
        "from vicreg_edu.views import shapes_augment\n"
        "loader = DataLoaderTwoViews(Shapes('test', n=32), TwoViewTransform(shapes_augment()), 8, num_workers=2)\n"
        "loader.set_epoch(0); next(iter(loader))\n"
        "loader.cycle = loader\n"
        "print('workers', len(loader.loader._iterator._workers), flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=_subprocess_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "workers 2" in done.stdout, done.stderr[-2000:]
