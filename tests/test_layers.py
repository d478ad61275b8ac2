"""The package's shape: imports go one way, down the data flow, and never in a circle.

Every ``import faceclust...`` in the package, at module level or inside a function, is read
with ``ast``; each module belongs to a layer (its top-level folder, or a bottom-layer module),
and a module may import its own folder or a lower layer only. docs/architecture.md says the
same in words.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "faceclust"

# Lower number, lower layer. The bottom layer's modules import nothing of faceclust above it.
LAYERS = {
    "errors": 0, "records": 0, "text": 0,
    "registry": 0.5, "files": 0.5, "locks": 0.5, "memory": 0.5, "cpu": 0.5,
    "models": 1, "photos": 1,
    "faces": 2, "catalog": 2,
    "people": 3, "evaluate": 3, "scan": 3,
    "find": 4,
    "output": 5, "train": 5,
    "job": 6, "serve": 6,
    "cli": 7, "__main__": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported faceclust module, line, at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "faceclust":
            if node.module == "faceclust":  # from faceclust import x: x is a module or a name of __init__
                found += [(f"faceclust.{a.name}", node.lineno, id(node) in top_level) for a in node.names
                          if (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").exists()]
                continue
            found.append((node.module, node.lineno, id(node) in top_level))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top_level) for a in node.names
                      if a.name.split(".")[0] == "faceclust"]
    return found


def layer_of(module: str) -> tuple[str, int | None]:
    parts = module.split(".")
    if len(parts) == 1:
        return "faceclust", 0  # the package's __init__: version and docstring only
    return parts[1], LAYERS.get(parts[1])


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = sorted({layer_of(module_name(p))[0] for p in MODULES if layer_of(module_name(p))[1] is None})
    assert not missing, f"add these to LAYERS (and to docs/architecture.md): {missing}"


def test_imports_go_down_the_flow():
    wrong = []
    for path in MODULES:
        here, rank = layer_of(module_name(path))
        for imported, line, _ in imports(path):
            there, other = layer_of(imported)
            if there != here and other is not None and rank is not None and other >= rank:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}, layer {rank}) imports "
                             f"{imported} ({there}, layer {other})")
    assert not wrong, "imports up or across the flow:\n" + "\n".join(wrong)


def test_no_import_cycles_at_module_level():
    graph = defaultdict(set)
    names = {module_name(p) for p in MODULES}
    for path in MODULES:
        for imported, _, top in imports(path):
            if top and imported in names and imported != module_name(path):
                graph[module_name(path)].add(imported)
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    assert not cycles, "module-level import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400, "split it along a seam (docs/architecture.md)"


def test_the_checks_catch_a_wrong_import(tmp_path, monkeypatch):
    """The walk must see lazy imports inside functions, and call an upward one wrong."""
    bad = tmp_path / "faceclust" / "photos" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from faceclust.catalog import Catalog\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "faceclust")
    found = imports(bad)
    assert found == [("faceclust.catalog", 2, False)]
    assert layer_of(module_name(bad))[1] < layer_of(found[0][0])[1]


def test_the_extension_points_are_reexported_lazily():
    import subprocess
    import sys

    code = ("import sys, faceclust; assert 'numpy' not in sys.modules; "
            "from faceclust import detectors, embedders, clusterers; "
            "from faceclust.faces.detect import detectors as d; assert detectors is d; "
            "print(sorted(detectors.names()), sorted(clusterers.names()), sorted(embedders.names()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'mmod'" in out and "'agglomerative'" in out and "'dlib-resnet'" in out
