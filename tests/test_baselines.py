"""vicreg_edu.baselines: class-balanced nested label subsets, the supervised recipe, the label-efficiency rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from vicreg_edu import baselines as B


def test_balanced_subsets_are_balanced_and_nested():
    y = torch.arange(1000) % 10
    small, large = B.balanced_subset(y, 0.01, seed=3), B.balanced_subset(y, 0.1, seed=3)
    assert torch.bincount(y[small]).tolist() == [1] * 10 and torch.bincount(y[large]).tolist() == [10] * 10
    assert set(small.tolist()) <= set(large.tolist())
    assert not torch.equal(small, B.balanced_subset(y, 0.01, seed=4))
    with pytest.raises(ValueError, match="fraction"):
        B.balanced_subset(y, 0.0)


def test_supervised_recipe_learns_an_easy_task():
    # class = which half of the image is bright: a few steps of the recipe must get it
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (256,), generator=g)
    x = torch.randint(0, 60, (256, 3, 32, 32), dtype=torch.uint8, generator=g)
    x[y == 1, :, :16] += 150
    x[y == 0, :, 16:] += 150  # top vs bottom (a horizontal flip keeps the class)
    out = B.train_supervised(x[:192], y[:192], x[192:], y[192:], steps=40, batch_size=32)
    assert out["test_acc"] > 0.9 and out["steps"] == 40 and out["n_labels"] == 192, out


def test_label_efficiency_rows(monkeypatch):
    x = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(200) % 10
    monkeypatch.setattr(B, "shapes_tensors", lambda split: (x, y) if split == "train" else (x[:50], y[:50]))
    enc = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 16))
    rows = B.label_efficiency(enc, fractions=(0.05, 1.0), supervised_steps=3, batch_size=32, probe_epochs=2)
    assert [r["n_labels"] for r in rows] == [10, 200]
    assert all(0 <= r["linear_probe"] <= 1 and 0 <= r["supervised"] <= 1 for r in rows)
    assert B.label_efficiency(None, fractions=(0.05,), supervised_steps=1)[0]["linear_probe"] is None


def test_shipped_baselines_match_the_demo_preset():
    """baselines.json (chapter 8) was computed with the demo preset as it is now, and is complete."""
    import math

    from vicreg_edu.config import get_config
    from vicreg_edu.results import load_results

    data = load_results("baselines")
    demo = json.loads(json.dumps(get_config("demo", fast=False).to_dict()))
    for key, value in data["config"].items():
        assert demo[key] == value, f"baselines.json is stale ({key}): rerun python -m vicreg_edu.baselines"
    assert data["supervised_ceiling"]["steps"] == demo["epochs"] * (10_000 // demo["batch_size"])
    rows = data["label_efficiency"]
    assert [r["fraction"] for r in rows] == [0.01, 0.1, 1.0] and [r["n_labels"] for r in rows] == [100, 1000, 10_000]
    for r in rows:
        assert 0 <= r["linear_probe"] <= 1 and 0 <= r["supervised"] <= 1 and math.isfinite(r["supervised_cpu_s"])
    assert rows[-1]["supervised"] == data["supervised_ceiling"]["test_acc"]  # same run, same seed and budget
    assert 0 < data["supervised_ceiling"]["knn"] <= 1


def test_demo_prints_the_stored_supervised_knn_only_for_its_own_recipe(monkeypatch):
    from vicreg_edu import config
    from vicreg_edu.results import load_results, stored_supervised_knn
    from vicreg_edu.trainer import TrainResult, format_final

    monkeypatch.setattr(config, "FAST", False)
    demo = config.get_config("demo")
    stored = load_results("baselines")["supervised_ceiling"]["knn"]
    assert stored_supervised_knn(demo) == stored
    assert stored_supervised_knn(demo.replace(seed=3)) == stored  # the seed is not the recipe
    for other in (demo.replace(epochs=3), demo.replace(base_lr=0.1), demo.replace(train_size=500)):
        assert stored_supervised_knn(other) is None
    result = TrainResult(model=None, config=demo, out_dir=Path("runs/x"), history=[], epochs=[])
    result.final, result.wall_time = {"trained": 0.5, "random_init": 0.1, "raw_pixels": 0.1}, 1.0
    assert f"{'supervised, same budget *':<30s} {stored * 100:6.2f}%" in format_final(result)
    result.config = demo.replace(epochs=3)
    assert "supervised" not in format_final(result)


def test_mlp_probe_solves_what_a_linear_probe_cannot():
    from vicreg_edu.baselines import mlp_probe
    from vicreg_edu.evaluate import linear_probe

    g = torch.Generator().manual_seed(0)
    f = torch.randn(512, 2, generator=g)
    y = ((f[:, 0] > 0) ^ (f[:, 1] > 0)).long()  # XOR of the signs
    assert linear_probe(f, y, f, y, epochs=40) < 0.7
    assert mlp_probe(f, y, f, y, hidden=64, epochs=40) > 0.9
    assert mlp_probe(f, y, f, y, hidden=64, epochs=5, seed=1) == mlp_probe(f, y, f, y, hidden=64, epochs=5, seed=1)
    with pytest.raises(ValueError, match="same D"):
        mlp_probe(f, y, torch.randn(4, 3), y[:4])


def test_accuracy_stderr():
    from vicreg_edu.baselines import accuracy_stderr

    assert accuracy_stderr(0.5, 100) == pytest.approx(0.05)
    assert accuracy_stderr(1.0, 10) == 0.0
    with pytest.raises(ValueError, match="accuracy must lie in"):
        accuracy_stderr(1.5, 10)


def test_supervised_trains_on_the_vicreg_views_when_asked():
    """augment=AugmentConfig: each batch is one random view (crop, colour) instead of a flip."""
    from vicreg_edu.config import get_config
    from vicreg_edu.views import make_augment_config

    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(32) % 2
    aug = make_augment_config(get_config("demo", fast=False))
    seen = []
    original = B._fit

    def spy(net, xn, y, **kw):
        seen.append((xn.dtype, kw["views"]))
        return original(net, xn, y, **kw)

    B._fit = spy
    try:
        out = B.train_supervised(x, y, x, y, steps=2, batch_size=16, augment=aug)
        B.train_supervised(x, y, x, y, steps=1, batch_size=16)
    finally:
        B._fit = original
    assert out["steps"] == 2 and 0 <= out["test_acc"] <= 1
    assert seen[0][0] == torch.uint8 and seen[0][1] is not None  # raw images, augmented per batch
    assert seen[1][0] == torch.float32 and seen[1][1] is None  # the flip-only recipe
    view = seen[0][1](x[:4], torch.Generator().manual_seed(0))
    assert view.shape == (4, 3, 32, 32) and view.dtype == torch.float32


def test_supervised_same_views_is_stored_for_three_seeds(monkeypatch, tmp_path):
    """supervised_same_views.json (chapter 8): the demo preset's recipe, seeds 0, 1, 2 at 1 %, 10 % and
    100 % of the labels, each fraction's mean and spread recomputable from its per-seed runs; and the
    --same-views --seeds command writes that shape."""
    import statistics

    from vicreg_edu.config import get_config
    from vicreg_edu.results import load_results

    data = load_results("supervised_same_views")
    demo = json.loads(json.dumps(get_config("demo", fast=False).to_dict()))
    for key, value in data["config"].items():
        assert key == "seed" or demo[key] == value, f"supervised_same_views.json is stale ({key})"
    assert data["seeds"] == [0, 1, 2] and "--seeds 0 1 2" in data["command"]
    rows = data["label_efficiency"]
    assert [r["fraction"] for r in rows] == [0.01, 0.1, 1.0] and [r["n_labels"] for r in rows] == [100, 1000, 10_000]
    for r in rows:
        accs = [run["supervised"] for run in data["runs"] if run["fraction"] == r["fraction"]]
        assert accs == r["supervised_per_seed"] and len(accs) == 3 and all(0 <= a <= 1 for a in accs)
        assert r["supervised"] == pytest.approx(statistics.mean(accs), abs=1e-4)
        assert r["supervised_std"] == pytest.approx(statistics.stdev(accs), abs=1e-4)
        assert (r["supervised_min"], r["supervised_max"]) == (min(accs), max(accs))

    x = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(200) % 10
    monkeypatch.setattr(B, "shapes_tensors", lambda split: (x, y) if split == "train" else (x[:50], y[:50]))
    monkeypatch.setattr(B, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(
        B,
        "supervised_same_views",
        lambda cfg, seed: [
            {"fraction": f, "n_labels": n, "supervised": 0.1 * (seed + 1) + f, "supervised_cpu_s": 1.0}
            for f, n in ((0.05, 10), (1.0, 200))
        ],
    )
    assert B.main(["--same-views", "--seeds", "0", "1", "2"]) == 0
    out = json.loads((tmp_path / "supervised_same_views.json").read_text())
    assert out["seeds"] == [0, 1, 2] and out["command"].endswith("--same-views --seeds 0 1 2")
    first, last = out["label_efficiency"]
    assert first["supervised_per_seed"] == pytest.approx([0.15, 0.25, 0.35])
    assert last["supervised_per_seed"] == pytest.approx([1.1, 1.2, 1.3]) and last["n_labels"] == 200
    assert first["supervised"] == 0.25 and first["supervised_std"] == 0.1
