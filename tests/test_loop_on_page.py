"""Chapter 5 writes the training loop on the page (``vicreg_loop``); it must be ``train()``'s loop.

The function is read from ``book/05_training.py`` (the cell that defines it) and executed with the
chapter's imports, so the test fails as soon as the page and the trainer disagree.
"""

import ast
from pathlib import Path

import pytest
import torch

from vicreg_edu import build_model, data, make_augment_config, optim, vicreg_loss
from vicreg_edu.config import get_config
from vicreg_edu.trainer import train

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "05_training.py"


def page_loop():
    """The ``vicreg_loop`` function exactly as chapter 5's cell defines it."""
    tree = ast.parse(CHAPTER.read_text())
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "vicreg_loop"]
    assert len(defs) == 1, "book/05_training.py must define vicreg_loop once, at the top level of a cell"
    namespace = {
        "torch": torch,
        "data": data,
        "optim": optim,
        "build_model": build_model,
        "make_augment_config": make_augment_config,
        "vicreg_loss": vicreg_loss,
    }
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(CHAPTER), "exec"), namespace)
    return namespace["vicreg_loop"]


@pytest.mark.parametrize("seed", [3])
def test_page_loop_gives_train_losses(tmp_path, seed):
    """Same seed, same config: the page's loop and train() log the same loss terms at every one of the
    first steps (warm-up from lr 0, then real updates), to float32 rounding. ``channels_last=False``:
    the trainer's default channels-last layout rounds convolutions differently, and AdamW's
    normalised steps let that rounding grow to about 1e-3 of the loss within a few steps."""
    steps = 6
    cfg = get_config(
        "demo",
        fast=False,
        train_size=256,
        test_size=64,
        batch_size=64,
        epochs=2,
        warmup_epochs=0.5,
        seed=seed,
        out_dir=str(tmp_path / "run"),
        max_steps=steps,
        log_every=1,
        knn_every=0,
        final_eval=False,
        diag_size=0,
        progress=False,
        tensorboard=False,
        channels_last=False,  # the page's loop keeps PyTorch's default memory layout
    )
    _, loop_history = page_loop()(cfg, steps)
    result = train(cfg)
    trained = [h for h in result.history if h.get("kind", "step") == "step"]
    assert [h["step"] for h in loop_history] == [h["step"] for h in trained] == list(range(1, steps + 1))
    for mine, theirs in zip(loop_history, trained):
        for key in ("loss", "invariance", "variance", "covariance", "lr"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-6), (mine["step"], key, mine, theirs)
    assert loop_history[-1]["loss"] != loop_history[0]["loss"]  # the steps did change the weights


def test_page_loop_stops_after_the_steps_asked():
    cfg = get_config("demo", fast=False, train_size=128, batch_size=64, epochs=3, seed=0)
    model, history = page_loop()(cfg, 3)
    assert [h["step"] for h in history] == [1, 2, 3]
    assert isinstance(model, torch.nn.Module)
