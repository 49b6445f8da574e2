"""Hostile peers, framing: malformed frames, lengths beyond the maximum, wrong versions, and
DATA that breaks the transfer state machine. Each gets its own ERROR code, a protocol-error
audit and a closed socket, while alpha keeps delivering to beta (tests/faults/arena.py).
"""
from __future__ import annotations

import os

import pytest

from lienthong.keys import jws
from lienthong.protocol.events import Accept, Data, End
from lienthong.protocol.frames import HEADER, MAX_DATA, FrameKind
from tests.faults.arena import Arena, attack_with_frames, connect, tcp_closed_within
from tests.faults.hostile import HostileClient, card_of, raw_frame, seal

MALFORMED = {
    "offer-not-json": (raw_frame(FrameKind.OFFER, b"{not json"), "bad-message"),
    "offer-extra-member": (raw_frame(FrameKind.OFFER, jws.canonical_json(
        {"message_id": "0" * 32, "envelope": "a.b.c", "ciphertext_size": 1, "priority": 3,
         "extra": 1})), "bad-message"),
    "offer-duplicate-key": (raw_frame(FrameKind.OFFER, b'{"priority":3,"priority":0}'),
                            "bad-message"),
    "unknown-kind": (raw_frame(99, b"{}"), "bad-frame"),
    "data-without-ciphertext": (raw_frame(FrameKind.DATA, b"\0" * 24), "bad-message"),
    "utf8-overlong": (raw_frame(FrameKind.PING, b'{"nonce":1,"x":"\xc0\xaf"}'), "bad-message"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_frame(arena: Arena, case: str) -> None:
    """A malformed frame gets its own ERROR code and a protocol-error audit; alpha still
    delivers."""
    payload, code = MALFORMED[case]
    attack_with_frames(arena, payload, code)


TOO_LARGE = {
    "data-one-byte-over": HEADER.pack(1, FrameKind.DATA, 24 + MAX_DATA + 1),
    "length-2-32-minus-1": HEADER.pack(1, FrameKind.OFFER, 2 ** 32 - 1),
    "ping-over-its-ceiling": HEADER.pack(1, FrameKind.PING, 257),
}


@pytest.mark.parametrize("case", sorted(TOO_LARGE))
def test_length_beyond_the_maximum(arena: Arena, case: str) -> None:
    """A header announcing too many bytes is refused at once, before any payload is sent."""
    attack_with_frames(arena, TOO_LARGE[case], "frame-too-large")


def test_large_frame_before_hello(arena: Arena) -> None:
    """Before the HELLOs only small frames are accepted: a 1 MiB OFFER header is refused."""
    attack_with_frames(arena, HEADER.pack(1, FrameKind.OFFER, 1 << 20), "frame-too-large",
                        before_hello=True)


def test_wrong_frame_version(arena: Arena) -> None:
    """A frame with version byte 2 gets unsupported-version."""
    attack_with_frames(arena, raw_frame(FrameKind.PING, b'{"nonce":1}', version=2),
                        "unsupported-version")


def test_wrong_protocol_in_hello(arena: Arena) -> None:
    """A HELLO claiming protocol 2 gets unsupported-version."""
    before = len(arena.audit("protocol-error", code="unsupported-version"))
    name, data = arena.honest()
    client = HostileClient(arena.beta, arena.mallory)
    try:
        client.hello(protocol=2)
        assert client.error().code == "unsupported-version"
        arena.wait_audit("protocol-error", "unsupported-version", before)
        tcp_closed_within(client, 6)
    finally:
        client.close()
    arena.delivered(name, data)




def _accepted(client: HostileClient, arena: Arena, size: int = 600_000):  # type: ignore[no-untyped-def]
    sealed = seal(arena.mallory, card_of(arena.beta), os.urandom(size), name="bait.bin")
    answer = client.offer(sealed)
    assert isinstance(answer, Accept) and answer.offset == 0, answer
    return sealed


ORDER_CASES = ["gap", "overlap", "beyond-size", "end-too-early", "never-offered"]


@pytest.mark.parametrize("case", ORDER_CASES)
def test_chunks_out_of_order(arena: Arena, case: str) -> None:
    """DATA that skips, repeats, overruns, ends early or names no transfer: its own ERROR code."""
    code = {"gap": "out-of-order", "overlap": "out-of-order", "beyond-size": "data-beyond-size",
            "end-too-early": "premature-end", "never-offered": "unknown-transfer"}[case]
    before = len(arena.audit("protocol-error", code=code))
    name, data = arena.honest()
    client = connect(arena)
    try:
        sealed = _accepted(client, arena)
        mid, ct = sealed.message_id, sealed.ciphertext
        client.send(Data(message_id=mid, offset=0, data=ct[:1000]))
        if case == "gap":
            client.send(Data(message_id=mid, offset=2000, data=ct[2000:3000]))
        elif case == "overlap":
            client.send(Data(message_id=mid, offset=500, data=ct[500:1500]))
        elif case == "beyond-size":
            client.send(Data(message_id=mid, offset=1000, data=ct[1000:] + b"x" * 10))
        elif case == "end-too-early":
            client.send(End(message_id=mid))
        else:
            client.send(Data(message_id="f" * 32, offset=0, data=b"x"))
        assert client.error().code == code
        arena.wait_audit("protocol-error", code, before)
        tcp_closed_within(client, 6)
    finally:
        client.close()
    arena.delivered(name, data)
    assert not list((arena.beta.inbox).glob("mallory/bait*")), "a broken transfer was published"
