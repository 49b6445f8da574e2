"""Typing Protocols at the seams between the node's rooms.

A room low in the layer order (pyproject.toml, ``[tool.importlinter]``) that is handed an
object of a higher one types it here, by exactly the members it uses, instead of importing
the higher room (which the layer contracts forbid) or falling back to ``Any``. Nothing here
runs: these are types.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from lienthong.node.runtime.node_runtime import NodeRuntime


class ServerCertificate(Protocol):
    """The TLS context the node presents (transport's ``PinnedContextFactory``)."""

    def use_key(self, *, tls_key: Any, certificate_der_bytes: bytes) -> None: ...


class DialingLink(Protocol):
    """A link that dials one peer (delivery's ``PeerLink``): which TLS key it dials with, and
    a nudge to look for work."""

    tls: Any

    def kick(self) -> None: ...


class ControlSender(Protocol):
    """Sends bytes the node produced to peers (outbox's ``Outbox``); the Deferred fires with
    the new message ID once the dispatch is recorded."""

    def send_control(self, recipients: list[str], *, name: str, data: bytes,
                     meta: dict[str, Any]) -> Deferred: ...


class LabelledConnection(Protocol):
    """An accepted connection, labelled with the node ID of the peer that dialled."""

    peer: str | None


class AcceptedConnections(Protocol):
    """The connections peers have opened to this node (inbox's ``ReceiverFactory``)."""

    @property
    def connections(self) -> Collection[LabelledConnection]: ...


class RotationHost(Protocol):
    """What announcing this node's rotated keys uses of the running node (app's ``Node``):
    the certificate it presents, the links it dials with, the outbox the announcement goes
    through, and where a refused TLS peer is reported."""

    rt: NodeRuntime

    @property
    def tls(self) -> ServerCertificate: ...

    @property
    def links(self) -> Mapping[str, DialingLink]: ...

    @property
    def outbox(self) -> ControlSender: ...

    def tls_refused(self, pin: str, reason: str, code: str = ...) -> None: ...
