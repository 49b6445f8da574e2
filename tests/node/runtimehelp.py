"""Node runtimes for unit tests: real keys, store and folders, but no threads and no sockets.

``FakeReactor`` is a ``task.Clock`` that records ``connectSSL`` calls instead of dialling and
runs ``callFromThread`` at once; ``InlineWorkers`` runs "worker thread" jobs on the caller's
thread; the database is ``InlineDatabase``. Everything a unit of work or an io job returns is
therefore already there when the call returns, and the clock only moves when a test says so.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.python.failure import Failure

from lienthong.keys.card import read_card
from lienthong.keys.directory import Peer
from lienthong.keys.identity import parse_time
from lienthong.keys.keystore import load_keystore
from lienthong.node.identity.provision import create_node_home
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.database import open_store
from lienthong.node.store.db_thread import InlineDatabase

NOW = "2026-11-25T08:00:00Z"
EPOCH = parse_time(NOW).timestamp()
PASSPHRASE = b"mat khau thu nghiem"


@dataclass
class Dial:
    host: str
    port: int
    factory: Any
    context_factory: Any
    timeout: float


class FakeReactor(Clock):
    """A clock that starts at ``NOW``, records dials, and runs thread callbacks inline."""

    def __init__(self, start: float = EPOCH) -> None:
        super().__init__()
        self.advance(start)
        self.dials: list[Dial] = []

    def connectSSL(self, host: str, port: int, factory: Any, context_factory: Any,  # noqa: N802
                   timeout: float = 30, bindAddress: Any = None) -> Dial:  # noqa: N803
        dial = Dial(host, port, factory, context_factory, timeout)
        self.dials.append(dial)
        return dial

    def callFromThread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:  # noqa: N802
        fn(*args, **kwargs)

    def due_now(self) -> bool:
        return any(call.getTime() <= self.seconds() for call in self.getDelayedCalls())


class InlineWorkers:
    """The slice of ``ThreadPool`` that ``deferToThreadPool`` uses, run on the caller's thread."""

    def callInThreadWithCallback(self, on_result: Callable[[bool, Any], None],  # noqa: N802
                                 fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException:  # noqa: BLE001 - handed to the Deferred, as a thread pool does
            on_result(False, Failure())
        else:
            on_result(True, result)


@dataclass
class Office:
    name: str
    runtime: NodeRuntime
    card_text: str

    @property
    def node_id(self) -> str:
        return self.runtime.node_id

    @property
    def store(self) -> Any:
        return self.runtime.store


def make_office(base: Path, name: str, reactor: FakeReactor, *, port: int = 7443,
                language: str | None = None) -> Office:
    """A node home with real keys and a real SQLite store, wired to ``reactor``; ``language``
    replaces the configured one (a test that checks English wording)."""
    new = create_node_home(base / name, name=name, display_name=name,
                           listen=f"127.0.0.1:{port}", advertise=[f"127.0.0.1:{port}"],
                           passphrase=PASSPHRASE, now=NOW, kdf="minimal")
    node_keys = load_keystore(new.config.keystore.path, PASSPHRASE)
    config = new.config if language is None else dataclasses.replace(new.config,
                                                                      language=language)
    runtime = NodeRuntime(config=config, keys=node_keys, reactor=reactor,
                          store=open_store(new.config.store.url), database=InlineDatabase(),
                          workers=InlineWorkers())  # type: ignore[arg-type]
    return Office(name, runtime, new.card_path.read_text())


def enrol(office: Office, other: Office) -> None:
    """``office`` trusts ``other`` (as ``lienthong peers add`` would) and reloads its directory."""
    card = read_card(other.card_text)
    office.store.add_peer(Peer.from_card(card, now=NOW), card.token, NOW)
    office.runtime.refresh_directory()
