"""The node's private keys at rest: one passphrase-encrypted, versioned JSON file.

Theory of operation (docs/keys-format.md §6). The file is a JSON object::

    {"format": "lienthong-keystore", "version": 1,
     "kdf": {"alg": "argon2id", "opslimit": N, "memlimit": N, "salt": b64url(16)},
     "aead": "xchacha20poly1305-ietf", "nonce": b64url(24), "ciphertext": b64url}

The key is Argon2id(passphrase, salt, opslimit, memlimit); the plaintext, the canonical JSON of
all private material, is sealed with XChaCha20-Poly1305 whose associated data is the canonical
JSON of the header (everything but ``ciphertext``). So any change to the header (a weaker KDF
setting, another nonce, another version) makes decryption fail exactly as a wrong passphrase
does: nobody can tell the two apart, and we do not pretend to.

The file and its directory must be private to the node's user (0600 / 0700), as ssh insists
for its keys; a keystore that others could read or replace is refused, with the chmod that
fixes it. Writes are atomic (temp file created 0600 with O_EXCL, fsync, rename, fsync of the
directory), so a crash leaves either the old keystore or the new one, never half of one.

Argon2id with the MODERATE limits takes about half a second and 256 MiB: callers inside the
node run it in a thread. Python cannot reliably wipe ``bytes`` from memory; we accept that.
"""
from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.pwhash
import nacl.signing
import nacl.utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lienthong.keys import jws
from lienthong.keys.errors import InsecurePermissions, KeysError, KeystoreError, WrongPassphrase
from lienthong.keys.identity import EncryptionKey, NodeKeys

FORMAT = "lienthong-keystore"
VERSION = 1
AEAD = "xchacha20poly1305-ietf"
KDF_ALG = "argon2id"
#: Refuse KDF settings beyond these before running Argon2id, so a tampered header cannot make
#: the node spend minutes or gigabytes; SENSITIVE (4 ops, 1 GiB) is within them.
MAX_OPSLIMIT = 16
MAX_MEMLIMIT = 4 * 1024 ** 3
MAX_KEYSTORE_BYTES = 1024 * 1024
PASSPHRASE_ENV = "LIENTHONG_PASSPHRASE"
CREDENTIAL_NAME = "lienthong-passphrase"

_argon2id = nacl.pwhash.argon2id
_HEADER_FIELDS = frozenset(["format", "version", "kdf", "aead", "nonce", "ciphertext"])
_KDF_FIELDS = frozenset(["alg", "opslimit", "memlimit", "salt"])
_SECRET_FIELDS = frozenset(["v", "name", "node_id", "created", "identity_seed", "encryption",
                            "tls_key_pkcs8", "tls_cert"])


# --- permissions ---------------------------------------------------------------------------

def _refuse_mode(path: Path, mode: int, forbidden: int, fix: str, what: str) -> None:
    if mode & forbidden:
        shown = f"{stat.S_IMODE(mode):04o}"
        if what == "file":
            raise InsecurePermissions("The file {path} has mode {mode}, so other users can read "
                                      "or change it; lienthong refuses to use it. Fix it with: "
                                      "{fix}", path=path, mode=shown, fix=fix)
        raise InsecurePermissions("The folder {path} has mode {mode}, so other users can read or "
                                  "change it; lienthong refuses to use it. Fix it with: {fix}",
                                  path=path, mode=shown, fix=fix)


def _check_owner(path: Path, st: os.stat_result) -> None:
    euid = os.geteuid()
    if euid != 0 and st.st_uid not in (euid, 0):
        raise InsecurePermissions(
            "{path} belongs to user id {owner}, not to the user running lienthong ({user}); "
            "fix it with: chown {user} {path}", path=path, owner=st.st_uid, user=euid)


def check_private_file(path: Path, st: os.stat_result) -> None:
    """Refuse a secret file that group or others may read or write (0600 or 0400 expected)."""
    _check_owner(path, st)
    _refuse_mode(path, st.st_mode, 0o077, f"chmod 600 {path}", "file")


def check_private_directory(path: Path) -> None:
    """Refuse a key directory that group or others may list, enter or write (0700 expected)."""
    st = os.stat(path)
    _check_owner(path, st)
    _refuse_mode(path, st.st_mode, 0o077, f"chmod 700 {path}", "directory")


def check_private_permissions(path: Path) -> None:
    """Refuse the keystore if it or its directory is open to group or others.

    A missing keystore raises KeystoreError telling the operator to run ``lienthong init``.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise KeystoreError("no keystore at {path}; run lienthong init", path=path) from None
    if not stat.S_ISREG(st.st_mode):
        raise KeystoreError("{path} is not a regular file, so it cannot be the keystore",
                            path=path)
    check_private_file(path, st)
    # Both the folder holding the name and the folder holding the file (if it is a symlink).
    for directory in dict.fromkeys([path.absolute().parent, Path(os.path.realpath(path)).parent]):
        check_private_directory(directory)


# --- writing -------------------------------------------------------------------------------

def _secret_payload(keys: NodeKeys) -> dict[str, Any]:
    tls_pkcs8 = keys.tls_key.private_bytes(serialization.Encoding.DER,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
    return {
        "v": 1,
        "name": keys.name,
        "node_id": keys.node_id,
        "created": keys.created,
        "identity_seed": jws.b64url_encode(bytes(keys.identity)),
        "encryption": [{"kid": key.kid, "private": jws.b64url_encode(bytes(key.private)),
                        "created": key.created} for key in keys.encryption],
        "tls_key_pkcs8": jws.b64url_encode(tls_pkcs8),
        "tls_cert": jws.b64url_encode(keys.tls_cert_der),
    }


def _ensure_private_directory(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    check_private_directory(directory)


def _write_atomically(path: Path, data: bytes, random_bytes: Callable[[int], bytes]) -> None:
    directory = path.parent
    temp = directory / f".{path.name}.{random_bytes(8).hex()}.tmp"
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_keystore(path: Path, keys: NodeKeys, passphrase: bytes, *,
                  opslimit: int = _argon2id.OPSLIMIT_MODERATE,
                  memlimit: int = _argon2id.MEMLIMIT_MODERATE,
                  random_bytes: Callable[[int], bytes] = nacl.utils.random) -> None:
    """Encrypt ``keys`` under ``passphrase`` and write them atomically to ``path`` (mode 0600).

    The directory is created 0700 if missing; an existing directory that group or others can
    open is refused (InsecurePermissions) rather than silently tightened, because it may be
    someone's home directory.
    """
    path = Path(path)
    _check_passphrase(passphrase)
    _check_kdf_limits(opslimit, memlimit)
    _ensure_private_directory(path.parent)
    salt = random_bytes(_argon2id.SALTBYTES)
    nonce = random_bytes(nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kdf": {"alg": KDF_ALG, "opslimit": opslimit, "memlimit": memlimit,
                "salt": jws.b64url_encode(salt)},
        "aead": AEAD,
        "nonce": jws.b64url_encode(nonce),
    }
    key = _argon2id.kdf(32, passphrase, salt, opslimit=opslimit, memlimit=memlimit)
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        jws.canonical_json(_secret_payload(keys)), jws.canonical_json(header), nonce, key)
    document = dict(header, ciphertext=jws.b64url_encode(ciphertext))
    _write_atomically(path, jws.canonical_json(document) + b"\n", random_bytes)


# --- reading -------------------------------------------------------------------------------

def _check_passphrase(passphrase: bytes) -> None:
    if not isinstance(passphrase, bytes):
        raise KeystoreError("the passphrase must be bytes (see passphrase_bytes)")
    if not passphrase:
        raise KeystoreError("the passphrase is empty; an empty passphrase protects nothing")


def _check_kdf_limits(opslimit: Any, memlimit: Any) -> None:
    if type(opslimit) is not int or not _argon2id.OPSLIMIT_MIN <= opslimit <= MAX_OPSLIMIT:
        raise KeystoreError("keystore KDF opslimit {opslimit!r} is outside "
                            "{opslimit_min}..{max_opslimit}", opslimit=opslimit,
                            opslimit_min=_argon2id.OPSLIMIT_MIN, max_opslimit=MAX_OPSLIMIT)
    if type(memlimit) is not int or not _argon2id.MEMLIMIT_MIN <= memlimit <= MAX_MEMLIMIT:
        raise KeystoreError("keystore KDF memlimit {memlimit!r} is outside "
                            "{memlimit_min}..{max_memlimit}", memlimit=memlimit,
                            memlimit_min=_argon2id.MEMLIMIT_MIN, max_memlimit=MAX_MEMLIMIT)


def _field_b64(obj: Mapping[str, Any], name: str, where: str) -> bytes:
    value = obj.get(name)
    try:
        if not isinstance(value, str):
            raise KeysError("missing or not text")
        return jws.b64url_decode(value)
    except KeysError as exc:
        raise KeystoreError("{where}: field {name!r} is not base64url", where=where,
                            name=name) from exc


def _parse_header(path: Path, data: bytes) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """Return (header without ciphertext, salt, nonce, ciphertext), or raise KeystoreError."""
    where = f"keystore {path}"
    try:
        document = jws.strict_json_object(data)
    except KeysError as exc:
        raise KeystoreError("{where} is not a lienthong keystore (damaged or truncated?): {exc}",
                            where=where, exc=exc) from exc
    if document.get("format") != FORMAT:
        raise KeystoreError("{where} is not a lienthong keystore (format is {value!r}, expected "
                            "{format!r})", where=where, value=document.get('format'),
                            format=FORMAT)
    version = document.get("version")
    if type(version) is not int or version != VERSION:
        raise KeystoreError("{where} has version {version!r}; this lienthong reads version "
                            "{known} only (was it written by a newer lienthong?)", where=where,
                            version=version, known=VERSION)
    if set(document) != _HEADER_FIELDS:
        raise KeystoreError("{where} has fields {fields}, expected {expected}", where=where,
                            fields=sorted(document), expected=sorted(_HEADER_FIELDS))
    if document["aead"] != AEAD:
        raise KeystoreError("{where} uses cipher {value!r}; only {aead!r} is known", where=where,
                            value=document['aead'], aead=AEAD)
    kdf = document["kdf"]
    if not isinstance(kdf, dict) or set(kdf) != _KDF_FIELDS or kdf["alg"] != KDF_ALG:
        raise KeystoreError("{where}: 'kdf' must be argon2id with opslimit, memlimit and salt",
                            where=where)
    _check_kdf_limits(kdf["opslimit"], kdf["memlimit"])
    salt = _field_b64(kdf, "salt", where)
    nonce = _field_b64(document, "nonce", where)
    ciphertext = _field_b64(document, "ciphertext", where)
    if len(salt) != _argon2id.SALTBYTES:
        raise KeystoreError("{where}: salt must be {saltbytes} bytes", where=where,
                            saltbytes=_argon2id.SALTBYTES)
    if len(nonce) != nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES:
        raise KeystoreError("{where}: nonce must be 24 bytes", where=where)
    if len(ciphertext) < nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES:
        raise KeystoreError("{where}: ciphertext is too short to hold anything (truncated?)",
                            where=where)
    header = {name: value for name, value in document.items() if name != "ciphertext"}
    return header, salt, nonce, ciphertext


def _keys_from_secret(path: Path, secret: dict[str, Any]) -> NodeKeys:
    where = f"keystore {path}"
    if set(secret) != _SECRET_FIELDS or secret.get("v") != 1:
        raise KeystoreError("{where} decrypted, but its content is not a version 1 key set",
                            where=where)
    try:
        encryption = secret["encryption"]
        if not isinstance(encryption, list):
            raise KeystoreError("{where}: 'encryption' must be a list", where=where)
        tls_key = serialization.load_der_private_key(
            _field_b64(secret, "tls_key_pkcs8", where), password=None)
        if not isinstance(tls_key, Ed25519PrivateKey):
            raise KeystoreError("{where}: the TLS key is not Ed25519", where=where)
        keys = NodeKeys(
            name=secret["name"],
            identity=nacl.signing.SigningKey(_field_b64(secret, "identity_seed", where)),
            encryption=tuple(
                EncryptionKey(kid=item["kid"],
                              private=nacl.public.PrivateKey(_field_b64(item, "private", where)),
                              created=item["created"])
                for item in encryption),
            tls_key=tls_key,
            tls_cert_der=_field_b64(secret, "tls_cert", where),
            created=secret["created"],
        )
    except KeystoreError:
        raise
    except (KeysError, KeyError, TypeError, ValueError, AttributeError,
            nacl.exceptions.CryptoError) as exc:
        raise KeystoreError("{where} decrypted, but its key material is invalid: {exc}",
                            where=where, exc=exc) from exc
    if keys.node_id != secret["node_id"]:
        raise KeystoreError("{where} decrypted, but its identity key does not give the recorded "
                            "node ID {value!r}", where=where, value=secret['node_id'])
    return keys


def load_keystore(path: Path, passphrase: bytes) -> NodeKeys:
    """Check permissions, then open the keystore at ``path`` with ``passphrase``.

    Raises InsecurePermissions, KeystoreError (missing, damaged, unknown version) or
    WrongPassphrase (the passphrase is wrong, or the file was altered: indistinguishable).
    """
    path = Path(path)
    check_private_permissions(path)
    _check_passphrase(passphrase)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEYSTORE_BYTES + 1)
    except FileNotFoundError:
        raise KeystoreError("no keystore at {path}; run lienthong init", path=path) from None
    except OSError as exc:
        raise KeystoreError("cannot read keystore {path}: {error}", path=path,
                            error=exc.strerror) from exc
    if len(data) > MAX_KEYSTORE_BYTES:
        raise KeystoreError("keystore {path} is larger than {limit} bytes; it is not a "
                            "lienthong keystore", path=path, limit=MAX_KEYSTORE_BYTES)
    header, salt, nonce, ciphertext = _parse_header(path, data)
    key = _argon2id.kdf(32, passphrase, salt, opslimit=header["kdf"]["opslimit"],
                        memlimit=header["kdf"]["memlimit"])
    try:
        plaintext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext, jws.canonical_json(header), nonce, key)
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase("wrong passphrase, or the keystore was altered") from None
    try:
        secret = jws.strict_json_object(plaintext)
    except KeysError as exc:
        raise KeystoreError("keystore {path} decrypted, but its content is not JSON",
                            path=path) from exc
    return _keys_from_secret(path, secret)


# --- passphrase sources --------------------------------------------------------------------

def passphrase_bytes(text: str) -> bytes:
    """Encode a typed passphrase: NFC-normalized UTF-8.

    Vietnamese input methods differ in whether they produce precomposed (NFC) or combining
    (NFD) letters; without normalization a passphrase typed with another keyboard would not
    open the keystore.
    """
    return unicodedata.normalize("NFC", text).encode("utf-8", "surrogateescape")


def _from_file_bytes(raw: bytes) -> bytes:
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    try:
        return passphrase_bytes(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return raw  # not text: use the bytes exactly as given


def _read_secret_file(path: Path, *, check_mode: bool) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeystoreError("passphrase file {path} does not exist", path=path) from None
    except OSError as exc:
        raise KeystoreError("cannot read passphrase file {path}: {strerror}", path=path,
                            strerror=exc.strerror) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        # A folder opens for reading on Linux but cannot be read: say so, not IsADirectoryError.
        os.close(fd)
        raise KeystoreError("passphrase file {path} is not a regular file", path=path)
    with os.fdopen(fd, "rb") as handle:
        if check_mode:
            check_private_file(path, st)
        raw = handle.read(64 * 1024 + 1)
    if len(raw) > 64 * 1024:
        raise KeystoreError("passphrase file {path} is larger than 64 KiB", path=path)
    passphrase = _from_file_bytes(raw)
    if not passphrase:
        raise KeystoreError("passphrase file {path} is empty", path=path)
    return passphrase


def read_passphrase(*, env: Mapping[str, str], passphrase_file: Path | None,
                    credentials_dir: str | None) -> bytes | None:
    """Find the keystore passphrase for an unattended start, or None (the caller then prompts).

    Order, first match wins:

    1. environment variable ``LIENTHONG_PASSPHRASE`` (simple, but visible to the process's
       user and inherited by children: prefer the next two);
    2. ``passphrase_file`` (the configured file; must be 0600 or 0400, like the keystore);
    3. the systemd credential ``$CREDENTIALS_DIRECTORY/lienthong-passphrase``
       (``LoadCredentialEncrypted=``); systemd keeps it in a private read-only mount for this
       unit only, so its mode is not checked (systemd may grant access with ACLs).

    One trailing newline is stripped from files; text is NFC-normalized (:func:`passphrase_bytes`).
    """
    if PASSPHRASE_ENV in env:
        value = env[PASSPHRASE_ENV]
        if not value:
            raise KeystoreError("{passphrase_env} is set but empty",
                                passphrase_env=PASSPHRASE_ENV)
        return passphrase_bytes(value)
    if passphrase_file is not None:
        return _read_secret_file(Path(passphrase_file), check_mode=True)
    if credentials_dir:
        credential = Path(credentials_dir) / CREDENTIAL_NAME
        if credential.exists():
            return _read_secret_file(credential, check_mode=False)
    return None
