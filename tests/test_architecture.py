"""The package's imports form a tree: no module imports one that (directly or through others)
imports it back, lazy imports inside functions included; ``config`` needs none of the heavy modules."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "vicreg_edu"


def _imports(path: Path) -> set[str]:
    """Names of the package modules that ``path`` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vicreg_edu."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("vicreg_edu.")}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PKG.glob("*.py")} - {"__init__"}
    return {m: _imports(PKG / f"{m}.py") & modules - {m} for m in modules}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if not state.get(nxt) and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if not state.get(start) and (cycle := visit(start, [start])):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_imports_form_a_tree():
    graph = import_graph()
    assert {"cli", "trainer", "slurm", "config"} <= set(graph)  # the graph is read, not empty
    assert "cli" in graph["__main__"] and "trainer" in graph["slurm"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_config_is_light():
    """Building a Config needs no model, data or augmentation module (nor torchvision)."""

    def below(m, seen=None):
        seen = set() if seen is None else seen
        for d in import_graph()[m] - seen:
            seen.add(d)
            below(d, seen)
        return seen

    assert below("config") <= {"views", "errors"}, below("config")
    assert "cli" not in below("slurm") and "cli" not in below("trainer")
