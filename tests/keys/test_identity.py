"""Node keys and the binding by which the identity key vouches for the other keys."""
import dataclasses
import hashlib

import nacl.public
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.keys import jws, tls
from lienthong.keys.errors import BadBinding, BadSignature, InvalidValue, KeysError, WrongType
from lienthong.keys.identity import (
    BINDING_TYP,
    EncryptionKey,
    NodeKeys,
    check_node_name,
    encryption_kid,
    generate_node_keys,
    make_binding,
    parse_time,
    rotate_encryption_key,
    rotate_tls_key,
    verify_binding,
)
from lienthong.keys.nodeid import node_id_from_public_key

NOW = "2025-03-01T08:00:00Z"
LATER = "2026-03-01T08:00:00+07:00"


def _rng(seed: bytes):
    """Deterministic random_bytes for reproducible keys."""
    counter = iter(range(10 ** 9))
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(8, "big")).digest(n)


@pytest.fixture()
def keys() -> NodeKeys:
    return generate_node_keys("so-tu-phap", now=NOW, random_bytes=_rng(b"node"))


def test_generated_keys_are_independent(keys):
    """Identity, encryption and TLS keys are three different keys, none derived from another."""
    identity = bytes(keys.identity.verify_key)
    x25519 = keys.current_encryption.public_bytes
    converted = bytes(keys.identity.verify_key.to_curve25519_public_key())
    tls_public = keys.tls_key.public_key().public_bytes_raw()
    assert len({identity, x25519, tls_public}) == 3
    assert x25519 != converted  # not the Ed25519 -> X25519 conversion


def test_derived_properties(keys):
    """node_id, kid and pin are computed from the public keys as documented."""
    assert keys.node_id == node_id_from_public_key(bytes(keys.identity.verify_key))
    current = keys.current_encryption
    assert current.kid == hashlib.sha256(current.public_bytes).hexdigest()[:16]
    assert keys.tls_spki_sha256 == tls.spki_sha256(keys.tls_cert_der)
    assert keys.encryption_private_by_kid() == {current.kid: current.private}


def test_generation_is_reproducible_and_seeded(keys):
    """The same random source gives the same node; another gives another."""
    again = generate_node_keys("so-tu-phap", now=NOW, random_bytes=_rng(b"node"))
    other = generate_node_keys("so-tu-phap", now=NOW, random_bytes=_rng(b"other"))
    assert again.node_id == keys.node_id and again.tls_cert_der == keys.tls_cert_der
    assert other.node_id != keys.node_id


def test_repr_hides_private_material(keys):
    """Printing keys shows the name and node ID, never a private key."""
    text = repr(keys) + repr(keys.current_encryption)
    assert keys.node_id in text
    assert jws.b64url_encode(bytes(keys.identity)) not in text
    assert bytes(keys.identity).hex() not in text


def test_rotation_keeps_old_encryption_keys(keys):
    """Rotating adds a new current key and keeps the old one for archived envelopes."""
    rotated = rotate_encryption_key(keys, now=LATER, random_bytes=_rng(b"rot"))
    assert rotated.node_id == keys.node_id
    assert rotated.encryption[0] == keys.current_encryption
    assert rotated.current_encryption.kid != keys.current_encryption.kid
    assert set(rotated.encryption_private_by_kid()) == {k.kid for k in rotated.encryption}


def test_tls_rotation_keeps_identity(keys):
    """A new TLS key changes the pin but not the node ID."""
    rotated = rotate_tls_key(keys, random_bytes=_rng(b"tls2"))
    assert rotated.node_id == keys.node_id
    assert rotated.tls_spki_sha256 != keys.tls_spki_sha256


def test_node_keys_validate_consistency(keys):
    """A certificate for another key, a wrong kid, or duplicate kids are refused at construction."""
    other = rotate_tls_key(keys, random_bytes=_rng(b"x"))
    with pytest.raises(KeysError, match="certificate"):
        dataclasses.replace(keys, tls_cert_der=other.tls_cert_der)
    with pytest.raises(KeysError, match="does not match"):
        EncryptionKey(kid="0" * 16, private=keys.current_encryption.private, created=NOW)
    with pytest.raises(KeysError, match="share"):
        dataclasses.replace(keys, encryption=keys.encryption * 2)
    with pytest.raises(KeysError):
        dataclasses.replace(keys, encryption=())


@pytest.mark.parametrize("name", ["a", "so-tu-phap", "ubnd.tinh_2", "x" * 64, "0abc"])
def test_good_names(name):
    """Lowercase slugs of 1-64 characters are valid node names."""
    assert check_node_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "Sở-tư-pháp", "So-Tu-Phap", "-abc", ".hidden",
                                  "a/b", "a b", "..", "abc.", "con", "nul.txt", "com1", 42])
def test_bad_names(name):
    """Empty, long, uppercase, non-ASCII, path-like, hidden and Windows device names are refused."""
    with pytest.raises(InvalidValue):
        check_node_name(name)


@pytest.mark.parametrize("text", ["2025-03-01", "2025-03-01T08:00:00", "2025-02-30T08:00:00Z",
                                  "2025-03-01 08:00:00Z", "yesterday",
                                  "2025-03-01T08:00:00.1234567Z"])
def test_bad_times(text):
    """Times without an offset, impossible dates and free text are refused."""
    with pytest.raises(InvalidValue):
        parse_time(text)


def test_binding_round_trip(keys):
    """A binding verifies under the identity key and names the current keys."""
    token = make_binding(keys, now=NOW, seq=3)
    binding = verify_binding(token, keys.identity_public)
    assert binding.node_id == keys.node_id and binding.name == keys.name
    assert binding.encryption_kid == keys.current_encryption.kid
    assert binding.encryption_public == keys.current_encryption.public_bytes
    assert binding.tls_spki_sha256 == keys.tls_spki_sha256
    assert (binding.valid_from, binding.seq, binding.token) == (NOW, 3, token)
    assert jws.decode(token, BINDING_TYP).kid == keys.node_id


def test_binding_follows_rotation(keys):
    """After rotating, a new binding names the new encryption key and TLS pin."""
    rotated = rotate_tls_key(rotate_encryption_key(keys, now=LATER, random_bytes=_rng(b"r")),
                             random_bytes=_rng(b"t"))
    binding = verify_binding(make_binding(rotated, now=LATER, seq=2), keys.identity_public)
    assert binding.encryption_kid == rotated.current_encryption.kid != keys.current_encryption.kid
    assert binding.tls_spki_sha256 == rotated.tls_spki_sha256


def test_binding_under_another_identity_refused(keys):
    """A binding does not verify under another node's identity key."""
    other = generate_node_keys("khac", now=NOW, random_bytes=_rng(b"o"))
    with pytest.raises(BadSignature):
        verify_binding(make_binding(keys, now=NOW), other.identity_public)


def test_binding_is_not_a_card(keys):
    """A token of another type signed by the same key is not accepted as a binding."""
    token = jws.sign(keys.identity, "lienthong-card/1", {"v": 1}, kid=keys.node_id)
    with pytest.raises(WrongType):
        verify_binding(token, keys.identity_public)


def _signed(keys, **changes):
    binding = verify_binding(make_binding(keys, now=NOW), keys.identity_public)
    payload = jws.decode(binding.token, BINDING_TYP).payload
    payload.update(changes)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jws.sign(keys.identity, BINDING_TYP, payload, kid=keys.node_id)


@pytest.mark.parametrize("changes", [
    {"v": 2}, {"v": True}, {"seq": 0}, {"seq": "1"}, {"node_id": "EH7DDX5"},
    {"encryption": {"kid": "0" * 16, "public": jws.b64url_encode(bytes(32))}},
    {"encryption": {"kid": "x"}}, {"tls_spki_sha256": "AB" * 32}, {"name": "Bad Name"},
    {"valid_from": "soon"}, {"extra": 1}, {"seq": None},
])
def test_signed_but_invalid_bindings_refused(keys, changes):
    """Correctly signed bindings with a wrong field are still refused (BadBinding)."""
    with pytest.raises(BadBinding):
        verify_binding(_signed(keys, **changes), keys.identity_public)


def test_make_binding_checks_seq(keys):
    """Sequence numbers start at 1."""
    with pytest.raises(BadBinding):
        make_binding(keys, now=NOW, seq=0)


def test_bad_identity_public_key_refused(keys):
    """A public key of the wrong length is refused before anything is verified."""
    with pytest.raises(BadBinding):
        verify_binding(make_binding(keys, now=NOW), b"short")


def test_encryption_kid_known_answer():
    """The key ID is the first 16 hex characters of SHA-256 of the X25519 public key."""
    public = bytes(nacl.public.PrivateKey(bytes(32)).public_key)
    assert encryption_kid(public) == hashlib.sha256(public).hexdigest()[:16]
    assert len(encryption_kid(public)) == 16


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(["v", "node_id", "name", "encryption", "tls_spki_sha256",
                              "valid_from", "seq"]),
       value=st.none() | st.booleans() | st.integers() | st.text(max_size=70)
       | st.dictionaries(st.text(max_size=8), st.text(max_size=50), max_size=3))
def test_any_signed_field_value_only_raises_bad_binding(field, value):
    """A correctly signed binding with any value in any field is accepted or refused with
    BadBinding."""
    keys = generate_node_keys("so-tu-phap", now=NOW, random_bytes=_rng(b"node"))
    try:
        binding = verify_binding(_signed(keys, **{field: value}), keys.identity_public)
    except BadBinding:
        return
    assert binding.node_id == keys.node_id
