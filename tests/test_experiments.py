"""vicreg_edu.experiments: chapter 7's ablation grid and the JSON it ships.

The shipped grid must describe the grid the module defines now (else the notebook's sliders
and the code disagree), one tiny run must go through the same path as the grid, and the shipped
results must load through importlib.resources (as after a plain pip install).
"""

from __future__ import annotations

import json
import math

import pytest

from vicreg_edu import experiments as ag
from vicreg_edu.config import get_config
from vicreg_edu.results import load_results
from vicreg_edu.views import shapes_augment


def make_augment_config(cfg):
    assert cfg.augment == "shapes"
    return shapes_augment(**cfg.aug)


METRICS = (
    "knn",
    "knn_random_init",
    "knn_raw_pixels",
    "emb_effective_rank",
    "emb_std_mean",
    "emb_dead_fraction",
    "repr_effective_rank",
    "repr_std_mean",
    "online_probe_acc",
    "invariance",
    "variance",
    "covariance",
    "loss",
)


def test_grid_is_one_factor_at_a_time():
    points = ag.grid_points()
    names = [name for name, _ in points]
    assert names[0] == "baseline" and points[0][1] == ag.DEFAULT_POINT
    demo = get_config("demo")  # the grid is centred on the book's one baseline, the demo preset
    coeffs = ("sim_coeff", "std_coeff", "cov_coeff", "gamma")
    assert {k: ag.DEFAULT_POINT[k] for k in coeffs} == {k: getattr(demo, k) for k in coeffs}
    assert len(set(names)) == len(names), names
    for name, point in points:
        changed = ag.changed_factors(point)
        if "seed" in point:
            assert changed == [] and point["seed"] in ag.BASELINE_SEEDS, name
        else:
            assert len(changed) == (0 if name == "baseline" else 1), (name, changed)
    for factor, values in ag.FACTORS.items():  # every slider stop has a run
        assert ag.DEFAULT_POINT[factor] in values
        for value in values:
            assert any(p[factor] == value and not ag.changed_factors(p)[1:] for _, p in points), (factor, value)
    assert {f"no_{a}" for a in ag.AUG_OFF} <= set(names)


def test_config_for_switches_the_named_augmentation_off():
    cfg = ag.config_for(
        {**ag.DEFAULT_POINT, "std_coeff": 0.0, "aug_off": ["crop", "solarize_p"]},
        epochs=1,
        train_size=256,
        test_size=128,
    )
    aug = make_augment_config(cfg)
    default = make_augment_config(ag.config_for(ag.DEFAULT_POINT, epochs=1, train_size=256, test_size=128))
    assert (cfg.std_coeff, cfg.sim_coeff, cfg.cov_coeff, cfg.gamma) == (0.0, 25.0, 0.5, 1.0)  # demo's but mu
    assert aug.crop is False and aug.solarize_p == (0.0, 0.0)
    assert aug.jitter_p == default.jitter_p > 0 and aug.hue == default.hue > 0  # the others: the preset's
    assert default.crop is True and default.solarize_p != (0.0, 0.0) and default.flip_p == 0.0
    no_hue = make_augment_config(
        ag.config_for({**ag.DEFAULT_POINT, "aug_off": ["hue"]}, epochs=1, train_size=256, test_size=128)
    )
    assert no_hue.hue == 0.0 and no_hue.jitter_p == default.jitter_p and no_hue.saturation == default.saturation
    with pytest.raises(ValueError, match="augmentation"):
        ag.config_for({**ag.DEFAULT_POINT, "aug_off": ["blur"]}, epochs=1, train_size=256, test_size=128)
    with pytest.raises(ValueError, match="unknown point key"):
        ag.config_for({**ag.DEFAULT_POINT, "lr": 1.0}, epochs=1, train_size=256, test_size=128)


def test_shipped_json_matches_the_grid_definition():
    path = ag.RESULTS_DIR / "ablation_grid.json"
    assert path.stat().st_size < 200_000, "keep the shipped grid small"
    data = load_results("ablation_grid")
    expected = [(name, json.loads(json.dumps(point))) for name, point in ag.grid_points()]
    assert [(r["name"], r["point"]) for r in data["runs"]] == expected, (
        "vicreg_edu/results/ablation_grid.json is stale: rerun "
        "`OMP_NUM_THREADS=1 python -m vicreg_edu.experiments grid --workers 2`"
    )
    assert data["factors"] == ag.FACTORS and data["default_point"] == ag.DEFAULT_POINT
    assert {k: data["settings"][k] for k in ag.SIZES} == ag.SIZES
    cfg = ag.config_for(ag.DEFAULT_POINT, **ag.SIZES)  # a live run reproduces the shipped grid's recipe
    keys = ("batch_size", "optimizer", "base_lr", "weight_decay", "warmup_epochs", "end_lr_ratio", "expander")
    assert {k: data["settings"].get(k) for k in keys} == {k: getattr(cfg, k) for k in keys}, (
        "vicreg_edu/results/ablation_grid.json was made with another recipe than today's demo preset: rerun it"
    )
    assert cfg.aug == ag.GRID_RECIPE["aug"] and data["command"]
    for run in data["runs"]:
        assert all(math.isfinite(run[k]) for k in METRICS), run["name"]
        assert 0 <= run["knn"] <= 1 and len(run["curve"]) >= 2
    assert data["wall_time_s"] > 0 and data["cpu_time_s"] > 0


def test_one_tiny_run_gives_a_complete_record(tmp_path):
    sizes = {"epochs": 1, "train_size": 256, "test_size": 128, "diag_size": 64}
    record = ag.run_one(("no_jitter_p", {**ag.DEFAULT_POINT, "aug_off": ["jitter_p"]}, sizes, str(tmp_path)))
    assert record["name"] == "no_jitter_p" and record["factor"] == "jitter_p"
    assert set(METRICS) <= set(record) and all(math.isfinite(record[k]) for k in METRICS)
    batch = ag.config_for(ag.DEFAULT_POINT, **sizes).batch_size
    assert record["curve"][-1][0] == 256 // batch  # one epoch of 256 images
    assert (tmp_path / "no_jitter_p" / "metrics.jsonl").is_file()
    with pytest.raises(ValueError, match="final_eval"):
        ag.summarize(type("R", (), {"final": {}, "epochs": [], "history": []})())


def test_load_results_names_what_exists():
    assert load_results("ablation_grid")["runs"]
    with pytest.raises(FileNotFoundError, match="ablation_grid"):
        load_results("no_such_results")
