"""Large writes through Twisted's TLS transport without its 16 KiB Python loop.

Why: Twisted's ``TLSMemoryBIOProtocol`` encrypts a write by slicing (copying) it into 16 KiB
pieces and, for each one, calling pyOpenSSL's ``send`` and reading the TLS record out of the
memory BIO into a new ``bytes`` for the TCP transport; ``writeSequence`` first joins its
pieces into one. For a 1 MiB DATA frame that is 64 trips through that loop plus two copies
of the frame, and on the large-document benchmark the sender's reactor thread spent about
half its time in it (py-spy, issue 6).

:class:`BulkTLSTransport` keeps Twisted's behaviour and only changes how bytes reach OpenSSL:
``_write`` hands OpenSSL views of the caller's buffer (no slicing copy; pyOpenSSL still writes
one record per call, as it enables partial writes), and the memory BIO is drained in large
reads after the whole buffer is in, so the TCP transport gets a few large ``bytes`` rather
than one per record; ``writeSequence`` of a large sequence writes its pieces one after the
other instead of joining them (whatever small writes the transport was still aggregating go
first, so the order of bytes never changes). Small writes keep Twisted's aggregation.

It depends on two private methods of ``TLSMemoryBIOProtocol`` (``_write`` and
``_flushSendBIO``, Twisted 26.10); :func:`bulk_tls` only upgrades a transport of exactly the
class it was written against, and leaves anything else (another Twisted version's class, a
test's transport) alone, which is always correct, just slower.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from OpenSSL.SSL import Error, WantReadError
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

#: Sequences at least this large bypass the small-write aggregation and are not joined.
BULK_WRITE = 64 * 1024
#: Bytes taken from the memory BIO per read: a 1 MiB frame's records (plus their overhead)
#: leave in one piece.
BIO_READ = 1024 * 1024 + 64 * 1024


class BulkTLSTransport(BufferingTLSTransport):
    """Twisted's TLS transport with the large-write path described in the module docstring."""

    def writeSequence(self, sequence: Iterable[bytes]) -> None:  # noqa: N802
        pieces = list(sequence)
        if sum(len(piece) for piece in pieces) < BULK_WRITE:
            super().writeSequence(pieces)
            return
        self._aggregator.flush()   # earlier small writes first
        for piece in pieces:
            TLSMemoryBIOProtocol.write(self, piece)

    def _write(self, data: Any) -> None:
        """Encrypt all of ``data``, then pass the records on (Twisted: record by record)."""
        if self._lostTLSConnection:
            return
        view = memoryview(data)
        size = len(view)
        sent = 0
        send = self._tlsConnection.send
        try:
            while sent < size:
                sent += send(view[sent:])
        except WantReadError:
            # As Twisted does: keep the rest until the peer's bytes let OpenSSL go on.
            self._flushSendBIO()
            self._bufferedWrite(bytes(view[sent:]))
            return
        except Error:
            self._flushSendBIO()
            self._tlsShutdownFinished(Failure())
            return
        self._flushSendBIO()

    def _flushSendBIO(self) -> None:  # noqa: N802
        """Pass on everything OpenSSL has written to the memory BIO (Twisted: 32 KiB)."""
        while True:
            try:
                data = self._tlsConnection.bio_read(BIO_READ)
            except WantReadError:
                return
            self.transport.write(data)
            if len(data) < BIO_READ:
                return


def bulk_tls(transport: object) -> None:
    """Give ``transport`` the large-write path if it is Twisted's TLS transport (as made by
    ``connectSSL``/``listenSSL``); anything else is left as it is."""
    if type(transport) is BufferingTLSTransport:
        transport.__class__ = BulkTLSTransport
