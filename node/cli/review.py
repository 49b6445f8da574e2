"""``lienthong audit witnesses`` and ``lienthong reconcile``: the yearly review's evidence.

``audit witnesses`` only reads the store: per peer, the latest of this office's heads the peer
witnessed, and the latest of the peer's heads this office holds, with their ages; with
``--held-for NAME --json`` it exports the heads held for that office, for an auditor to check
at that office with ``lienthong audit verify --peer-heads FILE`` (docs/review.md).

``reconcile`` needs no passphrase: it records a request that the running node carries out
(node/reconciliation/exchange.py), then waits for the answer for a while and shows the result;
a peer that has not answered yet is shown as pending (the node keeps asking).
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from lienthong.node.cli.audit import audit
from lienthong.node.cli.common import (
    CliError,
    clerk_language,
    home_argument,
    open_config,
    wall_clock_now,
)
from lienthong.node.language.catalog import translate
from lienthong.node.language.text import Phrase, _
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.records import ReconciliationRow
from lienthong.protocol.errors import SummaryError
from lienthong.protocol.reconciliation import DIFFERENCE_KINDS, parse_period


def _age(now: float, when: str | None) -> float | None:
    if when is None:
        return None
    moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return max(0.0, now - moment.timestamp())


def _age_text(seconds: float | None, language: str) -> str:
    if seconds is None:
        return translate(language, "never")
    if seconds < 3600:
        return Phrase("{minutes} min ago", minutes=int(seconds // 60)).in_language(language)
    if seconds < 2 * 86400:
        return Phrase("{hours} h ago", hours=f"{seconds / 3600:.1f}").in_language(language)
    return Phrase("{days} days ago", days=f"{seconds / 86400:.1f}").in_language(language)


#: What each kind of reconciliation difference means, for a person (the protocol's
#: DIFFERENCE_KINDS, which cannot import the catalog, says the same in English).
DIFFERENCE_TEXT = {
    "not-receipted": _("sent, never receipted, and the recipient has no record of it"),
    "missing-at-recipient": _("the sender holds a receipt for it, but the recipient has no "
                              "record"),
    "missing-at-sender": _("the recipient receipted it, but the sender's record has no "
                           "receipt"),
    "digest-mismatch": _("both hold it, with different SHA-256 digests"),
    "receipt-mismatch": _("both hold it, with different receipt times"),
    "not-compared": _("days whose roots differ but whose lists did not fit in one exchange"),
}


def witness_summary(store: Store, now: float) -> list[dict[str, Any]]:
    """Per trusted or known peer: our latest head it witnessed, its latest head we hold."""
    ours: dict[str, Any] = {}
    for row in store.head_witnesses():
        ours[row.witness_node_id] = row  # index order: the last one wins
    theirs = store.latest_peer_heads()
    out = []
    for record in store.list_peers():
        node_id = record.peer.node_id
        mine, held = ours.get(node_id), theirs.get(node_id)
        out.append({
            "peer": record.peer.name, "node_id": node_id, "state": record.peer.state,
            "witnessed_our_head": None if mine is None else {
                "seq": mine.seq, "hash": mine.hash, "index": mine.witness_index,
                "witnessed_at": mine.witnessed_at,
                "age_seconds": _age(now, mine.witnessed_at)},
            "we_hold_its_head": None if held is None else {
                "seq": held.seq, "hash": held.hash, "index": held.witness_index,
                "head_time": held.head_time, "received_at": held.received_at,
                "age_seconds": _age(now, held.head_time)},
        })
    return out


@audit.command("witnesses")
@home_argument
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--held-for", "held_for", default=None, metavar="NAME",
              help="Export every head held for this peer (for its auditor: lienthong audit "
                   "verify --peer-heads FILE at that office).")
def witnesses(home_arg: Path | None, home: Path | None, as_json: bool,
              held_for: str | None) -> None:
    """Per peer: the latest head of ours it witnessed, and the latest of its heads we hold."""
    config = open_config(home_arg or home)
    store = open_store(config.store.url)
    try:
        if held_for is not None:
            peer = next((r.peer for r in store.list_peers() if r.peer.name == held_for), None)
            if peer is None:
                raise CliError(Phrase("there is no peer named {held_for!r}", held_for=held_for))
            held_rows = store.peer_heads(peer.node_id)
            click.echo(json.dumps({
                "subject": peer.node_id, "subject_name": peer.name,
                "witness_name": config.node.name,
                "heads": [{"seq": r.seq, "hash": r.hash, "head_time": r.head_time,
                           "head": r.head, "witness": r.witness, "index": r.witness_index,
                           "received_at": r.received_at} for r in held_rows]}, indent=2))
            return
        rows = witness_summary(store, time.time())
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"peers": rows}, ensure_ascii=False, indent=2))
        return
    language = clerk_language(config)
    if not rows:
        click.echo(translate(language, "No peers yet."))
        return
    click.echo(f"{translate(language, 'Peer'):<16} "
               f"{translate(language, 'Our head it witnessed'):<34} "
               f"{translate(language, 'Its head we hold'):<34}")
    for row in rows:
        mine, held = row["witnessed_our_head"], row["we_hold_its_head"]
        left, right = (translate(language, "none yet") if head is None else
                       Phrase("entry {seq}, {age}", seq=head["seq"],
                              age=_age_text(head["age_seconds"], language)
                              ).in_language(language)
                       for head in (mine, held))
        click.echo(f"{row['peer']:<16} {left:<34} {right:<34}")


def reconciliation_view(row: ReconciliationRow, name: str) -> dict[str, Any]:
    """One exchange as the CLI and status show it."""
    differences = json.loads(row.differences) if row.differences else []
    return {"peer": name, "peer_node_id": row.peer_node_id, "period": row.period,
            "exchange": row.exchange, "role": row.role, "state": row.state,
            "requested_at": row.requested_at, "updated_at": row.updated_at,
            "attempts": row.attempts, "differences": differences}


@click.command("reconcile")
@home_argument
@click.option("--peer", "peer_name", required=True, help="The peer office to reconcile with.")
@click.option("--period", required=True,
              help="2026 (year), 2026-Q4 (quarter), 2026-11 (month) or 2026-11-03 (day).")
@click.option("--wait", "wait", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the peer's answer before showing it as pending.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reconcile(home_arg: Path | None, home: Path | None, peer_name: str, period: str,
              wait: float, as_json: bool) -> None:
    """Compare what this office sent to and received from PEER in PERIOD with PEER's record.

    Exits 1 when the records differ; a peer that has not answered is shown as pending."""
    from lienthong.node.reconciliation.exchange import request_reconciliation
    try:
        parse_period(period)
    except SummaryError:
        raise CliError(Phrase("--period {period!r} is not a period of a real date; write "
                              "2026 (year), 2026-Q4 (quarter), 2026-11 (month) or 2026-11-03 "
                              "(day)", period=period)) from None
    config = open_config(home_arg or home)
    store = open_store(config.store.url)
    try:
        peer = next((r.peer for r in store.list_peers() if r.peer.name == peer_name), None)
        if peer is None or peer.state != "trusted":
            raise CliError(Phrase("there is no trusted peer named {peer_name!r}",
                                  peer_name=peer_name))
        row = request_reconciliation(store, peer.node_id, period, wall_clock_now())
        deadline = time.monotonic() + wait
        while True:
            current = store.reconciliation_by_id(row.id) or row
            if current.state in ("agreed", "differs") or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    finally:
        store.close()
    view = reconciliation_view(current, peer.name)
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
    else:
        _print_reconciliation(view, clerk_language(config))
    if current.state == "differs":
        sys.exit(1)


def _print_reconciliation(view: dict[str, Any], language: str) -> None:
    from lienthong.node.status.cells import clean
    peer, period = clean(view["peer"], 64), view["period"]

    def say(text: Phrase) -> None:
        click.echo(text.in_language(language))
    if view["state"] in ("requested", "pending"):
        say(Phrase("Reconciliation with {peer} for {period}: pending. {peer} has not answered "
                   "yet; the node keeps asking. See the result later with: lienthong status",
                   peer=peer, period=period))
        return
    if view["state"] == "agreed":
        say(Phrase("✓ Reconciliation with {peer} for {period}: both records agree.",
                   peer=peer, period=period))
        return
    say(Phrase("✗ Reconciliation with {peer} for {period}: {count} difference(s). Nothing was "
               "changed; investigate.", peer=peer, period=period,
               count=len(view["differences"])))
    click.echo(f"{translate(language, 'Message ID'):<34} {translate(language, 'From'):<8} "
               f"{translate(language, 'What'):<22} {translate(language, 'Detail')}")
    us = translate(language, "us")
    for d in view["differences"]:
        direction = us if d["recipient"] == view["peer_node_id"] else peer
        click.echo(f"{d['message_id']:<34} {clean(direction, 8):<8} {d['kind']:<22} "
                   f"{clean(d['detail'], 80)}")
    for kind in sorted({d["kind"] for d in view["differences"]}):
        meaning = DIFFERENCE_TEXT.get(kind)
        click.echo(f"  {kind}: "
                   + (translate(language, meaning) if meaning else DIFFERENCE_KINDS[kind]))
