"""Open the built book in headless Chromium and check what a reader would see.

For every page in _toc.yml (the landing page, each chapter, "Running the notebooks", the
references) this script loads the page from a local HTTP server and checks, with JavaScript
evaluated in the page (Chrome DevTools protocol):

* the page loads (HTTP 200, a <main> element, no 404 for the page's own files);
* every <img> has loaded: naturalWidth > 0 (a broken figure has naturalWidth 0); an external
  image (the Colab badge) whose host cannot be reached from this machine is noted, not failed;
* chapter pages (book/NN_*) show at least one figure and carry the Colab launch link;
* every math element (Sphinx's `.math`) was typeset by MathJax into an <mjx-container>, and
  MathJax reported no TeX error (<mjx-merror>).

It saves screenshots of the landing page and of the first chapter (its top, and its first
displayed equation) under _build/screenshots/, and exits 1 with one line per failure.

Usage (after `jupyter-book build .`):

    sudo apt-get install -y chromium        # Debian/Ubuntu; any Chromium or Chrome binary works
    python scripts/check_site.py            # or: make site-check
    python scripts/check_site.py --html _build/html --chromium /usr/bin/chromium

MathJax: the site loads MathJax 3 from its CDN. Where the browser cannot reach the CDN (an
offline machine, CI), the script answers those requests from a local copy of the `mathjax@3`
npm package: `--mathjax DIR` (a folder holding es5/tex-mml-chtml.js), else _build/mathjax/
(filled once with `npm pack mathjax@3` when npm is available and the CDN is not reachable).
The page and its MathJax configuration are the built ones; only where the MathJax files come
from changes.

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
MATHJAX_MARK = "/mathjax@3/"  # the CDN URL's part before the package path (es5/...)

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


def find_mathjax(arg: str | None, html: Path, cache: Path) -> Path | None:
    """A local MathJax 3 package folder (holding es5/), or None to let the browser use the CDN."""
    if arg:
        path = Path(arg)
        for candidate in (path, path / "package", path.parent):
            if (candidate / "es5" / "tex-mml-chtml.js").exists():
                return candidate
        raise FileNotFoundError(f"--mathjax {arg}: expected a folder holding es5/tex-mml-chtml.js")
    if (cache / "package" / "es5" / "tex-mml-chtml.js").exists():
        return cache / "package"
    cdn = mathjax_url(html)
    if cdn is None or reachable(cdn):
        return None
    npm = shutil.which("npm")
    if npm is None:
        print(
            f"warning: {cdn} is not reachable and npm is not installed: math may not render; "
            f"pass --mathjax DIR (the mathjax@3 npm package)",
            file=sys.stderr,
        )
        return None
    print(f"MathJax CDN not reachable; fetching the mathjax@3 npm package into {cache} (once)")
    cache.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [npm, "pack", "mathjax@3", "--pack-destination", str(cache)], capture_output=True, text=True, timeout=300
    )
    tgz = sorted(cache.glob("mathjax-*.tgz"))
    if out.returncode != 0 or not tgz:
        raise RuntimeError(f"`npm pack mathjax@3` failed:\n{out.stderr[-2000:]}")
    with tarfile.open(tgz[-1]) as tar:
        try:
            tar.extractall(cache, filter="data")
        except TypeError:  # Python < 3.10.12 / 3.11.4: no extraction filters
            tar.extractall(cache)
    return cache / "package"


def mathjax_url(html: Path) -> str | None:
    """The MathJax script URL the built pages load (from any page that has math)."""
    for page in html.rglob("*.html"):
        text = page.read_text(errors="replace")
        start = text.find(MATHJAX_MARK)
        if start >= 0:
            begin = text.rfind('"', 0, start) + 1
            return text[begin : text.find('"', start)]
    return None


# ----------------------------------------------------------------------------
# the checks


async def check_pages(args, base: str, pages: list[str], mathjax_dir: Path | None) -> tuple[list[str], list[str]]:
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

        async def answer_from_local_mathjax(p):
            rel = p["request"]["url"].split(MATHJAX_MARK, 1)[1].split("?")[0]
            file = mathjax_dir / rel
            if not file.is_file():
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
        if mathjax_dir is not None:
            await cdp.send("Fetch.enable", patterns=[{"urlPattern": f"*{MATHJAX_MARK}*"}])
            cdp.on("Fetch.requestPaused", lambda p: asyncio.ensure_future(answer_from_local_mathjax(p)))

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
            failures += page_failures(page, url, status.get(url), r, bad_requests, base)
            broken = sum(1 for i in r["images"] if i["width"] == 0)
            lines.append(
                f"{page:<24} {time.perf_counter() - t0:5.1f} s  images {len(r['images']) - broken}/"
                f"{len(r['images'])} loaded ({sum(i['output'] for i in r['images'])} figures)  "
                f"math {r['mathRendered']}/{r['math']} rendered ({r['mathjax']})"
                + (f"  JS errors: {exceptions[:3]}" if exceptions else "")
            )
            await screenshots(cdp, page, pages, Path(args.screenshots), lines)
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
        if bad.startswith(base):
            out.append(f"{page}: request failed: {bad}")
    return out


async def screenshots(cdp: CDP, page: str, pages: list[str], folder: Path, lines: list[str]) -> None:
    """The landing page (top) and the first chapter (top, and its first displayed equation)."""
    chapters = [p for p in pages if Path(p).name[:2].isdigit()]
    shots = []
    if page == pages[0]:
        shots.append((Path(page).name, None))
    if chapters and page == chapters[0]:
        shots += [(Path(page).name, None), (Path(page).name + "_math", "div.math")]
    folder.mkdir(parents=True, exist_ok=True)
    for name, selector in shots:
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
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per page and per wait (default 30)")
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
        mathjax_dir = find_mathjax(args.mathjax, html, ROOT / "_build" / "mathjax")
    except (FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    pages = toc_pages(html)
    server, base = serve(html)
    print(
        f"checking {len(pages)} pages of {html} in {args.chromium}"
        + (f" (MathJax served from {mathjax_dir})" if mathjax_dir else "")
    )
    try:
        failures, lines = asyncio.run(check_pages(args, base, pages, mathjax_dir))
    except (RuntimeError, ConnectionError, asyncio.TimeoutError) as err:
        print(f"error: the browser check could not run: {err!r}", file=sys.stderr)
        return 2
    finally:
        server.shutdown()
    print("\n".join(lines))
    if failures:
        print(f"\nFAILED: {len(failures)} problem(s):\n" + "\n".join(f"  - {f}" for f in failures), file=sys.stderr)
        return 1
    print(f"site check passed: {len(pages)} pages loaded, their images loaded, their math rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
