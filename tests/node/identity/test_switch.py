"""The rotating node's identity switch on a fake clock: it switches at once, keeps the former
identity (key file, history, receiving keys) for the grace period, then retires it."""
from __future__ import annotations

import types
from pathlib import Path
from typing import Any

from lienthong.node.identity.history import (
    IDENTITY_GRACE_SECONDS,
    former_keystore,
    read_identity_history,
)
from lienthong.node.identity.rotation import next_keystore, read_request, rotate
from lienthong.node.identity.switch import IdentitySwitch
from lienthong.node.inbox.offer_checks import OfferChecks
from tests.node.runtimehelp import NOW, PASSPHRASE, FakeReactor, make_office


class RecordingTLS:
    """Stands in for the node's PinnedContextFactory: records the key it is told to use."""

    def __init__(self) -> None:
        self.used: list[bytes] = []

    def use_key(self, *, tls_key: Any, certificate_der_bytes: bytes) -> None:
        self.used.append(certificate_der_bytes)


def test_switch_keeps_the_former_identity_for_its_grace_period_then_retires_it(
        tmp_path: Path) -> None:
    """After the switch the node signs as the new identity but still receives as the old one;
    one grace period later the old key file is gone and envelopes to it are refused by name."""
    reactor = FakeReactor()
    office = make_office(tmp_path, "alpha", reactor)
    rt = office.runtime
    config = rt.config
    old_id = rt.node_id
    rotate(config, ("identity",), PASSPHRASE, now=NOW)
    token = read_request(config.home).rotation
    tls = RecordingTLS()
    switch = IdentitySwitch(rt, tls, passphrase=lambda: PASSPHRASE)

    switched = switch.switch(token)
    assert switched.result is True
    assert rt.node_id != old_id and not next_keystore(config).exists()
    assert former_keystore(config, old_id).exists()
    (entry,) = read_identity_history(config.home)
    assert (entry.node_id, entry.continuation) == (old_id, token)
    assert rt.receiving_keys([old_id]).node_id == old_id  # still receives as the old identity
    assert rt.receiving_keys([rt.node_id]).node_id == rt.node_id
    assert tls.used == [rt.keys.tls_cert_der]

    # A restart during the grace period opens the former identity's keystore again.
    rt.former_keys.clear()
    switch.start()
    assert list(rt.former_keys) == [old_id]

    reactor.advance(IDENTITY_GRACE_SECONDS - 60)
    switch.retire_expired()
    assert old_id in rt.former_keys  # not yet
    reactor.advance(61)
    switch.retire_expired()
    assert old_id not in rt.former_keys and old_id in rt.retired_ids
    assert not former_keystore(config, old_id).exists()
    assert rt.receiving_keys([old_id]) is None
    assert "identity-retired" in [e.kind for e in rt.store.audit_entries()]
    header = types.SimpleNamespace(recipients=(old_id,))
    assert "grace period has ended" in OfferChecks(rt)._not_ours(header)  # noqa: SLF001

    # A restart after the grace period: the former identity is known as retired.
    rt.retired_ids.clear()
    switch.start()
    assert old_id in rt.retired_ids and not rt.former_keys
