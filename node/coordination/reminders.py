"""Signed reminder messages to the office that owes a programme (``[coordination]
send_reminders``, off by default; docs/coordination.md §4).

Theory of operation
-------------------
At the consolidating office only, every ``CHECK_SECONDS`` (and once at start) the deadline
engine is asked for the programme obligations in view on today's local day. For each one:

=========================================  ==================================================
the engine says                            step sent (once per obligation and step)
=========================================  ==================================================
``due`` with ``reminder`` set              ``reminder``: N working days or fewer are left,
                                           N = ``remind_working_days`` (the status reminder's)
``overdue``                                ``overdue``: the due day passed, nothing received
anything else (on time, late, missing)     nothing
=========================================  ==================================================

An obligation first seen when already overdue gets only the overdue message. Each step is
first *claimed* in the store (``programme_reminders``, its primary key is the obligation and
step) together with its audit event, in one transaction; only a successful claim is sent, so a
reminder is never sent twice, across restarts and whichever node process asks. The message is
a short Vietnamese text sent as a ``message`` document through ``Outbox.send_control``: signed,
sealed to the office, queued, retried and receipted like every other document, and shown in
that office's inbox. Once queued, its message ID is written to the claim. A crash between the
claim and the queueing loses that one message (the claim stays, without a message ID): the
warning in ``lienthong status`` at both offices still says the same thing.

An office named in ``[coordination] offices`` but not enrolled as a peer cannot be sent to; it
is skipped, and asked again on the next check.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from lienthong.node.coordination.deadlines import DeadlineEngine, DeadlineQuery, DeadlineRow
from lienthong.node.core.clock import rfc3339_ms
from lienthong.node.documents.metadata import DocumentMeta
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.runtime.ports import ControlSender

log = Logger(namespace="lienthong.reminders")

#: How often the obligations are looked at again (a step is at most this late).
CHECK_SECONDS = 900.0

#: What each kind of programme is called in the message.
KIND_TEXT = {"annual": "năm", "quarterly": "quý", "monthly": "tháng", "weekly": "tuần"}

#: The message of each step; one sentence each, with named fields (the later catalog's msgids).
REMINDER_TEXT = (
    "Nhắc hạn: {office} cần gửi dự thảo chương trình công tác {kind} kỳ {period} cho "
    "{owed_to} chậm nhất ngày {due} (còn {left} ngày làm việc).\n"
    "Tin nhắn này do hệ thống lienthong của {owed_to} tự động gửi; nếu đã gửi, xin bỏ qua.\n")
OVERDUE_TEXT = (
    "Quá hạn: dự thảo chương trình công tác {kind} kỳ {period} của {office} phải gửi cho "
    "{owed_to} chậm nhất ngày {due}, nhưng {owed_to} chưa nhận được. Đề nghị gửi ngay.\n"
    "Tin nhắn này do hệ thống lienthong của {owed_to} tự động gửi.\n")


@dataclass(frozen=True, slots=True)
class Reminder:
    """One message to send: the obligation, the step, and the words."""

    office: str
    kind: str
    period: str
    step: str
    due: str
    text: str

    @property
    def name(self) -> str:
        label = "nhac-han" if self.step == "reminder" else "qua-han"
        return f"{label}-chuong-trinh-{self.period}.txt"


def _day(iso: str) -> str:
    return dt.date.fromisoformat(iso).strftime("%d/%m/%Y")


def reminder_for(row: DeadlineRow) -> Reminder | None:
    """The message a programme obligation's row calls for now, if any (pure)."""
    if row.kind not in KIND_TEXT:
        return None
    fields = {"office": row.office, "kind": KIND_TEXT[row.kind], "period": row.period,
              "owed_to": row.owed_to, "due": _day(row.due), "left": row.working_days_left}
    if row.state == "due" and row.reminder:
        return Reminder(row.office, row.kind, row.period, "reminder", row.due,
                        REMINDER_TEXT.format(**fields))
    if row.state == "overdue":
        return Reminder(row.office, row.kind, row.period, "overdue", row.due,
                        OVERDUE_TEXT.format(**fields))
    return None


class ProgrammeReminders:
    """Sends the reminder messages of the consolidating office (see the module docstring)."""

    def __init__(self, runtime: NodeRuntime, sender: ControlSender, *,
                 interval: float = CHECK_SECONDS) -> None:
        self.rt = runtime
        self.sender = sender
        self.interval = interval
        self._loop: LoopingCall | None = None
        self._busy = False

    @property
    def enabled(self) -> bool:
        section = self.rt.config.coordination
        return section.send_reminders and section.consolidating_office == self.rt.config.node.name

    def start(self) -> None:
        if not self.enabled:
            return
        self._loop = LoopingCall(self.check)
        self._loop.clock = self.rt.reactor
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _wanted(self, now: float) -> list[Reminder]:
        """Blocking (database thread): the messages the obligations in view call for."""
        engine = DeadlineEngine(self.rt.store, self.rt.config.coordination,
                                own_name=self.rt.config.node.name)
        rows = engine.rows(now, DeadlineQuery(kinds=tuple(KIND_TEXT)))
        return [r for r in (reminder_for(row) for row in rows) if r is not None]

    @inlineCallbacks
    def check(self) -> Generator[Deferred[Any], Any, list[str]]:
        """Send what is due and not yet sent; returns the new messages' IDs. Never raises (a
        LoopingCall would stop): a failure is logged and the next check tries again."""
        sent: list[str] = []
        if self._busy or not self.enabled:
            return sent
        self._busy = True
        try:
            wanted = yield self.rt.db(self._wanted, self.rt.now())
            for reminder in wanted:
                message_id = yield self._send(reminder)
                if message_id is not None:
                    sent.append(message_id)
        except Exception:  # noqa: BLE001 - logged; the next check tries again
            log.failure("programme reminders could not be sent")
        finally:
            self._busy = False
        return sent

    def _claim(self, key: dict[str, str], due: str, peer: str, now: str) -> bool:
        """Blocking: claim the step and audit the claim in one transaction (no audit event
        when it was already claimed: nothing happens then)."""
        store = self.rt.store
        with store.transaction():
            if not store.claim_reminder(due=due, now=now, **key):
                return False
            store.append_audit("programme-reminder", now, peer=peer, detail=dict(key, due=due))
        return True

    @inlineCallbacks
    def _send(self, reminder: Reminder) -> Generator[Deferred[Any], Any, str | None]:
        rt = self.rt
        peer = next((p for p in rt.directory.peers
                     if p.name == reminder.office and p.state == "trusted"), None)
        if peer is None:
            log.warn("cannot remind {office}: it is not an enrolled peer",
                     office=reminder.office)
            return None
        key = {"office": reminder.office, "kind": reminder.kind, "period": reminder.period,
               "step": reminder.step}
        claimed = yield rt.db(self._claim, key, reminder.due, peer.node_id,
                              rfc3339_ms(rt.now()))
        if not claimed:
            return None
        meta = DocumentMeta(kind="message", type="message",
                            subject=reminder.text.split("\n", 1)[0]).as_envelope_meta()
        message_id = yield self.sender.send_control(
            [peer.node_id], name=reminder.name, data=reminder.text.encode("utf-8"), meta=meta)
        yield rt.db_audited(rt.store.note_reminder_queued, message_id=message_id, **key,
                            events=[("programme-reminder-queued",
                                     dict(key, peer=peer.node_id, message_id=message_id))])
        log.info("sent {office} the {step} for its {kind} programme {period} as {mid}",
                 mid=message_id, **key)
        return str(message_id)
