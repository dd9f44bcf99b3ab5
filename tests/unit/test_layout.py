"""The package's layout rules: small modules, no import circles, python-socketio behind one
module, the transports independent of the socket events."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import tidings

ROOT = Path(tidings.__file__).parent
MAX_LINES = 400
# python-socketio and python-engineio: the one adapter module that owns them.
SOCKETIO = {"realtime/transport/sio.py"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ["tidings", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The tidings modules `name` imports (for type checking only too: a circle there is one
    in the design)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = node.module or ""
        if node.level:
            kept = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*kept, *([node.module] if node.module else [])])
        for alias in node.names:
            target = f"{base}.{alias.name}"
            yield target if target in modules else base


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(name, path, modules) if m in modules and m != name}
        for name, path in modules.items()
    }


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return False


def test_modules_are_small() -> None:
    long = {
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if len(path.read_text().splitlines()) > MAX_LINES
    }
    assert long == set()


def test_no_import_circles() -> None:
    graph = _graph()
    circles = {(a, b) for a, deps in graph.items() for b in deps if a < b and _reaches(graph, b, a)}
    assert circles == set()


def test_python_socketio_is_imported_by_one_module() -> None:
    importers = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )  # fmt: skip
            if any(n.split(".")[0] in ("socketio", "engineio") for n in names):
                importers.add(str(path.relative_to(ROOT)))
    assert importers == SOCKETIO


def test_transports_do_not_import_the_socket_events() -> None:
    graph = _graph()
    transport = [m for m in graph if m.startswith("tidings.realtime.transport.")]
    assert all(not d.startswith("tidings.realtime.events.") for m in transport for d in graph[m])
