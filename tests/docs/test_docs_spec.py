"""Every "§N" the code and docs cite is a section of docs/spec.md, the repository's own spec.

A reference is any ``§<number>`` in a source, config, test, benchmark or docs file (ranges such as
``§1-§5`` cite each end). Each must name a ``## <number>. <title>`` heading of docs/spec.md, and
a mention of "spec §" must say which document it means (``docs/spec.md §N`` or, inside docs/,
``[spec](spec.md) §N``), so that no reference points to a document the repository does not hold.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "spec.md"
HEADING = re.compile(r"^## (\d+)\. \S", re.M)
SECTION_REF = re.compile(r"§(\d+)")
#: "spec §N" that does not say which file: the word spec not written as docs/spec.md or (spec.md).
BARE_SPEC = re.compile(r"(?<![/\[])\bspec\b(?!\.md|\]\(spec\.md\))\s*§", re.I)
SUFFIXES = (".py", ".md", ".yaml", ".yml", ".toml", ".cfg")


def cited_files() -> list[Path]:
    """Every text file that may cite the spec (the spec itself included: it cites its own §)."""
    roots = [ROOT / "src", ROOT / "docs", ROOT / "tests", ROOT / "benchmarks", ROOT / "examples"]
    files = [ROOT / "README.md"]
    for root in roots:
        files += [p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    return sorted(files)


def spec_sections(text: str) -> list[int]:
    """The numbers of the ``## N. title`` headings of a spec page, in order."""
    return [int(number) for number in HEADING.findall(text)]


def problems(text: str, sections: set[int]) -> list[str]:
    """What is wrong with the spec references of one file's text (empty when all resolve)."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in SECTION_REF.finditer(line):
            if int(match.group(1)) not in sections:
                found.append(f"line {number}: §{match.group(1)} is no section of docs/spec.md")
        if BARE_SPEC.search(line):
            found.append(f"line {number}: 'spec §' without naming docs/spec.md")
        if "shared/spec" in line:
            found.append(f"line {number}: cites a spec file outside the repository")
    return found


def test_spec_sections_are_numbered_one_to_n():
    sections = spec_sections(SPEC.read_text(encoding="utf-8"))
    assert sections == list(range(1, len(sections) + 1))
    assert len(sections) >= 13  # HAT family 1-9, gates, experiments, CIL, replay/WSN


def test_every_section_reference_resolves():
    sections = set(spec_sections(SPEC.read_text(encoding="utf-8")))
    report = {}
    for path in cited_files():
        if path == Path(__file__):
            continue  # this file's planted examples
        found = problems(path.read_text(encoding="utf-8"), sections)
        if found:
            report[str(path.relative_to(ROOT))] = found
    assert report == {}


def test_the_code_cites_the_spec():
    """The references exist at all (a check over nothing would pass vacuously)."""
    text = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py"))
    assert text.count("docs/spec.md §") >= 20


@pytest.mark.parametrize(
    ("planted", "expected"),
    [
        ("see docs/spec.md §99", "§99 is no section"),
        ("the order of spec §3", "without naming docs/spec.md"),
        ("as in shared/spec/hat-family.md", "outside the repository"),
        ("docs/spec.md §1-§14", "§14 is no section"),
    ],
)
def test_a_planted_bad_reference_is_caught(planted, expected):
    found = problems(planted, set(range(1, 14)))
    assert len(found) == 1 and expected in found[0]


@pytest.mark.parametrize(
    "good", ["docs/spec.md §3", "([spec](spec.md) §4)", "docs/spec.md §1-§5", "no reference"]
)
def test_a_good_reference_passes(good):
    assert problems(good, set(range(1, 14))) == []


def test_readme_links_the_spec():
    assert "(docs/spec.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
