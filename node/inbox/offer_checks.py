"""The checks of an OFFER, before a single byte of payload is accepted, and the refusals they
end in.

The header must be signed by the very peer the TLS handshake authenticated (or by a former
identity of it, within the grace period) and name this node as a recipient; its sealed part
is opened here (v3), its size checked against the OFFER and this node's limit, and this
office's own policy (confidentiality, petitions) applied. Every refusal is audited with its
code (``refuse``).

Split out of node/inbox/offers.py, which decides about offers and stores what arrives.
"""
from __future__ import annotations

from twisted.logger import Logger

from lienthong.keys.errors import KeysError
from lienthong.keys.identity import NodeKeys, parse_time
from lienthong.node.core.clock import rfc3339
from lienthong.node.core.errors import NodeError
from lienthong.node.documents.confidentiality import not_allowed
from lienthong.node.documents.petitions import (
    PETITION_TYPE,
    PetitionError,
    allowed_peers,
    read_petition,
)
from lienthong.node.identity.history import IDENTITY_GRACE_SECONDS
from lienthong.node.inbox.layout import document_kind
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.protocol.envelope import (
    EnvelopeHeader,
    decode_header,
    open_header_key,
    verify_header,
)
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.events import Offer, Reject, clean_text

log = Logger(namespace="lienthong.offers")


def refuse(rt: NodeRuntime, peer: str, message_id: str, code: str, reason: str, *,
           security: bool = False) -> Reject:
    """The REJECT of a document, audited (as a security refusal if ``security``) and logged."""
    rt.audit("security-refused" if security else "rejected", peer=peer,
             message_id=message_id, code=code, reason=reason)
    log.warn("refused {message_id} from {peer}: {code}: {reason}", message_id=message_id,
             peer=rt.peer_name(peer), code=code, reason=reason)
    return Reject(message_id=message_id, code=code, reason=clean_text(reason))


class OfferChecks:
    """Whether an offered document may be accepted: each check raises ``Refusal`` (or the
    ``ProtocolError``/``KeysError`` of a header that does not verify) when it may not."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.rt = runtime

    def verified(self, peer: str, event: Offer,
                 ) -> tuple[EnvelopeHeader, NodeKeys, bytes | None]:
        """The OFFER's header verified, addressed to one of our identities and opened, with the
        keys of that identity and the file key it opened (v3), or None."""
        mid = event.message_id
        header = self._offered_header(peer, mid, event.envelope)
        receiving = self.rt.receiving_keys(header.recipients)
        if receiving is None or header.key_for(receiving.node_id) is None:
            raise Refusal("not-addressed-to-us", self._not_ours(header))
        # v3: the name, size and metadata are sealed to the readers; open them now (one
        # X25519 operation), before deciding anything that depends on them. The file key
        # it opened goes on to the staging stream, which would otherwise open it again
        # (memory only: never logged, never written).
        header, file_key = open_header_key(
            header, node_id=receiving.node_id,
            encryption_keys=self.rt.keys.encryption_private_by_kid())
        if event.ciphertext_size != header.ciphertext_size:
            raise Refusal("bad-envelope", "the OFFER's size differs from the signed header's")
        if header.size > self.rt.config.max_document_bytes:
            raise Refusal("too-large", f"{header.size} bytes is over this node's limit of "
                          f"{self.rt.config.max_document_bytes}")
        return header, receiving, file_key

    def allowed(self, peer: str, header: EnvelopeHeader) -> None:
        """This office's own policy for the opened header: confidentiality, petitions."""
        self._check_confidentiality(peer, header)
        if document_kind(header) == PETITION_TYPE:
            self._check_petition(peer, header)

    def _offered_header(self, peer: str, mid: str, token: str) -> EnvelopeHeader:
        """The OFFER's header, verified as signed by ``peer`` (or by a former identity of it,
        within the grace period); raises the refusal otherwise."""
        try:
            # The usual case first: signed by the authenticated peer's current identity. One
            # parse instead of two (decoding the header to learn its signer, then verifying
            # it, was a tenth of the receiver's CPU per small document); any doubt falls
            # through to the full path below, which gives the precise refusal.
            header = verify_header(token, self.rt.directory.verify_key_for(peer, kid=peer),
                                   expected_sender=peer)
        except (ProtocolError, KeysError):
            pass
        else:
            if header.message_id == mid:
                return header
        header = decode_header(token)
        if header.message_id != mid:
            raise Refusal("bad-envelope", "the OFFER and its envelope name different messages")
        if header.sender != peer:
            self._former_sender(peer, header.sender)
        return verify_header(token, self.rt.directory.verify_key_for(peer, kid=header.sender),
                             expected_sender=header.sender)

    def _check_confidentiality(self, peer: str, header: EnvelopeHeader) -> None:
        """This office's own ``[confidentiality]`` must allow a secret or top-secret document
        from this peer too: the sender's guard is the sender's policy, not ours
        (docs/documents.md §1)."""
        marked = header.meta.get("confidentiality", "normal")
        name = self.rt.peer_name(peer)
        config = self.rt.config
        if not_allowed(str(marked), [name], allowed=config.confidentiality,
                       groups=config.groups):
            raise Refusal("confidentiality-refused", f"{config.node.name} does not accept "
                          f"{marked} documents from {name}: its administrator can allow it in "
                          f"lienthong.toml, [confidentiality] {name} = [\"{marked}\"]")

    def _former_sender(self, peer: str, sender: str) -> None:
        """Accept an envelope signed by a *former* identity of the authenticated peer (queued
        before it rotated its identity) for ``IDENTITY_GRACE_SECONDS`` after we applied its
        continuation; refuse anything else as a sender mismatch."""
        # A former identity is one whose validity has ended (not the current one).
        closed = [key.valid_until for key in self.rt.directory.identities_of(peer)
                  if key.kid == sender and key.valid_until is not None]
        if not closed:
            raise Refusal("sender-mismatch", f"the envelope is signed as {sender} but the "
                          f"connection is from {peer}", security=True)
        ended = rfc3339(parse_time(closed[0]).timestamp() + IDENTITY_GRACE_SECONDS)
        if parse_time(self.rt.now_text()) >= parse_time(ended):
            raise Refusal("sender-mismatch", f"the envelope is signed by {sender}, a former "
                          f"identity of {self.rt.peer_name(peer)} that we stopped accepting "
                          f"at {ended}; it must be sent again", security=True)

    def _check_petition(self, peer: str, header: EnvelopeHeader) -> None:
        """This office's own policy for petitions (docs/petitions.md §3), whatever the
        sender's: only sealed, only from a peer allowed for petitions, only well-formed."""
        config = self.rt.config
        name = self.rt.peer_name(peer)
        if header.version < 3:
            raise Refusal("petition-not-sealed", "a citizens' petition is accepted only in a "
                          "sealed envelope (version 3); it was offered unsealed",
                          petition=True)
        if name not in allowed_peers(config.petitions.peers, config.groups):
            raise Refusal("petition-not-allowed", f"this office ({config.node.name}) does not "
                          f"accept citizens' petitions from {name} ([petitions] peers)",
                          petition=True)
        try:
            read_petition(header.meta)
        except PetitionError as exc:
            raise Refusal(exc.code, f"the petition's metadata is not acceptable: {exc.reason}",
                          petition=True) from None

    def _not_ours(self, header: EnvelopeHeader) -> str:
        for former in self.rt.retired_ids:
            if former in header.recipients:
                return (f"the envelope is addressed to {former}, a former identity of this "
                        "node whose grace period has ended; send it again to this node's "
                        f"current identity {self.rt.node_id}")
        return "this node is not a recipient of the envelope"


class Refusal(NodeError):
    """An offer refused: ``code`` and ``reason`` go into its REJECT."""

    code = "offer-refused"

    def __init__(self, code: str, reason: str, *, security: bool = False,
                 petition: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.security = security
        #: Refused by this office's petition policy: the sender gets a signed refusal too.
        self.petition = petition
