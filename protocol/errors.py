"""Typed protocol errors. Anything that goes wrong with bytes from a peer raises a subclass of
``ProtocolError`` and nothing else (no IndexError, struct.error or KeyError escapes).

Each class has a stable ``code`` used on the wire (ERROR/REJECT frames) and in the audit log,
so that an operator sees the same words on both nodes.
"""


class ProtocolError(Exception):
    """Base class: the peer (or a stored object) broke the protocol."""

    code = "protocol-error"


class FrameError(ProtocolError):
    """A frame could not be decoded: bad version, unknown kind, bad length."""

    code = "bad-frame"


class FrameTooLarge(FrameError):
    """A frame announced a length beyond the maximum; refused before buffering it."""

    code = "frame-too-large"


class UnsupportedVersion(ProtocolError):
    code = "unsupported-version"


class MessageError(ProtocolError):
    """A frame decoded, but its content is not a valid message of its kind."""

    code = "bad-message"


class StateError(ProtocolError):
    """A valid message arrived in a state where it is not allowed."""

    code = "unexpected-message"


class EnvelopeError(ProtocolError):
    """An envelope failed verification (signature, sealed key, chunk, size or digest)."""

    code = "bad-envelope"


class BadSignature(EnvelopeError):
    code = "bad-signature"


class NotForUs(EnvelopeError):
    """The envelope is not addressed to this node (no sealed key for us)."""

    code = "not-addressed-to-us"


class SenderMismatch(EnvelopeError):
    """The envelope is signed by a node other than the one the connection authenticated."""

    code = "sender-mismatch"


class Truncated(EnvelopeError):
    """The payload ended before the final chunk."""

    code = "truncated"


class TrailingData(EnvelopeError):
    """Data arrived after the final chunk."""

    code = "trailing-data"


class DecryptError(EnvelopeError):
    """A payload chunk failed authentication (flipped, reordered, duplicated, wrong key)."""

    code = "decrypt-failed"


class DigestMismatch(EnvelopeError):
    """The decrypted size or SHA-256 does not match what the signed header promised."""

    code = "digest-mismatch"


class BadTrailer(EnvelopeError):
    """The signed trailer at the end of a v3 stream is malformed, does not verify with the
    sender's identity key, or was signed for another envelope header."""

    code = "bad-trailer"


class ReceiptError(ProtocolError):
    """A receipt failed verification or names something other than what was sent."""

    code = "bad-receipt"


# -- envelopes, payload and receipts (protocol/envelope.py, payload.py, receipt.py) ----------

class MalformedHeader(EnvelopeError):
    """The envelope header is not a well-formed lienthong-envelope/1 token (syntax or schema)."""

    code = "bad-envelope-header"


class HeaderWrongType(EnvelopeError):
    """A valid signed token of another kind (a receipt, a peer card) was given as a header."""

    code = "envelope-wrong-type"


class SizeMismatch(EnvelopeError):
    """Sender side: more or fewer plaintext bytes were fed than the size declared up front."""

    code = "size-mismatch"


class ChunkTagError(EnvelopeError):
    """A chunk authenticated but carries a tag its position does not allow."""

    code = "bad-chunk-tag"


class EarlyFinal(ChunkTagError):
    """A chunk before the last one the header promises carries the final tag."""

    code = "early-final-tag"


class MissingFinal(ChunkTagError):
    """The last chunk the header promises does not carry the final tag."""

    code = "missing-final-tag"


class MalformedReceipt(ReceiptError):
    """The receipt is not a well-formed lienthong-receipt/1 token (syntax or schema)."""

    code = "bad-receipt-format"


class ReceiptWrongType(ReceiptError):
    """A valid signed token of another kind (an envelope header) was given as a receipt."""

    code = "receipt-wrong-type"


class ReceiptBadSignature(ReceiptError):
    """The receipt's signature does not verify, or the key is not the recipient's identity."""

    code = "receipt-bad-signature"


class ReceiptMismatch(ReceiptError):
    """The receipt is genuine but names another message, digest, size, sender or recipient."""

    code = "receipt-mismatch"


# --- Connection state machine (protocol/connection.py) ---------------------------------------

class LocalProtocolError(StateError):
    """We, not the peer, tried something the protocol forbids (a bug in the caller).

    Raised by ``send`` and by misuse of the sans-I/O objects; nothing was written and the
    connection state is unchanged.
    """

    code = "local-protocol-error"


class UnknownTransfer(StateError):
    """A frame names a message ID with no open transfer (never offered, or already finished)."""

    code = "unknown-transfer"


class DuplicateOffer(StateError):
    """An OFFER names a message ID that is already in flight on this connection."""

    code = "duplicate-offer"


class TooManyOffers(StateError):
    """An OFFER would exceed the number of transfers allowed in flight at once."""

    code = "too-many-offers"


class OutOfOrder(StateError):
    """A DATA frame does not start where the previous one ended (gap or overlap)."""

    code = "out-of-order"


class DataBeyondSize(StateError):
    """DATA would carry the transfer past the ciphertext size its OFFER announced."""

    code = "data-beyond-size"


class PrematureEnd(StateError):
    """END arrived before all the announced ciphertext bytes."""

    code = "premature-end"


# --- Processing statuses and recalls (protocol/status.py) -------------------------------------

class SignedObjectError(ProtocolError):
    """A processing status or a recall failed verification."""

    code = "bad-signed-object"


class MalformedStatus(SignedObjectError):
    """The status is not a well-formed lienthong-status/1 token (syntax or schema)."""

    code = "bad-status-format"


class StatusWrongType(SignedObjectError):
    """A valid signed token of another kind (a receipt, a recall) was given as a status."""

    code = "status-wrong-type"


class StatusBadSignature(SignedObjectError):
    """The status's signature does not verify, or the key is not the reporting office's."""

    code = "status-bad-signature"


class StatusMismatch(SignedObjectError):
    """The status is genuine but about another message, sender, office or receipt."""

    code = "status-mismatch"


class MalformedRecall(SignedObjectError):
    """The recall is not a well-formed lienthong-recall/1 token (syntax or schema)."""

    code = "bad-recall-format"


class RecallWrongType(SignedObjectError):
    """A valid signed token of another kind (a status, a receipt) was given as a recall."""

    code = "recall-wrong-type"


class RecallBadSignature(SignedObjectError):
    """The recall's signature does not verify, or the key is not the sender's identity."""

    code = "recall-bad-signature"


class RecallMismatch(SignedObjectError):
    """The recall is genuine but from another sender or not addressed to this office."""

    code = "recall-mismatch"


class WitnessError(SignedObjectError):
    """An audit-head witness is malformed, forged, or about another office's chain."""

    code = "bad-audit-witness"


class SummaryError(SignedObjectError):
    """A reconciliation summary is malformed, forged, or about another pair or period."""

    code = "bad-reconciliation-summary"


class RefusalError(SignedObjectError):
    """An offer refusal is malformed, forged, or about another office's document."""

    code = "bad-refusal"
