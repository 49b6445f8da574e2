"""Sessions expire, logins are throttled, passwords are Argon2id hashes in a 0600 file."""
from __future__ import annotations

from pathlib import Path

import pytest

from lienthong.node.web.accounts import (
    AccountError,
    accounts_path,
    add_account,
    check_password,
    read_accounts,
)
from lienthong.node.web.sessions import LoginThrottle, Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_expires_after_its_lifetime_without_use() -> None:
    clock = Clock()
    sessions = Sessions(clock, lifetime=60, local_role="clerk")
    local = sessions.start(remote=False)
    assert local.user == "local" and local.may("clerk") and not local.may("admin")
    clock.now += 59
    assert sessions.find(local.id, remote=False) is local
    assert sessions.find(local.id, remote=True) is None  # not valid on the other listener
    clock.now += 61
    assert sessions.find(local.id, remote=False) is None


def test_a_remote_session_is_nobody_until_login_and_login_changes_its_id() -> None:
    sessions = Sessions(Clock(), lifetime=60, local_role="admin")
    anonymous = sessions.start(remote=True)
    assert anonymous.user is None and not anonymous.may("viewer")
    signed = sessions.log_in(anonymous, "an", "viewer")
    assert signed.id != anonymous.id and signed.csrf != anonymous.csrf
    assert sessions.find(anonymous.id, remote=True) is None
    assert signed.csrf_matches(signed.csrf) and not signed.csrf_matches(anonymous.csrf)
    assert not signed.csrf_matches(None)


def test_five_failures_block_even_the_right_password_for_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, max_failures=5, window=900)
    for _ in range(5):
        assert not throttle.blocked("10.0.0.9", "an")
        throttle.failed("10.0.0.9", "an")
    assert throttle.blocked("10.0.0.9", "an")
    assert throttle.blocked("10.0.0.7", "an")  # the same name from elsewhere
    assert throttle.blocked("10.0.0.9", "binh")  # another name from the same address
    clock.now += 901
    assert not throttle.blocked("10.0.0.9", "an")


def test_accounts_keep_only_an_argon2id_hash_in_a_private_file(tmp_path: Path) -> None:
    add_account(tmp_path, "vanthu", "clerk", "mot-mat-khau-dai", cost="interactive")
    text = accounts_path(tmp_path).read_text()
    assert "mot-mat-khau-dai" not in text and "$argon2id$" in text
    assert accounts_path(tmp_path).stat().st_mode & 0o777 == 0o600
    assert check_password(tmp_path, "vanthu", "mot-mat-khau-dai") == read_accounts(
        tmp_path)["vanthu"]
    assert check_password(tmp_path, "vanthu", "sai") is None
    assert check_password(tmp_path, "nobody", "mot-mat-khau-dai") is None
    with pytest.raises(AccountError, match="already exists"):
        add_account(tmp_path, "vanthu", "admin", "mot-mat-khau-khac", cost="interactive")
    with pytest.raises(AccountError) as short:
        add_account(tmp_path, "an", "admin", "ngan", cost="interactive")
    assert short.value.text.in_language("vi") == "Mật khẩu phải dài ít nhất 10 ký tự."
