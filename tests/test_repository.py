"""The repository explains itself: it cites only its own documents, and those documents exist.

Design notes once lived outside the repository, and code cited them; a reader of a clone could
not follow those citations. What they said is now in docs/ (docs/design.md above all), and
these tests keep it that way.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".cfg", ".toml", ".txt", ".service"}
#: Citations of documents kept outside the repository.
OUTSIDE = re.compile(r"\b(?:DESIGN|RELIABILITY)\.md\b|\bSTYLE-ANCHORS\b|\bMISSION-ANCHORS\b"
                     r"|(?:\.\./)+shared\b|/work/shared\b")
DOC_PATH = re.compile(r"\bdocs/[\w./-]+\.md\b")
#: Documents whose docs/*.md paths must all exist (the README and the design of record).
INDEXES = ("README.md", "docs/design.md")


def _tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                                check=True).stdout.decode("utf-8").split("\0")
        paths = [ROOT / name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an sdist)
        skip = {".venv", ".git", "build", "demo-network"}
        paths = [p for p in ROOT.rglob("*") if not skip & set(p.relative_to(ROOT).parts)]
    return [p for p in paths if p.suffix in TEXT_SUFFIXES and p.is_file()
            and p != Path(__file__).resolve()]


def test_no_file_cites_a_document_outside_the_repository() -> None:
    """No tracked text file cites the design notes kept outside the repository (``OUTSIDE``)."""
    found = []
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "cite docs/*.md in the repository instead:\n" + "\n".join(found)


def test_the_files_list_the_texts_they_check() -> None:
    """The walk finds the code and the docs, so the test above cannot pass on an empty list."""
    names = {str(p.relative_to(ROOT)) for p in _tracked_text_files()}
    assert {"README.md", "docs/design.md", "setup.cfg", "pyproject.toml"} <= names
    assert "protocol/frames.py" in names


def test_every_doc_named_by_the_readme_and_the_design_exists() -> None:
    """Each docs/*.md path named in README.md and docs/design.md is a file in the repository."""
    missing = []
    for index in INDEXES:
        for name in sorted(set(DOC_PATH.findall((ROOT / index).read_text(encoding="utf-8")))):
            if not (ROOT / name).is_file():
                missing.append(f"{index} names {name}")
    assert not missing, "\n".join(missing)


#: A source or test file named in a document, with an optional ``::test_name``.
CODE_PATH = re.compile(r"\b((?:node|protocol|keys|config|tests|bench)/[\w/]+\.py)(?:::(\w+))?")
#: The documents that describe the code module by module: they must follow every move.
CODE_INDEXES = ("README.md", "docs/design.md", "docs/reliability.md", "docs/benchmarks.md",
                "CONTRIBUTING.md")


def _named_code(text: str) -> set[tuple[str, str]]:
    return {(path, test) for path, test in CODE_PATH.findall(text)}


def test_every_module_and_test_the_design_names_exists() -> None:
    """Each ``node/...py`` or ``tests/...py`` path (and ``::test_name``) named in the design and
    the other module-level documents exists: a move that forgets the design fails here."""
    missing = []
    for index in CODE_INDEXES:
        if not (ROOT / index).is_file():
            continue
        text = (ROOT / index).read_text(encoding="utf-8")
        for path, test in sorted(_named_code(text)):
            target = ROOT / path
            if not target.is_file():
                missing.append(f"{index} names {path}")
            elif test and not re.search(rf"^\s*(?:async\s+)?def {test}\(",
                                        target.read_text(encoding="utf-8"), re.M):
                missing.append(f"{index} names {path}::{test}")
    assert not missing, "\n".join(missing)


def test_the_code_path_pattern_finds_paths_and_tests() -> None:
    """The pattern above sees a module path and a path with its test."""
    text = "see `node/inbox/stream.py` and `tests/faults/test_kill_receiver.py::test_kill_x`"
    assert _named_code(text) == {("node/inbox/stream.py", ""),
                                 ("tests/faults/test_kill_receiver.py", "test_kill_x")}
