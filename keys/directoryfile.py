"""Directory files: a province's peer cards, bundled and vouched for by a coordinating office.

Theory of operation: enrolling from a card needs an out-of-band check (the phone call of
keys.card), and a full mesh of N offices needs N·(N-1)/2 of them. A directory file replaces
those with N-1 calls: the coordinating office checks each office's node ID by phone, as it
does anyway, then signs one index naming every office with its node ID and the SHA-256 of its
card. An office that has enrolled the coordinator (with its own phone call) and accepts it as
coordinator can then enrol the rest from the file.

The file is text: the signed index (a JWS of type ``lienthong-directory/1``, signed by the
coordinator's identity key) on the first line, then the cards, one token a line. The index is
small (about 200 bytes an office), so the 1 MiB token limit allows thousands of offices, and
each card keeps its own self-signature, checked by :func:`keys.card.read_card` as for a card
file. Trust is layered, never merged: the index signature says *the coordinator vouches that
office "x" has node ID y and this card*; the card's signature says *the card is intact*. A
card whose digest or node ID is not the one the index names, or whose self-signature fails,
is refused by the name the index gives it, and the other entries are unaffected.

Nothing here touches files or the store: :func:`read_directory_file` takes the text and the
coordinator's public key, and returns every entry with its card or the reason it is refused.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nacl.signing

from lienthong.keys import jws
from lienthong.keys.card import PeerCard, read_card
from lienthong.keys.errors import BadCard, DirectoryFileError, InvalidValue, KeysError
from lienthong.keys.identity import NodeKeys, check_node_name, check_time
from lienthong.keys.nodeid import parse_node_id

DIRECTORY_TYP = "lienthong-directory/1"
#: Far more offices than a province has; an index this long is still well under 1 MiB.
MAX_ENTRIES = 4000
#: The index (at most 1 MiB) and the cards (at most 32 KiB each, in practice about 1.5 KiB).
MAX_FILE_CHARS = 64 * 1024 * 1024
_INDEX_FIELDS = frozenset(["v", "name", "node_id", "created", "entries"])
_ENTRY_FIELDS = frozenset(["name", "node_id", "card_sha256"])
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One office the index names: its card when the card checks out, else why not
    (``problem`` in English; ``error`` says it with a template and fields, for the catalog)."""

    name: str
    node_id: str
    card: PeerCard | None
    problem: str | None = None
    error: KeysError | None = None


@dataclass(frozen=True, slots=True)
class DirectoryFile:
    """A directory file whose index signature verified under the coordinator's key."""

    issuer_name: str
    issuer_node_id: str
    created: str
    entries: tuple[DirectoryEntry, ...]
    #: Cards in the file that the index does not name (never enrolled; shown to the operator).
    unlisted: int


def card_digest(token: str) -> str:
    """The SHA-256 (hex) of a card token, as the index records it."""
    return hashlib.sha256(token.strip().encode("ascii")).hexdigest()


def make_directory_file(keys: NodeKeys, cards: Sequence[PeerCard], *, now: str) -> str:
    """The text of a directory file listing ``cards`` (checked cards), signed by ``keys``.

    Two cards with the same name or node ID make no sense in one province and are refused, so
    a coordinator cannot publish an ambiguous file by mistake.
    """
    check_time(now)
    if not cards:
        raise DirectoryFileError("a directory file lists at least one office")
    if len(cards) > MAX_ENTRIES:
        raise DirectoryFileError("a directory file lists at most {most} offices",
                                 most=MAX_ENTRIES)
    _refuse_duplicates([(card.name, card.node_id) for card in cards])
    ordered = sorted(cards, key=lambda card: card.name)
    index = {
        "v": 1,
        "name": keys.name,
        "node_id": keys.node_id,
        "created": now,
        "entries": [{"name": card.name, "node_id": card.node_id,
                     "card_sha256": card_digest(card.token)} for card in ordered],
    }
    token = jws.sign(keys.identity, DIRECTORY_TYP, index, kid=keys.node_id)
    return "\n".join([token, *(card.token for card in ordered)]) + "\n"


def directory_signer(text: str | bytes) -> str:
    """The node ID the file claims signed it (not yet verified): whose key to look up."""
    return _index(_lines(text)[0]).kid or ""


def read_directory_file(text: str | bytes, coordinator_node_id: str,
                        coordinator_key: nacl.signing.VerifyKey) -> DirectoryFile:
    """Verify the index under the coordinator's identity key, then check each card.

    Raises DirectoryFileError when the file as a whole cannot be used (not a directory file,
    signed by another office, a signature that does not verify, a malformed or ambiguous
    index). Problems with one card are reported in its entry instead.
    """
    lines = _lines(text)
    decoded = _index(lines[0])
    if decoded.kid != coordinator_node_id:
        raise DirectoryFileError("this directory file is signed by node {kid!r}, not by the "
                                 "coordinating office ({coordinator})", kid=decoded.kid,
                                 coordinator=coordinator_node_id)
    try:
        index = jws.verify_decoded(decoded, coordinator_key)
    except KeysError as exc:
        raise DirectoryFileError("this directory file was changed after the coordinating office "
                                 "signed it (its signature does not verify); ask the "
                                 "coordinating office to send its directory file again"
                                 ) from exc
    listed = _check_index(index, coordinator_node_id)
    by_digest = {card_digest(line): line for line in lines[1:]}
    entries = tuple(_entry(name, node_id, by_digest.get(digest))
                    for name, node_id, digest in listed)
    named = {digest for _, _, digest in listed}
    return DirectoryFile(issuer_name=index["name"], issuer_node_id=coordinator_node_id,
                         created=index["created"], entries=entries,
                         unlisted=len(set(by_digest) - named))


def _lines(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise DirectoryFileError("this file is not a lienthong directory file (it is not "
                                     "text); ask the coordinating office to send its "
                                     "directory file again") from None
    if not isinstance(text, str):
        raise DirectoryFileError("a directory file must be text")
    if len(text) > MAX_FILE_CHARS:
        raise DirectoryFileError("this file is too large to be a lienthong directory file "
                                 "(more than {most} characters)", most=MAX_FILE_CHARS)
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if not lines:
        raise DirectoryFileError("this directory file is empty; ask the coordinating office to "
                                 "send its directory file again")
    return lines


def _index(token: str) -> jws.Decoded:
    try:
        return jws.decode(token, DIRECTORY_TYP)
    except KeysError as exc:
        raise DirectoryFileError("this file is not a lienthong directory file ({error}); ask the "
                                 "coordinating office to send its directory file again",
                                 error=exc) from exc


def _check_index(index: dict[str, Any], signer: str) -> list[tuple[str, str, str]]:
    """The (name, node ID, card digest) of each entry of a verified index, checked."""
    if set(index) != _INDEX_FIELDS or type(index.get("v")) is not int or index["v"] != 1:
        raise DirectoryFileError("this directory file has an unknown layout or version; it may "
                                 "come from a newer lienthong. Ask the coordinating office to "
                                 "send its directory file again")
    try:
        check_node_name(index["name"])
        check_time(index["created"])
        if index["node_id"] != signer:
            raise InvalidValue("the index names another office than the one that signed it")
    except InvalidValue as exc:
        raise DirectoryFileError("this directory file's header is not usable: {error}",
                                 error=exc) from exc
    entries = index["entries"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_ENTRIES:
        raise DirectoryFileError("a directory file lists from 1 to {most} offices",
                                 most=MAX_ENTRIES)
    listed = []
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or set(entry) != _ENTRY_FIELDS:
            raise DirectoryFileError("entry {position} of the directory file is not well formed",
                                     position=position)
        try:
            name = check_node_name(entry["name"])
            node_id = parse_node_id(entry["node_id"])
        except KeysError as exc:
            raise DirectoryFileError("entry {position} of the directory file is not usable: "
                                     "{error}", position=position, error=exc) from exc
        digest = entry["card_sha256"]
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise DirectoryFileError("entry {position} ({name}) of the directory file has no "
                                     "usable card digest", position=position, name=name)
        listed.append((name, node_id, digest))
    _refuse_duplicates([(name, node_id) for name, node_id, _ in listed])
    return listed


def _refuse_duplicates(pairs: Sequence[tuple[str, str]]) -> None:
    names: set[str] = set()
    node_ids: set[str] = set()
    for name, node_id in pairs:
        if name in names:
            raise DirectoryFileError("the directory file lists office {name!r} twice; ask the "
                                     "coordinating office to send its directory file again",
                                     name=name)
        if node_id in node_ids:
            raise DirectoryFileError("the directory file lists node {node_id} twice (the second "
                                     "time as {name!r}); ask the coordinating office to send "
                                     "its directory file again", node_id=node_id, name=name)
        names.add(name)
        node_ids.add(node_id)


def _entry(name: str, node_id: str, token: str | None) -> DirectoryEntry:
    if token is None:
        return _unusable(name, node_id, DirectoryFileError(
            "its card is missing from the file, or was changed after the directory was signed"))
    try:
        card = read_card(token)
    except BadCard as exc:
        return _unusable(name, node_id, exc)
    if card.node_id != node_id or card.name != name:
        return _unusable(name, node_id, DirectoryFileError(
            "its card is for {card_name} ({card_node_id}), not the office the directory names",
            card_name=card.name, card_node_id=card.node_id))
    return DirectoryEntry(name, node_id, card)


def _unusable(name: str, node_id: str, error: KeysError) -> DirectoryEntry:
    return DirectoryEntry(name, node_id, None, str(error), error)
