"""A year of the three offices' traffic, played through real nodes (``lienthong demo --year``).

For tests and demonstrations of the yearly report: the demo network (node/app/demo.py) is
created, its three nodes run in this process (real TLS on loopback, real SQLite stores, real
outbox watchers), and a plan of the year is played through them as clerks would: files with
sidecars dropped into outboxes, statuses and recalls asked for through the store as
``lienthong mark`` and ``lienthong recall`` do, the monthly reconciliation and the audit heads
sent to the peers at the start of every month.

How a year fits in a few minutes: the three nodes share one injected wall clock
(``HistoryClock``; docs/design.md §7: everything stored or signed reads the runtime's wall
clock, timers run on the monotonic clock). Before each step of the plan the clock is set to
that step's office time (09:00 in Vietnam on the day); between steps it runs ``RATE`` times
faster than real time, so a delivery that takes 0.5 s is recorded as about 30 s. Nothing else
is faked: every envelope, receipt, status and witness is made and checked by the nodes.

Outages: two offices go down for a while, as offices do (``Outage``): ``ubnd`` is unreachable
for two days in May, ``hdnd``'s node is stopped over a weekend in September. The generator
stops that node (listener, links, watcher, database: ``Node.stop``, as ``lienthong stop``)
at the outage's start on the shared clock and starts it again at its end, from its home as a
restart would. What the others send it meanwhile waits in their queues and their links retry
(``retry_max`` is 5 s in the generated homes: 5 office minutes at 60 times, as 300 s is for a
real office), so those documents' receipts, and the report's latency figures, show the
outage. The down office sends nothing and acts on nothing during its outage: the plan moves
its work to the day it is back.

The plan (node/app/year_plan.py) is deterministic for a year (a seeded ``random.Random``) and
written beside the homes as ``history.json``: what was sent, by whom, to whom, of which type and
month, which programmes were late or missing, what was recalled and refused, and the outages,
so tests compare the reports with what really happened.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, cast

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.logger import Logger

from lienthong.config.loader import CONFIG_FILE_NAME, load_config
from lienthong.node.app.demo import (
    SampleDocument,
    create_network,
    open_keys,
    prepare_folder,
    write_sample,
)
from lienthong.node.app.node import Node, build_runtime
from lienthong.node.app.year_plan import (
    Outage,
    Plan,
    PlannedAction,
    PlannedDocument,
    office_time,
)
from lienthong.node.core.clock import rfc3339
from lienthong.node.identity.provision import NewNode

log = Logger(namespace="lienthong.history")

#: Office seconds per real second between the steps of the plan.
RATE = 60.0
#: Real seconds to wait for one step (deliveries, statuses) before giving up.
STEP_TIMEOUT = 60.0
COORDINATION = """
[coordination]
consolidating_office = "tinhuy"
kinds = ["annual", "quarterly", "monthly"]
since = {since}
"""


class HistoryClock:
    """The wall clock the three nodes share: set to each step's time, then running ``rate``
    times faster than real time until the next step. Never set backwards."""

    def __init__(self, start: float, rate: float = RATE,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._monotonic = monotonic
        self._base = start
        self._anchor = monotonic()

    def __call__(self) -> float:
        return self._base + (self._monotonic() - self._anchor) * self.rate

    def set(self, moment: float) -> None:
        self._base = max(moment, self())
        self._anchor = self._monotonic()


Reporter = Callable[[str], None]


class HistoryRun:
    """Plays a plan through three nodes in this process (call ``run`` under the reactor)."""

    def __init__(self, reactor: Any, folder: Path, plan: Plan, *,
                 report: Reporter = lambda line: None) -> None:
        self.reactor = reactor
        self.folder = folder
        self.plan = plan
        self.report = report
        self.clock = HistoryClock(office_time(f"{plan.year}-01-01", 8))
        self.homes: dict[str, NewNode] = {}
        self.nodes: dict[str, Node] = {}
        self.databases: dict[str, Any] = {}
        self.message_ids: dict[str, str] = {}
        self._sent: dict[str, str] = {}
        #: Offices whose node is stopped now, and documents sent to them meanwhile (their
        #: receipts are awaited once they are back).
        self.down: set[str] = set()
        self.held: list[PlannedDocument] = []

    def create(self) -> None:
        prepare_folder(self.folder)
        start = rfc3339(office_time(f"{self.plan.year}-01-01", 0) - 86400)
        self.homes = create_network(self.folder, now=start)
        for name, new in self.homes.items():
            config_file = new.config.home / CONFIG_FILE_NAME
            text = config_file.read_text(encoding="utf-8")
            # The retry schedule in office time: 5 s at RATE times is 5 office minutes, as
            # 300 s is for a real office (a link back from an outage waits no longer).
            text = text.replace("retry_max = 300.0", "retry_max = 5.0")
            config_file.write_text(text + COORDINATION.format(since=f"{self.plan.year}-01-01"),
                                   encoding="utf-8")
            self.homes[name] = NewNode(load_config(new.config.home), new.node_id,
                                       new.card_path)

    @inlineCallbacks
    def start_node(self, name: str) -> Generator[Deferred[Any], Any, None]:
        """Start ``name``'s node from its home, as ``lienthong start`` does."""
        config = self.homes[name].config
        runtime, self.databases[name] = build_runtime(
            self.reactor, config, open_keys(config), wall_clock=self.clock)
        self.nodes[name] = Node(runtime)
        yield self.nodes[name].start()

    @inlineCallbacks
    def stop_node(self, name: str) -> Generator[Deferred[Any], Any, None]:
        """Stop ``name``'s node as its process ending would: ``Node.stop``, then every
        connection it still holds cut (a process that exits leaves none open; in this process
        a transfer closed gracefully would keep the peer's side of it busy)."""
        node, database = self.nodes.pop(name), self.databases.pop(name)
        yield node.stop()
        transports = [link.proto.transport for link in node.links.values()
                      if link.proto is not None]
        transports += [proto.transport for proto in node.receiver_factory.connections]
        for transport in transports:
            if transport is not None:
                cast(Any, transport).abortConnection()  # TCP and TLS transports have it
        yield database.stop()

    @inlineCallbacks
    def outage_begins(self, outage: Outage) -> Generator[Deferred[Any], Any, None]:
        self.clock.set(office_time(outage.start_day, outage.start_hour))
        yield self.stop_node(outage.office)
        self.down.add(outage.office)
        self.report(f"{outage.start}: {outage.office} down ({outage.why})")

    @inlineCallbacks
    def outage_ends(self, outage: Outage) -> Generator[Deferred[Any], Any, None]:
        """Start the office again and wait for what the others sent it meanwhile."""
        self.clock.set(office_time(outage.end_day, outage.end_hour))
        yield self.start_node(outage.office)
        self.down.discard(outage.office)
        held = [d for d in self.held if not self.down & set(d.recipients)]
        self.held = [d for d in self.held if d not in held]
        for doc in held:
            yield self.wait_async(partial(self._settled, doc), f"{doc.name} from {doc.sender}")
            self.message_ids[doc.key] = doc.message_id = self._sent[doc.key]
        self.report(f"{outage.end}: {outage.office} back; {len(held)} document(s) sent to it "
                    "meanwhile delivered")

    @inlineCallbacks
    def run(self) -> Generator[Deferred[Any], Any, None]:
        for name in self.homes:
            yield self.start_node(name)
        try:
            months = iter(self.plan.months[1:] + [f"{self.plan.year + 1}-01"])
            next_month = next(months, None)
            for day in self.plan.days():
                while next_month is not None and day >= f"{next_month}-01":
                    yield self.month_start(next_month)
                    next_month = next(months, None)
                yield self.step(day)
            for month in [next_month, *months]:
                if month is not None and month <= f"{self.plan.year + 1}-01":
                    yield self.month_start(month)
        finally:
            # Each node and database stopped even if another's stop fails (a node whose start
            # failed may): a thread left running would keep the process alive.
            for name, node in self.nodes.items():
                try:
                    yield node.stop()
                except Exception:  # noqa: BLE001 - reported; the others must still stop
                    log.failure("could not stop {name}", name=name)
                yield self.databases[name].stop()
        self.write_manifest()

    @inlineCallbacks
    def step(self, day: str) -> Generator[Deferred[Any], Any, None]:
        """The day's outages that end (or begin) before 09:00, its documents and actions at
        09:00, then the outages that begin after the day's work."""
        for outage in self.plan.outages:
            if outage.end_day == day:
                yield self.outage_ends(outage)
        for outage in self.plan.outages:
            if outage.start_day == day and outage.start_hour < 9:
                yield self.outage_begins(outage)
        self.clock.set(office_time(day))
        documents = [d for d in self.plan.documents if d.day == day]
        for doc in documents:
            config = self.homes[doc.sender].config
            write_sample(config.outbox, SampleDocument(
                doc.sender, doc.target, doc.name,
                f"%PDF-1.7\n% {doc.name} ({doc.key}, {day})\n", sidecar=doc.sidecar))
        for doc in documents:
            if self.down & set(doc.recipients):
                # Sealed now (its created is today's), receipted when the office is back.
                yield self.wait_async(partial(self._taken, doc), f"{doc.name} taken")
                self.held.append(doc)
                continue
            yield self.wait_async(partial(self._settled, doc), f"{doc.name} from {doc.sender}")
            if not doc.refused:
                self.message_ids[doc.key] = doc.message_id = self._sent[doc.key]
        actions = [a for a in self.plan.actions if a.day == day]
        for action in actions:
            yield self.act(action)
        self.report(f"{day}: {len(documents)} document(s), {len(actions)} status(es) and "
                    "recall(s)")
        for outage in self.plan.outages:
            if outage.start_day == day and outage.start_hour >= 9:
                yield self.outage_begins(outage)

    @inlineCallbacks
    def _settled(self, doc: PlannedDocument) -> Generator[Deferred[Any], Any, bool]:
        """Refused into failed/ with its reason, or sent: every recipient's receipt is in."""
        config = self.homes[doc.sender].config
        if doc.refused:
            return any(config.failed.rglob(f"{doc.name}.reason.txt"))
        rt = self.nodes[doc.sender].rt
        rows = yield rt.db(rt.store.recent_dispatches, 50)
        row = next((r for r in rows if r.name == doc.name and r.state == "sent"), None)
        if row is None:
            return False
        self._sent[doc.key] = row.message_id
        return True

    @inlineCallbacks
    def _taken(self, doc: PlannedDocument) -> Generator[Deferred[Any], Any, bool]:
        """Taken from the outbox and sealed (queued for its recipients)."""
        rt = self.nodes[doc.sender].rt
        rows = yield rt.db(rt.store.recent_dispatches, 50)
        return any(r.name == doc.name for r in rows)

    @inlineCallbacks
    def act(self, action: PlannedAction) -> Generator[Deferred[Any], Any, None]:
        mid = self.message_ids.get(action.key)
        if mid is None:
            return
        doc = next(d for d in self.plan.documents if d.key == action.key)
        rt = self.nodes[action.office].rt
        sender = self.nodes[doc.sender].rt
        if action.action == "status":
            yield rt.db(rt.store.add_control_request, "status", mid, action.payload,
                        rt.now_text(), peer=sender.node_id)
            wanted = {(rt.node_id, action.payload["status"])}
        else:
            yield rt.db(rt.store.add_control_request, "recall", mid, action.payload,
                        rt.now_text())
            wanted = {(self.nodes[o].rt.node_id, "recall-accepted") for o in doc.recipients}

        def arrived() -> Deferred:
            d = sender.db(sender.store.statuses_for, mid)
            d.addCallback(lambda rows: wanted <= {(r.peer_node_id, r.status) for r in rows})
            return d
        yield self.wait_async(arrived, f"{action.action} of {doc.name} by {action.office}")

    @inlineCallbacks
    def month_start(self, month: str) -> Generator[Deferred[Any], Any, None]:
        """The 1st of the month: each node signs and sends its audit head; last month is
        reconciled with every peer (what the nodes' own schedules do, on this clock)."""
        self.clock.set(office_time(f"{month}-01", 8))
        for node in self.nodes.values():
            if node.head_signer is not None:
                yield node.head_signer.sign_now()
            yield node.head_witnessing.send_head()
        for node in self.nodes.values():
            yield node.reconciler.start_monthly()

        def settled() -> Deferred:
            pending = []
            for node in self.nodes.values():
                pending.append(node.rt.db(node.rt.store.reconciliations,
                                          states=("requested", "pending")))
            d = gatherResults(pending)
            d.addCallback(lambda results: not any(results))
            return d
        yield self.wait_async(settled, f"the reconciliation at the start of {month}")
        self.report(f"{month}-01: audit heads witnessed, last month reconciled")

    @inlineCallbacks
    def wait_async(self, condition: Callable[[], Deferred],
                   what: str) -> Generator[Deferred[Any], Any, None]:
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            done = yield condition()
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the history stalled waiting for {what}")
            yield deferLater(self.reactor, 0.1, lambda: None)

    def write_manifest(self) -> None:
        manifest = {
            "year": self.plan.year, "rate": self.clock.rate,
            "documents": [asdict(d) for d in self.plan.documents],
            "actions": [asdict(a) for a in self.plan.actions],
            "obligations": [asdict(o) for o in self.plan.obligations],
            "outages": [asdict(o) for o in self.plan.outages],
            "homes": {name: str(new.config.home) for name, new in self.homes.items()},
        }
        (self.folder / "history.json").write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
