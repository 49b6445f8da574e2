"""The chunked secretstream codec and the sealed file key (protocol/payload.py)."""
from __future__ import annotations

import hashlib
import os
from itertools import pairwise

import nacl.bindings as sodium
import nacl.public
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from lienthong.protocol.filekey import SEALED_KEY_BYTES, open_file_key, seal_file_key
from lienthong.protocol.layout import (
    CHUNK_OVERHEAD,
    DEFAULT_CHUNK_SIZE,
    HEADER_BYTES,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    chunk_count,
    ciphertext_size,
)
from lienthong.protocol.payload import TAG_FINAL, TAG_MESSAGE, PayloadDecryptor, PayloadEncryptor

CS = 4096
KEY = bytes(range(32))
AD = bytes.fromhex("00112233445566778899aabbccddeeff")
SIZES = [0, 1, CS - 1, CS, CS + 1, 3 * CS + 5]


def _encrypt(plaintext: bytes, chunk_size: int = CS, key: bytes = KEY) -> bytes:
    enc = PayloadEncryptor(key, ad=AD, size=len(plaintext), chunk_size=chunk_size)
    head = enc.feed(plaintext)
    tail, _ = enc.finish()
    return head + tail


def _decrypt(ciphertext: bytes, size: int, chunk_size: int = CS) -> bytes:
    dec = PayloadDecryptor(KEY, ad=AD, size=size, chunk_size=chunk_size)
    out = dec.feed(ciphertext)
    dec.finish()
    return out


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points)] or [b""]


def _chunks(ciphertext: bytes, size: int, chunk_size: int = CS) -> list[bytes]:
    """Cut a stream into [header, chunk0, chunk1, ...] by the layout rule."""
    out, pos = [ciphertext[:HEADER_BYTES]], HEADER_BYTES
    n = chunk_count(size, chunk_size)
    for i in range(n):
        plain = chunk_size if i < n - 1 else size - (n - 1) * chunk_size
        out.append(ciphertext[pos:pos + plain + CHUNK_OVERHEAD])
        pos += plain + CHUNK_OVERHEAD
    return out


def _stream_with_tags(plain_chunks: list[bytes], tags: list[int]) -> bytes:
    """A hand-built stream under KEY/AD with chosen tags (for tag-placement cases)."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, KEY)
    return header + b"".join(sodium.crypto_secretstream_xchacha20poly1305_push(state, c, AD, t)
                             for c, t in zip(plain_chunks, tags, strict=True))


@pytest.mark.parametrize("size", SIZES)
def test_ciphertext_size_formula(size: int) -> None:
    """ciphertext_size is header + plaintext + 17 bytes per chunk, one chunk at least."""
    data = os.urandom(size)
    ciphertext = _encrypt(data)
    assert len(ciphertext) == ciphertext_size(size, CS)
    assert ciphertext_size(size, CS) == 24 + size + 17 * max(1, -(-size // CS))


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_fixed_sizes(size: int) -> None:
    """Every boundary size decrypts back to the same bytes and the same digests."""
    data = os.urandom(size)
    enc = PayloadEncryptor(KEY, ad=AD, size=size, chunk_size=CS)
    ciphertext = enc.feed(data)
    tail, summary = enc.finish()
    ciphertext += tail
    dec = PayloadDecryptor(KEY, ad=AD, size=size, chunk_size=CS)
    assert dec.feed(ciphertext) == data
    assert dec.finish() == summary
    assert summary.sha256 == hashlib.sha256(data).hexdigest()
    assert summary.ciphertext_sha256 == hashlib.sha256(ciphertext).hexdigest()


def test_round_trip_default_chunk_size() -> None:
    """The default chunk size (256 KiB) round-trips a document of 2.5 chunks."""
    data = os.urandom(DEFAULT_CHUNK_SIZE * 5 // 2)
    ciphertext = _encrypt(data, DEFAULT_CHUNK_SIZE)
    assert len(ciphertext) == ciphertext_size(len(data))
    assert _decrypt(ciphertext, len(data), DEFAULT_CHUNK_SIZE) == data


@settings(max_examples=60, deadline=None)
@given(size=st.sampled_from(SIZES), data=st.data())
def test_round_trip_random_pieces(size: int, data: st.DataObject) -> None:
    """Plaintext and ciphertext fed in arbitrary pieces give the same stream and plaintext,
    and output appears as soon as a chunk is complete (at most one chunk is buffered)."""
    plaintext = os.urandom(size)
    whole = _encrypt(plaintext)
    header = whole[:HEADER_BYTES]
    cuts = data.draw(st.lists(st.integers(0, size), max_size=8), label="plain cuts")
    enc = PayloadEncryptor(KEY, ad=AD, size=size, chunk_size=CS,
                           random_bytes=lambda n: header)
    out, fed = b"", 0
    for piece in _split(plaintext, cuts):
        out += enc.feed(memoryview(piece))
        fed += len(piece)
        if fed < size:
            assert len(out) == HEADER_BYTES + (fed // CS) * (CS + CHUNK_OVERHEAD)
    out += enc.finish()[0]
    assert out == whole
    cuts = data.draw(st.lists(st.integers(0, len(whole)), max_size=8), label="cipher cuts")
    dec = PayloadDecryptor(KEY, ad=AD, size=size, chunk_size=CS)
    plain, received = b"", 0
    for piece in _split(whole, cuts):
        plain += dec.feed(piece)
        received += len(piece)
        complete = max(0, received - HEADER_BYTES) // (CS + CHUNK_OVERHEAD)
        assert len(plain) >= min(size, complete * CS)
    dec.finish()
    assert plain == plaintext


def test_init_pull_state_pushes_like_init_push() -> None:
    """A push state made by init_pull with a chosen header equals init_push's (so injectable)."""
    pushed = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(pushed, KEY)
    pulled = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(pulled, header, KEY)
    for tag in (TAG_MESSAGE, TAG_MESSAGE, TAG_FINAL):
        assert (sodium.crypto_secretstream_xchacha20poly1305_push(pushed, b"abc", AD, tag) ==
                sodium.crypto_secretstream_xchacha20poly1305_push(pulled, b"abc", AD, tag))


def test_every_chunk_has_the_right_tag() -> None:
    """TAG_MESSAGE on every chunk but the last, TAG_FINAL on the last, AD = message-ID bytes."""
    size = 3 * CS + 5
    ciphertext = _encrypt(os.urandom(size))
    parts = _chunks(ciphertext, size)
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, parts[0], KEY)
    tags = [sodium.crypto_secretstream_xchacha20poly1305_pull(state, c, AD)[1] for c in parts[1:]]
    assert tags == [TAG_MESSAGE, TAG_MESSAGE, TAG_MESSAGE, TAG_FINAL]


@pytest.mark.parametrize("index", range(5))
def test_flipped_byte_in_any_part_fails(index: int) -> None:
    """A flipped byte in the stream header or in any chunk raises DecryptError."""
    size = 3 * CS + 5
    parts = _chunks(_encrypt(os.urandom(size)), size)
    damaged = bytearray(parts[index])
    damaged[len(damaged) // 2] ^= 0x01
    parts[index] = bytes(damaged)
    with pytest.raises(DecryptError):
        _decrypt(b"".join(parts), size)


def test_wrong_ad_fails() -> None:
    """A stream moved under another message ID (AD) does not decrypt."""
    ciphertext = _encrypt(b"x" * 100)
    dec = PayloadDecryptor(KEY, ad=bytes(16), size=100, chunk_size=CS)
    with pytest.raises(DecryptError):
        dec.feed(ciphertext)


def test_dropped_last_chunk_is_truncated() -> None:
    """A stream cut just before its final chunk is refused at finish (Truncated)."""
    size = 3 * CS + 5
    parts = _chunks(_encrypt(os.urandom(size)), size)
    dec = PayloadDecryptor(KEY, ad=AD, size=size, chunk_size=CS)
    dec.feed(b"".join(parts[:-1]))
    with pytest.raises(Truncated):
        dec.finish()


@pytest.mark.parametrize("cut", [0, 10, HEADER_BYTES, HEADER_BYTES + 100])
def test_stream_cut_anywhere_is_truncated(cut: int) -> None:
    """A stream cut at any point before the end is refused at finish."""
    ciphertext = _encrypt(os.urandom(CS + 1))
    dec = PayloadDecryptor(KEY, ad=AD, size=CS + 1, chunk_size=CS)
    dec.feed(ciphertext[:cut])
    with pytest.raises(Truncated):
        dec.finish()


def test_reordered_chunks_fail() -> None:
    """Swapping two chunks raises DecryptError."""
    size = 3 * CS + 5
    parts = _chunks(_encrypt(os.urandom(size)), size)
    parts[1], parts[2] = parts[2], parts[1]
    with pytest.raises(DecryptError):
        _decrypt(b"".join(parts), size)


def test_duplicated_chunk_fails() -> None:
    """Repeating a chunk in place of the next raises DecryptError."""
    size = 3 * CS + 5
    parts = _chunks(_encrypt(os.urandom(size)), size)
    parts[2] = parts[1]
    with pytest.raises(DecryptError):
        _decrypt(b"".join(parts), size)


@pytest.mark.parametrize("separate", [False, True])
def test_bytes_after_final_are_trailing(separate: bool) -> None:
    """Bytes after the final chunk raise TrailingData, in the same piece or a later one."""
    ciphertext = _encrypt(b"hello")
    dec = PayloadDecryptor(KEY, ad=AD, size=5, chunk_size=CS)
    with pytest.raises(TrailingData):
        if separate:
            assert dec.feed(ciphertext) == b"hello"
            dec.feed(b"\x00")
        else:
            dec.feed(ciphertext + b"\x00")


def test_a_failed_decryptor_stays_failed() -> None:
    """After any error every later call raises, so catching it can never lead to a clean finish."""
    dec = PayloadDecryptor(KEY, ad=AD, size=5, chunk_size=CS)
    with pytest.raises(TrailingData):
        dec.feed(_encrypt(b"hello") + b"\x00")
    with pytest.raises(TrailingData):
        dec.finish()
    with pytest.raises(TrailingData):
        dec.feed(b"")


def test_a_failed_encryptor_stays_failed() -> None:
    """An encryptor that refused extra plaintext refuses to finish (nothing gets signed)."""
    enc = PayloadEncryptor(KEY, ad=AD, size=3, chunk_size=CS)
    with pytest.raises(SizeMismatch):
        enc.feed(b"four")
    with pytest.raises(SizeMismatch):
        enc.feed(b"abc")
    with pytest.raises(SizeMismatch):
        enc.finish()


def test_use_after_finish_is_refused() -> None:
    """Feeding a finished codec raises instead of silently extending the stream."""
    enc = PayloadEncryptor(KEY, ad=AD, size=1, chunk_size=CS)
    ciphertext = enc.feed(b"x") + enc.finish()[0]
    with pytest.raises(SizeMismatch):
        enc.feed(b"")
    dec = PayloadDecryptor(KEY, ad=AD, size=1, chunk_size=CS)
    dec.feed(ciphertext)
    dec.finish()
    with pytest.raises(TrailingData):
        dec.feed(b"y")


def test_early_final_tag() -> None:
    """A final tag on a chunk before the last one the size promises raises EarlyFinal."""
    stream = _stream_with_tags([b"a" * CS, b"b" * CS], [TAG_FINAL, TAG_FINAL])
    dec = PayloadDecryptor(KEY, ad=AD, size=2 * CS, chunk_size=CS)
    with pytest.raises(EarlyFinal):
        dec.feed(stream)


def test_missing_final_tag() -> None:
    """The last promised chunk without the final tag raises MissingFinal."""
    stream = _stream_with_tags([b"a" * CS, b"b" * 10], [TAG_MESSAGE, TAG_MESSAGE])
    dec = PayloadDecryptor(KEY, ad=AD, size=CS + 10, chunk_size=CS)
    with pytest.raises(MissingFinal):
        dec.feed(stream)


def test_unexpected_tag() -> None:
    """A PUSH or REKEY tag where MESSAGE belongs raises ChunkTagError."""
    push = sodium.crypto_secretstream_xchacha20poly1305_TAG_PUSH
    stream = _stream_with_tags([b"a" * CS, b"b"], [push, TAG_FINAL])
    dec = PayloadDecryptor(KEY, ad=AD, size=CS + 1, chunk_size=CS)
    with pytest.raises(ChunkTagError):
        dec.feed(stream)


def test_encryptor_refuses_more_than_declared() -> None:
    """Feeding more plaintext than declared raises SizeMismatch at once."""
    enc = PayloadEncryptor(KEY, ad=AD, size=10, chunk_size=CS)
    enc.feed(b"x" * 6)
    with pytest.raises(SizeMismatch):
        enc.feed(b"x" * 5)


def test_encryptor_refuses_less_than_declared() -> None:
    """Finishing before the declared size was fed raises SizeMismatch."""
    enc = PayloadEncryptor(KEY, ad=AD, size=10, chunk_size=CS)
    enc.feed(b"x" * 9)
    with pytest.raises(SizeMismatch):
        enc.finish()


def test_empty_document_never_fed() -> None:
    """An empty document that was never fed comes out whole from finish (header + empty final)."""
    enc = PayloadEncryptor(KEY, ad=AD, size=0, chunk_size=CS)
    tail, summary = enc.finish()
    assert len(tail) == HEADER_BYTES + CHUNK_OVERHEAD == summary.ciphertext_size
    assert _decrypt(tail, 0) == b""


@pytest.mark.parametrize("chunk_size", [MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1, True, 4096.0])
def test_chunk_size_limits(chunk_size: object) -> None:
    """Chunk sizes outside 4 KiB..4 MiB (or not integers) are refused."""
    with pytest.raises(ValueError):
        PayloadEncryptor(KEY, ad=AD, size=1, chunk_size=chunk_size)  # type: ignore[arg-type]


def test_sealed_key_opens_with_standard_sealed_box() -> None:
    """The hand-built sealed key is libsodium's sealed box: nacl.public.SealedBox opens it."""
    reader = nacl.public.PrivateKey.generate()
    sealed = seal_file_key(KEY, reader.public_key.encode())
    assert len(sealed) == SEALED_KEY_BYTES
    assert nacl.public.SealedBox(reader).decrypt(sealed) == KEY
    assert open_file_key(sealed, reader.public_key.encode(), reader.encode()) == KEY


def test_sealed_key_is_deterministic_given_randomness() -> None:
    """The same ephemeral seed gives the same sealed key; a different one, another."""
    reader = nacl.public.PrivateKey.generate().public_key.encode()
    one = seal_file_key(KEY, reader, random_bytes=lambda n: b"\x01" * n)
    assert one == seal_file_key(KEY, reader, random_bytes=lambda n: b"\x01" * n)
    assert one != seal_file_key(KEY, reader, random_bytes=lambda n: b"\x02" * n)


def test_sealed_key_for_someone_else_does_not_open() -> None:
    """A sealed key does not open with another X25519 key, nor when one byte is flipped."""
    reader, other = nacl.public.PrivateKey.generate(), nacl.public.PrivateKey.generate()
    sealed = seal_file_key(KEY, reader.public_key.encode())
    with pytest.raises(DecryptError):
        open_file_key(sealed, other.public_key.encode(), other.encode())
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    with pytest.raises(DecryptError):
        open_file_key(flipped, reader.public_key.encode(), reader.encode())


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=3 * (CS + CHUNK_OVERHEAD)), size=st.sampled_from(SIZES))
def test_arbitrary_bytes_only_raise_envelope_errors(junk: bytes, size: int) -> None:
    """Random bytes as ciphertext only ever raise EnvelopeError subclasses."""
    dec = PayloadDecryptor(KEY, ad=AD, size=size, chunk_size=CS)
    with pytest.raises(EnvelopeError):
        dec.feed(junk)
        dec.finish()


def test_feed_chunks_gives_one_piece_per_chunk_and_latches_like_feed() -> None:
    plaintext = os.urandom(3 * CS + 5)
    ciphertext = _encrypt(plaintext)
    dec = PayloadDecryptor(KEY, ad=AD, size=len(plaintext), chunk_size=CS)
    cut = HEADER_BYTES + 2 * (CS + CHUNK_OVERHEAD) + 7
    first = dec.feed_chunks(ciphertext[:cut])
    assert [len(p) for p in first] == [CS, CS]
    rest = dec.feed_chunks(ciphertext[cut:])
    assert b"".join(first + rest) == plaintext
    dec.finish()

    damaged = bytearray(ciphertext)
    damaged[-1] ^= 1
    dec = PayloadDecryptor(KEY, ad=AD, size=len(plaintext), chunk_size=CS)
    with pytest.raises(DecryptError):
        dec.feed_chunks(bytes(damaged))
    with pytest.raises(DecryptError):
        dec.feed_chunks(b"")   # failed for good


def test_feed_into_hands_views_of_one_buffer_that_the_next_chunk_rewrites() -> None:
    """The decryptor's ``feed_into`` gives each chunk's plaintext as a view of its own buffer
    (no copy): right while the sink runs, rewritten by the next chunk; the encryptor's
    likewise, and ``into`` makes the ciphertext where the caller says, the same bytes."""
    plaintext = os.urandom(3 * CS + 5)
    ciphertext = _encrypt(plaintext)
    dec = PayloadDecryptor(KEY, ad=AD, size=len(plaintext), chunk_size=CS)
    seen: list[bytes] = []
    views: list[memoryview] = []

    def sink(view: memoryview) -> None:
        seen.append(bytes(view))
        views.append(view)

    dec.feed_into(memoryview(ciphertext)[:HEADER_BYTES + CS + CHUNK_OVERHEAD + 3], sink)
    dec.feed_into(memoryview(ciphertext)[HEADER_BYTES + CS + CHUNK_OVERHEAD + 3:], sink)
    dec.finish()
    assert b"".join(seen) == plaintext
    assert bytes(views[0]) != seen[0]   # the buffer was rewritten by the chunks after it

    enc = PayloadEncryptor(KEY, ad=AD, size=len(plaintext), chunk_size=CS,
                           random_bytes=lambda n: ciphertext[:HEADER_BYTES])
    made = bytearray(len(ciphertext) + 100)
    pieces: list[memoryview] = []
    enc.feed_into(plaintext[:2 * CS + 1], pieces.append, into=memoryview(made))
    assert [len(p) for p in pieces] == [HEADER_BYTES, CS + CHUNK_OVERHEAD, CS + CHUNK_OVERHEAD]
    assert all(p.obj is made for p in pieces)
    at = sum(len(p) for p in pieces)
    enc.feed_into(plaintext[2 * CS + 1:], pieces.append, into=memoryview(made)[at:])
    tail, _ = enc.finish()
    assert bytes(made[:len(ciphertext) - len(tail)]) + tail == ciphertext


def test_feed_into_without_room_latches_the_encryptor() -> None:
    enc = PayloadEncryptor(KEY, ad=AD, size=2 * CS, chunk_size=CS)
    with pytest.raises(ValueError):
        enc.feed_into(os.urandom(2 * CS), lambda view: None,
                      into=memoryview(bytearray(HEADER_BYTES + CS)))
    with pytest.raises(EnvelopeError):
        enc.feed_into(b"", lambda view: None)
