"""The yearly review's control documents delivered through a node's real receiving path.

``deliver`` seals a signed token as a control document from one office to another (real keys,
the sender's spool) and drives the receiving ``Node``'s offers from OFFER to receipt, so the
handler the node wires for that kind runs as it does for a document off the network (inline
runtime: everything has happened when the call returns). ``warnings`` is what ``lienthong
status`` would show for the receiver.
"""
from __future__ import annotations

from datetime import UTC
from typing import Any

from lienthong.keys.identity import NodeKeys
from lienthong.node.app.node import Node
from lienthong.node.spool.sealing import open_envelope, seal_spooled
from lienthong.node.status.snapshot import build_snapshot
from lienthong.protocol.events import Accept, Offer, Receipt
from lienthong.protocol.fields import new_message_id
from tests.node.runtimehelp import NOW, Office


def deliver(sender: Office, receiver: Node, *, kind: str, token: str,
            keys: NodeKeys | None = None, peer: str | None = None) -> str:
    """Deliver ``token`` as a control document of ``kind`` from ``sender`` (sealed with
    ``keys``, its own by default; the connection authenticated as ``peer``, its node ID by
    default); return the control document's message ID once the receiver receipted it."""
    rt = sender.runtime
    keys = keys or rt.keys
    mid = new_message_id()
    folder = rt.config.spool / mid
    folder.mkdir()
    (folder / "payload").write_bytes(token.encode("ascii"))
    to = receiver.rt.node_id
    sealed = seal_spooled(folder, node_keys=keys,
                          recipients={to: rt.directory.encryption_key_for(to)},
                          name=f"{kind}.jws", message_id=mid, created=NOW, meta={"kind": kind})
    peer = peer or sender.node_id
    answers: list[Any] = []
    receiver.offers.offer(peer, Offer(
        message_id=mid, envelope=sealed.header_token,
        ciphertext_size=sealed.header.ciphertext_size, priority=3)).addBoth(answers.append)
    (accepted,) = answers
    assert isinstance(accepted, tuple) and isinstance(accepted[0], Accept), accepted
    _, header, stream, _ = accepted
    source = open_envelope(folder, sealed.header_token, keys)
    try:
        stream.write(source.read(header.ciphertext_size))
    finally:
        source.close()
    finished: list[Any] = []
    receiver.offers.finish(peer, header, stream).addBoth(finished.append)
    (answer,) = finished
    assert isinstance(answer, Receipt) and answer.message_id == mid, answer
    return mid


def refusals(office: Office) -> dict[str, str]:
    """The receiver's ``security-refused`` entries: control message ID -> code."""
    return {e.message_id: e.detail["code"]
            for e in office.store.audit_entries(kind="security-refused")}


def warnings(office: Office) -> list[dict[str, Any]]:
    """The warnings ``lienthong status`` shows for ``office`` now."""
    rt = office.runtime
    snapshot = build_snapshot(
        rt.store, node={"name": office.name, "display_name": office.name,
                        "node_id": rt.node_id, "listen": "127.0.0.1:0",
                        "home": str(rt.config.home)},
        home=rt.config.home, now=rt.reactor.seconds() + 1,
        daemon={"running": True, "note": ""}, tz=UTC)
    return list(snapshot["warnings"])
