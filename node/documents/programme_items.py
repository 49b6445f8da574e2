"""A programme's items as structured data: read from an iCalendar or spreadsheet file (pure).

A work programme may be sent as a file whose items a machine can read, so that the
consolidating office can merge the offices' programmes and find clashes
(node/coordination/clashes.py):

* **iCalendar** (``.ics``, RFC 5545, read with the ``icalendar`` library): one ``VEVENT`` per
  activity: ``DTSTART``/``DTEND`` (a date for an all-day item), ``SUMMARY`` (activity),
  ``LOCATION`` (place), ``ATTENDEE`` with ``CN=`` (each leader attending), ``ORGANIZER`` with
  ``CN=`` (hosting body).
* **Spreadsheet** (``.xlsx``, read with ``openpyxl``): the first sheet, one row per activity
  under a heading row with the columns Ngày, Giờ, Nội dung, Lãnh đạo dự, Địa điểm, Cơ quan chủ
  trì (English headings date, time, activity, leader, place, host work too). Giờ is ``08:00``
  or ``08:00-11:30``; several leaders are separated by ``;`` or ``,``.

docs/coordination.md shows both with an example per office. A file that does not parse raises
:class:`ProgrammeFileError` with a sentence a clerk can act on; the outbox refuses such a
programme into failed/. Bytes in, items out: no file is opened here.
"""
from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lienthong.node.core.errors import NodeError

ICS_SUFFIX = ".ics"
XLSX_SUFFIX = ".xlsx"
STRUCTURED_SUFFIXES = (ICS_SUFFIX, XLSX_SUFFIX)
#: Larger programme files are refused rather than parsed (a programme is a few hundred rows).
MAX_PROGRAMME_BYTES = 16 * 1024 * 1024
MAX_ITEMS = 5000
#: An item with a start time and no end counts as this long when looking for clashes.
DEFAULT_DURATION = dt.timedelta(hours=1)

#: Spreadsheet column -> the headings understood (compared without diacritics or case).
COLUMNS: dict[str, tuple[str, ...]] = {
    "date": ("ngày", "date", "ngày tháng"),
    "time": ("giờ", "time", "thời gian"),
    "activity": ("nội dung", "activity", "nội dung công việc", "hoạt động"),
    "leaders": ("lãnh đạo dự", "leader", "leaders", "lãnh đạo", "thành phần"),
    "place": ("địa điểm", "place", "location"),
    "host": ("cơ quan chủ trì", "host", "chủ trì", "đơn vị chủ trì"),
}
_TIME = re.compile(r"(\d{1,2})\s*[:hH]\s*(\d{2})?")


class ProgrammeFileError(NodeError, ValueError):
    """A programme file whose items cannot be read; the message says what to fix."""

    code = "bad-programme"


@dataclass(frozen=True, slots=True)
class ProgrammeItem:
    """One activity of a programme. ``start``/``end`` are None for an all-day item."""

    day: dt.date
    start: dt.time | None
    end: dt.time | None
    activity: str
    leaders: tuple[str, ...]
    place: str
    host: str

    def interval(self) -> tuple[dt.datetime, dt.datetime]:
        """When it takes place, as naive local datetimes (all day: the whole day)."""
        if self.start is None:
            begin = dt.datetime.combine(self.day, dt.time(0, 0))
            return begin, begin + dt.timedelta(days=1)
        begin = dt.datetime.combine(self.day, self.start)
        end = dt.datetime.combine(self.day, self.end) if self.end else begin + DEFAULT_DURATION
        return begin, max(end, begin + dt.timedelta(minutes=1))


def _key(text: str) -> str:
    text = unicodedata.normalize("NFC", text).strip().lower().replace("đ", "d")
    return " ".join("".join(c for c in unicodedata.normalize("NFD", text)
                            if unicodedata.category(c) != "Mn").split())


_HEADINGS = {_key(name): column for column, names in COLUMNS.items() for name in names}


def _clean(value: object) -> str:
    text = unicodedata.normalize("NFC", str(value)) if value is not None else ""
    return " ".join("".join(c if unicodedata.category(c)[0] != "C" else " " for c in text).split())


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part for part in (_clean(p) for p in re.split(r"[;,\n]", text))
                               if part))


def read_programme_items(name: str, data: bytes) -> list[ProgrammeItem]:
    """The items of the programme file ``name`` (its suffix says the format)."""
    if len(data) > MAX_PROGRAMME_BYTES:
        raise ProgrammeFileError(f"{name}: the programme file is larger than "
                                 f"{MAX_PROGRAMME_BYTES // (1024 * 1024)} MiB")
    suffix = name[name.rfind("."):].lower() if "." in name else ""
    if suffix == ICS_SUFFIX:
        items = _from_ics(name, data)
    elif suffix == XLSX_SUFFIX:
        items = _from_xlsx(name, data)
    else:
        raise ProgrammeFileError(f"{name}: only {ICS_SUFFIX} and {XLSX_SUFFIX} programmes carry "
                                 "items a machine can read")
    if len(items) > MAX_ITEMS:
        raise ProgrammeFileError(f"{name}: {len(items)} items; at most {MAX_ITEMS} are read")
    return items


def _from_ics(name: str, data: bytes) -> list[ProgrammeItem]:
    from icalendar import Calendar  # only programmes need it: keep the node's start light

    try:
        calendar = Calendar.from_ical(data)
        events = list(calendar.walk("VEVENT"))
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as exc:
        raise ProgrammeFileError(f"{name}: not a valid iCalendar file ({_clean(exc)[:200]}); "
                                 "export the programme again from the calendar program") from None
    items = []
    for number, event in enumerate(events, 1):
        where = f"{name}: event {number}"
        start = _ics_value(event, "DTSTART")
        if start is None:
            raise ProgrammeFileError(f"{where} has no start (DTSTART)")
        end = _ics_value(event, "DTEND")
        leaders = _ics_people(event.get("ATTENDEE"))
        host = _ics_people(event.get("ORGANIZER"))
        if isinstance(start, dt.datetime):
            start_local = _local(start)
            end_local = _local(end) if isinstance(end, dt.datetime) else None
            same_day = end_local is not None and end_local.date() == start_local.date()
            items.append(ProgrammeItem(
                start_local.date(), start_local.time().replace(second=0, microsecond=0),
                end_local.time().replace(second=0, microsecond=0) if same_day and end_local
                else None, _clean(event.get("SUMMARY")), leaders, _clean(event.get("LOCATION")),
                host[0] if host else ""))
        elif isinstance(start, dt.date):
            items.append(ProgrammeItem(start, None, None, _clean(event.get("SUMMARY")), leaders,
                                       _clean(event.get("LOCATION")), host[0] if host else ""))
        else:
            raise ProgrammeFileError(f"{where}: its start (DTSTART) is not a date or time")
    return items


def _ics_value(event: object, prop: str) -> object:
    try:
        value = event.get(prop)  # type: ignore[attr-defined]
        return value.dt if value is not None else None
    except (AttributeError, ValueError):
        raise ProgrammeFileError(f"the event's {prop} is not a valid date or time") from None


def _ics_people(value: object) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value] if value is not None else []
    names = []
    for one in values:
        params = getattr(one, "params", {})
        text = params.get("CN") or str(one)
        text = re.sub(r"^mailto:", "", str(text), flags=re.IGNORECASE)
        names.append(_clean(text))
    return tuple(dict.fromkeys(n for n in names if n))


#: Vietnam keeps UTC+7 all year (no daylight saving), so a fixed offset is exact.
VIETNAM = dt.timezone(dt.timedelta(hours=7))


def _local(moment: dt.datetime) -> dt.datetime:
    """Naive Vietnam local time (a floating time is taken as local already)."""
    return moment.astimezone(VIETNAM).replace(tzinfo=None) if moment.tzinfo else moment


def _from_xlsx(name: str, data: bytes) -> list[ProgrammeItem]:
    from openpyxl import load_workbook  # only programmes need it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
        raise ProgrammeFileError(f"{name}: not a readable .xlsx spreadsheet ({_clean(exc)[:200]}); "
                                 "save it again as an Excel workbook (.xlsx)") from None
    try:
        sheet = book.worksheets[0]
        rows = list(sheet.iter_rows(values_only=True, max_row=MAX_ITEMS + 50))
    finally:
        book.close()
    return _items_from_rows(name, rows)


def _items_from_rows(name: str, rows: Sequence[Sequence[object]]) -> list[ProgrammeItem]:
    heading_at, columns = _find_heading(rows)
    if heading_at is None:
        wanted = ", ".join(names[0] for names in COLUMNS.values())
        raise ProgrammeFileError(f"{name}: no heading row with the columns {wanted}; use the "
                                 "programme template in docs/coordination.md")
    items: list[ProgrammeItem] = []
    for index, row in enumerate(rows[heading_at + 1:], heading_at + 2):
        cells = {column: row[i] if i < len(row) else None for column, i in columns.items()}
        if all(value is None or _clean(value) == "" for value in cells.values()):
            continue
        where = f"{name}: row {index}"
        day = _cell_date(cells.get("date"), where)
        start, end = _cell_times(cells.get("time"), where)
        items.append(ProgrammeItem(day, start, end, _clean(cells.get("activity")),
                                   _names(_clean(cells.get("leaders"))),
                                   _clean(cells.get("place")), _clean(cells.get("host"))))
    return items


def _find_heading(rows: Iterable[Sequence[object]]) -> tuple[int | None, dict[str, int]]:
    for at, row in enumerate(rows):
        if at > 20:
            break
        columns: dict[str, int] = {}
        for i, value in enumerate(row):
            column = _HEADINGS.get(_key(str(value))) if value is not None else None
            if column is not None and column not in columns:
                columns[column] = i
        if "date" in columns and "activity" in columns and len(columns) >= 3:
            return at, columns
    return None, {}


def _cell_date(value: object, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = _clean(value)
    for pattern in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ProgrammeFileError(f"{where}: the date {text!r} is not a date; write e.g. 05/01/2027")


def _cell_times(value: object, where: str) -> tuple[dt.time | None, dt.time | None]:
    if value is None:
        return None, None
    if isinstance(value, dt.datetime):
        return value.time().replace(second=0, microsecond=0), None
    if isinstance(value, dt.time):
        return value.replace(second=0, microsecond=0), None
    text = _clean(value)
    if not text or _key(text) in ("ca ngay", "all day"):
        return None, None
    parts = re.split(r"\s*(?:-|–|đến|to)\s*", text)
    times = []
    for part in parts[:2]:
        found = _TIME.fullmatch(part.strip())
        if found is None or int(found.group(1)) > 23 or int(found.group(2) or 0) > 59:
            raise ProgrammeFileError(f"{where}: the time {text!r} is not a time; write e.g. "
                                     "08:00 or 08:00-11:30 (or leave it empty for all day)")
        times.append(dt.time(int(found.group(1)), int(found.group(2) or 0)))
    return times[0], times[1] if len(times) > 1 else None
