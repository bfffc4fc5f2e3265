"""ImageNet as it comes, on folders in the real layouts written into tmp_path.

train/<synset>/<synset>_<n>.JPEG only; a flat val/ (ILSVRC2012_val_<8 digits>.JPEG) labelled by the
ILSVRC2012 devkit archive (meta.mat + ground truth, as image-net.org ships it), by torchvision's
meta.bin (written here by torchvision's own parse_devkit_archive), or by Kaggle's
LOC_val_solution.csv; val/ sorted into class folders. And the DataLoader path's views keyed by
(seed, epoch, sample index).
"""

import io
import random
import shutil
import tarfile

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets.imagenet as tv_imagenet
from PIL import Image

from vicreg_edu import data as D
from vicreg_edu.augment import TwoViewTransform
from vicreg_edu.data import (
    DIAG_EPOCH,
    DataLoaderTwoViews,
    TwoViewDataset,
    diagnostic_views,
    eval_splits,
    held_out_source,
    load_dataset,
    make_two_view_loader,
)
from vicreg_edu.errors import DataError, DataNotFoundError
from vicreg_edu.views import imagenet_augment

SYNSETS = ["n01440764", "n01443537", "n01484850"]  # tench, goldfish, great white shark
OTHER = "n01491361"  # tiger shark: in the devkit and in val/, not in train/
# the devkit's ILSVRC2012_IDs are not in WNID order (in the real one, ID 1 is n02119789)
DEVKIT_IDS = {"n01484850": 1, OTHER: 2, "n01440764": 3, "n01443537": 4}
VAL_SYNSETS = ["n01443537", "n01440764", OTHER, "n01484850", "n01440764", "n01443537", "n01484850"]
AUG = imagenet_augment(size=32)


def _jpeg(path, cls: int, rng, size=(48, 40)):
    """A smooth JPEG whose hue says its class (JPEG-friendly, varied within a class)."""
    base = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]][cls], dtype=float)
    ramp = np.linspace(0, rng.uniform(20, 50), size[0])[None, :, None]
    arr = base + ramp + rng.normal(0, 6, (size[1], size[0], 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)


def write_train(root, per_class=12, seed=0):
    rng = np.random.default_rng(seed)
    for c, wnid in enumerate(SYNSETS):
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for i in range(per_class):
            _jpeg(folder / f"{wnid}_{10026 + 37 * i}.JPEG", c, rng)


def write_flat_val(root):
    """val/ILSVRC2012_val_0000000k.JPEG, image k of class VAL_SYNSETS[k - 1]."""
    rng = np.random.default_rng(1)
    (root / "val").mkdir()
    for k, wnid in enumerate(VAL_SYNSETS, 1):
        _jpeg(root / "val" / f"ILSVRC2012_val_{k:08d}.JPEG", (SYNSETS + [OTHER]).index(wnid), rng)


def write_devkit(root):
    """ILSVRC2012_devkit_t12.tar.gz with data/meta.mat (the synsets struct array, its 8 fields in the
    real order, one non-leaf synset) and data/ILSVRC2012_validation_ground_truth.txt."""
    fields = [
        "ILSVRC2012_ID",
        "WNID",
        "words",
        "gloss",
        "num_children",
        "children",
        "wordnet_height",
        "num_train_images",
    ]
    synsets = np.zeros((len(DEVKIT_IDS) + 1, 1), dtype=[(f, "O") for f in fields])
    for row, (wnid, idx) in enumerate(sorted(DEVKIT_IDS.items(), key=lambda kv: kv[1])):
        synsets[row, 0] = (float(idx), wnid, f"fish {idx}", "a fish", 0.0, np.zeros((1, 0)), 0.0, 1300.0)
    synsets[-1, 0] = (
        5.0,
        "n01473806",
        "aquatic vertebrate",
        "animal living in water",
        4.0,
        np.array([[1.0, 2.0, 3.0, 4.0]]),
        1.0,
        5200.0,
    )
    mat = io.BytesIO()
    scipy.io.savemat(mat, {"synsets": synsets})
    truth = "".join(f"{DEVKIT_IDS[w]}\n" for w in VAL_SYNSETS).encode()
    with tarfile.open(root / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as tar:
        for name, payload in (("meta.mat", mat.getvalue()), ("ILSVRC2012_validation_ground_truth.txt", truth)):
            info = tarfile.TarInfo(f"ILSVRC2012_devkit_t12/data/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def torchvision_meta_bin(root, monkeypatch):
    """meta.bin as torchvision.datasets.ImageNet writes it, by its own parser (md5 check off: our archive)."""
    monkeypatch.setattr(tv_imagenet, "_verify_archive", lambda *a: None)
    tv_imagenet.parse_devkit_archive(str(root))
    wnid_to_classes, val_wnids = tv_imagenet.load_meta_file(str(root))
    assert val_wnids == VAL_SYNSETS and wnid_to_classes["n01440764"] == ("fish 3",)  # torchvision reads it so


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# -----------------------------------------------------------------------------
# train/ only


def test_train_only_root_trains_and_holds_out_a_slice(tmp_path):
    write_train(tmp_path)
    loader = make_two_view_loader("imagenet", tmp_path, AUG, 8, seed=0)
    assert isinstance(loader, DataLoaderTwoViews) and len(loader) == 36 // 8 and loader.num_classes == 3
    loader.set_epoch(0)
    batches = list(loader)
    assert len(batches) == 4
    for a, b, y in batches:
        assert a.shape == b.shape == (8, 3, 32, 32) and a.dtype == torch.float32 and not torch.equal(a, b)
        assert y.dtype == torch.int64 and 0 <= y.min() and y.max() <= 2

    assert "held-out slice of train/" in held_out_source("imagenet", tmp_path)
    bank, queries, source = eval_splits("imagenet", tmp_path)
    assert source == held_out_source("imagenet", tmp_path)
    full = load_dataset("imagenet", tmp_path, "train")
    assert len(queries) == 36 // 5 and len(bank) == 36 - 36 // 5  # at most a fifth of a small folder
    assert sorted(queries.indices + bank.indices) == list(range(36))
    assert queries.indices == eval_splits("imagenet", tmp_path).test.indices  # fixed
    assert [queries[i][1] for i in range(len(queries))] == [full.targets[j] for j in queries.indices]


def test_held_out_slice_is_a_function_of_the_file_names():
    names = [f"n{c:08d}/n{c:08d}_{i}.JPEG" for c in range(100) for i in range(600)]
    held, rest = D.held_out_indices(names)
    assert len(held) == 60_000 // 50 and sorted(held + rest) == list(range(60_000))
    assert len({names[i].split("/")[0] for i in held[:200]}) > 70  # the first ones spread over the classes
    shuffled = names[::-1]  # the same files listed in another order: the same files held out
    assert {shuffled[i] for i in D.held_out_indices(shuffled)[0]} == {names[i] for i in held}
    assert D.held_out_indices(names[:5000])[0] != D.held_out_indices(names[5000:10000])[0]
    assert len(D.held_out_indices(names[:9])[0]) == 1 and D.held_out_indices(names[:4])[0] == []


def test_diagnostic_views_off_cpu_uint8_and_batched(tmp_path):
    write_train(tmp_path)
    assert diagnostic_views("imagenet", tmp_path, AUG, 0) is None
    assert diagnostic_views("shapes", None, AUG, 0) is None
    with pytest.raises(ValueError, match="non-negative"):
        diagnostic_views("imagenet", tmp_path, AUG, -1)
    views = diagnostic_views("imagenet", tmp_path, AUG, 5, seed=3)
    assert len(views) == 5 and views.source == held_out_source("imagenet", tmp_path)
    assert views.view_a.dtype == torch.uint8 and views.view_a.device.type == "cpu"
    assert views.view_a.shape == views.view_b.shape == (5, 3, 32, 32)
    assert len(diagnostic_views("imagenet", tmp_path, AUG, 100)) == 36 // 5  # all the held-out images
    workers = diagnostic_views("imagenet", tmp_path, AUG, 5, seed=3, num_workers=2)
    assert torch.equal(workers.view_a, views.view_a) and torch.equal(workers.view_b, views.view_b)
    assert not torch.equal(diagnostic_views("imagenet", tmp_path, AUG, 5, seed=4).view_a, views.view_a)

    steps = list(views.batches(3, "cpu", torch.float64))
    assert [a.shape[0] for a, _ in steps] == [3, 2] and steps[0][0].dtype == torch.float64
    image = eval_splits("imagenet", tmp_path).test[1][0]  # the second held-out image, the full PIL recipe
    with D._keyed_rng(3, DIAG_EPOCH, 1):
        want_a, want_b = TwoViewTransform(AUG)(image)
    got_a, got_b = next(iter(views.batches(2, "cpu")))
    assert torch.equal(got_a[1], want_a) and torch.equal(got_b[1], want_b)  # uint8 + normalise = ToTensor + Normalize


def test_in_memory_diagnostic_views_stay_on_the_cpu():
    from vicreg_edu.views import shapes_augment

    views = diagnostic_views("shapes", None, shapes_augment(), 40, seed=1)
    assert views.view_a.dtype == torch.float32 and views.view_a.device.type == "cpu" and len(views) == 40
    ((a, b),) = list(views.batches(64))
    assert torch.equal(a, views.view_a) and torch.equal(b, views.view_b) and views.source == "the test split"


# -----------------------------------------------------------------------------
# val/: flat with a label file, or sorted into class folders


@pytest.mark.parametrize("labels", ["devkit archive", "devkit folder", "torchvision meta.bin", "LOC_val_solution.csv"])
def test_flat_val_with_labels(tmp_path, labels, monkeypatch):
    write_train(tmp_path)
    write_flat_val(tmp_path)
    if labels.startswith("devkit"):
        write_devkit(tmp_path)
        if labels == "devkit folder":
            with tarfile.open(tmp_path / "ILSVRC2012_devkit_t12.tar.gz") as tar:
                tar.extractall(tmp_path)
            (tmp_path / "ILSVRC2012_devkit_t12.tar.gz").unlink()
        label_file = "ILSVRC2012_devkit_t12" + (".tar.gz" if labels == "devkit archive" else "")
    elif labels == "torchvision meta.bin":
        write_devkit(tmp_path)
        torchvision_meta_bin(tmp_path, monkeypatch)
        (tmp_path / "ILSVRC2012_devkit_t12.tar.gz").unlink()
        label_file = "meta.bin"
    else:
        rows = [f"ILSVRC2012_val_{k:08d},{w} 3 4 40 30 {w} 1 1 9 9\n" for k, w in enumerate(VAL_SYNSETS, 1)]
        (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(rows[::-1]))
        label_file = "LOC_val_solution.csv"
    before = _tree(tmp_path)

    val = load_dataset("imagenet", tmp_path, "val")
    train = load_dataset("imagenet", tmp_path, "train")
    kept = [(k, w) for k, w in enumerate(VAL_SYNSETS, 1) if w != OTHER]  # the tiger shark is not in train/
    assert val.classes == train.classes == SYNSETS and len(val) == len(kept) == 6
    assert [p.rsplit("/", 1)[1] for p, _ in val.samples] == [f"ILSVRC2012_val_{k:08d}.JPEG" for k, _ in kept]
    assert val.targets == [train.class_to_idx[w] for _, w in kept]
    img, y = val[2]
    assert isinstance(img, Image.Image) and img.size == (48, 40) and y == train.class_to_idx["n01484850"]
    assert np.asarray(img)[..., 2].mean() > 150  # the blue class's image, read from the right file
    assert held_out_source("imagenet", tmp_path) == f"val/ (flat, labels from {label_file})"
    bank, queries, _ = eval_splits("imagenet", tmp_path)
    assert len(bank) == len(train) == 36 and queries.targets == val.targets
    assert len(diagnostic_views("imagenet", tmp_path, AUG, 4)) == 4
    assert _tree(tmp_path) == before  # nothing written into root, no file moved


def test_devkit_parse_matches_torchvision(tmp_path, monkeypatch):
    """Our in-memory devkit reader gives what torchvision's parse_devkit_archive writes to meta.bin."""
    write_devkit(tmp_path)
    ours = D._devkit_val_synsets(tmp_path / "ILSVRC2012_devkit_t12.tar.gz")
    torchvision_meta_bin(tmp_path, monkeypatch)
    assert ours == tv_imagenet.load_meta_file(str(tmp_path))[1] == VAL_SYNSETS


def test_sorted_val_labels_index_train_classes(tmp_path, monkeypatch):
    """torchvision's ImageNet root after it sorted val/: meta.bin + val/<wnid>/; val/ lacks a class."""
    write_train(tmp_path)
    rng = np.random.default_rng(2)
    for k, wnid in enumerate(["n01484850", "n01484850", "n01443537"], 1):
        (tmp_path / "val" / wnid).mkdir(parents=True, exist_ok=True)
        _jpeg(tmp_path / "val" / wnid / f"ILSVRC2012_val_{k:08d}.JPEG", SYNSETS.index(wnid), rng)
    write_devkit(tmp_path)
    torchvision_meta_bin(tmp_path, monkeypatch)
    val = load_dataset("imagenet", tmp_path, "val")
    assert val.classes == SYNSETS and sorted(val.targets) == [1, 2, 2]  # train/'s indices, not val/'s own 0, 1
    assert held_out_source("imagenet", tmp_path) == "val/ (class folders)"
    assert tv_imagenet.ImageNet(str(tmp_path), "val").wnids == ["n01443537", "n01484850"]  # torchvision: 0, 1


# -----------------------------------------------------------------------------
# one-line errors that name the folder


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_missing_or_empty_train_names_the_folder(tmp_path):
    with pytest.raises(DataNotFoundError, match=rf"expected the folder {tmp_path}/train with one sub-folder") as e:
        make_two_view_loader("imagenet", tmp_path, AUG, 8)
    _one_line(e)
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=rf"{tmp_path}/train holds no images") as e:
        make_two_view_loader("imagenet", tmp_path, AUG, 8)
    _one_line(e)
    (tmp_path / "train" / SYNSETS[0]).mkdir()
    (tmp_path / "train" / SYNSETS[0] / "README.txt").write_text("no images here")
    with pytest.raises(DataError, match=rf"{tmp_path}/train holds no images") as e:
        load_dataset("imagenet", tmp_path, "train")
    _one_line(e)
    with pytest.raises(DataNotFoundError, match=rf"expected the folder {tmp_path}/val with one sub-folder"):
        load_dataset("imagenet", tmp_path, "val")


def test_flat_val_without_labels_says_what_to_add(tmp_path):
    write_train(tmp_path, per_class=2)
    write_flat_val(tmp_path)
    with pytest.raises(
        DataNotFoundError,
        match=r"val holds 7 images in no class folders .*meta\.bin, "
        r"ILSVRC2012_devkit_t12\.tar\.gz, ILSVRC2012_devkit_t12, LOC_val_solution\.csv",
    ) as e:
        diagnostic_views("imagenet", tmp_path, AUG, 4)
    _one_line(e)
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n01443537 1 2 3 4\n"
    )
    with pytest.raises(
        DataError, match=r"has no label for 6 of the 7 images in .*val \(first: ILSVRC2012_val_00000002"
    ):
        load_dataset("imagenet", tmp_path, "val")


def test_a_flat_unlabelled_val_does_not_block_pre_training(tmp_path, capsys):
    """Read-only storage with a flat val/ and no labels: pre-training runs on train/ and the start line says
    the collapse report is off and names diag_size=0; a k-NN asked for is refused before any step, in one
    line naming final_eval=false knn_every=0."""
    from conftest import _tiny as tiny

    import vicreg_edu.trainer as T
    from vicreg_edu.errors import ConfigError

    write_train(tmp_path / "data", per_class=8)
    write_flat_val(tmp_path / "data")
    settings = dict(dataset="imagenet", augment="imagenet", data_dir=str(tmp_path / "data"), aug={"size": 32})
    settings.update(backbone="small_cnn", expander="32-32", batch_size=8, train_size=0, test_size=0, diag_size=8)
    result = T.train(tiny(tmp_path / "run", max_steps=2, **settings))
    out = capsys.readouterr().out
    line = f"collapse report: off: {tmp_path / 'data' / 'val'} is flat without labels"
    assert line in out and "--set diag_size=0 switches the report off without this line" in out, out
    assert result.history[-1]["step"] == 2 and not any(k.startswith("emb_") for k in result.epochs[-1])
    with pytest.raises(ConfigError, match=r"--set final_eval=false knn_every=0") as refused:
        T.train(tiny(tmp_path / "knn", max_steps=2, final_eval=True, **settings))
    assert "\n" not in str(refused.value) and not (tmp_path / "knn" / "checkpoint.pt").exists()


# -----------------------------------------------------------------------------
# the DataLoader path: views keyed by (seed, epoch, sample index)


def _epoch(loader, epoch, start=0):
    loader.set_epoch(epoch, start)
    return list(loader)


def _same(xs, ys):
    return len(xs) == len(ys) and all(all(torch.equal(u, v) for u, v in zip(x, y)) for x, y in zip(xs, ys))


def test_dataloader_views_do_not_depend_on_workers_or_resume_point(tmp_path):
    write_train(tmp_path)
    one = make_two_view_loader("imagenet", tmp_path, AUG, 8, seed=5, num_workers=0)
    full = _epoch(one, 1)
    torch.manual_seed(123)  # the global RNG's state must not matter
    assert _same(_epoch(make_two_view_loader("imagenet", tmp_path, AUG, 8, seed=5, num_workers=2), 1), full)
    assert _same(_epoch(one, 1, start=2), full[2:])  # a run resumed at step 2 of epoch 1
    two = make_two_view_loader("imagenet", tmp_path, AUG, 8, seed=5, num_workers=2)  # persistent workers
    _epoch(two, 0)
    assert _same(_epoch(two, 1, start=3), full[3:])  # the same workers, after two set_epoch calls
    assert not torch.equal(_epoch(one, 0)[0][0], full[0][0])

    base = load_dataset("imagenet", tmp_path, "train")
    ranks = [DataLoaderTwoViews(base, TwoViewTransform(AUG), 8, seed=5, rank=r, world=2) for r in range(2)]
    parts = [_epoch(r, 1) for r in ranks]
    for step in range(len(full)):  # rank r holds rows r, r + 2, ... of the one-process batch
        for r in range(2):
            assert all(torch.equal(parts[r][step][i], full[step][i][r::2]) for i in range(3)), (step, r)


def test_keyed_item_is_a_function_of_seed_epoch_index_and_leaves_the_rng_alone(tmp_path):
    write_train(tmp_path, per_class=2)
    ds = TwoViewDataset(load_dataset("imagenet", tmp_path, "train"), TwoViewTransform(AUG), seed=7)
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    state = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    (a, b), y = ds[(2, 4)]
    assert torch.equal(torch.get_rng_state(), state[0]) and np.array_equal(np.random.get_state()[1], state[1])
    assert random.getstate() == state[2]
    assert torch.equal(ds[(2, 4)][0][0], a) and torch.equal(ds[(2, 4)][0][1], b) and not torch.equal(a, b)
    assert y == ds.base.targets[4]
    assert not torch.equal(ds[(3, 4)][0][0], a) and not torch.equal(ds[(2, 5)][0][0], a)
    assert not torch.equal(TwoViewDataset(ds.base, ds.two_view_transform, seed=8)[(2, 4)][0][0], a)
    assert not torch.equal(ds[4][0][0], ds[4][0][0])  # an int index: the global RNG, as before


def test_shutil_copy_of_root_gives_the_same_slice(tmp_path):
    """The slice depends on the names below train/, not on where the folder lives."""
    write_train(tmp_path / "a", per_class=6)
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    assert (
        eval_splits("imagenet", tmp_path / "a").test.indices
        == eval_splits("imagenet", tmp_path / "elsewhere" / "b").test.indices
    )
