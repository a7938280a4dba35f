"""The package keeps the size rules: files, functions and signatures stay small.

No source file of ``src/hatcl`` has more than 350 lines, no function (or method) more than 80
lines (from its ``def`` line to its last line) and no signature more than 12 parameters
(positional, keyword-only, ``*args`` and ``**kwargs`` each count one; a method's ``self`` or
``cls`` does not). :func:`size_violations` reads one source text; the planted violations below
show it fails on each rule and passes right at each limit.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "hatcl"
MAX_FILE_LINES = 350
MAX_FUNCTION_LINES = 80
MAX_PARAMETERS = 12


def parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The parameters of ``node``'s signature, without a leading ``self`` or ``cls``."""
    arguments = node.args
    positional = [*arguments.posonlyargs, *arguments.args]
    if positional and positional[0].arg in ("self", "cls"):
        positional = positional[1:]
    starred = [arg for arg in (arguments.vararg, arguments.kwarg) if arg is not None]
    return len(positional) + len(arguments.kwonlyargs) + len(starred)


def size_violations(source: str, *, name: str) -> list[str]:
    """Every size rule ``source`` breaks, one message per violation (empty: none)."""
    found = []
    lines = len(source.splitlines())
    if lines > MAX_FILE_LINES:
        found.append(f"{name}: {lines} lines (at most {MAX_FILE_LINES})")
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            found.append(
                f"{name}:{node.lineno} {node.name}: {length} lines "
                f"(at most {MAX_FUNCTION_LINES})"
            )
        count = parameter_count(node)
        if count > MAX_PARAMETERS:
            found.append(
                f"{name}:{node.lineno} {node.name}: {count} parameters "
                f"(at most {MAX_PARAMETERS})"
            )
    return found


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_walk_sees_the_whole_package():
    names = {path.relative_to(PACKAGE).as_posix() for path in _sources()}
    assert len(names) > 100
    assert {"training/runner.py", "data/base.py", "cli.py", "functional/rates.py"} <= names


def test_no_source_file_breaks_a_size_rule():
    found = []
    for path in _sources():
        name = path.relative_to(ROOT).as_posix()
        found += size_violations(path.read_text(encoding="utf-8"), name=name)
    assert not found, "size rules broken:\n" + "\n".join(found)


# -- planted violations ---------------------------------------------------------------------------


def _function(body_lines: int, *, parameters: str = "", decorator: bool = False) -> str:
    """A function of ``1 + body_lines`` lines (its ``def`` and that many body lines)."""
    body = "".join(f"    x{i} = {i}\n" for i in range(body_lines))
    head = "@staticmethod\n" if decorator else ""
    return f"{head}def planted({parameters}):\n{body}"


@pytest.mark.parametrize(("lines", "broken"), [(350, False), (351, True)])
def test_a_file_over_350_lines_is_found(lines, broken):
    source = "".join(f"v{i} = {i}\n" for i in range(lines))
    found = size_violations(source, name="planted.py")
    assert found == ([f"planted.py: {lines} lines (at most 350)"] if broken else [])


@pytest.mark.parametrize(("body_lines", "broken"), [(79, False), (80, True)])
def test_a_function_over_80_lines_is_found(body_lines, broken):
    found = size_violations(_function(body_lines), name="planted.py")
    assert found == (["planted.py:1 planted: 81 lines (at most 80)"] if broken else [])


def test_a_long_method_in_a_class_is_found_at_its_def_line():
    method = _function(85, parameters="self").replace("\n", "\n    ")
    source = f"class Planted:\n    {method}"
    assert size_violations(source, name="p.py") == ["p.py:2 planted: 86 lines (at most 80)"]


def test_a_decorator_does_not_count_as_a_function_line():
    assert size_violations(_function(79, decorator=True), name="p.py") == []


@pytest.mark.parametrize(
    ("parameters", "count"),
    [
        (", ".join(f"a{i}" for i in range(12)), 12),
        (", ".join(f"a{i}" for i in range(13)), 13),
        ("self, " + ", ".join(f"a{i}" for i in range(12)), 12),
        ("cls, " + ", ".join(f"a{i}" for i in range(13)), 13),
        ("a0, /, a1, *args, " + ", ".join(f"k{i}=1" for i in range(9)) + ", **options", 13),
        ("*, " + ", ".join(f"k{i}" for i in range(13)), 13),
    ],
)
def test_a_signature_over_12_parameters_is_found(parameters, count):
    found = size_violations(_function(1, parameters=parameters), name="p.py")
    assert found == ([f"p.py:1 planted: {count} parameters (at most 12)"] if count > 12 else [])


def test_async_functions_are_checked_too():
    source = "async " + _function(1, parameters=", ".join(f"a{i}" for i in range(13)))
    assert size_violations(source, name="p.py") == ["p.py:1 planted: 13 parameters (at most 12)"]
