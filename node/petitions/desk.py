"""The running node's part in petitions: signed refusals, sent and received.

Theory of operation
-------------------
R (receiver) refuses an offered petition its own policy does not allow (node/inbox/offer_checks.py
answers the OFFER with REJECT at once); :meth:`PetitionDesk.refuse_offer` then signs a
refusal naming that very envelope (protocol/refusal.py) and sends it back to S as a small
control document of kind ``refusal``. At S, :meth:`PetitionDesk.on_refusal` verifies it (R's
key, S is the sender, the message went to R, the header is the one S sealed) and keeps it in
the register line of the forwarded petition; the document itself is already in S's
``failed/`` with R's reason (node/delivery/outcomes.py). Both sides audit it by message ID
and code only: no name, subject or petitioner.
"""
from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger

from lienthong.keys.errors import KeysError
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.runtime.ports import ControlSender
from lienthong.protocol.envelope import EnvelopeHeader
from lienthong.protocol.errors import ProtocolError, RefusalError
from lienthong.protocol.refusal import issue_refusal, verify_refusal

log = Logger(namespace="lienthong.petitions")

REFUSAL_KIND = "refusal"
MAX_REFUSAL_BYTES = 64 * 1024


class PetitionDesk:
    """Signs this office's refusals of petitions and keeps the ones peers send it."""

    def __init__(self, runtime: NodeRuntime, sender: ControlSender) -> None:
        self.rt = runtime
        self.sender = sender

    @inlineCallbacks
    def refuse_offer(self, peer: str, header: EnvelopeHeader, code: str,
                     reason: str) -> Generator[Deferred[Any], Any, None]:
        """Sign the refusal of ``header`` (offered by ``peer``) and send it back."""
        rt = self.rt
        receiving = rt.receiving_keys(header.recipients) or rt.keys
        token = issue_refusal(receiving.identity, message_id=header.message_id,
                              sender=header.sender, recipient=receiving.node_id, code=code,
                              reason=reason, time=rt.now_text(), header_token=header.token)
        control_id = yield self.sender.send_control(
            [peer], name=f"refusal-{header.message_id[:12]}.jws", data=token.encode("ascii"),
            meta={"kind": REFUSAL_KIND, "message_id": header.message_id})
        yield rt.audit("refusal-sent", peer=peer, message_id=header.message_id, code=code,
                       control_message_id=control_id)

    @inlineCallbacks
    def on_refusal(self, peer: str, header: EnvelopeHeader,
                   stored: Path) -> Generator[Deferred[Any], Any, None]:
        """A peer refused a petition we forwarded: verify its signed refusal and keep it."""
        rt = self.rt
        token = yield rt.io(_read_token, stored)
        try:
            mid = header.meta.get("message_id") if header.meta else None
            if not isinstance(mid, str):
                raise RefusalError("the refusal names no document")
            row = yield rt.db(rt.store.get_dispatch, mid)
            if row is None or not any(d.peer_node_id == peer for d in row.deliveries):
                raise RefusalError("the refusal is about no document this office sent to "
                                   f"{rt.peer_name(peer)}")
            info = verify_refusal(token, rt.directory.verify_key_for(peer), recipient=peer,
                                  sender=rt.node_id, header_token=row.header_token)
        except (ProtocolError, KeysError, ValueError) as exc:
            yield rt.audit("security-refused", peer=peer, message_id=header.message_id,
                           code=getattr(exc, "code", "bad-refusal"), reason=str(exc),
                           control_kind=REFUSAL_KIND)
            log.warn("refused a refusal from {peer}: {error}", peer=rt.peer_name(peer),
                     error=str(exc))
            return
        kept = yield rt.db(rt.store.record_petition_refusal, peer, info.message_id,
                           token=info.token, code=info.code, reason=info.reason)
        yield rt.audit("refusal-received", peer=peer, message_id=info.message_id,
                       code=info.code, kept=kept)
        log.info("{peer} refused {mid} with a signed refusal ({code})",
                 peer=rt.peer_name(peer), mid=info.message_id, code=info.code)


def _read_token(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read(MAX_REFUSAL_BYTES + 1)
    if len(data) > MAX_REFUSAL_BYTES:
        raise ValueError(f"{path.name} is too large to be a signed refusal")
    return data.decode("ascii", errors="replace").strip()
