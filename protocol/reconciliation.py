"""Reconciliation summaries: what one office says it sent to another and received from it.

Theory of operation
-------------------
For a **period** (a day ``2026-11-03``, a month ``2026-11``, a quarter ``2026-Q4`` or a year
``2026``) each office lists, per peer, two sides:

* ``sent``: every document it sent the peer whose envelope was *created* in the period (the
  sender's signed ``created``, which both offices hold, so both put a document in the same
  period), with the time of the peer's receipt, or none;
* ``received``: every document it received from the peer and receipted, with its receipt's time.

An **item** is ``[message_id, sha256, created, receipt_time | null]``; its line is those four
joined by spaces (``-`` for no receipt). Items are grouped by the UTC day of ``created``; a
day's root is the SHA-256 of its sorted lines, each ending in a newline, and a side's root is
the SHA-256 of the sorted lines ``"<day> <count> <day root>\\n"``. So a summary is small
(one root and one pair per day) and two offices compare roots; only where they differ are the
items of the differing days exchanged.

A summary is a JWS compact token of type ``lienthong-reconciliation/1``, signed by the office
that made it (``kid`` = ``office``)::

    {"v": 1, "role": "request" | "answer" | "detail", "exchange": <32 hex, chosen by the office
     that asked>, "office": <signer>, "peer": <counterpart>, "period": "2026-11",
     "time": <signer's clock>, "sent": SIDE, "received": SIDE}
    SIDE = {"count": n, "root": <64 hex>, "days": {"2026-11-03": [n, <64 hex>], ...},
            "items": [[message_id, sha256, created, receipt_time | null], ...]}

``items`` holds only the items of days whose roots differ from the other office's (none in a
``request``). :func:`compare` turns one office's ``sent`` and the other's ``received`` into
the list of differences. Pure: no I/O; time is passed in; verification raises
:class:`protocol.errors.SummaryError`.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nacl.signing

from lienthong.keys import errors as key_errors
from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import SummaryError
from lienthong.protocol.fields import check_hex, check_node_id, check_time

SUMMARY_TYP = "lienthong-reconciliation/1"
VERSION = 1
ROLES = ("request", "answer", "detail")
#: The most items one summary carries, both sides together. An item takes about 207 bytes of
#: the signed token, so 4,000 of them and the per-day roots of a whole year (about 85 KB) stay
#: under the 1 MiB a token may have (keys/jws.py); a summary carrying more is refused.
MAX_ITEMS = 4000
#: A side's count is only checked to be a sane number: however busy a pair, a period is
#: summarised by its per-day roots, and only the items of days that differ travel.
MAX_COUNT = 10_000_000
_FIELDS = frozenset({"v", "role", "exchange", "office", "peer", "period", "time", "sent",
                     "received"})
_SIDE_FIELDS = frozenset({"count", "root", "days", "items"})
_PERIOD = re.compile(r"(?P<year>[0-9]{4})(?:-(?:(?P<quarter>Q[1-4])|(?P<month>[0-9]{2})"
                     r"(?:-(?P<day>[0-9]{2}))?))?")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


# -- periods -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Period:
    """A calendar period in UTC: ``start`` inclusive, ``end`` exclusive (RFC 3339 text)."""

    label: str
    kind: str
    start: str
    end: str

    def holds(self, time: str) -> bool:
        """Whether an RFC 3339 UTC time (``...Z``) falls in the period."""
        return self.start <= _normal(time) < self.end


def _normal(time: str) -> str:
    """Times compare as text once written with whole seconds."""
    return time[:19] + "Z"


def _stamp(year: int, month: int = 1, day: int = 1) -> str:
    return datetime(year, month, day, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_period(text: object) -> Period:
    """``2026`` (year), ``2026-Q4`` (quarter), ``2026-11`` (month) or ``2026-11-03`` (day)."""
    match = _PERIOD.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise SummaryError(f"period {text!r} is not a year (2026), quarter (2026-Q4), month "
                           "(2026-11) or day (2026-11-03)")
    year = int(match["year"])
    if not 2000 <= year <= 9998:
        raise SummaryError(f"period {text!r} names an implausible year")
    try:
        if match["quarter"]:
            first = 3 * (int(match["quarter"][1]) - 1) + 1
            start, kind = _stamp(year, first), "quarter"
            end = _stamp(year + 1) if first == 10 else _stamp(year, first + 3)
        elif match["day"]:
            begin = datetime(year, int(match["month"]), int(match["day"]), tzinfo=UTC)
            start, kind = _stamp(year, begin.month, begin.day), "day"
            end = datetime.fromtimestamp(begin.timestamp() + 86400, UTC) \
                .strftime("%Y-%m-%dT%H:%M:%SZ")
        elif match["month"]:
            month = int(match["month"])
            start, kind = _stamp(year, month), "month"
            end = _stamp(year + 1) if month == 12 else _stamp(year, month + 1)
        else:
            start, end, kind = _stamp(year), _stamp(year + 1), "year"
    except ValueError as exc:
        raise SummaryError(f"period {text!r} is not a real date: {exc}") from exc
    return Period(label=text, kind=kind, start=start, end=end)  # type: ignore[arg-type]


def month_before(time: str) -> str:
    """The label of the calendar month before the one ``time`` falls in (``2026-11``)."""
    year, month = int(time[:4]), int(time[5:7])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


# -- items and digests -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, order=True)
class Item:
    """One document in one office's record: what it was and when it was receipted."""

    message_id: str
    sha256: str
    created: str
    receipt_time: str | None

    @property
    def day(self) -> str:
        return self.created[:10]

    @property
    def line(self) -> str:
        return f"{self.message_id} {self.sha256} {self.created} {self.receipt_time or '-'}"

    def as_list(self) -> list[str | None]:
        return [self.message_id, self.sha256, self.created, self.receipt_time]


def _sha(lines: Iterable[str]) -> str:
    return hashlib.sha256("".join(line + "\n" for line in sorted(lines)).encode("utf-8")) \
        .hexdigest()


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a summary: count, root, the per-day roots, and the items carried (if any)."""

    count: int
    root: str
    days: Mapping[str, tuple[int, str]]
    items: tuple[Item, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "root": self.root,
                "days": {day: [n, root] for day, (n, root) in sorted(self.days.items())},
                "items": [item.as_list() for item in sorted(self.items)]}

    def differing_days(self, other: Side) -> set[str]:
        """The days whose count or root is not the same in ``other``."""
        return {day for day in set(self.days) | set(other.days)
                if self.days.get(day) != other.days.get(day)}

    def carrying(self, items: Iterable[Item], days: set[str]) -> Side:
        """This side with the items of ``days`` attached (the lists exchanged on a difference)."""
        return Side(self.count, self.root, self.days,
                    tuple(sorted(item for item in items if item.day in days)))


def carried_days(sent: Side, days_out: Iterable[str], received: Side, days_in: Iterable[str],
                 *, limit: int = MAX_ITEMS) -> tuple[set[str], set[str]]:
    """Which differing days' items one summary carries: whole days, earliest first, sent and
    received days together, at most ``limit`` items; a day that does not fit is left for a
    later day that does. Days a side holds nothing of cost nothing (an empty list is whole)."""
    wanted = sorted([(day, 0, sent.days.get(day, (0, ""))[0]) for day in days_out] +
                    [(day, 1, received.days.get(day, (0, ""))[0]) for day in days_in])
    total, out, into = 0, set[str](), set[str]()
    for day, which, count in wanted:
        if total + count > limit:
            continue
        total += count
        (out if which == 0 else into).add(day)
    return out, into


def listed(side: Side, day: str) -> bool:
    """Whether a received summary's side gives its whole list for ``day``: it carries that
    day's items, or it holds nothing that day."""
    return day not in side.days or any(item.day == day for item in side.items)


def digest_side(items: Iterable[Item]) -> Side:
    """Count, per-day roots and root of a list of items (the Merkle tree of two levels)."""
    by_day: dict[str, list[str]] = {}
    count = 0
    for item in items:
        by_day.setdefault(item.day, []).append(item.line)
        count += 1
    days = {day: (len(lines), _sha(lines)) for day, lines in by_day.items()}
    return Side(count=count, root=_sha(f"{day} {n} {root}" for day, (n, root) in days.items()),
                days=days)


# -- differences -------------------------------------------------------------------------------

#: What each kind of difference means (docs/review.md).
DIFFERENCE_KINDS = {
    "not-receipted": "sent, never receipted, and the recipient has no record of it",
    "missing-at-recipient": "the sender holds a receipt for it, but the recipient has no record",
    "missing-at-sender": "the recipient receipted it, but the sender's record has no receipt",
    "digest-mismatch": "both hold it, with different SHA-256 digests",
    "receipt-mismatch": "both hold it, with different receipt times",
    "not-compared": "days whose roots differ but whose lists did not fit in one exchange",
}


@dataclass(frozen=True, slots=True)
class Difference:
    """One document the two records disagree about; ``direction`` is from whom to whom. A
    ``not-compared`` line names no document but ``days`` days left out in one direction."""

    kind: str
    message_id: str
    sender: str
    recipient: str
    detail: str = ""
    days: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "message_id": self.message_id,
                               "sender": self.sender, "recipient": self.recipient,
                               "detail": self.detail}
        if self.kind == "not-compared":
            out["days"] = self.days
        return out


def tally(differences: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(documents that differ, days not compared) in a list of ``Difference.as_dict``: a
    ``not-compared`` line stands for days, not for a document."""
    documents = days = 0
    for d in differences:
        if d.get("kind") != "not-compared":
            documents += 1
            continue
        # Recorded before lines carried "days": the detail starts with the count.
        found = d.get("days")
        if not isinstance(found, int):
            match = re.match(r"(\d+) day", str(d.get("detail", "")))
            found = int(match.group(1)) if match else 1
        days += found
    return documents, days


def compare(sent: Iterable[Item], received: Iterable[Item], *, sender: str,
            recipient: str) -> list[Difference]:
    """Every difference between what ``sender`` lists as sent and ``recipient`` as received."""
    mine = {item.message_id: item for item in sent}
    theirs = {item.message_id: item for item in received}
    out: list[Difference] = []
    for mid in sorted(set(mine) | set(theirs)):
        a, b = mine.get(mid), theirs.get(mid)
        if a is not None and b is None:
            kind = "missing-at-recipient" if a.receipt_time else "not-receipted"
            out.append(Difference(kind, mid, sender, recipient, f"created {a.created}"))
        elif b is not None and (a is None or a.receipt_time is None):
            out.append(Difference("missing-at-sender", mid, sender, recipient,
                                  f"receipted {b.receipt_time}"))
        elif a is None or b is None:
            continue  # not reached: mid is in one of the two maps
        elif a.sha256 != b.sha256:
            out.append(Difference("digest-mismatch", mid, sender, recipient,
                                  f"sender {a.sha256[:16]}..., recipient {b.sha256[:16]}..."))
        elif a.receipt_time != b.receipt_time:
            out.append(Difference("receipt-mismatch", mid, sender, recipient,
                                  f"sender {a.receipt_time}, recipient {b.receipt_time}"))
    return out


# -- the signed summary ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SummaryInfo:
    """The fields of a summary token. Only trust one returned by :func:`verify_summary`."""

    role: str
    exchange: str
    office: str
    peer: str
    period: Period
    time: str
    sent: Side
    received: Side
    token: str = field(repr=False)


def issue_summary(identity: nacl.signing.SigningKey, *, role: str, exchange: str, peer: str,
                  period: str, time: str, sent: Side, received: Side) -> str:
    """Sign a summary of this office's record with ``peer`` for ``period``."""
    office = node_id_from_public_key(identity.verify_key.encode())
    if role not in ROLES:
        raise SummaryError(f"unknown role {role!r}")
    check_hex(exchange, "exchange", 32, SummaryError)
    check_node_id(peer, "peer", SummaryError)
    parse_period(period)
    check_time(time, "time", SummaryError)
    payload = {"v": VERSION, "role": role, "exchange": exchange, "office": office,
               "peer": peer, "period": period, "time": time, "sent": sent.as_dict(),
               "received": received.as_dict()}
    return jws.sign(identity, SUMMARY_TYP, payload, kid=office)


def _item(raw: object) -> Item:
    if not isinstance(raw, list) or len(raw) != 4:
        raise SummaryError("an item is [message_id, sha256, created, receipt_time]")
    mid, sha, created, receipt = raw
    return Item(check_hex(mid, "item message_id", 32, SummaryError),
                check_hex(sha, "item sha256", 64, SummaryError),
                check_time(created, "item created", SummaryError),
                None if receipt is None else check_time(receipt, "item receipt", SummaryError))


def _side(raw: object, what: str, period: Period) -> Side:
    if not isinstance(raw, dict) or set(raw) != _SIDE_FIELDS:
        raise SummaryError(f"{what} must have exactly {sorted(_SIDE_FIELDS)}")
    count, root, days, items = raw["count"], raw["root"], raw["days"], raw["items"]
    if type(count) is not int or not 0 <= count <= MAX_COUNT:
        raise SummaryError(f"{what}.count must be a whole number from 0 to {MAX_COUNT}")
    check_hex(root, f"{what}.root", 64, SummaryError)
    if not isinstance(days, dict) or not isinstance(items, list) or len(items) > count:
        raise SummaryError(f"{what}.days must be an object and {what}.items a list of at "
                           f"most {what}.count items")
    parsed: dict[str, tuple[int, str]] = {}
    for day, pair in days.items():
        if not _DAY.fullmatch(day) or not period.holds(day + "T00:00:00Z"):
            raise SummaryError(f"{what}.days names {day!r}, outside period {period.label}")
        if (not isinstance(pair, list) or len(pair) != 2 or type(pair[0]) is not int
                or pair[0] < 1):
            raise SummaryError(f"{what}.days[{day}] must be [count, root]")
        parsed[day] = (pair[0], check_hex(pair[1], f"{what}.days[{day}]", 64, SummaryError))
    if sum(n for n, _ in parsed.values()) != count:
        raise SummaryError(f"{what}.count is not the sum of its days")
    if _sha(f"{day} {n} {r}" for day, (n, r) in parsed.items()) != root:
        raise SummaryError(f"{what}.root is not the digest of its days")
    carried = tuple(_item(item) for item in items)
    for day in {item.day for item in carried}:
        of_day = [item for item in carried if item.day == day]
        if parsed.get(day) != (len(of_day), _sha(item.line for item in of_day)):
            raise SummaryError(f"{what}.items of {day} do not hash to that day's root")
    return Side(count, root, parsed, carried)


def _decode(token: str | bytes) -> jws.Decoded:
    try:
        return jws.decode(token, SUMMARY_TYP)
    except key_errors.KeysError as exc:
        raise SummaryError(f"not a reconciliation summary: {exc}") from exc


def _parse(decoded: jws.Decoded) -> SummaryInfo:
    p = decoded.payload
    if type(p.get("v")) is not int or p["v"] != VERSION:
        raise SummaryError(f"unsupported summary version {p.get('v')!r}; this node reads v1")
    if set(p) != _FIELDS:
        missing, extra = sorted(_FIELDS - set(p)), sorted(set(p) - _FIELDS)
        raise SummaryError(f"summary fields wrong: missing {missing}, unknown {extra}")
    office = check_node_id(p["office"], "office", SummaryError)
    if decoded.kid != office:
        raise SummaryError("the summary's kid must be the signing office's node ID")
    if p["role"] not in ROLES:
        raise SummaryError(f"unknown role {p['role']!r}")
    period = parse_period(p["period"])
    for what in ("sent", "received"):
        if not isinstance(p[what], dict) or not isinstance(p[what].get("items"), list):
            raise SummaryError(f"{what} must be an object with a list of items")
    if len(p["sent"]["items"]) + len(p["received"]["items"]) > MAX_ITEMS:
        raise SummaryError(f"the summary carries more than {MAX_ITEMS} items")
    return SummaryInfo(role=p["role"], exchange=check_hex(p["exchange"], "exchange", 32,
                                                          SummaryError),
                       office=office, peer=check_node_id(p["peer"], "peer", SummaryError),
                       period=period, time=check_time(p["time"], "time", SummaryError),
                       sent=_side(p["sent"], "sent", period),
                       received=_side(p["received"], "received", period), token=decoded.token)


def decode_summary(token: str | bytes) -> SummaryInfo:
    """Parse a summary for display WITHOUT checking its signature; act on nothing in it."""
    return _parse(_decode(token))


def verify_summary(token: str | bytes, office_verify_key: nacl.signing.VerifyKey, *,
                   peer: str | None = None) -> SummaryInfo:
    """Check a summary's type, signature, schema and roots; with ``peer``, that it is
    addressed to that office. ``office_verify_key`` is the signing office's identity key."""
    decoded = _decode(token)
    try:
        jws.verify_decoded(decoded, office_verify_key)
    except key_errors.BadSignature as exc:
        raise SummaryError("the summary's signature does not verify") from exc
    info = _parse(decoded)
    if node_id_from_public_key(office_verify_key.encode()) != info.office:
        raise SummaryError(f"the key that signed the summary is not the identity of "
                           f"{info.office}")
    if peer is not None and info.peer != peer:
        raise SummaryError(f"the summary is addressed to {info.peer}, not {peer}")
    return info
