"""Seal a spooled document, and re-create its ciphertext while sending (blocking parts).

Sealing reads the plaintext once and only hashes it: the signed (v2) header needs its size and
SHA-256, so it can only be made at the end, and it no longer names the ciphertext's digest
(docs/protocol.md). The ciphertext is never kept: a 1 GiB envelope encrypted, written and
fsynced before the offer cost the sender seconds (docs/benchmarks.md). secretstream is
deterministic for a given file key, stream header and plaintext, so :class:`EnvelopeSource`
produces the ciphertext while it is sent, from the spooled plaintext, the 24-byte stream
header kept in ``stream-header.bin`` (public: it is the first 24 bytes of the ciphertext) and
the file key, which the sender reopens from its own sealed copy in the header (every envelope
is sealed to its sender too). The header token is kept in the dispatch row of the store
(which is what makes the sealing count: until that row commits, a crash means sealing again
with a new key). Versions before this one also wrote it to ``header.jws``, which nothing
read: one more file and fsync per document. A resume at byte N re-encrypts the first N bytes
and discards them.

Envelope v3 (sealed for peers that speak protocol 2: node/runtime/peer_protocols.py) ends its
stream with the signed trailer, which the plaintext alone cannot re-create either: such a
folder keeps ``stream-ends.bin`` instead, the 24-byte stream header followed by the 104-byte
trailer (public too: the trailer is sealed into the last chunk when sent), in the same one
file and fsync. Its header token names no file name, size or metadata; the spool folder's
own records (``intake.json``) are the sender's, never sent.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import nacl.public

from lienthong.keys.identity import NodeKeys
from lienthong.node.core.errors import NodeError
from lienthong.node.core.failpoints import failpoint
from lienthong.node.core.hashing import BackgroundDigest
from lienthong.node.core.home import fsync_dir, write_synced
from lienthong.node.spool.record import PAYLOAD_FILE
from lienthong.protocol.envelope import (
    EnvelopeHeader,
    SealedEnvelope,
    Sealer,
    decode_header,
    open_header,
)
from lienthong.protocol.errors import EnvelopeError, ProtocolError
from lienthong.protocol.filekey import open_file_key
from lienthong.protocol.layout import HEADER_BYTES
from lienthong.protocol.payload import PayloadEncryptor

#: Plaintext read per step while sealing (hashing only): fewer Python turns per GiB.
READ_SIZE = 4 * 1024 * 1024
#: Where older versions kept the whole ciphertext; still sent from if a spool folder has one.
ENVELOPE = "envelope.bin"
STREAM_HEADER = "stream-header.bin"
#: v3: the stream header and the signed trailer (see the module docstring).
STREAM_ENDS = "stream-ends.bin"


class ChangedWhileSealing(NodeError):
    """The spooled file changed size while it was being read (it should be ours alone)."""

    code = "changed-while-sealing"


#: Kinds of document whose name and metadata may travel only sealed (envelope v3): citizens'
#: petitions (docs/petitions.md §3).
SEALED_ONLY_KINDS = frozenset({"petition"})


def seal_spooled(spool_dir: Path, *, node_keys: NodeKeys,
                 recipients: Mapping[str, tuple[str, nacl.public.PublicKey]], name: str,
                 message_id: str, created: str, meta: Mapping[str, Any] | None = None,
                 sync_folder: bool = True, version: int = 2) -> SealedEnvelope:
    """Hash ``spool_dir/payload``, seal its file key for ``recipients`` and sign; keep the
    stream header (v3: and the trailer), fsynced. ``sync_folder`` False: the caller fsyncs
    ``spool_dir`` before the dispatch is recorded (a batch of takes shares that fsync with the
    take's own). ``version``: the envelope version the recipients read (2 or 3)."""
    if isinstance(meta, Mapping) and meta.get("kind") in SEALED_ONLY_KINDS:
        version = 3  # a peer that reads only v2 is never offered it (node/delivery/links.py)
    current = node_keys.current_encryption
    # Hashed on a second thread while the next block is read (node/core/hashing.py).
    hasher = BackgroundDigest()
    with open(spool_dir / PAYLOAD_FILE, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        sealer = Sealer(identity=node_keys.identity, sender=node_keys.node_id,
                        sender_key=(current.kid, current.private.public_key),
                        recipients=recipients, name=name, size=size, message_id=message_id,
                        created=created, meta=meta, plaintext_digest=hasher, version=version,
                        priority=_priority(meta))
        try:
            sealer.digest(b"")   # hash only: the ciphertext is made while sending
            while block := source.read(READ_SIZE):
                sealer.digest(block)
                failpoint("sender-during-seal")
            try:
                sealed = sealer.finish()
            except Exception as exc:
                raise ChangedWhileSealing(f"{name!r} changed size while it was sealed") from exc
        finally:
            hasher.close()   # ends the hashing thread also when reading failed
    # A reseal after a crash rewrites it (a new sealing has a new key and stream header).
    if sealed.trailer is not None:
        write_synced(spool_dir / STREAM_ENDS, sealer.stream_header + sealed.trailer,
                     exclusive=False)
    else:
        write_synced(spool_dir / STREAM_HEADER, sealer.stream_header, exclusive=False)
    if sync_folder:
        fsync_dir(spool_dir)
    return sealed


def _priority(meta: Mapping[str, Any] | None) -> int:
    """The priority a v3 header names in the clear: the document's own (0 flash .. 3 normal)."""
    value = (meta or {}).get("priority", 3)
    return value if type(value) is int and 0 <= value <= 3 else 3


class EnvelopeSource:
    """The ciphertext of a sealed spooled document, re-created as it is read.

    File-like as far as the sender needs (``seek`` once, then ``read``, ``close``). Reads and
    encrypts the plaintext one chunk at a time and keeps at most one chunk of ciphertext.
    """

    def __init__(self, spool_dir: Path, header: EnvelopeHeader, file_key: bytes) -> None:
        self._spool = Path(spool_dir)
        self._header = header
        self._key = file_key
        self._trailer: bytes | None = None
        if header.trailer_bytes:
            ends = (self._spool / STREAM_ENDS).read_bytes()
            if len(ends) != HEADER_BYTES + header.trailer_bytes:
                raise OSError(f"{STREAM_ENDS} of {header.message_id} is damaged")
            self._stream_header, self._trailer = ends[:HEADER_BYTES], ends[HEADER_BYTES:]
        else:
            self._stream_header = (self._spool / STREAM_HEADER).read_bytes()
            if len(self._stream_header) != HEADER_BYTES:
                raise OSError(f"{STREAM_HEADER} of {header.message_id} is damaged")
        self._plain = open(self._spool / PAYLOAD_FILE, "rb")  # noqa: SIM115 - closed by close()
        self._restart()

    def _restart(self) -> None:
        self._plain.seek(0)
        self._encryptor = PayloadEncryptor(
            self._key, ad=bytes.fromhex(self._header.message_id), size=self._header.size,
            chunk_size=self._header.chunk_size, random_bytes=lambda n: self._stream_header,
            digests=False, trailer=self._header.trailer_bytes)
        self._buffer = memoryview(b"")
        self._position = 0          # ciphertext bytes returned (or skipped) so far
        self._ended = False

    def _refill(self) -> None:
        """The next ciphertext chunk (one chunk of plaintext read and encrypted, no copy)."""
        block = self._plain.read(self._header.chunk_size)
        try:
            if block:
                out = self._encryptor.feed(block)
            elif not self._ended:
                self._ended = True
                out = self._encryptor.finish(self._trailer)[0]
            else:
                out = b""
        except EnvelopeError as exc:  # SizeMismatch: the payload grew or shrank
            raise OSError(f"the spooled plaintext of {self._header.message_id} changed "
                          f"after sealing: {exc}") from exc
        self._buffer = memoryview(out)

    def _take(self, count: int) -> list[memoryview]:
        pieces = []
        while count:
            if not self._buffer:
                self._refill()
                if not self._buffer:
                    break
            piece = self._buffer[:count]
            self._buffer = self._buffer[len(piece):]
            pieces.append(piece)
            count -= len(piece)
        return pieces

    def seek(self, offset: int) -> None:
        """Position at ciphertext byte ``offset`` (re-encrypting everything before it)."""
        if offset < self._position:
            self._restart()
        while self._position < offset:
            skipped = sum(len(p) for p in self._take(min(offset - self._position, 1 << 22)))
            if not skipped:
                return
            self._position += skipped

    def read(self, count: int) -> bytes:
        """Up to ``count`` further ciphertext bytes (b"" at the end); one copy per call."""
        data = b"".join(self._take(count))
        self._position += len(data)
        return data

    def close(self) -> None:
        self._plain.close()


def open_envelope(spool_dir: str | Path, header_token: str, node_keys: NodeKeys
                  ) -> EnvelopeSource | BinaryIO:
    """The ciphertext source of a document this node sealed (OSError if it cannot be read).

    A document sealed by an older version kept its whole ciphertext in ``envelope.bin``
    and no stream header: that file is sent as it is."""
    legacy = Path(spool_dir) / ENVELOPE
    if not (Path(spool_dir) / STREAM_HEADER).exists() and legacy.exists():
        return open(legacy, "rb")  # noqa: SIM115 - closed by the transfer
    try:
        header = decode_header(header_token)   # our own, signed by us when it was sealed
        # v3: its size and chunk size are sealed; we are a reader of our own envelopes.
        header = open_header(header, node_id=header.sender,
                             encryption_keys=node_keys.encryption_private_by_kid())
    except ProtocolError as exc:  # a damaged store: as unreadable as a missing file
        raise OSError(f"the stored envelope header cannot be read: {exc}") from exc
    # Our own copy of the file key is sealed to the identity that signed the header: this
    # node's current one, or a former one if the document was sealed before a rotation.
    entry = header.key_for(header.sender)
    private = node_keys.encryption_private_by_kid().get(entry.kid) if entry else None
    if entry is None or private is None:
        raise OSError(f"envelope {header.message_id} holds no file key this node can open")
    try:
        file_key = open_file_key(entry.sealed, private.public_key.encode(), private.encode())
    except EnvelopeError as exc:
        raise OSError(f"envelope {header.message_id}: {exc}") from exc
    return EnvelopeSource(Path(spool_dir), header, file_key)
