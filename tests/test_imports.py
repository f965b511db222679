"""No import circles among Backstory's own modules.

Every import statement counts, those inside functions too (they run, only later, and hide the
graph), and so do the backends the archive registry imports by name.
"""

from __future__ import annotations

import ast
from importlib.util import resolve_name
from pathlib import Path

import backstory
from backstory.archive import BACKENDS

PACKAGE = Path(backstory.__file__).parent
# Circles tolerated for now; none is left, so the test fails on any new one.
KNOWN_CIRCLES: list[set[str]] = []


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its code."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = resolve_name("." * node.level + (node.module or ""), package) if node.level else node.module
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod itself.
            found.update(f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names)
    return (found & MODULES.keys()) - {name}


def import_graph() -> dict[str, set[str]]:
    graph = {name: imports_of(name) for name in MODULES}
    graph["backstory.archive"] |= {resolve_name(b.module, "backstory.archive") for b in BACKENDS.values() if b.module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected groups of more than one module (Tarjan): each holds an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while not group or v not in group:
                group.add(stack.pop())
            if len(group) > 1:
                found.append(group)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_the_package_and_lazy_imports() -> None:
    graph = import_graph()
    assert "backstory.archive.sqlite" in graph["backstory.archive"]  # the registry, imported by name
    assert "backstory.archive.stories" in graph["backstory.archive.sqlite"]
    assert "backstory.archive" in graph["backstory.app"]  # an import inside a function
    # A contract that imported its backend (as base.open_archive once built SQLiteArchive) would
    # be a circle through the story model both use; the walk finds it:
    graph["backstory.story"].add("backstory.archive.sqlite")
    assert any({"backstory.story", "backstory.archive.sqlite", "backstory.archive.stories"} <= group
               for group in circles(graph))


def test_no_import_circle_in_the_package() -> None:
    found = sorted(circles(import_graph()), key=sorted)
    assert not [group for group in found if any(m.startswith("backstory.archive") for m in group)], found
    assert found == KNOWN_CIRCLES, f"import circles: {found}"


def test_the_archive_contract_imports_no_backend() -> None:
    archive_modules = {name for name in MODULES if name.startswith("backstory.archive.")}
    assert imports_of("backstory.archive.base") & archive_modules == set()
