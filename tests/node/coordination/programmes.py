"""Programme files for tests: real .ics and .xlsx bytes, written with the same libraries the
offices' calendar and spreadsheet programs produce files for."""
from __future__ import annotations

import datetime as dt
import io

from icalendar import Calendar, Event, vCalAddress
from openpyxl import Workbook

VN = dt.timezone(dt.timedelta(hours=7))
HEADINGS = ["Ngày", "Giờ", "Nội dung", "Lãnh đạo dự", "Địa điểm", "Cơ quan chủ trì"]


def xlsx(rows: list[list[object]], *, title: str | None = "Chương trình công tác") -> bytes:
    book = Workbook()
    sheet = book.active
    if title:
        sheet.append([title])
    sheet.append(HEADINGS)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def ics(events: list[dict[str, object]]) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//test//programme//VI")
    calendar.add("version", "2.0")
    for number, spec in enumerate(events):
        event = Event()
        event.add("uid", f"{number}@test")
        event.add("dtstamp", dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
        event.add("dtstart", spec["start"])
        if "end" in spec:
            event.add("dtend", spec["end"])
        event.add("summary", spec["summary"])
        if "location" in spec:
            event.add("location", spec["location"])
        for leader in spec.get("leaders", []):  # type: ignore[attr-defined]
            attendee = vCalAddress("mailto:lanhdao@example.vn")
            attendee.params["CN"] = leader
            event.add("attendee", attendee, encode=False)
        calendar.add_component(event)
    return calendar.to_ical()
