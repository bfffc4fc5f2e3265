"""Chapter 7's explorer (vicreg_edu.widgets.AblationExplorer, an Explorer over the ablation grid):
its states are the grid's runs, its controls the grid's factors, and a point outside the grid is
trained live (a fake ``run_fn`` here; one slow test trains a tiny real run)."""

from __future__ import annotations

import base64
import json
import re

import pytest

from vicreg_edu.explorer import NOT_PRECOMPUTED
from vicreg_edu.results import load_results
from vicreg_edu.widgets import AblationExplorer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def grid():
    return load_results("ablation_grid")


@pytest.fixture(autouse=True)
def cheap_figures(request, monkeypatch):
    """Which figure is shown matters here, not its pixels: a PNG-tagged stand-in per title (a real
    4-panel figure takes about a second). Tests asking for `real_figures` draw."""
    if "real_figures" in request.fixturenames:
        return
    import vicreg_edu.widgets as wd

    monkeypatch.setattr(wd, "summary_figure", lambda summary, base, title: title)
    monkeypatch.setattr(wd, "figure_png", lambda title: PNG + title.encode())


@pytest.fixture
def real_figures():
    """Requested by the tests that draw the real figures (see cheap_figures)."""


def title(png: bytes) -> str:
    return png[len(PNG) :].decode()


def fake_run(grid, calls):
    base = next(r for r in grid["runs"] if r["name"] == "baseline")

    def run(point):
        calls.append(point)
        return {**base, "knn": 0.0123, "wall_time_s": 7.0}

    return run


def test_states_are_the_grid_runs_without_the_seed_repeats(grid):
    ex = AblationExplorer(grid)
    runs = [r for r in grid["runs"] if r["factor"] != "seed"]
    assert len(ex.states) == len(runs)
    for r in runs:
        assert title(ex.states[ex.to_tuple(r["point"])]) == f"grid run '{r['name']}'"
    assert title(ex.png) == "grid run 'baseline'" and ex.message == ""
    assert ex.names == [*grid["factors"], *grid["aug_off"]]
    assert [c["checkbox"] for c in ex.controls] == [False] * len(grid["factors"]) + [True] * len(grid["aug_off"])


def test_point_conversion_round_trips(grid):
    ex = AblationExplorer(grid)
    for r in grid["runs"]:
        if r["factor"] == "seed":  # the baseline's point with another seed
            continue
        assert ex.to_grid_point(ex.to_tuple(r["point"])) == r["point"]


def test_lambda_25_to_50_and_crop_off_show_those_grid_runs(grid):
    ex = AblationExplorer(grid)
    assert title(ex.select(sim_coeff=50.0).png) == "grid run 'sim_coeff=50'"
    assert ex.select(crop=False).png is None and ex.message == NOT_PRECOMPUTED  # two factors changed
    assert title(ex.select(sim_coeff=25.0).png) == "grid run 'no_crop'"


def test_page_holds_every_grid_state_keyed_by_control_indices(grid):
    ex = AblationExplorer(grid)
    html = ex.to_html()
    data = json.loads(re.search(r'class="vx-data">(.*?)</script>', html).group(1))
    # lambda is the first control, 50 its 4th value; crop the 5th control, False its 2nd value
    key = ",".join(["3", "2", "2", "1", "0", "0", "0", "0", "0"])
    assert title(base64.b64decode(data["states"][key])) == "grid run 'sim_coeff=50'"
    key = ",".join(["2", "2", "2", "1", "1", "0", "0", "0", "0"])
    assert title(base64.b64decode(data["states"][key])) == "grid run 'no_crop'"
    assert len(data["states"]) == len(ex.states) - 1  # the default is the <img>'s own src


def test_live_run_of_a_point_outside_the_grid_is_kept(grid):
    pytest.importorskip("ipywidgets")
    calls = []
    ex = AblationExplorer(grid, {"epochs": 1, "train_size": 100, "test_size": 50, "diag_size": 32})
    ex.run_fn = fake_run(grid, calls)
    ex.build_widget()
    ex.select(std_coeff=0.0, cov_coeff=0.0)
    assert ex.png is None and "Run it live" in ex.message and not ex._button.disabled
    png = ex.run_live(wait=True)
    point = {**grid["default_point"], "std_coeff": 0.0, "cov_coeff": 0.0}
    assert calls == [point]
    assert title(png) == "live run: μ=0, ν=0 (1 epochs x 100 images, 7 s)" and ex.png == png
    assert ex.live_results[ex.to_tuple(point)]["knn"] == 0.0123
    assert ex.message == "" and ex._button.disabled  # stored now: nothing to train


def test_bundle_outside_a_kernel_is_html_and_png(grid):
    bundle = AblationExplorer(grid)._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "image/png"}
    assert title(base64.b64decode(bundle["image/png"])) == "grid run 'baseline'"


@pytest.mark.slow
def test_real_tiny_live_run(grid, tmp_path, real_figures):
    """The default run_fn: the grid's config_for + train + summarize into out_root."""
    sizes = {"epochs": 1, "train_size": 256, "test_size": 128, "diag_size": 64}
    ex = AblationExplorer(grid, sizes, out_root=str(tmp_path))
    ex.select(std_coeff=0.0, cov_coeff=0.0)
    png = ex.run_live(wait=True)
    assert png is not None and png.startswith(PNG), ex.message
    (summary,) = ex.live_results.values()
    assert 0.0 <= summary["knn"] <= 1.0 and len(summary["curve"]) >= 1
    assert list(tmp_path.glob("run-*/metrics.jsonl")), "the run wrote no metrics under out_root"
