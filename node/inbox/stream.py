"""Receiving one transfer: decrypting its ciphertext into a staging file as it arrives, and
resuming an interrupted one from what is staged (blocking: worker threads).

This is step 1 of storing a received document: ``IncomingStream`` decrypts each DATA frame into
a staging file inside ``tmp/`` (which is also what a resume starts from); at END ``finish``
proves the final tag exactly at the end, size and SHA-256 (the signature was checked at the
offer, every chunk as it came) and fsyncs the staging file. Nothing is visible to a clerk
yet: placing the proven file in the inbox, and the order that makes a receipt a promise, are
node/inbox/layout.py and node/inbox/publication.py.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import nacl.public

from lienthong.node.core.failpoints import failpoint
from lienthong.node.core.writeback import Writeback, start_writeback
from lienthong.protocol.envelope import EnvelopeHeader
from lienthong.protocol.errors import NotForUs
from lienthong.protocol.filekey import open_file_key
from lienthong.protocol.layout import CHUNK_OVERHEAD, HEADER_BYTES, chunk_count
from lienthong.protocol.payload import PayloadEncryptor
from lienthong.protocol.sealing import Opener


class IncomingStream:
    """One transfer's decrypted staging file: the only stream a transfer writes to disk.

    Each DATA frame is decrypted chunk by chunk straight into the staging file (in ``tmp/``,
    holding only authenticated chunks), so at END only the final checks and one fsync are
    left. There is no ciphertext copy: writing one beside the staging file doubled what the
    disk had to take (docs/benchmarks.md). Every method blocks (worker threads), and the caller
    runs one transfer's calls in order.

    Resuming needs no ciphertext either. The staging file is the basis of a resume, together
    with a small *resume record* beside it (``<staging>.resume``: the envelope's header digest
    and the 24-byte secretstream header, written when they arrive). secretstream is
    deterministic for a file key, stream header and plaintext, so :meth:`open` re-encrypts the
    staged whole chunks with the same key and header and feeds that ciphertext through a fresh
    opener: its pull state and its SHA-256 of the plaintext come out exactly as if the chunks
    had just arrived. The resume offset is the ciphertext offset just after the last whole
    staged chunk. If the staged bytes were damaged (a power cut), the sender's next chunk fails
    to authenticate and the final digest would not match either: the transfer is discarded and
    starts again at byte 0; nothing unproven is ever published.
    """

    #: Documents whose ciphertext is at most this long are not worth a resume record (one file
    #: created and removed per document): an interrupted one starts again at byte 0.
    RESUMABLE_ABOVE = 1 << 20

    def __init__(self, staging: Path, header: EnvelopeHeader, opener: Opener,
                 file_key: Callable[[], bytes], offset: int, *,
                 resumable_above: int = RESUMABLE_ABOVE) -> None:
        self.staging = staging
        self.resume_record = staging.with_name(staging.name + RESUME_SUFFIX)
        self.offset = offset
        self._header = header
        self._opener = opener
        self._file_key = file_key
        self._stream_header = b""
        self._record = header.ciphertext_size > resumable_above
        self._plain: BinaryIO | None = None
        self._writeback: Writeback | None = None
        self._finished = False

    @classmethod
    def open(cls, staging: Path, header: EnvelopeHeader, *, node_id: str,
             encryption_keys: Mapping[str, nacl.public.PrivateKey],
             resumable_above: int = RESUMABLE_ABOVE,
             file_key: bytes | None = None) -> IncomingStream:
        """Open for the next DATA, resuming from what is staged when the resume record names
        this very envelope; otherwise (none, another sealing, damaged) start at byte 0.

        ``file_key``: the envelope's file key if the offer's check already opened it (v3,
        ``protocol.envelope.open_header_key``); without it the opener opens it (an X25519
        operation). Held in memory only, by the opener and for a resume's catch-up."""
        stream = cls.prepare(staging, header, node_id=node_id, encryption_keys=encryption_keys,
                             resumable_above=resumable_above, file_key=file_key)
        staging.parent.mkdir(parents=True, exist_ok=True)
        try:
            stream._open_file()
            stream._catch_up(_read_resume_record(stream.resume_record, header))
        except BaseException:
            stream.discard()
            raise
        return stream

    @classmethod
    def prepare(cls, staging: Path, header: EnvelopeHeader, *, node_id: str,
                encryption_keys: Mapping[str, nacl.public.PrivateKey],
                resumable_above: int = RESUMABLE_ABOVE,
                file_key: bytes | None = None) -> IncomingStream:
        """The stream with its opener ready and no file touched yet (:meth:`start_fresh` or
        :meth:`open` does that): with ``file_key`` given, no I/O and no public-key work, so
        the receiver can build it on the reactor and answer the offer before the staging
        file is opened (node/inbox/staging_opens.py). Raises what the opener raises."""
        # The plaintext SHA-256 is taken on the decrypting worker, chunk by chunk (hashlib
        # releases the GIL): no plaintext queued for a hashing thread and no hand-offs to it,
        # 2-5 MiB less at the receiver's peak and no more CPU (docs/benchmarks.md History 51).
        opener = Opener(header, node_id=node_id, encryption_keys=encryption_keys,
                        file_key=file_key)
        header = opener.header   # v3: its contents opened (size and chunk size are sealed)
        # The file key again (the opener keeps its own) only if a resume re-encrypts staged
        # chunks and it was not handed over: opening it is an X25519 operation, wasted on
        # every document that has none.
        def reopen() -> bytes:
            return file_key if file_key is not None else \
                _file_key(header, node_id, encryption_keys)
        return cls(staging, header, opener, reopen, 0, resumable_above=resumable_above)

    def start_fresh(self) -> None:
        """Worker pool: open the staging file of a stream made by :meth:`prepare`, for DATA
        from byte 0 whatever was staged before (truncated, its resume record removed): the
        offset the receiver promised in an ACCEPT sent before this ran. On failure nothing is
        left."""
        self.staging.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open_file()
            self._catch_up(None)
        except BaseException:
            self.discard()
            raise

    def _open_file(self) -> None:
        fd = os.open(self.staging, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._plain = os.fdopen(fd, "r+b")

    def _catch_up(self, stream_header: bytes | None) -> None:
        """Rebuild the opener's state from the staged whole chunks (see the class docstring)
        and truncate whatever follows them; with no usable record, truncate to zero."""
        plain_file = self._plain
        if plain_file is None:
            raise OSError(f"the staging file of {self.staging.name} is closed")
        h = self._header
        chunks = 0
        if stream_header is not None:
            staged = os.fstat(plain_file.fileno()).st_size
            # Never the final chunk: its tag must come from the sender's stream, and END too.
            chunks = min(staged // h.chunk_size, chunk_count(h.size, h.chunk_size) - 1)
        if chunks and stream_header is not None:   # chunks only when the record was usable
            encryptor = PayloadEncryptor(self._file_key(), ad=bytes.fromhex(h.message_id),
                                         size=h.size, chunk_size=h.chunk_size,
                                         random_bytes=lambda n: stream_header, digests=False,
                                         trailer=h.trailer_bytes)
            plain_file.seek(0)
            for _ in range(chunks):
                block = plain_file.read(h.chunk_size)
                if len(block) != h.chunk_size:
                    raise OSError(f"the staging file {self.staging.name} changed while resuming")
                # The digest of the plaintext is re-taken here, by the opener, as it decrypts.
                self._opener.feed_chunks(encryptor.feed(block))
            self._stream_header = stream_header
            self.offset = HEADER_BYTES + chunks * (h.chunk_size + CHUNK_OVERHEAD)
        else:
            self.resume_record.unlink(missing_ok=True)
        kept = chunks * h.chunk_size
        plain_file.truncate(kept)
        plain_file.seek(kept)
        # Written back pages leave the cache: a clerk opens the document later, if at all.
        self._writeback = Writeback(plain_file.fileno(), start=kept, drop_behind=True)

    def _staging_file(self) -> tuple[BinaryIO, Writeback]:
        if self._plain is None or self._writeback is None:
            raise OSError(f"the staging file of {self.staging.name} is closed")
        return self._plain, self._writeback

    def write(self, ciphertext: bytes | memoryview) -> None:
        """Decrypt one frame's ciphertext into the staging file.

        Raises OSError when the disk refuses, ProtocolError when a chunk fails to authenticate
        (the transfer is then worthless: :meth:`discard` it)."""
        plain_file, writeback = self._staging_file()
        if len(self._stream_header) < HEADER_BYTES:
            self._note_stream_header(ciphertext)
        self.offset += len(ciphertext)
        written = 0

        def stage(plain: memoryview) -> None:
            # From the opener's own buffer (no copy is made of it); a chunk (256 KiB) goes
            # straight past the file's buffer.
            nonlocal written
            written += plain_file.write(plain)

        self._opener.feed_into(ciphertext, stage)
        if written:
            writeback.wrote(written)
        failpoint("receiver-mid-transfer")

    def _note_stream_header(self, ciphertext: bytes | memoryview) -> None:
        """Keep the first 24 ciphertext bytes; once whole, write the resume record (not
        fsynced: losing it only means starting again at byte 0)."""
        self._stream_header += ciphertext[:HEADER_BYTES - len(self._stream_header)]
        if len(self._stream_header) == HEADER_BYTES and self._record:
            write_resume_record(self.resume_record, self._header, self._stream_header)

    def finish(self) -> EnvelopeHeader:
        """Prove the document complete (final tag at the end, sizes, digests; v3: the signed
        trailer) and fsync the staging file; return the header with its proven digest. The
        resume record is kept until the document is published."""
        header = self.prove()
        self.sync()
        return header

    def prove(self) -> EnvelopeHeader:
        """The proof of :meth:`finish`, and the staging file's writeback started but not
        waited for: a batch proves all its documents, then :meth:`sync`s each (one journal
        commit for the batch rather than one per file)."""
        try:
            header = self._opener.finish()
            plain_file, _ = self._staging_file()
            plain_file.flush()
            start_writeback(plain_file.fileno())
        except BaseException:
            self._close_file()
            raise
        return header

    def sync(self) -> None:
        """After :meth:`prove`: fsync the staging file and close it."""
        try:
            plain_file, _ = self._staging_file()
            os.fsync(plain_file.fileno())
            self._finished = True
        finally:
            self._close_file()

    def close(self) -> None:
        """Stop without finishing (connection lost, disk full): keep the staged chunks and the
        resume record, so the next offer of this envelope resumes."""
        self._close_file()

    def discard(self) -> None:
        """Drop everything: the ciphertext failed authentication or verification."""
        self._close_file()
        self.staging.unlink(missing_ok=True)
        self.resume_record.unlink(missing_ok=True)

    def _close_file(self) -> None:
        if self._plain is not None:
            try:
                self._plain.close()
            except OSError:
                pass
        self._plain = None


RESUME_SUFFIX = ".resume"
_RESUME_MAGIC = b"lienthong-resume-v1\n"


def write_resume_record(path: Path, header: EnvelopeHeader, stream_header: bytes) -> None:
    """``<magic><header SHA-256, 64 hex digits>\n<24-byte stream header>`` (versioned: a
    record this version cannot read is ignored and the transfer starts at byte 0)."""
    with open(path, "wb") as record:
        record.write(_RESUME_MAGIC + header.header_sha256.encode("ascii") + b"\n" + stream_header)


def _read_resume_record(path: Path, header: EnvelopeHeader) -> bytes | None:
    """The stream header a resume of exactly this envelope needs, or None."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    expected = _RESUME_MAGIC + header.header_sha256.encode("ascii") + b"\n"
    if len(data) != len(expected) + HEADER_BYTES or not data.startswith(expected):
        return None   # another sealing of the same message ID, or a damaged record
    return data[len(expected):]


def _file_key(header: EnvelopeHeader, node_id: str,
              encryption_keys: Mapping[str, nacl.public.PrivateKey]) -> bytes:
    """The envelope's file key, needed to re-create staged chunks' ciphertext on a resume
    (called once an Opener for the same header has succeeded, so the key is there)."""
    entry = header.key_for(node_id)
    private = encryption_keys.get(entry.kid) if entry is not None else None
    if entry is None or private is None:
        raise NotForUs(f"message {header.message_id} holds no key for {node_id}")
    return open_file_key(entry.sealed, private.public_key.encode(), private.encode())
