"""The names already used in each inbox folder, remembered between arrivals.

Choosing a name for an arriving document compares it with every name in its folder as a
Windows/SMB/macOS client would (NFC, case-folded; node/core/names.py ``clash_key``). Listing and
folding the whole folder for every arrival made reception quadratic in the folder's size: 3 ms
a document at 1,500 entries, 22 ms at 6,000, 100 ms at 24,000, all under the lock that keeps
two receptions from choosing the same name (docs/benchmarks.md).

So each folder's folded names are listed once and kept with the folder's modification time.
Before a name is chosen the folder is stat'ed (one system call): a changed time means someone
else -- a clerk, an SMB or macOS client, a recall -- changed the folder, and it is listed
again. The node's own changes (the document's link, its ``.meta.json`` and ``.receipt.jws``)
go through ``publish`` and ``write_sidecars`` here, which note the new time instead of forcing
a listing, and each chosen name is remembered with its sidecars from the moment it is
reserved. As a last resort a listing older than ``max_age`` seconds is read again (folders on
file systems with coarse timestamps).

What this can miss: a change by someone else in the microseconds between the node's own
change and its second stat, until ``max_age`` passes. Only a name differing by case or
normalisation alone is at stake: the exact name is always checked on disk
(``choose_inbox_path``) and publication links without ever overwriting.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lienthong.node.core.access import AccessPolicy
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.names import clash_key
from lienthong.node.inbox.layout import (
    BESIDE_SUFFIXES,
    choose_inbox_path,
    write_sidecar_files,
)

#: Seconds a folder's listing is trusted even though its modification time did not change.
MAX_AGE = 30.0


@dataclass
class _Listing:
    mtime_ns: int | None
    listed_at: float
    keys: set[str] = field(default_factory=set)


class InboxNames:
    """Chooses and reserves inbox names; thread-safe (called from the worker pool)."""

    def __init__(self, clock: Callable[[], float], access: AccessPolicy, *,
                 max_age: float = MAX_AGE) -> None:
        self._clock = clock
        #: The modes and group of every folder and file made in the inbox.
        self.access = access
        self._max_age = max_age
        self._lock = threading.Lock()
        self._reserved: set[Path] = set()
        self._listed: dict[Path, _Listing] = {}

    def reserve(self, folder: Path, name: str) -> Path:
        """A free name for ``name`` in ``folder``, held until ``release``."""
        with self._lock:
            listing = self._listing(folder)
            final = choose_inbox_path(folder, name, self.access, self._reserved.__contains__,
                                      present=listing.keys)
            self._reserved.add(final)
            listing.keys.update(clash_key(final.name + suffix)
                                for suffix in ("", *BESIDE_SUFFIXES))
            return final

    def release(self, final: Path) -> None:
        with self._lock:
            self._reserved.discard(final)

    def publish(self, staging: Path, final: Path) -> None:
        """Give the verified staging file its inbox name, never overwriting anything."""
        with self.own_change(final.parent):
            os.link(staging, final)  # FileExistsError rather than replacing a document
            self.access.settle(final)
        fsync_dir(final.parent)
        staging.unlink()
        fsync_dir(staging.parent)

    def write_sidecars(self, final: Path, metadata: Mapping[str, Any], receipt: str) -> None:
        """The metadata JSON and the receipt beside a delivered document, made durable."""
        with self.own_change(final.parent):
            write_sidecar_files(final, metadata, receipt, self.access)
        fsync_dir(final.parent)

    @contextmanager
    def own_change(self, folder: Path) -> Iterator[None]:
        """Around the node's own change of ``folder`` (links, sidecars): its new modification
        time is noted instead of forcing the next reservation to list the folder again."""
        with self._lock:
            before = _mtime_ns(folder)
            yield
            listing = self._listed.get(folder)
            if listing is not None and listing.mtime_ns == before:
                listing.mtime_ns = _mtime_ns(folder)

    def _listing(self, folder: Path) -> _Listing:
        now = self._clock()
        mtime = _mtime_ns(folder)
        listing = self._listed.get(folder)
        if (listing is not None and mtime is not None and listing.mtime_ns == mtime
                and 0 <= now - listing.listed_at < self._max_age):
            return listing
        self.access.make_folder(folder)
        mtime = _mtime_ns(folder)  # before listing: a change during the listing shows next time
        listing = _Listing(mtime, now, {clash_key(entry) for entry in os.listdir(folder)})
        self._listed[folder] = listing
        return listing


def _mtime_ns(folder: Path) -> int | None:
    try:
        return os.stat(folder).st_mtime_ns
    except FileNotFoundError:
        return None
