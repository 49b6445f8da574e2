"""Node IDs: the SHA-256 of an identity public key, written so people can read it aloud.

The format follows Syncthing's device IDs: the 32-byte digest in base32 (52 characters, no
padding), cut into four groups of 13, each followed by a Luhn mod-32 check character, then
shown as eight dash-separated groups of seven: ``ABCDEFG-HIJKLMN-...``. A mistyped or misread
character is caught by the check characters before anything trusts the ID.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import re

from lienthong.keys.errors import BadNodeID

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_GROUP = 13


def _luhn32(text: str) -> str:
    """Luhn mod N check character over the base32 alphabet (as Syncthing computes it)."""
    factor = 1
    total = 0
    n = len(ALPHABET)
    for char in text:
        codepoint = ALPHABET.index(char)
        addend = factor * codepoint
        factor = 1 if factor == 2 else 2
        addend = (addend // n) + (addend % n)
        total += addend
    remainder = total % n
    return ALPHABET[(n - remainder) % n]


def node_id_from_public_key(identity_public_key: bytes) -> str:
    """Return the canonical node ID for a raw 32-byte Ed25519 public key."""
    return _node_id(bytes(identity_public_key))


@functools.lru_cache(maxsize=1024)
def _node_id(identity_public_key: bytes) -> str:
    # Memoised: a node recomputes the same few IDs (its own, its peers') several times per
    # document (offer check, receipt, receiving keys), which cost the receiver about a
    # twentieth of its reactor thread's time per small document. A pure function of bytes.
    if len(identity_public_key) != 32:
        raise BadNodeID("an Ed25519 public key is 32 bytes")
    digest = hashlib.sha256(identity_public_key).digest()
    text = base64.b32encode(digest).decode("ascii").rstrip("=")
    with_checks = "".join(
        chunk + _luhn32(chunk) for chunk in (text[i:i + _GROUP] for i in range(0, 52, _GROUP))
    )
    return "-".join(with_checks[i:i + 7] for i in range(0, 56, 7))


def parse_node_id(text: str) -> str:
    """Accept a node ID typed by a person and return it in canonical form.

    Dashes, spaces and case are forgiven; a wrong check character is not.
    """
    if not isinstance(text, str):
        raise BadNodeID("node ID must be text")
    return _parse_node_id(text)


@functools.lru_cache(maxsize=1024)
def _parse_node_id(text: str) -> str:
    # Memoised like ``_node_id``: every envelope, receipt and status names the same few IDs,
    # and their check characters were recomputed for each (a bounded cache; a refusal is
    # never cached, so it is raised again each time).
    compact = re.sub(r"[\s-]", "", text)
    # Check ASCII before upper(): str.upper() maps some non-ASCII letters onto ASCII ones
    # ("\u0131" -> "I", "\ufb00" -> "FF"), which would let look-alike text pass as an ID.
    if not compact.isascii():
        raise BadNodeID(f"{text!r} is not a node ID (it contains non-Latin characters)")
    compact = compact.upper()
    if len(compact) != 56 or any(c not in ALPHABET for c in compact):
        raise BadNodeID(f"{text!r} is not a node ID (56 base32 characters in 8 groups)")
    for i in range(4):
        group = compact[i * 14:(i + 1) * 14]
        if _luhn32(group[:_GROUP]) != group[_GROUP]:
            raise BadNodeID(f"check character {i + 1} of node ID {text!r} does not match; "
                            "was it read or typed correctly?")
    return "-".join(compact[i:i + 7] for i in range(0, 56, 7))


def short_id(node_id: str) -> str:
    """The first group, for logs and tables where the whole ID does not fit."""
    return node_id.split("-", 1)[0]
