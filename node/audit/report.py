"""What ``audit verify`` found: the report, each problem, and the error that carries them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lienthong.node.core.errors import NodeError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing found wrong: ``where`` names the entry, head, receipt or file; ``what`` why."""

    check: str
    where: str
    what: str
    seq: int | None = None
    path: str | None = None


@dataclass
class VerifyReport:
    """What was checked, what is wrong (problems) and what is merely worth knowing (notes)."""

    entries: int = 0
    last_seq: int = 0
    heads: int = 0
    last_signed_seq: int = 0
    receipts: int = 0
    #: Signed heads verified, per signing identity (node ID), oldest identity first.
    head_signers: dict[str, int] = field(default_factory=dict)
    files: int = 0
    missing_files: int = 0
    #: Heads witnessed by peers checked against the log, and the last entry each peer vouches
    #: for (by the peer's name).
    witnesses: int = 0
    witnessed_by: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.problems, "entries": self.entries, "last_seq": self.last_seq,
                "signed_heads": self.heads, "last_signed_seq": self.last_signed_seq,
                "head_signers": dict(self.head_signers),
                "receipts": self.receipts, "files": self.files,
                "missing_files": self.missing_files, "witnesses": self.witnesses,
                "witnessed_by": dict(self.witnessed_by),
                "problems": [{"check": p.check, "where": p.where, "what": p.what, "seq": p.seq,
                              "path": p.path} for p in self.problems],
                "notes": list(self.notes)}


class AuditFailed(NodeError):
    """The store does not verify; ``report.problems`` says exactly where."""

    code = "audit-failed"

    def __init__(self, report: VerifyReport) -> None:
        first = report.problems[0]
        super().__init__(f"{len(report.problems)} problem(s); first: {first.where}: {first.what}")
        self.report = report
