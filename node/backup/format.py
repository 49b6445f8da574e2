"""The backup file format (version 1): writing and checking the signed, encrypted container.

``lienthong.node.backup.archive`` decides what goes in (a consistent snapshot of keys, config,
store and spool)
and how a restore lays it out; this module only knows the bytes::

    <header: canonical JSON, one line>\n
    <signature: JWS compact, typ lienthong-backup/1, one line>\n
    <secretstream header (24 bytes)> <chunk>... (the last one tagged FINAL)

so that the format can be read, checked (``lienthong restore`` checks the signature before it
asks for the passphrase) and tested apart from the archive it carries. The full description is
in node/backup/archive.py.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import nacl.bindings as sodium
import nacl.exceptions
import nacl.pwhash
import nacl.signing

from lienthong.keys import jws
from lienthong.keys.card import PeerCard, read_card
from lienthong.keys.errors import KeysError
from lienthong.node.core.errors import NodeError
from lienthong.node.core.home import write_private_stream

FORMAT = "lienthong-backup"
VERSION = 1
SIGNATURE_TYP = "lienthong-backup/1"
CIPHER = "xchacha20poly1305-secretstream"
CHUNK = 64 * 1024
MAX_LINE = 64 * 1024
_HEADER_FIELDS = frozenset({"format", "version", "created", "node_id", "name", "card", "kdf",
                            "cipher", "chunk"})
_ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_HEADERBYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#: Top-level names an archive may hold; anything else is refused at restore.


class BackupError(NodeError):
    """A backup cannot be made, or a file is not a backup this node can restore."""

    code = "backup-error"


class WrongBackupPassphrase(BackupError):
    """The passphrase does not open this backup (or its encrypted part was altered)."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup holds, as signed."""

    node_id: str
    name: str
    created: str
    size: int


def derive_key(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(32, passphrase, salt, opslimit=opslimit, memlimit=memlimit)


def encrypt_archive(plain: Path, sealed: Path, key: bytes, ad: bytes) -> tuple[str, int]:
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    stream_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    digest = hashlib.sha256(stream_header)
    size = len(stream_header)
    with open(plain, "rb") as source, open(sealed, "wb") as out:
        out.write(stream_header)
        chunk = source.read(CHUNK)
        while True:
            following = source.read(CHUNK)
            tag = _TAG_MESSAGE if following else _TAG_FINAL
            piece = sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, ad, tag)
            out.write(piece)
            digest.update(piece)
            size += len(piece)
            if not following:
                break
            chunk = following
    return digest.hexdigest(), size


def write_backup(destination: Path, header_line: bytes, signature: str, sealed: Path) -> None:
    """The backup file (0600, written atomically): header line, signature line, ciphertext."""
    def write(out: BinaryIO) -> None:
        out.write(header_line + b"\n" + signature.encode("ascii") + b"\n")
        with open(sealed, "rb") as source:
            shutil.copyfileobj(source, out, 1 << 20)

    write_private_stream(Path(destination), write)


# -- reading a backup -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ParsedBackup:
    header: dict[str, Any]
    header_line: bytes
    card: PeerCard
    offset: int  # where the ciphertext starts


def _read_line(handle: BinaryIO, what: str) -> bytes:
    line = handle.readline(MAX_LINE + 1)
    if not line.endswith(b"\n") or len(line) > MAX_LINE:
        raise BackupError(f"this file is not a lienthong backup (its {what} is missing or "
                          "too long)")
    return line[:-1]


def verify_backup(path: Path) -> tuple[BackupInfo, ParsedBackup]:
    """Check the header, the card and the signature over the whole file; decrypt nothing."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        header_line = _read_line(handle, "header")
        try:
            header = jws.strict_json_object(header_line)
        except KeysError as exc:
            raise BackupError(f"{path} is not a lienthong backup: {exc}") from exc
        if header.get("format") != FORMAT:
            raise BackupError(f"{path} is not a lienthong backup")
        if header.get("version") != VERSION or set(header) != _HEADER_FIELDS:
            raise BackupError(f"{path} is a lienthong backup of version "
                              f"{header.get('version')!r}; this lienthong reads version "
                              f"{VERSION}")
        if header["cipher"] != CIPHER or header["chunk"] != CHUNK:
            raise BackupError(f"{path} uses an unknown cipher or chunk size")
        try:
            card = read_card(header["card"])
        except KeysError as exc:
            raise BackupError(f"the card inside {path} is not valid: {exc}") from exc
        if card.node_id != header["node_id"]:
            raise BackupError(f"{path} names node {header['node_id']} but holds the card of "
                              f"{card.node_id}")
        signature = _read_line(handle, "signature").decode("ascii", "replace")
        try:
            signed = jws.verify(signature, nacl.signing.VerifyKey(card.identity_public),
                                SIGNATURE_TYP)
        except KeysError as exc:
            raise BackupError(f"the signature of {path} does not verify under the key of "
                              f"{card.node_id}: the file was altered ({exc})") from exc
        offset = handle.tell()
        digest = hashlib.sha256()
        size = 0
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    expected = {"v": 1, "header_sha256": hashlib.sha256(header_line).hexdigest(),
                "ciphertext_sha256": digest.hexdigest(), "ciphertext_size": size}
    if signed != expected:
        raise BackupError(f"{path} was altered or truncated after it was signed (its content "
                          "does not match the signature)")
    info = BackupInfo(node_id=card.node_id, name=card.name, created=header["created"],
                      size=size)
    return info, ParsedBackup(header=header, header_line=header_line, card=card, offset=offset)


def decrypt_archive(path: Path, parsed: ParsedBackup, key: bytes, out: BinaryIO) -> None:
    ad = hashlib.sha256(parsed.header_line).digest()
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    with open(path, "rb") as handle:
        handle.seek(parsed.offset)
        stream_header = handle.read(_HEADERBYTES)
        if len(stream_header) != _HEADERBYTES:
            raise BackupError(f"{path} is truncated")
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, stream_header, key)
        first = True
        while True:
            piece = handle.read(CHUNK + _ABYTES)
            if not piece:
                raise BackupError(f"{path} ends before its last chunk (truncated)")
            try:
                chunk, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, piece, ad)
            except nacl.exceptions.CryptoError:
                if first:
                    raise WrongBackupPassphrase("wrong passphrase for this backup (it must be "
                                                "the keystore passphrase of the node when the "
                                                "backup was made)") from None
                raise BackupError(f"{path} is damaged (a chunk does not decrypt)") from None
            first = False
            out.write(chunk)
            if tag == _TAG_FINAL:
                if handle.read(1):
                    raise BackupError(f"{path} has data after its final chunk")
                return
            if len(piece) != CHUNK + _ABYTES:
                raise BackupError(f"{path} is truncated")
