"""Open the built book in headless Chromium (Playwright, the system browser) as a reader would,
with every host but localhost blocked, and check what it shows.

For every page of _toc.yml, served from a local HTTP server at 1280 px:

* the page loads (HTTP 200) and none of its own files fails (HTTP >= 400 or a failed request);
  a request to any other host is blocked and fails the page (the site must need no CDN), except
  links a reader opens (the Colab badge image, which is noted, not fetched);
* math: every Sphinx math element was typeset by MathJax (an <mjx-container> inside, no
  <mjx-merror>), and no raw TeX delimiter (``\\(``, ``\\[``, ``$$``, ``$\\name``) is left in the
  page's text outside code;
* figures: every <img> (but the Colab badge) loaded (naturalWidth > 0); no stored widget view is
  left unrendered (a ``script[type=application/vnd.jupyter.widget-view+json]`` means a widget with
  neither a renderer nor a fallback);
* explorers (``vicreg_edu.Explorer`` outputs, ``.vicreg-explorer``): bound by their script and
  showing the default figure; each slider is dragged with the mouse to its next value, and each
  checkbox clicked: the figure must change and be the PNG the chapter's notebook stores for the
  new point (read from the .ipynb, not from the page), or, for a point with no stored state, the
  "not precomputed" line must show and the figure be hidden;
* one search field shows (the theme has several; _config.yml keeps one);
* no uncaught JavaScript exception and no console error.

The first page with math is opened once more from disk (file://, an offline copy): its math must
render too.

Full-page screenshots go to --screenshots (default _build/screenshots/): one per page, and for
each explorer one before and one after its first slider drag (``07_ablations_explorer0_before.png``
/ ``..._after.png``, also cropped to the explorer: ``..._explorer0_before_crop.png``). Each page's
weight (the bytes of its HTML and of every local file it loaded) is printed.

    python scripts/check_site.py [--html _build/html] [--pages book/07_ablations ...]

Exit status: 0 all pass, 1 a failure (one line each), 2 the check cannot run here (no Chromium
or no Playwright). Chromium: the system one (``apt-get install -y chromium``, see
scripts/system_deps.sh) through ``executable_path``; ``playwright install`` is never needed.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import re
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
NOTED_HOSTS = {"colab.research.google.com"}  # the Colab badge: a link target, its image is optional
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\$\\[A-Za-z]")
EXPLORER_DATA = re.compile(r'<script type="application/json" class="vx-data">(.*?)</script>', re.S)
BLOCKED: list[str] = []  # the current page's requests to other hosts (aborted)
MATH_PAGES: list[str] = []  # pages with math (the first is opened again from file://)
EXPLORER_IMG = re.compile(r'<img class="vx-figure"[^>]*src="data:image/png;base64,([^"]+)"')

PAGE_JS = """() => {
  const math = [...document.querySelectorAll('.math')];
  const text = [...document.querySelectorAll('main p, main li, main td, main h1, main h2, main h3, main dd')]
    .filter(el => !el.closest('pre, code, .highlight, .cell_output'))
    .map(el => el.innerText).join('\\n');
  return {
    main: !!document.querySelector('main'),
    math: math.length,
    typeset: math.filter(el => el.querySelector('mjx-container')).length,
    merror: document.querySelectorAll('mjx-merror').length,
    text: text,
    broken_images: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 120)),
    widget_views: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
    explorers: document.querySelectorAll('.vicreg-explorer').length,
    searches: [...document.querySelectorAll('.search-button-field, .search-button, input[type=search]')]
      .filter(e => e.getBoundingClientRect().width > 0 && getComputedStyle(e).visibility !== 'hidden').length,
  };
}"""

SHOWN_JS = """root => {
  const img = root.querySelector('img.vx-figure'), msg = root.querySelector('.vx-missing');
  const visible = el => !!el && !el.hidden && el.getBoundingClientRect().height > 0;
  return {bound: root.getAttribute('data-bound'), img: visible(img) ? img.getAttribute('src') : null,
          missing: visible(msg) ? msg.innerText : null,
          key: [...root.querySelectorAll('input[data-control]')].map(i => {
            const c = JSON.parse(root.querySelector('script.vx-data').textContent).controls[+i.dataset.i];
            return i.type === 'checkbox' ? c.values.indexOf(i.checked) : +i.value; }).join(',')};
}"""


def toc_pages() -> list[str]:
    """Page names (``book/intro``, ``book/00_introduction``, ...) in _toc.yml order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append(str(node["file"]).removesuffix(".md").removesuffix(".ipynb"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("chapters", []))
    return pages


def stored_explorers(page: str, notebooks: Path) -> list[dict]:
    """``{key: PNG base64}`` of every explorer the page's notebook stores, in output order."""
    ipynb = notebooks / (Path(page).name + ".ipynb")
    if not ipynb.exists():
        return []
    found = []
    for cell in json.loads(ipynb.read_text())["cells"]:
        for out in cell.get("outputs", []):
            html = out.get("data", {}).get("text/html")
            html = "".join(html) if isinstance(html, list) else html
            if html and "vicreg-explorer" in html:
                data = json.loads(EXPLORER_DATA.search(html).group(1).replace("<\\/", "</"))
                found.append({**data["states"], data["default"]: EXPLORER_IMG.search(html).group(1)})
    return found


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def drag_to_next(page, slider) -> None:
    """Drag the range input's thumb with the mouse to the next value (the previous one at the end)."""
    n, i = int(slider.get_attribute("max")) + 1, int(slider.input_value())
    j = i + 1 if i + 1 < n else i - 1
    box = slider.bounding_box()
    pad = 8  # half of Chromium's default thumb width

    def x(k):
        return box["x"] + pad + (box["width"] - 2 * pad) * k / (n - 1)

    y = box["y"] + box["height"] / 2
    page.mouse.move(x(i), y)
    page.mouse.down()
    page.mouse.move(x(j), y, steps=8)
    page.mouse.up()


def check_explorer(page, root, stored: dict | None, name: str, shots: Path, where: str) -> list[str]:
    fails = []
    state = root.evaluate(SHOWN_JS)
    if not state["bound"] or not state["img"]:
        return [f"{where}: the explorer's script did not run or shows no figure"]

    def expect(action: str, before: dict) -> None:
        after = root.evaluate(SHOWN_JS)
        shown = after["img"].split(",", 1)[1] if after["img"] else None
        if after["key"] == before["key"]:
            fails.append(f"{where}: {action} did not move the control (point {after['key']})")
        elif shown is not None and shown == (before["img"] or "").split(",", 1)[-1]:
            fails.append(f"{where}: {action} (point {before['key']} -> {after['key']}): the figure did not change")
        elif stored is not None and after["key"] in stored and shown != stored[after["key"]]:
            fails.append(f"{where}: {action}: the figure is not the notebook's stored state of point {after['key']}")
        elif stored is not None and after["key"] not in stored and (shown or not after["missing"]):
            fails.append(f"{where}: {action}: point {after['key']} has no stored state, the page must say so")

    for k, slider in enumerate(root.locator("input[type=range]").all()):
        before = root.evaluate(SHOWN_JS)
        if k == 0:
            page.screenshot(path=str(shots / f"{name}_before.png"), full_page=True)
            root.screenshot(path=str(shots / f"{name}_before_crop.png"))
        drag_to_next(page, slider)
        expect(f"dragging slider {k}", before)
        if k == 0:
            page.screenshot(path=str(shots / f"{name}_after.png"), full_page=True)
            root.screenshot(path=str(shots / f"{name}_after_crop.png"))
        slider.focus()  # back to the default point for the next control
        slider.fill(str(before["key"].split(",")[int(slider.get_attribute("data-i"))]))
    for k, box in enumerate(root.locator("input[type=checkbox]").all()):
        before = root.evaluate(SHOWN_JS)
        box.click()
        expect(f"clicking checkbox {k}", before)
        box.click()
    return fails


def wait_for_mathjax(page, timeout: float) -> bool:
    """Wait until MathJax has typeset the page (True), or for a page without math; False if it never starts."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "() => !document.querySelector('.math') || (window.MathJax && MathJax.startup && MathJax.startup.promise)",
            timeout=timeout * 1000,
        )
    except PlaywrightTimeout:
        return False
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    return True


def check_page(context, base: str, page_name: str, html: Path, notebooks: Path, shots: Path, timeout: float):
    """(failures, notes, weight in bytes) of one page."""
    fails, notes, loaded = [], [], {}
    page = context.new_page()
    page.set_default_timeout(timeout * 1000)
    page.on("pageerror", lambda e: fails.append(f"{page_name}: uncaught JavaScript error: {e}"))

    def on_console(m):
        if m.type == "error" and "ERR_BLOCKED_BY_CLIENT" not in m.text:  # a blocked request is reported below
            fails.append(f"{page_name}: console error: {m.text}")

    page.on("console", on_console)

    def on_response(r):
        if urlparse(r.url).hostname in LOCAL_HOSTS:
            path = html / unquote(urlparse(r.url).path).lstrip("/")
            loaded[r.url] = path.stat().st_size if path.is_file() else 0
            if r.status >= 400:
                fails.append(f"{page_name}: HTTP {r.status} for {r.url}")

    page.on("response", on_response)
    del BLOCKED[:]
    response = page.goto(f"{base}/{page_name}.html", wait_until="load")
    if response is None or response.status != 200:
        return [f"{page_name}: the page did not load (HTTP {response and response.status})"], notes, 0
    if not wait_for_mathjax(page, timeout):
        fails.append(f"{page_name}: MathJax did not start within {timeout:.0f} s (its script did not load)")
    r = page.evaluate(PAGE_JS)
    if r["math"]:
        MATH_PAGES.append(page_name)
    if r["math"] != r["typeset"] or r["merror"]:
        fails.append(f"{page_name}: math typeset {r['typeset']}/{r['math']}, TeX errors {r['merror']}")
    raw = RAW_TEX.findall(r["text"])
    if raw:
        fails.append(f"{page_name}: raw TeX left in the text: {sorted(set(raw))}")
    badge = [s for s in r["broken_images"] if "colab-badge" in s]
    fails += [f"{page_name}: image did not load: {s}" for s in r["broken_images"] if s not in badge]
    if r["searches"] != 1:
        fails.append(f"{page_name}: {r['searches']} search fields or buttons shown (one expected)")
    if r["widget_views"]:
        fails.append(f"{page_name}: {r['widget_views']} widget views with no renderer and no fallback")
    for url in BLOCKED:
        host = urlparse(url).hostname
        (notes if host in NOTED_HOSTS else fails).append(f"{page_name}: blocked a request to {url}")
    stored = stored_explorers(page_name, notebooks)
    if r["explorers"] and len(stored) != r["explorers"]:
        fails.append(f"{page_name}: {r['explorers']} explorers on the page, {len(stored)} stored in its notebook")
    for i, root in enumerate(page.locator(".vicreg-explorer").all()):
        name = f"{Path(page_name).name}_explorer{i}"
        states = stored[i] if i < len(stored) else None
        fails += check_explorer(page, root, states, name, shots, f"{page_name} explorer {i}")
        notes.append(f"{page_name}: explorer {i}: sliders dragged and checkboxes clicked ({len(states or {})} states)")
    page.screenshot(path=str(shots / f"{Path(page_name).name}.png"), full_page=True)
    page.close()
    return fails, notes, sum(loaded.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html", help="the built site")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "book", help="the chapters' .ipynb (stored states)")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "screenshots")
    parser.add_argument("--chromium", default=None, help="browser binary (default: chromium on PATH)")
    parser.add_argument("--pages", nargs="*", default=None, help="only these pages (default: all of _toc.yml)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per wait (default 15)")
    args = parser.parse_args(argv)
    exe = args.chromium or next((p for p in map(shutil.which, CHROMIUM) if p), None)
    if exe is None:
        print("check_site: no Chromium (apt-get install -y chromium; scripts/system_deps.sh)", file=sys.stderr)
        return 2
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("check_site: Playwright is not installed (pip install -e '.[book]')", file=sys.stderr)
        return 2
    if not (args.html / "index.html").exists():
        print(f"check_site: no built site in {args.html} (jupyter-book build . first)", file=sys.stderr)
        return 1
    args.screenshots.mkdir(parents=True, exist_ok=True)
    server, base = serve(args.html)
    fails, total = [], 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 1000})

        def route(r):
            url = r.request.url
            if urlparse(url).scheme in ("data", "blob", "file") or urlparse(url).hostname in LOCAL_HOSTS:
                return r.continue_()
            BLOCKED.append(url)
            return r.abort("blockedbyclient")

        context.route("**/*", route)
        for page_name in args.pages or toc_pages():
            try:
                page_fails, notes, weight = check_page(
                    context, base, page_name, args.html, args.notebooks, args.screenshots, args.timeout
                )
            except Exception as e:  # one line, and the other pages are still checked
                page_fails, notes, weight = [f"{page_name}: the check stopped: {type(e).__name__}: {e}"], [], 0
            total += weight
            status = "FAIL" if page_fails else "ok"
            print(f"{status:4} {page_name:26} {weight / 1e6:6.2f} MB", flush=True)
            for line in notes + page_fails:
                print(f"     {line}", flush=True)
            fails += page_fails
        offline = MATH_PAGES[0] if MATH_PAGES else None
        if offline is not None:  # the same page opened from disk, as an offline copy would be
            page = context.new_page()
            page.goto((args.html / f"{offline}.html").resolve().as_uri(), wait_until="load")
            wait_for_mathjax(page, args.timeout)
            r = page.evaluate(PAGE_JS)
            ok = r["math"] == r["typeset"] > 0
            print(f"{'ok' if ok else 'FAIL':4} {offline} from file://: math typeset {r['typeset']}/{r['math']}")
            fails += [] if ok else [f"{offline} from file://: math typeset {r['typeset']}/{r['math']}"]
            page.close()
        browser.close()
    server.shutdown()
    print(f"{len(fails)} failures; pages weigh {total / 1e6:.2f} MB in all; screenshots in {args.screenshots}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
