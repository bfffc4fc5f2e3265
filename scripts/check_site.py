"""Open the built book in headless Chromium and check what a reader would see.

For every page in _toc.yml (the landing page, each chapter, "Running the notebooks", the
references) this script loads the page from a local HTTP server and checks, with JavaScript
evaluated in the page (Chrome DevTools protocol):

* the page loads (HTTP 200, a <main> element, no 404 for the page's own files);
* every <img> has loaded: naturalWidth > 0 (a broken figure has naturalWidth 0); an external
  image (the Colab badge) whose host cannot be reached from this machine is noted, not failed;
* chapter pages (book/NN_*) show at least one figure and carry the Colab launch link;
* every math element (Sphinx's `.math`) was typeset by MathJax into an <mjx-container>, and
  MathJax reported no TeX error (<mjx-merror>);
* every stored widget view (a notebook output of ipywidgets, e.g. chapter 7's ablation explorer)
  was drawn by the widget renderer (@jupyter-widgets/html-manager) from the state stored in the
  page: as many sliders, checkboxes, buttons and images as the views' models hold, every widget
  image loaded and visible (non-zero natural and shown size); the pages of WIDGET_PAGES
  (`--widget-pages`, default chapter 7) must have such views, with sliders, checkboxes and a figure;
* no page error: no uncaught JavaScript exception and no console.error.

It saves screenshots of the landing page, of the first chapter (its top, and its first
displayed equation) and of each page's first widget view (`07_ablations_widgets.png`) under
_build/screenshots/, and exits 1 with one line per failure.

Usage (after `jupyter-book build .`):

    sudo apt-get install -y chromium        # Debian/Ubuntu; any Chromium or Chrome binary works
    python scripts/check_site.py            # or: make site-check
    python scripts/check_site.py --html _build/html --chromium /usr/bin/chromium
    python scripts/check_site.py --pages book/07_ablations    # one page

Offline: the pages load MathJax 3, require.js and the widget renderer from jsDelivr's npm mirror
(cdn.jsdelivr.net/npm/NAME@VERSION/...; _config.yml names them). Where the browser cannot reach
that CDN (an offline machine, CI), the script answers those requests from local copies of the
same npm packages, packed once with `npm pack NAME@VERSION` into _build/npm/ (`--npm-cache`;
npm's registry is often reachable where the CDNs are not); `--mathjax DIR` gives a folder
holding MathJax's es5/ instead. The pages are the built ones; only where those files come from
changes.

Dependencies: the standard library and tornado (its websocket client; tornado comes with
ipykernel/jupyter, which the `dev` and `book` extras install).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import http.server
import json
import mimetypes
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1280,1400",
    "--remote-debugging-port=0",
]
VIEWPORT = (1280, 1400)  # CSS pixels: wide enough for the book theme's left sidebar
NPM_CDN = "https://cdn.jsdelivr.net/npm/"  # MathJax, require.js and the widget renderer come from here
# Pages that must show live widgets from their stored state (their stored widget views, rendered).
WIDGET_PAGES = ["book/07_ablations"]

# Evaluated in each page once it has loaded: wait for every image and for MathJax, then report.
PAGE_REPORT_JS = """
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const imgs = Array.from(document.images);
  imgs.forEach(img => { img.loading = "eager"; });
  await Promise.all(imgs.map(img => img.complete ? null :
      new Promise(r => { img.addEventListener("load", r); img.addEventListener("error", r); })));
  const math = Array.from(document.querySelectorAll(".math"));
  let mathjax = "none needed";
  if (math.length) {
    const t0 = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() - t0 < TIMEOUT_MS)
      await sleep(100);
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      await Promise.race([MathJax.startup.promise, sleep(TIMEOUT_MS)]);
      mathjax = "MathJax " + (MathJax.version || "?");
    } else {
      mathjax = "MathJax never loaded";
    }
  }
  return {
    title: document.title,
    hasMain: !!document.querySelector("main"),
    images: imgs.map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth,
                            output: !!i.closest(".cell_output, .output")})),
    math: math.length,
    mathRendered: math.filter(m => m.querySelector("mjx-container")).length,
    mathErrors: document.querySelectorAll("mjx-merror").length,
    mathjax: mathjax,
    colab: !!document.querySelector('a[href*="colab.research.google.com"]'),
  };
})()
"""


# Evaluated after PAGE_REPORT_JS on pages with stored widget views: wait until the widget renderer
# (@jupyter-widgets/html-manager's embed-amd.js) has drawn each view from the page's stored state,
# then count what it drew against the models the views reach in that state.
WIDGET_REPORT_JS = """
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const views = Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
  const stateEl = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
  const out = {views: views.length, hasState: !!stateEl, missing: [], expected: {}, rendered: {}, subareas: 0,
               images: [], stateError: null};
  if (!views.length) return out;
  let state = {};
  try { state = JSON.parse(stateEl.textContent).state || {}; } catch (e) { out.stateError = String(e); }
  const seen = new Set();
  const todo = views.map(v => { try { return JSON.parse(v.textContent).model_id; } catch (e) { return null; } });
  while (todo.length) {
    const id = todo.pop();
    if (!id || seen.has(id)) continue;
    if (!state[id]) { out.missing.push(id); continue; }
    seen.add(id);
    for (const m of JSON.stringify(state[id].state).matchAll(/IPY_MODEL_([0-9a-f]+)/g)) todo.push(m[1]);
  }
  const kinds = {sliders: [/SliderModel$/, ".widget-slider"], checkboxes: [/^CheckboxModel$/, ".widget-checkbox"],
                 buttons: [/^ButtonModel$/, ".widget-button"], images: [/^ImageModel$/, "img.widget-image"]};
  for (const [k, [re, _]] of Object.entries(kinds))
    out.expected[k] = [...seen].filter(id => re.test(state[id].model_name)).length;
  const count = () => Object.fromEntries(Object.entries(kinds).map(
      ([k, [_, sel]]) => [k, document.querySelectorAll(".widget-subarea " + sel).length]));
  const t0 = Date.now();
  while (Date.now() - t0 < TIMEOUT_MS) {
    const c = count();
    if (document.querySelectorAll(".widget-subarea").length >= views.length
        && Object.keys(kinds).every(k => c[k] >= out.expected[k])) break;
    await sleep(200);
  }
  out.rendered = count();
  out.subareas = document.querySelectorAll(".widget-subarea").length;
  const imgs = Array.from(document.querySelectorAll(".widget-subarea img.widget-image"));
  await Promise.all(imgs.map(img => img.complete && img.naturalWidth ? null : new Promise(r => {
      img.addEventListener("load", r); img.addEventListener("error", r); setTimeout(r, TIMEOUT_MS); })));
  out.images = imgs.map(i => { const b = i.getBoundingClientRect();
      return {width: i.naturalWidth, height: i.naturalHeight, shownWidth: Math.round(b.width),
              shownHeight: Math.round(b.height)}; });
  return out;
})()
"""


# ----------------------------------------------------------------------------
# a minimal Chrome DevTools protocol client


class CDP:
    """JSON-RPC over the DevTools websocket: `await send(method, **params)`, event handlers."""

    def __init__(self, ws, timeout: float):
        self.ws, self.timeout = ws, timeout
        self.next_id, self.pending, self.handlers = 0, {}, {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        while True:
            raw = await self.ws.read_message()
            if raw is None:  # connection closed
                for fut in self.pending.values():
                    fut.set_exception(ConnectionError("Chromium closed the DevTools connection"))
                return
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self.pending:
                fut = self.pending.pop(msg["id"])
                if "error" in msg:
                    fut.set_exception(RuntimeError(f"{msg['error']}"))
                else:
                    fut.set_result(msg.get("result", {}))
            for handler in self.handlers.get(msg.get("method"), []):
                handler(msg.get("params", {}))

    def on(self, method: str, handler) -> None:
        self.handlers.setdefault(method, []).append(handler)

    async def send(self, method: str, timeout: float | None = None, **params):
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.write_message(json.dumps({"id": self.next_id, "method": method, "params": params}))
        return await asyncio.wait_for(fut, timeout or self.timeout)


def launch_chromium(binary: str, profile: Path) -> tuple[subprocess.Popen, int]:
    """Start headless Chromium; return the process and its DevTools port."""
    proc = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port_file = profile / "DevToolsActivePort"
    for _ in range(300):  # up to 30 s
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text().split()[0])
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{binary} exited with code {proc.returncode}:\n{err}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{binary} did not open a DevTools port within 30 s")


# ----------------------------------------------------------------------------
# the site and MathJax


def toc_pages(html: Path) -> list[str]:
    """Page names (`book/intro`, `book/00_introduction`, ...) in _toc.yml order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append(str(node["file"]).removesuffix(".md").removesuffix(".ipynb"))
            for key, value in node.items():
                if key != "file":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return pages


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve `directory` on 127.0.0.1 in a background thread; return the server and base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@functools.lru_cache(maxsize=None)
def reachable(url: str, timeout: float = 5.0) -> bool:
    """True when a HEAD request to `url` succeeds from this machine."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except Exception:
        return False


def parse_npm_url(url: str) -> tuple[str, str] | None:
    """("name@version", path in the package) of a jsDelivr npm URL, else None.

    >>> parse_npm_url("https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.15/dist/embed-amd.js")
    ('@jupyter-widgets/html-manager@1.0.15', 'dist/embed-amd.js')
    """
    if not url.startswith(NPM_CDN):
        return None
    parts = url[len(NPM_CDN) :].split("?")[0].split("#")[0].split("/")
    n = 2 if parts[0].startswith("@") else 1
    if len(parts) <= n:
        return None
    return "/".join(parts[:n]), "/".join(parts[n:])


def npm_scripts(html: Path) -> dict[str, str]:
    """{npm spec: one URL of it} for every jsDelivr npm script the built pages load (MathJax, require.js,
    the widget renderer)."""
    found = {}
    for page in sorted(html.rglob("*.html")):
        for url in re.findall(r'src="(' + re.escape(NPM_CDN) + r'[^"]+)"', page.read_text(errors="replace")):
            spec = parse_npm_url(url)
            if spec:
                found.setdefault(spec[0], url)
    return found


def npm_package(spec: str, cache: Path) -> Path:
    """The folder of npm package `spec` (name@version or name@range), packed once into `cache`."""
    folder = cache / spec.replace("/", "+")
    if (folder / "package" / "package.json").exists():
        return folder / "package"
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is not installed, so {spec} cannot be fetched for the offline check")
    folder.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [npm, "pack", spec, "--pack-destination", str(folder)], capture_output=True, text=True, timeout=300
    )
    tgz = sorted(folder.glob("*.tgz"))
    if out.returncode != 0 or not tgz:
        raise RuntimeError(f"`npm pack {spec}` failed:\n{out.stderr[-2000:]}")
    with tarfile.open(tgz[-1]) as tar:
        try:
            tar.extractall(folder, filter="data")
        except TypeError:  # Python < 3.10.12 / 3.11.4: no extraction filters
            tar.extractall(folder)
    return folder / "package"


def local_npm(html: Path, cache: Path, mathjax_arg: str | None) -> dict[str, Path] | None:
    """{npm spec: local package folder} to answer the pages' jsDelivr requests with, or None when
    the CDN is reachable (the browser then loads the real files).

    `mathjax_arg` (--mathjax DIR) stands in for the mathjax package; the others are packed with
    npm into `cache` once (npm's registry is often reachable where the CDNs are not)."""
    scripts = npm_scripts(html)
    if mathjax_arg is None and (not scripts or all(reachable(url) for url in scripts.values())):
        return None
    local = {}
    for spec in scripts:
        if spec.split("@")[0] == "mathjax" and mathjax_arg:
            path = Path(mathjax_arg)
            folder = next((c for c in (path, path / "package", path.parent) if (c / "es5").is_dir()), None)
            if folder is None:
                raise FileNotFoundError(f"--mathjax {mathjax_arg}: expected a folder holding es5/tex-mml-chtml.js")
            local[spec] = folder
            continue
        if not (cache / spec.replace("/", "+") / "package").exists():
            print(f"{NPM_CDN} not reachable; fetching the npm package {spec} into {cache} (once)")
        local[spec] = npm_package(spec, cache)
    return local


# ----------------------------------------------------------------------------
# the checks


async def check_pages(
    args, base: str, pages: list[str], npm_dirs: dict[str, Path] | None
) -> tuple[list[str], list[str]]:
    from tornado.websocket import websocket_connect

    failures, lines = [], []
    profile = Path(tempfile.mkdtemp(prefix="check-site-"))
    proc, port = launch_chromium(args.chromium, profile)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        ws = await websocket_connect(target["webSocketDebuggerUrl"], max_message_size=256 * 2**20)
        cdp = CDP(ws, args.timeout)
        status, bad_requests, exceptions, loaded = {}, [], [], asyncio.Event()
        cdp.on("Page.loadEventFired", lambda p: loaded.set())
        cdp.on("Network.responseReceived", lambda p: status.__setitem__(p["response"]["url"], p["response"]["status"]))
        cdp.on(
            "Network.responseReceived",
            lambda p: bad_requests.append(p["response"]["url"]) if p["response"]["status"] >= 400 else None,
        )
        cdp.on(
            "Runtime.exceptionThrown",
            lambda p: exceptions.append(
                p["exceptionDetails"]
                .get("exception", {})
                .get("description", p["exceptionDetails"]["text"])
                .splitlines()[0]
            ),
        )

        cdp.on(
            "Runtime.consoleAPICalled",
            lambda p: (
                exceptions.append(
                    "console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])[:300]
                )
                if p["type"] == "error"
                else None
            ),
        )
        npm_dirs = dict(npm_dirs or {})

        async def answer_from_local_npm(p):
            url = p["request"]["url"]
            spec, rel = parse_npm_url(url) or (None, None)
            if spec is not None and spec not in npm_dirs:  # asked for at run time (a widget module)
                try:
                    npm_dirs[spec] = await asyncio.to_thread(npm_package, spec, Path(args.npm_cache))
                except RuntimeError as err:
                    print(f"note: {url}: {err}".splitlines()[0])
            file = npm_dirs[spec] / rel if spec in npm_dirs else None
            if file is None or not file.is_file():
                await cdp.send("Fetch.fulfillRequest", requestId=p["requestId"], responseCode=404, body="")
                return
            mime = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            await cdp.send(
                "Fetch.fulfillRequest",
                requestId=p["requestId"],
                responseCode=200,
                responseHeaders=[
                    {"name": "Content-Type", "value": mime},
                    {"name": "Access-Control-Allow-Origin", "value": "*"},
                ],
                body=base64.b64encode(file.read_bytes()).decode(),
            )

        for method in ("Page.enable", "Runtime.enable", "Network.enable"):
            await cdp.send(method)
        await cdp.send(
            "Emulation.setDeviceMetricsOverride",
            width=VIEWPORT[0],
            height=VIEWPORT[1],
            deviceScaleFactor=1,
            mobile=False,
        )
        if npm_dirs:
            await cdp.send("Fetch.enable", patterns=[{"urlPattern": f"{NPM_CDN}*"}])
            cdp.on("Fetch.requestPaused", lambda p: asyncio.ensure_future(answer_from_local_npm(p)))

        for page in pages:
            url = f"{base}/{page}.html"
            loaded.clear(), bad_requests.clear(), exceptions.clear()
            t0 = time.perf_counter()
            nav = await cdp.send("Page.navigate", url=url)
            if nav.get("errorText"):
                failures.append(f"{page}: navigation failed: {nav['errorText']}")
                continue
            await asyncio.wait_for(loaded.wait(), args.timeout)
            js = PAGE_REPORT_JS.replace("TIMEOUT_MS", str(int(args.timeout * 1000)))
            res = await cdp.send(
                "Runtime.evaluate", timeout=args.timeout + 10, expression=js, awaitPromise=True, returnByValue=True
            )
            if "exceptionDetails" in res:
                failures.append(f"{page}: page check script failed: {res['exceptionDetails']}")
                continue
            r = res["result"]["value"]
            js = WIDGET_REPORT_JS.replace("TIMEOUT_MS", str(int(args.timeout * 1000)))
            res = await cdp.send(
                "Runtime.evaluate", timeout=args.timeout * 2 + 10, expression=js, awaitPromise=True, returnByValue=True
            )
            if "exceptionDetails" in res:
                failures.append(f"{page}: widget check script failed: {res['exceptionDetails']}")
                continue
            w = res["result"]["value"]
            failures += page_failures(page, url, status.get(url), r, bad_requests, base)
            failures += widget_failures(page, w, page in args.widget_pages)
            failures += [f"{page}: page error: {e}" for e in exceptions]
            broken = sum(1 for i in r["images"] if i["width"] == 0)
            lines.append(
                f"{page:<24} {time.perf_counter() - t0:5.1f} s  images {len(r['images']) - broken}/"
                f"{len(r['images'])} loaded ({sum(i['output'] for i in r['images'])} figures)  "
                f"math {r['mathRendered']}/{r['math']} rendered ({r['mathjax']})"
                + (f"  widgets {w['rendered']} rendered of {w['expected']}" if w["views"] else "")
                + (f"  page errors: {exceptions[:3]}" if exceptions else "")
            )
            await screenshots(cdp, page, pages, Path(args.screenshots), lines, widgets=w["views"] > 0)
        ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    return failures, lines


def page_failures(page: str, url: str, http_status, r: dict, bad_requests: list[str], base: str) -> list[str]:
    """One message per problem found on a page (empty when the page is fine)."""
    out = []
    if http_status != 200:
        out.append(f"{page}: {url} answered HTTP {http_status} (is the site built? `jupyter-book build .`)")
        return out
    if not r["hasMain"]:
        out.append(f"{page}: no <main> element: the page did not render")
    for img in r["images"]:
        if img["width"] > 0:
            continue
        if img["src"].startswith(base) or reachable(img["src"]):
            out.append(f"{page}: broken image (naturalWidth 0): {img['src']}")
        else:  # e.g. the Colab badge on an offline machine: the site is fine, the check cannot tell
            print(f"note: {page}: external image not checked (its host is not reachable from here): {img['src']}")
    is_chapter = Path(page).name[:2].isdigit()
    if is_chapter and not any(i["output"] and i["width"] > 0 for i in r["images"]):
        out.append(f"{page}: a chapter page without any figure (store the notebook's outputs)")
    if is_chapter and not r["colab"]:
        out.append(f"{page}: no Colab link (launch button or badge)")
    if r["math"] and r["mathRendered"] < r["math"]:
        out.append(
            f"{page}: {r['math'] - r['mathRendered']} of {r['math']} math elements not rendered "
            f"({r['mathjax']}); offline? pass --mathjax DIR"
        )
    if r["mathErrors"]:
        out.append(f"{page}: MathJax reported {r['mathErrors']} TeX error(s) (<mjx-merror>)")
    for bad in bad_requests:
        if bad.startswith(base) and bad != f"{base}/favicon.ico":  # the browser's own guess; the book has none
            out.append(f"{page}: request failed: {bad}")
    return out


def widget_failures(page: str, w: dict, required: bool) -> list[str]:
    """One message per problem with the page's stored widget views (WIDGET_REPORT_JS's report)."""
    if not w["views"]:
        return [f"{page}: no stored widget view on the page (the explorer's output)"] if required else []
    out = []
    if not w["hasState"] or w["stateError"]:
        out.append(f"{page}: widget views without readable stored widget state ({w['stateError']})")
    if w["missing"]:
        out.append(f"{page}: widget views reach models absent from the stored state: {w['missing'][:3]}")
    if w["subareas"] < w["views"]:
        out.append(
            f"{page}: {w['views'] - w['subareas']} of {w['views']} widget views not rendered "
            "(the widget renderer @jupyter-widgets/html-manager did not run or failed)"
        )
    for kind, n in w["expected"].items():
        if w["rendered"].get(kind, 0) < n:
            out.append(f"{page}: {w['rendered'].get(kind, 0)} of {n} widget {kind} rendered")
        if required and kind != "buttons" and n == 0:
            out.append(f"{page}: the stored widgets hold no {kind} (the explorer has sliders, switches, a figure)")
    for img in w["images"]:
        if not (img["width"] > 0 and img["height"] > 0 and img["shownWidth"] > 0 and img["shownHeight"] > 0):
            out.append(f"{page}: a widget figure is not visible ({img})")
    return out


async def screenshots(
    cdp: CDP, page: str, pages: list[str], folder: Path, lines: list[str], widgets: bool = False
) -> None:
    """The landing page (top), the first chapter (top, and its first displayed equation), and each
    page with widgets (its first widget view)."""
    chapters = [p for p in pages if Path(p).name[:2].isdigit()]
    shots = []
    if widgets:
        shots.append((Path(page).name + "_widgets", ".widget-subarea"))
    if page == pages[0]:
        shots.append((Path(page).name, None))
    if chapters and page == chapters[0]:
        shots += [(Path(page).name, None), (Path(page).name + "_math", "div.math")]
    folder.mkdir(parents=True, exist_ok=True)
    for name, selector in dict(shots).items():  # once each (with --pages the first page is both)
        scroll = (
            f"const e = document.querySelector('{selector}'); if (e) e.scrollIntoView();"
            if selector
            else "window.scrollTo(0, 0);"
        )
        await cdp.send(
            "Runtime.evaluate",
            awaitPromise=True,
            expression=(f"(async () => {{ {scroll} await new Promise(r => setTimeout(r, 300)); }})()"),
        )
        shot = await cdp.send("Page.captureScreenshot", format="png")
        path = folder / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        lines.append(f"  screenshot: {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", default=str(ROOT / "_build" / "html"), help="the built site (default _build/html)")
    parser.add_argument(
        "--chromium", default=None, help="Chromium/Chrome binary (default: first of %s on PATH)" % CHROMIUM_NAMES
    )
    parser.add_argument("--screenshots", default=str(ROOT / "_build" / "screenshots"), help="where to save screenshots")
    parser.add_argument("--mathjax", default=None, help="local mathjax@3 npm package folder (for offline checks)")
    parser.add_argument(
        "--npm-cache",
        default=str(ROOT / "_build" / "npm"),
        help="where npm packages for offline checks are packed (default _build/npm)",
    )
    parser.add_argument(
        "--widget-pages",
        nargs="*",
        default=WIDGET_PAGES,
        help="pages that must render stored widgets (default: %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per page and per wait (default 30)")
    parser.add_argument("--pages", nargs="*", default=None, help="check only these pages (default: all of _toc.yml)")
    args = parser.parse_args(argv)

    html = Path(args.html)
    if not (html / "index.html").exists():
        print(
            f"error: no built site at {html} (expected index.html): run `jupyter-book build .` first", file=sys.stderr
        )
        return 2
    args.chromium = args.chromium or next((b for b in map(shutil.which, CHROMIUM_NAMES) if b), None)
    if args.chromium is None or shutil.which(args.chromium) is None:
        print(
            f"error: no Chromium found (tried {CHROMIUM_NAMES}); install it with "
            f"`sudo apt-get install -y chromium` or pass --chromium PATH",
            file=sys.stderr,
        )
        return 2
    try:
        npm_dirs = local_npm(html, Path(args.npm_cache), args.mathjax)
    except (FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    pages = toc_pages(html)
    if args.pages:
        unknown = sorted(set(args.pages) - set(pages))
        if unknown:
            print(f"error: --pages {unknown}: not in _toc.yml ({pages})", file=sys.stderr)
            return 2
        pages = [p for p in pages if p in args.pages]
    server, base = serve(html)
    print(
        f"checking {len(pages)} pages of {html} in {args.chromium}"
        + (f" (CDN files served from local npm packages: {', '.join(npm_dirs)})" if npm_dirs else "")
    )
    try:
        failures, lines = asyncio.run(check_pages(args, base, pages, npm_dirs))
    except (RuntimeError, ConnectionError, asyncio.TimeoutError) as err:
        print(f"error: the browser check could not run: {err!r}", file=sys.stderr)
        return 2
    finally:
        server.shutdown()
    print("\n".join(lines))
    if failures:
        print(f"\nFAILED: {len(failures)} problem(s):\n" + "\n".join(f"  - {f}" for f in failures), file=sys.stderr)
        return 1
    print(
        f"site check passed: {len(pages)} pages loaded, their images loaded, their math rendered, "
        f"their stored widgets rendered ({', '.join(args.widget_pages)}), no page error"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
