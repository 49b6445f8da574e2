"""The architecture rule, enforced: only node/ does I/O.

protocol/, keys/ and config/ never import twisted, sqlalchemy, watchdog or node, and protocol/
does not touch the filesystem. The walk uses ``ast`` so that an import hidden inside a function
counts too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"twisted", "sqlalchemy", "watchdog", "lienthong.node"}
#: protocol/ also starts no threads: a hash that runs on another thread is the node's, injected
#: (node/core/hashing.py into protocol.payload's ``plaintext_digest``).
PROTOCOL_FORBIDDEN = FORBIDDEN | {"os", "pathlib", "shutil", "tempfile", "io", "socket",
                                  "threading", "_thread", "concurrent", "multiprocessing"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _is_under(module: str, packages: set[str]) -> bool:
    """``lienthong.node.core.clock`` is under ``lienthong.node``; ``osmosis`` is not under
    ``os``."""
    return any(module == package or module.startswith(package + ".") for package in packages)


def _calls_open(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "open"]


@pytest.mark.parametrize("package", ["protocol", "keys", "config"])
def test_pure_packages_do_not_import_the_io_layer(package: str) -> None:
    """No module in protocol/, keys/ or config/ imports twisted, sqlalchemy, watchdog or node."""
    forbidden = PROTOCOL_FORBIDDEN if package == "protocol" else FORBIDDEN
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}"
           for path in files for line, name in _imports(path) if _is_under(name, forbidden)]
    assert bad == []


def test_protocol_never_opens_files() -> None:
    """protocol/ is sans-I/O: no call to the built-in open()."""
    bad = [f"{path.relative_to(ROOT)}:{line}" for path in sorted((ROOT / "protocol").rglob("*.py"))
           for line in _calls_open(path)]
    assert bad == []


def test_walker_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The check itself works: an import hidden in a function body is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from twisted.internet import reactor\n")
    assert (2, "twisted.internet") in _imports(sample)
