"""File keys of the documents this process sealed, kept in memory from sealing to offer.

Why: the sender re-creates each envelope's ciphertext while it sends it, from the spooled
plaintext and the file key (node/spool/sealing.py). Opening its own sealed copy of that key
from the header token costs an X25519 operation per offer, two for a v3 header (its sealed
contents, then the key), although the sealing had the key in hand a few milliseconds before
(docs/benchmarks.md, "Small documents after History 47"). The outbox keeps the opened header
and the key here once the dispatch is recorded; an offer's opening takes them from here
instead of from the header token, and the stream ends with them (no ``intake.json``, which a batch's
documents share since History 52, is read and parsed per offer).

Memory only: a file key is a secret, never logged, shown (``repr``) or written. A restart
starts empty and every document is opened from its header token, as before; so is a
document whose key was dropped to stay within ``MAX_KEPT`` (the oldest first), or sealed
while streamed (its key is not handed out: node/spool/sealing.py). A key is looked up by the
message ID *and* the header token it was sealed under, so a reseal (a new key and token)
never meets an old key. All calls run on the reactor thread.
"""
from __future__ import annotations

from collections import OrderedDict

from lienthong.protocol.envelope import EnvelopeHeader
from lienthong.protocol.sealing import SealedEnvelope

#: What is kept of one sealing: the opened header, the file key, the stream ends (the stream
#: header, then any v3 trailer: what ``kept_stream_ends`` would read from the spool).
KeptEnvelope = tuple[EnvelopeHeader, bytes, bytes]

#: Keys kept at most: bounds memory (a header is one to a few KiB) when a backlog of
#: thousands waits for a peer; the oldest are opened from their tokens again.
MAX_KEPT = 4096


class KeptFileKeys:
    """Opened headers and file keys by message ID (the module docstring)."""

    def __init__(self, *, max_kept: int = MAX_KEPT) -> None:
        self._max = max_kept
        self._kept: OrderedDict[str, KeptEnvelope] = OrderedDict()

    def __repr__(self) -> str:
        return f"<KeptFileKeys: {len(self._kept)} kept>"

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, message_id: str, sealed: SealedEnvelope) -> None:
        """Keep ``sealed``'s opened header, file key and stream ends (nothing if it holds
        no key, or no stream header: a streamed seal)."""
        if (not sealed.file_key or not sealed.stream_header
                or sealed.header.token != sealed.header_token):
            return
        self._kept.pop(message_id, None)
        self._kept[message_id] = (sealed.header, sealed.file_key,
                                  sealed.stream_header + (sealed.trailer or b""))
        while len(self._kept) > self._max:
            self._kept.popitem(last=False)

    def get(self, message_id: str, header_token: str) -> KeptEnvelope | None:
        """The header, key and stream ends kept for ``message_id`` if sealed under
        ``header_token``."""
        kept = self._kept.get(message_id)
        if kept is None or kept[0].token != header_token:
            return None
        return kept

    def drop(self, message_id: str) -> None:
        """The document is filed (or parked): no offer will need its key again."""
        self._kept.pop(message_id, None)
