"""The petition register as a spreadsheet, for the offices' periodic reports (openpyxl)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lienthong.node.petitions.register import RegisterLine

#: Column heading (Vietnamese, as the register is kept) -> how to read it from a line.
COLUMNS = (
    ("Số tham chiếu", lambda line: line.reference),
    ("Số đơn", lambda line: line.number or ""),
    ("Ngày nhận đơn", lambda line: line.received),
    ("Loại đơn", lambda line: line.kind),
    ("Hình thức nhận", lambda line: line.channel or ""),
    ("Người viết đơn", lambda line: line.petitioner),
    ("Địa chỉ", lambda line: line.address or ""),
    ("Số giấy tờ", lambda line: line.id_number or ""),
    ("Nội dung", lambda line: line.subject or ""),
    ("Cơ quan giải quyết", lambda line: line.handling_office or ""),
    ("Chiều", lambda line: "nhận từ" if line.direction == "received" else "chuyển tới"),
    ("Cơ quan", lambda line: line.office),
    ("Tình trạng", lambda line: line.state),
    ("Biên nhận đã ký lúc", lambda line: line.receipt_at or ""),
    ("Hạn thụ lý", lambda line: line.accept_limit.due if line.accept_limit else ""),
    ("Hạn giải quyết", lambda line: line.resolve_limit.due if line.resolve_limit else ""),
    ("Đơn liên quan", lambda line: ", ".join(line.related)),
)


def _cell(text: str) -> str:
    # A value that starts like a formula is shown as text, never evaluated by a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def write_register(lines: Sequence[RegisterLine], path: Path, *, office: str) -> None:
    """Write ``lines`` to ``path`` (.xlsx), mode 0600: it holds personal data."""
    # Imported here, not by every node at start: openpyxl loads numpy and Pillow with it,
    # about 25 MiB of each node's memory (tests/node/app/test_start_cost.py).
    from openpyxl import Workbook

    book = Workbook()
    # A new workbook has one sheet; openpyxl types it as optional.
    sheet = book.active if book.active is not None else book.create_sheet()
    sheet.title = "So theo doi don"
    sheet.append([f"Sổ theo dõi đơn — {office}"])
    sheet.append([heading for heading, _ in COLUMNS])
    for line in lines:
        sheet.append([_cell(str(read(line))) for _, read in COLUMNS])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        book.save(handle)
