"""Announcing this node's rotated keys to its peers after ``keys rotate``, until all have them.

Theory of operation
-------------------
``lienthong keys rotate`` (identity/rotation.py) saves the new keys and leaves
``state/key-update-request.json``. Each second the daemon looks for it and then:

1. reloads the keystore with the passphrase from its unattended source (environment,
   passphrase file or systemd credential; a node started at a prompt must be restarted);
2. sends every trusted peer a ``key-update`` control document, through the ordinary signed,
   encrypted, receipted path, carrying the new card and a binding signed by the identity key;
3. records the announcement in ``state/key-update.json`` and removes the request;
4. watches the announcement's deliveries. A peer whose receipt came back has applied it (the
   receiver runs our handler before it signs the receipt); a peer revoked or removed meanwhile
   counts as done. When no delivery is left queued, the announcement is complete.

A new encryption key is used at once: peers seal to the old one until they learn the new
one, and the node keeps every old X25519 key, so both open. A new TLS key needs more care,
because a peer that has not yet learnt it refuses it at the handshake. While the announcement
is under way the daemon therefore keeps the old TLS key (from ``keys/keystore.previous.json``)
and chooses per connection:

* dialling a peer that has not receipted the announcement: the old key;
* dialling a peer that has: the new key;
* accepting connections (one certificate for everyone, chosen before we know who dials):
  the old key, until every peer has receipted or ``SERVER_SWITCH_SECONDS`` have passed, then
  the new one. Peers that did learn the new key still accept the old one during their grace
  period (identity/peer_tls_grace.py), so nobody is refused in the meantime.

When the announcement is complete the old keystore file is deleted and only the new key is
used. A peer that never receipts it (offline for good) keeps the old key usable here, and
must enrol the new card by hand once ``SERVER_SWITCH_SECONDS`` have passed.

**Identity rotation** sends a continuation signed by the old identity (identity/rotation.py),
then switches to the new identity at once (identity/switch.py): peers that have not receipted
the continuation yet still know this node by its former node ID (``rt.known_as``), which it
keeps answering to for a grace period. Peers re-key their directory entry to the new node ID
(identity/key_update_incoming.py).

Trade-off, documented in docs/keys.md: a peer that has learnt our new TLS key still accepts
the old one for its grace period. It is not a response to a stolen identity key: that calls
for revocation and re-enrolment.

**Passphrase.** Reloading keys needs the keystore passphrase. The daemon asks its unattended
source first (environment, passphrase file, systemd credential); a daemon started at a
prompt keeps the passphrase it was typed in memory for this (``remembered``): it already
holds every private key the passphrase protects, so the passphrase adds no new secret to its
memory, and without it ``keys rotate`` would stop the node's peers from reaching it until a
person restarts it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from lienthong.config.schema import NodeConfig
from lienthong.keys.identity import NodeKeys
from lienthong.keys.keystore import load_keystore, read_passphrase
from lienthong.node.identity.peer_tls_grace import TLS_GRACE_SECONDS
from lienthong.node.identity.rotation import (
    ANNOUNCEMENT_KIND,
    REQUEST_FILE,
    RotationError,
    clear_request,
    clear_state,
    identity_announcement,
    key_announcement,
    previous_keystore,
    read_request,
    read_state,
    write_state,
)
from lienthong.node.identity.switch import IdentitySwitch
from lienthong.node.runtime.ports import RotationHost
from lienthong.node.store.records import DeliveryRow
from lienthong.node.transport.tls import PinnedContextFactory

log = Logger(namespace="lienthong.keyupdate")

POLL_SECONDS = 1.0
#: How long we keep presenting the old key to whoever connects, while some peer has not
#: receipted the announcement. One day shorter than the grace period in which a peer still
#: accepts our previous TLS key after it learnt the new one, for clock drift.
SERVER_SWITCH_SECONDS = TLS_GRACE_SECONDS - 24 * 3600.0


def configured_passphrase(config: NodeConfig, remembered: bytes | None = None
                          ) -> Callable[[], bytes | None]:
    """The passphrase source for reloading keys: the unattended source as it is now (a
    passphrase file may have been replaced), else the passphrase typed at start."""
    def source() -> bytes | None:
        found = read_passphrase(env=os.environ, passphrase_file=config.keystore.passphrase_file,
                                credentials_dir=os.environ.get("CREDENTIALS_DIRECTORY"))
        return found if found is not None else remembered
    return source


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


class OutgoingKeyUpdates:
    """Announces this node's rotated keys to its peers and switches it to a new identity;
    meanwhile dials and answers each peer with the TLS key and node ID it knows."""

    def __init__(self, node: RotationHost, *,
                 passphrase: Callable[[], bytes | None] | None = None,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.node = node
        self.rt = node.rt
        self._passphrase = passphrase or configured_passphrase(node.rt.config)
        self.identity = IdentitySwitch(node.rt, node.tls, passphrase=self._passphrase)
        self._poll_seconds = poll_seconds
        self._loop: LoopingCall | None = None
        self._busy = False
        self._blocked: float | None = None  # mtime of a request we could not apply
        self.state: dict[str, Any] | None = None
        #: Peers that have not receipted the announcement in progress.
        self.pending: set[str] = set()
        self._old_keys: NodeKeys | None = None
        self._old_tls: PinnedContextFactory | None = None
        self._new_tls: PinnedContextFactory | None = None
        node.rt.on_directory_change.append(lambda directory: self._choose_link_keys())

    # -- life cycle -------------------------------------------------------------------------

    @inlineCallbacks
    def resume(self) -> Generator[Deferred[Any], Any, None]:
        """Before the node listens: pick up the former identities still receiving and an
        announcement a restart interrupted, so that the very first connection already gets
        the right certificate and HELLO, and envelopes addressed to a former identity open."""
        yield self.identity.start()
        state = yield self.rt.io(read_state, self.rt.config.home)
        if state is not None:
            self.state = state
            self.pending = set(state.get("recipients", ()))
            yield self._load_previous_tls()
            self._choose_server_key()
            self._choose_link_keys()
            self._update_known_as()

    def start(self) -> None:
        """Poll for requests (after :meth:`resume`)."""
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.rt.reactor
        self._loop.start(self._poll_seconds, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    @inlineCallbacks
    def _tick(self) -> Generator[Deferred[Any], Any, None]:
        if self._busy:
            return
        self._busy = True
        try:
            yield self._check_request()
            if self._identity_unswitched():
                yield self._switch_identity()
            if self.state is not None:
                yield self._check_progress()
            yield self.identity.retire_expired()
        except Exception:  # noqa: BLE001 - the poll must survive to try again
            log.failure("key update poll failed")
        finally:
            self._busy = False

    @inlineCallbacks
    def _check_request(self) -> Generator[Deferred[Any], Any, None]:
        home = self.rt.config.home
        try:
            request = yield self.rt.io(read_request, home)
        except RotationError as exc:
            log.error("{error}", error=str(exc))
            return
        if request is None:
            return
        try:
            mtime = os.stat(home / REQUEST_FILE).st_mtime
        except FileNotFoundError:
            return
        if self._blocked == mtime:
            return
        passphrase = self._passphrase()
        if passphrase is None:
            self._blocked = mtime
            reason = ("the keys were rotated, but no passphrase is available to reload them "
                      "(the passphrase file or credential is gone): restart it (lienthong run)")
            log.error(reason)
            yield self.rt.audit("key-update-blocked", reason=reason)
            return
        rt = self.rt
        if request.rotation is not None:
            data = identity_announcement(request.rotation)
        else:
            rt.keys = yield rt.io(load_keystore, rt.config.keystore.path, passphrase)
            card_text = yield rt.io(_read_text, rt.config.card_path)
            data = key_announcement(rt.keys, card_text=card_text,
                                    addresses=rt.config.node.advertise, now=rt.now_text(),
                                    seq=request.seq)
            yield self._load_previous_tls(passphrase)
        recipients = sorted(peer.node_id for peer in rt.directory.peers
                            if peer.state == "trusted")
        message_id = None
        if recipients:
            message_id = yield self.node.outbox.send_control(
                recipients, name="key-update.json", data=data, meta={"kind": ANNOUNCEMENT_KIND})
        state = {"v": 1, "message_id": message_id, "kinds": list(request.kinds),
                 "recipients": recipients, "started_at": rt.now(), "old_node_id": rt.node_id,
                 "rotation": request.rotation}
        yield rt.io(write_state, home, state)
        yield rt.io(clear_request, home)
        self.state = state
        self.pending = set(recipients)
        self._choose_server_key()
        self._choose_link_keys()
        yield rt.audit("key-update-sent", message_id=message_id, kinds=list(request.kinds),
                       recipients=recipients)
        log.info("announcing new {kinds} key(s) to {n} peer(s)", kinds="+".join(request.kinds),
                 n=len(recipients))
        if self._identity_unswitched():
            yield self._switch_identity()  # the continuation is sealed: switch at once

    def _announcement(self) -> dict[str, Any]:
        """The announcement in progress: asked for only while there is one."""
        if self.state is None:
            raise RuntimeError("no key announcement is in progress")
        return self.state

    def _identity_unswitched(self) -> bool:
        state = self.state
        return (state is not None and "identity" in state["kinds"]
                and self.rt.node_id == state["old_node_id"])

    @inlineCallbacks
    def _switch_identity(self) -> Generator[Deferred[Any], Any, None]:
        switched = yield self.identity.switch(self._announcement().get("rotation"),
                                              on_switched=self._update_known_as)
        if switched:
            self._update_known_as()
            self._kick_links()

    def _update_known_as(self) -> None:
        """Peers that have not receipted our continuation know us by the former node ID."""
        state = self.state
        if (state is not None and "identity" in state["kinds"]
                and self.rt.node_id != state["old_node_id"]):
            self.rt.known_as = {peer: state["old_node_id"] for peer in self.pending}
        else:
            self.rt.known_as = {}

    def _kick_links(self) -> None:
        for link in self.node.links.values():
            link.kick()

    @inlineCallbacks
    def _load_previous_tls(self,
                           passphrase: bytes | None = None) -> Generator[Deferred[Any], Any, None]:
        """Keep the old TLS key (keystore.previous.json) for peers that do not know the new."""
        path = previous_keystore(self.rt.config)
        exists = yield self.rt.io(path.exists)
        if not exists:
            self._old_keys = self._old_tls = self._new_tls = None
            return
        passphrase = passphrase or self._passphrase()
        if passphrase is None:
            log.warn("cannot open {path} without an unattended passphrase; peers that have "
                     "not learnt the new TLS key will refuse this node", path=str(path))
            return
        old = yield self.rt.io(load_keystore, path, passphrase)
        if old.tls_spki_sha256 == self.rt.keys.tls_spki_sha256:
            self._old_keys = self._old_tls = self._new_tls = None
            return
        self._old_keys = old
        self._old_tls = self._factory(old.tls_key, old.tls_cert_der)
        self._new_tls = self._factory(self.rt.keys.tls_key, self.rt.keys.tls_cert_der)

    def _factory(self, tls_key: Ed25519PrivateKey, cert: bytes) -> PinnedContextFactory:
        return PinnedContextFactory(tls_key=tls_key, certificate_der_bytes=cert,
                                    lookup=lambda pin: self.rt.directory.node_for_tls_pin(pin),
                                    on_refused=self.node.tls_refused,
                                    max_protocol=self.rt.config.delivery.max_protocol)

    def _choose_server_key(self) -> None:
        """One certificate for every incoming connection: the old key while it is needed."""
        keys = self.rt.keys
        old_needed = (self._old_tls is not None and self.pending and self.state is not None
                      and self.rt.now() - self.state["started_at"] < SERVER_SWITCH_SECONDS)
        if old_needed and self._old_keys is not None:
            self.node.tls.use_key(tls_key=self._old_keys.tls_key,
                                  certificate_der_bytes=self._old_keys.tls_cert_der)
        else:
            self.node.tls.use_key(tls_key=keys.tls_key, certificate_der_bytes=keys.tls_cert_der)

    def _choose_link_keys(self) -> None:
        """Dial each peer with the TLS key it knows: old until it has receipted, then new."""
        for node_id, link in self.node.links.items():
            if self._old_tls is None or self._new_tls is None:
                link.tls = self.node.tls
            else:
                link.tls = self._old_tls if node_id in self.pending else self._new_tls

    @inlineCallbacks
    def _check_progress(self) -> Generator[Deferred[Any], Any, None]:
        rt = self.rt
        message_id = self._announcement().get("message_id")
        if message_id is not None:
            row = yield rt.db(rt.store.get_dispatch, message_id)
            deliveries = row.deliveries if row is not None else ()
            pending = {d.peer_node_id for d in deliveries if d.state == "queued"}
        else:
            pending = set()
        if pending != self.pending:
            self.pending = pending
            self._choose_link_keys()
            self._update_known_as()
            self._kick_links()  # documents held back until the continuation was receipted
        self._choose_server_key()
        if not pending:
            yield self._finish(deliveries if message_id is not None else ())

    @inlineCallbacks
    def _finish(self, deliveries: Sequence[DeliveryRow]) -> Generator[Deferred[Any], Any, None]:
        rt = self.rt
        state = self._announcement()
        if self._identity_unswitched():
            return
        yield rt.io(previous_keystore(rt.config).unlink, True)
        yield rt.io(clear_state, rt.config.home)
        self.state = None
        self.pending = set()
        self._old_keys = self._old_tls = self._new_tls = None
        self._choose_server_key()
        self._choose_link_keys()
        self._update_known_as()
        yield rt.audit("key-update-complete", message_id=state.get("message_id"),
                       kinds=state["kinds"],
                       delivered=[d.peer_node_id for d in deliveries if d.state == "delivered"],
                       failed=[d.peer_node_id for d in deliveries if d.state == "failed"])
        log.info("every peer has the new {kinds} key(s)", kinds="+".join(state["kinds"]))
