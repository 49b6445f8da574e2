"""The payload of an envelope: the per-document file key and the chunked secretstream codec.

Theory of operation
-------------------
Every document is encrypted under a fresh random 32-byte *file key* with libsodium's
XChaCha20-Poly1305 secretstream. The ciphertext stream is the 24-byte secretstream header
followed by ``n = max(1, ceil(size / chunk_size))`` chunks. Every chunk but the last carries
exactly ``chunk_size`` plaintext bytes and ``TAG_MESSAGE``; the last carries the remainder
(``chunk_size`` bytes when ``size`` is a multiple of it, zero bytes only for an empty document)
and ``TAG_FINAL``. Each chunk's ciphertext is its plaintext plus 17 bytes, and every chunk is
authenticated with the 16 raw message-ID bytes as additional data, so a chunk cannot be moved
into another document. Because the layout depends only on ``size`` and ``chunk_size``, the
ciphertext size is a pure function (:func:`ciphertext_size`) and the decryptor knows where every
chunk boundary is and which chunk must be final: it never has to trust a length from the wire.

secretstream alone accepts a stream cut just before its final chunk (docs/design.md §8), so
the decryptor enforces the end itself: ``TAG_FINAL`` exactly on the last expected chunk, nothing
after it, and :meth:`PayloadDecryptor.finish` refuses a stream that stopped early.

Both directions hash as they go (SHA-256 of the plaintext and, unless told not to because a v2
header does not sign it, of the whole ciphertext stream, header included), so nothing is ever
read twice, and both buffer at most one chunk (each codec's chunk calls write into one buffer
kept for its life, so no chunk is copied out of libsodium: ``feed_into``). The plaintext's
hash object can be injected (``plaintext_digest``, anything with ``update``/``digest``): the
node passes one that hashes on a second thread (node/core/hashing.py), so the hash overlaps
the cipher; this module starts none.

The file key is wrapped for each reader with a sealed box (protocol/filekey.py).

A stream with a *trailer* (envelope v3, ``trailer`` > 0) carries one more chunk after the
plaintext's: exactly ``trailer`` bytes the caller gives to :meth:`PayloadEncryptor.finish` (the
sender's signed trailer, protocol/envelope.py). Then every plaintext chunk carries
``TAG_MESSAGE`` and the trailer chunk ``TAG_FINAL``; the decryptor hands the trailer back in
its summary, never as plaintext, and hashes only the plaintext.

State machine (both codecs)::

    HEADER --first bytes--> CHUNKS --last chunk--> DONE --finish()--> FINISHED
    (any state) --an error is raised--> FAILED

The encryptor starts in CHUNKS (it emits its header with the first output). FAILED is final:
once a codec has raised, every later call raises again, so a caller that catches an error and
carries on can never reach a successful ``finish`` (fail closed).
"""
from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import nacl.bindings as sodium
import nacl.utils
from nacl._sodium import ffi as _ffi  # type: ignore[import-not-found]
from nacl._sodium import lib as _lib

from lienthong.protocol.errors import (
    ChunkTagError,
    DecryptError,
    EarlyFinal,
    EnvelopeError,
    MissingFinal,
    SizeMismatch,
    TrailingData,
    Truncated,
)
from lienthong.protocol.filekey import KEY_BYTES
from lienthong.protocol.gather import Gather
from lienthong.protocol.layout import (
    CHUNK_OVERHEAD,
    DEFAULT_CHUNK_SIZE,
    HEADER_BYTES,
    check_chunk_size,
    check_size,
    chunk_count,
    ciphertext_size,
    last_chunk_len,
)

TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL

_State = sodium.crypto_secretstream_xchacha20poly1305_state
# The chunk calls go to libsodium itself (the cffi library nacl.bindings wraps), reading the
# caller's buffer where it is and writing into one buffer kept for the codec's life: nacl's
# wrappers take only ``bytes`` and return a fresh copy of their output, two copies of every
# byte that a 1 GiB transfer paid at both ends (docs/benchmarks.md, History 59).
_sodium_push = _lib.crypto_secretstream_xchacha20poly1305_push
_sodium_pull = _lib.crypto_secretstream_xchacha20poly1305_pull
#: A chunk's output: a view of the codec's own buffer, valid only until the callee returns.
Sink = Callable[[memoryview], object]


class Digest(Protocol):
    """What the codecs need of a hash: hashlib's ``update`` and ``digest``. An injected one
    must be a fresh SHA-256 (its digest is signed as the document's SHA-256). ``update`` may be
    given a view of the caller's own buffer: a hash that keeps buffers past ``update`` must copy
    any that can change (node/core/hashing.py does): the decryptor's plaintext is a view of its
    own buffer, rewritten for the next chunk."""

    def update(self, data: Any, /) -> None: ...

    def digest(self) -> bytes: ...


# -- the chunk codec ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PayloadSummary:
    """What a finished stream proved: sizes and SHA-256 digests (hex) of both sides.
    ``ciphertext_sha256`` is None when the codec was told not to hash the ciphertext
    (envelope v2 headers do not carry it)."""

    size: int
    sha256: str
    ciphertext_size: int
    ciphertext_sha256: str | None
    #: The trailer chunk's content (a stream with a trailer), else None.
    trailer: bytes | None = None


class _Phase(enum.Enum):
    HEADER = "header"
    CHUNKS = "chunks"
    DONE = "done"
    FINISHED = "finished"
    FAILED = "failed"


# Allowed transitions; anything else is a bug in this module, not a peer's fault.
_TRANSITIONS = {
    _Phase.HEADER: {_Phase.CHUNKS, _Phase.FAILED},
    _Phase.CHUNKS: {_Phase.DONE, _Phase.FAILED},
    _Phase.DONE: {_Phase.FINISHED, _Phase.FAILED},
    _Phase.FINISHED: {_Phase.FAILED},     # misuse after finish() also latches
    _Phase.FAILED: set(),
}

_P = ParamSpec("_P")
_R = TypeVar("_R")
_C = TypeVar("_C", bound="_Codec")


def _fail_closed(method: Callable[Concatenate[_C, _P], _R]) -> Callable[Concatenate[_C, _P], _R]:
    """Latch the codec into FAILED on its first error and refuse every later call."""
    @functools.wraps(method)
    def guarded(self: _C, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self._failure is not None:
            raise type(self._failure)(f"the payload already failed ({self._failure}); "
                                      "it cannot be continued")
        try:
            return method(self, *args, **kwargs)
        except EnvelopeError as exc:
            self._move(_Phase.FAILED)
            self._failure = exc
            raise
    return guarded


class _Codec:
    """Position bookkeeping shared by both directions."""

    def __init__(self, key: bytes, ad: bytes, size: int, chunk_size: int,
                 plaintext_digest: Digest | None, trailer: int = 0) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a file key is 32 bytes")
        if not 0 <= trailer <= chunk_size:
            raise ValueError("a trailer is 0 to chunk_size bytes")
        #: Bytes of the trailer chunk after the plaintext's chunks (0: no trailer chunk).
        self._trailer = trailer
        self._key = bytes(key)
        self._ad = bytes(ad)
        self._size = check_size(size)
        self._chunk_size = check_chunk_size(chunk_size)
        self._chunks = chunk_count(size, chunk_size)          # the plaintext's chunks
        self._total = self._chunks + (1 if trailer else 0)    # and the trailer's
        self._last_len = last_chunk_len(size, chunk_size)
        self._index = 0                    # index of the next chunk
        # A partial chunk (never a whole one): the first _pending_len bytes of a buffer kept for
        # the codec's life, rather than a bytearray freed and re-grown (and re-copied as it
        # grows) for every piece that splits a chunk.
        self._pending = bytearray()
        self._pending_len = 0
        self._plain: Digest = hashlib.sha256() if plaintext_digest is None else plaintext_digest
        self._cipher: Any = hashlib.sha256()   # None: the ciphertext is not hashed
        self._output = bytearray()         # reused by Gather
        # One chunk's output (ciphertext or plaintext), written by libsodium in place; as
        # large as this stream's largest chunk (a small document's is small: it is zeroed).
        largest = max(self._chunk_size if self._chunks > 1 else self._last_len, trailer)
        self._chunk_out = bytearray(largest + CHUNK_OVERHEAD)
        self._chunk_view = memoryview(self._chunk_out)
        self._chunk_ptr = _ffi.from_buffer(self._chunk_out)
        self._ad_len = len(self._ad)
        self._phase = _Phase.HEADER
        self._failure: EnvelopeError | None = None
        self._summary: PayloadSummary | None = None

    def _move(self, phase: _Phase) -> None:
        if phase not in _TRANSITIONS[self._phase]:
            raise RuntimeError(f"payload codec: {self._phase.value} -> {phase.value}")
        self._phase = phase

    def _stash(self, data: memoryview) -> None:
        end = self._pending_len + len(data)
        self._pending[self._pending_len:end] = data
        self._pending_len = end

    def _take_pending(self) -> bytes:
        with memoryview(self._pending) as buffer:
            out = bytes(buffer[:self._pending_len])
        self._pending_len = 0
        return out

    def _plain_len(self, index: int) -> int:
        if index >= self._chunks:
            return self._trailer
        return self._chunk_size if index < self._chunks - 1 else self._last_len

    @property
    def done(self) -> bool:
        """True once the final chunk has gone through."""
        return self._phase in (_Phase.DONE, _Phase.FINISHED)


class _NoDigest:
    """Stands in for a SHA-256 when a stream is re-created whose digests are already known."""

    def update(self, data: object) -> None:
        pass

    def digest(self) -> bytes:
        return b""


class PayloadEncryptor(_Codec):
    """Encrypt exactly ``size`` plaintext bytes, fed in pieces of any size.

    ``ciphertext_digest=False`` skips hashing the ciphertext (envelope v2 does not sign it).
    ``digests=False`` skips both SHA-256s: for re-creating, from the same key, stream header
    and plaintext, a ciphertext stream whose digests were already taken and signed (the
    sender re-encrypts while sending instead of storing it); its summary then has empty
    digests. secretstream is deterministic given key and header, so the bytes are the same.
    ``plaintext_digest``: the plaintext's hash object (default ``hashlib.sha256()``).
    """

    def __init__(self, key: bytes, *, ad: bytes, size: int,
                 chunk_size: int = DEFAULT_CHUNK_SIZE,
                 random_bytes: Callable[[int], bytes] = nacl.utils.random,
                 digests: bool = True, ciphertext_digest: bool = True,
                 plaintext_digest: Digest | None = None, trailer: int = 0) -> None:
        super().__init__(key, ad, size, chunk_size, plaintext_digest, trailer)
        if not digests:
            self._plain = self._cipher = _NoDigest()
        elif not ciphertext_digest:
            self._cipher = None
        header = random_bytes(HEADER_BYTES)
        if len(header) != HEADER_BYTES:
            raise ValueError("random_bytes(24) returned the wrong length")
        # init_pull with a chosen header yields the same push state as init_push would with
        # that header (checked by tests/protocol/test_payload.py), so the header is injectable.
        self._state = _State()
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, self._key)
        self._header = header
        self._fed = 0
        self._digest_hex: str | None = None   # the plaintext's, once taken
        self._move(_Phase.CHUNKS)
        self._header_sent = False

    @property
    def stream_header(self) -> bytes:
        """The 24-byte secretstream header that starts the ciphertext stream."""
        return self._header

    @_fail_closed
    def plaintext_sha256(self) -> str:
        """The plaintext's SHA-256 (hex) once all of it was fed: what a trailer signs before
        :meth:`finish` seals it."""
        if self._fed != self._size:
            raise SizeMismatch(f"only {self._fed} of the declared {self._size} plaintext bytes "
                               "were fed (did the file shrink while it was being sealed?)")
        if self._digest_hex is None:
            self._digest_hex = self._plain.digest().hex()
        return self._digest_hex

    @property
    def started(self) -> bool:
        """True once :meth:`feed` has been called."""
        return self._header_sent

    def _push(self, chunk: bytes | memoryview, out: Sink,
              into: memoryview | None = None) -> int:
        """Seal one chunk into the codec's buffer, or at the start of ``into``; hand the
        ciphertext to ``out``; return its length."""
        final = self._index == self._total - 1
        size = len(chunk) + CHUNK_OVERHEAD
        if into is None:
            if size > len(self._chunk_out):   # the layout forbids it; C must never overrun
                raise RuntimeError(f"a {size}-byte chunk in a {len(self._chunk_out)}-byte buffer")
            target, sealed = self._chunk_ptr, self._chunk_view[:size]
        else:
            sealed = into[:size]
            if len(sealed) != size:
                raise ValueError(f"no room for a {size}-byte chunk ({len(into)} bytes left)")
            target = _ffi.from_buffer(sealed)
        if _sodium_push(self._state.statebuf, target, _ffi.NULL,
                        _ffi.from_buffer(chunk), len(chunk), self._ad, self._ad_len,
                        TAG_FINAL if final else TAG_MESSAGE) != 0:
            raise RuntimeError("secretstream push failed")
        if self._cipher is not None:
            self._cipher.update(sealed)
        out(sealed)
        self._index += 1
        if final:
            self._move(_Phase.DONE)
        return size

    @_fail_closed
    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take the next plaintext piece; return the ciphertext that is now complete."""
        out = Gather(self._output)
        self._feed(data, out.add)
        return out.result()

    @_fail_closed
    def feed_into(self, data: bytes | bytearray | memoryview, sink: Sink,
                  into: memoryview | None = None) -> None:
        """:meth:`feed`, handing each piece of ciphertext to ``sink`` as it is made, as a view
        valid only until ``sink`` returns (the codec's buffer: no copy is made of it).

        ``into``: a writable buffer to make the ciphertext in instead, each piece after the
        previous one from its start (``sink`` then gets views of it, which stay the caller's);
        it must have room for all of this call's: a caller's mistake, ValueError, after which
        the codec refuses every call (the plaintext was already counted)."""
        try:
            self._feed(data, sink, into)
        except ValueError as exc:
            self._move(_Phase.FAILED)
            self._failure = SizeMismatch(f"no room for the ciphertext: {exc}")
            raise

    def _feed(self, data: bytes | bytearray | memoryview, out: Sink,
              into: memoryview | None = None) -> None:
        if self._phase is _Phase.FINISHED:
            raise SizeMismatch("the payload was already finished")
        view = memoryview(data).cast("B")
        n = len(view)
        if n > self._size - self._fed:
            raise SizeMismatch(f"more plaintext than the declared {self._size} bytes "
                               "(did the file grow while it was being sealed?)")
        self._plain.update(view)
        self._fed += n
        at = 0   # bytes made in ``into``
        if not self._header_sent:
            self._header_sent = True
            if self._cipher is not None:
                self._cipher.update(self._header)
            if into is None:
                out(memoryview(self._header))
            else:
                into[:HEADER_BYTES] = self._header   # ValueError if there is no room
                out(into[:HEADER_BYTES])
                at = HEADER_BYTES
        pos = 0
        while self._index < self._chunks:   # the plaintext's chunks (a trailer comes at finish)
            need = self._plain_len(self._index) - self._pending_len
            if need > n - pos:
                self._stash(view[pos:])
                break
            if self._pending_len:
                self._stash(view[pos:pos + need])
                chunk: bytes | memoryview = self._take_pending()
            else:
                chunk = view[pos:pos + need]     # read where it is: no copy
            pos += need
            at += self._push(chunk, out, None if into is None else into[at:])

    @_fail_closed
    def finish(self, trailer: bytes | None = None) -> tuple[bytes, PayloadSummary]:
        """End the stream: return any ciphertext not yet returned and the stream's summary.

        The leftover is empty unless ``feed`` was never called (an empty document), in which
        case it is the stream header and the empty final chunk; with a trailer it also holds
        the trailer chunk made of ``trailer`` (which must then be given, of the declared
        length). Calling it again returns the same summary and no more ciphertext.
        """
        if self._summary is not None:
            return b"", self._summary
        if self._fed != self._size:
            raise SizeMismatch(f"only {self._fed} of the declared {self._size} plaintext bytes "
                               "were fed (did the file shrink while it was being sealed?)")
        if (trailer is None) != (not self._trailer) or (
                trailer is not None and len(trailer) != self._trailer):
            raise ValueError(f"this stream ends with a trailer of {self._trailer} bytes")
        tail = b"" if self._index >= self._chunks else self.feed(b"")
        if trailer is not None:
            out = Gather(bytearray())
            out.add(tail)
            self._push(trailer, out.add)
            tail = out.result()
        self._move(_Phase.FINISHED)
        if self._digest_hex is None:
            self._digest_hex = self._plain.digest().hex()
        self._summary = PayloadSummary(
            size=self._size, sha256=self._digest_hex,
            ciphertext_size=ciphertext_size(self._size, self._chunk_size, self._trailer),
            ciphertext_sha256=None if self._cipher is None else self._cipher.digest().hex(),
            trailer=trailer)
        return tail, self._summary


class PayloadDecryptor(_Codec):
    """Decrypt a ciphertext stream whose plaintext ``size`` and ``chunk_size`` are known.
    ``plaintext_digest``: the plaintext's hash object (default ``hashlib.sha256()``)."""

    def __init__(self, key: bytes, *, ad: bytes, size: int,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, ciphertext_digest: bool = True,
                 plaintext_digest: Digest | None = None, trailer: int = 0) -> None:
        super().__init__(key, ad, size, chunk_size, plaintext_digest, trailer)
        self._state = _State()
        self._received = 0
        self._tag = _ffi.new("unsigned char[1]")
        self._trailer_plain: bytes | None = None
        if not ciphertext_digest:
            self._cipher = None

    def _pull(self, sealed: bytes | memoryview, out: Sink) -> None:
        index, final = self._index, self._index == self._total - 1
        if len(sealed) > len(self._chunk_out):   # the layout forbids it; C must never overrun
            raise RuntimeError(f"a {len(sealed)}-byte chunk for a {len(self._chunk_out)}-byte "
                               "buffer")
        if _sodium_pull(self._state.statebuf, self._chunk_ptr, _ffi.NULL, self._tag,
                        _ffi.from_buffer(sealed), len(sealed), self._ad, self._ad_len) != 0:
            raise DecryptError(f"chunk {index} of {self._total} failed authentication "
                               "(altered, reordered, duplicated or from another stream)")
        tag = self._tag[0]
        chunk = self._chunk_view[:len(sealed) - CHUNK_OVERHEAD]
        if tag != (TAG_FINAL if final else TAG_MESSAGE):
            if tag == TAG_FINAL:
                raise EarlyFinal(f"chunk {index} carries the final tag but the header promises "
                                 f"{self._total} chunks"
                                 + (" (the last one the signed trailer)" if self._trailer
                                    else ""))
            if final and tag == TAG_MESSAGE:
                raise MissingFinal(f"chunk {index}, the last one the header promises, does not "
                                   "carry the final tag")
            raise ChunkTagError(f"chunk {index} carries unexpected secretstream tag {tag}")
        if index >= self._chunks:         # the trailer: kept for the summary, not plaintext
            self._trailer_plain = bytes(chunk)
        else:
            self._plain.update(chunk)
            out(chunk)
        self._index += 1
        if final:
            self._move(_Phase.DONE)

    @_fail_closed
    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take the next ciphertext piece; return the plaintext authenticated so far.

        Plaintext returned here is authentic chunk by chunk, but the document is only proven
        complete by :meth:`finish`; callers must stage it, never publish it, until then.
        """
        out = Gather(self._output)
        self._feed(data, out.add)
        return out.result()

    @_fail_closed
    def feed_chunks(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """:meth:`feed`, but the plaintext as one piece per chunk: a caller that writes them
        out one by one saves joining (copying) them."""
        out: list[bytes] = []
        self._feed(data, lambda chunk: out.append(bytes(chunk)))
        return out

    @_fail_closed
    def feed_into(self, data: bytes | bytearray | memoryview, sink: Sink) -> None:
        """:meth:`feed`, handing each chunk's plaintext to ``sink`` as it is authenticated, as
        a view valid only until ``sink`` returns (the codec's buffer: no copy); same rules."""
        self._feed(data, sink)

    def _feed(self, data: bytes | bytearray | memoryview, out: Sink) -> None:
        view = memoryview(data).cast("B")
        n = len(view)
        if n and self.done:
            raise TrailingData(f"{n} bytes arrived after the final chunk")
        if self._phase is _Phase.FINISHED:
            raise TrailingData("the payload was already finished")
        if self._cipher is not None:
            self._cipher.update(view)
        self._received += n
        pos = 0
        while pos < n and not self.done:
            if self._phase is _Phase.HEADER:
                need = HEADER_BYTES - self._pending_len
            else:
                need = self._plain_len(self._index) + CHUNK_OVERHEAD - self._pending_len
            if need > n - pos:
                self._stash(view[pos:])
                pos = n
                break
            if self._pending_len:
                self._stash(view[pos:pos + need])
                piece: bytes | memoryview = self._take_pending()
            else:
                piece = view[pos:pos + need]     # read where it is: no copy
            pos += need
            if self._phase is _Phase.HEADER:
                sodium.crypto_secretstream_xchacha20poly1305_init_pull(self._state, bytes(piece),
                                                                       self._key)
                self._move(_Phase.CHUNKS)
            else:
                self._pull(piece, out)
        if pos < n:
            raise TrailingData(f"{n - pos} bytes arrived after the final chunk")

    @_fail_closed
    def finish(self) -> PayloadSummary:
        """Require that the stream ended exactly after its final chunk; return its summary."""
        if self._summary is not None:
            return self._summary
        if not self.done:
            raise Truncated(f"the payload stopped after {self._received} bytes, before its "
                            f"final chunk ({self._index} of {self._total} chunks complete"
                            + (", the last one the signed trailer)" if self._trailer else ")"))
        self._move(_Phase.FINISHED)
        self._summary = PayloadSummary(size=self._size, sha256=self._plain.digest().hex(),
                                       ciphertext_size=self._received,
                                       ciphertext_sha256=None if self._cipher is None
                                       else self._cipher.digest().hex(),
                                       trailer=self._trailer_plain)
        return self._summary
