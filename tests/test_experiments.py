"""vicreg_edu.experiments: chapter 7's ablation grid, the recipe search, and the JSON they ship.

The shipped grid must describe the grid the module defines now (else the notebook's sliders
and the code disagree), one tiny run must go through the same path as the grid, and the shipped
results must load through importlib.resources (as after a plain pip install).
"""
from __future__ import annotations

import json
import math

import pytest

from vicreg_edu import experiments as ag
from vicreg_edu.views import shapes_augment


def make_augment_config(cfg):
    assert cfg.augment == "shapes"
    return shapes_augment(**cfg.aug)


METRICS = ("knn", "knn_random_init", "knn_raw_pixels", "emb_effective_rank", "emb_std_mean", "emb_dead_fraction",
           "repr_effective_rank", "repr_std_mean", "online_probe_acc", "invariance", "variance", "covariance", "loss")


def test_grid_is_one_factor_at_a_time():
    points = ag.grid_points()
    names = [name for name, _ in points]
    assert names[0] == "baseline" and points[0][1] == ag.DEFAULT_POINT
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
    cfg = ag.config_for({**ag.DEFAULT_POINT, "std_coeff": 0.0, "aug_off": ["crop", "solarize_p"]},
                        epochs=1, train_size=256, test_size=128)
    aug = make_augment_config(cfg)
    assert (cfg.std_coeff, cfg.sim_coeff, cfg.cov_coeff, cfg.gamma) == (0.0, 25.0, 1.0, 1.0)
    assert aug.crop is False and aug.solarize_p == (0.0, 0.0) and aug.jitter_p > 0 and aug.flip_p > 0
    default = make_augment_config(ag.config_for(ag.DEFAULT_POINT, epochs=1, train_size=256, test_size=128))
    assert default.crop is True and default.solarize_p != (0.0, 0.0)
    with pytest.raises(ValueError, match="augmentation"):
        ag.config_for({**ag.DEFAULT_POINT, "aug_off": ["blur"]}, epochs=1, train_size=256, test_size=128)
    with pytest.raises(ValueError, match="unknown point key"):
        ag.config_for({**ag.DEFAULT_POINT, "lr": 1.0}, epochs=1, train_size=256, test_size=128)


def test_shipped_json_matches_the_grid_definition():
    path = ag.RESULTS_DIR / "ablation_grid.json"
    assert path.stat().st_size < 200_000, "keep the shipped grid small"
    data = ag.load_results("ablation_grid")
    expected = [(name, json.loads(json.dumps(point))) for name, point in ag.grid_points()]
    assert [(r["name"], r["point"]) for r in data["runs"]] == expected, (
        "vicreg_edu/results/ablation_grid.json is stale: rerun "
        "`OMP_NUM_THREADS=1 python -m vicreg_edu.experiments grid --workers 2`")
    assert data["factors"] == ag.FACTORS and data["default_point"] == ag.DEFAULT_POINT
    assert {k: data["settings"][k] for k in ag.SIZES} == ag.SIZES
    cfg = ag.config_for(ag.DEFAULT_POINT, **ag.SIZES)  # a live run reproduces the shipped grid's recipe
    keys = ("batch_size", "optimizer", "base_lr", "weight_decay", "warmup_epochs", "end_lr_ratio", "expander")
    assert {k: data["settings"].get(k) for k in keys} == {k: getattr(cfg, k) for k in keys}, (
        "vicreg_edu/results/ablation_grid.json was made with another recipe than today's demo preset: rerun it")
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
    assert ag.load_results("ablation_grid")["runs"]
    with pytest.raises(FileNotFoundError, match="ablation_grid"):
        ag.load_results("no_such_results")


def test_screen_candidates_change_one_thing_each():
    cands = ag.screen_candidates()
    names = [n for n, _ in cands]
    assert names[0] == "base" and cands[0][1] == ag.SEARCH_BASE and len(set(names)) == len(names)
    base_cfg = ag.recipe_config(ag.SEARCH_BASE, epochs=1)
    for name, recipe in cands[1:]:
        key = name.split("=")[0]
        cfg = ag.recipe_config(recipe, epochs=1)
        shapes_augment(**cfg.aug)  # every augmentation override is a valid AugmentConfig
        diff = {k for k in ("batch_size", "optimizer", "base_lr", "weight_decay", "warmup_epochs", "expander",
                            "sim_coeff", "std_coeff", "cov_coeff") if getattr(cfg, k) != getattr(base_cfg, k)}
        diff |= {f"aug.{k}" for k in set(cfg.aug) | set(base_cfg.aug) if cfg.aug.get(k) != base_cfg.aug.get(k)}
        if key == "optimizer":  # an optimiser comes with its own lr and weight decay
            assert "optimizer" in diff and diff <= {"optimizer", "base_lr", "weight_decay"}, (name, diff)
        else:
            assert diff == {key}, (name, diff)


def test_one_tiny_recipe_run_gives_a_complete_record(tmp_path):
    recipe = ag._set(ag.SEARCH_BASE, "aug.hue", 0.5)
    rec = ag.run_recipe("tiny", recipe, epochs=1, train_size=256, stage="test", out_root=str(tmp_path))
    for k in ("knn", "knn_random_init", "knn_raw_pixels", "linear_probe", "variance", "emb_std_mean",
              "emb_effective_rank", "emb_effective_rank_random", "wall_time_s", "cpu_time_s"):
        assert math.isfinite(rec[k]), k
    assert rec["recipe"]["aug"]["hue"] == 0.5 and rec["epochs"] == 1 and rec["curve"][-1][0] == 2
    # the trainer's own end-of-run report and the recomputation on the same views agree
    assert rec["emb_effective_rank"] == pytest.approx(rec["emb_effective_rank_report"], rel=1e-3)
    assert rec["emb_effective_rank_random"] > 1 and 0 <= rec["linear_probe"] <= 1


def test_shipped_recipe_search_explains_the_demo_preset():
    data = ag.load_results("recipe_search")
    fields = ("knn", "knn_random_init", "knn_raw_pixels", "variance", "emb_std_mean", "emb_effective_rank",
              "emb_effective_rank_random", "wall_time_s", "cpu_time_s", "load_avg")
    for run in data["runs"]:
        assert all(math.isfinite(run[k]) for k in fields), run["name"]
        if not run.get("experimental"):  # the others need a patch kept in the JSON
            shapes_augment(**ag.recipe_config(run["recipe"], epochs=1).aug)
    demo = ag.get_config("demo", fast=False)
    confirm = [r for r in data["runs"]
               if all(getattr(demo, k) == v for k, v in r["recipe"].items() if k != "aug")
               and {k: tuple(v) if isinstance(v, list) else v for k, v in r["recipe"]["aug"].items()} == demo.aug
               and r["epochs"] == demo.epochs]
    assert len({r["seed"] for r in confirm}) >= 2, "recipe_search.json needs full-budget runs of the demo preset as it is now, on 2+ seeds"
    assert all(r["linear_probe"] is not None for r in confirm)


def test_shipped_long_run_is_the_demo_preset_for_longer():
    """demo_long.json (chapter 5): the demo preset with only epochs and knn_every changed, complete curves."""
    data = ag.load_results("demo_long")
    demo = ag.get_config("demo", fast=False).to_dict()
    cfg = data["config"]
    assert cfg["epochs"] > demo["epochs"], "the long run must be longer than the demo"
    assert cfg.get("train_size", 0) == 0 and cfg.get("test_size", 0) == 0  # all images
    for key, value in cfg.items():
        if key not in ("epochs", "knn_every", "train_size", "test_size"):
            assert json.loads(json.dumps(demo[key])) == value, f"demo_long.json is stale ({key}): rerun experiments long"
    epochs = data["epochs"]
    assert [r["epoch"] for r in epochs] == list(range(1, cfg["epochs"] + 1))
    knn = [r["knn_acc"] for r in epochs if "knn_acc" in r]
    assert len(knn) >= cfg["epochs"] // cfg["knn_every"] - 1 and all(0 <= a <= 1 for a in knn)
    assert data["curve"][-1][0] == data["steps_per_epoch"] * cfg["epochs"]
    assert set(data["final"]) == {"trained", "random_init", "raw_pixels"}


def test_long_run_command_writes_a_complete_file(tmp_path):
    out = tmp_path / "long.json"
    assert ag.main(["long", "--epochs", "2", "--knn-every", "1", "--train-size", "256", "--test-size", "128",
                    "--out", str(out), "--out-dir", str(tmp_path / "run")]) == 0
    data = json.loads(out.read_text())
    assert [r["epoch"] for r in data["epochs"]] == [1, 2] and data["config"]["epochs"] == 2
    assert "knn_acc" in data["epochs"][0] and data["curve"][-1][0] == 2 * data["steps_per_epoch"]
    assert set(data["final"]) == {"trained", "random_init", "raw_pixels"}
