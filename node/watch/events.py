"""What the observer thread hands to the reactor: folder events as hints, and overflows.

watchdog calls its handlers on its own thread. The watcher's state lives on the reactor, so
the handler here only notes paths (``Hints`` → ``HintQueue.note``) and the reactor looks at
them later (``HintQueue`` → the watcher's ``_hint``). A drop of thousands of files raises
several events each; noting them per path in a dict merges the repeats, the reactor is
woken once for a whole burst rather than once per event, and it looks at no more than
``HINT_BATCH`` paths a turn, so the status API and transfers keep being served meanwhile.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from itertools import islice
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from watchdog.events import DirMovedEvent, FileMovedEvent, FileSystemEvent, FileSystemEventHandler

#: Loggers on which watchdog 7.1 reports an inotify queue overflow. It logs the warning
#: but sends the handler no event (inotify_c.py: "Inotify queue overflowed; filesystem
#: events were lost"; inotify.py: "... reconciling recursive watches below ..." and
#: "Unable to rebuild recursive inotify watches below ...").
OVERFLOW_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")
_OVERFLOW_MARKERS = ("overflow", "unable to rebuild")

#: Hinted paths the reactor looks at per turn.
HINT_BATCH = 200


class HintQueue:
    """Paths noted on the observer thread, delivered to ``deliver`` on the reactor."""

    def __init__(self, clock: IReactorTime, call_from_thread: Callable[..., None],
                 deliver: Callable[[str, bool], None]) -> None:
        self._clock = clock
        self._call_from_thread = call_from_thread
        self._deliver = deliver
        self._lock = threading.Lock()
        self._noted: dict[str, bool] = {}   # path -> moved in (so complete)
        self._handed = False                # a delivery is queued or running on the reactor
        self._call: IDelayedCall | None = None
        self._stopped = False

    def note(self, path: str, complete: bool = False) -> None:
        """Observer thread: note the path; wake the reactor once for all notes since."""
        with self._lock:
            self._noted[path] = self._noted.get(path, False) or complete
            if self._handed:
                return
            self._handed = True
        self._call_from_thread(self.deliver_hints)

    def deliver_hints(self) -> None:
        """Reactor: deliver up to HINT_BATCH noted paths, then yield to other work."""
        self._call = None
        with self._lock:
            batch = [(path, self._noted.pop(path))
                     for path in list(islice(self._noted, HINT_BATCH))]
            more = bool(self._noted) and not self._stopped
            if not more:
                self._handed = False
        for path, complete in batch:
            self._deliver(path, complete)
        if more:
            self._call = self._clock.callLater(0, self.deliver_hints)

    def start(self) -> None:
        self._stopped = False

    def stop(self) -> None:
        """Forget what is noted and leave no delayed call behind."""
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        with self._lock:
            self._noted.clear()
            self._handed = False


class Hints(FileSystemEventHandler):
    """Runs on the observer thread: passes paths on, touches no shared state.

    With ``trust_completion``, a file moved in is passed on as complete (inotify only; the
    polling observer's moves are guesses).
    """

    def __init__(self, deliver: Callable[[str, bool], None], *,
                 trust_completion: bool = False) -> None:
        self._deliver = deliver
        self._trust = trust_completion

    def on_any_event(self, event: FileSystemEvent) -> None:
        moved = isinstance(event, (FileMovedEvent, DirMovedEvent))
        path = event.dest_path if moved else event.src_path
        if path:
            complete = self._trust and isinstance(event, FileMovedEvent)
            self._deliver(os.fsdecode(path), complete)


class OverflowHook(logging.Handler):
    """Turns watchdog's overflow warning (logged on the observer thread) into a rescan."""

    def __init__(self, rescan: Callable[[], Any]) -> None:
        super().__init__(level=logging.WARNING)
        self._rescan = rescan

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().lower()
        except Exception:  # a malformed record must not break watchdog's thread
            return
        if any(marker in message for marker in _OVERFLOW_MARKERS):
            self._rescan()
