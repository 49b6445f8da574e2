"""The rotating node's side of an identity rotation: switch at once, keep answering as the
former identity for a bounded time, then retire it.

Theory of operation
-------------------
``keys rotate --identity`` leaves the new keys in ``keys/keystore.next.json`` and a
continuation signed by the old identity. The daemon (identity/key_update_outgoing.py) seals
that continuation as a ``key-update`` control document to every trusted peer *while still the
old identity*, then calls :meth:`IdentitySwitch.switch` straight away:

1. the current keystore file is copied, still encrypted, to
   ``keys/keystore.former-<ID>.json`` (identity/history.py, ``former_keystore``);
2. the old identity is added to ``state/identity-history.json`` with the time it stopped
   being current and the end of its grace period (``IDENTITY_GRACE_SECONDS``);
3. the new card is written, then ``keystore.next.json`` replaces ``keystore.json``;
4. the running node uses the new keys: documents are signed by the new identity from now on.

Nothing is closed and nothing is failed. Peers learn the continuation at their own pace,
including a peer that was offline; until a peer has receipted it (``rt.known_as``):

* our HELLO gives that peer the node ID it knows (the former one): a HELLO is a label, the
  TLS pin authenticates, and an identity rotation keeps the TLS key, so its pin still
  matches;
* documents signed by the new identity wait in its queue (delivery/links.py, ``_not_yet``); the
  continuation and everything sealed before the switch, signed by the old identity, go first.

In the other direction, peers keep envelopes they addressed to the former node ID before
they learnt of the rotation. During the grace period this node still opens them (the
encryption keys did not change) and signs their receipts with the former identity's key
(``rt.former_keys``), so they verify for the sender exactly as they would have before.
When the grace period ends, :meth:`retire_expired` deletes the former keystore file: such
envelopes are then refused with a reason that says to send them again.

Trade-off (docs/keys.md §3): for a week the old identity key still exists, encrypted under
the keystore passphrase, and still signs receipts for documents addressed to it. That is the
price of a rotation that loses nothing from peers that were offline. It is no answer to a
stolen identity key: that calls for revocation.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger

from lienthong.keys.keystore import load_keystore
from lienthong.node.core.clock import rfc3339
from lienthong.node.core.home import write_private_file
from lienthong.node.identity.history import (
    IDENTITY_GRACE_SECONDS,
    former_keystore,
    read_identity_history,
    record_identity_history,
)
from lienthong.node.identity.provision import write_card
from lienthong.node.identity.rotation import next_keystore
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.runtime.ports import ServerCertificate

log = Logger(namespace="lienthong.identity")


def _copy_private(source: Path, destination: Path) -> None:
    write_private_file(destination, source.read_bytes())


class IdentitySwitch:
    """Switches this node to its new identity and keeps former ones for their grace period."""

    def __init__(self, runtime: NodeRuntime, tls: ServerCertificate, *,
                 passphrase: Callable[[], bytes | None]) -> None:
        self.rt = runtime
        self.tls = tls
        self._passphrase = passphrase
        self._said_no_passphrase = False  # the poll retries each second; say it once

    @inlineCallbacks
    def start(self) -> Generator[Deferred[Any], Any, None]:
        """Open the keystores of former identities still in their grace period."""
        rt = self.rt
        history = yield rt.io(read_identity_history, rt.config.home)
        now = rt.now_text()
        for entry in history:
            path = former_keystore(rt.config, entry.node_id)
            exists = yield rt.io(path.exists)
            if not entry.receives_at(now) or not exists:
                rt.retired_ids.add(entry.node_id)
                continue
            passphrase = self._passphrase()
            if passphrase is None:
                log.warn("cannot open {path} without the passphrase; documents addressed to "
                         "the former identity {node_id} will be refused", path=str(path),
                         node_id=entry.node_id)
                continue
            former = yield rt.io(load_keystore, path, passphrase)
            if former.node_id != entry.node_id:
                log.error("{path} holds {other}, not {node_id}; ignored", path=str(path),
                          other=former.node_id, node_id=entry.node_id)
                continue
            rt.former_keys[former.node_id] = former

    @inlineCallbacks
    def switch(self, token: str | None, on_switched: Callable[[], None] = lambda: None
               ) -> Generator[Deferred[Any], Any, bool]:
        """Become the new identity now; return False if the new keystore cannot be opened.

        The caller has already sealed the continuation with the old identity. Each step can
        be repeated after a crash: the daemon calls this again at start while its keystore
        still holds the old identity (identity/key_update_outgoing.py).
        """
        rt = self.rt
        config = rt.config
        passphrase = self._passphrase()
        if passphrase is None:
            if not self._said_no_passphrase:
                self._said_no_passphrase = True
                log.error("cannot open the new identity's keystore without the passphrase; "
                          "restart the node (lienthong run) to give it")
                yield rt.audit("key-update-blocked", reason="no passphrase to open "
                               "keys/keystore.next.json")
            return False
        new = yield rt.io(load_keystore, next_keystore(config), passphrase)
        old = rt.keys
        now = rt.now_text()
        grace_until = rfc3339(rt.now() + IDENTITY_GRACE_SECONDS)
        yield rt.io(_copy_private, config.keystore.path, former_keystore(config, old.node_id))
        yield rt.io(record_identity_history, config.home, old, token, switched_at=now,
                    grace_until=grace_until)
        yield rt.io(write_card, config, new, now=now)
        yield rt.io(os.replace, next_keystore(config), config.keystore.path)
        rt.former_keys[old.node_id] = old
        rt.keys = new
        # In this same reactor turn: a HELLO written while the audit below is committed must
        # already name the identity each peer knows (``rt.known_as``), as its certificate does.
        on_switched()
        # Same TLS key (the pins peers hold stay valid); the certificate names the new ID.
        self.tls.use_key(tls_key=new.tls_key, certificate_der_bytes=new.tls_cert_der)
        yield rt.audit("identity-rotated", old_node_id=old.node_id, new_node_id=new.node_id,
                       former_identity_until=grace_until)
        log.info("this node is now {node_id}; it answers as {old} until {until}",
                 node_id=new.node_id, old=old.node_id, until=grace_until)
        return True

    @inlineCallbacks
    def retire_expired(self) -> Generator[Deferred[Any], Any, None]:
        """Forget former identities whose grace period is over (delete their keystores)."""
        rt = self.rt
        if not rt.former_keys:
            return
        history = yield rt.io(read_identity_history, rt.config.home)
        now = rt.now_text()
        for entry in history:
            if entry.node_id in rt.former_keys and not entry.receives_at(now):
                yield rt.io(former_keystore(rt.config, entry.node_id).unlink, True)
                del rt.former_keys[entry.node_id]
                rt.retired_ids.add(entry.node_id)
                yield rt.audit("identity-retired", node_id=entry.node_id,
                               grace_until=entry.grace_until)
                log.info("former identity {node_id} retired", node_id=entry.node_id)
