"""Noticing complete files in the outbox: hints, reconcile, stable, hand over.

Theory of operation (docs/design.md §5.1)
----------------------------------------
Folder events are *hints*. inotify drops events when its queue overflows, sees nothing on
network shares, and no watcher replays what happened while the node was down; so the truth
is a walk of the outbox, at start, every ``scan_interval`` seconds, and at once after
watchdog logs a queue overflow. Both sources feed one function, ``_consider(path)``.

A watchdog callback runs on the observer's thread and does nothing but pass the path to the
reactor thread with ``call_from_thread``. Everything else, including every ``lstat``, runs on
the reactor thread, so the candidate table needs no lock. The walk is done in batches of
``scan_batch`` entries (``callLater(0)`` between them) so that 100,000 files never block the
reactor for long.

Each candidate path is in one state (``ABSENT`` means "not in the table")::

    (state,        event)          -> state         action
    (ABSENT,       seen-regular)   -> SETTLING      remember signature, look again later
    (ABSENT,       seen-special)   -> HANDED_OVER   on_ready now (symlink, FIFO, socket...)
    (SETTLING,     changed)        -> SETTLING      new signature, restart the quiet window
    (SETTLING,     still)          -> HANDED_OVER   on_ready(path, target)
    (SETTLING,     became-special) -> HANDED_OVER   on_ready now (replaced by a link...)
    (SETTLING,     gone)           -> ABSENT
    (HANDED_OVER,  seen)           -> HANDED_OVER   note it, in case the name was reused
    (HANDED_OVER,  done)           -> ABSENT        consider again if it was seen meanwhile

The signature is ``(size, mtime_ns, ctime_ns, inode)`` from ``lstat``; a file is *still* when
its signature is unchanged across a quiet window of ``stable_seconds``. Every hint (created,
modified, closed, moved-in) re-samples the file, and a change restarts the window, so a file
that keeps growing (with or without events) never becomes ready. This is a heuristic (a
writer that pauses longer than the window looks finished); intake re-checks size and mtime
after moving the file and puts it back if it changed.

A move skips the window. With the native inotify observer, a move *into* a name under the
outbox (``IN_MOVED_TO``: a careful program writes elsewhere and renames, which is atomic) says
the file is complete now, so a regular file with one link is handed over at once, after the
one ``lstat`` this look makes (``complete`` in the table). Waiting a window after a rename only
added its length to every delivery (docs/benchmarks.md, "single"). A *close* after writing
(``IN_CLOSE_WRITE``) is not trusted the same way: a writer that opens, appends and closes
again (a scanner adding pages, a log-like export) would have its first part sent alone, so it
keeps the window. Scans, the polling observer (whose "moves" are guesses from two snapshots)
and created/modified/closed hints wait for the window; a hard-linked file also waits (intake
refuses it anyway).

    (ABSENT,       complete)       -> HANDED_OVER   on_ready now (moved in)
    (SETTLING,     complete)       -> HANDED_OVER   on_ready now

Entries that are not regular files are handed over at once, never opened, so the node can
refuse them into ``failed/``; so are files directly in ``outbox/`` once still (the node
refuses those too). A path handed over stays out of the table's reach until the node calls
``done(path)``, so the same unchanged file is never reported twice while it is being taken.
"""
from __future__ import annotations

import logging
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Literal

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from watchdog.observers.api import BaseObserver

from lienthong.node.core.names import is_noise
from lienthong.node.watch.events import OVERFLOW_LOGGERS, HintQueue, OverflowHook
from lienthong.node.watch.observer import OBSERVERS, ObserverUnavailable, start_observer

Signature = tuple[int, int, int, int]

log = Logger(namespace="lienthong.watcher")


class State(Enum):
    SETTLING = "settling"
    HANDED_OVER = "handed-over"


ABSENT = None
TRANSITIONS: dict[tuple[State | None, str], State | None] = {
    (ABSENT, "seen-regular"): State.SETTLING,
    (ABSENT, "seen-special"): State.HANDED_OVER,
    (ABSENT, "complete"): State.HANDED_OVER,
    (State.SETTLING, "changed"): State.SETTLING,
    (State.SETTLING, "complete"): State.HANDED_OVER,
    (State.SETTLING, "still"): State.HANDED_OVER,
    (State.SETTLING, "became-special"): State.HANDED_OVER,
    (State.SETTLING, "gone"): ABSENT,
    (State.HANDED_OVER, "seen"): State.HANDED_OVER,
    (State.HANDED_OVER, "done"): ABSENT,
}


@dataclass(slots=True)
class _Candidate:
    state: State | None
    signature: Signature | None = None
    look: IDelayedCall | None = None
    seen_again: bool = False


class OutboxWatcher:
    """Reports each complete file under ``outbox`` once, as ``on_ready(path, target)``.

    ``target`` is the first folder under the outbox (a peer or group name); it is ``""``
    for an entry directly in the outbox. Deeper folders are the node's business (a
    document-type hint). The node calls ``done(path)`` when it has finished with a path.
    """

    def __init__(self, clock: IReactorTime, outbox: Path,
                 on_ready: Callable[[Path, str], None], *,
                 call_from_thread: Callable[..., None],
                 observer: Literal["native", "polling"] = "native",
                 scan_interval: float = 30.0, stable_seconds: float = 1.0,
                 max_pending: int = 100_000, scan_batch: int = 1000) -> None:
        if observer not in OBSERVERS:
            raise ValueError(f"observer must be one of {sorted(OBSERVERS)}, not {observer!r}")
        self._clock = clock
        self._outbox = Path(os.path.abspath(outbox))
        self._on_ready = on_ready
        self._call_from_thread = call_from_thread
        self._observer_kind = observer
        self._scan_interval = scan_interval
        self._stable_seconds = stable_seconds
        self._max_pending = max_pending
        self._scan_batch = scan_batch
        self._candidates: dict[Path, _Candidate] = {}
        self._observer: BaseObserver | None = None
        self._overflow_hook = OverflowHook(lambda: call_from_thread(self._overflowed))
        self._loop: LoopingCall | None = None
        self._running = False
        # Scan state: folders still to read, the listing being read, the next batch.
        self._folders: deque[Path] = deque()
        self._listing: Iterator[os.DirEntry[str]] | None = None
        self._scan_call: IDelayedCall | None = None
        self._scan_again = False
        self._full_noted = False
        self._hints = HintQueue(clock, call_from_thread, self._hint)

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Hook the overflow warning, start the observer (or fall back), and scan."""
        self._running = True
        self._hints.start()
        for name in OVERFLOW_LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(self._overflow_hook)
            if logger.getEffectiveLevel() > logging.WARNING:
                logger.setLevel(logging.WARNING)  # the overflow warning must reach us
        self._start_observer()
        self._loop = LoopingCall(self._periodic)
        self._loop.clock = self._clock
        self._loop.start(self._scan_interval, now=False)
        self.request_scan()

    def stop(self) -> None:
        """Stop watching; cancels every pending look so no delayed call is left behind."""
        self._running = False
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        for name in OVERFLOW_LOGGERS:
            logging.getLogger(name).removeHandler(self._overflow_hook)
        self._stop_observer()
        if self._scan_call is not None and self._scan_call.active():
            self._scan_call.cancel()
        self._scan_call = None
        self._close_listing()
        self._folders.clear()
        for candidate in self._candidates.values():
            if candidate.look is not None and candidate.look.active():
                candidate.look.cancel()
        self._candidates.clear()
        self._hints.stop()

    @property
    def watching(self) -> bool:
        """True while folder events arrive; False when only scans find files."""
        return self._observer is not None

    @property
    def pending(self) -> int:
        """Paths waiting to become still, plus paths handed over and not yet done."""
        return len(self._candidates)

    def state_of(self, path: Path) -> State | None:
        candidate = self._candidates.get(Path(os.path.abspath(path)))
        return None if candidate is None else candidate.state

    def done(self, path: Path) -> None:
        """The node has finished with ``path`` (taken, refused or left in place)."""
        path = Path(os.path.abspath(path))
        candidate = self._candidates.get(path)
        if candidate is None or candidate.state is not State.HANDED_OVER:
            return
        self._transition(path, candidate, "done")
        if candidate.seen_again and self._running:
            self._consider(path)

    def request_scan(self) -> None:
        """Walk the whole outbox soon; if a walk is under way, walk again after it."""
        if not self._running:
            return
        if self._scan_call is not None or self._listing is not None or self._folders:
            self._scan_again = True
            return
        self._full_noted = False
        self._folders.append(self._outbox)
        self._scan_call = self._clock.callLater(0, self._scan_step)

    # -- observer --------------------------------------------------------------------------

    def _start_observer(self) -> None:
        try:
            self._observer = start_observer(self._observer_kind, self._outbox, self._hints.note)
        except ObserverUnavailable as exc:
            log.error("cannot watch {outbox} for new files: {why}. Falling back to scanning "
                      "every {interval} s: files will still be sent, but noticed later.",
                      outbox=str(self._outbox), why=exc.why, interval=self._scan_interval)
            self._observer = None

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            if observer.is_alive():
                observer.join(timeout=5)

    def _observer_healthy(self) -> bool:
        observer = self._observer
        return observer is not None and observer.is_alive() and all(
            emitter.is_alive() for emitter in observer.emitters)

    def _hint(self, path: str, complete: bool = False) -> None:
        if self._running:
            self._consider(Path(path), complete=complete)

    def _overflowed(self) -> None:
        if not self._running:
            return
        log.warn("folder events were lost (inotify queue overflow); rescanning the outbox")
        self.request_scan()

    def _periodic(self) -> None:
        try:
            if self._observer is not None and not self._observer_healthy():
                log.warn("the outbox watcher stopped; restarting it")
                self._stop_observer()
                self._start_observer()
        except Exception:
            # Never let this end the LoopingCall: the periodic scan is the safety net.
            log.failure("could not restart the outbox watcher; scanning only")
            self._observer = None
        self.request_scan()

    # -- scanning --------------------------------------------------------------------------

    def _scan_step(self) -> None:
        self._scan_call = None
        budget = self._scan_batch
        while budget > 0 and self._running:
            if self._listing is None:
                if not self._folders:
                    break
                try:
                    self._listing = os.scandir(self._folders.popleft())
                except OSError as exc:
                    log.warn("cannot list {folder}: {error}", folder=exc.filename,
                                  error=exc.strerror)
                    continue
            try:
                entry = next(self._listing)
            except StopIteration:
                self._close_listing()
                continue
            except OSError as exc:
                log.warn("listing stopped early: {error}", error=exc.strerror)
                self._close_listing()
                continue
            budget -= 1
            if is_noise(entry.name):
                continue
            if entry.is_dir(follow_symlinks=False):
                self._folders.append(Path(entry.path))
            elif not self._seen_handed_over(Path(entry.path)):
                self._consider(Path(entry.path))
        if not self._running:
            return
        if self._listing is not None or self._folders:
            self._scan_call = self._clock.callLater(0, self._scan_step)
        elif self._scan_again:
            self._scan_again = False
            self.request_scan()

    def _seen_handed_over(self, path: Path) -> bool:
        """A scan found a file that is already handed over (waiting its turn at intake): note
        the sighting, as ``_consider`` would, without its ``lstat`` and path work.

        With thousands of files waiting, every scan looked at each of them again (62 ms per
        scan at 2,000, 280 ms at 8,000 on the benchmark machine; scans run every second there),
        which slowed intake in proportion to the backlog. ``entry.path`` is already absolute
        and normalised (the walk starts at the absolute outbox), so it is the table's key.
        """
        candidate = self._candidates.get(path)
        if candidate is None or candidate.state is not State.HANDED_OVER:
            return False
        self._transition(path, candidate, "seen")
        candidate.seen_again = True
        return True

    def _close_listing(self) -> None:
        if self._listing is not None:
            self._listing.close()  # type: ignore[attr-defined]
            self._listing = None

    # -- candidates ------------------------------------------------------------------------

    def _consider(self, path: Path, *, complete: bool = False) -> None:
        """One look at one path, from a hint or a scan; ``complete``: it was moved in."""
        path = Path(os.path.abspath(path))
        target = self._target_of(path)
        if target is None:
            return
        candidate = self._candidates.get(path)
        try:
            st = os.lstat(path)
        except OSError:
            if candidate is not None and candidate.state is State.SETTLING:
                self._forget(path, candidate)
            elif candidate is not None:
                candidate.seen_again = True
            return
        if stat.S_ISDIR(st.st_mode):
            if candidate is not None and candidate.state is State.SETTLING:
                self._forget(path, candidate)
            self._folders.append(path)  # a folder moved in: walk it
            if self._scan_call is None and self._listing is None:
                self._scan_call = self._clock.callLater(0, self._scan_step)
            return
        regular = stat.S_ISREG(st.st_mode)
        ready_now = complete and regular and st.st_nlink == 1
        if candidate is None:
            if len(self._candidates) >= self._max_pending:
                self._note_full()
                return
            candidate = _Candidate(state=ABSENT)
            if not regular:
                self._hand_over(path, candidate, target, "seen-special")
                return
            if ready_now:
                self._hand_over(path, candidate, target, "complete")
                return
            self._transition(path, candidate, "seen-regular")
            candidate.signature = _signature(st)
            candidate.look = self._clock.callLater(self._stable_seconds, self._look, path)
            return
        if candidate.state is State.HANDED_OVER:
            self._transition(path, candidate, "seen")
            candidate.seen_again = True
            return
        signature = _signature(st)
        if not regular:
            self._hand_over(path, candidate, target, "became-special")
        elif ready_now:
            self._hand_over(path, candidate, target, "complete")
        elif signature != candidate.signature:
            self._transition(path, candidate, "changed")
            candidate.signature = signature
            if candidate.look is not None and candidate.look.active():
                candidate.look.reset(self._stable_seconds)

    def _look(self, path: Path) -> None:
        """The quiet window is over: hand the file over if it did not change during it."""
        candidate = self._candidates[path]
        candidate.look = None
        target = self._target_of(path) or ""
        try:
            st = os.lstat(path)
        except OSError:
            self._forget(path, candidate)
            return
        if stat.S_ISDIR(st.st_mode):
            self._forget(path, candidate)
            return
        signature = _signature(st)
        if stat.S_ISREG(st.st_mode) and signature != candidate.signature:
            self._transition(path, candidate, "changed")
            candidate.signature = signature
            candidate.look = self._clock.callLater(self._stable_seconds, self._look, path)
            return
        self._hand_over(path, candidate, target, "still")

    def _hand_over(self, path: Path, candidate: _Candidate, target: str, event: str) -> None:
        if candidate.look is not None and candidate.look.active():
            candidate.look.cancel()
        candidate.look = None
        candidate.seen_again = False
        self._transition(path, candidate, event)
        try:
            self._on_ready(path, target)
        except Exception:
            # The node's bug must not stop the watcher; the path stays handed over.
            log.failure("on_ready failed for {path!r}", path=str(path))

    def _forget(self, path: Path, candidate: _Candidate) -> None:
        if candidate.look is not None and candidate.look.active():
            candidate.look.cancel()
        self._transition(path, candidate, "gone")

    def _transition(self, path: Path, candidate: _Candidate, event: str) -> None:
        key = (candidate.state, event)
        if key not in TRANSITIONS:
            raise RuntimeError(f"watcher: no transition from {candidate.state} on {event}")
        after = TRANSITIONS[key]
        if after is ABSENT:
            self._candidates.pop(path, None)
        else:
            candidate.state = after
            self._candidates[path] = candidate

    def _note_full(self) -> None:
        if not self._full_noted:
            self._full_noted = True
            log.warn("more than {limit} files are waiting in the outbox; the rest will "
                          "be picked up by a later scan", limit=self._max_pending)

    def _target_of(self, path: Path) -> str | None:
        """First folder under the outbox; ``""`` directly in it; None outside or for noise."""
        try:
            parts = path.relative_to(self._outbox).parts
        except ValueError:
            return None
        if not parts or any(is_noise(part) for part in parts):
            return None
        return parts[0] if len(parts) > 1 else ""


def _signature(st: os.stat_result) -> Signature:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino
