"""The store keeps a peer's heads once each: a resend, an earlier head overtaken on the way, an
earlier head signed out of order (the log went backwards) and a contradiction are told apart
in one transaction, and nothing held is ever replaced."""
from __future__ import annotations

from pathlib import Path

from lienthong.node.store.database import open_store

T = "2026-11-25T08:00:00Z"
PEER = "P" * 10


def test_heads_are_numbered_and_never_overwritten(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    signed: list[tuple[int, str | None]] = []

    def sign(index: int, prev: str | None) -> tuple[str, str]:
        signed.append((index, prev))
        return f"witness-{index}", f"{index:064x}"

    def offer(seq: int, digest: str, head: str, at: str = T):  # type: ignore[no-untyped-def]
        return store.witness_peer_head(node_id=PEER, seq=seq, hash=digest, head_time=at,
                                       head=head, head_sha256=head.ljust(64, "0"), sign=sign,
                                       now=T)

    assert offer(5, "a" * 64, "h5").verdict == "new"
    assert offer(9, "b" * 64, "h9").verdict == "new"
    assert signed == [(1, None), (2, f"{1:064x}")]
    assert offer(9, "b" * 64, "h9").verdict == "resend"
    superseded = offer(7, "c" * 64, "h7")  # signed with the others, delivered late
    assert superseded.verdict == "superseded" and superseded.row.seq == 9
    backwards = offer(7, "c" * 64, "h7", at="2026-11-25T09:00:00Z")  # after the head of 9
    assert backwards.verdict == "older" and backwards.row.seq == 9
    before = offer(3, "e" * 64, "h3", at="2026-11-25T07:00:00Z")  # before the head of 5
    assert before.verdict == "superseded"
    assert offer(7, "c" * 64, "h7", at="2026-11-25T07:00:00Z").verdict == "older"  # before 5
    contradiction = offer(9, "d" * 64, "h9x")
    assert contradiction.verdict == "contradicts" and contradiction.row.hash == "b" * 64
    assert [(r.seq, r.hash, r.witness_index) for r in store.peer_heads(PEER)] == \
        [(5, "a" * 64, 1), (9, "b" * 64, 2)]
    assert store.latest_peer_heads()[PEER].seq == 9
    store.close()
