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

A small file is sealed before it is taken (``seal_opened``, node/outbox/file_work.py): its
stream ends (stream header, then any trailer) are kept in its ``intake.json`` instead, written
and fsynced with the record; ``kept_stream_ends`` finds them, a file beside the payload first.

A v3 document larger than ``delivery.streamed_seal_above_mib`` (off by default: level with
reading first on the shared benchmark machine, docs/benchmarks.md) is not read at all before
it is offered: its header needs no digest, so sealing only signs the header and keeps the stream
header in ``stream-header.bin``. The first :class:`EnvelopeSource` to read it to the end hashes
the plaintext (on a thread of its own, reading the file alongside: :class:`FileDigest`) while
it encrypts it, signs the trailer, and keeps ``stream-ends.bin`` (written
under a temporary name, fsynced, renamed, folder fsynced) *before* the trailer chunk is
returned to be sent: no receipt can name a digest the node has not durably recorded. It then
reports the digest (``on_trailer``) so the store's dispatch row gets it. A read cut before the
end (crash, lost connection) kept nothing; the next one, from any offset, re-encrypts and
hashes from byte 0 (as every resume re-creates its prefix), so the digest is derived again
from the spooled plaintext and the trailer, Ed25519 being deterministic, is the same bytes.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import nacl.public
import nacl.signing

from lienthong.keys.identity import NodeKeys
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.node.core.errors import NodeError
from lienthong.node.core.failpoints import failpoint
from lienthong.node.core.hashing import BackgroundDigest
from lienthong.node.core.home import fsync_dir, write_synced
from lienthong.node.spool.record import PAYLOAD_FILE, recorded_stream_ends
from lienthong.protocol.envelope import (
    EnvelopeHeader,
    check_trailer,
    decode_header,
    open_header_key,
    sign_trailer,
)
from lienthong.protocol.errors import EnvelopeError, ProtocolError
from lienthong.protocol.filekey import open_file_key
from lienthong.protocol.layout import CHUNK_OVERHEAD, HEADER_BYTES
from lienthong.protocol.payload import PayloadEncryptor
from lienthong.protocol.sealing import SealedEnvelope, Sealer

#: Plaintext read per step while sealing (hashing only): fewer Python turns per GiB.
READ_SIZE = 4 * 1024 * 1024
#: Ciphertext a resume's seek re-creates per step (the source's buffer is sized for a step).
SKIP = 1024 * 1024
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
                 sync_folder: bool = True, version: int = 2,
                 streamed_above: int | None = None) -> SealedEnvelope:
    """Hash ``spool_dir/payload``, seal its file key for ``recipients`` and sign; keep the
    stream header (v3: and the trailer), fsynced. ``sync_folder`` False: the caller fsyncs
    ``spool_dir`` before the dispatch is recorded (a batch of takes shares that fsync with the
    take's own). ``version``: the envelope version the recipients read (2 or 3).

    v3 and over ``streamed_above`` bytes (None: never; ``delivery.streamed_seal_above_mib``):
    nothing is read; the header is signed and the stream
    header kept, and the returned envelope has no digest and no trailer yet (the module
    docstring)."""
    if isinstance(meta, Mapping) and meta.get("kind") in SEALED_ONLY_KINDS:
        version = 3  # a peer that reads only v2 is never offered it (node/delivery/links.py)
    current = node_keys.current_encryption
    if (version >= 3 and streamed_above is not None
            and (spool_dir / PAYLOAD_FILE).stat().st_size > streamed_above):
        size = (spool_dir / PAYLOAD_FILE).stat().st_size
        sealer = Sealer(identity=node_keys.identity, sender=node_keys.node_id,
                        sender_key=(current.kid, current.private.public_key),
                        recipients=recipients, name=name, size=size, message_id=message_id,
                        created=created, meta=meta, version=version, priority=_priority(meta))
        if sealer.header is None or sealer.header_token is None:   # v3 signs it at once
            raise RuntimeError("the sealer signed no header before the stream was read")
        write_synced(spool_dir / STREAM_HEADER, sealer.stream_header, exclusive=False)
        if sync_folder:
            fsync_dir(spool_dir)
        return SealedEnvelope(header_token=sealer.header_token, header=sealer.header, tail=b"")
    with open(spool_dir / PAYLOAD_FILE, "rb") as source:
        sealed, ends = seal_opened(source, node_keys=node_keys, recipients=recipients,
                                   name=name, message_id=message_id, created=created,
                                   meta=meta, version=version)
    # A reseal after a crash rewrites it (a new sealing has a new key and stream header); a
    # file here wins over the stream ends an earlier sealing left in ``intake.json``.
    write_synced(spool_dir / (STREAM_ENDS if sealed.trailer is not None else STREAM_HEADER),
                 ends, exclusive=False)
    if sync_folder:
        fsync_dir(spool_dir)
    return sealed


def seal_opened(source: BinaryIO, *, node_keys: NodeKeys,
                recipients: Mapping[str, tuple[str, nacl.public.PublicKey]], name: str,
                message_id: str, created: str, meta: Mapping[str, Any] | None = None,
                version: int = 2) -> tuple[SealedEnvelope, bytes]:
    """Hash the open plaintext ``source`` (from where it stands to its end), seal its file key
    for ``recipients`` and sign; the envelope, and its stream ends to keep (the 24-byte stream
    header, then the v3 trailer): nothing is written. The outbox seals a small file this way
    before it is taken, so the stream ends go into ``intake.json`` instead of a file of their
    own (node/outbox/intake.py)."""
    if isinstance(meta, Mapping) and meta.get("kind") in SEALED_ONLY_KINDS:
        version = 3
    current = node_keys.current_encryption
    # Hashed on a second thread while the next block is read (node/core/hashing.py).
    hasher = BackgroundDigest()
    size = os.fstat(source.fileno()).st_size - source.tell()
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
    return sealed, sealer.stream_header + (sealed.trailer or b"")


def _priority(meta: Mapping[str, Any] | None) -> int:
    """The priority a v3 header names in the clear: the document's own (0 flash .. 3 normal)."""
    value = (meta or {}).get("priority", 3)
    return value if type(value) is int and 0 <= value <= 3 else 3


#: A streamed seal's digest reads this much per step, into one buffer reused to the end. 4 MiB:
#: 1 MiB steps held 3 MiB less at the sender's peak but cost 2.6 s of sender CPU per 512 MiB
#: against 1.9 (even reused: the thread takes the GIL back four times as often while the
#: encrypting worker and the reactor want it), docs/benchmarks.md History 46.
DIGEST_READ = 4 * 1024 * 1024


class FileDigest:
    """The SHA-256 of a file, read and hashed from byte 0 on a thread of its own.

    For a streamed seal's trailer: hashing each chunk on the encrypting worker made that
    worker fall behind the socket, and handing each chunk to a hashing thread
    (node/core/hashing.py) cost more in wake-ups than the hash (docs/benchmarks.md, issue 14);
    a second sequential read of the spooled file (from the page cache) needs neither.
    """

    def __init__(self, path: Path) -> None:
        self._stop = threading.Event()
        self._result: tuple[int, str] | OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), name="trailer-digest",
                                        daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            digest, count = hashlib.sha256(), 0
            # One buffer for the whole file (DIGEST_READ).
            buffer = bytearray(DIGEST_READ)
            view = memoryview(buffer)
            with open(path, "rb", buffering=0) as source:
                while not self._stop.is_set() and (got := source.readinto(buffer)):
                    digest.update(view[:got])    # releases the GIL
                    count += got
            self._result = (count, digest.hexdigest())
        except OSError as exc:
            self._result = exc

    def result(self) -> tuple[int, str]:
        """Wait for the end of the file: (bytes hashed, SHA-256 hex); OSError if unreadable."""
        self._thread.join()
        if isinstance(self._result, OSError):
            raise self._result
        if self._result is None or self._stop.is_set():
            raise OSError("the plaintext digest was abandoned")
        return self._result

    def close(self) -> None:
        """Stop hashing (the transfer ended early); the thread ends after its current block,
        without anyone waiting for it (this may run on the reactor)."""
        self._stop.set()


class EnvelopeSource:
    """The ciphertext of a sealed spooled document, re-created as it is read.

    File-like as far as the sender needs (``seek`` once, then ``read``, ``close``). Reads and
    encrypts the plaintext one chunk at a time, each chunk sealed straight into a buffer kept
    for the source's life, where a read's ciphertext lies whole: it is copied out once, and
    what follows it (less than a chunk) moved to the front for the next read.
    """

    def __init__(self, spool_dir: Path, header: EnvelopeHeader, file_key: bytes, *,
                 signer: nacl.signing.SigningKey | None = None,
                 on_trailer: Callable[[int, str], object] | None = None,
                 ends: bytes | None = None) -> None:
        """``ends``: the stream ends as kept in memory from the sealing (else read from the
        spool: ``kept_stream_ends``)."""
        self._spool = Path(spool_dir)
        self._header = header
        self._key = file_key
        self._trailer: bytes | None = None
        #: A streamed seal (module docstring): hash while encrypting, sign the trailer at the
        #: end with ``signer`` (the identity that signed the header), then ``on_trailer``.
        self._signer: nacl.signing.SigningKey | None = None
        self._on_trailer = on_trailer
        self._digest: FileDigest | None = None
        if ends is None:
            ends = kept_stream_ends(self._spool, HEADER_BYTES + header.trailer_bytes)
        if header.trailer_bytes and ends is None:
            if signer is None or node_id_from_public_key(
                    signer.verify_key.encode()) != header.sender:
                raise OSError(f"the trailer of {header.message_id} is not signed yet and "
                              f"this node no longer holds the identity {header.sender} that "
                              "signed its header")
            self._signer = signer
            self._stream_header = (self._spool / STREAM_HEADER).read_bytes()
            if len(self._stream_header) != HEADER_BYTES:
                raise OSError(f"{STREAM_HEADER} of {header.message_id} is damaged")
            # The whole plaintext is hashed from byte 0, whatever offset this source is sent
            # from, on a thread of its own reading the file alongside the encryption.
            self._digest = FileDigest(self._spool / PAYLOAD_FILE)
        elif ends is None or len(ends) != HEADER_BYTES + header.trailer_bytes:
            raise OSError(f"the stream ends of {header.message_id} are missing or damaged")
        else:
            self._stream_header = ends[:HEADER_BYTES]
            self._trailer = ends[HEADER_BYTES:] if header.trailer_bytes else None
        self._plain = open(self._spool / PAYLOAD_FILE, "rb")  # noqa: SIM115 - closed by close()
        # A small document's source needs no more than its size (zeroed at allocation).
        self._block = bytearray(max(1, min(header.chunk_size, header.size)))
        self._block_view = memoryview(self._block)
        self._buffer = bytearray()   # the ciphertext made, grown to a read's needs
        self._buffer_view = memoryview(self._buffer)
        self._restart()

    @property
    def signs_trailer(self) -> bool:
        """True while this source will sign and keep the trailer when it reaches the end
        (blocking work: a worker thread must read it, never the reactor)."""
        return self._signer is not None and self._trailer is None

    def _restart(self) -> None:
        self._plain.seek(0)
        self._encryptor = PayloadEncryptor(
            self._key, ad=bytes.fromhex(self._header.message_id), size=self._header.size,
            chunk_size=self._header.chunk_size, random_bytes=lambda n: self._stream_header,
            digests=False, trailer=self._header.trailer_bytes)
        self._made = 0              # ciphertext bytes made and not yet returned (in _buffer)
        self._position = 0          # ciphertext bytes returned (or skipped) so far
        self._ended = False

    def _made_one(self, piece: memoryview) -> None:
        self._made += len(piece)

    def _refill(self) -> bool:
        """Make the next chunk's ciphertext after what is made (one chunk of plaintext read
        into the same buffer each time, and sealed from it); False at the end."""
        read = self._plain.readinto(self._block)
        try:
            if read:
                self._encryptor.feed_into(self._block_view[:read], self._made_one,
                                          into=self._buffer_view[self._made:])
            elif not self._ended:
                self._ended = True
                if self._trailer is None and self._signer is not None:
                    self._trailer = self._sign_and_keep_trailer()
                tail = self._encryptor.finish(self._trailer)[0]
                self._buffer_view[self._made:self._made + len(tail)] = tail
                self._made += len(tail)
            else:
                return False
        except EnvelopeError as exc:  # SizeMismatch: the payload grew or shrank
            raise OSError(f"the spooled plaintext of {self._header.message_id} changed "
                          f"after sealing: {exc}") from exc
        return True

    def _make(self, count: int) -> int:
        """Make at least ``count`` bytes of ciphertext ready (fewer only at the end); returns
        how many of them there are, up to ``count``."""
        # Room for the count, the chunk that crosses its end, the stream header and the
        # trailer's chunk.
        room = (count + len(self._block) + 2 * CHUNK_OVERHEAD + HEADER_BYTES
                + self._header.trailer_bytes)
        if len(self._buffer) < room:
            grown = bytearray(room)
            grown[:self._made] = self._buffer_view[:self._made]
            self._buffer, self._buffer_view = grown, memoryview(grown)
        while self._made < count and self._refill():
            pass
        return min(count, self._made)

    def _drop(self, count: int) -> None:
        """Forget the first ``count`` bytes made (returned or skipped)."""
        rest = self._made - count
        if rest:
            self._buffer_view[:rest] = self._buffer_view[count:self._made]
        self._made = rest
        self._position += count

    def seek(self, offset: int) -> None:
        """Position at ciphertext byte ``offset`` (re-encrypting everything before it)."""
        if offset < self._position:
            self._restart()
        while self._position < offset:
            skipped = self._make(min(offset - self._position, SKIP))
            if not skipped:
                return
            self._drop(skipped)

    def read(self, count: int) -> bytes:
        """Up to ``count`` further ciphertext bytes (b"" at the end); one copy per call."""
        ready = self._make(count)
        data = self._buffer_view[:ready].tobytes()
        self._drop(ready)
        return data

    def _sign_and_keep_trailer(self) -> bytes:
        """The last plaintext byte is in: sign the trailer and keep it durably, before its
        chunk can be sent; then report the digest."""
        if self._signer is None or self._digest is None:
            raise RuntimeError("a trailer is signed only for a document sealed while streamed")
        size = self._header.size
        hashed, sha256 = self._digest.result()
        if hashed != size:
            raise OSError(f"the spooled plaintext of {self._header.message_id} changed after "
                          f"sealing: {hashed} bytes hashed, {size} sealed")
        trailer = sign_trailer(self._signer, self._header.header_sha256, size, sha256)
        keep_stream_ends(self._spool, self._stream_header + trailer, self._header.message_id)
        failpoint("sender-after-trailer-kept")
        if self._on_trailer is not None:
            self._on_trailer(size, sha256)
        return trailer

    def close(self) -> None:
        self._plain.close()
        if self._digest is not None:
            self._digest.close()


def kept_stream_ends(spool_dir: Path, length: int) -> bytes | None:
    """The stream ends kept for a sealed document (the stream header, then a v3 trailer; or
    the stream header alone, ``length`` 24, for a v2 envelope), or None when none are kept (a
    streamed seal whose trailer is not signed yet).

    A file beside the payload wins (``stream-ends.bin``, else ``stream-header.bin``): it is
    what a sealing after the take wrote, a reseal after a crash included. Without one, the
    ends recorded in ``intake.json`` by a sealing before the take (node/outbox/intake.py).
    The length names which: a v2 header has no trailer."""
    try:
        return (spool_dir / (STREAM_ENDS if length > HEADER_BYTES else STREAM_HEADER)
                ).read_bytes()
    except FileNotFoundError:
        pass
    if length > HEADER_BYTES and (spool_dir / STREAM_HEADER).exists():
        return None  # a streamed seal (or a reseal as one): its trailer is not signed yet
    return recorded_stream_ends(spool_dir)


def keep_stream_ends(spool_dir: Path, ends: bytes, message_id: str) -> None:
    """Keep a streamed seal's stream header and trailer in ``stream-ends.bin``, durably and
    atomically (two transfers of one document may finish at once). One already there must be
    the same bytes: the trailer is deterministic for one plaintext, so a different one means
    the spooled plaintext changed (OSError, nothing replaced)."""
    target = spool_dir / STREAM_ENDS
    try:
        kept = target.read_bytes()
    except FileNotFoundError:
        kept = None
    if kept is not None:
        if kept != ends:
            raise OSError(f"the spooled plaintext of {message_id} changed after its trailer "
                          "was signed")
        return
    temporary = spool_dir / f".{STREAM_ENDS}.{os.getpid()}.{threading.get_ident()}"
    write_synced(temporary, ends, exclusive=False)
    os.replace(temporary, target)
    fsync_dir(spool_dir)


def read_signed_digest(spool_dir: str | Path, header_token: str, verify_key: bytes
                       ) -> tuple[int, str] | None:
    """The size and SHA-256 that a document's kept trailer signs, checked against the header
    it was signed over with ``verify_key`` (our identity then); None while no trailer is kept
    (a streamed seal not yet read to the end). OSError if the kept trailer does not verify."""
    try:
        ends = (Path(spool_dir) / STREAM_ENDS).read_bytes()
    except FileNotFoundError:
        return None
    try:
        header = replace(decode_header(header_token), verified_key=verify_key)
        return check_trailer(header, ends[HEADER_BYTES:])
    except ProtocolError as exc:
        raise OSError(f"the kept trailer cannot be read: {exc}") from exc


def open_envelope(spool_dir: str | Path, header_token: str, node_keys: NodeKeys, *,
                  signers: Mapping[str, nacl.signing.SigningKey] | None = None,
                  on_trailer: Callable[[int, str], object] | None = None,
                  kept: tuple[EnvelopeHeader, bytes, bytes] | None = None
                  ) -> EnvelopeSource | BinaryIO:
    """The ciphertext source of a document this node sealed (OSError if it cannot be read).

    ``signers`` (node ID to identity key: ours, current and former) and ``on_trailer`` serve a
    streamed seal whose trailer is not signed yet (:class:`EnvelopeSource`). ``kept``: the
    opened header, file key and stream ends this process kept from the sealing
    (node/spool/kept_keys.py), so no X25519 operation opens them again from the token and
    no record is read for the ends.

    A document sealed by an older version kept its whole ciphertext in ``envelope.bin``
    and no stream header: that file is sent as it is."""
    legacy = Path(spool_dir) / ENVELOPE
    if kept is None and not (Path(spool_dir) / STREAM_HEADER).exists() and legacy.exists():
        return open(legacy, "rb")  # noqa: SIM115 - closed by the transfer
    ends = None
    if kept is not None:
        header, file_key, ends = kept
    else:
        header, file_key = _open_own_key(header_token, node_keys)
    signer = (signers if signers is not None
              else {node_keys.node_id: node_keys.identity}).get(header.sender)
    return EnvelopeSource(Path(spool_dir), header, file_key, signer=signer,
                          on_trailer=on_trailer, ends=ends)


def _open_own_key(header_token: str, node_keys: NodeKeys) -> tuple[EnvelopeHeader, bytes]:
    """Our own header, opened, and the file key from our own sealed copy (OSError if this
    node cannot open it). A v3 header's contents are opened with that key: one X25519
    operation, not one for the contents and another for the key."""
    try:
        header = decode_header(header_token)   # our own, signed by us when it was sealed
        # v3: its size and chunk size are sealed; we are a reader of our own envelopes.
        header, file_key = open_header_key(
            header, node_id=header.sender, encryption_keys=node_keys.encryption_private_by_kid())
    except ProtocolError as exc:  # a damaged store: as unreadable as a missing file
        raise OSError(f"the stored envelope header cannot be read: {exc}") from exc
    if file_key is not None:
        return header, file_key
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
    return header, file_key
