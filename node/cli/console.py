"""``lienthong console``: the status screen, refreshed, for an operator who leaves it open.

Theory of operation
-------------------
The screen is ``lienthong.node.status.render.render_status`` redrawn every ``refresh`` seconds
with a fresh snapshot (``lienthong.node.status.gather.gather``: the store, plus the daemon's
live part when it answers). Keys are read without blocking from the terminal in cbreak mode,
one ``select`` with the time left until the next refresh, so a key press redraws at once.

The view is a small explicit state machine (``press``; pure, so tests drive it key by key)::

    STATUS --p--> STATUS (next peer filter: all, peer 1, ..., peer n, all)
    STATUS --t--> TYPING --Enter--> TRAIL (the document the typed text names)
                  TYPING --Esc----> STATUS
    TRAIL  --t--> TYPING    TRAIL --Esc/b--> STATUS
    any    --q--> QUIT      (and Ctrl-C)

When standard input or output is not a terminal (a pipe, a cron job, ssh without -t), there
is nothing to read keys from: the console prints one snapshot, says so, and exits 0.
"""
from __future__ import annotations

import os
import select
import sys
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.text import Text

from lienthong.config.schema import NodeConfig
from lienthong.node.language.catalog import DEFAULT_LANGUAGE, translate
from lienthong.node.language.text import Phrase
from lienthong.node.status.cells import clean
from lienthong.node.status.gather import gather
from lienthong.node.status.health import Thresholds
from lienthong.node.status.render import render_status
from lienthong.node.status.render_trail import render_trail
from lienthong.node.status.trail import build_trail
from lienthong.node.store.database import Store, open_store


class Mode(Enum):
    STATUS = "status"
    TYPING = "typing"
    TRAIL = "trail"
    QUIT = "quit"


ESC = "\x1b"
ENTER = ("\r", "\n")
BACKSPACE = ("\x7f", "\x08")
MAX_TYPED = 80


@dataclass(frozen=True, slots=True)
class View:
    """What the console shows; changed only by ``press``."""

    mode: Mode = Mode.STATUS
    peer: str | None = None
    typed: str = ""
    query: str | None = None


def press(view: View, key: str, peers: Sequence[str]) -> View:
    """The view after one key press (``peers``: names the filter cycles through)."""
    if view.mode is Mode.TYPING:
        if key in ENTER:
            typed = view.typed.strip()
            return replace(view, mode=Mode.TRAIL, query=typed, typed="") if typed else \
                replace(view, mode=Mode.STATUS, typed="")
        if key == ESC:
            return replace(view, mode=Mode.STATUS, typed="")
        if key in BACKSPACE:
            return replace(view, typed=view.typed[:-1])
        if key.isprintable() and len(view.typed) < MAX_TYPED:
            return replace(view, typed=view.typed + key)
        return view
    if key in ("q", "Q"):
        return replace(view, mode=Mode.QUIT)
    if key in ("t", "T"):
        return replace(view, mode=Mode.TYPING, typed="")
    if view.mode is Mode.TRAIL and key in (ESC, "b", "B"):
        return replace(view, mode=Mode.STATUS, query=None)
    if key in ("p", "P") and view.mode is Mode.STATUS:
        order = [None, *peers]
        position = order.index(view.peer) if view.peer in order else 0
        return replace(view, peer=order[(position + 1) % len(order)])
    return view


def split_keys(data: str) -> list[str]:
    """Keys in what the terminal sent; escape sequences (arrows, F-keys) are dropped whole."""
    if data == ESC:
        return [ESC]
    if data.startswith(ESC):
        return []
    return list(data)


@contextmanager
def key_reader(stream: Any = None) -> Iterator[Any]:
    """Put the terminal in cbreak mode (keys unbuffered, Ctrl-C still works) and restore it."""
    import termios
    import tty
    stream = stream or sys.stdin
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)

        def read(timeout: float) -> list[str]:
            ready, _, _ = select.select([fd], [], [], max(timeout, 0.0))
            if not ready:
                return []
            data = os.read(fd, 64).decode("utf-8", errors="replace")
            return split_keys(data)

        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def resolve(store: Store, query: str, lang: str = DEFAULT_LANGUAGE) -> tuple[str | None, str]:
    """The message ID a typed query names, or None and what to tell the operator (in
    ``lang``)."""
    query = unicodedata.normalize("NFC", query.strip())
    lowered = query.lower()
    if len(lowered) == 32 and all(c in "0123456789abcdef" for c in lowered):
        return lowered, ""
    found = store.find_message_ids(query, limit=20)
    if len(found) == 1:
        return found[0], ""
    if not found:
        return None, Phrase("Nothing matches {query} (type a message ID, its first 6+ "
                            "characters, a SHA-256 or part of a document name).",
                            query=repr(clean(query, 80))).in_language(lang)
    return None, Phrase("{count} documents match {query}: {found}. Type more of the ID.",
                        count=len(found), query=repr(clean(query, 80)),
                        found=", ".join(found[:6]) + (" …" if len(found) > 6 else "")
                        ).in_language(lang)


def key_help(view: View, lang: str = DEFAULT_LANGUAGE) -> Text:
    line = Text(style="reverse")
    if view.mode is Mode.TYPING:
        line.append(Phrase(" Message ID, SHA-256 or name: {typed}█ ",
                           typed=clean(view.typed, MAX_TYPED)).in_language(lang))
        line.append(translate(lang, " [Enter] show  [Esc] cancel "))
        return line
    line.append(Phrase(" [p] peer: {peer} ", peer=clean(view.peer) if view.peer
                       else translate(lang, "all")).in_language(lang))
    line.append(translate(lang, " [t] trail of a document "))
    if view.mode is Mode.TRAIL:
        line.append(translate(lang, " [Esc] back "))
    line.append(translate(lang, " [q] quit "))
    return line


def screen(store: Store, view: View, snapshot: dict[str, Any],
           lang: str = DEFAULT_LANGUAGE) -> RenderableType:
    """What to draw for ``view`` (a trail is read fresh from the store on every refresh)."""
    help_line = key_help(view, lang)
    if view.mode is Mode.TRAIL and view.query:
        message_id, problem = resolve(store, view.query, lang)
        if message_id is None:
            return Group(Text(problem, style="yellow"), help_line)
        now = time.time()
        return Group(render_trail(build_trail(store, message_id), now=now, lang=lang),
                     help_line)
    return render_status(snapshot, peer=view.peer, footer=help_line, lang=lang)


def run_console(config: NodeConfig, *, refresh: float = 2.0,
                thresholds: Thresholds | None = None, console: Console | None = None,
                lang: str = DEFAULT_LANGUAGE) -> int:
    """Run until 'q' or Ctrl-C; without a terminal, print one snapshot and return."""
    from rich.live import Live

    console = console or Console(highlight=False)
    if not sys.stdin.isatty() or not console.is_terminal:
        console.print(render_status(gather(config, thresholds=thresholds), lang=lang))
        console.print(translate(lang, "(lienthong console needs an interactive terminal; this "
                                      "was one snapshot. Use 'lienthong status' in scripts.)"))
        return 0
    store = open_store(config.store.url)
    view = View()
    try:
        with key_reader() as read_keys, Live(console=console, screen=True,
                                              auto_refresh=False) as live:
            snapshot = gather(config, thresholds=thresholds, store=store)
            next_refresh = time.monotonic() + refresh
            while True:
                live.update(screen(store, view, snapshot, lang), refresh=True)
                for key in read_keys(next_refresh - time.monotonic()):
                    view = press(view, key, [p["name"] for p in snapshot["peers"]])
                if view.mode is Mode.QUIT:
                    return 0
                if time.monotonic() >= next_refresh:
                    snapshot = gather(config, thresholds=thresholds, store=store)
                    next_refresh = time.monotonic() + refresh
    except KeyboardInterrupt:
        return 0
    finally:
        store.close()
