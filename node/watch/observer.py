"""Starting the watchdog observer for the outbox: which one, how its events are filtered, and
what to say when the system will not let us watch.

Kept apart from ``lienthong.node.watch.watcher`` (the reactor-side state machine) because all
of it is about watchdog and the kernel: inotify's move pairing delay, full events, the inotify
limits.
"""
from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

try:  # Linux: the inotify observer, able to report a move in from outside as a move
    from watchdog.observers.inotify import InotifyObserver
except ImportError:  # pragma: no cover - not Linux
    InotifyObserver = None  # type: ignore[assignment,misc]

from lienthong.node.core.errors import NodeError
from lienthong.node.watch.events import Hints


def _native_observer() -> BaseObserver:
    """inotify with *full* events where available: a file moved in from outside the outbox
    then arrives as a move (a completion event), not as a create (which a writer also makes
    when it starts writing)."""
    if InotifyObserver is not None:
        return InotifyObserver(generate_full_events=True)
    return Observer()


OBSERVERS: dict[str, Callable[[], BaseObserver]] = {"native": _native_observer,
                                                    "polling": PollingObserver}

#: watchdog holds every IN_MOVED_FROM (each take is one) for 0.5 s to pair it, and the events
#: behind it wait; both halves of a rename arrive in one inotify read, so 10 ms still pairs them,
#: and an unpaired move is a delete plus a create, as good a hint (docs/benchmarks.md, History 2).
MOVE_PAIRING_SECONDS = 0.01


def _shorten_move_pairing() -> None:
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    except ImportError:  # not Linux: no inotify backend, nothing held back
        return
    InotifyMoveEventGrouper.delay = MOVE_PAIRING_SECONDS
HINT_EVENTS = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent,
                DirCreatedEvent, DirMovedEvent]
LIMIT_ERRNOS = {errno.ENOSPC: "the system limit on watched folders (inotify watches) is "
                               "reached; raise fs.inotify.max_user_watches",
                 errno.EMFILE: "the system limit on folder watchers (inotify instances) is "
                               "reached; raise fs.inotify.max_user_instances"}


class ObserverUnavailable(NodeError):
    """The observer could not start (``why`` says what to change, e.g. an inotify limit)."""

    code = "watch-unavailable"

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def start_observer(kind: str, outbox: Path, note: Callable[[str, bool], None]) -> BaseObserver:
    """Start the ``kind`` observer on ``outbox``, handing each event's path to ``note`` (on the
    observer thread). Moves are trusted as completion only from inotify (see watch/watcher.py)."""
    _shorten_move_pairing()
    observer = OBSERVERS[kind]()
    trust = (kind == "native" and InotifyObserver is not None
             and isinstance(observer, InotifyObserver))
    observer.schedule(Hints(note, trust_completion=trust), str(outbox), recursive=True,
                      event_filter=HINT_EVENTS)
    try:
        observer.start()
    except OSError as exc:
        raise ObserverUnavailable(LIMIT_ERRNOS.get(exc.errno or 0, exc.strerror or str(exc))
                                  ) from exc
    return observer
