"""Structured logs: JSON lines to ``logs/lienthong.jsonl`` and readable text to stderr.

Log events carry fields (peer, message_id, digest, error code), never key material or
passphrases; names from peers are logged as data through ``{name!r}``-style formatting so a
control character cannot forge a log line.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    jsonFileLogObserver,
    textFileLogObserver,
)

from lienthong.node.core.access import AccessPolicy

#: The JSON log, inside ``logs/``.
LOG_FILE = "lienthong.jsonl"


def start_logging(log_dir: Path, access: AccessPolicy, *, verbose: bool = False,
                  stderr: bool = True) -> None:
    """Send Twisted's log events to a JSON file (everything; readable as the access rule
    says, node/core/access.py) and stderr (info and above)."""
    access.make_folder(log_dir)
    fd = access.create(log_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC)
    json_file = open(fd, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    observers: list[ILogObserver] = [jsonFileLogObserver(json_file)]
    if stderr:
        level = LogLevel.debug if verbose else LogLevel.info
        observers.append(FilteringLogObserver(
            textFileLogObserver(sys.stderr),
            [LogLevelFilterPredicate(defaultLogLevel=level)]))
    globalLogBeginner.beginLoggingTo(observers, redirectStandardIO=False)
