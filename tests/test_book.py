"""Checks on the book's frame and chapters (the rules of book/CHAPTERS.md).

The chapters themselves are executed by nbval in the same test command
(`pytest --nbval-lax ... tests book`); this file checks what nbval does not:
pairs in sync, table of contents, badge and install cell, stored figures, short cells,
a hidden-answer exercise whose solution cells hide code and output on the site, in JupyterLab
and in Colab, no MyST role or directive in markdown (it shows raw outside the
site), stored widget state for stored widget views, chapter 7's stored explorer states, a warning-free site build,
and that build opened in headless Chromium by scripts/check_site.py with external hosts blocked (skipped
where Chromium or Playwright is not installed), including a run on a broken copy that must fail.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTER_GLOB = "[0-9][0-9]_*"
MAX_CODE_CELL_LINES = 40  # non-blank lines; "no 200-line cells" (book/CHAPTERS.md)
REPO_URL = "https://github.com/vicreg-edu/vicreg-edu"
COLAB_URL = "https://colab.research.google.com/github/vicreg-edu/vicreg-edu/blob/main/book/{name}.ipynb"


def chapter_names() -> list[str]:
    """Stems of every chapter file (``00_introduction``, ...), from either half of a pair."""
    files = list(BOOK.glob(CHAPTER_GLOB + ".py")) + list(BOOK.glob(CHAPTER_GLOB + ".ipynb"))
    return sorted({f.stem for f in files})


CHAPTERS = chapter_names()


def read_ipynb(name: str) -> nbformat.NotebookNode:
    return nbformat.read(BOOK / f"{name}.ipynb", as_version=4)


def cell_summary(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """(type, source, tags) per cell: what a pair must agree on (outputs and ids may differ)."""
    return [(c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


def toc_files() -> list[str]:
    """Every `file:` entry of _toc.yml (root included), in order, without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [str(Path(f).with_suffix("")) if Path(f).suffix in {".md", ".ipynb"} else f for f in found]


def test_there_are_chapters():
    assert "00_introduction" in CHAPTERS, f"book/00_introduction.{{py,ipynb}} not found; chapters: {CHAPTERS}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_pair_exists(name):
    missing = [s for s in (".py", ".ipynb") if not (BOOK / f"{name}{s}").exists()]
    assert not missing, (
        f"book/{name} has no {' or '.join(missing)} twin; create it with "
        f"`.venv/bin/jupytext --sync book/{name}{'.py' if '.ipynb' in missing else '.ipynb'}`"
    )


@pytest.mark.parametrize("name", CHAPTERS)
def test_pair_in_sync(name):
    py, ipynb = BOOK / f"{name}.py", BOOK / f"{name}.ipynb"
    if not (py.exists() and ipynb.exists()):
        pytest.skip("pair incomplete (test_pair_exists fails)")
    from_py = cell_summary(jupytext.read(py))
    from_nb = cell_summary(read_ipynb(name))
    fix = (
        f"book/{name}.py and book/{name}.ipynb are out of sync: run "
        f"`.venv/bin/jupytext --sync book/{name}.ipynb` (the newer file wins), "
        f"then re-execute the notebook if code changed (see book/CHAPTERS.md)"
    )
    assert len(from_py) == len(from_nb), f"{fix}; cell counts {len(from_py)} (.py) vs {len(from_nb)} (.ipynb)"
    for i, (a, b) in enumerate(zip(from_py, from_nb)):
        assert a == b, f"{fix}; first difference at cell {i}:\n.py:    {a!r:.300}\n.ipynb: {b!r:.300}"


def test_toc_entries_exist():
    missing = [f for f in toc_files() if not any((ROOT / f"{f}{s}").exists() for s in (".md", ".ipynb"))]
    assert not missing, f"_toc.yml lists files that do not exist (as .md or .ipynb): {missing}"


def test_toc_never_lists_the_py_half():
    listed_py = [f for f in toc_files() if f.endswith(".py")]
    assert not listed_py, f"_toc.yml must list chapters without suffix (built from the .ipynb): {listed_py}"


def test_every_chapter_is_in_the_toc_in_order():
    listed = [Path(f).name for f in toc_files() if f.startswith("book/")]
    chapters_listed = [f for f in listed if re.match(r"\d\d_", f)]
    absent = [n for n in CHAPTERS if n not in chapters_listed]
    assert not absent, f"chapters missing from _toc.yml (add `  - file: book/<name>`): {absent}"
    assert chapters_listed == sorted(chapters_listed), f"_toc.yml chapters out of order: {chapters_listed}"
    assert listed[-2:] == ["running", "references"], f"book/running and book/references must come last: {listed}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_opens_with_title_badge_and_install_cell(name):
    if not (BOOK / f"{name}.ipynb").exists():
        pytest.skip("no .ipynb (test_pair_exists fails)")
    cells = read_ipynb(name).cells
    first = cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), (
        f"book/{name}: the first cell must be markdown starting with the title `# N. Title`"
    )
    assert "colab-badge.svg" in first.source and COLAB_URL.format(name=name) in first.source, (
        f"book/{name}: the first cell must hold the Colab badge linking to {COLAB_URL.format(name=name)}"
    )
    code = next(c for c in cells if c.cell_type == "code")
    for needle in ("import vicreg_edu", "except ImportError", "pip", "install", f"git+{REPO_URL}"):
        assert needle in code.source, (
            f"book/{name}: the first code cell must install the library when missing "
            f"(see book/CHAPTERS.md); it lacks {needle!r}:\n{code.source}"
        )


@pytest.mark.parametrize("name", CHAPTERS)
def test_stored_outputs_have_figures_and_no_errors(name):
    if not (BOOK / f"{name}.ipynb").exists():
        pytest.skip("no .ipynb (test_pair_exists fails)")
    code_cells = [c for c in read_ipynb(name).cells if c.cell_type == "code"]
    outputs = [o for c in code_cells for o in c.get("outputs", [])]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    hint = f"execute it: `.venv/bin/jupyter execute --inplace book/{name}.ipynb`"
    assert pngs, f"book/{name}.ipynb stores no figure (image/png output), so the site shows none; {hint}"
    assert not errors, f"book/{name}.ipynb stores an error output ({errors[0].get('ename')}); {hint}"
    unexecuted = [i for i, c in enumerate(code_cells) if c.get("execution_count") is None]
    assert not unexecuted, f"book/{name}.ipynb has unexecuted code cells (code cells #{unexecuted}); {hint}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_code_cells_are_short(name):
    if not (BOOK / f"{name}.py").exists():
        pytest.skip("no .py (test_pair_exists fails)")
    for i, cell in enumerate(jupytext.read(BOOK / f"{name}.py").cells):
        if cell.cell_type != "code":
            continue
        n = sum(1 for line in cell.source.splitlines() if line.strip())
        assert n <= MAX_CODE_CELL_LINES, (
            f"book/{name}: cell {i} has {n} non-blank lines (at most {MAX_CODE_CELL_LINES}): "
            f"split it or move the code into vicreg_edu.\n{cell.source[:200]}"
        )


@pytest.mark.parametrize("name", CHAPTERS)
def test_has_exercise_with_hidden_assert(name):
    if not (BOOK / f"{name}.py").exists():
        pytest.skip("no .py (test_pair_exists fails)")
    answers = [
        c
        for c in jupytext.read(BOOK / f"{name}.py").cells
        if c.cell_type == "code" and SOLUTION_TAG in c.metadata.get("tags", []) and "assert" in c.source
    ]
    assert answers, (
        f"book/{name}: no exercise answer, i.e. a code cell tagged {SOLUTION_TAG!r} "
        f"(hidden as test_solutions_are_hidden says) that checks the answer with an assert"
    )


# How the book marks and hides an exercise's solution (book/intro.md tells the reader how to open it).
# A code cell tagged `solution` must be hidden, input and output behind one toggle, everywhere:
# - the site (myst-nb): the tag `hide-cell` (one <details> over code and output; `hide-input` and
#   `hide-output` would make two toggles, and `hide-input` alone leaves the output showing), its
#   toggle labelled by the cell's `mystnb.code_prompt_show`;
# - JupyterLab / Notebook 7: `jupyter.source_hidden` hides the code (the collapsed cell then shows
#   its first line, so that line must be the neutral title below, never the answer), and
#   `collapsed` hides the outputs (Lab reads only `collapsed` for outputs, see
#   jupyterlab/jupyterlab packages/cells/src/widget.ts loadCollapseState); the nbformat key
#   `jupyter.outputs_hidden` is set too;
# - Colab: `cellView: "form"` shows only the `# @title` line and a "Show code" button.
# A markdown cell tagged `solution` (a discussion that gives the answer away) is folded with a
# <details> element, which the site, JupyterLab, Colab and GitHub all render closed.
SOLUTION_TAG = "solution"
SOLUTION_TITLE = "# @title Solution"
SOLUTION_PROMPTS = {"code_prompt_show": "Show solution", "code_prompt_hide": "Hide solution"}
# What a solution looks like by its content, so that an untagged one fails too.
LOOKS_LIKE_SOLUTION_CODE = re.compile(
    r"^\s*#\s*(@title\s+)?(answer|solution)\b|worked solution|print\(f?[\"']solution", re.I | re.M
)
LOOKS_LIKE_SOLUTION_MARKDOWN = re.compile(r"solution above", re.I)


def solution_problems(cell) -> list[str]:
    """Why a cell that is (or looks like) a solution would show its answer; empty when hidden."""
    meta, tags = cell.get("metadata", {}), cell.get("metadata", {}).get("tags", [])
    looks = (LOOKS_LIKE_SOLUTION_CODE if cell.cell_type == "code" else LOOKS_LIKE_SOLUTION_MARKDOWN).search(cell.source)
    if SOLUTION_TAG not in tags:
        return [f"looks like a solution ({looks.group(0)!r}) but lacks the tag {SOLUTION_TAG!r}"] if looks else []
    if cell.cell_type == "markdown":
        src = cell.source.strip()
        ok = src.startswith("<details>") and src.endswith("</details>") and "<summary>" in src.split("\n\n")[0]
        return (
            []
            if ok
            else [
                "a markdown solution must be folded: <details>, <summary>...</summary>, "
                "a blank line, the text, </details>"
            ]
        )
    problems = []
    if "hide-cell" not in tags:
        problems.append("lacks the tag 'hide-cell' (the site's one toggle over code and output)")
    if {"hide-input", "hide-output"} & set(tags):
        problems.append("has hide-input/hide-output besides hide-cell (two toggles, or the output showing)")
    jupyter = meta.get("jupyter", {})
    if jupyter.get("source_hidden") is not True:
        problems.append("lacks jupyter.source_hidden = true (JupyterLab shows the code)")
    if jupyter.get("outputs_hidden") is not True:
        problems.append("lacks jupyter.outputs_hidden = true")
    if meta.get("collapsed") is not True:
        problems.append("lacks collapsed = true (JupyterLab shows the output)")
    if meta.get("cellView") != "form":
        problems.append('lacks cellView = "form" (Colab shows the code)')
    if {k: meta.get("mystnb", {}).get(k) for k in SOLUTION_PROMPTS} != SOLUTION_PROMPTS:
        problems.append(f"lacks mystnb = {SOLUTION_PROMPTS} (the site's toggle would not say 'Show solution')")
    first = cell.source.split("\n", 1)[0]
    if not first.startswith(SOLUTION_TITLE) or "answer:" in first.lower():
        problems.append(
            f"its first line (what collapsed JupyterLab and Colab show) must be {SOLUTION_TITLE!r} "
            f"and no answer, not {first[:80]!r}"
        )
    return problems


@pytest.mark.parametrize("name", CHAPTERS)
def test_solutions_are_hidden(name):
    """Every solution cell hides its code and its output on the site, in JupyterLab and in Colab,
    in the .ipynb and in the .py (where jupytext.toml must keep these metadata)."""
    if not ((BOOK / f"{name}.py").exists() and (BOOK / f"{name}.ipynb").exists()):
        pytest.skip("pair incomplete (test_pair_exists fails)")
    for half, nb in ((".ipynb", read_ipynb(name)), (".py", jupytext.read(BOOK / f"{name}.py"))):
        found = [
            f"cell {i} ({c.source.splitlines()[0][:60] if c.source else ''!r}): {p}"
            for i, c in enumerate(nb.cells)
            for p in solution_problems(c)
        ]
        assert not found, (
            f"book/{name}{half}: solution cells that show their answer:\n  "
            + "\n  ".join(found)
            + f'\nA solution code cell starts with `# %% cellView="form" collapsed=true jupyter={{"outputs_hidden": '
            f'true, "source_hidden": true}} mystnb={{...Show solution...}} tags=["solution", "hide-cell"]` and '
            f"its first line is `{SOLUTION_TITLE} ...`; then `.venv/bin/jupytext --sync book/{name}.ipynb`"
        )
        assert any(SOLUTION_TAG in c.metadata.get("tags", []) for c in nb.cells), (
            f"book/{name}{half}: no cell tagged {SOLUTION_TAG!r}"
        )


def test_solution_check_catches_visible_solutions():
    """The check itself: an untagged '# Answer' cell, a hide-input-only solution, a solution without
    Lab/Colab metadata and an unfolded markdown solution all fail; a hidden one passes."""
    hidden_meta = {
        "tags": [SOLUTION_TAG, "hide-cell"],
        "jupyter": {"source_hidden": True, "outputs_hidden": True},
        "collapsed": True,
        "cellView": "form",
        "mystnb": dict(SOLUTION_PROMPTS),
    }
    good = nbformat.v4.new_code_cell(
        f"{SOLUTION_TITLE} (run it)\n# Answer: 42\nassert 6 * 7 == 42", metadata=hidden_meta
    )
    assert solution_problems(good) == []
    bad = [
        nbformat.v4.new_code_cell("# Answer: 42\nassert 6 * 7 == 42"),
        nbformat.v4.new_code_cell('x = 1\nprint(f"Solution: {x}")'),
        nbformat.v4.new_code_cell(good.source, metadata={"tags": [SOLUTION_TAG, "hide-input"]}),
        nbformat.v4.new_code_cell(
            good.source, metadata={**hidden_meta, "tags": [SOLUTION_TAG, "hide-cell", "hide-input"]}
        ),
        nbformat.v4.new_code_cell(good.source, metadata={k: v for k, v in hidden_meta.items() if k != "collapsed"}),
        nbformat.v4.new_code_cell(good.source, metadata={k: v for k, v in hidden_meta.items() if k != "cellView"}),
        nbformat.v4.new_code_cell("# Answer: 42\nassert 6 * 7 == 42", metadata=hidden_meta),
        nbformat.v4.new_markdown_cell("The worked solution above shows why.", metadata={"tags": [SOLUTION_TAG]}),
        nbformat.v4.new_markdown_cell("The solution above prints 42."),
    ]
    for cell in bad:
        assert solution_problems(cell), cell
    folded = "<details>\n<summary>After the solution</summary>\n\nIt is 42.\n\n</details>"
    assert solution_problems(nbformat.v4.new_markdown_cell(folded, metadata={"tags": [SOLUTION_TAG]})) == []


@pytest.mark.parametrize("name", CHAPTERS)
def test_sizes_come_from_config_fast(name):
    if not (BOOK / f"{name}.py").exists():
        pytest.skip("no .py (test_pair_exists fails)")
    source = (BOOK / f"{name}.py").read_text()
    assert "VICREG_EDU_FAST" not in source, (
        f"book/{name}.py reads VICREG_EDU_FAST itself; use `from vicreg_edu.config import FAST`"
    )


# A MyST role ({cite}`key`, {ref}`x`, {eq}`y`) or directive (```{note}, :::{note}) renders only on
# the built site; JupyterLab, Colab and GitHub show it raw. The (?<![\w\\]) skips LaTeX such as
# \mathrm{std}, where a word character or backslash precedes the brace.
MYST_ROLE = re.compile(r"(?<![\w\\])\{[a-z][a-z0-9_:+-]*\}`")
MYST_DIRECTIVE = re.compile(r"^\s*(?:`{3,}|~{3,}|:{3,})\s*\{[a-z][a-z0-9_:+-]*\}", re.MULTILINE)


def test_myst_pattern_catches_roles_and_directives():
    """The check itself: it must fire on roles and directives, and not on math or links."""
    for raw in (
        "VICReg {cite}`bardes2022vicreg`.",
        "see {cite:t}`a,b`",
        "{ref}`sec`",
        "```{note}\nx\n```",
        ":::{admonition} Why\nx\n:::",
    ):
        assert MYST_ROLE.search(raw) or MYST_DIRECTIVE.search(raw), raw
    for fine in (
        "$\\mathrm{std}(z)$ and $x^{2}$",
        "([Bardes et al., 2022](https://arxiv.org/abs/2105.04906))",
        "```python\nx = {1: 2}\n```",
        "a dict `{k: v}` in code",
    ):
        assert not (MYST_ROLE.search(fine) or MYST_DIRECTIVE.search(fine)), fine


@pytest.mark.parametrize("name", CHAPTERS)
def test_markdown_has_no_myst_roles_or_directives(name):
    if not (BOOK / f"{name}.ipynb").exists():
        pytest.skip("no .ipynb (test_pair_exists fails)")
    found = []
    for i, cell in enumerate(read_ipynb(name).cells):
        if cell.cell_type == "markdown":
            found += [
                (i, cell.source[m.start() : m.end() + 30].split("\n")[0]) for m in MYST_ROLE.finditer(cell.source)
            ]
            found += [(i, m.group(0).strip()) for m in MYST_DIRECTIVE.finditer(cell.source)]
    assert not found, (
        f"book/{name}: MyST syntax in markdown cells (cell, text): {found[:8]}; it shows raw in "
        f'JupyterLab, Colab and GitHub. Cite with a markdown link (book/CHAPTERS.md, "Citations"): '
        f"`.venv/bin/python scripts/cite_to_links.py book/{name}.py`, then `jupytext --sync` the pair"
    )


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CHAPTERS_WITH_WIDGETS = ["07_ablations"]  # chapters whose stored page must show live controls


@pytest.mark.parametrize("name", CHAPTERS)
def test_stored_widget_views_have_their_state(name):
    """A stored widget view renders without a kernel (site, nbviewer, JupyterLab before running)
    only if the notebook's metadata holds the state of its model (scripts/execute_chapters.py)."""
    if not (BOOK / f"{name}.ipynb").exists():
        pytest.skip("no .ipynb (test_pair_exists fails)")
    nb = read_ipynb(name)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    views = [
        o["data"][WIDGET_VIEW]["model_id"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if WIDGET_VIEW in o.get("data", {})
    ]
    hint = (
        f"store it with `.venv/bin/python scripts/execute_chapters.py book/{name}.py` "
        '(book/CHAPTERS.md, "Storing the outputs")'
    )
    if name in CHAPTERS_WITH_WIDGETS:
        assert views, f"book/{name}.ipynb stores no widget view (the explorer's output); {hint}"
    missing = [v for v in views if v not in state]
    assert not missing, f"book/{name}.ipynb: widget views {missing} have no stored state in its metadata; {hint}"


def chapter_7_explorer_output() -> dict:
    """The data of chapter 7's last stored explorer output (the one under "Your turn")."""
    nb = read_ipynb("07_ablations")
    outputs = [
        o["data"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "vicreg-explorer" in "".join(o.get("data", {}).get("text/html", ""))
    ]
    assert outputs, (
        "chapter 7 stores no explorer output (text/html with .vicreg-explorer); re-execute it with "
        "scripts/execute_chapters.py"
    )
    return outputs[-1]


def test_chapter_7_explorer_stores_every_grid_run_as_a_state():
    """The stored explorer holds the figure of every grid point (seed 0) and of the live run, keyed by
    control indices: lambda 25 -> 50 and crop unticked are among them, and no stale text is stored."""
    from vicreg_edu.results import load_results

    data = chapter_7_explorer_output()
    html = "".join(data["text/html"])
    page = json.loads(re.search(r'class="vx-data">(.*?)</script>', html).group(1).replace("<\\/", "</"))
    keys = set(page["states"]) | {page["default"]}
    grid = load_results("ablation_grid")
    n_factors = len(grid["factors"])

    def key(point):
        idx = [grid["factors"][f].index(point[f]) for f in grid["factors"]]
        return ",".join(map(str, idx + [int(a in point["aug_off"]) for a in grid["aug_off"]]))

    points = [r["point"] for r in grid["runs"] if r["factor"] != "seed"]
    missing = [p for p in points if key(p) not in keys]
    assert not missing, f"chapter 7's explorer stores no figure for the grid points {missing}"
    live = {**grid["default_point"], "std_coeff": 0.0, "cov_coeff": 0.0}
    assert key(live) in keys, "the live run (mu = 0, nu = 0) trained in the chapter is not a stored state"
    assert len(keys) == len(points) + 1 and page["default"] == key(grid["default_point"])
    assert len(page["controls"]) == n_factors + len(grid["aug_off"])
    assert "1146" not in html and "live run" not in "".join(data["text/plain"])


def test_chapter_7_explorer_output_shows_a_figure_without_scripts():
    """Next to the HTML explorer the output stores the default point's figure as image/png (GitHub,
    nbviewer), the same PNG as the HTML's own <img> (what a page without JavaScript shows)."""
    data = chapter_7_explorer_output()
    assert "image/png" in data, "chapter 7's explorer output has no image/png fallback"
    png = base64.b64decode(data["image/png"])
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # the IHDR chunk
    assert png[:4] == b"\x89PNG" and width > 0 and height > 0, "the fallback is not a PNG of non-zero size"
    html = "".join(data["text/html"])
    img = re.search(r'<img class="vx-figure"[^>]*src="data:image/png;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(img) == png, "the image/png fallback is not the HTML explorer's default figure"


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """The whole site built once into a temporary folder, warnings as errors (about 10 s)."""
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    if jb is None:
        pytest.skip("jupyter-book is not installed (pip install -e '.[book]')")
    out = tmp_path_factory.mktemp("site")
    cmd = [jb, "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return out / "_build" / "html", proc


@pytest.mark.slow
def test_site_builds_without_warnings(built_site):
    html, proc = built_site
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert proc.returncode == 0 and not warnings, (
        f"`jupyter-book build . -W -n --keep-going` failed (rc={proc.returncode}):\n"
        + "\n".join(warnings or log.splitlines()[-30:])
    )
    for name in CHAPTERS:
        assert (html / "book" / f"{name}.html").exists(), f"no page for {name}"


def run_site_check(html: Path, shots: Path, *pages: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / "check_site.py"), "--html", str(html), "--screenshots", str(shots)]
    return subprocess.run(cmd + (["--pages", *pages] if pages else []), capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_site_in_headless_chromium(built_site, tmp_path):
    """scripts/check_site.py on the fresh build, every host but localhost blocked: pages load, math
    renders, figures load, each explorer's slider drag and checkbox click switch to the stored
    figure of the new point, no console error; page weights printed, screenshots kept.

    Skipped (not passed) when the check cannot run here: no Chromium or no Playwright (exit code 2).
    """
    html, proc = built_site
    if proc.returncode != 0:
        pytest.skip("the site did not build (test_site_builds_without_warnings fails)")
    check = run_site_check(html, tmp_path / "screenshots")
    report = check.stdout + check.stderr
    if check.returncode == 2:
        pytest.skip(f"the browser check cannot run here: {report.strip().splitlines()[-1]}")
    assert check.returncode == 0, f"scripts/check_site.py failed:\n{report}"
    assert re.search(r"ok\s+book/07_ablations\s+[0-9.]+ MB", report), report
    assert "07_ablations: explorer 0: sliders dragged" in report, report
    shots = {p.name for p in (tmp_path / "screenshots").glob("*.png")}
    assert {"07_ablations_explorer0_before.png", "07_ablations_explorer0_after.png"} <= shots, sorted(shots)


@pytest.mark.slow
def test_site_check_fails_on_a_frozen_explorer_and_on_cdn_math(built_site, tmp_path):
    """The check can fail: in a copy of the site, chapter 7's explorer script no longer swaps the
    figure, and chapter 0 loads MathJax from jsDelivr (blocked, as for an offline reader)."""
    html, proc = built_site
    if proc.returncode != 0:
        pytest.skip("the site did not build (test_site_builds_without_warnings fails)")
    broken = tmp_path / "html"
    shutil.copytree(html, broken)
    ch7 = broken / "book" / "07_ablations.html"
    text = ch7.read_text()
    assert 'img.setAttribute("src", src);' in text
    ch7.write_text(text.replace('img.setAttribute("src", src);', ""))
    intro = broken / "book" / "00_introduction.html"
    text = intro.read_text()
    assert 'src="../_static/mathjax/tex-mml-chtml.js' in text
    intro.write_text(
        text.replace(
            'src="../_static/mathjax/tex-mml-chtml.js',
            'src="https://cdn.jsdelivr.net/npm/mathjax@3.2.2/es5/tex-mml-chtml.js',
        )
    )
    check = run_site_check(broken, tmp_path / "shots", "book/00_introduction", "book/07_ablations")
    report = check.stdout + check.stderr
    if check.returncode == 2:
        pytest.skip(f"the browser check cannot run here: {report.strip().splitlines()[-1]}")
    assert check.returncode == 1, report
    assert "book/07_ablations explorer 0: dragging slider 0" in report and "the figure did not change" in report
    assert re.search(r"book/00_introduction: math typeset 0/[1-9]", report), report
    assert "book/00_introduction: blocked a request to https://cdn.jsdelivr.net/" in report, report


MATHJAX_SHA384 = "sha384-Wuix6BuhrWbjDBs24bXrjf4ZQ5aFeFWBuKkFekO2t8xFU0iNaLQfp2K6/1Nxveei"  # mathjax@3.2.2


def test_site_loads_mathjax_from_the_vendored_copy():
    """_config.yml loads MathJax from the site's own _static (no CDN), the vendored file is the npm
    package's es5/tex-mml-chtml.js of the pinned version (its published sha384), and no widget
    renderer is loaded."""
    import hashlib

    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert "://" not in config["mathjax_path"], config["mathjax_path"]
    vendored = BOOK / "_static" / "mathjax" / config["mathjax_path"].removeprefix("mathjax/")
    digest = "sha384-" + base64.b64encode(hashlib.sha384(vendored.read_bytes()).digest()).decode()
    assert digest == MATHJAX_SHA384, f"book/_static/mathjax is not mathjax@3.2.2's es5 build ({digest})"
    fonts = list((BOOK / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert len(fonts) >= 20, "MathJax's CHTML fonts are not vendored"
    assert config["nb_ipywidgets_js"] == {} and "https://" not in json.dumps(config.get("html_js_files", []))


@pytest.mark.slow
def test_site_hides_solutions(built_site):
    """On the built pages, every solution cell's code and output sit inside one closed <details>
    labelled "Show solution", and every folded markdown solution is a closed <details> too."""
    bs4 = pytest.importorskip("bs4")
    html, proc = built_site
    if proc.returncode != 0:
        pytest.skip("the site did not build (test_site_builds_without_warnings fails)")
    for name in CHAPTERS:
        page = bs4.BeautifulSoup((html / "book" / f"{name}.html").read_text(), "html.parser")
        cells = page.select(f"div.cell.tag_{SOLUTION_TAG}")
        assert cells, f"book/{name}.html: no solution cell (div.cell.tag_{SOLUTION_TAG})"
        for cell in cells:
            details = cell.find("details", recursive=False)
            assert details is not None and not details.has_attr("open"), (
                f"book/{name}.html: a solution not in a closed <details>"
            )
            assert details.summary and "Show solution" in details.summary.get_text(), (
                f"book/{name}.html: toggle not 'Show solution'"
            )
            shown = [d for d in cell.select(".cell_input, .cell_output") if details not in d.parents]
            assert not shown, f"book/{name}.html: solution code or output outside the toggle"
        for summary in page.find_all("summary", string=re.compile(r"^\s*After the solution")):
            assert not summary.parent.has_attr("open"), f"book/{name}.html: a folded solution paragraph is open"


# An exercise's answer must appear nowhere above it (issue 33, Deliver 7; CHAPTERS.md, "Exercise"). The answer
# is what a solution cell's stored output prints as its worked answer: its lines that say solution/answer (all
# its lines but "not answered yet" ones when none does). From them: numbers with >= 3 significant digits
# (integers: >= 5 digits, since 1024 or 8192 are sizes), powers and fractions (a^4, sigma**4, 25/8192) and call
# expressions (log(2n - 1), or any of >= 13 characters). Each is looked for in the source and the stored output of
# every earlier cell that is not itself a (hidden) solution; a number counts as shown when an earlier number with
# >= 3 significant digits equals it rounded to that number's precision (7.6241 shown as 7.624).
ANSWER_LINE = re.compile(r"solution|answer", re.I)
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\w)")
POWER_OR_FRACTION = re.compile(r"[A-Za-z0-9]+\^-?[A-Za-z0-9.]+|(?<![\d.])\d+/\d+(?![\d.])")
CALL = re.compile(r"[A-Za-z_][\w.]*\((?:[^()]|\([^()]*\))*\)")
MATH_CALL = re.compile(r"(?:log|exp|sqrt|max|min)\(")
# Chapters whose visible answers are other helpers' to fix (the lead's issue-33 pass); each names the cells.
VISIBLE_ANSWER_KNOWN: dict[str, str] = {}


def _no_thousands(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3})", "", text)


def _flat(text: str) -> str:
    """Text without whitespace, braces, $ and thousands separators, ** written ^ (a^{4} -> a^4)."""
    return re.sub(r"[\s{}$]", "", _no_thousands(text)).replace("**", "^")


def _distinctive(number: str) -> bool:
    if "." in number or "e" in number.lower():
        mantissa = re.split(r"[eE]", number.lstrip("+-"))[0]
        return len(mantissa.replace(".", "").strip("0")) >= 3
    return len(number.lstrip("+-")) >= 5


def _stored_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "text/plain" in out.get("data", {}) and "image/png" not in out["data"]:
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


def answer_tokens(cell) -> tuple[set[str], set[str]]:
    """(numbers, expressions) that a solution cell's stored output prints as its worked answer."""
    lines = [x for x in _stored_text(cell).splitlines() if x.strip() and "not answered yet" not in x.lower()]
    text = _no_thousands("\n".join([x for x in lines if ANSWER_LINE.search(x)] or lines))
    numbers = {n for n in NUMBER.findall(text) if _distinctive(n)}
    expressions = set(POWER_OR_FRACTION.findall(_flat(text.replace("\n", " ; "))))
    expressions |= {_flat(e) for e in CALL.findall(text) if len(_flat(e)) >= 13 or MATH_CALL.match(e)}
    return numbers, expressions


def _shown_as(answer: str, text: str) -> set[str]:
    value, shown = float(answer), set()
    for number in NUMBER.findall(_no_thousands(text)):
        if _distinctive(number) and float(number) != 0:
            if "e" in (number + answer).lower() or "." not in number:
                same = abs(float(number) - value) <= 5e-3 * abs(value)
            else:
                same = round(value, len(number.split(".")[1])) == float(number)
            if same:
                shown.add(number)
    return shown


def visible_answers(nb) -> list[tuple[int, int, str]]:
    """(solution cell, earlier cell, token) for each answer token of a solution cell that an earlier
    visible cell shows in its source or stored output (0-based .ipynb cell indices)."""
    hidden = [SOLUTION_TAG in c.get("metadata", {}).get("tags", []) for c in nb.cells]
    found = []
    for j, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not hidden[j]:
            continue
        numbers, expressions = answer_tokens(cell)
        for i, earlier in enumerate(nb.cells[:j]):
            if not hidden[i]:
                text = earlier.source + "\n" + _stored_text(earlier)
                found += [(j, i, f"{n} (as {s})") for n in sorted(numbers) for s in sorted(_shown_as(n, text))]
                found += [(j, i, e) for e in sorted(expressions) if e in _flat(text)]
    return found


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=VISIBLE_ANSWER_KNOWN[n], strict=False))
        if n in VISIBLE_ANSWER_KNOWN
        else n
        for n in CHAPTERS
    ],
)
def test_solution_answer_not_shown_above(name):
    """No solution's printed answer (number or expression) in an earlier visible cell; first, the check
    itself must fire on a synthetic leak (prose and output above) and pass a clean exercise."""
    solution_meta = {"tags": [SOLUTION_TAG, "hide-cell"]}
    answer = nbformat.v4.new_code_cell("# @title Solution\nassert True", metadata=solution_meta)
    answer.outputs = [nbformat.v4.new_output("stream", text="x: not answered yet\nSolution: log(2n - 1) = 7.6241\n")]
    leaky = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("a collapsed batch gives $\\log(2n-1)$"),
            nbformat.v4.new_code_cell("print(7.62)"),
            answer,
        ]
    )
    leaky.cells[1].outputs = [nbformat.v4.new_output("stream", text="7.624\n")]
    assert [(i, t) for _, i, t in visible_answers(leaky)] == [
        (0, "log(2n-1)"),
        (1, "7.6241 (as 7.62)"),
        (1, "7.6241 (as 7.624)"),
    ]
    clean = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Predict the loss at n = 1024."), answer])
    assert visible_answers(clean) == []
    if not (BOOK / f"{name}.ipynb").exists():
        pytest.skip("no .ipynb (test_pair_exists fails)")
    found = visible_answers(read_ipynb(name))
    assert not found, (
        f"book/{name}.ipynb: a solution's printed answer is visible above it (solution cell, earlier cell, what): "
        f"{found[:10]}; ask for a prediction or code whose answer the page does not show (CHAPTERS.md, 'Exercise')"
    )
