"""``lienthong web user add|remove|list``: the accounts for remote access to the web pages.

Remote access (``[web] remote_listen``, HTTPS only) needs an account; the loopback pages do
not (docs/web.md). The password is asked twice without echo, or read from the environment
variable ``LIENTHONG_WEB_PASSWORD`` for scripts; only its Argon2id hash is kept.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from lienthong.config.schema import WEB_ROLES
from lienthong.node.cli.common import home_option, open_config
from lienthong.node.web.accounts import add_account, read_accounts, remove_account


@click.group("web")
def web() -> None:
    """The web pages: accounts for remote access."""


@web.group("user")
def user() -> None:
    """Accounts that may sign in to the web pages from another machine."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(WEB_ROLES), required=True,
              help="viewer: reads; clerk: also marks, recalls and sends; admin: also audit "
                   "export and connection tests.")
@click.option("--replace", is_flag=True, help="Change the role or password of an account.")
@home_option
def user_add(name: str, role: str, replace: bool, home: Path | None) -> None:
    """Add an account (the password is asked, never shown)."""
    config = open_config(home)
    password = os.environ.get("LIENTHONG_WEB_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    cost = "interactive" if os.environ.get("LIENTHONG_WEB_FAST_HASH") == "1" else "moderate"
    add_account(config.home, name, role, password, cost=cost, replace=replace)
    click.echo(f"Added web user {name!r} with role {role}.")


@user.command("remove")
@click.argument("name")
@home_option
def user_remove(name: str, home: Path | None) -> None:
    """Remove an account (its open sessions end at their next request)."""
    config = open_config(home)
    remove_account(config.home, name)
    click.echo(f"Removed web user {name!r}.")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@home_option
def user_list(as_json: bool, home: Path | None) -> None:
    """List the accounts and their roles (never their hashes)."""
    config = open_config(home)
    accounts = sorted(read_accounts(config.home).values(), key=lambda a: a.user)
    if as_json:
        click.echo(json.dumps([{"user": a.user, "role": a.role} for a in accounts]))
        return
    for account in accounts:
        click.echo(f"{account.user}\t{account.role}")
