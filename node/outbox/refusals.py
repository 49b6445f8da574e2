"""Why a file in the outbox is not sent: the stable codes, and the words a clerk reads.

Split out of node/outbox/intake.py (which decides *when* a file is refused) so that module
keeps to its one job, the take. The words are English msgids; the reason file is written in
the node's language (``language`` in lienthong.toml) from the catalog (node/language/).
"""
from __future__ import annotations

import errno
import unicodedata
from pathlib import Path
from typing import Any

from lienthong.node.core.errors import NodeError
from lienthong.node.language.text import Phrase, _

_REASONS = {
    "symlink": _("this is a symbolic link (a shortcut to another file); lienthong sends only "
                 "ordinary files. Copy the document itself into the outbox."),
    "symlink-folder": _("a folder on the way to this file is a symbolic link; lienthong does "
                        "not follow links. Put real folders and the documents themselves in "
                        "the outbox."),
    "fifo": _("this is a named pipe, not a document; lienthong sends only ordinary files. "
              "Remove it from the outbox."),
    "socket": _("this is a socket, not a document; lienthong sends only ordinary files. "
                "Remove it from the outbox."),
    "device": _("this is a device, not a document; lienthong sends only ordinary files. "
                "Remove it from the outbox."),
    "directory": _("this is a folder, not a document. Put documents in "
                   "outbox/<office>/ or outbox/<office>/<document type>/."),
    "hardlink": _("this file also has another name elsewhere on the disk (a hard link), so it "
                  "could still change after it is sent. Copy the document into the outbox "
                  "instead of linking it."),
    "too-large": _("the file is {size} but the largest document this office may send is "
                   "{limit}. Split it into smaller files or ask the administrator to raise "
                   "the limit."),
    "empty": _("the file is empty (0 bytes), so there is nothing to send. Save the document "
               "again and put it back in the outbox."),
    "unreadable": _("lienthong is not allowed to read this file. Ask the administrator to let "
                    "lienthong read the outbox, or copy the document in again."),
    "not-movable": _("lienthong is not allowed to move this file out of the outbox. Ask the "
                     "administrator to give lienthong write access to the outbox folders."),
    "no-target": _("this file is directly in the outbox. Put the file in the folder of the "
                   "office you send it to (outbox/<office>/)."),
    "bad-name": _("the file or folder name contains bytes that are not valid text. Rename it "
                  "and put it back in the outbox."),
    "changed-while-reading": _("the file changed while lienthong was taking it. It has been "
                               "left in the outbox and will be sent once it stops changing."),
    "vanished": _("the file disappeared before lienthong could take it (it was moved or "
                  "deleted). Nothing was sent."),
}
# Codes for which nothing should be moved to failed/: the file will be offered again, or
# there is no file any more.
_LEAVE_IN_PLACE = frozenset({"changed-while-reading", "vanished"})
_ERRNO_CODES = {errno.ENOENT: "vanished", errno.ENOTDIR: "vanished",
                errno.EACCES: "unreadable", errno.EPERM: "unreadable",
                errno.ELOOP: "symlink", errno.ENXIO: "socket"}



class Refused(NodeError):
    """A file that will not be sent, with a reason a clerk can act on.

    ``code`` is stable (audit log, tests); ``reason`` is plain language; ``path`` is the
    entry that is at fault, which may be a folder on the way rather than the file itself.
    """

    code = "file-refused"

    def __init__(self, code: str, path: Path, **details: Any) -> None:
        self.code = code
        self.path = path
        #: The reason as a clerk reads it, translated where it is written (the reason file).
        self.reason_text = Phrase(_REASONS[code], **details)
        self.reason = str(self.reason_text)
        super().__init__(f"{code}: {self.reason}")

    @property
    def belongs_in_failed(self) -> bool:
        """False when the entry must be left alone (it will be retried, or it is gone)."""
        return self.code not in _LEAVE_IN_PLACE


def refused_for(exc: OSError, path: Path) -> Refused:
    """The refusal an OSError means for the clerk; other errors (EIO, ENOSPC) propagate."""
    code = _ERRNO_CODES.get(exc.errno or 0)
    if code is None:
        raise exc
    return Refused(code, path)


def size_text(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TB"


def display(text: str) -> str:
    """A name as a clerk may safely read it: undecodable bytes and control characters escaped."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(char if unicodedata.category(char) not in {"Cc", "Cf", "Zl", "Zp"}
                   else f"\\u{ord(char):04x}" for char in text)
