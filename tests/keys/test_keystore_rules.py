"""The keystore's refusals word for word, and each limit at its boundary.

These messages are what `lienthong init`, `lienthong run` and `lienthong keys` print to the IT
staff when the keystore cannot be opened (docs/keys.md, docs/operations.md): each names the
file and what fixes it, so they are pinned as written.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.pwhash
import pytest

from lienthong.keys import jws
from lienthong.keys.errors import InsecurePermissions, KeystoreError, WrongPassphrase
from lienthong.keys.identity import NodeKeys, generate_node_keys
from lienthong.keys.keystore import (
    MAX_KEYSTORE_BYTES,
    MAX_MEMLIMIT,
    MAX_OPSLIMIT,
    check_private_file,
    check_private_permissions,
    load_keystore,
    passphrase_bytes,
    read_passphrase,
    save_keystore,
)

NOW = "2025-03-01T08:00:00Z"
PASS = b"passphrase"
ARGON = nacl.pwhash.argon2id
FAST = {"opslimit": ARGON.OPSLIMIT_MIN, "memlimit": ARGON.MEMLIMIT_MIN}


def _rng(seed: bytes) -> Any:
    counter = iter(range(10 ** 9))
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(8, "big")).digest(n)


@pytest.fixture(scope="module")
def keys() -> NodeKeys:
    return generate_node_keys("so-tu-phap", now=NOW, random_bytes=_rng(b"keystore-rules"))


@pytest.fixture()
def saved(tmp_path: Path, keys: NodeKeys) -> Path:
    path = tmp_path / "private" / "keystore.json"
    save_keystore(path, keys, PASS, **FAST)
    return path


def refusal(path: Path, passphrase: bytes = PASS, error: type[Exception] = KeystoreError) -> str:
    with pytest.raises(error) as caught:
        load_keystore(path, passphrase)
    return str(caught.value)


def edit(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def reseal(path: Path, secret: dict[str, Any] | bytes) -> None:
    """Encrypt ``secret`` again under the file's own header, as a damaged writer would."""
    document = json.loads(path.read_text())
    header = {name: value for name, value in document.items() if name != "ciphertext"}
    kdf = header["kdf"]
    key = ARGON.kdf(32, PASS, jws.b64url_decode(kdf["salt"]), opslimit=kdf["opslimit"],
                    memlimit=kdf["memlimit"])
    plaintext = secret if isinstance(secret, bytes) else jws.canonical_json(secret)
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, jws.canonical_json(header), jws.b64url_decode(header["nonce"]), key)
    path.write_text(json.dumps(dict(header, ciphertext=jws.b64url_encode(ciphertext))))


def secret_of(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    header = {name: value for name, value in document.items() if name != "ciphertext"}
    kdf = header["kdf"]
    key = ARGON.kdf(32, PASS, jws.b64url_decode(kdf["salt"]), opslimit=kdf["opslimit"],
                    memlimit=kdf["memlimit"])
    plaintext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
        jws.b64url_decode(document["ciphertext"]), jws.canonical_json(header),
        jws.b64url_decode(header["nonce"]), key)
    return dict(json.loads(plaintext))


# -- what is written ---------------------------------------------------------------------------

def test_the_written_file_is_canonical_json_with_the_documented_header(saved: Path,
                                                                       keys: NodeKeys) -> None:
    raw = saved.read_bytes()
    document = json.loads(raw)
    assert raw == jws.canonical_json(document) + b"\n"
    assert document["kdf"]["opslimit"] == ARGON.OPSLIMIT_MIN
    assert document["kdf"]["memlimit"] == ARGON.MEMLIMIT_MIN
    assert (document["format"], document["version"], document["aead"]) == \
        ("lienthong-keystore", 1, "xchacha20poly1305-ietf")
    assert document["kdf"]["alg"] == "argon2id"
    assert len(jws.b64url_decode(document["kdf"]["salt"])) == 16
    assert len(jws.b64url_decode(document["nonce"])) == 24
    secret = secret_of(saved)
    assert secret["v"] == 1 and secret["name"] == "so-tu-phap" and secret["created"] == NOW
    assert secret["node_id"] == keys.node_id
    assert jws.b64url_decode(secret["identity_seed"]) == bytes(keys.identity)
    assert secret["encryption"] == [
        {"kid": key.kid, "private": jws.b64url_encode(bytes(key.private)),
         "created": key.created} for key in keys.encryption]
    assert jws.b64url_decode(secret["tls_cert"]) == keys.tls_cert_der
    loaded = load_keystore(saved, PASS)
    assert loaded.tls_spki_sha256 == keys.tls_spki_sha256
    assert [key.kid for key in loaded.encryption] == [key.kid for key in keys.encryption]


def test_a_fresh_directory_is_made_private(tmp_path: Path, keys: NodeKeys) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "a" / "b" / "keystore.json"
        save_keystore(path, keys, PASS, **FAST)
    finally:
        os.umask(old)
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    assert os.stat(path).st_mode & 0o777 == 0o600


# -- KDF limits and passphrases ----------------------------------------------------------------

def test_kdf_limits_are_inclusive_and_worded(tmp_path: Path, keys: NodeKeys) -> None:
    path = tmp_path / "k" / "keystore.json"

    def save_refusal(**limits: Any) -> str:
        with pytest.raises(KeystoreError) as caught:
            save_keystore(path, keys, PASS, **{**FAST, **limits})
        return str(caught.value)

    assert save_refusal(opslimit=MAX_OPSLIMIT + 1) == \
        f"keystore KDF opslimit 17 is outside {ARGON.OPSLIMIT_MIN}..16"
    assert save_refusal(opslimit=ARGON.OPSLIMIT_MIN - 1) == \
        f"keystore KDF opslimit {ARGON.OPSLIMIT_MIN - 1} is outside {ARGON.OPSLIMIT_MIN}..16"
    assert save_refusal(opslimit=2.0) == f"keystore KDF opslimit 2.0 is outside " \
        f"{ARGON.OPSLIMIT_MIN}..16"
    assert save_refusal(memlimit=MAX_MEMLIMIT + 1) == \
        f"keystore KDF memlimit {MAX_MEMLIMIT + 1} is outside {ARGON.MEMLIMIT_MIN}..{MAX_MEMLIMIT}"
    assert save_refusal(memlimit=ARGON.MEMLIMIT_MIN - 1) == \
        f"keystore KDF memlimit {ARGON.MEMLIMIT_MIN - 1} is outside " \
        f"{ARGON.MEMLIMIT_MIN}..{MAX_MEMLIMIT}"
    assert save_refusal(memlimit=True) == \
        f"keystore KDF memlimit True is outside {ARGON.MEMLIMIT_MIN}..{MAX_MEMLIMIT}"
    save_keystore(path, keys, PASS, opslimit=ARGON.OPSLIMIT_MIN, memlimit=ARGON.MEMLIMIT_MIN)
    assert load_keystore(path, PASS).name == "so-tu-phap"


def test_the_upper_kdf_limits_are_accepted_when_read(saved: Path) -> None:
    """The limits are checked before Argon2id runs: the highest allowed pass that check (and
    then fail as a wrong passphrase, since the header is the associated data)."""
    edit(saved, lambda d: d["kdf"].update(opslimit=MAX_OPSLIMIT, memlimit=ARGON.MEMLIMIT_MIN))
    assert refusal(saved, error=WrongPassphrase) == \
        "wrong passphrase, or the keystore was altered"


def test_passphrase_refusals(saved: Path, tmp_path: Path, keys: NodeKeys) -> None:
    assert refusal(saved, "text") == "the passphrase must be bytes (see passphrase_bytes)"  # type: ignore[arg-type]
    assert refusal(saved, b"") == "the passphrase is empty; an empty passphrase protects nothing"
    with pytest.raises(KeystoreError) as caught:
        save_keystore(tmp_path / "x" / "k.json", keys, b"", **FAST)
    assert str(caught.value) == "the passphrase is empty; an empty passphrase protects nothing"
    assert refusal(saved, b"other", WrongPassphrase) == \
        "wrong passphrase, or the keystore was altered"


# -- permissions -------------------------------------------------------------------------------

def test_permission_refusals_say_how_to_fix(saved: Path) -> None:
    os.chmod(saved, 0o640)
    assert refusal(saved, error=InsecurePermissions) == (
        f"The file {saved} has mode 0640, so other users can read or change it; lienthong "
        f"refuses to use it. Fix it with: chmod 600 {saved}")
    os.chmod(saved, 0o600)
    os.chmod(saved.parent, 0o701)
    assert refusal(saved, error=InsecurePermissions) == (
        f"The folder {saved.parent} has mode 0701, so other users can read or change it; "
        f"lienthong refuses to use it. Fix it with: chmod 700 {saved.parent}")
    os.chmod(saved.parent, 0o700)
    os.chmod(saved, 0o400)
    assert load_keystore(saved, PASS).name == "so-tu-phap"


def test_each_forbidden_bit_is_refused(saved: Path) -> None:
    for bit in (0o040, 0o020, 0o010, 0o004, 0o002, 0o001):
        with pytest.raises(InsecurePermissions):
            check_private_file(saved, os.stat_result((0o100600 | bit,) + (0,) * 9))
    check_private_file(saved, os.stat_result((0o100600,) + (0,) * 9))


def test_owner_refusal(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    st = os.stat_result((0o100600, 0, 0, 0, 2000) + (0,) * 5)
    with pytest.raises(InsecurePermissions) as caught:
        check_private_file(saved, st)
    assert str(caught.value) == (f"{saved} belongs to user id 2000, not to the user running "
                                 f"lienthong (1000); fix it with: chown 1000 {saved}")
    check_private_file(saved, os.stat_result((0o100600, 0, 0, 0, 1000) + (0,) * 5))
    check_private_file(saved, os.stat_result((0o100600, 0, 0, 0, 0) + (0,) * 5))  # root's


def test_missing_or_not_a_file(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    with pytest.raises(KeystoreError) as caught:
        check_private_permissions(tmp_path / "none.json")
    assert str(caught.value) == f"no keystore at {tmp_path / 'none.json'}; run lienthong init"
    (tmp_path / "dir").mkdir()
    assert refusal(tmp_path / "dir") == \
        f"{tmp_path / 'dir'} is not a regular file, so it cannot be the keystore"


def test_a_symlinked_keystore_checks_the_target_directory(saved: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "open"
    elsewhere.mkdir(mode=0o755)
    os.chmod(elsewhere, 0o755)
    os.chmod(tmp_path, 0o700)
    target = elsewhere / "keystore.json"
    os.rename(saved, target)
    link_dir = tmp_path / "private"
    (link_dir / "keystore.json").symlink_to(target)
    with pytest.raises(InsecurePermissions) as caught:
        check_private_permissions(link_dir / "keystore.json")
    assert str(caught.value).startswith(f"The folder {elsewhere} has mode 0755")


# -- reading a damaged file --------------------------------------------------------------------

def test_size_limit(saved: Path) -> None:
    text = saved.read_text().rstrip("\n")
    saved.write_text(text + " " * (MAX_KEYSTORE_BYTES - len(text)))
    assert saved.stat().st_size == MAX_KEYSTORE_BYTES
    assert load_keystore(saved, PASS).name == "so-tu-phap"
    saved.write_text(text + " " * (MAX_KEYSTORE_BYTES + 1 - len(text)))
    assert refusal(saved) == (f"keystore {saved} is larger than {MAX_KEYSTORE_BYTES} bytes; "
                              "it is not a lienthong keystore")


def test_header_refusals_are_worded(saved: Path) -> None:
    where = f"keystore {saved}"
    original = saved.read_text()

    def refused_after(change: Any) -> str:
        saved.write_text(original)
        edit(saved, change)
        return refusal(saved)

    saved.write_text("[1]")
    assert refusal(saved) == (f"{where} is not a lienthong keystore (damaged or truncated?): "
                              "JSON value must be an object")
    assert refused_after(lambda d: d.update(format="x")) == \
        f"{where} is not a lienthong keystore (format is 'x', expected 'lienthong-keystore')"
    assert refused_after(lambda d: d.update(version=True)) == \
        f"{where} has version True; this lienthong reads version 1 only (was it written by a " \
        "newer lienthong?)"
    assert refused_after(lambda d: d.pop("version")) == \
        f"{where} has version None; this lienthong reads version 1 only (was it written by a " \
        "newer lienthong?)"
    assert refused_after(lambda d: d.update(extra=1)) == \
        f"{where} has fields ['aead', 'ciphertext', 'extra', 'format', 'kdf', 'nonce', " \
        "'version'], expected ['aead', 'ciphertext', 'format', 'kdf', 'nonce', 'version']"
    assert refused_after(lambda d: d.update(aead="aes")) == \
        f"{where} uses cipher 'aes'; only 'xchacha20poly1305-ietf' is known"
    kdf_rule = f"{where}: 'kdf' must be argon2id with opslimit, memlimit and salt"
    assert refused_after(lambda d: d.update(kdf=[1])) == kdf_rule
    assert refused_after(lambda d: d["kdf"].pop("salt")) == kdf_rule
    assert refused_after(lambda d: d["kdf"].update(alg="scrypt")) == kdf_rule
    assert refused_after(lambda d: d["kdf"].update(salt=7)) == \
        f"{where}: field 'salt' is not base64url"
    assert refused_after(lambda d: d["kdf"].update(salt="AAAA")) == \
        f"{where}: salt must be 16 bytes"
    assert refused_after(lambda d: d.update(nonce="AAAA")) == f"{where}: nonce must be 24 bytes"
    assert refused_after(lambda d: d.update(nonce="A=")) == \
        f"{where}: field 'nonce' is not base64url"
    assert refused_after(lambda d: d.update(ciphertext=jws.b64url_encode(b"x" * 15))) == \
        f"{where}: ciphertext is too short to hold anything (truncated?)"


def test_a_sixteen_byte_ciphertext_is_long_enough_to_try(saved: Path) -> None:
    edit(saved, lambda d: d.update(ciphertext=jws.b64url_encode(b"x" * 16)))
    assert refusal(saved, error=WrongPassphrase) == "wrong passphrase, or the keystore was altered"


def test_decrypted_content_refusals(saved: Path) -> None:
    where = f"keystore {saved}"
    good = secret_of(saved)
    reseal(saved, b"not json")
    assert refusal(saved) == f"{where} decrypted, but its content is not JSON"
    reseal(saved, dict(good, v=2))
    assert refusal(saved) == f"{where} decrypted, but its content is not a version 1 key set"
    reseal(saved, {k: v for k, v in good.items() if k != "tls_cert"})
    assert refusal(saved) == f"{where} decrypted, but its content is not a version 1 key set"
    reseal(saved, dict(good, encryption={"kid": 1}))
    assert refusal(saved) == f"{where}: 'encryption' must be a list"
    reseal(saved, dict(good, identity_seed=5))
    assert refusal(saved) == f"{where}: field 'identity_seed' is not base64url"
    reseal(saved, dict(good, tls_key_pkcs8=jws.b64url_encode(b"junk")))
    assert refusal(saved).startswith(f"{where} decrypted, but its key material is invalid: ")
    reseal(saved, dict(good, node_id="AAAAAAA"))
    assert refusal(saved) == (f"{where} decrypted, but its identity key does not give the "
                              "recorded node ID 'AAAAAAA'")
    reseal(saved, good)
    assert load_keystore(saved, PASS).node_id == good["node_id"]


def test_a_non_ed25519_tls_key_is_refused(saved: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    other = X25519PrivateKey.from_private_bytes(b"\x01" * 32).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    reseal(saved, dict(secret_of(saved), tls_key_pkcs8=jws.b64url_encode(other)))
    assert refusal(saved) == f"keystore {saved}: the TLS key is not Ed25519"


# -- passphrase sources ------------------------------------------------------------------------

def write_secret(path: Path, raw: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(raw)
    os.chmod(path, mode)
    return path


def test_passphrase_file_rules(tmp_path: Path) -> None:
    def source_refusal(**kw: Any) -> str:
        with pytest.raises(KeystoreError) as caught:
            read_passphrase(**{"env": {}, "passphrase_file": None, "credentials_dir": None,
                               **kw})
        return str(caught.value)

    assert source_refusal(env={"LIENTHONG_PASSPHRASE": ""}) == \
        "LIENTHONG_PASSPHRASE is set but empty"
    missing = tmp_path / "missing"
    assert source_refusal(passphrase_file=missing) == f"passphrase file {missing} does not exist"
    empty = write_secret(tmp_path / "empty", b"\n")
    assert source_refusal(passphrase_file=empty) == f"passphrase file {empty} is empty"
    big = write_secret(tmp_path / "big", b"x" * (64 * 1024 + 1))
    assert source_refusal(passphrase_file=big) == f"passphrase file {big} is larger than 64 KiB"
    most = write_secret(tmp_path / "most", b"x" * (64 * 1024))
    assert read_passphrase(env={}, passphrase_file=most, credentials_dir=None) == \
        b"x" * (64 * 1024)
    a_dir = tmp_path / "a-dir"
    a_dir.mkdir()
    assert source_refusal(passphrase_file=a_dir) == \
        f"passphrase file {a_dir} is not a regular file"
    assert source_refusal(passphrase_file=empty / "x") == \
        f"cannot read passphrase file {empty / 'x'}: Not a directory"
    open_file = write_secret(tmp_path / "open", b"secret", 0o644)
    with pytest.raises(InsecurePermissions):
        read_passphrase(env={}, passphrase_file=open_file, credentials_dir=None)


def test_passphrase_file_endings_and_bytes(tmp_path: Path) -> None:
    def from_file(raw: bytes) -> bytes | None:
        return read_passphrase(env={}, passphrase_file=write_secret(tmp_path / "p", raw),
                               credentials_dir=None)

    assert from_file(b"abc\r\n") == b"abc"
    assert from_file(b"abc\n") == b"abc"
    assert from_file(b"abc\n\n") == b"abc\n"
    assert from_file(b"abc\r") == b"abc\r"
    assert from_file(b"abc") == b"abc"
    assert from_file(b"\xff\xfe\n") == b"\xff\xfe"      # not text: the bytes as they are
    assert from_file("Thu\u031b\n".encode()) == "Thư".encode()


def test_credential_needs_no_private_mode_and_env_wins(tmp_path: Path) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    write_secret(credentials / "lienthong-passphrase", b"from systemd\n", 0o644)
    assert read_passphrase(env={}, passphrase_file=None, credentials_dir=str(credentials)) == \
        b"from systemd"
    assert read_passphrase(env={}, passphrase_file=None, credentials_dir="") is None
    assert read_passphrase(env={}, passphrase_file=None,
                           credentials_dir=str(tmp_path / "none")) is None
    assert read_passphrase(env={"LIENTHONG_PASSPHRASE": "Thu\u031b"}, passphrase_file=None,
                           credentials_dir=str(credentials)) == "Thư".encode()
    assert passphrase_bytes("\udcff") == b"\xff"


# -- found by mutation testing: each rule pinned where it acts ---------------------------------

def test_a_short_write_is_continued_until_every_byte_is_written(
        tmp_path: Path, keys: NodeKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:100])))
    path = tmp_path / "k" / "keystore.json"
    save_keystore(path, keys, PASS, **FAST)
    monkeypatch.undo()
    assert load_keystore(path, PASS).node_id == keys.node_id


def test_key_material_fields_are_named_when_not_base64url(saved: Path) -> None:
    where = f"keystore {saved}"
    good = secret_of(saved)
    reseal(saved, dict(good, tls_key_pkcs8=5))
    assert refusal(saved) == f"{where}: field 'tls_key_pkcs8' is not base64url"
    reseal(saved, dict(good, tls_cert=5))
    assert refusal(saved) == f"{where}: field 'tls_cert' is not base64url"
    reseal(saved, dict(good, encryption=[dict(good["encryption"][0], private=5)]))
    assert refusal(saved) == f"{where}: field 'private' is not base64url"
    edit(saved, lambda d: d.update(ciphertext=5))
    assert refusal(saved) == f"{where}: field 'ciphertext' is not base64url"


def test_an_open_passphrase_file_is_named_in_the_refusal(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "pass", b"secret", 0o640)
    with pytest.raises(InsecurePermissions) as caught:
        read_passphrase(env={}, passphrase_file=path, credentials_dir=None)
    assert str(caught.value) == (f"The file {path} has mode 0640, so other users can read or "
                                 f"change it; lienthong refuses to use it. Fix it with: "
                                 f"chmod 600 {path}")


def test_a_keystore_gone_or_unreadable_after_its_check(saved: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the permission check and the open (a file removed or replaced meanwhile)."""
    from lienthong.keys import keystore
    monkeypatch.setattr(keystore, "check_private_permissions", lambda path: None)
    gone = tmp_path / "gone.json"
    assert refusal(gone) == f"no keystore at {gone}; run lienthong init"
    folder = tmp_path / "folder.json"
    folder.mkdir()
    assert refusal(folder) == f"cannot read keystore {folder}: Is a directory"


def test_owners_are_checked_for_every_user_but_root(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1)
    with pytest.raises(InsecurePermissions):
        check_private_file(tmp_path, os.stat_result((0o100600, 0, 0, 0, 2000) + (0,) * 5))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    check_private_file(tmp_path, os.stat_result((0o100600, 0, 0, 0, 2000) + (0,) * 5))
    directory = tmp_path / "d"
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)
    owner = os.stat(directory).st_uid
    if owner == 0:                  # root's files are accepted: give it to an ordinary uid
        owner = 12345
        os.chown(directory, owner, -1)
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    from lienthong.keys.keystore import check_private_directory
    with pytest.raises(InsecurePermissions) as caught:
        check_private_directory(directory)
    assert str(caught.value) == (f"{directory} belongs to user id {owner}, not to the user "
                                 f"running lienthong ({owner + 1}); fix it with: "
                                 f"chown {owner + 1} {directory}")


def test_the_largest_memlimit_is_allowed() -> None:
    """Checked without running Argon2id with 4 GiB: the bound is inclusive."""
    from lienthong.keys.keystore import _check_kdf_limits
    _check_kdf_limits(ARGON.OPSLIMIT_MIN, MAX_MEMLIMIT)
    _check_kdf_limits(MAX_OPSLIMIT, ARGON.MEMLIMIT_MIN)
    with pytest.raises(KeystoreError):
        _check_kdf_limits(ARGON.OPSLIMIT_MIN, MAX_MEMLIMIT + 1)


def _peak_while(call: Any) -> int:
    import tracemalloc
    tracemalloc.start()
    try:
        call()
    except KeystoreError:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    """A 32 MiB (sparse) passphrase file or keystore is refused after reading only past its
    limit: the refusal costs no more memory than the limit."""
    os.chmod(tmp_path, 0o700)
    huge = tmp_path / "huge"
    with open(huge, "wb") as handle:
        handle.truncate(32 * 1024 * 1024)
    os.chmod(huge, 0o600)
    peak = _peak_while(lambda: read_passphrase(env={}, passphrase_file=huge,
                                               credentials_dir=None))
    assert peak < 4 * 1024 * 1024
    peak = _peak_while(lambda: load_keystore(huge, PASS))
    assert peak < 8 * 1024 * 1024
