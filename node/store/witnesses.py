"""Witnessed audit heads, both ways (schema version 4).

* ``peer_heads``: heads of *peers'* audit chains this node holds as their witness, each with
  the ``lienthong-audit-witness/1`` token this node signed for it. ``witness_peer_head`` decides
  in one transaction whether a head is new, a resend, an earlier head overtaken in delivery,
  one that goes back on the heads held, or a contradiction of one held; only a new one is kept
  (and numbered), nothing is ever updated.
* ``head_witnesses``: witnesses peers signed for *this node's* heads, kept as they came.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select

from lienthong.keys.identity import check_time, parse_time
from lienthong.node.store import schema as t
from lienthong.node.store.base import StoreBase, build
from lienthong.node.store.records import HeadWitnessRow, PeerHeadRow

_p = t.peer_heads
_w = t.head_witnesses


@dataclass(frozen=True, slots=True)
class HeadOutcome:
    """What ``witness_peer_head`` decided: ``new`` (kept, ``row`` is it), ``resend`` (that very
    head is held, ``row``), ``superseded`` (a head for an earlier entry than the latest held,
    signed in order with the heads held: overtaken in delivery, ``row`` the latest),
    ``older`` (a head for an earlier entry signed after a held head for a later entry, or
    before a held head for an earlier one: the log went backwards, ``row`` the head it
    goes back on) or ``contradicts`` (another hash for an entry held, ``row`` it)."""

    verdict: str
    row: PeerHeadRow


class WitnessMethods(StoreBase):
    """Witnessed-head methods of ``Store``."""

    def witness_peer_head(self, *, node_id: str, seq: int, hash: str, head_time: str,
                          head: str, head_sha256: str,
                          sign: Callable[[int, str | None], tuple[str, str]],
                          now: str) -> HeadOutcome:
        """Keep a verified head of ``node_id``'s chain unless it is a resend, older than the
        latest held (superseded, or going back on the heads held), or contradicts one held.
        ``sign(index, prev_sha256)`` returns the witness token and its SHA-256 for a new head
        (called inside the transaction, so the numbering has no gap and no repeat)."""
        check_time(now)
        with self.transaction() as conn:
            same = conn.execute(select(_p).where(_p.c.node_id == node_id, _p.c.seq == seq)) \
                .first()
            if same is not None:
                held = build(PeerHeadRow, same)
                # The same entry with the same hash signed again is no news; another hash for
                # an entry already witnessed is the contradiction this table exists to catch.
                return HeadOutcome("resend" if held.hash == hash else "contradicts", held)
            latest = conn.execute(select(_p).where(_p.c.node_id == node_id)
                                  .order_by(_p.c.witness_index.desc()).limit(1)).first()
            if latest is not None and latest.seq > seq:
                return self._earlier_head(conn, build(PeerHeadRow, latest), seq, head_time)
            index = 1 if latest is None else latest.witness_index + 1
            token, token_sha = sign(index, None if latest is None else latest.witness_sha256)
            values: dict[str, Any] = dict(
                node_id=node_id, seq=seq, hash=hash, head_time=head_time, head=head,
                head_sha256=head_sha256, witness=token, witness_index=index,
                witness_sha256=token_sha, received_at=now)
            key = conn.execute(insert(_p).values(**values)).inserted_primary_key
            return HeadOutcome("new", PeerHeadRow(id=int(key[0]) if key else 0, **values))

    @staticmethod
    def _earlier_head(conn: Any, latest: PeerHeadRow, seq: int, head_time: str) -> HeadOutcome:
        """A head for an entry before the latest held (none held for that entry): an office
        signs its heads in the order of its log, so one that came late is ``superseded``
        when it was signed no later than the held head just past its entry and no earlier
        than the one just before; otherwise the office's log went backwards between two
        signatures (``older``, with the held head it goes back on)."""
        node_id, signed = latest.node_id, parse_time(head_time)
        after = conn.execute(select(_p).where(_p.c.node_id == node_id, _p.c.seq > seq)
                             .order_by(_p.c.seq).limit(1)).first()
        before = conn.execute(select(_p).where(_p.c.node_id == node_id, _p.c.seq < seq)
                              .order_by(_p.c.seq.desc()).limit(1)).first()
        if after is not None and parse_time(after.head_time) < signed:
            return HeadOutcome("older", build(PeerHeadRow, after))
        if before is not None and parse_time(before.head_time) > signed:
            return HeadOutcome("older", build(PeerHeadRow, before))
        return HeadOutcome("superseded", latest)

    def peer_heads(self, node_id: str | None = None) -> list[PeerHeadRow]:
        """Heads held for peers (one peer's, or all), per peer in witness order."""
        query = select(_p).order_by(_p.c.node_id, _p.c.witness_index)
        if node_id is not None:
            query = query.where(_p.c.node_id == node_id)
        with self._read() as conn:
            return [build(PeerHeadRow, row) for row in conn.execute(query).all()]

    def latest_peer_heads(self) -> dict[str, PeerHeadRow]:
        """The latest head held for each peer, by node ID."""
        last = select(_p.c.node_id, func.max(_p.c.witness_index).label("top")) \
            .group_by(_p.c.node_id).subquery()
        query = select(_p).join(last, (_p.c.node_id == last.c.node_id) &
                                (_p.c.witness_index == last.c.top))
        with self._read() as conn:
            return {row.node_id: build(PeerHeadRow, row) for row in conn.execute(query).all()}

    def record_head_witness(self, *, witness_node_id: str, seq: int, hash: str,
                            head_sha256: str, witness_index: int, token: str,
                            token_sha256: str, witnessed_at: str,
                            now: str) -> tuple[str, HeadWitnessRow]:
        """Keep a verified witness of one of our heads: (``new`` | ``resend`` |
        ``contradicts``, the row kept or already held for that index)."""
        check_time(now)
        with self.transaction() as conn:
            held = conn.execute(select(_w).where(_w.c.witness_node_id == witness_node_id,
                                                 _w.c.witness_index == witness_index)).first()
            if held is not None:
                row = build(HeadWitnessRow, held)
                return ("resend" if row.token_sha256 == token_sha256 else "contradicts"), row
            values: dict[str, Any] = dict(
                witness_node_id=witness_node_id, seq=seq, hash=hash, head_sha256=head_sha256,
                witness_index=witness_index, token=token, token_sha256=token_sha256,
                witnessed_at=witnessed_at, received_at=now)
            key = conn.execute(insert(_w).values(**values)).inserted_primary_key
            return "new", HeadWitnessRow(id=int(key[0]) if key else 0, **values)

    def head_witnesses(self, witness_node_id: str | None = None) -> list[HeadWitnessRow]:
        """Witnesses of our heads (one peer's, or all), per peer in index order."""
        query = select(_w).order_by(_w.c.witness_node_id, _w.c.witness_index)
        if witness_node_id is not None:
            query = query.where(_w.c.witness_node_id == witness_node_id)
        with self._read() as conn:
            return [build(HeadWitnessRow, row) for row in conn.execute(query).all()]
