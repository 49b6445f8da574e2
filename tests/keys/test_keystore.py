"""Keys at rest: the encrypted keystore file, its permissions, and where the passphrase comes
from."""
import hashlib
import json
import os
import stat
import unicodedata

import nacl.bindings
import nacl.exceptions
import nacl.pwhash
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lienthong.keys import jws
from lienthong.keys.errors import InsecurePermissions, KeystoreError, WrongPassphrase
from lienthong.keys.identity import generate_node_keys, rotate_encryption_key
from lienthong.keys.keystore import (
    check_private_permissions,
    load_keystore,
    passphrase_bytes,
    read_passphrase,
    save_keystore,
)

NOW = "2025-03-01T08:00:00Z"
PASS = b"m\xe1\xba\xadt kh\xe1\xba\xa9u"  # "mật khẩu" in UTF-8
FAST = {"opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN,
        "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN}


def _rng(seed: bytes):
    """Deterministic random_bytes for reproducible keys."""
    counter = iter(range(10 ** 9))
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(8, "big")).digest(n)


@pytest.fixture()
def keys():
    node = generate_node_keys("so-tu-phap", now=NOW, random_bytes=_rng(b"node"))
    return rotate_encryption_key(node, now="2025-06-01T00:00:00Z", random_bytes=_rng(b"r"))


@pytest.fixture()
def path(tmp_path):
    return tmp_path / "private" / "keystore.json"


@pytest.fixture()
def saved(path, keys):
    save_keystore(path, keys, PASS, **FAST)
    return path


def _edit(path, change):
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_round_trip(saved, keys):
    """Every piece of private material comes back exactly."""
    loaded = load_keystore(saved, PASS)
    assert loaded.name == keys.name and loaded.created == keys.created
    assert bytes(loaded.identity) == bytes(keys.identity)
    assert [(k.kid, bytes(k.private), k.created) for k in loaded.encryption] == \
           [(k.kid, bytes(k.private), k.created) for k in keys.encryption]
    assert loaded.tls_key.private_bytes_raw() == keys.tls_key.private_bytes_raw()
    assert loaded.tls_cert_der == keys.tls_cert_der
    assert loaded.node_id == keys.node_id


def test_file_format_header(saved):
    """The file is versioned JSON with the documented header and no plaintext key material."""
    document = json.loads(saved.read_text())
    assert set(document) == {"format", "version", "kdf", "aead", "nonce", "ciphertext"}
    assert (document["format"], document["version"], document["aead"]) == \
           ("lienthong-keystore", 1, "xchacha20poly1305-ietf")
    assert document["kdf"]["alg"] == "argon2id"
    assert document["kdf"]["opslimit"] == FAST["opslimit"]
    assert len(jws.b64url_decode(document["kdf"]["salt"])) == 16
    assert len(jws.b64url_decode(document["nonce"])) == 24
    assert "so-tu-phap" not in saved.read_text()


def test_associated_data_is_the_header(saved):
    """The AEAD's associated data is the canonical header: it opens with it and not without."""
    document = json.loads(saved.read_text())
    header = {k: v for k, v in document.items() if k != "ciphertext"}
    key = nacl.pwhash.argon2id.kdf(32, PASS, jws.b64url_decode(header["kdf"]["salt"]), **FAST)
    ciphertext = jws.b64url_decode(document["ciphertext"])
    nonce = jws.b64url_decode(header["nonce"])
    decrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt
    assert json.loads(decrypt(ciphertext, jws.canonical_json(header), nonce, key))["v"] == 1
    with pytest.raises(nacl.exceptions.CryptoError):
        decrypt(ciphertext, b"", nonce, key)


def test_modes_after_save(saved):
    """The keystore is 0600 and the directory save created is 0700, whatever the umask."""
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(saved.parent).st_mode) == 0o700


def test_modes_with_permissive_umask(path, keys):
    """Even with umask 000 the file and directory are private."""
    old = os.umask(0)
    try:
        save_keystore(path, keys, PASS, **FAST)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_save_refuses_shared_directory(tmp_path, keys):
    """An existing directory open to others is refused, not silently tightened."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    with pytest.raises(InsecurePermissions, match="chmod 700"):
        save_keystore(shared / "keystore.json", keys, PASS, **FAST)
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755
    assert list(shared.iterdir()) == []


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o666])
def test_group_or_world_accessible_file_refused(saved, mode):
    """A keystore readable or writable by others is refused, naming file, mode and fix."""
    os.chmod(saved, mode)
    with pytest.raises(InsecurePermissions) as info:
        load_keystore(saved, PASS)
    message = str(info.value)
    assert str(saved) in message and f"{mode:04o}" in message and f"chmod 600 {saved}" in message


def test_read_only_file_accepted(saved):
    """Mode 0400 is as private as 0600."""
    os.chmod(saved, 0o400)
    assert load_keystore(saved, PASS).name == "so-tu-phap"


@pytest.mark.parametrize("mode", [0o750, 0o701, 0o770, 0o755])
def test_open_directory_refused(saved, mode):
    """A keystore directory that others can list, enter or write is refused."""
    os.chmod(saved.parent, mode)
    with pytest.raises(InsecurePermissions, match=f"chmod 700 {saved.parent}"):
        load_keystore(saved, PASS)


def test_wrong_passphrase(saved):
    """Another passphrase raises WrongPassphrase."""
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        load_keystore(saved, b"not it")


@pytest.mark.parametrize("change", [
    lambda d: d["kdf"].update(opslimit=d["kdf"]["opslimit"] + 1),
    lambda d: d["kdf"].update(memlimit=d["kdf"]["memlimit"] * 2),
    lambda d: d["kdf"].update(salt=jws.b64url_encode(bytes(16))),
    lambda d: d.update(nonce=jws.b64url_encode(bytes(24))),
])
def test_tampered_header_reports_like_wrong_passphrase(saved, change):
    """A changed KDF setting, salt or nonce fails exactly as a wrong passphrase does."""
    _edit(saved, change)
    with pytest.raises(WrongPassphrase):
        load_keystore(saved, PASS)


def test_tampered_ciphertext_byte(saved):
    """Flipping one ciphertext byte fails authentication."""
    def flip(document):
        raw = bytearray(jws.b64url_decode(document["ciphertext"]))
        raw[len(raw) // 2] ^= 0x01
        document["ciphertext"] = jws.b64url_encode(bytes(raw))
    _edit(saved, flip)
    with pytest.raises(WrongPassphrase):
        load_keystore(saved, PASS)


def test_truncated_file(saved):
    """A file cut short is reported as damaged, not as a wrong passphrase."""
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(KeystoreError, match="damaged or truncated") as info:
        load_keystore(saved, PASS)
    assert not isinstance(info.value, WrongPassphrase)


def test_truncated_ciphertext(saved):
    """Ciphertext cut short inside valid JSON fails authentication."""
    _edit(saved, lambda d: d.update(ciphertext=d["ciphertext"][:40]))
    with pytest.raises(WrongPassphrase):
        load_keystore(saved, PASS)


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(version=2), "version 2"),
    (lambda d: d.update(version="1"), "version '1'"),
    (lambda d: d.update(format="something-else"), "not a lienthong keystore"),
    (lambda d: d.update(aead="aes-256-gcm"), "cipher"),
    (lambda d: d["kdf"].update(alg="scrypt"), "argon2id"),
    (lambda d: d.update(extra=1), "fields"),
    (lambda d: d["kdf"].update(memlimit=2 ** 50), "memlimit"),
    (lambda d: d["kdf"].update(opslimit=0), "opslimit"),
    (lambda d: d.update(nonce="AAAA"), "nonce"),
    (lambda d: d.update(nonce="not base64!"), "base64url"),
    (lambda d: d.update(ciphertext=""), "too short"),
])
def test_unknown_or_damaged_header(saved, change, words):
    """Unknown versions, formats, ciphers, fields and absurd KDF settings name what is wrong."""
    _edit(saved, change)
    with pytest.raises(KeystoreError, match=words) as info:
        load_keystore(saved, PASS)
    assert not isinstance(info.value, WrongPassphrase)


def test_duplicate_header_fields_refused(saved):
    """A header with a member given twice is refused."""
    text = saved.read_text().replace('{"aead"', '{"version":1,"aead"', 1)
    saved.write_text(text)
    with pytest.raises(KeystoreError, match="duplicate"):
        load_keystore(saved, PASS)


def test_missing_keystore(tmp_path):
    """A missing keystore tells the operator to run lienthong init."""
    with pytest.raises(KeystoreError, match="run lienthong init"):
        load_keystore(tmp_path / "nowhere.json", PASS)


def test_directory_instead_of_file(tmp_path):
    """A directory at the keystore path is refused."""
    os.chmod(tmp_path, 0o700)
    (tmp_path / "ks").mkdir()
    with pytest.raises(KeystoreError, match="regular file"):
        load_keystore(tmp_path / "ks", PASS)


def test_atomic_write_leaves_no_temp_file(saved, keys):
    """After saving twice, the directory holds the keystore and nothing else."""
    save_keystore(saved, keys, b"new passphrase", **FAST)
    assert [p.name for p in saved.parent.iterdir()] == ["keystore.json"]
    assert load_keystore(saved, b"new passphrase").node_id == keys.node_id


def test_failed_write_keeps_old_keystore(saved, keys, monkeypatch):
    """If the rename fails, the old keystore is intact and the temp file is removed."""
    before = saved.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_keystore(saved, keys, b"other", **FAST)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == ["keystore.json"]


def test_empty_passphrase_refused(path, keys):
    """An empty passphrase is refused when saving."""
    with pytest.raises(KeystoreError, match="empty"):
        save_keystore(path, keys, b"", **FAST)
    assert not path.exists()


def test_check_private_permissions_follows_symlink_directory(saved, tmp_path):
    """A symlink to the keystore in an open directory is refused (others could swap it)."""
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    link = open_dir / "keystore.json"
    link.symlink_to(saved)
    with pytest.raises(InsecurePermissions, match=str(open_dir)):
        check_private_permissions(link)


# --- read_passphrase ------------------------------------------------------------------------

def _secret_file(directory, text: bytes, mode=0o600):
    path = directory / "pass"
    path.write_bytes(text)
    os.chmod(path, mode)
    return path


def test_env_comes_first(tmp_path):
    """LIENTHONG_PASSPHRASE wins over a file and a systemd credential."""
    file = _secret_file(tmp_path, b"from file\n")
    assert read_passphrase(env={"LIENTHONG_PASSPHRASE": "from env"}, passphrase_file=file,
                           credentials_dir=str(tmp_path)) == b"from env"


def test_file_comes_second(tmp_path):
    """Without the variable, the file is used, with one trailing newline stripped."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "lienthong-passphrase").write_bytes(b"from creds")
    file = _secret_file(tmp_path, b"from file\n\n")
    assert read_passphrase(env={}, passphrase_file=file,
                           credentials_dir=str(creds)) == b"from file\n"


def test_crlf_stripped(tmp_path):
    """A Windows line ending is one newline too."""
    file = _secret_file(tmp_path, b"secret\r\n")
    assert read_passphrase(env={}, passphrase_file=file, credentials_dir=None) == b"secret"


def test_systemd_credential_third(tmp_path):
    """Without variable or file, $CREDENTIALS_DIRECTORY/lienthong-passphrase is used."""
    (tmp_path / "lienthong-passphrase").write_bytes(b"from creds\n")
    assert read_passphrase(env={}, passphrase_file=None,
                           credentials_dir=str(tmp_path)) == b"from creds"


def test_nothing_found_returns_none(tmp_path):
    """With no source the caller must prompt (None)."""
    assert read_passphrase(env={"OTHER": "x"}, passphrase_file=None, credentials_dir=None) is None
    assert read_passphrase(env={}, passphrase_file=None, credentials_dir=str(tmp_path)) is None


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o606])
def test_open_passphrase_file_refused(tmp_path, mode):
    """A passphrase file others can read or write is refused."""
    file = _secret_file(tmp_path, b"secret", mode)
    with pytest.raises(InsecurePermissions, match="chmod 600"):
        read_passphrase(env={}, passphrase_file=file, credentials_dir=None)


def test_read_only_passphrase_file_accepted(tmp_path):
    """Mode 0400 is accepted."""
    file = _secret_file(tmp_path, b"secret", 0o400)
    assert read_passphrase(env={}, passphrase_file=file, credentials_dir=None) == b"secret"


def test_missing_or_empty_sources_refused(tmp_path):
    """A named but missing file, an empty file or an empty variable is an error, not 'no
    passphrase'."""
    with pytest.raises(KeystoreError, match="does not exist"):
        read_passphrase(env={}, passphrase_file=tmp_path / "nope", credentials_dir=None)
    with pytest.raises(KeystoreError, match="empty"):
        read_passphrase(env={}, passphrase_file=_secret_file(tmp_path, b"\n"), credentials_dir=None)
    with pytest.raises(KeystoreError, match="empty"):
        read_passphrase(env={"LIENTHONG_PASSPHRASE": ""}, passphrase_file=None,
                        credentials_dir=None)


def test_passphrase_is_nfc_normalized(tmp_path):
    """Decomposed and precomposed Vietnamese spellings give the same passphrase bytes."""
    composed = "mật khẩu"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert passphrase_bytes(decomposed) == passphrase_bytes(composed) == composed.encode()
    file = _secret_file(tmp_path, decomposed.encode())
    assert read_passphrase(env={}, passphrase_file=file, credentials_dir=None) == composed.encode()
    assert read_passphrase(env={"LIENTHONG_PASSPHRASE": decomposed}, passphrase_file=None,
                           credentials_dir=None) == composed.encode()


def test_nfd_typed_passphrase_opens_nfc_keystore(saved):
    """A keystore saved with one input method opens with the other's spelling."""
    typed = unicodedata.normalize("NFD", PASS.decode())
    assert load_keystore(saved, passphrase_bytes(typed)).name == "so-tu-phap"


def test_file_owned_by_another_user_refused(saved, monkeypatch):
    """A keystore owned by someone other than the running user (or root) is refused."""
    owner = os.stat(saved).st_uid
    if owner == 0:  # running as root: give the files to an ordinary uid first
        owner = 12345
        os.chown(saved, owner, -1)
        os.chown(saved.parent, owner, -1)
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.raises(InsecurePermissions, match=f"belongs to user id {owner}"):
        load_keystore(saved, PASS)
    monkeypatch.setattr(os, "geteuid", lambda: owner)
    assert load_keystore(saved, PASS).name == "so-tu-phap"


# Integers stay small (or absurdly large) so no example makes Argon2id take real memory or time.
_VALUES = (st.none() | st.booleans() | st.integers(-2, 2 ** 14)
           | st.sampled_from([2 ** 40, 2 ** 70])
           | st.floats() | st.text(max_size=40)
           | st.lists(st.integers(), max_size=2)
           | st.dictionaries(st.text(max_size=8), st.integers(), max_size=2))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(["format", "version", "aead", "nonce", "ciphertext", "kdf",
                              "kdf.alg", "kdf.opslimit", "kdf.memlimit", "kdf.salt"]),
       value=_VALUES)
def test_any_header_value_only_raises_keystore_errors(saved, where, value):
    """Any value in any header field gives a KeystoreError (or WrongPassphrase), never a crash."""
    original = saved.read_text()
    def change(document):
        if where.startswith("kdf."):
            document["kdf"][where[4:]] = value
        else:
            document[where] = value
    _edit(saved, change)
    try:
        load_keystore(saved, PASS)
    except KeystoreError:
        pass
    finally:
        saved.write_text(original)
