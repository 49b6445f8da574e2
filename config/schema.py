"""What a node configuration may contain, as frozen values checked at construction.

The file is meant to be edited by an office's IT officer, so every error names the file, the
key and what was expected (``ConfigError``), and unknown keys are errors rather than silently
ignored: a misspelt ``scan_intreval`` must not leave the default in force unnoticed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

CONFIG_VERSION = 1
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: Document types clerks may use when ``[documents] types`` is not set (node/documents/metadata.py
#: maps the Vietnamese names onto these; "message" is always allowed besides).
DEFAULT_DOCUMENT_TYPES = ("resolution", "decision", "directive", "report", "programme",
                          "conclusion", "announcement", "publication", "letter", "other")
#: Confidentiality classes that are refused unless ``[confidentiality]`` allows them for the
#: peer (normal and confidential documents need no permission).
GUARDED_CLASSES = ("secret", "top-secret")


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and how to fix it."""


def parse_address(text: str, *, where: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6) into host and port."""
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(f"{where}: expected an address like 127.0.0.1:7701, got {text!r}")
    host, _, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{where}: expected an address like 127.0.0.1:7701, got {text!r}")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class NodeSection:
    name: str
    display_name: str
    listen: str
    advertise: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeystoreSection:
    path: Path
    passphrase_file: Path | None


@dataclass(frozen=True, slots=True)
class StoreSection:
    url: str


@dataclass(frozen=True, slots=True)
class WatchSection:
    observer: Literal["native", "polling"] = "native"
    scan_interval: float = 30.0
    stable_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class DeliverySection:
    max_document_mib: int = 4096
    retry_initial: float = 1.0
    retry_max: float = 300.0
    connect_timeout: float = 20.0
    idle_timeout: float = 300.0
    max_parallel_transfers: int = 4
    #: The newest wire protocol this node offers and accepts (2: envelope v3, 1: v2 only, as a
    #: node before issue 14). 1 is for rolling an upgrade back, and for tests of a mixed pair.
    max_protocol: int = 2


@dataclass(frozen=True, slots=True)
class StatusSection:
    listen: str = "127.0.0.1:0"
    #: Listening on anything but loopback needs this set explicitly (status is not for peers).
    allow_remote: bool = False


@dataclass(frozen=True, slots=True)
class DocumentsSection:
    types: tuple[str, ...] = DEFAULT_DOCUMENT_TYPES


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A whole, validated configuration; paths are absolute (resolved against the home)."""

    home: Path
    source: Path
    node: NodeSection
    keystore: KeystoreSection
    store: StoreSection
    watch: WatchSection = field(default_factory=WatchSection)
    delivery: DeliverySection = field(default_factory=DeliverySection)
    status: StatusSection = field(default_factory=StatusSection)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    documents: DocumentsSection = field(default_factory=DocumentsSection)
    #: Peer or group name -> the guarded classes (secret, top-secret) it may receive.
    confidentiality: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @property
    def sent(self) -> Path:
        return self.home / "sent"

    @property
    def failed(self) -> Path:
        return self.home / "failed"

    @property
    def spool(self) -> Path:
        return self.home / "spool"

    @property
    def tmp(self) -> Path:
        return self.home / "tmp"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def card_path(self) -> Path:
        return self.home / f"{self.node.name}.card"

    @property
    def max_document_bytes(self) -> int:
        return self.delivery.max_document_mib * 1024 * 1024
