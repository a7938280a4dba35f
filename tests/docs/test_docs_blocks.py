"""Every fenced ``bash`` and ``python`` block of README.md and docs/*.md runs (README:
"Documentation tested").

- ``hatcl run`` lines get :data:`TINY` appended (and ``output_dir=runs/doc_<n>`` when they set
  neither ``output_dir`` nor ``resume``); other ``hatcl`` lines run as written; both in-process,
  in one temporary folder per page, block after block.
- ``python`` blocks run as written in a subprocess in that folder (and, like ``yaml`` blocks, are
  first written to ``<path>`` when their first line is ``# <path>``).
- A block right after ``<!-- not run in CI: <reason> -->`` is skipped; the markers are counted.
- Shown output is compared: a text block after ``<!-- output of: <command> -->`` (its lines must
  appear in the command's output) and a block starting with ``$ <command>`` (equal output).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Appended to every documented ``hatcl run`` line: a run of seconds.
TINY = (
    "data.num_tasks=2",
    "data.train_subset=300",
    "data.test_subset=300",
    "trainer.max_epochs=1",
    "trainer.figures=false",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
)
#: Markers ``<!-- not run in CI: ... -->`` expected over all pages (a new one is a decision).
EXPECTED_MARKERS = 33
MARKER = re.compile(r"<!--\s*not run in CI:(.*?)-->", re.S)
OUTPUT_OF = re.compile(r"<!--\s*output of:(.*?)-->", re.S)
FENCE = re.compile(r"^```(\w*)\s*$")
RUNNABLE = ("bash", "python")
COMMAND_WORDS = ("hatcl ", "python ", "make ", "PYTHONPATH=", "OMP_NUM_THREADS=")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str
    note: str  # the HTML comment right before the fence ("" if none)

    @property
    def skipped(self) -> bool:
        return MARKER.search(self.note) is not None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` with their language and the comment before them."""
    found, lines = [], page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        before = index - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        note = lines[before] if before >= 0 and lines[before].lstrip().startswith("<!--") else ""
        body = "\n".join(lines[index + 1 : end]) + "\n"
        found.append(Block(page, index + 1, match.group(1), body, note))
        index = end + 1
    return found


def commands(body: str) -> list[list[str]]:
    """Shell lines of a block (continuations joined, comments dropped), split into words."""
    joined = body.replace("\\\n", " ")
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def tiny_run(words: list[str], index: int) -> list[str]:
    """A documented ``hatcl run`` argument list with the tiny-run overrides appended."""
    args = words[2:]
    if any(flag in args for flag in ("--help", "-h", "--cfg")):
        return args
    keys = {arg.partition("=")[0].lstrip("+~") for arg in args}
    extra = [o for o in TINY if not (o.startswith("data.") and "data=custom" in args)]
    multirun = "-m" in args or "--multirun" in args
    if not multirun and not keys & {"output_dir", "resume"}:
        extra.append(f"output_dir=runs/doc_{index}")
    return [*args, *extra]


def run_hatcl(words: list[str], index: int, block: Block) -> None:
    from hatcl.cli import main

    args = ["run", *tiny_run(words, index)] if words[1:2] == ["run"] else words[1:]
    code = main(args)
    assert code == 0, f"{block.where}: `{' '.join(words)}` exited {code} (ran: hatcl {args})"


def run_python_file(words: list[str], block: Block, workdir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": _pythonpath(workdir)}
    script = words[1] if len(words) > 1 else ""
    cwd = ROOT if script.startswith(("examples/", "benchmarks/")) else workdir  # the repo's own
    done = subprocess.run(
        [sys.executable, *words[1:]], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{block.where}: {' '.join(words)}\n{done.stderr[-3000:]}"


def _pythonpath(workdir: Path) -> str:
    return os.pathsep.join([str(ROOT / "src"), str(workdir), os.environ.get("PYTHONPATH", "")])


def write_named_file(block: Block, workdir: Path) -> None:
    """A block whose first line is ``# <relative path>`` is also that file."""
    first = block.body.splitlines()[0] if block.body.strip() else ""
    match = re.fullmatch(r"#\s*([\w./-]+\.(?:py|yaml))\s*", first)
    if match is None:
        return
    target = workdir / match.group(1)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block.body, encoding="utf-8")
    if target.suffix == ".py":
        for folder in target.relative_to(workdir).parents:
            if str(folder) != ".":
                (workdir / folder / "__init__.py").touch()


def run_block(block: Block, workdir: Path, counter: list[int]) -> None:
    write_named_file(block, workdir)
    if block.lang == "python":
        run_python_file(["python", str(_script(block, workdir))], block, workdir)
        return
    for words in commands(block.body):
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words = words[1:]  # PYTHONPATH=src, OMP_NUM_THREADS=1: set by the test itself
        counter[0] += 1
        if words[0] == "hatcl":
            run_hatcl(words, counter[0], block)
        elif words[0] == "python":
            run_python_file(words, block, workdir)
        else:
            pytest.fail(f"{block.where}: cannot run `{' '.join(words)}`; mark the block")


def _script(block: Block, workdir: Path) -> Path:
    script = workdir / f"_block_{block.line}.py"
    script.write_text(block.body, encoding="utf-8")
    return script


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_block_of_the_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    counter = [0]
    for block in blocks(page):
        if block.lang in RUNNABLE and not block.skipped:
            run_block(block, tmp_path, counter)
        elif block.lang == "yaml":
            write_named_file(block, tmp_path)


def test_command_blocks_are_tagged_and_markers_have_reasons():
    markers, untagged = [], []
    for page in PAGES:
        for block in blocks(page):
            marker = MARKER.search(block.note)
            if marker is not None:
                assert marker.group(1).strip(), f"{block.where}: a marker without a reason"
                assert block.lang in RUNNABLE, f"{block.where}: a marker before a {block.lang!r}"
                markers.append((block.where, marker.group(1).strip()))
            first = block.body.lstrip()
            if block.lang not in (*RUNNABLE, "yaml") and first.startswith(COMMAND_WORDS):
                untagged.append(block.where)
        text = page.read_text(encoding="utf-8")
        assert len(MARKER.findall(text)) == sum(
            1 for b in blocks(page) if MARKER.search(b.note)
        ), f"{page.name}: a marker that is not right before a fenced block"
    assert not untagged, f"command blocks without ```bash or ```python: {untagged}"
    assert len(markers) == EXPECTED_MARKERS, "\n".join(f"{w}: {r}" for w, r in markers)


def shown_output_blocks() -> list[tuple[Block, str]]:
    found = []
    for page in PAGES:
        for block in blocks(page):
            output_of = OUTPUT_OF.search(block.note)
            if output_of is not None:
                found.append((block, output_of.group(1).strip()))
            elif block.body.startswith("$ "):
                found.append((block, block.body.splitlines()[0][2:]))
    return found


@pytest.mark.parametrize("shown", shown_output_blocks(), ids=lambda s: s[0].where)
def test_shown_output_is_what_the_command_prints(shown, tmp_path):
    block, command = shown
    words = shlex.split(command)
    env = {**os.environ, "PYTHONPATH": _pythonpath(tmp_path), "OMP_NUM_THREADS": "1"}
    while re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words = words[1:]
    if words[0] == "hatcl":
        words = [sys.executable, "-m", "hatcl.cli", *words[1:], f"output_dir={tmp_path / 'run'}"]
    else:
        words = [sys.executable, *words[1:]]
    done = subprocess.run(words, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [" ".join(line.split()) for line in done.stdout.splitlines()]
    shown_lines = block.body.splitlines()[1 if block.body.startswith("$ ") else 0 :]
    for line in shown_lines:
        normal = " ".join(line.split())
        if not normal or normal == "..." or normal.startswith("results in"):
            continue
        assert normal in printed, f"{block.where}: shown line {line!r} not printed by {command}"


def test_the_readme_links_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in PAGES[1:] if f"](docs/{p.name}" not in readme]
    assert not missing, f"pages the README does not link: {missing}"
