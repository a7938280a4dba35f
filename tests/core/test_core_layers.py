"""The package keeps the layer order of docs/architecture.md: imports point up the list only.

The test reads the layer table of docs/architecture.md (first column: the packages and modules of
each row, from pure to glue), assigns every module of ``src/hatcl`` to its row, and fails on any
import of a module in a lower row: module-level and function-local imports alike, plus the
``"hatcl.module:name"`` targets of lazy registry entries (an import deferred to first use).
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "hatcl"
DOC = ROOT / "docs" / "architecture.md"
LAZY_TARGET = re.compile(r"hatcl(?:\.\w+)+(?::[\w.]+)?")


def layer_table(text: str) -> list[list[str]]:
    """The rows of the "Layers" table: each a list of patterns (``functional/``, ``cli*.py``)."""
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        rows.append(re.findall(r"`([^`]+)`", first))
    return rows


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str, rows: list[list[str]]) -> int | None:
    """The row index of ``hatcl.<top>...``; ``None`` for the root package or an unlisted module."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    top = parts[1]
    is_package = (PACKAGE / top).is_dir()
    name = f"{top}/" if is_package else f"{top}.py"
    for index, patterns in enumerate(rows):
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            return index
    return None


def imported_modules(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every hatcl import at any depth, and of every lazy target string."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "hatcl":
                found += [(node.lineno, f"hatcl.{alias.name}") for alias in node.names]
            elif node.module.startswith("hatcl."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("hatcl.")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if LAZY_TARGET.fullmatch(node.value):
                found.append((node.lineno, node.value.split(":")[0]))
    return found


def violations(sources: dict[str, str], rows: list[list[str]]) -> list[str]:
    """Every import of ``sources`` (module name -> text) that points down the layer list."""
    found = []
    for module, source in sorted(sources.items()):
        own = layer_of(module, rows)
        if own is None:
            continue
        for line, target in imported_modules(source):
            other = layer_of(target, rows)
            if other is not None and other > own:
                found.append(f"{module}:{line} imports {target} (row {other + 1} > row {own + 1})")
    return found


def package_sources() -> dict[str, str]:
    return {module_name(p): p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")}


@pytest.fixture(scope="module")
def rows() -> list[list[str]]:
    return layer_table(DOC.read_text(encoding="utf-8"))


def test_the_doc_lists_the_layers(rows):
    flat = [pattern for row in rows for pattern in row]
    assert len(rows) >= 10
    assert flat.index("functional/") < flat.index("importance/") < flat.index("algorithms/")
    assert flat.index("algorithms/") < flat.index("training/")


def test_every_module_has_a_row(rows):
    unlisted = [m for m in package_sources() if m != "hatcl" and layer_of(m, rows) is None]
    assert unlisted == []


def test_the_root_package_imports_nothing_eagerly():
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_no_import_points_down_the_layer_list(rows):
    sources = package_sources()
    assert len(sources) > 50
    assert violations(sources, rows) == []


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        # a function-local import of training from the pure math
        (
            "hatcl.functional.annealing",
            "\n\ndef _planted():\n    from hatcl.training.step import run_training_step\n",
        ),
        # a module-level import of data from algorithms (the fixed wrong way)
        ("hatcl.algorithms.joint", "\nfrom hatcl.data.base import TaskData\n"),
        # "from hatcl import <package>"
        ("hatcl.masking.masker", "\nfrom hatcl import algorithms\n"),
        # a lazy registry target in a lower layer
        ("hatcl.gates.kinds", '\n_PLANTED = "hatcl.importance.registry:IMPORTANCE_TYPES"\n'),
    ],
)
def test_a_planted_violation_is_caught(rows, module, planted):
    sources = package_sources()
    sources[module] += planted
    found = violations(sources, rows)
    assert len(found) == 1 and found[0].startswith(f"{module}:")


def test_an_import_up_the_list_is_allowed(rows):
    sources = package_sources()
    sources["hatcl.training.step"] += "\nfrom hatcl.functional.annealing import annealed_scale\n"
    assert violations(sources, rows) == []
