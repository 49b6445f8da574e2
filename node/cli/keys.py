"""``lienthong keys rotate|status``, ``lienthong backup`` and ``lienthong restore``.

These commands rewrite or copy the keystore, so they need its passphrase: from the same
unattended sources the daemon uses (``LIENTHONG_PASSPHRASE``, the configured passphrase file,
the systemd credential), else a prompt. They never talk to the daemon: a rotation leaves a
request file that the running daemon picks up within a second
(node/identity/key_update_outgoing.py).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from lienthong.config.schema import NodeConfig
from lienthong.keys.card import read_card
from lienthong.keys.keystore import passphrase_bytes, read_passphrase
from lienthong.node.cli.common import (
    CliError,
    home_argument,
    home_option,
    new_home,
    open_config,
    wall_clock_now,
)
from lienthong.node.language.text import Phrase


def passphrase_for(config: NodeConfig) -> bytes:
    """The keystore passphrase from the unattended sources, else asked for at the terminal."""
    found = read_passphrase(env=os.environ, passphrase_file=config.keystore.passphrase_file,
                            credentials_dir=os.environ.get("CREDENTIALS_DIRECTORY"))
    if found is not None:
        return found
    return _prompt()


def _prompt() -> bytes:
    if not sys.stdin.isatty():
        raise CliError(Phrase("no keystore passphrase: set LIENTHONG_PASSPHRASE, configure "
                              "keystore.passphrase_file, or run from a terminal to be asked"))
    return passphrase_bytes(click.prompt("Keystore passphrase", hide_input=True))


def _audit(config: NodeConfig, kind: str, now: str, **detail: Any) -> None:
    from lienthong.node.store.database import open_store
    store = open_store(config.store.url)
    try:
        store.append_audit(kind, now, detail=detail)
    finally:
        store.close()


@click.group()
def keys() -> None:
    """Rotate this node's keys and see how far an announcement has got."""


@keys.command("rotate")
@click.option("--tls", "tls_key", is_flag=True, help="Rotate the TLS key (connections).")
@click.option("--encryption", is_flag=True, help="Rotate the encryption key (old ones are kept).")
@click.option("--identity", is_flag=True,
              help="Rotate the identity key: a new node ID, announced as a continuation.")
@click.option("--force", is_flag=True, help="Start even if the last rotation is still "
              "being announced (peers that missed it must re-enrol the new card).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (identity only).")
@home_option
def rotate(tls_key: bool, encryption: bool, identity: bool, force: bool, yes: bool,
           home: Path | None) -> None:
    """Make a new key, save it, and have the running node announce it to every peer."""
    from lienthong.node.identity.rotation import rotate as do_rotate
    kinds = tuple(kind for kind, chosen in (("tls", tls_key), ("encryption", encryption),
                                            ("identity", identity)) if chosen)
    if not kinds:
        raise CliError(Phrase("say which key to rotate: --tls, --encryption or --identity"))
    config = open_config(home)
    if identity and not yes and not click.confirm(
            "An identity rotation gives this node a new node ID. Peers learn it from a "
            "continuation signed by the current identity; this node still answers to the "
            "old node ID for 7 days. Continue?",
            default=False):
        raise CliError(Phrase("not rotated"))
    passphrase = passphrase_for(config)
    now = wall_clock_now()
    try:
        result = do_rotate(config, kinds, passphrase, now=now, force=force)
    except OSError as exc:
        raise CliError(str(exc)) from None
    _audit(config, "key-rotated", now, kinds=list(kinds), node_id=result.node_id,
           new_node_id=result.new_node_id, tls_pins=list(result.tls_pins),
           encryption_kids=list(result.encryption_kids))
    if "tls" in kinds:
        click.echo(f"New TLS key:        {result.tls_pins[1]}  (was {result.tls_pins[0]})")
    if "encryption" in kinds:
        click.echo(f"New encryption key: {result.encryption_kids[1]}  "
                   f"(was {result.encryption_kids[0]}; kept to open older documents)")
    if "identity" in kinds:
        click.echo(f"New node ID:        {result.new_node_id}")
        click.echo(f"Old node ID:        {result.node_id}")
        click.echo("The running node announces the change, signed by the old identity, and "
                   "switches at once; peers that have not received it yet still reach it "
                   "under the old node ID. See: lienthong keys status")
    else:
        click.echo(f"New card written to {config.card_path}.")
        click.echo("The running node reloads its keys within a second and announces them to "
                   "every peer; see: lienthong keys status")


@keys.command("status")
@home_option
def status(home: Path | None) -> None:
    """This node's keys, and which peers still have to receive the last announcement."""
    from lienthong.node.identity.rotation import previous_keystore, read_request, read_state
    from lienthong.node.store.database import open_store
    config = open_config(home)
    try:
        card = read_card(config.card_path.read_text(encoding="utf-8"))
        request = read_request(config.home)
        state = read_state(config.home)
    except OSError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"Node ID:        {card.node_id}")
    click.echo(f"TLS key:        {card.tls_spki_sha256}")
    click.echo(f"Encryption key: {card.encryption_kid}")
    if request is not None:
        click.echo(f"Waiting for the running node to announce: {', '.join(request.kinds)} "
                   f"(requested {request.requested_at})")
    if state is None:
        click.echo("No announcement in progress.")
        return
    store = open_store(config.store.url)
    try:
        row = store.get_dispatch(state["message_id"]) if state.get("message_id") else None
        names = {r.peer.node_id: r.peer.name for r in store.list_peers()}
    finally:
        store.close()
    click.echo(f"Announcing {', '.join(state['kinds'])}:")
    for delivery in (row.deliveries if row is not None else ()):
        label = {"delivered": "has it", "queued": "waiting", "failed": "gave up"}[delivery.state]
        click.echo(f"  {names.get(delivery.peer_node_id, delivery.peer_node_id):<16} {label}")
    if previous_keystore(config).exists():
        click.echo("The old TLS key is kept until every peer has the new one.")
    if state.get("old_node_id") and state["old_node_id"] != card.node_id:
        click.echo(f"Peers still waiting know this node as {state['old_node_id']}.")


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@home_option
def backup(file: Path, home: Path | None) -> None:
    """Write an encrypted, signed backup of keys, configuration, store and spool to FILE."""
    from lienthong.node.backup.archive import make_backup
    config = open_config(home)
    passphrase = passphrase_for(config)
    now = wall_clock_now()
    try:
        info = make_backup(config, file, passphrase, now=now)
    except OSError as exc:
        raise CliError(str(exc)) from None
    written = file.stat().st_size  # the file as written, not what it holds before encryption
    _audit(config, "backup-made", now, file=str(file), size=written)
    click.echo(f"Backed up {info.name} ({info.node_id}) to {file} ({written:,} bytes).")
    click.echo("It is encrypted with the keystore passphrase: keep the passphrase somewhere "
               "else than the backup.")


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@home_argument
@click.option("--force", is_flag=True,
              help="Replace the keys, configuration, store and spool of an existing node home.")
@click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Read the passphrase from this file (0600).")
def restore(file: Path, home_arg: Path | None, home: Path | None, force: bool,
            passphrase_file: Path | None) -> None:
    """Restore a backup FILE into the node home HOME (a new, empty folder unless --force)."""
    from lienthong.node.backup.archive import restore_backup
    from lienthong.node.backup.format import verify_backup
    home = new_home(home_arg or home)
    info, _ = verify_backup(file)
    click.echo(f"Backup of {info.name} ({info.node_id}), made {info.created}; signature OK.")
    passphrase = read_passphrase(env=os.environ, passphrase_file=passphrase_file,
                                 credentials_dir=os.environ.get("CREDENTIALS_DIRECTORY"))
    if passphrase is None:
        passphrase = _prompt()
    try:
        _, node_keys = restore_backup(file, home, passphrase, force=force)
    except OSError as exc:
        raise CliError(str(exc)) from None
    config = open_config(home)
    now = wall_clock_now()
    _audit(config, "restored", now, file=str(file), backup_created=info.created)
    _make_outbox_folders(config)
    click.echo(f"Restored {node_keys.name} ({node_keys.node_id}) into {config.home}.")
    click.echo("Start it with: lienthong run " + str(config.home))
    click.echo("Documents delivered after the backup are offered again; peers answer that "
               "they already have them, so nothing arrives twice.")


def _make_outbox_folders(config: NodeConfig) -> None:
    """The clerks' ``outbox/<peer>/`` and ``outbox/<group>/`` folders, as at start-up (the
    backup holds the directory, not the clerks' folders)."""
    from lienthong.node.outbox.drop import make_target_folders
    from lienthong.node.store.database import open_store
    store = open_store(config.store.url)
    try:
        names = [record.peer.name for record in store.list_peers()
                 if record.peer.state == "trusted"]
    finally:
        store.close()
    make_target_folders(config, names)
