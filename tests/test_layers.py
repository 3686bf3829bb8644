"""Dependencies point one way (docs/architecture.md), checked on every import, those inside functions too;
and the map names every module of the territory.

Between the top-level folders: app.py and app_pages/ -> ui/ -> ingest/ -> index/.
Inside index/: the leaves (records, errors, config, terms) <- embed/ <- retrievers/
<- store/ <- search/ <- serve/, with evaluate, display, cli and __main__ on top.
A module may import its own layer or any layer below it, never one above, and
no chain of imports between modules of index/, ingest/ or ui/ may come back to
where it started.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.helpers import REPO

# package -> top-level packages of this project it must not import
FORBIDDEN = {
    "index": {"ingest", "ui", "app", "app_pages"},
    "ingest": {"ui", "app", "app_pages"},
    "ui": {"app", "app_pages"},
}

# The layers of index/, lowest first; a module of index/ not named here is a leaf only if listed in LEAVES.
LEAVES = {
    "index.records",
    "index.errors",
    "index.config",
    "index.terms",
    "index.counting",
    "index.gaps",
    "index.feedback",
    "index.rowfile",
    "index",
}
INDEX_LAYERS = ["leaves", "index.embed", "index.retrievers", "index.store", "index.search", "index.serve", "top"]
TOP = {"index.evaluate", "index.display", "index.cli", "index.__main__"}


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path = REPO) -> set[str]:
    """Every module of this project that `path` imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names.add(base)
            # `from index.search import sharded` imports the module index.search.sharded
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in {"index", "ingest", "ui"}}


def project_modules() -> dict[str, Path]:
    found = {}
    for package in ("index", "ingest", "ui"):
        for path in sorted((REPO / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported name refers to (`index.store.reader.load` -> `index.store.reader`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    edges = {}
    for name, path in modules.items():
        targets = {resolve(imported, modules) for imported in imports(path)}
        edges[name] = {t for t in targets if t and t != name}
    return edges


def layer(module: str) -> int:
    if module in LEAVES:
        return 0
    if module in TOP:
        return len(INDEX_LAYERS) - 1
    for i, prefix in enumerate(INDEX_LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return i
    raise AssertionError(f"{module} belongs to no layer of index/: add it to tests/test_layers.py")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_the_layers_below_it(package):
    for path in sorted((REPO / package).rglob("*.py")):
        wrong = {name.split(".")[0] for name in imports(path)} & FORBIDDEN[package]
        assert not wrong, f"{path.relative_to(REPO)} imports {sorted(wrong)}"


def test_every_module_of_index_imports_only_its_own_layer_or_those_below():
    wrong = [
        f"{module} (layer {INDEX_LAYERS[layer(module)]}) imports {target} (layer {INDEX_LAYERS[layer(target)]})"
        for module, targets in graph().items()
        if module.startswith("index")
        for target in targets
        if target.startswith("index") and layer(target) > layer(module)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_circle_in_index_ingest_or_ui():
    edges = graph()
    state: dict[str, str] = {}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_imports_inside_functions_and_relative_imports_are_seen(tmp_path):
    path = tmp_path / "index" / "store" / "demo.py"
    path.parent.mkdir(parents=True)
    path.write_text("def late():\n    from index.search import answer\n    from . import reader\n", encoding="utf-8")
    assert {"index.search.answer", "index.store.reader"} <= imports(path, tmp_path)


def test_architecture_names_every_module():
    """docs/architecture.md is the map: a module of index/, ingest/, ui/ or app_pages/ it does not name is lost."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = [
        path.relative_to(REPO).as_posix()
        for package in ("index", "ingest", "ui", "app_pages")
        for path in sorted((REPO / package).rglob("*.py"))
    ]
    assert len(modules) > 60
    missing = [module for module in modules if not re.search(rf"(?<![\w/]){re.escape(module)}\b", text)]
    assert not missing, f"docs/architecture.md does not name: {', '.join(missing)} (give each its one-line job)"
