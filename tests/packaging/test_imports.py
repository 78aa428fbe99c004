"""The package's import graph: no module imports, directly or through others, one that imports it back.

Every ``import`` statement counts, those inside functions too (a lazy import still ties two
modules together), read from the source with ``ast``, except those under ``if TYPE_CHECKING:``
(never run); ``from pkg import name`` is an edge to ``pkg.name`` where that is a module, else to
``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import edgenext

ROOT = Path(edgenext.__file__).resolve().parent
PACKAGE = "edgenext"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The absolute module a relative ``from`` import starts from."""
    if node.level == 0:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those inside ``if TYPE_CHECKING:`` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if test is not None and "TYPE_CHECKING" in ast.unparse(test):
                todo.extend(child.orelse)
                continue
            todo.append(child)


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, name, path.name == "__init__.py")
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source for alias in node.names]
        else:
            continue
        for target in targets:
            # ``import edgenext.a.b`` names a module; a dotted attribute path falls back to its module
            while target and target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as a list of modules (first == last), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_the_walker_sees_lazy_and_relative_imports_and_finds_a_cycle():
    graph = import_graph()
    assert f"{PACKAGE}.tasks.registry" in graph[f"{PACKAGE}.tasks"]  # from .registry import ...
    assert f"{PACKAGE}.train.runner" in graph[f"{PACKAGE}.tasks"]  # imported inside fit()
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_task_and_format_registries_are_leaves():
    """The registries import no task and no format: those register themselves."""
    graph = import_graph()
    for registry in (f"{PACKAGE}.tasks.registry", f"{PACKAGE}.deploy.formats.registry"):
        assert not {m for m in graph[registry] if m.startswith((f"{PACKAGE}.tasks", f"{PACKAGE}.deploy.formats"))}, \
            graph[registry]


def test_every_public_name_of_the_lazy_packages_resolves_to_its_module():
    # edgenext and edgenext.train import their names on first use: a name in __all__ missing from the
    # table (or pointing at the wrong module) would fail only when a user first asks for it
    import importlib

    for package in ("edgenext", "edgenext.train"):
        module = importlib.import_module(package)
        names: dict = {}
        exec(f"from {package} import *", names)
        assert set(module.__all__) <= names.keys() and set(module._SOURCES) <= set(module.__all__), package
        for name, source in module._SOURCES.items():
            assert names[name] is getattr(importlib.import_module(source, package), name), f"{package}.{name}"
