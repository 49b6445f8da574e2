"""Events: what a frame means, as frozen values checked when they are built.

One event class per frame kind. An event validates its fields at construction (types,
ranges, formats, lengths) and raises MessageError otherwise, so a value of these types is
always something we could put on the wire and always something we would accept from it. As in
h11's ``_events.py``, don't subclass these: the codec dispatches on the exact type.

Control events travel as canonical UTF-8 JSON objects whose members are exactly the event's
fields (unknown or missing members are refused: there is no silent extension; a new field
means a new protocol version). DATA is binary so ciphertext is never base64-inflated::

    message_id (16 raw bytes) | offset (u64 big-endian) | ciphertext (1..MAX_DATA bytes)

The codec is a table (``EVENT_TYPES``) from frame kind to class; each class's ``_CHECKS``
table names its fields and the check each one must pass.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias, TypeGuard

from lienthong.keys.errors import BadNodeID, MalformedToken
from lienthong.keys.jws import canonical_json, strict_json_object
from lienthong.keys.nodeid import parse_node_id
from lienthong.protocol.errors import LocalProtocolError, MessageError
from lienthong.protocol.frames import (
    DATA_PREFIX_SIZE,
    MAX_DATA,
    Frame,
    FrameKind,
    encode_frame,
    frame_header,
)

MAX_U64 = 2 ** 64 - 1
MAX_CODE = 64
MAX_REASON = 1000
MAX_SOFTWARE = 200
#: The envelope header token must fit in one OFFER frame with its JSON around it.
MAX_ENVELOPE = 1024 * 1024 - 1024
MAX_RECEIPT = 64 * 1024

_MESSAGE_ID = re.compile(r"[0-9a-f]{32}\Z")
_CODE = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
#: The JWS compact serialization alphabet: base64url plus the two dots.
_TOKEN = re.compile(r"[A-Za-z0-9_.\-]+\Z")
#: Control, format (bidi overrides, zero-width) and surrogate characters: refused in peer
#: text because it ends up in consoles and logs, and surrogates cannot be encoded as UTF-8.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


class Priority(IntEnum):
    """Urgency of a document; lower is more urgent (hỏa tốc, thượng khẩn, khẩn, thường)."""

    FLASH = 0
    VERY_URGENT = 1
    URGENT = 2
    NORMAL = 3


Check: TypeAlias = Callable[[str, Any], None]


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _message_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not _MESSAGE_ID.match(value):
        raise MessageError(f"{name} must be 32 lowercase hexadecimal characters")


def _u64(name: str, value: object) -> None:
    if not _is_int(value) or not 0 <= value <= MAX_U64:
        raise MessageError(f"{name} must be an integer from 0 to 2**64-1")


def _int_range(low: int, high: int) -> Check:
    def check(name: str, value: object) -> None:
        if not _is_int(value) or not low <= value <= high:
            raise MessageError(f"{name} must be an integer from {low} to {high}")
    return check


def _text(limit: int, *, empty: bool = True) -> Check:
    def check(name: str, value: object) -> None:
        if not isinstance(value, str) or len(value) > limit or (not empty and not value):
            raise MessageError(f"{name} must be text of {0 if empty else 1} to {limit} "
                               "characters")
        if any(unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in value):
            raise MessageError(f"{name} contains control or invisible formatting characters")
    return check


def _code(name: str, value: object) -> None:
    if not isinstance(value, str) or len(value) > MAX_CODE or not _CODE.match(value):
        raise MessageError(f"{name} must be 1 to {MAX_CODE} characters of a-z, 0-9 and '-'")


def _token(limit: int) -> Check:
    def check(name: str, value: object) -> None:
        if not isinstance(value, str) or len(value) > limit or not _TOKEN.match(value):
            raise MessageError(f"{name} must be a JWS compact token of at most {limit} "
                               "characters")
    return check


def _node_id(name: str, value: object) -> None:
    try:
        canonical = parse_node_id(value)  # type: ignore[arg-type]
    except BadNodeID as exc:
        raise MessageError(f"{name}: {exc}") from exc
    if canonical != value:
        raise MessageError(f"{name} must be written in canonical form ({canonical})")


def clean_text(text: str, limit: int = MAX_REASON) -> str:
    """Make arbitrary text (an exception message, say) acceptable as a reason field.

    Control characters become spaces, other invisible ones U+FFFD, and the result is cut to
    ``limit`` characters. For our own outgoing REJECT/ERROR reasons only: text from a peer is
    refused, never cleaned, when it breaks the rules.
    """
    out = []
    for char in str(text)[:limit]:
        category = unicodedata.category(char)
        if category == "Cc":
            out.append(" ")
        elif category in _FORBIDDEN_CATEGORIES:
            out.append("\ufffd")
        else:
            out.append(char)
    return "".join(out)


class _JsonEvent:
    """Shared codec for control events: fields <-> one canonical JSON object."""

    __slots__ = ()
    KIND: ClassVar[FrameKind]
    _CHECKS: ClassVar[Mapping[str, Check]]

    def __post_init__(self) -> None:
        for name, check in self._CHECKS.items():
            check(name, getattr(self, name))

    def to_payload(self) -> bytes:
        return canonical_json({name: getattr(self, name) for name in self._CHECKS})

    @classmethod
    def from_payload(cls, payload: bytes | memoryview) -> Any:
        try:
            members = strict_json_object(bytes(payload))  # bytes(bytes) is no copy
        except MalformedToken as exc:
            raise MessageError(f"{cls.KIND.name} payload: {exc}") from exc
        missing = sorted(cls._CHECKS.keys() - members.keys())
        unknown = sorted(members.keys() - cls._CHECKS.keys())
        if missing or unknown:
            raise MessageError(f"{cls.KIND.name} payload: missing members {missing}, "
                               f"unknown members {unknown}")
        return cls(**members)


@dataclass(frozen=True, slots=True)
class Hello(_JsonEvent):
    """First words of each side: who we are. The RECEIVER speaks first (see connection.py)."""

    node_id: str
    software: str
    protocol: int = 1
    KIND: ClassVar[FrameKind] = FrameKind.HELLO
    _CHECKS: ClassVar[Mapping[str, Check]] = MappingProxyType({
        "node_id": _node_id, "software": _text(MAX_SOFTWARE, empty=False),
        "protocol": _int_range(1, 255)})


@dataclass(frozen=True, slots=True)
class Offer(_JsonEvent):
    """The sender proposes a document: its signed envelope header and ciphertext size."""

    message_id: str
    envelope: str = field(repr=False)
    ciphertext_size: int
    priority: int
    KIND: ClassVar[FrameKind] = FrameKind.OFFER
    _CHECKS: ClassVar[Mapping[str, Check]] = MappingProxyType({
        "message_id": _message_id, "envelope": _token(MAX_ENVELOPE),
        "ciphertext_size": _u64, "priority": _int_range(min(Priority), max(Priority))})


@dataclass(frozen=True, slots=True)
class Accept(_JsonEvent):
    """The receiver takes the document, starting at ``offset`` (> 0 resumes a transfer)."""

    message_id: str
    offset: int
    KIND: ClassVar[FrameKind] = FrameKind.ACCEPT
    _CHECKS: ClassVar[Mapping[str, Check]] = MappingProxyType({
        "message_id": _message_id, "offset": _u64})


@dataclass(frozen=True, slots=True)
class Have(_JsonEvent):
    """The receiver already holds the document; here is the receipt it stored."""

    message_id: str
    receipt: str = field(repr=False)
    KIND: ClassVar[FrameKind] = FrameKind.HAVE
    _CHECKS: ClassVar[Mapping[str, Check]] = MappingProxyType({
        "message_id": _message_id, "receipt": _token(MAX_RECEIPT)})


@dataclass(frozen=True, slots=True)
class Reject(_JsonEvent):
    """The receiver refuses or gives up on one transfer; the connection carries on."""

    message_id: str
    code: str
    reason: str
    KIND: ClassVar[FrameKind] = FrameKind.REJECT
    _CHECKS: ClassVar[Mapping[str, Check]] = MappingProxyType({
        "message_id": _message_id, "code": _code, "reason": _text(MAX_REASON)})


@dataclass(frozen=True, slots=True)
class End(_JsonEvent):
    """The sender has sent every ciphertext byte of the transfer."""

    message_id: str
    KIND: ClassVar[FrameKind] = FrameKind.END
    _CHECKS: ClassVar[Mapping[str, Check]] = MappingProxyType({"message_id": _message_id})


@dataclass(frozen=True, slots=True)
class Receipt(_JsonEvent):
    """The receiver verified and durably stored the document; here is its signed receipt."""

    message_id: str
    receipt: str = field(repr=False)
    KIND: ClassVar[FrameKind] = FrameKind.RECEIPT
    _CHECKS: ClassVar[Mapping[str, Check]] = MappingProxyType({
        "message_id": _message_id, "receipt": _token(MAX_RECEIPT)})


@dataclass(frozen=True, slots=True)
class Error(_JsonEvent):
    """Fatal: the speaker closes the connection after this."""

    code: str
    reason: str
    KIND: ClassVar[FrameKind] = FrameKind.ERROR
    _CHECKS: ClassVar[Mapping[str, Check]] = MappingProxyType({
        "code": _code, "reason": _text(MAX_REASON)})


@dataclass(frozen=True, slots=True)
class Ping(_JsonEvent):
    """Liveness probe; the peer answers with a PONG carrying the same nonce."""

    nonce: int
    KIND: ClassVar[FrameKind] = FrameKind.PING
    _CHECKS: ClassVar[Mapping[str, Check]] = MappingProxyType({"nonce": _u64})


@dataclass(frozen=True, slots=True)
class Pong(_JsonEvent):
    """Answer to a PING."""

    nonce: int
    KIND: ClassVar[FrameKind] = FrameKind.PONG
    _CHECKS: ClassVar[Mapping[str, Check]] = MappingProxyType({"nonce": _u64})


@dataclass(frozen=True, slots=True)
class Data:
    """A run of ciphertext bytes of one transfer, starting at ``offset``."""

    message_id: str
    offset: int
    #: ``bytes``, or a read-only view of ``bytes`` or of a ``bytearray`` nobody writes while
    #: the view lives (a received frame's ciphertext is not copied out of the frame, nor the
    #: frame out of the buffer it was read into: protocol/frames.py). Either way it cannot
    #: change; a holder that drops the view lets the decoder reuse the buffer.
    data: bytes | memoryview = field(repr=False)
    KIND: ClassVar[FrameKind] = FrameKind.DATA

    def __post_init__(self) -> None:
        _message_id("message_id", self.message_id)
        _u64("offset", self.offset)
        data = self.data
        if not isinstance(data, bytes) and not (
                type(data) is memoryview and isinstance(data.obj, (bytes, bytearray))
                and data.readonly and data.format == "B" and data.ndim == 1
                and data.c_contiguous):
            raise MessageError("data must be bytes (or a plain read-only view of a buffer)")
        # Empty DATA frames are refused: every frame must make progress.
        if not 1 <= len(self.data) <= MAX_DATA:
            raise MessageError(f"DATA carries 1 to {MAX_DATA} bytes, not {len(self.data)}")
        if self.offset + len(self.data) > MAX_U64:
            raise MessageError("DATA would end beyond offset 2**64-1")

    def to_payload(self) -> bytes:
        return self.prefix() + self.data

    def prefix(self) -> bytes:
        """The payload's first DATA_PREFIX_SIZE bytes: the ciphertext follows them."""
        return bytes.fromhex(self.message_id) + self.offset.to_bytes(8, "big")

    @classmethod
    def from_payload(cls, payload: bytes | memoryview) -> Data:
        if len(payload) <= DATA_PREFIX_SIZE:
            raise MessageError(f"DATA payload of {len(payload)} bytes carries no ciphertext")
        view = memoryview(payload)   # the ciphertext is a view of the payload, not a copy
        return cls(message_id=view[:16].hex(),
                   offset=int.from_bytes(view[16:DATA_PREFIX_SIZE], "big"),
                   data=view[DATA_PREFIX_SIZE:])


Event: TypeAlias = (Hello | Offer | Accept | Have | Reject | Data | End | Receipt | Error | Ping
                   | Pong)

#: The codec table: frame kind -> event class.
EVENT_TYPES: Mapping[FrameKind, type[Event]] = MappingProxyType({
    cls.KIND: cls for cls in (Hello, Offer, Accept, Have, Reject, Data, End, Receipt, Error,
                              Ping, Pong)})

#: Events that belong to one transfer (they all carry ``message_id``).
TRANSFER_EVENTS = (Offer, Accept, Have, Reject, Data, End, Receipt)


def decode_event(frame: Frame) -> Event:
    """Interpret a decoded frame; raises MessageError if its payload is not a valid event."""
    return EVENT_TYPES[frame.kind].from_payload(frame.payload)


def encode_event(event: Event) -> bytes:
    """Return the whole frame (header and payload) for ``event``."""
    parts = encode_event_parts(event)
    return parts[0] if len(parts) == 1 else b"".join(parts)  # type: ignore[return-value]


def encode_event_parts(event: Event) -> tuple[bytes | memoryview, ...]:
    """The frame for ``event`` as pieces to write one after the other: a DATA frame is its
    header and prefix, then its ciphertext as it is (not copied into one buffer with them);
    any other frame is one piece."""
    if EVENT_TYPES.get(getattr(type(event), "KIND", None)) is not type(event):  # type: ignore[arg-type]
        raise LocalProtocolError(f"{event!r} is not a protocol event")
    if isinstance(event, Data):
        return (frame_header(event.KIND, DATA_PREFIX_SIZE + len(event.data)) + event.prefix(),
                event.data)
    return (encode_frame(event.KIND, event.to_payload()),)
