"""What every ``lienthong`` subcommand shares: the home option, config loading, errors."""
from __future__ import annotations

import os
import time
from pathlib import Path

import click

from lienthong.config.loader import load_config
from lienthong.config.schema import ConfigError, NodeConfig
from lienthong.node.core.clock import rfc3339

HOME_HELP = "Node home folder (default: $LIENTHONG_HOME, else the current folder)."


class CliError(click.ClickException):
    exit_code = 2


def home_option(function):  # type: ignore[no-untyped-def]
    return click.option("--home", "home", type=click.Path(path_type=Path), default=None,
                        help=HOME_HELP)(function)


def resolve_home(home: Path | None) -> Path:
    if home is not None:
        return home
    return Path(os.environ.get("LIENTHONG_HOME", "."))


def open_config(home: Path | None) -> NodeConfig:
    try:
        return load_config(resolve_home(home))
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def wall_clock_now() -> str:
    """The CLI is the edge of the system: it may read the real clock and pass it inward."""
    return rfc3339(time.time())
