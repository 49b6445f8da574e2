"""Fuzz the wire layer: bytes from a peer may only ever raise ProtocolError.

Run it (from the project root)::

    python -m tests.fuzz.fuzz_frames                 # atheris, until stopped or a crash
    python -m tests.fuzz.fuzz_frames -runs=100000    # atheris, a fixed number of inputs
    python -m tests.fuzz.fuzz_frames -max_len=4096 corpus/   # any libFuzzer flags
    python3 dev.py fuzz                              # the same, through the project venv

Atheris (coverage-guided, libFuzzer) is not a project dependency; install it with
``pip install atheris``. Without it the harness says so and falls back to 20,000 inputs
from ``os.urandom`` (``-runs=N`` changes the count), so it always does something.

Each input drives two targets:

1. a FrameDecoder fed the raw bytes in pieces;
2. a Connection of either role, brought first to any state (awaiting the receiver's HELLO,
   awaiting the sender's, READY with open transfers, CLOSED), then fed either the raw bytes
   or, when the control byte's top bit is set, a *scripted* conversation read from the
   bytes: mostly plausible frames from the peer (offsets that line up, ENDs at the size),
   some frames of any kind, raw or bit-flipped, interleaved with our own ``send`` calls.
   Pure random bytes die at the version byte; the script is what reaches the transfer rules.

A crash is any exception other than a ProtocolError subclass, a ProtocolError that leaves
the connection in a state other than ERROR, or a refused ``send`` that changed the connection.
"""
from __future__ import annotations

import os
import sys

from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.connection import Connection, Role, State
from lienthong.protocol.errors import LocalProtocolError, MessageError, ProtocolError
from lienthong.protocol.events import (
    Accept,
    Data,
    End,
    Error,
    Event,
    Have,
    Hello,
    Offer,
    Ping,
    Pong,
    Receipt,
    Reject,
    encode_event,
)
from lienthong.protocol.frames import FrameDecoder

FALLBACK_RUNS = 20_000
NODE_A = node_id_from_public_key(b"\x01" * 32)
NODE_B = node_id_from_public_key(b"\x02" * 32)
TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJ4IjoxfQ.c2lnbmF0dXJl"
MESSAGE_IDS = ("0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210",
               "33333333333333333333333333333333")
STATES = (State.AWAIT_RECEIVER_HELLO, State.AWAIT_SENDER_HELLO, State.READY, State.CLOSED)


def connection_in(role: Role, state: State) -> Connection:
    """A connection of ``role`` in ``state``; READY has two open transfers, one accepted."""
    sender, receiver = Connection(Role.SENDER), Connection(Role.RECEIVER)
    ours = sender if role is Role.SENDER else receiver
    if state is not State.AWAIT_RECEIVER_HELLO:
        sender.receive_data(receiver.send(Hello(NODE_B, "fuzz")))
    if state in (State.READY, State.CLOSED):
        receiver.receive_data(sender.send(Hello(NODE_A, "fuzz")))
        receiver.receive_data(sender.send(Offer(MESSAGE_IDS[0], TOKEN, 64, 3)) +
                              sender.send(Offer(MESSAGE_IDS[1], TOKEN, 64, 0)))
        sender.receive_data(receiver.send(Accept(MESSAGE_IDS[0], 8)))
    if state is State.CLOSED:
        ours.receive_eof()
    return ours


class _Reader:
    """Takes small numbers and byte strings from the fuzzer's input, zeros when it runs out."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def number(self, size: int = 1) -> int:
        return int.from_bytes(self.take(size).ljust(size, b"\0"), "big")


class _Script:
    """Turns fuzzer bytes into a conversation that mostly follows the rules.

    It remembers the sizes it offered and the offsets it reached, so that DATA usually lines
    up and END usually comes at the size: random frames die at the first state check, and the
    point is to reach the rules behind it.
    """

    def __init__(self, data: bytes) -> None:
        self.reader = _Reader(data)
        self.sizes = {MESSAGE_IDS[0]: 64, MESSAGE_IDS[1]: 64}
        self.cursor = {MESSAGE_IDS[0]: 8}

    def event(self, speaker: Role | None) -> Event:
        """One event ``speaker`` might plausibly say (any kind at all when None)."""
        r = self.reader
        mid = MESSAGE_IDS[r.number() % len(MESSAGE_IDS)]
        size = self.sizes.get(mid, 0)
        small = r.number() % 80
        choice = r.number() % 16
        if speaker is Role.SENDER:
            choice = (1, 5, 5, 5, 5, 6, 9, 10, 0, 8)[choice % 10]
        elif speaker is Role.RECEIVER:
            choice = (2, 2, 3, 4, 7, 7, 9, 10, 0, 8)[choice % 10]
        if choice == 0:
            return Hello((NODE_A, NODE_B)[small % 2], "fuzz", 1 + (small > 75))
        if choice == 1:
            self.sizes[mid], self.cursor[mid] = small, 0
            return Offer(mid, TOKEN, small, r.number() % 4)
        if choice == 2:
            self.cursor[mid] = min(small, size)
            return Accept(mid, self.cursor[mid])
        if choice == 5:
            offset = self.cursor.get(mid, 0) if small < 70 else small
            length = 1 + r.number() % 32
            if small < 60 and size > offset:
                length = min(length, size - offset)
            self.cursor[mid] = offset + length
            return Data(mid, offset, r.take(length).ljust(length, b"\0"))
        simple = {3: lambda: Have(mid, TOKEN), 4: lambda: Reject(mid, "x", ""),
                  6: lambda: End(mid), 7: lambda: Receipt(mid, TOKEN),
                  8: lambda: Error("x", ""), 9: lambda: Ping(small % 4),
                  10: lambda: Pong(small % 4)}
        return simple.get(choice, simple[6])()

    def play(self, target: Connection, piece: int) -> None:
        """Alternate peer frames (some raw or damaged) and our own sends, then deliver."""
        r, pending = self.reader, bytearray()
        peer = Role.RECEIVER if target.role is Role.SENDER else Role.SENDER
        while r.more():
            op = r.number()
            try:
                if op < 130:
                    pending += encode_event(self.event(peer))
                elif op < 170:
                    self._deliver(target, pending, piece)
                    pending.clear()
                    self._send(target, self.event(target.role))
                elif op < 200:
                    pending += encode_event(self.event(None))
                elif op < 228:
                    pending += r.take(r.number() % 16)
                else:
                    frame = bytearray(encode_event(self.event(peer)))
                    frame[r.number(2) % len(frame)] ^= 1 << (r.number() % 8)
                    pending += frame
            except MessageError:
                pass  # the script built an invalid event; events refuse those
            if target.state is State.ERROR:
                return
        self._deliver(target, pending, piece)

    @staticmethod
    def _send(target: Connection, event: Event) -> None:
        before = (target.state, dict(target.transfers))
        try:
            target.send(event)
        except LocalProtocolError:
            if (target.state, dict(target.transfers)) != before:
                raise AssertionError(
                    f"refused send of {event!r} changed the connection") from None

    @staticmethod
    def _deliver(target: Connection, data: bytes, piece: int) -> None:
        try:
            for chunk in _pieces(bytes(data), piece):
                target.receive_data(chunk)
        except ProtocolError as exc:
            if target.state is not State.ERROR:
                raise AssertionError(f"{exc!r} left the connection in {target.state}") from exc


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    """One fuzz case; raises (a crash) if anything but a ProtocolError escapes."""
    if not data:
        return
    control, body = data[0], data[1:]
    piece = 1 + (control >> 4) % 7 * 9  # 1, 10, 19, ... 55-byte pieces
    decoder = FrameDecoder()
    try:
        for chunk in _pieces(body, piece):
            decoder.feed(chunk)
            while decoder.next_frame() is not None:
                pass
    except ProtocolError:
        pass
    role = Role.SENDER if control & 1 else Role.RECEIVER
    connection = connection_in(role, STATES[(control >> 1) % 4])
    if control & 0x80:
        _Script(body).play(connection, piece)
    else:
        _Script._deliver(connection, body, piece)


def _fallback(argv: list[str]) -> int:
    runs = FALLBACK_RUNS
    for arg in argv[1:]:
        if arg.startswith("-runs="):
            runs = int(arg.split("=", 1)[1])
    print("atheris is not installed, so this is not coverage-guided fuzzing.\n"
          "Install it with:  pip install atheris   (Linux or macOS, CPython 3.8-3.12;\n"
          "if no wheel fits, it builds against clang/libFuzzer). Falling back to "
          f"{runs} random inputs from os.urandom.", file=sys.stderr)
    for run in range(runs):
        size = int.from_bytes(os.urandom(2), "big") % 2048
        data = os.urandom(size)
        try:
            TestOneInput(data)
        except Exception:
            print(f"crash on input {run}: {data.hex()}", file=sys.stderr)
            raise
    print(f"{runs} inputs, no crash.", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    try:
        import atheris
    except ImportError:
        return _fallback(argv)
    atheris.instrument_all()  # coverage of the already imported protocol/ and keys/ code
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
