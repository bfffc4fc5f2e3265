"""The k-NN evaluation over all processes of a process group (2 gloo processes on CPU).

The trainer's mid-run and final k-NN run on every rank: each extracts the features of its share of
the bank and the queries, the queries are gathered, each keeps its share's top k per query and the
candidates of all ranks vote (``evaluate.knn_accuracy_sharded``). It must give what one process
gives on the whole data: here on the built-in Shapes (uint8 tensors, raw-pixel baseline included)
and on an image folder read from disk (with uneven shares: 13 bank images over 2 ranks).
"""

import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import _tiny as tiny
from conftest import write_image_folder

from vicreg_edu import evaluate as E
from vicreg_edu.augment import eval_transform
from vicreg_edu.config import get_config
from vicreg_edu.data import eval_splits, first_items
from vicreg_edu.models import build_model
from vicreg_edu.views import make_augment_config

WORLD = 2


def _model(cfg):
    torch.manual_seed(3)
    return build_model(cfg).eval()


def _folder_data(root):
    cfg = _folder_cfg(root)
    aug = make_augment_config(cfg)
    bank, queries, _ = eval_splits(cfg.dataset, cfg.data_dir, transform=eval_transform(aug))
    return cfg, E.EvalData(first_items(bank, 13), None, queries, None, aug.mean, aug.std)


def _folder_cfg(root):
    return get_config(
        "demo", dataset="imagefolder", augment="imagenet", data_dir=str(root), aug={"size": 16}, expander="32-32"
    )


def _results(shapes_dir, folder):
    cfg = tiny(shapes_dir, train_size=96, test_size=40)
    shapes = E.knn_comparison(_model(cfg), cfg, torch.device("cpu"))
    fcfg, data = _folder_data(folder)
    images = E.knn_comparison(_model(fcfg), fcfg, torch.device("cpu"), eval_data=data)
    return shapes, images


def _worker(rank, init_file, out_dir, folder):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.save(_results(os.path.join(out_dir, "shapes"), folder), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("images"))


def test_two_processes_give_the_one_process_k_nn(tmp_path, folder):
    start = time.perf_counter()
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path), str(folder)), nprocs=WORLD, join=True)
    assert time.perf_counter() - start < 120
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    one = _results(str(tmp_path / "one"), folder)
    assert ranks[0] == ranks[1] == one, (ranks, one)
    shapes, images = one
    assert set(shapes) == {"trained", "random_init", "raw_pixels"} and set(images) == {"trained", "random_init"}


def test_the_sharded_vote_equals_the_whole_bank_vote(tmp_path):
    """knn_accuracy_sharded with the bank split by rank == knn_accuracy on the whole bank (one process: world 1)."""
    init = tmp_path / "init1"
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=0, world_size=1)
    try:
        g = torch.Generator().manual_seed(0)
        bank, queries = torch.randn(50, 8, generator=g), torch.randn(30, 8, generator=g)
        yb, yq = torch.randint(0, 4, (50,), generator=g), torch.randint(0, 4, (30,), generator=g)
        assert E.knn_accuracy_sharded(bank, yb, queries, yq, k=5, chunk_size=7) == E.knn_accuracy(
            bank, yb, queries, yq, k=5
        )
    finally:
        dist.destroy_process_group()
