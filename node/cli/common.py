"""What every ``lienthong`` subcommand shares: the home option and argument, config loading,
the clock, and ``CliError``.

Subcommand modules import these from here, never from node/cli/main.py: main imports every
subcommand module to register it, so an import back from it would be a cycle.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lienthong.config.loader import load_config
from lienthong.config.schema import NodeConfig
from lienthong.node.core.clock import rfc3339
from lienthong.node.core.errors import NodeError
from lienthong.node.language.catalog import DEFAULT_LANGUAGE, checked_language
from lienthong.node.language.text import Phrase

HOME_HELP = "Node home folder (default: $LIENTHONG_HOME, else the current folder)."

#: A subcommand's function, as the option decorators below get and return it.
CommandFunction = TypeVar("CommandFunction", bound=Callable[..., Any])


class CliError(NodeError, click.ClickException):
    """A mistake the person at the command line can fix: one sentence, exit status 2."""

    code = "command-error"
    exit_code = 2
    #: The language the edge said the sentence in (``show`` runs after the command's context
    #: is gone, so it cannot ask ``clerk_language`` itself).
    language: str | None = None

    def format_message(self) -> str:
        """The sentence, in the edge's language when it was made with a Phrase."""
        if self.text is not None:
            return self.text.in_language(self.language or clerk_language())
        return self.message

    def show(self, file: Any = None) -> None:
        """``Error: <sentence>``, the prefix in the clerk's language too."""
        click.echo(Phrase("Error: {message}", message=self.format_message()).in_language(
            self.language or clerk_language()), file=file, err=True)


def home_option(function: CommandFunction) -> CommandFunction:
    return click.option("--home", "home", type=click.Path(path_type=Path), default=None,
                        help=HOME_HELP)(function)


def home_argument(function: CommandFunction) -> CommandFunction:
    """HOME as an optional argument (``status /srv/lienthong``) or ``--home``."""
    function = click.argument("home_arg", required=False, metavar="[HOME]",
                              type=click.Path(path_type=Path))(function)
    return home_option(function)


def resolve_home(home: Path | None) -> Path:
    if home is not None:
        return home
    return Path(os.environ.get("LIENTHONG_HOME", "."))


def new_home(home: Path | None) -> Path:
    """The folder a new home goes into (``init``, ``restore``): HOME, ``--home`` or
    ``$LIENTHONG_HOME``; never the current folder by default, which would fill it unasked."""
    if home is not None:
        return home
    if os.environ.get("LIENTHONG_HOME"):
        return Path(os.environ["LIENTHONG_HOME"])
    raise CliError(Phrase("name the folder for the node: lienthong COMMAND HOME, --home HOME, or "
                          "set LIENTHONG_HOME"))


def open_config(home: Path | None) -> NodeConfig:
    """The node's configuration; a ``ConfigError`` reaches the edge (node/cli/main.py).

    The configured language is remembered on the command's context, so an error raised after
    this point is said in it too (``clerk_language``)."""
    config = load_config(resolve_home(home))
    context = click.get_current_context(silent=True)
    if context is not None:
        root = context.find_root()
        root.meta[CONFIG_LANGUAGE] = config.language
    return config


#: Where ``open_config`` leaves the configured language on the root click context.
CONFIG_LANGUAGE = "lienthong.config_language"
#: Where ``lienthong --lang`` leaves the chosen language.
CHOSEN_LANGUAGE = "lienthong.language"


def clerk_language(config: NodeConfig | None = None) -> str:
    """The language of what this command prints: ``--lang``, else ``$LIENTHONG_LANG``, else
    the node's ``language`` (lienthong.toml), else Vietnamese."""
    context = click.get_current_context(silent=True)
    meta = context.find_root().meta if context is not None else {}
    for choice in (meta.get(CHOSEN_LANGUAGE), os.environ.get("LIENTHONG_LANG"),
                   config.language if config is not None else meta.get(CONFIG_LANGUAGE)):
        if choice:
            return checked_language(choice)
    return DEFAULT_LANGUAGE


def wall_clock_now() -> str:
    """The CLI is the edge of the system: it may read the real clock and pass it inward."""
    return rfc3339(time.time())
