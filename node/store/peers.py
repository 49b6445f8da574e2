"""The peer directory's tables: who we trust, with which keys, and every key they ever used.

``peers`` holds one row per enrolled peer; ``peer_keys`` holds every key any peer has used and
is never deleted (removing a peer closes its keys), so a receipt signed years ago can still be
checked. Every change bumps ``directory_version`` in the same transaction, which is how a
running daemon notices, with one cheap query, that the CLI enrolled or revoked someone.
Values in and out are ``keys.directory`` records, validated when built.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from lienthong.keys.directory import Directory, Peer, PeerKey
from lienthong.keys.identity import check_time, parse_time
from lienthong.node.store import schema as t
from lienthong.node.store.base import StoreBase, build
from lienthong.node.store.records import (
    DuplicatePeer,
    NotFound,
    PeerRecord,
    PeerRevoked,
    StoreError,
)


def _addresses(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


#: Built once: this runs for every received document and every batch of receipts.
_PEER_STATE = (select(t.peers.c.name, t.peers.c.state, t.peers.c.revoked_at)
               .where(t.peers.c.node_id == bindparam("node_id")))


def refuse_if_revoked(conn: Connection, node_id: str) -> None:
    """Raise ``PeerRevoked`` when ``node_id`` is a revoked peer.

    Called inside the transaction that would record something the peer sent (a receipt, the
    start of a document's publication): SQLite has one writer, so the revocation and that
    record are ordered, and whatever commits after the revocation is refused, however stale
    the daemon's copy of the directory is (it reloads it once a second).
    """
    row = conn.execute(_PEER_STATE, {"node_id": node_id}).first()
    if row is not None and row.state == "revoked":
        raise PeerRevoked(f"{row.name} was revoked at {row.revoked_at}")


class PeerMethods(StoreBase):
    """Peer directory methods of ``Store``."""

    def directory_version(self) -> int:
        """A counter bumped by every directory change, in any process: poll it to reload."""
        with self._read() as conn:
            return int(conn.execute(select(t.directory_version.c.version)).scalar_one())

    def _bump_directory(self, conn: Connection) -> None:
        conn.execute(update(t.directory_version).where(t.directory_version.c.id == 1)
                     .values(version=t.directory_version.c.version + 1))

    def _load_peers(self, conn: Connection, where: Any) -> list[PeerRecord]:
        rows = conn.execute(select(t.peers).where(where).order_by(t.peers.c.name)).all()
        if not rows:
            return []
        key_rows = conn.execute(
            select(t.peer_keys)
            .where(t.peer_keys.c.node_id.in_(select(t.peers.c.node_id).where(where)))
            .order_by(t.peer_keys.c.id)).all()
        by_node: dict[str, list[Any]] = {}
        for key_row in key_rows:
            by_node.setdefault(key_row.node_id, []).append(key_row)
        records = []
        for row in rows:
            enrolled = parse_time(row.added_at)
            # Keys closed before this enrolment belong to an earlier one (the peer was removed
            # and added again): they stay in key_history() but are not this peer's keys. The
            # same key recorded twice (re-enrolled) counts once, as its latest row.
            latest = {(k.kind, k.kid): k for k in by_node.get(row.node_id, ())
                      if k.valid_until is None or parse_time(k.valid_until) > enrolled}
            keys = tuple(build(PeerKey, k) for k in sorted(latest.values(), key=lambda k: k.id))
            peer = Peer(name=row.name, node_id=row.node_id, addresses=_addresses(row.addresses),
                        state=row.state, keys=keys, revoked_at=row.revoked_at,
                        reason=row.reason)
            records.append(PeerRecord(peer=peer, card=row.card, added_at=row.added_at))
        return records

    def _peer_where(self, conn: Connection, where: Any, what: str) -> PeerRecord:
        found = self._load_peers(conn, where)
        if not found:
            raise NotFound(f"there is no peer {what} in the directory")
        return found[0]

    def list_peers(self) -> list[PeerRecord]:
        """Every peer (trusted and revoked), by name, with the keys of its current enrolment."""
        with self._read() as conn:
            return self._load_peers(conn, t.peers.c.name.is_not(None))

    def directory(self) -> Directory:
        """The directory snapshot the daemon resolves peers, pins and keys with."""
        return Directory(record.peer for record in self.list_peers())

    def get_peer(self, name: str) -> PeerRecord | None:
        with self._read() as conn:
            found = self._load_peers(conn, t.peers.c.name == name)
            return found[0] if found else None

    def peer_by_node_id(self, node_id: str) -> PeerRecord | None:
        with self._read() as conn:
            found = self._load_peers(conn, t.peers.c.node_id == node_id)
            return found[0] if found else None

    def key_history(self, node_id: str) -> tuple[PeerKey, ...]:
        """Every key ever recorded for ``node_id``, oldest first, even after removal."""
        with self._read() as conn:
            rows = conn.execute(select(t.peer_keys).where(t.peer_keys.c.node_id == node_id)
                                .order_by(t.peer_keys.c.id)).all()
            return tuple(build(PeerKey, row) for row in rows)

    def add_peer(self, peer: Peer, card_token: str, now: str) -> PeerRecord:
        """Enrol ``peer`` (built from its card, node ID checked out of band) with its keys."""
        check_time(now)
        with self.transaction() as conn:
            clash = conn.execute(select(t.peers.c.name, t.peers.c.node_id).where(or_(
                t.peers.c.name == peer.name, t.peers.c.node_id == peer.node_id))).first()
            if clash is not None:
                if clash.name == peer.name:
                    raise DuplicatePeer(f"a peer named {peer.name!r} is already in the "
                                        f"directory (node ID {clash.node_id})")
                raise DuplicatePeer(f"node ID {peer.node_id} is already in the directory, "
                                    f"as peer {clash.name!r}")
            conn.execute(insert(t.peers).values(
                name=peer.name, node_id=peer.node_id, card=card_token,
                addresses=json.dumps(list(peer.addresses)), state=peer.state,
                revoked_at=peer.revoked_at, reason=peer.reason, added_at=now))
            conn.execute(insert(t.peer_keys), [
                {"node_id": peer.node_id, "kind": key.kind, "value": key.value, "kid": key.kid,
                 "valid_from": key.valid_from, "valid_until": key.valid_until}
                for key in peer.keys])
            self._bump_directory(conn)
        return PeerRecord(peer=peer, card=card_token, added_at=now)

    def update_peer_addresses(self, name: str, addresses: Sequence[str],
                              now: str) -> PeerRecord:
        check_time(now)
        with self.transaction() as conn:
            record = self._peer_where(conn, t.peers.c.name == name, f"named {name!r}")
            peer = replace(record.peer, addresses=tuple(addresses))  # validates them
            conn.execute(update(t.peers).where(t.peers.c.name == name)
                         .values(addresses=json.dumps(list(peer.addresses))))
            self._bump_directory(conn)
        return replace(record, peer=peer)

    def update_peer_card(self, name: str, card_token: str, now: str) -> PeerRecord:
        """Keep the latest card a peer sent (e.g. after it rotated a key)."""
        check_time(now)
        with self.transaction() as conn:
            record = self._peer_where(conn, t.peers.c.name == name, f"named {name!r}")
            conn.execute(update(t.peers).where(t.peers.c.name == name).values(card=card_token))
            self._bump_directory(conn)
        return replace(record, card=card_token)

    def add_peer_key(self, node_id: str, key: PeerKey) -> PeerRecord:
        """Rotate a peer's encryption or TLS key; the old one is closed at ``key.valid_from``.

        Adding the key that is already current is a no-op. A new identity key would mean a new
        node ID, which needs a new out-of-band check: remove the peer and enrol the new card.
        """
        if key.kind == "identity":
            raise StoreError("a new identity key is a new node ID: remove the peer and enrol "
                             "its new card after checking the node ID out of band")
        with self.transaction() as conn:
            record = self._peer_where(conn, t.peers.c.node_id == node_id,
                                      f"with node ID {node_id}")
            if any(old.kind == key.kind and old.kid == key.kid and old.is_current
                   for old in record.peer.keys):
                return record
            rotated = record.peer.with_key(key)  # refuses a reused key or a time going back
            conn.execute(update(t.peer_keys).where(
                t.peer_keys.c.node_id == node_id, t.peer_keys.c.kind == key.kind,
                t.peer_keys.c.valid_until.is_(None)).values(valid_until=key.valid_from))
            conn.execute(insert(t.peer_keys).values(
                node_id=node_id, kind=key.kind, value=key.value, kid=key.kid,
                valid_from=key.valid_from, valid_until=None))
            self._bump_directory(conn)
        return replace(record, peer=rotated)

    def revoke_peer(self, name: str, reason: str, now: str) -> PeerRecord:
        """Revoke a peer (a second revocation keeps the first one's time and reason)."""
        check_time(now)
        with self.transaction() as conn:
            record = self._peer_where(conn, t.peers.c.name == name, f"named {name!r}")
            if record.peer.state == "revoked":
                return record
            revoked = record.peer.revoke(at=now, reason=reason)
            conn.execute(update(t.peers).where(t.peers.c.name == name)
                         .values(state="revoked", revoked_at=now, reason=reason))
            self._bump_directory(conn)
        return replace(record, peer=revoked)

    def remove_peer(self, name: str, now: str) -> None:
        """Forget a peer; its keys stay in the history, closed at ``now``."""
        check_time(now)
        with self.transaction() as conn:
            record = self._peer_where(conn, t.peers.c.name == name, f"named {name!r}")
            conn.execute(delete(t.peers).where(t.peers.c.name == name))
            removed_at = parse_time(now)
            for key in record.peer.keys:
                if key.is_current:
                    # Never close a key before it started (the clock may have stepped back):
                    # the history must stay readable as valid PeerKey values.
                    until = now if removed_at >= parse_time(key.valid_from) else key.valid_from
                    conn.execute(update(t.peer_keys).where(
                        t.peer_keys.c.node_id == record.peer.node_id,
                        t.peer_keys.c.kind == key.kind, t.peer_keys.c.kid == key.kid,
                        t.peer_keys.c.valid_until.is_(None)).values(valid_until=until))
            self._bump_directory(conn)


    # -- announced keys and identity continuations (identity/key_update_incoming.py) -------

    def apply_peer_keys(self, node_id: str, new_keys: Sequence[PeerKey], card_token: str,
                        now: str, *, tls_grace_until: str | None = None) -> PeerRecord:
        """Apply keys a trusted peer announced (binding verified by the caller), with its card.

        Keys already current are skipped, so applying the same announcement twice changes
        nothing. A key the peer used before and gave up is refused (an old binding replayed).
        The previous TLS key is closed at ``tls_grace_until`` rather than at the new key's
        start: the overlap lets handshakes still present it until then (keys.directory), and
        :meth:`end_tls_grace` closes it properly afterwards.
        """
        check_time(now)
        if tls_grace_until is not None:
            check_time(tls_grace_until)
        with self.transaction() as conn:
            record = self._peer_where(conn, t.peers.c.node_id == node_id,
                                      f"with node ID {node_id}")
            if record.peer.state != "trusted":
                raise StoreError(f"peer {record.peer.name} is revoked; its keys are not updated")
            changed = False
            for key in new_keys:
                if key.kind == "identity":
                    raise StoreError("an identity key changes only by continue_peer_identity")
                current = record.peer.current(key.kind)
                if current.kid == key.kid:
                    continue
                if any(old.kind == key.kind and old.kid == key.kid for old in record.peer.keys):
                    raise StoreError(f"peer {record.peer.name} announced its old {key.kind} key "
                                     f"{key.kid} again; refused (a replayed announcement?)")
                until = tls_grace_until if key.kind == "tls" and tls_grace_until else key.valid_from
                if parse_time(until) < parse_time(current.valid_from):
                    until = current.valid_from  # the clock stepped back: never end before start
                conn.execute(update(t.peer_keys).where(
                    t.peer_keys.c.node_id == node_id, t.peer_keys.c.kind == key.kind,
                    t.peer_keys.c.valid_until.is_(None)).values(valid_until=until))
                conn.execute(insert(t.peer_keys).values(
                    node_id=node_id, kind=key.kind, value=key.value, kid=key.kid,
                    valid_from=key.valid_from, valid_until=None))
                changed = True
            if changed or record.card != card_token:
                conn.execute(update(t.peers).where(t.peers.c.node_id == node_id)
                             .values(card=card_token))
                self._bump_directory(conn)
            return self._peer_where(conn, t.peers.c.node_id == node_id, f"with node ID {node_id}")

    def end_tls_grace(self, now: str) -> list[str]:
        """Close every previous TLS key whose grace period is over; return the node IDs.

        The key is closed at the start of the key that replaced it, so the history reads as
        if there had never been an overlap.
        """
        check_time(now)
        moment = parse_time(now)
        ended: list[str] = []
        with self.transaction() as conn:
            for record in self._load_peers(conn, t.peers.c.state == "trusted"):
                current = record.peer.current("tls")
                for key in record.peer.accepted_tls_keys()[1:]:
                    if parse_time(key.valid_until) > moment:  # type: ignore[arg-type]
                        continue
                    until = max(current.valid_from, key.valid_from, key=parse_time)
                    conn.execute(update(t.peer_keys).where(
                        t.peer_keys.c.node_id == record.peer.node_id,
                        t.peer_keys.c.kind == "tls", t.peer_keys.c.kid == key.kid,
                        t.peer_keys.c.valid_until == key.valid_until).values(valid_until=until))
                    ended.append(record.peer.node_id)
            if ended:
                self._bump_directory(conn)
        return ended

    def continue_peer_identity(self, old_node_id: str, new_keys: Sequence[PeerKey],
                               card_token: str, now: str) -> tuple[PeerRecord, int]:
        """Re-key a peer to a new identity it announced with a continuation signed by its old
        identity (verified by the caller). Returns the new record and how many deliveries
        queued for the old node ID now wait under the new one.

        The peer keeps its name, addresses and enrolment; its node ID becomes the new one.
        Every key row recorded under the old node ID stays there, closed at ``now``, so
        ``key_history(old)`` still checks every receipt the old identity signed; the same
        history is copied under the new node ID, so the directory still answers
        ``verify_key_for(old, kid=old)``. ``new_keys`` are the new identity, encryption and TLS
        keys (from the new card); an unchanged encryption or TLS key stays current.
        """
        check_time(now)
        with self.transaction() as conn:
            record = self._peer_where(conn, t.peers.c.node_id == old_node_id,
                                      f"with node ID {old_node_id}")
            old = record.peer
            if old.state != "trusted":
                raise StoreError(f"peer {old.name} is revoked; its identity is not continued")
            by_kind = {key.kind: key for key in new_keys}
            if set(by_kind) != {"identity", "encryption", "tls"} or len(new_keys) != 3:
                raise StoreError("a continuation names exactly one key of each kind")
            new_id = by_kind["identity"].kid
            clash = conn.execute(select(t.peers.c.name).where(t.peers.c.node_id == new_id)).first()
            if clash is not None or new_id == old_node_id:
                raise StoreError(f"node ID {new_id} is already in the directory ({clash})")
            history = conn.execute(select(t.peer_keys.c.id).where(
                t.peer_keys.c.node_id == new_id)).first()
            if history is not None:
                raise StoreError(f"node ID {new_id} already has a key history; refusing to "
                                 "merge two identities")

            def closed(key: PeerKey) -> PeerKey:
                until = now if parse_time(now) >= parse_time(key.valid_from) else key.valid_from
                return replace(key, valid_until=until)

            keys: list[PeerKey] = []
            for key in old.keys:
                keep = (key.is_current and key.kind != "identity"
                        and by_kind[key.kind].value == key.value)
                keys.append(key if keep or not key.is_current else closed(key))
            kept = {(key.kind, key.value) for key in keys if key.is_current}
            keys += [key for key in new_keys if (key.kind, key.value) not in kept]
            peer = replace(old, node_id=new_id, keys=tuple(keys))  # validates the invariants
            for key in old.keys:
                if key.is_current:
                    conn.execute(update(t.peer_keys).where(
                        t.peer_keys.c.node_id == old_node_id, t.peer_keys.c.kind == key.kind,
                        t.peer_keys.c.kid == key.kid, t.peer_keys.c.valid_until.is_(None))
                        .values(valid_until=closed(key).valid_until))
            conn.execute(insert(t.peer_keys), [
                {"node_id": new_id, "kind": key.kind, "value": key.value, "kid": key.kid,
                 "valid_from": key.valid_from, "valid_until": key.valid_until}
                for key in peer.keys])
            conn.execute(update(t.peers).where(t.peers.c.node_id == old_node_id)
                         .values(node_id=new_id, card=card_token))
            # What is still queued for the old node ID goes to the same office under its new
            # one: the envelopes name the old ID and are sealed to encryption keys it kept,
            # and the peer accepts them during its grace period (docs/keys.md §3).
            moved = conn.execute(update(t.deliveries).where(
                t.deliveries.c.peer_node_id == old_node_id, t.deliveries.c.state == "queued")
                .values(peer_node_id=new_id)).rowcount
            self._bump_directory(conn)
        return PeerRecord(peer=peer, card=card_token, added_at=record.added_at), moved
