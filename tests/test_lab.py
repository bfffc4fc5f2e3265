"""`make lab`: JupyterLab from the project's .venv serves book/, with the widget and jupytext
integrations a reader needs (issue: readers in JupyterLab).

Starts `python -m jupyterlab` (the interpreter running the tests, i.e. .venv's) exactly as the
Makefile's `lab` target does, on a free port, without a browser, with its config, runtime and
settings folders in a temporary directory; fetches its page and REST API; stops it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
pytest.importorskip("jupyterlab", reason="JupyterLab is not installed: `make lab` (or pip install -e '.[lab]')")

# The extensions a reader needs: widgets render as controls, and "Open With > Notebook" for a .py.
NEEDED_LAB_EXTENSIONS = ["@jupyter-widgets/jupyterlab-manager", "jupyterlab-jupytext"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on book/, driven over HTTP with its token."""

    def __init__(self, tmp: Path):
        self.port, self.token = free_port(), secrets.token_hex(16)
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(tmp / "config"),  # not ~/.jupyter; .venv/etc/jupyter still applies
            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        }
        env.pop("VICREG_EDU_FAST", None)
        self.log = open(tmp / "lab.log", "w+")
        # The same command as the Makefile's `lab` target, plus a port, a token and no browser.
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--ServerApp.root_dir=book",
                "--no-browser",
                f"--port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                "--ServerApp.ip=127.0.0.1",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}{path}{sep}token={self.token}"

    def get(self, path: str, timeout: float = 30):
        with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
            body = r.read().decode()
            return r.status, (json.loads(body) if "json" in r.headers.get("Content-Type", "") else body)

    def post(self, path: str, payload: dict | None = None, method: str = "POST"):
        data = json.dumps(payload or {}).encode()
        req = urllib.request.Request(
            self.url(path), data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read().decode()
            return r.status, (json.loads(body) if body else None)

    def wait_until_up(self, timeout: float = 120):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.proc.returncode}:\n{self.read_log()}")
            try:
                return self.get("/api/status", timeout=5)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.read_log()}")

    def read_log(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def stop(self):
        """The server's own shutdown endpoint, then (if it is still up) a signal to this one process."""
        if self.proc.poll() is None:
            try:
                self.post("/api/shutdown")
            except (urllib.error.URLError, ConnectionError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = Lab(tmp_path_factory.mktemp("lab"))
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()
    assert server.proc.returncode is not None, "JupyterLab did not stop"


@pytest.mark.slow
def test_lab_page_has_widget_and_jupytext_extensions(lab):
    status, page = lab.get("/lab")
    assert status == 200 and "<title>JupyterLab</title>" in page, page[:500]
    # The page embeds its configuration, including the prebuilt ("federated") extensions it loads.
    config = json.loads(re.search(r'<script id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S).group(1))
    loaded = [ext["name"] for ext in config.get("federated_extensions", [])]
    missing = [name for name in NEEDED_LAB_EXTENSIONS if name not in loaded]
    assert not missing, f"JupyterLab lacks the extensions {missing} (loaded: {loaded}); `make lab` installs them"


@pytest.mark.slow
def test_lab_serves_book(lab):
    _, listing = lab.get("/api/contents/")
    served = {item["name"] for item in listing["content"]}
    chapters = sorted(p.name for p in BOOK.glob("[0-9][0-9]_*.ipynb"))
    assert chapters and set(chapters) <= served, f"root is not book/: served {sorted(served)[:12]}"
    assert {c.replace(".ipynb", ".py") for c in chapters} <= served, "the paired .py files are not listed"


@pytest.mark.slow
def test_paired_py_opens_as_notebook(lab):
    """jupytext's contents manager: GET a chapter's .py as a notebook, same cells as its .ipynb."""
    import nbformat

    name = "07_ablations"
    _, model = lab.get(f"/api/contents/{name}.py?type=notebook&content=1")
    assert model["type"] == "notebook", f"{name}.py came back as {model['type']!r}: jupytext's contents manager is off"
    cells = model["content"]["cells"]
    stored = nbformat.read(BOOK / f"{name}.ipynb", as_version=4).cells
    assert [c["source"] for c in cells] == [c.source for c in stored]
    # Opened through the pair, the outputs come from the .ipynb (the stored figures).
    assert any(o.get("data", {}).get("image/png") for c in cells for o in c.get("outputs", [])), (
        "the .py opened without the .ipynb's outputs: the pair is not seen (book/jupytext.toml)"
    )


def run_in_kernel(lab: Lab, kernel_id: str, code: str, timeout: float = 120) -> str:
    """Execute `code` over the kernel's websocket, as the browser does; returns its stdout."""
    import asyncio
    import uuid

    from tornado.websocket import websocket_connect

    async def go():
        ws = await websocket_connect(lab.url(f"/api/kernels/{kernel_id}/channels").replace("http", "ws", 1))
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": uuid.uuid4().hex,
            "date": "",
            "version": "5.3",
        }
        await ws.write_message(
            json.dumps(
                {
                    "header": header,
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                    },
                }
            )
        )
        out = []
        while True:
            msg = json.loads(await asyncio.wait_for(ws.read_message(), timeout))
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                ws.close()
                return "".join(out)

    return asyncio.run(go())


@pytest.mark.slow
def test_kernel_runs_the_venv_python_with_the_library(lab):
    """A notebook's kernel is .venv's interpreter, and the library and ipywidgets import in it."""
    _, specs = lab.get("/api/kernelspecs")
    assert "python3" in specs["kernelspecs"], specs
    _, kernel = lab.post("/api/kernels", {"name": "python3"})
    try:
        out = run_in_kernel(lab, kernel["id"], "import sys, vicreg_edu, ipywidgets; print(sys.prefix)")
        assert Path(out.strip()).resolve() == Path(sys.prefix).resolve(), (out, sys.prefix)
    finally:
        lab.post(f"/api/kernels/{kernel['id']}", method="DELETE")
