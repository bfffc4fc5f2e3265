"""Chapter 7's explorer (vicreg_edu.widgets): its callbacks driven as a reader's clicks would.

A fake ``run_fn`` stands in for training, blocking until the test releases it, so "during a
run" is a state the test holds; one slow test trains a tiny real run through the default path.
"""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ipywidgets")

from vicreg_edu.results import load_results  # noqa: E402
from vicreg_edu.widgets import AblationExplorer  # noqa: E402

PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def grid():
    return load_results("ablation_grid")


@pytest.fixture(autouse=True)
def cheap_figures(request, monkeypatch):
    """Callback tests need *which* figure is shown, not its pixels: a tiny PNG-tagged stand-in per
    title (a real 4-panel figure takes seconds on a busy CPU). Tests asking for `real_figures` draw."""
    if "real_figures" in request.fixturenames:
        return
    import vicreg_edu.widgets as wd

    monkeypatch.setattr(wd, "summary_figure", lambda summary, base, title: (title, summary["knn"]))
    monkeypatch.setattr(wd, "figure_png", lambda fig: PNG + repr(fig).encode())


@pytest.fixture
def real_figures():
    """Requested by the tests that draw the real figures (see cheap_figures)."""


class BlockingRun:
    """run_fn that reports half progress, then waits for `release`; records every call."""

    def __init__(self, summary: dict, fail: bool = False):
        self.summary, self.fail = summary, fail
        self.calls, self.started, self.release = [], threading.Event(), threading.Event()

    def __call__(self, point, progress):
        self.calls.append(point)
        progress(0.5)
        self.started.set()
        assert self.release.wait(20), "the test never released the run"
        if self.fail:
            raise RuntimeError("out of memory (fake)")
        return self.summary


def make(grid, **kw):
    base = next(r for r in grid["runs"] if r["name"] == "baseline")
    fake = BlockingRun({**base, "knn": 0.0123, "wall_time_s": 1.0}, **kw)
    return AblationExplorer(grid, run_fn=fake, background=True), fake


def press_and_wait_until_running(explorer, fake):
    explorer.button.click()  # what the browser's click does: the on_click handlers run
    assert fake.started.wait(10), "the run did not start"


def finish(explorer, fake):
    fake.release.set()
    explorer.thread.join(20)
    assert not explorer.thread.is_alive()


def test_default_setting_drawn_at_start_without_hint(grid, real_figures):
    explorer, _ = make(grid)
    assert bytes(explorer.figure.value).startswith(PNG) and explorer.shown == "grid run 'baseline'"
    assert explorer.hint.value == ""
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "VBox(" not in bundle["text/plain"]


def test_slider_shows_grid_run_or_says_not_in_grid(grid):
    explorer, _ = make(grid)
    before = bytes(explorer.figure.value)
    explorer.sliders["std_coeff"].value = 0.0
    assert explorer.shown == "grid run 'std_coeff=0'" and bytes(explorer.figure.value) != before
    explorer.sliders["cov_coeff"].value = 0.0  # two factors changed: not in the grid
    assert "not in the one-factor grid" in explorer.hint.value and "Run it live" in explorer.hint.value
    assert explorer.shown == "grid run 'std_coeff=0'", "the figure must stay, not be wiped"
    explorer.sliders["cov_coeff"].value = 1.0  # back to a grid point: drawn, hint cleared
    assert explorer.shown == "grid run 'std_coeff=0'" and explorer.hint.value == ""


def test_button_disables_says_training_and_comes_back(grid):
    explorer, fake = make(grid)
    press_and_wait_until_running(explorer, fake)
    assert explorer.button.disabled and explorer.button.description.startswith("Training")
    assert explorer.progress.layout.visibility == "visible" and explorer.progress.value == 0.5
    assert "Training" in explorer.hint.value
    finish(explorer, fake)
    assert not explorer.button.disabled and explorer.button.description == "Run it live"
    assert explorer.progress.layout.visibility == "hidden"
    explorer._set_progress(1.0)  # the metrics watcher's last report may come after the run's end
    assert explorer.button.description == "Run it live"


def test_second_press_during_a_run_is_ignored(grid):
    explorer, fake = make(grid)
    press_and_wait_until_running(explorer, fake)
    explorer.button.click()
    assert explorer.run_live() is None
    finish(explorer, fake)
    assert len(fake.calls) == 1, f"{len(fake.calls)} runs started for one accepted press"
    assert explorer.log.value.count("live run") == 1


def test_one_result_at_a_time_the_newest(grid):
    explorer, fake = make(grid)
    explorer.set_point({**grid["default_point"], "std_coeff": 0.0, "cov_coeff": 0.0})
    press_and_wait_until_running(explorer, fake)
    finish(explorer, fake)
    first = bytes(explorer.figure.value)
    assert explorer.shown.startswith("live run: μ=0, ν=0") and first.startswith(PNG)
    fake.started.clear()
    fake.release.clear()
    fake.summary = {**fake.summary, "knn": 0.5}
    explorer.sliders["gamma"].value = 2.0
    press_and_wait_until_running(explorer, fake)
    finish(explorer, fake)
    assert explorer.shown.startswith("live run: μ=0, ν=0, γ=2") and bytes(explorer.figure.value) != first
    # one figure widget, replaced in place: no stacked outputs or progress bars
    kinds = [type(c).__name__ for c in explorer.widget.children]
    assert kinds.count("Image") == 1 and "Output" not in kinds
    assert explorer.log.value.count("live run") == 2


def test_slider_moved_during_run_applied_after_it_without_discarding_the_run(grid):
    explorer, fake = make(grid)
    run_point = {**grid["default_point"], "std_coeff": 0.0, "cov_coeff": 0.0}
    explorer.set_point(run_point)
    press_and_wait_until_running(explorer, fake)
    shown_before = explorer.shown
    explorer.sliders["gamma"].value = 2.0  # moved mid-run: noted, nothing redrawn yet
    assert explorer.shown == shown_before and "moved during the run" in explorer.hint.value
    finish(explorer, fake)
    # applied after the run: mu=0, nu=0, gamma=2 is not in the grid, so the hint says so and the
    # live run's figure stays (not wiped); the run is kept in the log and in the results
    assert "not in the one-factor grid" in explorer.hint.value
    assert explorer.shown.startswith("live run: μ=0, ν=0")
    assert explorer.key(run_point) in explorer.live_results and "μ=0, ν=0" in explorer.log.value
    explorer.sliders["gamma"].value = 1.0  # back to the run's setting: its result, from this session
    assert explorer.shown == "live run: μ=0, ν=0" and explorer.hint.value == ""


def test_move_to_a_grid_point_during_run_shows_it_after_and_keeps_the_run(grid):
    explorer, fake = make(grid)
    run_point = {**grid["default_point"], "std_coeff": 0.0, "cov_coeff": 0.0}
    explorer.set_point(run_point)
    press_and_wait_until_running(explorer, fake)
    explorer.sliders["std_coeff"].value = 25.0  # -> nu = 0 alone, a grid point
    finish(explorer, fake)
    assert explorer.shown == "grid run 'cov_coeff=0'" and explorer.hint.value == ""
    assert explorer.key(run_point) in explorer.live_results and "μ=0, ν=0" in explorer.log.value


def test_hint_line_clears_when_a_result_is_drawn(grid):
    explorer, fake = make(grid)
    explorer.set_point({**grid["default_point"], "sim_coeff": 5.0, "gamma": 2.0})
    assert "not in the one-factor grid" in explorer.hint.value
    press_and_wait_until_running(explorer, fake)
    finish(explorer, fake)
    assert explorer.hint.value == "" and explorer.shown.startswith("live run: λ=5, γ=2")


def test_failed_run_is_reported_and_the_button_comes_back(grid):
    explorer, fake = make(grid, fail=True)
    press_and_wait_until_running(explorer, fake)
    finish(explorer, fake)
    assert "live run failed" in explorer.hint.value and "out of memory" in explorer.hint.value
    assert not explorer.button.disabled and explorer.live_results == {}


@pytest.mark.slow
def test_real_tiny_live_run(grid, tmp_path, real_figures):
    """The default run_fn: the grid's config_for + train + summarize, progress from the metrics file."""
    sizes = {"epochs": 1, "train_size": 256, "test_size": 128, "diag_size": 64}
    explorer = AblationExplorer(grid, sizes, background=False, out_root=str(tmp_path))
    seen = []
    explorer.progress.observe(lambda change: seen.append(change["new"]), names="value")
    summary = explorer.run_live()
    assert summary is not None and 0.0 <= summary["knn"] <= 1.0 and len(summary["curve"]) >= 1
    assert explorer.shown.startswith("live run: default point (1 epochs x 256 images")
    assert seen and seen[-1] == 1.0 and not explorer.button.disabled
    assert list(tmp_path.glob("run-*/metrics.jsonl")), "the run wrote no metrics under out_root"


def test_output_bundle_carries_the_figure_as_a_png_fallback(grid):
    """The explorer's output: the widget view, the current figure as image/png (what JupyterLab
    shows for an untrusted notebook, and GitHub and nbviewer show) and a line of text."""
    import base64

    explorer = AblationExplorer(grid, run_fn=BlockingRun({}), background=False)
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "ablation explorer" in bundle["text/plain"]
    assert base64.b64decode(bundle["image/png"]) == explorer.figure.value
    explorer.set_point({**grid["default_point"], "std_coeff": 0.0})  # the fallback follows the figure
    assert base64.b64decode(explorer._repr_mimebundle_()["image/png"]) == explorer.figure.value


# ----------------------------------------------------------------------------------------------
# the site's widget renderer and the installed ipywidgets

ROOT = Path(__file__).resolve().parents[1]
RENDERER = re.compile(
    r"https://cdn\.jsdelivr\.net/npm/@jupyter-widgets/html-manager@(\d+\.\d+\.\d+)/dist/embed-amd\.js"
)


def site_renderer_versions() -> tuple[list[str], list[str]]:
    """(html-manager versions the pages load, html-manager versions the require.js shim maps to)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    loaded = [m.group(1) for url in config["nb_ipywidgets_js"] for m in [RENDERER.fullmatch(url)] if m]
    shims = [attrs["body"] for name, attrs in config.get("html_js_files", []) if name is None]
    mapped = re.findall(r"@jupyter-widgets/html-manager@(\d+\.\d+\.\d+)/dist", " ".join(shims))
    return loaded, mapped


def caret_allows(caret: str, version: str) -> bool:
    """npm's ^X.Y.Z range (X >= 1): same major, at least X.Y.Z."""
    low = tuple(int(x) for x in caret.lstrip("^").split("."))
    v = tuple(int(x) for x in version.split("."))
    return v[0] == low[0] and v >= low


def test_site_pins_the_widget_renderer_of_the_installed_ipywidgets():
    """_config.yml loads one @jupyter-widgets/html-manager, the one the installed ipywidgets names
    (its embed code's semver range), its require.js font shim points at the same version, and the
    models stored in chapter 7 speak the protocol versions of the installed ipywidgets."""
    import ipywidgets
    import nbformat

    loaded, mapped = site_renderer_versions()
    assert len(loaded) == 1, f"_config.yml's nb_ipywidgets_js should load one html-manager: {loaded}"
    assert mapped == loaded, f"the require.js shim maps html-manager {mapped}, the pages load {loaded}"
    caret = ipywidgets._version.__html_manager_version__
    assert caret_allows(caret, loaded[0]), (
        f"html-manager {loaded[0]} does not satisfy ipywidgets {ipywidgets.__version__}'s {caret}"
    )
    nb = nbformat.read(ROOT / "book" / "07_ablations.ipynb", as_version=4)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    protocol = {
        "@jupyter-widgets/controls": ipywidgets._version.__jupyter_widgets_controls_version__,
        "@jupyter-widgets/base": ipywidgets._version.__jupyter_widgets_base_version__,
        "@jupyter-widgets/output": ipywidgets._version.__jupyter_widgets_output_version__,
    }
    stale = {
        (m["model_module"], m["model_module_version"])
        for m in state.values()
        if protocol.get(m["model_module"], m["model_module_version"]) != m["model_module_version"]
    }
    assert not stale, f"chapter 7's stored models {stale} are not those of ipywidgets {ipywidgets.__version__}"


def test_site_renderer_is_built_on_the_installed_widget_packages():
    """html-manager's own dependencies (@jupyter-widgets/base, controls, output) are the ones the
    installed jupyterlab_widgets (ipywidgets' JupyterLab half, same release) is built on. Needs the
    npm package that scripts/check_site.py packs into _build/npm (skipped before a site check)."""
    import json

    (version,), _ = site_renderer_versions()
    pkg = ROOT / "_build" / "npm" / f"@jupyter-widgets+html-manager@{version}" / "package" / "package.json"
    lab = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager"
    if not pkg.exists() or not (lab / "package.json").exists():
        pytest.skip(f"needs {pkg} (make site-check offline packs it) and the jupyterlab_widgets labextension")
    deps = json.loads(pkg.read_text())["dependencies"]
    lab_deps = json.loads((lab / "package.json").read_text())["dependencies"]
    for name in ("@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output"):
        assert deps[name] == lab_deps[name], (
            f"html-manager {version} needs {name} {deps[name]}, the installed jupyterlab_widgets {lab_deps[name]}"
        )
