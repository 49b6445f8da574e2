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


# -- The rooms: every import by its installed name, no cycles, every room packaged ---------------

TOP_FOLDERS = ("node", "protocol", "keys", "config")
SOURCE_TREES = (*TOP_FOLDERS, "tests", "bench")


def test_nothing_imports_a_top_folder_by_its_bare_name() -> None:
    """Code imports ``lienthong.node`` (and so on), never bare ``node``, ``protocol``, ``keys``
    or ``config``: those names belong to other software in site-packages."""
    bare = set(TOP_FOLDERS)
    files = [path for tree in SOURCE_TREES for path in sorted((ROOT / tree).rglob("*.py"))]
    files.append(ROOT / "dev.py")
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}"
           for path in files for line, name in _imports(path) if _is_under(name, bare)]
    assert bad == []


def test_walker_flags_a_bare_import(tmp_path: Path) -> None:
    """The check above can fail: ``from node.core import clock`` is seen as bare ``node``."""
    sample = tmp_path / "sample.py"
    sample.write_text("from node.core import clock\nimport lienthong.node.core.clock\n")
    found = [name for _, name in _imports(sample) if _is_under(name, set(TOP_FOLDERS))]
    assert found == ["node.core"]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_anywhere() -> None:
    """No module reaches itself through imports, counting imports inside functions and under
    ``TYPE_CHECKING``: the layer contracts forbid cycles between rooms, this forbids them
    inside a room too."""
    import grimp

    graph = grimp.build_graph("lienthong.node", "lienthong.protocol", "lienthong.keys",
                              "lienthong.config", "tests", "bench")
    edges = {module: set(graph.find_modules_directly_imported_by(module))
             for module in graph.modules}
    assert _cycles(edges) == []


def test_cycle_finder_finds_a_cycle() -> None:
    """The finder above can fail: a -> b -> c -> a is one cycle; d -> a is not part of it."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_every_module_of_the_node_is_in_a_room() -> None:
    """node/ itself holds only ``__init__`` and ``__main__``: every other module is in the
    subpackage whose job it does."""
    loose = sorted(path.name for path in (ROOT / "node").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]


def test_every_package_folder_is_installed() -> None:
    """setup.cfg lists every package folder under its installed name: a new room that is
    missing there would be missing from the wheel, though an editable install hides it."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    listed = set(parser["options"]["packages"].split())
    folders = {"lienthong." + ".".join(init.parent.relative_to(ROOT).parts)
               for top in TOP_FOLDERS for init in (ROOT / top).rglob("__init__.py")}
    assert listed == folders
