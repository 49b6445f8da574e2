"""``audit verify``, step 4: each document kept in ``sent/`` and ``inbox/`` still has the
SHA-256 recorded for it, and each receipt copy beside it is the one kept in the store.

A document no longer there is not a failure (clerks move delivered documents into their own
systems): it is counted and listed in a note. See node/audit/verify.py for the other checks.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from lienthong.node.audit.report import Problem, VerifyReport
from lienthong.node.inbox.layout import RECEIPT_SUFFIX, file_sha256
from lienthong.node.store.database import Store
from lienthong.node.store.reports import KeptFile

PAGE = 500
#: At most this many missing files are listed one by one in the notes.
MAX_LISTED = 20


# -- 4. kept files -------------------------------------------------------------------------------

def check_files(store: Store, home: Path, report: VerifyReport, *,
                peer_name: Callable[[str], str], page: int = PAGE) -> None:
    missing: list[str] = []
    recalled: list[str] = []
    after_inbox: tuple[str, str] = ("", "")
    while rows := store.inbox_files(after=after_inbox, limit=page):
        for row in rows:
            moved = _recalled_to(store, row, home)
            if moved is not None and not os.path.lexists(home / row.path):
                # Moved by its sender's recall, not lost: checked where the recall put it.
                recalled.append(f"{_shown(home / row.path, home)} → {_shown(moved, home)}")
                _check_file(store, row, moved, home, report, missing, peer_name)
                continue
            _check_file(store, row, home / row.path, home, report, missing, peer_name)
        after_inbox = (rows[-1].message_id, rows[-1].counterpart)
    after_sent = ""
    while rows := store.sent_files(after=after_sent, limit=page):
        for row in rows:
            _check_file(store, row, Path(row.path), home, report, missing, peer_name)
        after_sent = rows[-1].message_id
    if recalled:
        listed = ", ".join(recalled[:MAX_LISTED])
        more = f" and {len(recalled) - MAX_LISTED} more" if len(recalled) > MAX_LISTED else ""
        report.notes.append(f"{len(recalled)} received document(s) were recalled by their "
                            f"sender and moved to recalled/, where they were checked: "
                            f"{listed}{more}.")
    report.missing_files = len(missing)
    if missing:
        listed = ", ".join(missing[:MAX_LISTED])
        more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
        report.notes.append(f"{len(missing)} kept document(s) are no longer in their folder "
                            f"(moved away by staff?): {listed}{more}. Their digests and "
                            "receipts stay in the store.")


def _recalled_to(store: Store, row: KeptFile, home: Path) -> Path | None:
    """Where an accepted recall moved a received document (None if it was not recalled)."""
    if row.folder != "inbox":
        return None
    for recall in store.recalls_for(row.message_id, row.counterpart):
        if recall.recalled_path:
            return home / recall.recalled_path
    return None


def _shown(path: Path, home: Path) -> str:
    try:
        return str(path.relative_to(home))
    except ValueError:
        return str(path)


def _check_file(store: Store, row: KeptFile, path: Path, home: Path, report: VerifyReport,
                missing: list[str], peer_name: Callable[[str], str]) -> None:
    shown = _shown(path, home)
    if not os.path.lexists(path):
        missing.append(shown)
        return
    report.files += 1
    where = f"file {shown} (message {row.message_id})"
    if path.is_symlink() or not path.is_file():
        report.problems.append(Problem("files", where, "is no longer a regular file",
                                       path=shown))
        return
    try:
        digest = file_sha256(path)
    except OSError as exc:
        report.problems.append(Problem("files", where, f"cannot be read: {exc.strerror}",
                                       path=shown))
        return
    if digest != row.sha256:
        report.problems.append(Problem(
            "files", where, f"its SHA-256 is {digest}, but {row.sha256} was recorded "
            "(the file was changed after it was " +
            ("delivered to us)" if row.folder == "inbox" else "sent)"), path=shown))
    _check_receipt_files(store, row, path, home, report, peer_name)


def _check_receipt_files(store: Store, row: KeptFile, path: Path, home: Path,
                         report: VerifyReport, peer_name: Callable[[str], str]) -> None:
    """A receipt kept beside a document must be the very receipt kept in the store."""
    if row.folder == "inbox":
        stored = {r.receipt for r in store.received_for_message(row.message_id)
                  if r.sender_node_id == row.counterpart and r.receipt}
        candidates = [path.with_name(path.name + RECEIPT_SUFFIX)]
    else:
        dispatch = store.get_dispatch(row.message_id)
        deliveries = [d for d in (dispatch.deliveries if dispatch else ()) if d.receipt]
        stored = {d.receipt for d in deliveries if d.receipt}
        candidates = [path.with_name(f"{path.name}.{peer_name(d.peer_node_id)}{RECEIPT_SUFFIX}")
                      for d in deliveries]
    for candidate in candidates:
        if not candidate.is_file():
            continue
        try:
            text = candidate.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            text = f"<unreadable: {exc}>"
        if text not in stored:
            shown = _shown(candidate, home)
            report.problems.append(Problem("files", f"file {shown} (message {row.message_id})",
                                           "this receipt copy differs from the receipt kept in "
                                           "the store", path=shown))

