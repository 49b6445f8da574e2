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

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from keys.directory import Directory, Peer, PeerKey
from keys.identity import check_time, parse_time
from node import schema as t
from node.records import DuplicatePeer, NotFound, PeerRecord, StoreError
from node.store_base import StoreBase, build


def _addresses(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


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

