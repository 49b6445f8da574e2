"""Structured logs: JSON lines to ``logs/lienthong.jsonl`` and readable text to stderr.

Log events carry fields (peer, message_id, digest, error code), never key material or
passphrases; names from peers are logged as data through ``{name!r}``-style formatting so a
control character cannot forge a log line.
"""
from __future__ import annotations

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


def start_logging(log_dir: Path, *, verbose: bool = False, stderr: bool = True) -> None:
    """Send Twisted's log events to a JSON file (everything) and stderr (info and above)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    json_file = open(log_dir / "lienthong.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    observers: list[ILogObserver] = [jsonFileLogObserver(json_file)]
    if stderr:
        level = LogLevel.debug if verbose else LogLevel.info
        observers.append(FilteringLogObserver(
            textFileLogObserver(sys.stderr),
            [LogLevelFilterPredicate(defaultLogLevel=level)]))
    globalLogBeginner.beginLoggingTo(observers, redirectStandardIO=False)
