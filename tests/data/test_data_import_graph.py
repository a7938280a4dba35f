"""hatcl.data's modules import each other without circles (function-local imports included)."""

import ast
from pathlib import Path

import hatcl.data

PACKAGE = Path(hatcl.data.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("hatcl.data")}


def test_no_import_cycles_inside_the_data_package():
    graph = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    graph["hatcl.data"] = set()  # the package's lazy __getattr__ imports nothing at import time
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 1:
            raise AssertionError(f"import cycle: {' -> '.join([*trail, name])}")
        if state.get(name) == 2 or name not in graph:
            return
        state[name] = 1
        for target in sorted(graph[name]):
            visit(target, [*trail, name])
        state[name] = 2

    for module in sorted(graph):
        visit(module, [])
    assert "hatcl.data.cache" in graph["hatcl.data.base"]  # imported at the top, not in a function
