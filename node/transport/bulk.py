"""Large writes through Twisted's TLS transport without its 16 KiB Python loop.

Why: Twisted's ``TLSMemoryBIOProtocol`` encrypts a write by slicing (copying) it into 16 KiB
pieces and, for each one, calling pyOpenSSL's ``send`` and reading the TLS record out of the
memory BIO into a new ``bytes`` for the TCP transport; ``writeSequence`` first joins its
pieces into one. For a 1 MiB DATA frame that is 64 trips through that loop plus two copies
of the frame, and on the large-document benchmark the sender's reactor thread spent about
half its time in it (py-spy, issue 6).

:class:`BulkTLSTransport` keeps Twisted's behaviour and only changes how bytes reach OpenSSL:
``_write`` hands OpenSSL the caller's buffer as it is (no slicing copy) in one ``SSL_write``
(:func:`whole_writes` turns off the partial writes pyOpenSSL enables, which stop each call
after one record), and then drains the memory BIO in large reads, so the TCP transport gets
one large ``bytes`` rather than one per record; ``writeSequence`` of a large sequence
encrypts its pieces one after the other instead of joining them and drains the BIO once
(whatever small writes the transport was still aggregating go first, so the order of bytes
never changes). Small writes keep Twisted's aggregation. Over Twisted's TCP connection with
nothing of its own left to send, the records are read into a buffer kept for the connection
and given to the socket inside the write (docs/benchmarks.md, History 66): no new buffer and
``bytes`` per frame, no wait for the next reactor turn; what the kernel does not take goes to
the TCP transport's buffer, so order, back-pressure and error handling stay Twisted's.

Receiving has the mirror cost: OpenSSL gives back one record (16 KiB) per ``SSL_read``, and
Twisted hands each one to the protocol, so a receiver's reactor ran the frame decoder and its
own ``dataReceived`` 64 times per 1 MiB DATA frame (a third of the receiving node's CPU went
to Python on that thread, perf on the large benchmark). ``_flushReceiveBIO`` here reads every
record the TCP bytes just completed and hands them to the protocol in one call, as one
``bytes``. It calls ``SSL_read`` itself (pyOpenSSL's ``recv`` allocates a buffer, checks
three callback helpers and copies the record into a new ``bytes`` on every record): each
record is decrypted into one buffer kept for the connection, copied out once per socket read
(docs/benchmarks.md, History 59). A protocol that takes pieces (:class:`ReceivesPieces`, whose
frame decoder keeps them without joining) gets that one piece as a list. A protocol that
reads into its own buffers (:class:`ReadsInto`: the receiver) has the records decrypted
straight into the place it names, a buffer of the one frame being read, and is told when the
socket read's bytes are all in: no copy out of a connection buffer and no join of a frame
from its reads (History 63).

It depends on three private methods of ``TLSMemoryBIOProtocol`` (``_write``,
``_flushSendBIO`` and ``_flushReceiveBIO``, Twisted 26.10) and on pyOpenSSL's ``Connection``
internals (``_ssl``, ``_from_ssl`` and ``_raise_ssl_error``, pyOpenSSL 25–26); sending at
once reads the TCP connection's buffer state (``dataBuffer``, ``offset``, ``_tempDataBuffer``,
``_aborting``, ``_writeDisconnected``) and is used only under ``twisted.internet.tcp``'s
``Connection``. :func:`bulk_tls` only upgrades a transport of exactly the class it was
written against, while pyOpenSSL has those internals, and leaves anything else (another
Twisted version's class, a test's transport, a pyOpenSSL without them) alone, which is
always correct, just slower.
"""
from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Any

from OpenSSL import SSL
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib
from OpenSSL.SSL import Error, WantReadError, ZeroReturnError
from twisted.internet import tcp
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import BufferingTLSTransport
from twisted.python.failure import Failure

#: Sequences at least this large bypass the small-write aggregation and are not joined.
BULK_WRITE = 64 * 1024
#: Bytes taken from the memory BIO per read: a 1 MiB frame's records (plus their overhead)
#: leave in one piece.
BIO_READ = 1024 * 1024 + 64 * 1024
#: Bytes the TCP transport may pass to one ``send`` (Twisted: 128 KiB).
TCP_SEND = BIO_READ
#: The buffer the records of one socket read are decrypted into (kept for the connection): the
#: receiver reads 256 KiB from the socket at a time (node/inbox/connection.py), and a record
#: whose start came with an earlier read may end in this one.
RECEIVE_BUFFER = 256 * 1024 + 32 * 1024
#: The smallest buffer records are read into before they are sent at once; it grows to the
#: largest read (``BIO_READ``) on a connection that sends large frames.
SEND_BUFFER = 64 * 1024
#: ``SSL_MODE_ENABLE_PARTIAL_WRITE`` (openssl/ssl.h); pyOpenSSL does not export it.
MODE_ENABLE_PARTIAL_WRITE = 0x1


#: The pyOpenSSL internals the transport reads records and pending bytes through; a
#: pyOpenSSL without them leaves every connection on Twisted's own TLS path (correct, slower).
PYOPENSSL_INTERNALS_PRESENT = (
    all(hasattr(_lib, name) for name in ("SSL_read", "SSL_get_error", "SSL_ERROR_WANT_READ",
                                         "BIO_get_mem_data"))
    and all(hasattr(SSL.Connection, name) for name in ("_raise_ssl_error",)))


@typing.runtime_checkable
class ReceivesPieces(typing.Protocol):
    """A protocol that takes the bytes of one read as the pieces the transport read them in
    (one ``bytes``, more only when the connection's buffer filled), without a join."""

    def pieces_received(self, pieces: list[bytes]) -> None: ...


@typing.runtime_checkable
class ReadsInto(typing.Protocol):
    """A protocol that names where the transport decrypts the next bytes (``read_buffer``: a
    writable view, not kept after ``bytes_read``), is told how many it wrote there, and once a
    socket read's records are all in, ``read_done``: handles what they completed."""

    def read_buffer(self) -> memoryview: ...

    def bytes_read(self, count: int) -> None: ...

    def read_done(self) -> None: ...


class BulkTLSTransport(BufferingTLSTransport):
    """Twisted's TLS transport with the large-write path described in the module docstring."""

    def writeSequence(self, sequence: Iterable[bytes]) -> None:  # noqa: N802
        pieces = list(sequence)
        if sum(len(piece) for piece in pieces) < BULK_WRITE:
            super().writeSequence(pieces)
            return
        if self.disconnecting and self._producer is None:
            return   # as TLSMemoryBIOProtocol.write: dropped after loseConnection
        self._aggregator.flush()   # earlier small writes first
        for piece in pieces:       # once one is buffered (handshake), so are the rest
            self._encrypt(piece)
        if not self._lostTLSConnection:
            self._flushSendBIO()   # all the pieces' records leave as one TCP write

    def _write(self, data: Any) -> None:
        """Encrypt all of ``data``, then pass the records on (Twisted: record by record)."""
        if self._encrypt(data):
            self._flushSendBIO()

    def _encrypt(self, data: Any) -> bool:
        """Hand ``data`` to OpenSSL; False if it could not all go (then handled as Twisted
        does: the rest is buffered, or the connection is shut down)."""
        if self._lostTLSConnection:
            return False
        if self._appSendBuffer:   # waiting for the peer (handshake): keep the order
            self._bufferedWrite(bytes(data))
            return False
        view = memoryview(data)
        size = len(view)
        sent = 0
        send = self._tlsConnection.send
        try:
            while sent < size:
                sent += send(view[sent:])
        except WantReadError:
            # As Twisted does: keep the rest until the peer's bytes let OpenSSL go on (the
            # retry starts at the same byte with the same length, as OpenSSL requires).
            self._flushSendBIO()
            self._bufferedWrite(bytes(view[sent:]))
            return False
        except Error:
            self._flushSendBIO()
            self._tlsShutdownFinished(Failure())
            return False
        return True

    #: The TCP connection records may be sent to at once (set by :func:`bulk_tls` when the
    #: transport under TLS is Twisted's TCP connection), and the buffer they are read into.
    _tcp: tcp.Connection | None = None
    _sending: bytearray | None = None
    _sending_at: Any = None

    def _flushSendBIO(self) -> None:  # noqa: N802
        """Pass on everything OpenSSL has written to the memory BIO (Twisted: 32 KiB)."""
        transport = self.transport
        if transport is None:  # Twisted flushes only once the TCP connection exists
            raise RuntimeError("TLS records flushed before the TCP connection was made")
        connection = self._tlsConnection
        # Asked first: after a socket read there is usually nothing to send, and pyOpenSSL's
        # ``bio_read`` allocates its whole buffer and raises WantReadError to say so.
        while pending := _lib.BIO_get_mem_data(connection._from_ssl, _ffi.NULL):
            size = min(pending, BIO_READ)
            # An abort drops what is buffered (the close_notify it writes first too): only
            # bytes Twisted would send go out at once.
            if self._tcp is None or self._aborted or not _idle(self._tcp):
                transport.write(connection.bio_read(size))
            else:
                self._send_now(self._tcp, connection, size)

    def _send_now(self, tcp_connection: tcp.Connection, connection: SSL.Connection,
                  size: int) -> None:
        """Read ``size`` bytes of records into the kept buffer and give them to the socket
        now; what it does not take goes to the TCP transport's buffer as Twisted would (its
        ``doWrite`` then meets any error the socket had). pyOpenSSL's ``bio_read`` zeroes a
        new buffer and copies it into a new ``bytes``, and Twisted sends a turn later."""
        if self._sending is None or len(self._sending) < size:
            self._sending = bytearray(max(size, SEND_BUFFER))
            self._sending_at = _ffi.from_buffer(self._sending)
        read = _lib.BIO_read(connection._from_ssl, self._sending_at, size)
        if read <= 0:   # not expected with bytes pending: let pyOpenSSL say what is wrong
            tcp_connection.write(connection.bio_read(size))
            return
        with memoryview(self._sending) as view, view[:read] as records:
            sent = tcp_connection.writeSomeData(records)   # type: ignore[arg-type]
            if not isinstance(sent, int) or sent < 0:
                sent = 0
            if sent < read:
                tcp_connection.write(bytes(records[sent:]))

    _received: bytearray | None = None
    _received_at: Any = None

    def _flushReceiveBIO(self) -> None:  # noqa: N802
        """Hand the protocol every record the received bytes completed, as one ``bytes``
        (Twisted: one call per record); then pass on what OpenSSL has to send (handshake,
        alerts), as Twisted does. The records read before a close or an error are delivered
        before it is handled, in order."""
        pieces: list[bytes] = []
        reader = self._reader()
        try:
            if reader is not None:
                self._read_into(reader)
            else:
                self._read_records(pieces)
        except ZeroReturnError:
            self._deliver(pieces)
            # TLS has shut down (close_notify): as Twisted does, the protocol then learns the
            # reason from the TCP connection.
            self._shutdownTLS()
            self._tlsShutdownFinished(None)
        except Error:
            self._deliver(pieces)
            self._tlsShutdownFinished(Failure())
        else:
            self._deliver(pieces)
        self._flushSendBIO()

    def _read_records(self, pieces: list[bytes]) -> None:
        """Decrypt every complete record into the connection's buffer, appending its contents
        to ``pieces`` as one ``bytes`` (more only if the buffer fills). Raises what pyOpenSSL's
        ``recv`` raises for anything but "no complete record left"."""
        if self._received is None:
            self._received = bytearray(RECEIVE_BUFFER)
            self._received_at = _ffi.from_buffer(self._received)
        buffer, start = self._received, self._received_at
        connection = self._tlsConnection
        ssl = connection._ssl
        filled = 0
        try:
            while not self._lostTLSConnection:
                result = _read_records_at(connection, ssl, start + filled, RECEIVE_BUFFER - filled)
                if not result:
                    break
                filled += result
                if filled == RECEIVE_BUFFER:
                    pieces.append(bytes(buffer))
                    filled = 0
        finally:
            if filled:
                with memoryview(buffer) as view:
                    pieces.append(bytes(view[:filled]))

    def _read_into(self, reader: ReadsInto) -> None:
        """Decrypt every complete record where ``reader`` says, filling each buffer it names
        before asking for the next; the bytes written before an error are reported first."""
        connection = self._tlsConnection
        ssl = connection._ssl
        while not self._lostTLSConnection and not self._aborted:
            view = reader.read_buffer()
            size = len(view)
            start = _ffi.from_buffer(view, require_writable=True)
            filled = 0
            try:
                while filled < size:
                    result = _read_records_at(connection, ssl, start + filled, size - filled)
                    if not result:
                        return
                    filled += result
            finally:
                del start, view   # the writable views go before the reader is told
                if filled:
                    reader.bytes_read(filled)

    #: The wrapped protocol and how it takes a read (0: bytes, 1: pieces, 2: reads into its
    #: own buffers), once asked (an isinstance check against a runtime-checkable Protocol
    #: costs tens of microseconds, once per read).
    _takes_pieces: tuple[object, int] | None = None

    def _taking(self) -> tuple[object, int]:
        protocol = self.wrappedProtocol
        known = self._takes_pieces
        if known is None or known[0] is not protocol:
            way = 2 if isinstance(protocol, ReadsInto) else \
                1 if isinstance(protocol, ReceivesPieces) else 0
            known = self._takes_pieces = (protocol, way)
        return known

    def _reader(self) -> ReadsInto | None:
        protocol, way = self._taking()
        return typing.cast(ReadsInto, protocol) if way == 2 else None

    def _deliver(self, pieces: list[bytes]) -> None:
        if self._aborted:
            return
        protocol, way = self._taking()
        if way == 2:
            typing.cast(ReadsInto, protocol).read_done()
            return
        if not pieces:
            return
        if way == 1:
            typing.cast(ReceivesPieces, protocol).pieces_received(pieces)
        else:
            ProtocolWrapper.dataReceived(self, pieces[0] if len(pieces) == 1
                                         else b"".join(pieces))


def whole_writes(context: SSL.Context) -> None:
    """Let one ``SSL_write`` take a whole buffer rather than one record (pyOpenSSL enables
    partial writes on every context). Safe under Twisted, whose TLS always writes to a memory
    BIO, which never refuses bytes: a write either completes or stops for the peer (WANT_READ),
    and Twisted retries it with the same bytes, as OpenSSL requires without partial writes."""
    context.clear_mode(MODE_ENABLE_PARTIAL_WRITE)


def _read_records_at(connection: SSL.Connection, ssl: Any, at: Any, size: int) -> int:
    """The bytes ``SSL_read`` decrypted at ``at`` (at most ``size``), 0 when no complete record
    is left; raises pyOpenSSL's exception for anything else (as its ``recv`` would)."""
    result = _lib.SSL_read(ssl, at, size)
    if result > 0:
        return result
    if _lib.SSL_get_error(ssl, result) != _lib.SSL_ERROR_WANT_READ:
        connection._raise_ssl_error(ssl, result)
    return 0


def _idle(tcp_connection: tcp.Connection) -> bool:
    """Whether bytes written to the socket now go out in order and would have gone at all:
    the TCP transport is connected, not closing or aborted, and holds nothing yet to send."""
    return bool(tcp_connection.connected and not tcp_connection.disconnecting
            and not tcp_connection._aborting and not tcp_connection._writeDisconnected
            and not tcp_connection._tempDataBuffer
            and tcp_connection.offset == len(tcp_connection.dataBuffer))


def bulk_tls(transport: object) -> None:
    """Give ``transport`` the large-write path if it is Twisted's TLS transport (as made by
    ``connectSSL``/``listenSSL``); anything else is left as it is."""
    if type(transport) is BufferingTLSTransport and PYOPENSSL_INTERNALS_PRESENT:
        transport.__class__ = BulkTLSTransport
        # The TCP connection under it sends at most SEND_LIMIT (128 KiB) per reactor turn:
        # let it try a whole frame's records at once (the kernel takes what fits).
        under = getattr(transport, "transport", None)
        limit = getattr(under, "SEND_LIMIT", None)
        if under is not None and isinstance(limit, int):
            under.SEND_LIMIT = max(limit, TCP_SEND)
        if isinstance(under, tcp.Connection):
            typing.cast(BulkTLSTransport, transport)._tcp = under
