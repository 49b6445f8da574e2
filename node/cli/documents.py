"""``lienthong message``, ``mark``, ``recall`` and ``track``: documents as the offices know them.

None of these needs the keystore passphrase. ``message`` puts a text file and its sidecar
into the outbox (the same pipeline as a clerk); ``mark`` and ``recall`` leave a request in
the store that the running node signs and sends within a second (node/control/requests.py);
``track`` reads the store and shows a document's whole lifecycle.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from lienthong.config.schema import NodeConfig
from lienthong.keys.errors import KeysError
from lienthong.node.cli.common import CliError, home_option, open_config, wall_clock_now
from lienthong.node.core.access import access_policy
from lienthong.node.core.names import unique_name
from lienthong.node.documents.metadata import (
    MAX_MESSAGE_BYTES,
    SIDECAR_SUFFIX,
    STATUS_NAMES,
    URGENCY_NAMES,
    describe_names,
    resolve_status,
    resolve_urgency,
)
from lienthong.node.outbox.drop import target_folder_name
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.records import PROCESSING_TRANSITIONS, StoreError
from lienthong.protocol.status import MAX_NOTE, MAX_REGISTER_NUMBER, token_sha256

_HEX32 = frozenset("0123456789abcdef")


def _message_id(text: str, what: str = "MESSAGE_ID") -> str:
    value = text.strip().lower()
    if len(value) != 32 or not set(value) <= _HEX32:
        raise CliError(f"{what} must be a message ID: 32 hexadecimal characters, as shown by "
                       "'lienthong track' or in a document's .meta.json")
    return value


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".lienthong-{os.getpid()}-{path.name[:40]}.part")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, path)


def _toml(fields: dict[str, str]) -> bytes:
    # JSON string syntax is valid TOML basic-string syntax for everything json.dumps writes.
    return "".join(f"{key} = {json.dumps(value, ensure_ascii=False)}\n"
                   for key, value in fields.items()).encode("utf-8")


def write_message(config: NodeConfig, targets: list[str], text: str, *, now: float,
                  urgency: str = "normal", reply_to: str | None = None) -> Path:
    """Put ``text`` into ``outbox/<target>/`` as a message: sidecar first, then the .txt."""
    data = text.encode("utf-8")
    if not text.strip():
        raise ValueError("the message is empty")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"a message is at most {MAX_MESSAGE_BYTES // 1024} KiB; send a longer "
                         "text as a document (lienthong send)")
    folder = config.outbox / target_folder_name(targets)
    access_policy(config.node.clerks_group).make_folder(folder, drop=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    name = unique_name(lambda n: os.path.lexists(folder / n)
                       or os.path.lexists(folder / (n + SIDECAR_SUFFIX)), f"{stamp}-message.txt")
    fields = {"type": "message", "urgency": urgency}
    if reply_to:
        fields["reply_to"] = reply_to
    _write_atomically(folder / (name + SIDECAR_SUFFIX), _toml(fields))
    _write_atomically(folder / name, data if data.endswith(b"\n") else data + b"\n")
    return folder / name


@click.command("message")
@click.argument("text")
@click.option("--to", "to", required=True, help="Peer or group name; several joined with commas.")
@click.option("--urgency", default="normal", show_default=True,
              help=f"One of: {describe_names(URGENCY_NAMES)}.")
@click.option("--reply-to", default=None, help="Message ID this message answers.")
@home_option
def message(text: str, to: str, urgency: str, reply_to: str | None, home: Path | None) -> None:
    """Send a short text message (tin nhắn) through the same signed, receipted path."""
    config = open_config(home)
    level = resolve_urgency(urgency)
    if level is None:
        raise CliError(f"--urgency {urgency!r} is not known; use one of: "
                       f"{describe_names(URGENCY_NAMES)}")
    try:
        placed = write_message(config, [t.strip() for t in to.split(",") if t.strip()], text,
                               now=time.time(), urgency=level,
                               reply_to=_message_id(reply_to, "--reply-to") if reply_to else None)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"Queued the message as {placed}; the running node will send it.")


def _wait(config: NodeConfig, request_id: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        store = open_store(config.store.url)
        try:
            request = store.get_control_request(request_id)
        finally:
            store.close()
        if request is not None and request.state != "new":
            if request.state == "failed":
                raise CliError(f"the node refused request {request_id}: {request.error}")
            click.echo(f"Done: request {request_id} was signed and queued for sending.")
            return
        if time.monotonic() >= deadline:
            click.echo(f"Request {request_id} is still waiting; is the node running?")
            return
        time.sleep(0.2)


@click.command("mark")
@click.argument("message_id")
@click.argument("status")
@click.option("--note", default="", help="What was done, or why it is rejected.")
@click.option("--number", "register_number", default=None,
              help="Incoming-register number (số đến); required for 'registered'.")
@click.option("--wait", "wait_seconds", type=float, default=0.0,
              help="Wait up to this many seconds for the node to sign and queue it.")
@home_option
def mark(message_id: str, status: str, note: str, register_number: str | None,
         wait_seconds: float, home: Path | None) -> None:
    """Report what this office did with a received document (signed, sent to its sender).

    STATUS is one of: registered (vào sổ), assigned (phân công), in-progress (đang xử lý),
    completed (hoàn thành), rejected (từ chối).
    """
    config = open_config(home)
    mid = _message_id(message_id)
    chosen = resolve_status(status)
    if chosen is None:
        raise CliError(f"STATUS {status!r} is not known; use one of: "
                       f"{describe_names(STATUS_NAMES)}")
    if chosen == "registered" and not (register_number or "").strip():
        raise CliError("'registered' needs the incoming-register number: --number 152/VP")
    if chosen == "rejected" and not note.strip():
        raise CliError("'rejected' needs the reason: --note \"...\"")
    if len(note) > MAX_NOTE or len(register_number or "") > MAX_REGISTER_NUMBER:
        raise CliError(f"--note is at most {MAX_NOTE} characters, --number at most "
                       f"{MAX_REGISTER_NUMBER}")
    store = open_store(config.store.url)
    try:
        rows = [r for r in store.stored_received(mid) if r.meta.get("kind") not in
                ("status", "recall")]
        if not rows:
            raise CliError(f"no document with message ID {mid} was received by this office")
        done = [s.status for s in store.statuses_for(mid) if s.status in PROCESSING_TRANSITIONS]
        last = done[-1] if done else None
        if chosen not in PROCESSING_TRANSITIONS[last]:
            raise CliError(f"{mid} is already {last!r}; next it can be: "
                           f"{', '.join(sorted(PROCESSING_TRANSITIONS[last])) or 'nothing'}")
        payload = {"status": chosen, "note": note.strip(),
                   "register_number": register_number.strip() if register_number else None}
        request = store.add_control_request("status", mid, payload, wall_clock_now(),
                                            peer=rows[0].sender_node_id)
    finally:
        store.close()
    click.echo(f"Marked {rows[0].name!r} as {chosen}; the running node signs it and sends it "
               f"to the sender (request {request.id}).")
    if wait_seconds:
        _wait(config, request.id, wait_seconds)


@click.command("recall")
@click.argument("message_id")
@click.option("--reason", required=True, help="Why the document is recalled (lý do thu hồi).")
@click.option("--replaced-by", default=None, help="Message ID of the replacement document.")
@click.option("--wait", "wait_seconds", type=float, default=0.0,
              help="Wait up to this many seconds for the node to sign and queue it.")
@home_option
def recall(message_id: str, reason: str, replaced_by: str | None, wait_seconds: float,
           home: Path | None) -> None:
    """Recall a document this office sent (thu hồi): every recipient moves it to recalled/."""
    config = open_config(home)
    mid = _message_id(message_id)
    if not reason.strip() or len(reason) > MAX_NOTE:
        raise CliError(f"--reason must be 1 to {MAX_NOTE} characters")
    replacement = _message_id(replaced_by, "--replaced-by") if replaced_by else None
    store = open_store(config.store.url)
    try:
        row = store.get_dispatch(mid)
        if row is None or row.meta.get("kind") in ("status", "recall"):
            raise CliError(f"no document with message ID {mid} was sent by this office")
        if store.recalls_for(mid):
            raise CliError(f"{row.name!r} has already been recalled")
        request = store.add_control_request(
            "recall", mid, {"reason": reason.strip(), "replaced_by": replacement},
            wall_clock_now())
    finally:
        store.close()
    click.echo(f"Recalling {row.name!r} from {len(row.deliveries)} office(s) (request "
               f"{request.id}); each answers with a signed accept or refuse.")
    if wait_seconds:
        _wait(config, request.id, wait_seconds)


def lifecycle(store: Store, message_id: str) -> dict[str, Any]:
    """Everything the store knows about one document, sent or received, as plain JSON."""
    try:
        directory = store.directory()
    except (KeysError, StoreError):
        directory = None

    def name(node_id: str) -> str:
        """The office's name, also for an identity it had before a rotation."""
        peer = directory.peer_for_identity(node_id) if directory else None
        return peer.name if peer is not None else node_id

    statuses = store.statuses_for(message_id)
    out: dict[str, Any] = {"message_id": message_id}
    dispatch = store.get_dispatch(message_id)
    if dispatch is not None:
        out.update(direction="sent", name=dispatch.name, target=dispatch.target,
                   state=dispatch.state, meta=dict(dispatch.meta), recipients=[])
        for delivery in dispatch.deliveries:
            receipt_sha = token_sha256(delivery.receipt) if delivery.receipt else None
            out["recipients"].append({
                "office": name(delivery.peer_node_id), "node_id": delivery.peer_node_id,
                "delivery": {"queued": "waiting"}.get(delivery.state, delivery.state),
                "receipt_at": delivery.receipt_at, "last_error": delivery.last_error,
                "statuses": [_status(s, receipt_sha) for s in statuses
                             if name(s.peer_node_id) == name(delivery.peer_node_id)]})
    for row in store.stored_received(message_id):
        out.update(direction="received", name=row.name, sender=name(row.sender_node_id),
                   stored_path=row.stored_path, received_at=row.received_at,
                   meta=dict(row.meta),
                   statuses=[_status(s, token_sha256(row.receipt or "")) for s in statuses])
    out["recalls"] = [{"state": r.state, "reason": r.reason, "time": r.time,
                       "replaced_by": r.replaced_by, "refusal": r.refusal,
                       "recalled_path": r.recalled_path}
                      for r in store.recalls_for(message_id)]
    return out


def _status(row: Any, receipt_sha: str | None) -> dict[str, Any]:
    chained = (None if row.receipt_sha256 is None or receipt_sha is None
               else row.receipt_sha256 == receipt_sha)
    return {"status": row.status, "time": row.time, "note": row.note,
            "register_number": row.register_number, "chained_to_receipt": chained}


@click.command("track")
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@home_option
def track(message_id: str, as_json: bool, home: Path | None) -> None:
    """Show a document's lifecycle: metadata, each office's receipt, statuses, recalls."""
    config = open_config(home)
    mid = _message_id(message_id)
    store = open_store(config.store.url)
    try:
        info = lifecycle(store, mid)
    finally:
        store.close()
    if "direction" not in info:
        raise CliError(f"this office neither sent nor received a document {mid}")
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, indent=2, sort_keys=True))
        return
    meta = info["meta"]
    click.echo(f"{info['name']}  ({info['direction']}, {mid})")
    for key in ("type", "number", "issuer", "date", "subject", "signer", "urgency",
                "confidentiality", "due", "reply_to", "replaces"):
        if key in meta:
            click.echo(f"  {key + ':':17}{meta[key]}")
    for office in info.get("recipients", []):
        click.echo(f"  → {office['office']}: {office['delivery']}"
                   + (f", receipt {office['receipt_at']}" if office["receipt_at"] else ""))
        for status in office["statuses"]:
            click.echo("      " + _status_line(status))
    for status in info.get("statuses", []):
        click.echo("  " + _status_line(status))
    for item in info["recalls"]:
        click.echo(f"  recall ({item['state']}) {item['time']}: {item['reason']}"
                   + (f" — {item['refusal']}" if item["refusal"] else ""))


def _status_line(status: dict[str, Any]) -> str:
    chain = {True: "chained to receipt", False: "NOT chained to the receipt",
             None: "no receipt to chain to"}[status["chained_to_receipt"]]
    number = f" số {status['register_number']}" if status["register_number"] else ""
    note = f" — {status['note']}" if status["note"] else ""
    return f"{status['time']} {status['status']}{number}{note} [{chain}]"
