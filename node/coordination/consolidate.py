"""Consolidating the offices' programmes for one period: merge, find clashes, write the draft.

Theory of operation
-------------------
At the consolidating office, ``lienthong programmes consolidate --period P``:

1. finds every programme received for period P (``tracked_documents``, not the consolidated
   drafts themselves), the latest one of each office, and reads its items from the file in the
   inbox (node/documents/programme_items.py: ``.ics`` or ``.xlsx``); the office's own
   programme files may be added (``--own``);
2. lists the clashes among all items (node/coordination/clashes.py);
3. writes the consolidated draft as ``Chuong trinh tong hop P.xlsx`` (items by day and time,
   with the office each came from, and a second sheet listing the clashes) and
   ``Chuong trinh tong hop P.ics``, each with a ready sidecar (``type = "programme"``,
   ``period``, ``consolidated = true``), so the clerk can copy both into
   ``outbox/<offices>/`` once the clashes are settled.

A programme that is not a machine-readable file (a PDF, say) is listed as not merged, with
the reason; one whose file cannot be read is reported the same way rather than stopping the
rest. Files are written to a temporary name and renamed, so a half-written draft never
appears under the final name.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lienthong.node.coordination.clashes import Clash, SourcedItem, find_clashes
from lienthong.node.coordination.deadlines import office_names
from lienthong.node.core.access import AccessPolicy
from lienthong.node.documents.periods import Period
from lienthong.node.documents.programme_items import (
    STRUCTURED_SUFFIXES,
    VIETNAM,
    ProgrammeFileError,
    read_programme_items,
)
from lienthong.node.store.database import Store

#: The draft's columns: the template's (docs/coordination.md) plus the office it came from.
DRAFT_HEADINGS = ("Ngày", "Giờ", "Nội dung", "Lãnh đạo dự", "Địa điểm", "Cơ quan chủ trì",
                  "Cơ quan gửi")
CLASH_TEXT = {"leader": "lãnh đạo trùng lịch", "place": "trùng địa điểm",
              "event-time": "cùng hoạt động, khác giờ"}


@dataclass(frozen=True, slots=True)
class SourceProgramme:
    """One programme considered: its office and file, and either its item count or why not."""

    office: str
    name: str
    items: int | None
    problem: str | None = None


@dataclass(slots=True)
class Consolidation:
    period: str
    sources: list[SourceProgramme] = field(default_factory=list)
    items: list[SourcedItem] = field(default_factory=list)
    clashes: list[Clash] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def _read(office: str, name: str, data: bytes, out: Consolidation) -> None:
    try:
        items = read_programme_items(name, data)
    except ProgrammeFileError as exc:
        out.sources.append(SourceProgramme(office, name, None, str(exc)))
        return
    out.sources.append(SourceProgramme(office, name, len(items)))
    out.items.extend(SourcedItem(office, name, item) for item in items)


def gather(store: Store, period: Period, *, home: Path, own_name: str,
           own_files: Sequence[Path] = ()) -> Consolidation:
    """Read the period's received programmes (and this office's own files); find clashes.
    ``home``: the node's home, which the inbox paths in the store are relative to."""
    out = Consolidation(str(period))
    names = office_names(store)
    tracked = [row for row in store.tracked_documents(doc_type="programme",
                                                      periods=[str(period)],
                                                      direction="received")
               if not row.consolidated]
    latest: dict[str, tuple[str, Path, str]] = {}
    rows = store.received_rows([(r.sender_node_id, r.message_id) for r in tracked])
    for (sender, _), row in sorted(rows.items(), key=lambda kv: kv[1].received_at):
        if row.state != "stored":
            continue
        office = names.get(sender, sender)
        latest[office] = (row.name, home / row.stored_path, row.received_at)
    for office, (name, path, _) in sorted(latest.items()):
        if not name.lower().endswith(STRUCTURED_SUFFIXES):
            out.sources.append(SourceProgramme(office, name, None, "not an .ics or .xlsx "
                                               "file: its items cannot be merged"))
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            out.sources.append(SourceProgramme(office, name, None,
                                               f"cannot read it in the inbox: {exc.strerror}"))
            continue
        _read(office, name, data, out)
    for path in own_files:
        _read(own_name, path.name, path.read_bytes(), out)
    out.items.sort(key=lambda s: (s.item.interval(), s.office))
    out.clashes = find_clashes(out.items)
    return out


def draft_name(period: str) -> str:
    return f"Chuong trinh tong hop {period}"


def write_draft(result: Consolidation, folder: Path, access: AccessPolicy, *,
                now: float) -> list[Path]:
    """Write the xlsx and .ics drafts, each with its sidecar, into ``folder``; they hold what
    offices sent, so folder and files have the access rule (node/core/access.py)."""
    access.make_folder(folder)
    base = draft_name(result.period)
    sidecar = (f'type = "programme"\nperiod = "{result.period}"\nconsolidated = true\n'
               f'subject = "Dự thảo chương trình công tác tổng hợp {result.period}"\n')
    written = []
    for suffix, data in ((".xlsx", _xlsx(result)), (".ics", _ics(result, now))):
        for name, content in ((base + suffix, data),
                              (base + suffix + ".meta.toml", sidecar.encode("utf-8"))):
            access.write_replacing(folder / name, content)
            written.append(folder / name)
    result.written = written
    return written


def _time_text(sourced: SourcedItem) -> str:
    item = sourced.item
    if item.start is None:
        return "cả ngày"
    start = item.start.strftime("%H:%M")
    return f"{start}-{item.end.strftime('%H:%M')}" if item.end else start


def _xlsx(result: Consolidation) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Chương trình"
    sheet.append([f"Dự thảo chương trình công tác tổng hợp {result.period}"])
    sheet.append(list(DRAFT_HEADINGS))
    for sourced in result.items:
        item = sourced.item
        sheet.append([item.day.strftime("%d/%m/%Y"), _time_text(sourced), item.activity,
                      "; ".join(item.leaders), item.place, item.host, sourced.office])
    clashes = book.create_sheet("Trùng lịch")
    clashes.append(["Loại", "Trùng", "Ngày", "Cơ quan 1", "Giờ 1", "Nội dung 1", "Cơ quan 2",
                    "Giờ 2", "Nội dung 2"])
    for clash in result.clashes:
        clashes.append([CLASH_TEXT[clash.kind], clash.subject,
                        clash.first.item.day.strftime("%d/%m/%Y"), clash.first.office,
                        _time_text(clash.first), clash.first.item.activity, clash.second.office,
                        _time_text(clash.second), clash.second.item.activity])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _ics(result: Consolidation, now: float) -> bytes:
    from icalendar import Calendar, Event, vCalAddress

    calendar = Calendar()
    calendar.add("prodid", "-//lienthong//consolidated programme//VI")
    calendar.add("version", "2.0")
    stamp = dt.datetime.fromtimestamp(now, dt.UTC)
    for sourced in result.items:
        item = sourced.item
        event = Event()
        uid = hashlib.sha256(f"{result.period}|{sourced.office}|{item}".encode()).hexdigest()
        event.add("uid", f"{uid[:32]}@lienthong")
        event.add("dtstamp", stamp)
        if item.start is None:
            event.add("dtstart", item.day)
            event.add("dtend", item.day + dt.timedelta(days=1))
        else:
            begin, end = item.interval()
            event.add("dtstart", begin.replace(tzinfo=VIETNAM))
            event.add("dtend", end.replace(tzinfo=VIETNAM))
        event.add("summary", item.activity)
        if item.place:
            event.add("location", item.place)
        for leader in item.leaders:
            attendee = vCalAddress("mailto:invalid@invalid")
            attendee.params["CN"] = leader
            event.add("attendee", attendee, encode=False)
        if item.host:
            organizer = vCalAddress("mailto:invalid@invalid")
            organizer.params["CN"] = item.host
            event.add("organizer", organizer, encode=False)
        event.add("categories", [sourced.office])
        calendar.add_component(event)
    return calendar.to_ical()
