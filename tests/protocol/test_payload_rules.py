"""The secretstream codec's refusals word for word, the trailer chunk, and the injected digest.

A refused payload's message is what the receiving office's audit log records as the reason
(docs/protocol.md Part A), so the texts are pinned; the trailer (envelope v3) and the digest
object the node injects (node/core/hashing.py) are pinned by what they change.
"""
from __future__ import annotations

import hashlib
from typing import Any

import nacl.bindings as sodium
import pytest

from lienthong.protocol.errors import (
    ChunkTagError,
    DecryptError,
    EarlyFinal,
    MissingFinal,
    SizeMismatch,
    TrailingData,
    Truncated,
)
from lienthong.protocol.layout import CHUNK_OVERHEAD, HEADER_BYTES, ciphertext_size
from lienthong.protocol.payload import (
    TAG_FINAL,
    TAG_MESSAGE,
    PayloadDecryptor,
    PayloadEncryptor,
    PayloadSummary,
    _Phase,
)

CS = 4096
KEY = bytes(range(32))
AD = bytes(range(16))
STREAM_HEADER = bytes(range(100, 100 + HEADER_BYTES))


def fixed_header(n: int) -> bytes:
    assert n == HEADER_BYTES
    return STREAM_HEADER


def encrypt(plaintext: bytes, trailer: bytes | None = None, **kw: Any) -> bytes:
    enc = PayloadEncryptor(KEY, ad=AD, size=len(plaintext), chunk_size=CS,
                           random_bytes=fixed_header, trailer=len(trailer or b""), **kw)
    head = enc.feed(plaintext)
    tail, _ = enc.finish(trailer)
    return head + tail


def stream(chunks: list[bytes], tags: list[int]) -> bytes:
    """A stream of the given plaintext chunks and tags, sealed as the encryptor would."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, KEY)
    return header + b"".join(sodium.crypto_secretstream_xchacha20poly1305_push(state, c, AD, t)
                             for c, t in zip(chunks, tags, strict=True))


def decryptor(size: int, **kw: Any) -> PayloadDecryptor:
    return PayloadDecryptor(KEY, ad=AD, size=size, chunk_size=CS, **kw)


def raised(error: type[Exception], call: Any, *args: Any) -> str:
    with pytest.raises(error) as caught:
        call(*args)
    assert type(caught.value) is error
    return str(caught.value)


class CountingDigest:
    """A SHA-256 that records what it was given and how often it was asked for its digest."""

    def __init__(self) -> None:
        self.inner = hashlib.sha256()
        self.fed = bytearray()
        self.digests = 0

    def update(self, data: Any) -> None:
        self.fed += bytes(data)
        self.inner.update(data)

    def digest(self) -> bytes:
        self.digests += 1
        return self.inner.digest()


# -- construction ------------------------------------------------------------------------------

def test_construction_rules() -> None:
    for codec in (PayloadEncryptor, PayloadDecryptor):
        with pytest.raises(ValueError) as caught:
            codec(KEY[:31], ad=AD, size=1, chunk_size=CS)
        assert str(caught.value) == "a file key is 32 bytes"
        for trailer in (-1, CS + 1):
            with pytest.raises(ValueError) as caught:
                codec(KEY, ad=AD, size=1, chunk_size=CS, trailer=trailer)
            assert str(caught.value) == "a trailer is 0 to chunk_size bytes"
        codec(KEY, ad=AD, size=1, chunk_size=CS, trailer=CS)   # a whole chunk of trailer
    with pytest.raises(ValueError) as caught:
        PayloadEncryptor(KEY, ad=AD, size=1, chunk_size=CS, random_bytes=lambda n: b"x" * 23)
    assert str(caught.value) == "random_bytes(24) returned the wrong length"


def test_the_stream_header_is_the_random_bytes_and_comes_first() -> None:
    enc = PayloadEncryptor(KEY, ad=AD, size=3, chunk_size=CS, random_bytes=fixed_header)
    assert enc.stream_header == STREAM_HEADER
    assert not enc.started
    assert enc.feed(b"") == STREAM_HEADER
    assert enc.started
    assert len(enc.feed(b"abc")) == 3 + CHUNK_OVERHEAD     # the header is not sent twice


# -- the encryptor -----------------------------------------------------------------------------

def test_plaintext_sha256_before_the_end_and_after() -> None:
    digest = CountingDigest()
    enc = PayloadEncryptor(KEY, ad=AD, size=5, chunk_size=CS, plaintext_digest=digest)
    enc.feed(b"ab")
    assert raised(SizeMismatch, enc.plaintext_sha256) == (
        "only 2 of the declared 5 plaintext bytes were fed (did the file shrink while it was "
        "being sealed?)")


def test_the_plaintext_digest_is_taken_once_and_is_the_injected_one() -> None:
    digest = CountingDigest()
    enc = PayloadEncryptor(KEY, ad=AD, size=5, chunk_size=CS, plaintext_digest=digest)
    enc.feed(b"hello")
    assert enc.plaintext_sha256() == hashlib.sha256(b"hello").hexdigest()
    assert enc.plaintext_sha256() == hashlib.sha256(b"hello").hexdigest()
    _, summary = enc.finish()
    assert (digest.digests, bytes(digest.fed)) == (1, b"hello")
    assert summary.sha256 == hashlib.sha256(b"hello").hexdigest()


def test_an_injected_digest_is_what_both_summaries_report() -> None:
    class Fixed(CountingDigest):
        def digest(self) -> bytes:
            super().digest()
            return b"\x07" * 32

    enc = PayloadEncryptor(KEY, ad=AD, size=4, chunk_size=CS, plaintext_digest=Fixed())
    ciphertext = enc.feed(b"data")
    tail, sent = enc.finish()
    assert sent.sha256 == "07" * 32
    received = Fixed()
    dec = decryptor(4, plaintext_digest=received)
    assert dec.feed(ciphertext + tail) == b"data"
    assert dec.finish().sha256 == "07" * 32
    assert bytes(received.fed) == b"data"


def test_feeding_more_or_after_the_end_is_refused() -> None:
    enc = PayloadEncryptor(KEY, ad=AD, size=3, chunk_size=CS)
    assert raised(SizeMismatch, enc.feed, b"abcd") == (
        "more plaintext than the declared 3 bytes (did the file grow while it was being "
        "sealed?)")
    assert raised(SizeMismatch, enc.feed, b"a") == (
        "the payload already failed (more plaintext than the declared 3 bytes (did the file "
        "grow while it was being sealed?)); it cannot be continued")
    enc = PayloadEncryptor(KEY, ad=AD, size=3, chunk_size=CS)
    enc.feed(b"abc")
    enc.finish()
    assert raised(SizeMismatch, enc.feed, b"") == "the payload was already finished"
    enc = PayloadEncryptor(KEY, ad=AD, size=3, chunk_size=CS)
    enc.feed(b"ab")
    assert raised(SizeMismatch, enc.finish) == (
        "only 2 of the declared 3 plaintext bytes were fed (did the file shrink while it was "
        "being sealed?)")


def test_finish_twice_gives_the_same_summary_and_nothing_more() -> None:
    enc = PayloadEncryptor(KEY, ad=AD, size=CS + 1, chunk_size=CS, random_bytes=fixed_header)
    body = enc.feed(b"x" * (CS + 1))
    tail, summary = enc.finish()
    assert tail == b""
    assert enc.finish() == (b"", summary)
    assert summary == PayloadSummary(
        size=CS + 1, sha256=hashlib.sha256(b"x" * (CS + 1)).hexdigest(),
        ciphertext_size=ciphertext_size(CS + 1, CS),
        ciphertext_sha256=hashlib.sha256(body).hexdigest(), trailer=None)
    assert len(body) == ciphertext_size(CS + 1, CS)


def test_the_digest_switches() -> None:
    plain = b"y" * (2 * CS)
    enc = PayloadEncryptor(KEY, ad=AD, size=len(plain), chunk_size=CS, random_bytes=fixed_header,
                           ciphertext_digest=False)
    enc.feed(plain)
    _, summary = enc.finish()
    assert summary.ciphertext_sha256 is None
    assert summary.sha256 == hashlib.sha256(plain).hexdigest()
    enc = PayloadEncryptor(KEY, ad=AD, size=len(plain), chunk_size=CS, random_bytes=fixed_header,
                           digests=False)
    same = enc.feed(plain)
    _, summary = enc.finish()
    assert (summary.sha256, summary.ciphertext_sha256) == ("", "")
    assert same == encrypt(plain)
    dec = decryptor(len(plain), ciphertext_digest=False)
    dec.feed(same)
    assert dec.finish().ciphertext_sha256 is None


# -- the trailer chunk -------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, CS, CS + 1])
def test_a_trailer_is_one_final_chunk_after_the_plaintext(size: int) -> None:
    plain = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    trailer = b"signed-trailer"
    enc = PayloadEncryptor(KEY, ad=AD, size=size, chunk_size=CS, random_bytes=fixed_header,
                           trailer=len(trailer))
    body = enc.feed(plain)
    tail, summary = enc.finish(trailer)
    whole = body + tail
    assert len(whole) == ciphertext_size(size, CS, len(trailer)) == summary.ciphertext_size
    assert summary.trailer == trailer
    assert summary.ciphertext_sha256 == hashlib.sha256(whole).hexdigest()
    assert summary.sha256 == hashlib.sha256(plain).hexdigest()
    dec = decryptor(size, trailer=len(trailer))
    assert dec.feed(whole) == plain               # the trailer is not plaintext
    got = dec.finish()
    assert (got.trailer, got.sha256, got.ciphertext_size) == \
        (trailer, summary.sha256, len(whole))
    chunks = decryptor(size, trailer=len(trailer)).feed_chunks(whole)
    assert b"".join(chunks) == plain


def test_the_trailer_must_be_given_exactly() -> None:
    enc = PayloadEncryptor(KEY, ad=AD, size=1, chunk_size=CS, trailer=4)
    enc.feed(b"a")
    for wrong in (None, b"abc", b"abcde"):
        with pytest.raises(ValueError) as caught:
            enc.finish(wrong)
        assert str(caught.value) == "this stream ends with a trailer of 4 bytes"
    plain = PayloadEncryptor(KEY, ad=AD, size=1, chunk_size=CS)
    plain.feed(b"a")
    with pytest.raises(ValueError) as caught:
        plain.finish(b"")
    assert str(caught.value) == "this stream ends with a trailer of 0 bytes"
    assert enc.finish(b"abcd")[1].trailer == b"abcd"


def test_the_plaintext_chunks_of_a_trailer_stream_all_carry_the_message_tag() -> None:
    whole = encrypt(b"q" * CS, trailer=b"T")
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, whole[:HEADER_BYTES], KEY)
    first = whole[HEADER_BYTES:HEADER_BYTES + CS + CHUNK_OVERHEAD]
    last = whole[HEADER_BYTES + CS + CHUNK_OVERHEAD:]
    assert sodium.crypto_secretstream_xchacha20poly1305_pull(state, first, AD) == \
        (b"q" * CS, TAG_MESSAGE)
    assert sodium.crypto_secretstream_xchacha20poly1305_pull(state, last, AD) == (b"T", TAG_FINAL)


# -- the decryptor's refusals ------------------------------------------------------------------

def test_an_altered_chunk_is_named_by_its_index() -> None:
    whole = bytearray(encrypt(b"w" * (CS + 1)))
    whole[HEADER_BYTES + CS + CHUNK_OVERHEAD + 2] ^= 1
    dec = decryptor(CS + 1)
    assert raised(DecryptError, dec.feed, bytes(whole)) == (
        "chunk 1 of 2 failed authentication (altered, reordered, duplicated or from another "
        "stream)")


def test_tag_refusals_are_worded() -> None:
    early = stream([b"a" * CS], [TAG_FINAL])
    assert raised(EarlyFinal, decryptor(CS + 1).feed, early) == \
        "chunk 0 carries the final tag but the header promises 2 chunks"
    assert raised(EarlyFinal, decryptor(CS, trailer=2).feed, early) == \
        "chunk 0 carries the final tag but the header promises 2 chunks (the last one the " \
        "signed trailer)"
    missing = stream([b"a"], [TAG_MESSAGE])
    assert raised(MissingFinal, decryptor(1).feed, missing) == \
        "chunk 0, the last one the header promises, does not carry the final tag"
    push = sodium.crypto_secretstream_xchacha20poly1305_TAG_PUSH
    assert raised(ChunkTagError, decryptor(1).feed, stream([b"a"], [push])) == \
        f"chunk 0 carries unexpected secretstream tag {push}"           # where FINAL was due
    assert raised(ChunkTagError, decryptor(CS + 1).feed, stream([b"a" * CS], [push])) == \
        f"chunk 0 carries unexpected secretstream tag {push}"           # where MESSAGE was due


def test_bytes_after_the_end_are_counted() -> None:
    whole = encrypt(b"abc")
    dec = decryptor(3)
    assert raised(TrailingData, dec.feed, whole + b"xyz") == \
        "3 bytes arrived after the final chunk"
    dec = decryptor(3)
    dec.feed(whole)
    assert raised(TrailingData, dec.feed, b"xy") == "2 bytes arrived after the final chunk"
    dec = decryptor(3)
    dec.feed(whole)
    assert dec.feed(b"") == b""                   # nothing more is not more
    dec.finish()
    assert raised(TrailingData, dec.feed, b"") == "the payload was already finished"
    dec = decryptor(3)
    dec.feed(whole)
    dec.finish()
    assert raised(TrailingData, dec.feed_chunks, b"z") == "1 bytes arrived after the final chunk"


def test_a_stream_cut_short_is_described() -> None:
    whole = encrypt(b"v" * (CS + 5))
    dec = decryptor(CS + 5)
    dec.feed(whole[:HEADER_BYTES + CS + CHUNK_OVERHEAD + 3])
    assert raised(Truncated, dec.finish) == (
        f"the payload stopped after {HEADER_BYTES + CS + CHUNK_OVERHEAD + 3} bytes, before its "
        "final chunk (1 of 2 chunks complete)")
    with_trailer = encrypt(b"v", trailer=b"TT")
    dec = decryptor(1, trailer=2)
    dec.feed(with_trailer[:-1])
    assert raised(Truncated, dec.finish) == (
        f"the payload stopped after {len(with_trailer) - 1} bytes, before its final chunk "
        "(1 of 2 chunks complete, the last one the signed trailer)")
    assert raised(Truncated, decryptor(0).finish) == \
        "the payload stopped after 0 bytes, before its final chunk (0 of 1 chunks complete)"


def test_a_failed_decryptor_repeats_its_first_error() -> None:
    dec = decryptor(3)
    dec.feed(encrypt(b"abc"))
    with pytest.raises(TrailingData):
        dec.feed(b"x")
    assert raised(TrailingData, dec.finish) == (
        "the payload already failed (1 bytes arrived after the final chunk); it cannot be "
        "continued")


def test_the_decryptor_summary() -> None:
    whole = encrypt(b"s" * 10)
    digest = CountingDigest()
    dec = decryptor(10, plaintext_digest=digest)
    for i in range(0, len(whole), 7):             # pieces that split header and chunk
        dec.feed(whole[i:i + 7])
    summary = dec.finish()
    assert summary == PayloadSummary(size=10, sha256=hashlib.sha256(b"s" * 10).hexdigest(),
                                     ciphertext_size=len(whole),
                                     ciphertext_sha256=hashlib.sha256(whole).hexdigest(),
                                     trailer=None)
    assert dec.finish() is summary
    assert digest.digests == 1
    assert dec.done


def test_feed_chunks_gives_each_chunk_whole_from_any_pieces() -> None:
    plain = bytes(range(256)) * 40                # 10240 bytes: 4096, 4096, 2048
    whole = encrypt(plain)
    dec = decryptor(len(plain))
    pieces: list[bytes] = []
    for i in range(0, len(whole), 1000):
        pieces += dec.feed_chunks(memoryview(whole)[i:i + 1000])
    assert [len(p) for p in pieces] == [CS, CS, 2048]
    assert b"".join(pieces) == plain
    dec.finish()


def test_the_state_machine_refuses_a_transition_it_does_not_list() -> None:
    dec = decryptor(1)
    with pytest.raises(RuntimeError) as caught:
        dec._move(_Phase.DONE)
    assert str(caught.value) == "payload codec: header -> done"
    enc = PayloadEncryptor(KEY, ad=AD, size=1, chunk_size=CS)
    with pytest.raises(RuntimeError) as caught:
        enc._move(_Phase.HEADER)
    assert str(caught.value) == "payload codec: chunks -> header"
    assert not enc.done


def test_started_is_false_until_the_first_feed() -> None:
    enc = PayloadEncryptor(KEY, ad=AD, size=1, chunk_size=CS)
    assert enc.started is False
    enc.feed(b"")
    assert enc.started is True


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_pieces_of_exactly_one_part_that_are_not_bytes(kind: Any) -> None:
    """A buffer that is exactly the stream header, or exactly one sealed chunk, is copied into
    the bytes the cipher needs (only ``bytes`` are used as they are)."""
    plain = b"p" * (CS + 3)
    whole = encrypt(plain)
    cuts = [0, HEADER_BYTES, HEADER_BYTES + CS + CHUNK_OVERHEAD, len(whole)]
    dec = decryptor(len(plain))
    out = b"".join(dec.feed(kind(whole[a:b])) for a, b in zip(cuts, cuts[1:], strict=False))
    assert out == plain and dec.finish().size == len(plain)
    enc = PayloadEncryptor(KEY, ad=AD, size=len(plain), chunk_size=CS, random_bytes=fixed_header)
    again = enc.feed(kind(plain[:CS])) + enc.feed(kind(plain[CS:]))
    assert again + enc.finish()[0] == whole
