"""Babel extraction for the command line: its strings, and each command's help summary.

A click command's help is its function's docstring, which ``pybabel extract`` does not see.
``extract_commands`` (named in babel.cfg for node/cli/) yields what Babel's Python extractor
finds, plus the first paragraph of the docstring of every function decorated as a command
or group, so the summaries are in the catalog like any other msgid and the catalog test
fails when one is missing. ``summary`` is the same msgid computed from a command's ``help``
at run time (node/cli/main.py shows it in the clerk's language).
"""
from __future__ import annotations

import ast
import inspect
from collections.abc import Collection, Iterator, Mapping
from typing import IO, Any

from babel.messages.extract import extract_python

#: Decorator names that make a function a click command (``main.command()``,
#: ``click.group()``, ``peers.command("add")``...).
COMMAND_DECORATORS = frozenset({"command", "group"})


def summary(help_text: str | None) -> str:
    """The msgid of a help text: its first paragraph, whitespace collapsed."""
    if not help_text:
        return ""
    first = inspect.cleandoc(help_text).split("\n\n", 1)[0]
    return " ".join(first.split())


def _is_command(function: ast.FunctionDef) -> bool:
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in COMMAND_DECORATORS:
            return True
    return False


def extract_commands(fileobj: IO[bytes], keywords: Mapping[str, Any],
                     comment_tags: Collection[str], options: Any
                     ) -> Iterator[tuple[Any, ...]]:
    """Babel's Python extraction of ``fileobj``, plus its commands' help summaries."""
    yield from extract_python(fileobj, keywords, comment_tags, options)
    fileobj.seek(0)
    tree = ast.parse(fileobj.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and _is_command(node):
            text = summary(ast.get_docstring(node, clean=True))
            if text:
                yield node.lineno, None, text, []
