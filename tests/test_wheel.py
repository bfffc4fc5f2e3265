"""The built wheel holds everything the chapters load, and declares every package they import.

A Colab user installs the library (``pip install git+...``) and opens one notebook in an empty
folder: no repository around it. So the chapters may only use what the wheel ships (modules and
the precomputed results read by ``vicreg_edu.results.load_results``) and packages that
``pip install`` brings (the wheel's ``Requires-Dist``, extras excluded).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.py"))
# import name -> distribution name, where they differ
DISTRIBUTION = {"PIL": "pillow", "IPython": "ipywidgets", "sklearn": "scikit-learn", "yaml": "pyyaml"}


def chapter_imports() -> tuple[set[str], set[str], set[str]]:
    """(third-party top-level imports, vicreg_edu modules, load_results names) of all chapters."""
    third, modules, results = set(), set(), set()
    for path in CHAPTERS:
        tree = ast.parse(path.read_text())
        optional = set()  # load_results calls inside `try: ... except FileNotFoundError:` (the chapter falls back)
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                ast.unparse(h.type or ast.Name("")).endswith("FileNotFoundError") for h in node.handlers
            ):
                optional |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                top = name.split(".")[0]
                if top == "vicreg_edu":
                    modules.add(name)
                elif top not in sys.stdlib_module_names:
                    third.add(top)
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", "")) == "load_results"
            ):
                if node.args and isinstance(node.args[0], ast.Constant) and id(node) not in optional:
                    results.add(node.args[0].value)
    return third, modules, results


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    # build from a copy, so the shared source tree gets no build/ or egg-info folder
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "vicreg_edu", src / "vicreg_edu", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("vicreg_edu-*.whl")
    return zipfile.ZipFile(whl)


@pytest.mark.slow
def test_wheel_holds_every_module_and_results_file(wheel):
    names = set(wheel.namelist())
    for path in (ROOT / "vicreg_edu").rglob("*"):
        if path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
            rel = path.relative_to(ROOT).as_posix()
            assert rel in names, f"{rel} is missing from the wheel (package-data in pyproject.toml?)"


@pytest.mark.slow
def test_wheel_has_what_the_chapters_load(wheel):
    names = set(wheel.namelist())
    third, modules, results = chapter_imports()
    for mod in modules:  # vicreg_edu.x or vicreg_edu.x.name (a name imported from a module)
        parts = mod.split(".")
        candidates = {
            "/".join(parts[:i]) + suffix for i in range(1, len(parts) + 1) for suffix in (".py", "/__init__.py")
        }
        assert candidates & names, f"a chapter imports {mod}, which the wheel does not contain"
    for name in results:
        assert f"vicreg_edu/results/{name}.json" in names, f"a chapter loads results {name!r}, not in the wheel"
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = {
        re.split(r"[ ;<>=!~\[]", line.split(":", 1)[1].strip())[0].lower()
        for line in wheel.read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    }
    for top in third:
        dist = DISTRIBUTION.get(top, top).lower()
        assert dist in requires, (
            f"chapters import {top!r} but the package does not declare {dist!r} "
            f"in [project] dependencies (declared: {sorted(requires)})"
        )


def test_no_chapter_reads_repository_files():
    """Chapters load shipped data through the package, never from paths of a clone."""
    clone = re.compile(r"""["']git["'],\s*["']clone["']|^!git clone""", re.M)
    for path in CHAPTERS:
        text = path.read_text()
        for needle in ("book/data/", "scripts/ablation_grid"):
            assert needle not in text, f"{path.name} uses {needle!r}: ship it in the package instead"
        assert not clone.search(text), f"{path.name} clones the repository: ship what it needs in the package"
