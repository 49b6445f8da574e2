"""Clerk-facing messages cannot bypass the catalog: an error a clerk reads is made with a
Phrase (node errors) or with a format string and fields (config/, keys/), never with an
f-string, whose text no catalog can hold. Together with test_catalog.py (every such msgid is
in the Vietnamese catalog) this keeps "Vietnamese everywhere a clerk reads" true as the code
grows."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

#: Callables whose first argument is a sentence a clerk reads, and where they are called.
GUARDED = {
    "CliError": ["node/cli"],
    "ConfigError": ["config", "node"],
    "KeystoreError": ["keys/keystore.py", "node/app"],
    "InsecurePermissions": ["keys"],
    "UnknownPeer": ["keys/directory.py"],
    "DirectoryError": ["keys/directory.py"],
    "DirectoryFileError": ["keys/directoryfile.py"],
    "refusal": ["node/documents"],
    "bad_edxml": ["node/edxml"],
    "EdxmlError": ["node/edxml", "node/outbox/edxml_drop.py"],
    "MetadataError": ["node/documents", "node/outbox/sidecars.py"],
    "TargetError": ["node/outbox/pipeline.py"],
    "OwnCardUnreadable": ["node/status"],
    "DemoFailed": ["node/cli"],
}


def _files(where: str) -> list[Path]:
    path = ROOT / where
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def _name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def offending_calls() -> list[str]:
    found = []
    for name, places in GUARDED.items():
        for where in places:
            for path in _files(where):
                tree = ast.parse(path.read_text(encoding="utf-8"))
                for node in ast.walk(tree):
                    if not (isinstance(node, ast.Call) and _name(node) == name and node.args):
                        continue
                    # MetadataError(code, reason): the reason is the sentence
                    sentence = node.args[-1]
                    made_plain = isinstance(sentence, ast.JoinedStr) or (
                        isinstance(sentence, ast.Constant) and isinstance(sentence.value, str)
                        and name in ("CliError", "refusal", "bad_edxml", "MetadataError",
                                     "TargetError", "OwnCardUnreadable", "EdxmlError"))
                    if made_plain and not (name == "MetadataError" and len(node.args) < 2):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def test_clerk_facing_errors_are_made_from_catalog_messages() -> None:
    assert offending_calls() == []


def test_the_check_sees_an_f_string() -> None:
    """The scan is not vacuous: an f-string sentence in one of those calls is found."""
    tree = ast.parse('raise CliError(f"no document {name}")')
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call))
    assert _name(call) == "CliError" and isinstance(call.args[0], ast.JoinedStr)
