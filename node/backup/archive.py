"""``lienthong backup`` / ``restore``: an encrypted, signed archive of a node's keys, config,
store and spool, consistent even while the node runs.

Theory of operation
-------------------
**What is in it.** ``lienthong.toml``; every file in the keystore folder (``keys/``: the
keystore, the passphrase file if any, a rotation's previous/next keystore); the peer card;
``state/lienthong.db`` (a snapshot, below) and the small state files beside it; and ``spool/``,
the sealed documents still waiting for receipts (without them, a restored node could not
resend what it had queued). The clerks' folders (``inbox/ outbox/ sent/ failed/``) are not
included: they are the office's documents and belong to its ordinary file backup.

**Consistency while running.** The daemon always changes the database first and the spool
files after (a spool folder is removed only once the store says sent or failed; a new one is
recorded only after it is sealed), and it recovers from a crash between the two at start-up.
So a backup is taken as a crash would leave things: we take the store's write lock
(``BEGIN IMMEDIATE``; the daemon's writers wait, ``busy_timeout``), hard-link the spool tree
into a private temp folder (no data is copied, so the lock is held for milliseconds), copy the
database with SQLite's online backup API from the same connection, and release the lock. The
daemon's own crash recovery then completes whatever was half-done at that instant.

**Format** (version 1), three parts::

    <header: canonical JSON, one line>\\n
    <signature: JWS compact, typ lienthong-backup/1, one line>\\n
    <secretstream header (24 bytes)> <chunk>... (the last one tagged FINAL)

The header names the format, version, node, card, creation time, KDF (Argon2id with its
salt and limits: those of the keystore) and chunk size. The payload is a tar stream encrypted
with XChaCha20-Poly1305 secretstream under ``Argon2id(keystore passphrase, salt)``, each
chunk with AD = SHA-256(header line). The signature, by the node's identity key, covers
SHA-256 of the header line and of the ciphertext, and the ciphertext's size. ``restore``
checks the card and the signature before it derives any key, then decrypts into a temp file,
requires FINAL exactly at the end, and only then writes into the new home.

**No duplicates after a restore.** Message IDs are 128-bit random, never derived from a
counter, so a restored node cannot reuse one. Documents delivered after the backup look
queued again in the restored store; resending them makes the peer answer HAVE with the receipt
it already issued (reception is idempotent on the message ID), and no second copy appears.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import nacl.exceptions
import nacl.pwhash
import nacl.signing
import nacl.utils
from sqlalchemy.engine import make_url

from lienthong.config.loader import CONFIG_FILE_NAME
from lienthong.config.schema import NodeConfig
from lienthong.keys import jws
from lienthong.keys.card import read_card
from lienthong.keys.errors import KeysError
from lienthong.keys.identity import NodeKeys, check_time
from lienthong.keys.keystore import load_keystore
from lienthong.node.backup.format import (
    CHUNK,
    CIPHER,
    FORMAT,
    SIGNATURE_TYP,
    VERSION,
    BackupError,
    BackupInfo,
    ParsedBackup,
    decrypt_archive,
    derive_key,
    encrypt_archive,
    verify_backup,
    write_backup,
)
from lienthong.node.core.access import AccessPolicy
from lienthong.node.core.home import PRIVATE_FOLDERS, make_folders, removed_on_failure
from lienthong.node.identity.rotation import keystore_limits

_ALLOWED_TOP = ("keys", "state", "spool")


# -- making a backup --------------------------------------------------------------------------

def _sqlite_path(config: NodeConfig) -> Path:
    url = make_url(config.store.url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise BackupError("lienthong backup copies a SQLite store only; back up "
                          f"{url.get_backend_name()} with that database's own tools")
    return Path(url.database)


def _inside(home: Path, path: Path, what: str) -> PurePosixPath:
    try:
        return PurePosixPath(Path(path).resolve().relative_to(home.resolve()).as_posix())
    except ValueError:
        raise BackupError(f"the {what} {path} is outside the node home {home}; lienthong "
                          "backup only archives what is inside the home") from None


def _link_tree(source: Path, target: Path) -> None:
    """Mirror ``source`` into ``target`` with hard links (copies across file systems)."""
    for folder, _dirs, files in os.walk(source):
        rel = Path(folder).relative_to(source)
        (target / rel).mkdir(mode=0o700, exist_ok=True)
        for name in files:
            src = Path(folder) / name
            try:
                os.link(src, target / rel / name, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed since the walk listed it: the store says why
            except OSError:
                try:
                    shutil.copy2(src, target / rel / name, follow_symlinks=False)
                except FileNotFoundError:
                    continue


def _snapshot(config: NodeConfig, work: Path) -> None:
    """Database and spool as of one instant, under the store's write lock."""
    database = _sqlite_path(config)
    if not database.exists():
        raise BackupError(f"there is no store at {database}")
    # The write lock is held by one connection while a second one reads the pages: SQLite's
    # backup cannot read through a connection that has a write transaction open (it waits
    # for itself), while in WAL mode a reader runs beside a writer.
    lock = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        try:
            if config.spool.exists():
                _link_tree(config.spool, work / "spool")
            source = sqlite3.connect(database, timeout=30)
            target = sqlite3.connect(work / "lienthong.db")
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
        finally:
            lock.execute("ROLLBACK")
    finally:
        lock.close()


def _members(config: NodeConfig, work: Path) -> Iterator[tuple[Path, PurePosixPath]]:
    home = config.home
    yield config.source, _inside(home, config.source, "configuration")
    yield config.card_path, _inside(home, config.card_path, "peer card")
    key_dir = config.keystore.path.parent
    rel_keys = _inside(home, key_dir, "keystore folder")
    for path in sorted(key_dir.iterdir()):
        if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
            yield path, rel_keys / path.name
    if config.keystore.passphrase_file is not None:
        passphrase_file = Path(config.keystore.passphrase_file)
        if passphrase_file.parent.resolve() != key_dir.resolve():
            yield passphrase_file, _inside(home, passphrase_file, "passphrase file")
    database = _sqlite_path(config)
    rel_db = _inside(home, database, "store")
    yield work / "lienthong.db", rel_db
    for path in sorted(database.parent.iterdir()):
        if (path.is_file() and not path.is_symlink() and not path.name.startswith(".")
                and not path.name.startswith(database.name)):
            yield path, rel_db.parent / path.name
    spool = work / "spool"
    if spool.exists():
        for folder, _dirs, files in sorted(os.walk(spool)):
            for name in sorted(files):
                path = Path(folder) / name
                yield path, PurePosixPath("spool") / path.relative_to(spool).as_posix()


def _tar(config: NodeConfig, work: Path, out: BinaryIO) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for path, name in _members(config, work):
            info = archive.gettarinfo(str(path), arcname=str(name))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as handle:
                archive.addfile(info, handle)


def make_backup(config: NodeConfig, destination: Path, passphrase: bytes, *, now: str,
                random_bytes: Callable[[int], bytes] = nacl.utils.random) -> BackupInfo:
    """Write an encrypted, signed backup of this node to ``destination`` (mode 0600)."""
    check_time(now)
    node_keys = load_keystore(config.keystore.path, passphrase)  # also checks the passphrase
    card = read_card(config.card_path.read_text(encoding="utf-8"))
    if card.node_id != node_keys.node_id:
        raise BackupError(f"the card {config.card_path} is not this keystore's node")
    opslimit, memlimit = keystore_limits(config.keystore.path)
    salt = random_bytes(nacl.pwhash.argon2id.SALTBYTES)
    header = {"format": FORMAT, "version": VERSION, "created": now, "node_id": card.node_id,
              "name": card.name, "card": card.token, "cipher": CIPHER, "chunk": CHUNK,
              "kdf": {"alg": "argon2id", "opslimit": opslimit, "memlimit": memlimit,
                      "salt": jws.b64url_encode(salt)}}
    header_line = jws.canonical_json(header)
    config.tmp.mkdir(mode=0o700, exist_ok=True)
    work = config.tmp / f"backup-{random_bytes(8).hex()}"
    work.mkdir(mode=0o700)
    try:
        _snapshot(config, work)
        plain = work / "archive.tar"
        with open(plain, "wb") as out:
            _tar(config, work, out)
        sealed = work / "archive.sealed"
        key = derive_key(passphrase, salt, opslimit, memlimit)
        digest, size = encrypt_archive(plain, sealed, key, hashlib.sha256(header_line).digest())
        signature = jws.sign(node_keys.identity, SIGNATURE_TYP, {
            "v": 1, "header_sha256": hashlib.sha256(header_line).hexdigest(),
            "ciphertext_sha256": digest, "ciphertext_size": size}, kid=node_keys.node_id)
        write_backup(destination, header_line, signature, sealed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BackupInfo(node_id=card.node_id, name=card.name, created=now, size=size)


# -- restoring --------------------------------------------------------------------------------

def _check_member(member: tarfile.TarInfo, config_name: str) -> PurePosixPath:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or not name.parts:
        raise BackupError(f"the backup holds an unsafe path {member.name!r}")
    if not member.isfile():
        raise BackupError(f"the backup holds {member.name!r}, which is not a regular file")
    top = name.parts[0]
    if len(name.parts) == 1:
        if name.name != config_name and not name.name.endswith(".card"):
            raise BackupError(f"the backup holds an unexpected file {member.name!r}")
    elif top not in _ALLOWED_TOP:
        raise BackupError(f"the backup holds an unexpected folder {top!r}")
    return name


def _extract(tar_path: Path, home: Path) -> list[PurePosixPath]:
    written = []
    with tarfile.open(tar_path, mode="r|") as archive:
        for member in archive:
            name = _check_member(member, CONFIG_FILE_NAME)
            target = home.joinpath(*name.parts)
            private = name.parts[0] in PRIVATE_FOLDERS
            parent = target.parent
            parent.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o755)
            if private:
                for folder in [parent, *parent.parents]:
                    if folder == home:
                        break
                    os.chmod(folder, 0o700)
            source = archive.extractfile(member)
            if source is None:
                raise BackupError(f"cannot read {member.name!r} from the backup")
            temp = target.with_name(f".lienthong-{target.name}.restore")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o600 if private else 0o644)
            os.replace(temp, target)
            written.append(name)
    return written


def _clear_for_force(home: Path) -> None:
    """Remove what a restore replaces (the clerks' folders are left alone)."""
    for name in ("keys", "state", "spool", "tmp"):
        shutil.rmtree(home / name, ignore_errors=True)
    (home / CONFIG_FILE_NAME).unlink(missing_ok=True)
    for card in home.glob("*.card"):
        card.unlink()


def restore_backup(source: Path, home: Path, passphrase: bytes, *,
                   force: bool = False) -> tuple[BackupInfo, NodeKeys]:
    """Verify, decrypt and unpack ``source`` into ``home``; return what was restored.

    Refuses a home that already holds a node unless ``force``. The keystore restored must open
    with the same passphrase and be the node the backup's card names.
    """
    info, parsed = verify_backup(source)
    home = Path(home).absolute()
    if (home / CONFIG_FILE_NAME).exists() and not force:
        raise BackupError(f"{home} already holds a node ({CONFIG_FILE_NAME} exists); restore "
                          "into an empty folder, or add --force to replace its keys, "
                          "configuration, store and spool")
    kdf = parsed.header["kdf"]
    try:
        salt = jws.b64url_decode(kdf["salt"])
        key = derive_key(passphrase, salt, int(kdf["opslimit"]), int(kdf["memlimit"]))
    except (KeysError, KeyError, TypeError, ValueError, nacl.exceptions.CryptoError) as exc:
        raise BackupError(f"the backup's key derivation settings are not usable: {exc}") from exc
    if force:
        return _restore(source, parsed, key, info, home, passphrase, force=True)
    # Into a new or empty folder: a restore that fails (a wrong passphrase, a damaged archive,
    # another node's keystore) leaves that folder as it found it.
    with removed_on_failure(home):
        return _restore(source, parsed, key, info, home, passphrase, force=False)


def _restore(source: Path, parsed: ParsedBackup, key: bytes, info: BackupInfo, home: Path,
             passphrase: bytes, *, force: bool) -> tuple[BackupInfo, NodeKeys]:
    home.mkdir(parents=True, exist_ok=True)
    scratch = home.parent / f".{home.name}.restore-{nacl.utils.random(6).hex()}"
    scratch.mkdir(mode=0o700)
    try:
        tar_path = scratch / "archive.tar"
        with open(tar_path, "wb") as out:
            decrypt_archive(source, parsed, key, out)
        if force:
            _clear_for_force(home)
        make_folders(home, AccessPolicy())  # the configured group is given at the next start
        try:
            _extract(tar_path, home)
        except tarfile.TarError as exc:
            raise BackupError(f"the backup's archive is damaged: {exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    from lienthong.config.loader import load_config
    config = load_config(home)
    node_keys = load_keystore(config.keystore.path, passphrase)
    if node_keys.node_id != info.node_id:
        raise BackupError(f"the restored keystore is node {node_keys.node_id}, but the backup "
                          f"was signed as {info.node_id}")
    for name in PRIVATE_FOLDERS:
        if (home / name).exists():
            os.chmod(home / name, 0o700)
    return info, node_keys
