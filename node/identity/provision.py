"""Creating a node home: keys, keystore, configuration, folders and the peer card.

Used by ``lienthong init`` and by the demo; it is a factory (does I/O), so tests call it with a
real temporary folder.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import nacl.pwhash

from lienthong.config.loader import CONFIG_FILE_NAME, load_config
from lienthong.config.schema import ConfigError, NodeConfig
from lienthong.config.template import render_config
from lienthong.keys.card import make_card
from lienthong.keys.identity import NodeKeys, generate_node_keys
from lienthong.keys.keystore import save_keystore
from lienthong.node.core.access import AccessPolicy
from lienthong.node.core.home import (
    make_folders,
    removed_on_failure,
    write_private_file,
    write_public_file,
)

#: Argon2id strength for the keystore. ``minimal`` exists for test suites that create dozens
#: of nodes; it is hidden from ``--help`` and documented as unsafe.
KDF_PROFILES = {
    "sensitive": (nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE, nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE),
    "moderate": (nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE),
    "interactive": (nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                    nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE),
    "minimal": (nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN),
}


@dataclass(frozen=True, slots=True)
class NewNode:
    config: NodeConfig
    node_id: str
    card_path: Path


def generate_passphrase() -> str:
    """A random passphrase for unattended nodes (stored 0600 beside the keystore)."""
    return secrets.token_urlsafe(32)


def create_node_home(home: Path, *, name: str, display_name: str | None, listen: str,
                     advertise: list[str] | None, passphrase: bytes | None, now: str,
                     kdf: str = "moderate", status_listen: str = "127.0.0.1:0",
                     groups: dict[str, list[str]] | None = None,
                     store_url: str = "") -> NewNode:
    """Create a complete node home; refuse to overwrite an existing one.

    With ``passphrase=None`` a random passphrase is generated and kept in ``keys/passphrase``
    (0600), and the configuration points at it: the node can then restart unattended.
    """
    home = Path(home).resolve()
    if (home / CONFIG_FILE_NAME).exists():
        raise ConfigError("{home} already holds a node ({file} exists); choose another folder",
                          home=home, file=CONFIG_FILE_NAME)
    with removed_on_failure(home):
        return _create_node_home(home, name=name, display_name=display_name, listen=listen,
                                 advertise=advertise, passphrase=passphrase, now=now, kdf=kdf,
                                 status_listen=status_listen, groups=groups,
                                 store_url=store_url)


def _create_node_home(home: Path, *, name: str, display_name: str | None, listen: str,
                      advertise: list[str] | None, passphrase: bytes | None, now: str,
                      kdf: str, status_listen: str,
                      groups: dict[str, list[str]] | None, store_url: str) -> NewNode:
    make_folders(home, AccessPolicy())
    passphrase_file = None
    if passphrase is None:
        passphrase = generate_passphrase().encode("ascii")
        passphrase_file = "keys/passphrase"
        write_private_file(home / passphrase_file, passphrase + b"\n")
    text = render_config(name=name, display_name=display_name or name, listen=listen,
                         advertise=advertise or [listen], status_listen=status_listen,
                         passphrase_file=passphrase_file, groups=groups,
                         store_url=store_url)
    write_public_file(home / CONFIG_FILE_NAME, text.encode("utf-8"))
    config = load_config(home)
    node_keys = generate_node_keys(name, now=now)
    opslimit, memlimit = KDF_PROFILES[kdf]
    save_keystore(config.keystore.path, node_keys, passphrase, opslimit=opslimit,
                  memlimit=memlimit)
    card_path = write_card(config, node_keys, now=now)
    return NewNode(config=config, node_id=node_keys.node_id, card_path=card_path)


def write_card(config: NodeConfig, node_keys: NodeKeys, *, now: str) -> Path:
    """(Re)write this node's peer card, to hand to other offices."""
    token = make_card(node_keys, addresses=list(config.node.advertise), now=now)
    write_public_file(config.card_path, token.rstrip("\n").encode("ascii") + b"\n")
    return config.card_path
