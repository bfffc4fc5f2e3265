"""vicreg_edu.explorer.Explorer: its checks, its HTML rendering (the page side, driven in Chromium
when it is installed) and its live widget (driven through its ipywidgets callbacks)."""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest
from matplotlib.figure import Figure

from vicreg_edu.explorer import NOT_PRECOMPUTED, NOT_PRECOMPUTED_LIVE, Explorer, to_png

CONTROLS = [
    {"name": "lam", "label": "λ", "values": [5, 25, 50]},
    {"name": "crop", "label": "crop", "values": [True, False]},
]


def fig(title: str) -> Figure:
    f = Figure(figsize=(1.5, 1), dpi=50)
    f.subplots().set_title(title)
    return f


@pytest.fixture(scope="module")
def states():
    return {(25, True): to_png(fig("25 crop")), (50, True): to_png(fig("50 crop")), (25, False): fig("25 no crop")}


def make(states, **kw):
    return Explorer(CONTROLS, states, (25, True), **kw)


def page_data(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" class="vx-data">(.*?)</script>', html).group(1))


@pytest.mark.parametrize(
    "controls, states, default, match",
    [
        ([], {(1,): b""}, (1,), "controls must be a non-empty list"),
        ([{"name": "a", "values": [1]}], {(1,): b""}, (1,), "control 0 must be a dict with 'name', 'label'"),
        ([{"name": "a", "label": "A", "values": ["x", "y"]}], {}, ("x",), "a slider's values must be numbers"),
        ([{"name": "a", "label": "A", "values": [1, 1]}], {}, (1,), "values repeat"),
        (CONTROLS, {}, (25, True), "states must be a non-empty dict"),
        (CONTROLS, {(25,): b""}, (25, True), "a states key must be a tuple of 2 values"),
        (CONTROLS, {(30, True): b""}, (25, True), "30 is not one of control 'lam'"),
        (CONTROLS, {(25, True): b"not a png"}, (25, True), "not a PNG"),
        (CONTROLS, {(25, True): "figure.png"}, (25, True), "must be a matplotlib Figure or PNG bytes, not str"),
        (CONTROLS, {(25, True): fig("x")}, (50, True), r"default point \(50, True\) has no state"),
        (CONTROLS, {(25, True): fig("x")}, (25, 1), "1 is not one of control 'crop'"),
    ],
)
def test_bad_input_one_clear_error(controls, states, default, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Explorer(controls, states, default)


def test_live_must_be_callable(states):
    with pytest.raises(TypeError, match="live must be a callable"):
        make(states, live="train")


def test_checkbox_and_slider_kinds_and_html_controls(states):
    ex = make(states, title="a title")
    assert [c["checkbox"] for c in ex.controls] == [False, True]
    html = ex.to_html()
    assert html.count('type="range"') == 1 and 'max="2"' in html and 'value="1"' in html
    assert html.count('type="checkbox"') == 1 and " checked" in html and "a title" in html
    assert "http" not in html.replace("data:image/png;base64,", ""), "the HTML must load nothing from the network"


def test_html_holds_every_state_once_keyed_by_indices(states):
    ex = make(states)
    html = ex.to_html()
    data = page_data(html)
    assert data["default"] == "1,0"
    # the default's PNG is the <img>'s src (shown without JavaScript); every other state once in the data
    assert set(data["states"]) == {"2,0", "1,1"}
    assert base64.b64decode(data["states"]["2,0"]) == ex.states[(50, True)]
    default_src = re.search(r'<img class="vx-figure"[^>]*src="data:image/png;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(default_src) == ex.states[(25, True)]
    assert NOT_PRECOMPUTED in html


def test_bundle_outside_a_kernel_html_png_text_no_widget(states):
    bundle = make(states)._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "image/png"}
    assert base64.b64decode(bundle["image/png"]) == to_png(states[(25, True)])


def test_select_switches_state_and_says_not_precomputed(states):
    ex = make(states)
    assert ex.select(lam=50).png == ex.states[(50, True)] and ex.message == ""
    assert ex.select(crop=False).png is None and ex.message == NOT_PRECOMPUTED
    assert ex.select(lam=25).png == ex.states[(25, False)] and ex.point == (25, False)
    with pytest.raises(ValueError, match="no control named 'mu'"):
        ex.select(mu=1)
    with pytest.raises(ValueError, match="7 is not one of control 'lam'"):
        ex.select(lam=7)


# -- the live widget


def test_widget_controls_switch_figure_and_run_live_keeps_result(states):
    pytest.importorskip("ipywidgets")
    calls = []

    def live(point):
        calls.append(point)
        return fig(f"live {point}")

    ex = make(states, live=live)
    w = ex.build_widget()
    assert ex._image.value == ex.states[(25, True)] and ex._button.disabled
    ex._inputs["lam"].value = 50  # what the reader's slider does
    assert ex.point == (50, True) and ex._image.value == ex.states[(50, True)]
    ex._inputs["crop"].value = False
    assert ex.message == NOT_PRECOMPUTED_LIVE and ex._image.layout.display == "none" and not ex._button.disabled
    png = ex.run_live(wait=True)
    assert calls == [{"lam": 50, "crop": False}] and png.startswith(b"\x89PNG")
    assert ex.states[(50, False)] == png and ex._image.value == png and ex.message == "" and ex._button.disabled
    assert ex.run_live(wait=True) is None and len(calls) == 1, "a stored point is not trained again"
    assert "2,1" in page_data(ex.to_html())["states"], "a live result is part of the next rendering"
    assert type(w).__name__ == "VBox"


def test_widget_live_run_in_background_and_failure_shown(states):
    pytest.importorskip("ipywidgets")

    def live(point):
        raise RuntimeError("out of memory (fake)")

    ex = make(states, live=live)
    ex.build_widget()
    ex.select(lam=5)
    ex._button.click()
    ex.thread.join(10)
    assert "the live run failed: RuntimeError: out of memory (fake)" in ex._hint.value
    assert ex._button.description == "Run it live" and not ex._button.disabled


# -- the page side, in a real browser


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium on PATH (scripts/system_deps.sh installs it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


def test_html_in_chromium_slider_and_checkbox_switch_the_figure(states, browser, tmp_path):
    ex = make(states)
    page_file = tmp_path / "page.html"
    page_file.write_text("<!doctype html><html><body>" + ex.to_html() + ex.to_html() + "</body></html>")
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(page_file.as_uri())
    root = page.locator(".vicreg-explorer").first
    img = root.locator("img.vx-figure")

    def shown() -> bytes:
        return base64.b64decode(img.get_attribute("src").split(",", 1)[1])

    assert root.get_attribute("data-shown") == "1,0" and shown() == ex.states[(25, True)]
    root.locator("input[type=range]").press("ArrowRight")  # lambda 25 -> 50
    assert root.get_attribute("data-shown") == "2,0" and shown() == ex.states[(50, True)]
    assert root.locator("output").inner_text() == "50"
    root.locator("input[type=checkbox]").uncheck()  # (50, no crop): not stored
    assert not img.is_visible() and root.locator(".vx-missing").is_visible()
    assert root.locator(".vx-missing").inner_text() == NOT_PRECOMPUTED
    root.locator("input[type=range]").press("ArrowLeft")  # (25, no crop): stored
    assert img.is_visible() and shown() == ex.states[(25, False)]
    second = page.locator(".vicreg-explorer").nth(1)
    assert second.get_attribute("data-shown") == "1,0", "each explorer of a page is bound to its own controls"
    assert errors == []
    page.close()


def test_bundle_in_a_kernel_adds_the_live_widget_view(states, monkeypatch):
    """In a running kernel (JupyterLab, Colab) the same output also carries the ipywidgets view,
    which JupyterLab ranks above text/html; the site's config drops that MIME type (_config.yml)."""
    pytest.importorskip("ipywidgets")
    import vicreg_edu.explorer as explorer_module

    monkeypatch.setattr(explorer_module, "_in_kernel", lambda: True)
    ex = make(states, live=lambda point: fig("live"))
    bundle = ex._repr_mimebundle_()
    assert {"text/html", "image/png", "application/vnd.jupyter.widget-view+json"} <= set(bundle)
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id
    assert bundle["text/plain"].startswith("[explorer")


def test_numpy_values_and_points_are_accepted():
    np = pytest.importorskip("numpy")
    controls = [{"name": "k", "label": "k", "values": list(np.array([1, 2, 3]))}]
    ex = Explorer(controls, {(np.int64(2),): fig("2"), (3,): fig("3")}, (2,))
    assert json.loads(re.search(r'class="vx-data">(.*?)</script>', ex.to_html()).group(1))["controls"][0]["values"] == [
        1,
        2,
        3,
    ]
    assert ex.select(k=3).png == ex.states[(3,)]


NOTEBOOK_CODE = """from matplotlib.figure import Figure
from vicreg_edu import Explorer
def fig(t):
    f = Figure(figsize=(3, 1.5), dpi=60); f.subplots().set_title(t); return f
ex = Explorer([{"name": "lam", "label": "lambda", "values": [5, 25, 50]},
               {"name": "crop", "label": "crop", "values": [True, False]}],
              {(25, True): fig("25 crop"), (50, True): fig("50 crop")}, (25, True),
              live=lambda p: fig(f"live {p}"))
ex"""


@pytest.mark.slow
def test_jupyterlab_shows_the_live_widget(browser, tmp_path):
    """In JupyterLab (a running kernel) the explorer is the ipywidgets view: the slider switches
    the figure, a point without a state says so and enables Run it live, which draws the result."""
    pytest.importorskip("jupyterlab")
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_CODE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "ex.ipynb")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        env[name] = str(tmp_path / name.lower())
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={tmp_path / 'nb'}", "--no-browser"]
    cmd += [f"--port={port}", "--IdentityProvider.token=t", "--allow-root"]
    lab = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api?token=t", timeout=2)
                break
            except OSError:
                time.sleep(1)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{port}/lab/tree/ex.ipynb?token=t")
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
        for attempt in range(3):  # a Shift+Enter sent while the notebook is still settling can be lost
            page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first.click()
            page.keyboard.press("Shift+Enter")
            try:
                page.wait_for_selector(".widget-slider .noUi-handle", timeout=30_000)
                break
            except Exception:
                page.screenshot(path=str(tmp_path / f"lab_{attempt}.png"))
        else:
            raise AssertionError(f"no widget after three runs of the cell; screenshots in {tmp_path}")
        img = page.locator(".jp-OutputArea-output img").first
        page.wait_for_function("el => el.getAttribute('src')", arg=img.element_handle())
        before = img.get_attribute("src")
        page.locator(".widget-slider .noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")  # lambda 25 -> 50: a stored state
        page.wait_for_function("([el, s]) => el.getAttribute('src') !== s", arg=[img.element_handle(), before])
        page.locator(".widget-checkbox input").first.click()  # (50, no crop): not stored
        page.wait_for_function("() => document.body.innerText.includes('press Run it live')")
        button = page.get_by_role("button", name="Run it live")
        assert button.is_enabled()
        button.click()
        img.wait_for(state="visible")  # the live run (a thread in the kernel) drew its figure
        assert "press Run it live" not in page.inner_text("body")
        assert img.is_visible() and not button.is_enabled() and errors == []
        box = img.bounding_box()
        assert box["width"] < 400, f"the 180 px figure is stretched to {box['width']:.0f} px"
        page.close()
    finally:
        lab.terminate()
        lab.wait(30)
