"""``lienthong peers``: enrol, list and show the offices this node exchanges with.

Enrolment is the moment trust is created, so ``add`` shows the node ID in groups and a short
verification code that the two clerks read to each other by phone before confirming.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from lienthong.keys.card import read_card, verification_code
from lienthong.keys.directory import Peer
from lienthong.keys.errors import KeysError
from lienthong.node.cli.common import (
    CliError,
    clerk_language,
    home_option,
    open_config,
    wall_clock_now,
)
from lienthong.node.core.access import access_policy
from lienthong.node.language.names import name_of, show_time
from lienthong.node.language.text import Phrase, _, from_error
from lienthong.node.status.gather import own_card
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.records import PeerRecord


@click.group()
def peers() -> None:
    """Enrol and list peer offices."""


@peers.command("add")
@click.argument("card_files", nargs=-1,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--directory", "directory_file", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A directory file: the cards of many offices, signed by a coordinating office.")
@click.option("--coordinator", default=None,
              help="The enrolled office that signed the directory file (with --directory).")
@click.option("--address", "addresses", multiple=True,
              help="HOST:PORT to dial instead of the card's (one card only).")
@click.option("--name", default=None,
              help="Local name for the peer (default: the card's name; one card only).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts, demo).")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable result (with several cards or a directory file).")
@home_option
def add(card_files: tuple[Path, ...], directory_file: Path | None, coordinator: str | None,
        addresses: tuple[str, ...], name: str | None, yes: bool, as_json: bool,
        home: Path | None) -> None:
    """Enrol peer offices from their card files, or from a directory file.

    One card: its node ID and verification code are shown, to be checked by phone. Several
    cards, or a directory file, are enrolled together in one transaction once the list is
    confirmed; a card that fails its checks is named and left out.
    """
    if directory_file is None and coordinator is not None:
        raise CliError(Phrase("--coordinator names who signed a directory file; give the file "
                              "with --directory"))
    if directory_file is not None and coordinator is None:
        raise CliError(Phrase("name the enrolled office that signed the directory file: "
                              "--coordinator NAME"))
    if not card_files and directory_file is None:
        raise CliError(Phrase("give one or more card files, or a directory file with "
                              "--directory"))
    if len(card_files) == 1 and directory_file is None and not as_json:
        _add_one(card_files[0], addresses, name, yes, home)
        return
    if addresses or name:
        raise CliError(Phrase("--address and --name apply to one card only; enrol that card on "
                              "its own"))
    from lienthong.node.cli.enrol import enrol_many
    enrol_many(open_config(home), card_files, directory_file, coordinator, yes=yes,
               as_json=as_json)


def _add_one(card_file: Path, addresses: tuple[str, ...], name: str | None, yes: bool,
             home: Path | None) -> None:
    """Enrol one office after the clerk confirms its verification code."""
    config = open_config(home)
    try:
        card = read_card(card_file.read_bytes())
    except KeysError as exc:
        raise CliError(Phrase("{card_file}: {error}", card_file=card_file,
                              error=from_error(exc))) from None
    own = own_card(config).node_id
    if card.node_id == own:
        raise CliError(Phrase("{card_file} is this node's own card", card_file=card_file))
    name = name or card.name
    language = clerk_language(config)
    _rows(language, [
        (Phrase("Peer:"), Phrase("{name}  ({card_name} in its card)", name=name,
                                 card_name=card.name).in_language(language)),
        (Phrase("Node ID:"), card.node_id),
        (Phrase("Addresses:"), ", ".join(addresses or card.addresses)),
        (Phrase("Verification code:"), verification_code(own, card.node_id))])
    click.echo(Phrase("Read the node ID or the code to the other office's clerk by phone; it "
                      "must match what they see.").in_language(language))
    if not yes and not click.confirm(Phrase("Does it match?").in_language(language),
                                     default=False):
        raise CliError(Phrase("not enrolled"))
    now = wall_clock_now()
    store = open_store(config.store.url)
    try:
        peer = replace(Peer.from_card(card, now=now), name=name,
                       addresses=tuple(addresses or card.addresses))
        with store.transaction():
            store.add_peer(peer, card.token, now)
            store.append_audit("peer-added", now, peer=card.node_id,
                               detail={"name": name, "addresses": list(peer.addresses)})
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    click.echo(Phrase("Enrolled {name}. Documents for it go in {folder}/", name=name,
                      folder=config.outbox / name).in_language(language))
    access_policy(config.node.clerks_group).make_folder(config.outbox / name, drop=True)


@peers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@home_option
def list_(as_json: bool, home: Path | None) -> None:
    """List enrolled peers."""
    config = open_config(home)
    store = open_store(config.store.url)
    try:
        rows = [record.peer for record in store.list_peers()]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([{"name": r.name, "node_id": r.node_id, "state": r.state,
                                "addresses": list(r.addresses)} for r in rows], indent=2))
        return
    language = clerk_language(config)
    if not rows:
        click.echo(Phrase("No peers yet. Enrol one with: lienthong peers add THEIR.card"
                          ).in_language(language))
    for row in rows:
        click.echo(f"{row.name:<16} {name_of('state', row.state, language):<12} {row.node_id}  "
                   f"{', '.join(row.addresses)}")


def _find(store: Store, name: str) -> PeerRecord:
    record = store.get_peer(name)
    if record is None:
        raise CliError(Phrase("there is no peer named {name!r}; see 'lienthong peers list'",
                              name=name))
    return record


@peers.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@home_option
def show(name: str, as_json: bool, home: Path | None) -> None:
    """Show one peer: node ID, verification code, addresses, state and key history."""
    config = open_config(home)
    store = open_store(config.store.url)
    try:
        record = _find(store, name)
        history = store.key_history(record.peer.node_id)
    finally:
        store.close()
    peer = record.peer
    code = verification_code(own_card(config).node_id, peer.node_id)
    keys = [{"kind": k.kind, "kid": k.kid, "valid_from": k.valid_from,
             "valid_until": k.valid_until} for k in history]
    if as_json:
        click.echo(json.dumps({"name": peer.name, "node_id": peer.node_id, "state": peer.state,
                               "addresses": list(peer.addresses), "verification_code": code,
                               "revoked_at": peer.revoked_at, "reason": peer.reason,
                               "added_at": record.added_at, "keys": keys}, indent=2))
        return
    language = clerk_language(config)
    state = name_of("state", peer.state, language)
    if peer.revoked_at:
        state = Phrase("{state} since {time}: {reason}", state=state,
                       time=show_time(peer.revoked_at, language),
                       reason=peer.reason).in_language(language)
    _rows(language, [(Phrase("Peer:"), peer.name), (Phrase("Node ID:"), peer.node_id),
                     (Phrase("Verification code:"), code), (Phrase("State:"), state),
                     (Phrase("Addresses:"), ", ".join(peer.addresses)),
                     (Phrase("Enrolled:"), show_time(record.added_at, language))])
    click.echo(Phrase("Keys (newest last):").in_language(language))
    for key in keys:
        until = (show_time(key["valid_until"], language) if key["valid_until"]
                 else Phrase("now").in_language(language))
        click.echo(f"  {key['kind']:<10} {key['kid']:<20} "
                   f"{show_time(key['valid_from'], language)} → {until}")


def _rows(language: str, rows: list[tuple[Phrase, str]]) -> None:
    """Label and value, the values aligned after the longest label in ``language``."""
    labels = [label.in_language(language) for label, _value in rows]
    width = max(len(label) for label in labels) + 1
    for label, (_phrase, value) in zip(labels, rows, strict=True):
        click.echo(f"{label:<{width}}{value}")


#: What ``revoke`` and ``remove`` ask and say, one whole sentence per verb (a translation
#: cannot be built from a verb and an ending).
QUESTIONS = {"revoke": _("Revoke {name} ({node_id})?"),
             "remove": _("Remove {name} ({node_id})?")}
NOT_DONE = {"revoke": _("not revoked"), "remove": _("not removed")}
NO_ONE_TO_CONFIRM = {
    "revoke": _("not revoked: there is no one to confirm it here; add --yes to revoke {name} "
                "from a script"),
    "remove": _("not removed: there is no one to confirm it here; add --yes to remove {name} "
                "from a script")}


def _change_peer(home: Path | None, name: str, *, yes: bool, verb: str, event: str,
                 change: Callable[[Any, str], Any], detail: dict[str, Any]) -> None:
    """Confirm, then apply ``change(store, now)`` and its audit entry in one transaction."""
    config = open_config(home)
    store = open_store(config.store.url)
    try:
        record = _find(store, name)
        if not yes and not sys.stdin.isatty():
            # In a script there is nobody to answer: say what to add rather than "Aborted!".
            raise CliError(Phrase(NO_ONE_TO_CONFIRM[verb], name=name))
        question = Phrase(QUESTIONS[verb], name=name, node_id=record.peer.node_id)
        if not yes and not click.confirm(question.in_language(clerk_language(config)),
                                         default=False):
            raise CliError(Phrase(NOT_DONE[verb]))
        now = wall_clock_now()
        with store.transaction():
            change(store, now)
            store.append_audit(event, now, peer=record.peer.node_id,
                               detail={"name": name, **detail})
    finally:
        store.close()


@peers.command("revoke")
@click.argument("name")
@click.option("--reason", default="revoked by the operator", show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@home_option
def revoke(name: str, reason: str, yes: bool, home: Path | None) -> None:
    """Cut a peer off at once: connections dropped, handshakes refused, its queue parked."""
    _change_peer(home, name, yes=yes, verb="revoke", event="peer-revoked",
                 change=lambda store, now: store.revoke_peer(name, reason, now),
                 detail={"reason": reason})
    click.echo(Phrase("Revoked {name}. A running node drops its connections within a second; "
                      "documents queued for it move to failed/. Receipts it signed earlier "
                      "stay verifiable.", name=name).in_language(clerk_language()))


@peers.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@home_option
def remove(name: str, yes: bool, home: Path | None) -> None:
    """Remove a peer from the directory (its key history is kept for old receipts)."""
    _change_peer(home, name, yes=yes, verb="remove", event="peer-removed",
                 change=lambda store, now: store.remove_peer(name, now), detail={})
    click.echo(Phrase("Removed {name}.", name=name).in_language(clerk_language()))


#: ``peers test`` exit codes for scripts: every peer answered (and, with --deliver, receipted
#: the test message), or at least one did not.
TEST_EXIT = {"ok": 0, "failed": 1}


@peers.command("test")
@click.argument("name", required=False)
@click.option("--deliver", is_flag=True,
              help="Also send a signed test message through the running node and wait for "
                   "its receipt.")
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait for each peer to answer (and, with --deliver, ten times "
                   "this for the receipt).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@home_option
def test(name: str | None, deliver: bool, timeout: float, as_json: bool,
         home: Path | None) -> None:
    """Dial each enrolled peer (or NAME) now and say whether it can be reached: address,
    TCP, TLS 1.3, identity against its card, protocol, round trip; exit 1 if one cannot."""
    from lienthong.node.app.process import load_keys_and_passphrase
    from lienthong.node.cli.reachability import (
        dial_all,
        json_of,
        record_results,
        render_check,
    )
    config = open_config(home)
    store = open_store(config.store.url)
    try:
        directory = store.directory()
        names = [p.name for p in directory.peers if p.state == "trusted"]
        if name is not None:
            record = _find(store, name)
            if record.peer.state != "trusted":
                raise CliError(Phrase("{name} is revoked; a revoked peer is never dialled",
                                      name=name))
            names = [name]
    finally:
        store.close()
    if not names:
        raise CliError(Phrase("no peers enrolled yet; enrol one with: lienthong peers add "
                              "THEIR.card"))
    if deliver:
        from lienthong.node.status.gather import ask_daemon
        live, why = ask_daemon(config, own_card(config).node_id)
        if live is None:
            raise CliError(Phrase("--deliver sends the test message through the running node, "
                                  "and it is not running. Start it with 'lienthong run', or "
                                  "test without --deliver.") if not why else
                           Phrase("--deliver sends the test message through the running node, "
                                  "and it is not running ({why}). Start it with 'lienthong "
                                  "run', or test without --deliver.",
                                  why=str(why).strip().rstrip(".")))
    node_keys, _typed = load_keys_and_passphrase(config)
    if not as_json:
        click.echo(Phrase("Dialling {names} (each answers within {seconds} s)...",
                          names=", ".join(names), seconds=f"{timeout:g}"
                          ).in_language(clerk_language(config)))
    checks = dial_all(node_keys, directory, names, timeout=timeout)
    deliveries: dict[str, dict[str, Any]] = {}
    if deliver:
        from lienthong.node.cli.reachability import deliver_test_messages
        deliveries = deliver_test_messages(config, [c.peer for c in checks if c.ok],
                                           timeout=timeout * 10,
                                           progress=None if as_json else click.echo,
                                           language=clerk_language(config))
    record_results(config, checks, deliveries, now=wall_clock_now())
    passed = all(c.ok for c in checks) and all(d["ok"] for d in deliveries.values()) \
        and (not deliver or len(deliveries) == len(checks))
    if as_json:
        click.echo(json.dumps({"ok": passed, "peers": [
            {**check.as_json(), "deliver": json_of(deliveries.get(check.peer))}
            for check in checks]},
            ensure_ascii=False, indent=2))
    else:
        for check in checks:
            click.echo(render_check(check, deliveries.get(check.peer) if deliver else None,
                                    clerk_language(config)))
    raise SystemExit(TEST_EXIT["ok" if passed else "failed"])


@peers.command("make-directory")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--only", multiple=True,
              help="Include only this enrolled office (repeatable; default: every trusted one).")
@home_option
def make_directory(out: Path, only: tuple[str, ...], home: Path | None) -> None:
    """Sign a directory file of this office and the offices it enrolled (coordinating office).

    Every office that has enrolled this one can then enrol the rest with
    'lienthong peers add --directory OUT --coordinator THIS-NAME'.
    """
    from lienthong.node.cli.enrol import make_directory as write_directory
    config = open_config(home)
    count = write_directory(config, out, only)
    name = config.node.name
    click.echo(Phrase("Wrote {out}: {count} offices, signed by {name}. Offices that enrolled "
                      "{name} enrol them all with: lienthong peers add --directory {file} "
                      "--coordinator {name}", out=out, count=count, name=name, file=out.name
                      ).in_language(clerk_language(config)))
