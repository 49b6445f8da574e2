"""Which wire protocol each peer last spoke: what decides the envelope version sealed for it.

A document is sealed once, for all its recipients, before any connection carries it; only a
recipient that speaks protocol 2 reads envelope v3 (docs/protocol.md). So the sender seals v3
when every recipient last agreed on protocol 2 with this node (in either direction), and v2
otherwise: a peer not yet upgraded, or not yet met since this node first started, gets v2,
which every version reads. A peer that moves back to protocol 1 after a v3 envelope was sealed
for it is offered that one only once it speaks 2 again (node/delivery/links.py).

The record is kept in ``state/peer-protocols.json`` so a restart does not fall back to v2 for
peers already known; it is only a hint (a lost or damaged file means v2 until the next
connection). Reading and writing it block: the runtime runs them on the worker pool.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from lienthong.node.core.home import write_synced

FILE_NAME = "peer-protocols.json"
#: The protocol whose envelopes may be v3 (protocol/connection.py's ENVELOPE_V3_PROTOCOL).
V3_PROTOCOL = 2


class PeerProtocols:
    """Peer node ID -> the protocol version last agreed with it."""

    def __init__(self, known: Mapping[str, int] | None = None) -> None:
        self._known: dict[str, int] = dict(known or {})

    def note(self, peer: str, protocol: int) -> bool:
        """Record what ``peer`` spoke on a connection; True if that changed what we knew."""
        if self._known.get(peer) == protocol:
            return False
        self._known[peer] = protocol
        return True

    def get(self, peer: str) -> int | None:
        return self._known.get(peer)

    def snapshot(self) -> dict[str, int]:
        return dict(self._known)

    def envelope_version(self, recipients: Iterable[str], max_protocol: int) -> int:
        """3 if this node may write v3 and every recipient last spoke protocol 2; else 2."""
        if max_protocol < V3_PROTOCOL:
            return 2
        readers = list(recipients)
        return 3 if readers and all(self._known.get(r, 1) >= V3_PROTOCOL
                                    for r in readers) else 2


def load_peer_protocols(state_dir: Path) -> dict[str, int]:
    """The saved record (blocking); {} if there is none or it cannot be read."""
    try:
        data = json.loads((state_dir / FILE_NAME).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {peer: version for peer, version in data.items()
            if isinstance(peer, str) and type(version) is int}


def save_peer_protocols(state_dir: Path, known: Mapping[str, int]) -> None:
    """Replace the saved record atomically (blocking)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_dir / f".{FILE_NAME}.part"
    write_synced(temporary, json.dumps(dict(sorted(known.items()))).encode("ascii"),
                 exclusive=False)
    os.replace(temporary, state_dir / FILE_NAME)
