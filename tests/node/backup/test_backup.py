"""Backups: what goes in, what comes back out, and every way a backup file is refused."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile
from pathlib import Path

import nacl.pwhash
import pytest

from lienthong.config.loader import load_config
from lienthong.config.schema import StoreSection
from lienthong.keys import jws
from lienthong.keys.card import make_card
from lienthong.keys.identity import generate_node_keys
from lienthong.keys.keystore import load_keystore
from lienthong.node.backup.archive import make_backup, restore_backup
from lienthong.node.backup.format import (
    SIGNATURE_TYP,
    BackupError,
    WrongBackupPassphrase,
    encrypt_archive,
    verify_backup,
    write_backup,
)
from lienthong.node.identity.provision import create_node_home
from lienthong.node.identity.rotation import keystore_limits
from lienthong.node.spool.own_documents import spool_bytes
from lienthong.node.store.database import open_store
from tests.node.storehelp import make_dispatch, make_peer

T0 = "2026-03-01T08:00:00Z"
T1 = "2026-03-01T09:00:00Z"
PASSPHRASE = b"mat khau so tu phap"
SECRET_TEXT = b"Noi dung mat: ke hoach thanh tra 2026"


@pytest.fixture
def config(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A node home with a peer, a queued dispatch and its spool folder."""
    new = create_node_home(tmp_path / "so-tu-phap", name="so-tu-phap", display_name=None,
                           listen="127.0.0.1:7701", advertise=None, passphrase=None, now=T0,
                           kdf="minimal")
    store = open_store(new.config.store.url)
    try:
        peer = make_peer("ubnd-tinh", 7)
        store.add_peer(peer, "card-token", T0)
        store.add_dispatch(make_dispatch(1, (peer.node_id,)), T0)
    finally:
        store.close()
    spool_bytes(new.config.spool, message_id=f"{1:032x}", name="ke-hoach.txt",
                data=SECRET_TEXT, target="ubnd-tinh", meta={"kind": "document"}, now=T0)
    return new.config


def passphrase_of(config) -> bytes:  # type: ignore[no-untyped-def]
    return config.keystore.passphrase_file.read_bytes().strip()


def files(home: Path, *folders: str) -> dict[str, bytes]:
    out = {}
    for folder in folders:
        for path in sorted((home / folder).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(home))] = path.read_bytes()
    return out


def test_restore_gives_back_keys_config_store_and_spool_with_private_modes(
        config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Everything backed up comes back byte for byte (the store by content), 0600/0700."""
    archive = tmp_path / "backup.lt"
    info = make_backup(config, archive, passphrase_of(config), now=T1)
    assert archive.stat().st_mode & 0o777 == 0o600
    target = tmp_path / "restored"
    restored, keys = restore_backup(archive, target, passphrase_of(config))
    assert restored.node_id == keys.node_id == info.node_id
    assert files(target, "keys", "spool") == files(config.home, "keys", "spool")
    assert (target / "lienthong.toml").read_bytes() == config.source.read_bytes()
    assert (target / "so-tu-phap.card").read_bytes() == config.card_path.read_bytes()
    for private in ("keys", "state", "spool", "tmp"):
        assert (target / private).stat().st_mode & 0o777 == 0o700, private
    for path in [target / "keys" / "keystore.json", target / "state" / "lienthong.db",
                 *(p for p in (target / "spool").rglob("*") if p.is_file())]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    store = open_store(load_config(target).store.url)
    try:
        assert [r.peer.name for r in store.list_peers()] == ["ubnd-tinh"]
        assert store.get_dispatch(f"{1:032x}").state == "sending"
    finally:
        store.close()


def test_backup_file_reveals_nothing_and_says_whose_it_is(config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Document text and key material are not readable in the file; the header and the
    signature name the node."""
    archive = tmp_path / "backup.lt"
    make_backup(config, archive, passphrase_of(config), now=T1)
    data = archive.read_bytes()
    assert SECRET_TEXT not in data and b"ubnd-tinh" not in data
    assert passphrase_of(config) not in data
    info, _ = verify_backup(archive)
    assert info.name == "so-tu-phap" and info.created == T1


def test_a_later_change_is_not_in_an_earlier_backup(config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The store is copied as of the backup, with another connection open to it."""
    archive = tmp_path / "backup.lt"
    live = open_store(config.store.url)
    try:
        make_backup(config, archive, passphrase_of(config), now=T1)
        live.add_dispatch(make_dispatch(2, (make_peer("ubnd-tinh", 7).node_id,)), T1)
    finally:
        live.close()
    target = tmp_path / "restored"
    restore_backup(archive, target, passphrase_of(config))
    store = open_store(load_config(target).store.url)
    try:
        assert store.get_dispatch(f"{2:032x}") is None
        assert store.get_dispatch(f"{1:032x}") is not None
    finally:
        store.close()


def test_wrong_passphrase_is_refused_and_writes_nothing(config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Another passphrase does not open the backup, and the target home stays empty."""
    archive = tmp_path / "backup.lt"
    make_backup(config, archive, passphrase_of(config), now=T1)
    target = tmp_path / "restored"
    with pytest.raises(WrongBackupPassphrase, match="wrong passphrase"):
        restore_backup(archive, target, b"not the passphrase")
    assert not (target / "lienthong.toml").exists()
    assert list(tmp_path.glob(".restored.restore-*")) == []


@pytest.mark.parametrize("where", ["header", "signature", "ciphertext", "end"])
def test_any_altered_byte_is_refused_before_decrypting(config, tmp_path, where: str) -> None:  # type: ignore[no-untyped-def]
    """A changed byte anywhere (or a cut-off end) fails the signature check."""
    archive = tmp_path / "backup.lt"
    make_backup(config, archive, passphrase_of(config), now=T1)
    data = bytearray(archive.read_bytes())
    first = data.index(b"\n")
    second = data.index(b"\n", first + 1)
    if where == "end":
        data = data[:-5]
    else:
        position = {"header": data.index(b'"created":"') + 14, "signature": second - 10,
                    "ciphertext": second + 100}[where]
        data[position] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(BackupError):
        verify_backup(archive)
    with pytest.raises(BackupError):
        restore_backup(archive, tmp_path / "restored", passphrase_of(config))
    assert not (tmp_path / "restored" / "lienthong.toml").exists()


def test_a_card_swapped_for_another_node_is_refused(config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The signature must verify under the key of the card the header carries."""
    archive = tmp_path / "backup.lt"
    make_backup(config, archive, passphrase_of(config), now=T1)
    header_line, rest = archive.read_bytes().split(b"\n", 1)
    header = jws.strict_json_object(header_line)
    stranger = generate_node_keys("so-tu-phap", now=T0)
    header["card"] = make_card(stranger, addresses=[], now=T0).strip()
    header["node_id"] = stranger.node_id
    archive.write_bytes(jws.canonical_json(header) + b"\n" + rest)
    with pytest.raises(BackupError, match="does not verify"):
        verify_backup(archive)


def test_an_existing_node_is_not_overwritten_without_force(config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Restoring over a node home is refused; with force the clerks' folders stay."""
    archive = tmp_path / "backup.lt"
    make_backup(config, archive, passphrase_of(config), now=T1)
    inbox_file = config.inbox / "ubnd-tinh" / "quyet-dinh.pdf"
    inbox_file.parent.mkdir(parents=True)
    inbox_file.write_bytes(b"%PDF")
    (config.spool / "stray").mkdir()
    with pytest.raises(BackupError, match="already holds a node"):
        restore_backup(archive, config.home, passphrase_of(config))
    restore_backup(archive, config.home, passphrase_of(config), force=True)
    assert inbox_file.read_bytes() == b"%PDF"
    assert not (config.spool / "stray").exists()
    assert (config.spool / f"{1:032x}" / "payload").read_bytes() == SECRET_TEXT


def test_an_archive_with_a_path_outside_the_home_is_refused(config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A correctly signed and encrypted archive naming ../ is still refused at restore."""
    keys = load_keystore(config.keystore.path, passphrase_of(config))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    plain = tmp_path / "evil.tar"
    plain.write_bytes(buffer.getvalue())
    opslimit, memlimit = keystore_limits(config.keystore.path)
    salt = os.urandom(16)
    header = {"format": "lienthong-backup", "version": 1, "created": T1,
              "node_id": keys.node_id, "name": keys.name,
              "card": config.card_path.read_text().strip(), "cipher":
              "xchacha20poly1305-secretstream", "chunk": 65536,
              "kdf": {"alg": "argon2id", "opslimit": opslimit, "memlimit": memlimit,
                      "salt": jws.b64url_encode(salt)}}
    line = jws.canonical_json(header)
    key = nacl.pwhash.argon2id.kdf(32, passphrase_of(config), salt, opslimit=opslimit,
                                   memlimit=memlimit)
    digest, size = encrypt_archive(plain, tmp_path / "evil.sealed", key,
                                   hashlib.sha256(line).digest())
    signature = jws.sign(keys.identity, SIGNATURE_TYP, {
        "v": 1, "header_sha256": hashlib.sha256(line).hexdigest(),
        "ciphertext_sha256": digest, "ciphertext_size": size}, kid=keys.node_id)
    write_backup(tmp_path / "evil.lt", line, signature, tmp_path / "evil.sealed")
    verify_backup(tmp_path / "evil.lt")  # it is a genuine, signed backup...
    target = tmp_path / "nested" / "restored"
    with pytest.raises(BackupError, match="unsafe path"):  # ...whose content is refused
        restore_backup(tmp_path / "evil.lt", target, passphrase_of(config))
    assert not (tmp_path / "nested" / "escaped.txt").exists()


def test_a_store_that_is_not_sqlite_is_refused(config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A PostgreSQL store is backed up with PostgreSQL's tools; lienthong says so."""
    other = dataclasses.replace(config, store=StoreSection(url="postgresql://db/lienthong"))
    with pytest.raises(BackupError, match="postgresql"):
        make_backup(other, tmp_path / "backup.lt", passphrase_of(config), now=T1)
    assert not (tmp_path / "backup.lt").exists()
