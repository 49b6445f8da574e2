"""Every module of lienthong.node can be the first one a program imports.

An import cycle (cli/main.py registering subcommand modules that imported names back from it)
only shows when a module of the cycle is imported first: ``import lienthong.node.cli.audit``
then failed with a partially initialised module, while the test suite, which had imported
cli.main already, passed. So each module is imported here in a process that has imported no
lienthong module yet.

One child process runs the check: it imports the third-party and standard modules that
lienthong's source names (they cannot be part of a cycle of ours, and loading them once keeps
this fast), then forks once per module; each fork imports its module into a ``sys.modules``
holding no lienthong module and reports failure by its exit status.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The top folders and the package names setuptools maps them to (pyproject.toml).
PACKAGES = {"node": "lienthong.node", "protocol": "lienthong.protocol",
            "keys": "lienthong.keys", "config": "lienthong.config"}

CHECK = r'''
import ast, contextlib, importlib, io, os, sys, traceback

sources, modules = sys.argv[1].split("\n"), sys.argv[2].split("\n")
outside = set()
for path in sources:
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            outside.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            outside.add(node.module)
for name in sorted(n for n in outside if n.split(".")[0] != "lienthong"):
    with contextlib.suppress(Exception):
        importlib.import_module(name)
assert not [n for n in sys.modules if n.split(".")[0] == "lienthong"]

failed = []
for module in modules:
    pid = os.fork()
    if pid == 0:
        sys.argv = ["lienthong", "--help"]  # lienthong.node.__main__ runs the command line
        code = 0
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                importlib.import_module(module)
        except SystemExit as exc:
            code = 0 if exc.code in (0, None) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(module)
print("\n".join(failed))
sys.exit(1 if failed else 0)
'''


def _module_names() -> list[str]:
    names = []
    for path in sorted((ROOT / "node").rglob("*.py")):
        parts = path.relative_to(ROOT / "node").with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(("lienthong.node", *parts)))
    return names


def test_every_node_module_imports_first_in_a_fresh_interpreter() -> None:
    modules = _module_names()
    assert "lienthong.node.cli.audit" in modules and "lienthong.node.core.errors" in modules
    sources = [str(p) for folder in PACKAGES for p in sorted((ROOT / folder).rglob("*.py"))]
    result = subprocess.run([sys.executable, "-c", CHECK, "\n".join(sources), "\n".join(modules)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, (
        f"these modules fail when imported first:\n{result.stdout}\n{result.stderr[-6000:]}")
