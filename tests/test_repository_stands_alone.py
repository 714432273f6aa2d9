"""The repository stands alone: no tracked file points outside it, and every citation of a design
note (`docs/design/method.md §6.5`, `docs/design/reliability.md A7`, ...) names a note that exists
and sections that note has."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

DESIGN = REPO_ROOT / "docs" / "design"
THIS_FILE = Path(__file__).resolve()
# Design files that live outside the repository, under their old names. Written as stems plus
# suffixes so that this file does not cite them itself (nor get rewritten by a citation fix-up).
OUTSIDE_NAMES = [
    "SAFE_RLHF" + "_SPEC",
    "RELIA" + "BILITY",
    "ANNOTATION" + "_ANCHORS",
    "TRAINING" + "_ANCHORS",
    "ENVIRONMENT" + "_NOTES",
    "TOY" + "WORLD",
    "ARCHI" + "TECTURE",
]
OUTSIDE = re.compile(r"\.\./" + "shared" + r"\b|\b(?:" + "|".join(OUTSIDE_NAMES) + r")(?:\.md)?\b")
CITATION = re.compile(r"docs/design/([A-Za-z0-9_\-]+\.md)")
# What follows a citation on its line, up to the end of the parenthesis, clause or sentence.
TAIL = re.compile(r"[^)\];:\n]*")
SECTION = re.compile(r"§\s?(\d+(?:\.\d+)?)(?:\s?[–-]\s?§?(\d+(?:\.\d+)?))?")
ITEM = re.compile(r"\b([A-F]\d{1,2})\b")
NAMED = re.compile(r"\b(idea|property)\s+(\d+)", re.IGNORECASE)


@cache
def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.decode()
    files = []
    for name in filter(None, listed.split("\0")):
        path = REPO_ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images, archives
        files.append(path)
    return files


def anchors(note: str) -> set[str]:
    """The citable ids of a note: numbered headings ("## 6." / "### 6.5 ..." give §6 / §6.5),
    lettered ids opening a heading or a table row (A7), and "Idea N" / "Property N" items."""
    found: set[str] = set()
    for line in note.splitlines():
        heading = re.match(r"#{1,6}\s+(\d+(?:\.\d+)?)\.?\s", line)
        if heading:
            found.add("§" + heading.group(1))
        lettered = re.match(r"(?:#{1,6}\s+|\|\s*)([A-F]\d{1,2})\b", line)
        if lettered:
            found.add(lettered.group(1))
        named = re.match(r"[\s*#>\-]*(?:\*\*)?(idea|property)\s+(\d+)", line, re.IGNORECASE)
        if named:
            found.add(f"{named.group(1).lower()} {named.group(2)}")
    return found


def cited_ids(tail: str, note_name: str) -> set[str]:
    ids = set()
    for first, last in SECTION.findall(tail):
        ids.add("§" + first)
        if last:
            ids.add("§" + last)
    if note_name == "reliability.md":
        ids.update(ITEM.findall(tail))
    ids.update(f"{kind.lower()} {number}" for kind, number in NAMED.findall(tail))
    return ids


def broken_citations(text: str, design_dir: Path) -> list[str]:
    """Each citation of a missing note, or of a section its note lacks, as 'note: id'."""
    problems = []
    for match in CITATION.finditer(text):
        name = match.group(1)
        note = design_dir / name
        if not note.is_file():
            problems.append(f"{name}: no such note")
            continue
        tail = TAIL.match(text, match.end())
        missing = cited_ids(tail.group(0) if tail else "", name) - anchors(note.read_text(encoding="utf-8"))
        problems += [f"{name}: {section}" for section in sorted(missing)]
    return problems


def test_no_tracked_file_points_at_design_files_outside_the_repository() -> None:
    offenders = []
    for path in tracked_text_files():
        if path == THIS_FILE:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert not offenders, "cite docs/design/ instead:\n" + "\n".join(offenders)


def test_every_design_citation_names_an_existing_note_and_section() -> None:
    problems = []
    for path in tracked_text_files():
        if path == THIS_FILE:
            continue
        for problem in broken_citations(path.read_text(encoding="utf-8"), DESIGN):
            problems.append(f"{path.relative_to(REPO_ROOT)}: {problem}")
    assert not problems, "citations of missing design notes or sections:\n" + "\n".join(problems)


def test_the_design_index_lists_every_note() -> None:
    index = (DESIGN / "README.md").read_text(encoding="utf-8")
    notes = {p.name for p in DESIGN.glob("*.md")} - {"README.md"}
    assert notes and all(f"({name})" in index for name in notes), notes


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("see docs/design/method.md §6.5 and §12.3.", []),
        ("(docs/design/method.md §5.2–5.6, §6.3-6.5)", []),
        ("(docs/design/method.md §99)", ["method.md: §99"]),
        ("(docs/design/reliability.md A7, Z9, C99)", ["reliability.md: C99"]),
        ("(docs/design/annotation.md §4 idea 3)", []),
        ("(docs/design/annotation.md §4 idea 99)", ["annotation.md: idea 99"]),
        ("(docs/design/toyworld.md property 5)", ["toyworld.md: property 5"]),
        ("docs/design/nowhere.md", ["nowhere.md: no such note"]),
        ("(docs/design/method.md) §99 outside the parenthesis is not its section", []),
    ],
)
def test_the_citation_check_catches_missing_notes_and_sections(text: str, problems: list[str]) -> None:
    assert broken_citations(text, DESIGN) == problems
