"""Dependencies point one way: app.py and app_pages/ -> ui/ -> ingest/ -> index/ (docs/architecture.md)."""

from __future__ import annotations

import ast

import pytest

from tests.helpers import REPO

# package -> top-level packages of this project it must not import
FORBIDDEN = {
    "index": {"ingest", "ui", "app", "app_pages"},
    "ingest": {"ui", "app", "app_pages"},
    "ui": {"app", "app_pages"},
}


def imported_packages(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_the_layers_below_it(package):
    for path in sorted((REPO / package).glob("*.py")):
        wrong = imported_packages(path) & FORBIDDEN[package]
        assert not wrong, f"{path.relative_to(REPO)} imports {sorted(wrong)}"
