"""Accounts for remote access to the web pages: names, roles, Argon2id password hashes.

Kept in ``state/web-accounts.json`` (mode 0600, written to a temporary name, fsynced,
renamed), managed with ``lienthong web user add|remove|list``; the running node reads the file
at each login, so a change needs no restart. Passwords are hashed with PyNaCl's
``nacl.pwhash.argon2id`` (libsodium's Argon2id, the hash's own salt and cost inside the
string); a password is never stored, logged or audited.
"""
from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.pwhash

from lienthong.config.schema import WEB_ROLES
from lienthong.node.core.errors import NodeError
from lienthong.node.language.text import Phrase

ACCOUNTS_FILE = Path("state") / "web-accounts.json"
USER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 10
#: Argon2id cost: libsodium's "moderate" (256 MiB, ~0.5 s) for people's passwords; tests pass
#: the interactive one.
COSTS = {"moderate": (nacl.pwhash.argon2id.OPSLIMIT_MODERATE,
                      nacl.pwhash.argon2id.MEMLIMIT_MODERATE),
         "interactive": (nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                         nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE)}


@functools.cache
def _dummy_hash() -> bytes:
    """Checked when the name is unknown, so a wrong name costs about what a wrong password does."""
    opslimit, memlimit = COSTS["moderate"]
    return nacl.pwhash.argon2id.str(b"lienthong-no-such-user", opslimit=opslimit,
                                    memlimit=memlimit)


class AccountError(NodeError):
    """An account that cannot be added, changed or read; ``text`` is the clerk's sentence."""

    code = "web-account"

    def __init__(self, text: Phrase) -> None:
        super().__init__(str(text))
        self.text = text


@dataclass(frozen=True, slots=True)
class Account:
    user: str
    role: str
    password_hash: str


def accounts_path(home: Path) -> Path:
    return home / ACCOUNTS_FILE


def read_accounts(home: Path) -> dict[str, Account]:
    path = accounts_path(home)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise AccountError(Phrase("The web accounts file {path} cannot be read: {error}",
                                path=str(path), error=str(exc))) from None
    found = {}
    for item in raw.get("accounts", []) if isinstance(raw, dict) else []:
        try:
            account = Account(str(item["user"]), str(item["role"]), str(item["hash"]))
        except (KeyError, TypeError):
            continue
        if account.role in WEB_ROLES and USER_PATTERN.match(account.user):
            found[account.user] = account
    return found


def _write(home: Path, accounts: dict[str, Account]) -> None:
    path = accounts_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"version": 1, "accounts": [
        {"user": a.user, "role": a.role, "hash": a.password_hash}
        for a in sorted(accounts.values(), key=lambda a: a.user)]}, indent=1)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(body + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def hash_password(password: str, *, cost: str = "moderate") -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(Phrase("A password must be at least {count} characters long.",
                                count=MIN_PASSWORD))
    opslimit, memlimit = COSTS[cost]
    return nacl.pwhash.argon2id.str(password.encode("utf-8"), opslimit=opslimit,
                                    memlimit=memlimit).decode("ascii")


def add_account(home: Path, user: str, role: str, password: str, *,
                cost: str = "moderate", replace: bool = False) -> Account:
    if not USER_PATTERN.match(user):
        raise AccountError(Phrase("{user} is not a valid user name: use lowercase letters, "
                                "digits, '.', '-' or '_'.", user=user))
    if role not in WEB_ROLES:
        raise AccountError(Phrase("{role} is not a role; use one of: {roles}.", role=role,
                                roles=", ".join(WEB_ROLES)))
    accounts = read_accounts(home)
    if user in accounts and not replace:
        raise AccountError(Phrase("The user {user} already exists.", user=user))
    account = Account(user, role, hash_password(password, cost=cost))
    accounts[user] = account
    _write(home, accounts)
    return account


def remove_account(home: Path, user: str) -> None:
    accounts = read_accounts(home)
    if accounts.pop(user, None) is None:
        raise AccountError(Phrase("There is no user {user}.", user=user))
    _write(home, accounts)


def check_password(home: Path, user: str, password: str) -> Account | None:
    """The account if ``password`` is its password; None otherwise (blocking: Argon2id)."""
    account = read_accounts(home).get(user)
    stored = account.password_hash.encode("ascii") if account is not None else _dummy_hash()
    try:
        nacl.pwhash.verify(stored, password.encode("utf-8"))
    except nacl.exceptions.InvalidkeyError:
        return None
    return account
