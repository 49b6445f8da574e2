"""``lienthong message``, ``mark``, ``recall`` and ``track``: documents as the offices know them.

None of these needs the keystore passphrase. ``message`` puts a text file and its sidecar
into the outbox (the same pipeline as a clerk); ``mark`` and ``recall`` leave a request in
the store that the running node signs and sends within a second (node/control/requests.py);
``track`` reads the store and shows a document's whole lifecycle.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from lienthong.config.schema import NodeConfig
from lienthong.node.cli.common import (
    CliError,
    clerk_language,
    home_option,
    open_config,
    wall_clock_now,
)
from lienthong.node.control.asking import ask_recall, ask_status
from lienthong.node.control.lifecycle import lifecycle
from lienthong.node.documents.vocabulary import (
    STATUS_NAMES,
    URGENCY_NAMES,
    describe_names,
    resolve_status,
    resolve_urgency,
)
from lienthong.node.language.names import name_of, show_date, show_time
from lienthong.node.language.text import Phrase, _
from lienthong.node.outbox.drop import write_message
from lienthong.node.store.database import open_store
from lienthong.protocol.status import MAX_NOTE, MAX_REGISTER_NUMBER

_HEX32 = frozenset("0123456789abcdef")


#: The fewest leading characters of a message ID that name a document.
MIN_PREFIX = 6


def _message_id(config: NodeConfig, text: str, what: str = "MESSAGE_ID") -> str:
    """The message ID ``text`` names: a whole one, or its first 6 characters or more when
    exactly one document (not a status or recall) starts with them."""
    value = text.strip().lower()
    if len(value) < MIN_PREFIX or len(value) > 32 or not set(value) <= _HEX32:
        raise CliError(Phrase("{what} must be a message ID (32 hexadecimal characters) or its "
                              "first {min_prefix} characters or more, as shown by 'lienthong "
                              "status' or in a document's .meta.json", what=what,
                              min_prefix=MIN_PREFIX))
    if len(value) == 32:
        return value
    store = open_store(config.store.url)
    try:
        matches = store.documents_with_prefix(value, limit=11)
    finally:
        store.close()
    if not matches:
        raise CliError(Phrase("no document's message ID starts with {value}", value=value))
    if len(matches) > 1:
        listed = "; ".join(f"{mid} ({name})" for mid, name in matches[:10])
        raise CliError(Phrase("{count} documents start with {value}: {listed}; give more "
                              "characters", count=len(matches), value=value, listed=listed))
    return matches[0][0]


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
        raise CliError(Phrase("--urgency {urgency!r} is not known; use one of: {value}",
                              urgency=urgency, value=describe_names(URGENCY_NAMES)))
    try:
        placed = write_message(config, [t.strip() for t in to.split(",") if t.strip()], text,
                               now=time.time(), urgency=level,
                               reply_to=(_message_id(config, reply_to, "--reply-to") if reply_to
                                         else None))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    _say(config, Phrase("Queued the message as {placed}; the running node will send it.",
                        placed=placed))


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
                raise CliError(Phrase("the node refused request {request_id}: {error}",
                                      request_id=request_id, error=request.error))
            _say(config, Phrase("Done: request {request_id} was signed and queued for sending.",
                                request_id=request_id))
            return
        if time.monotonic() >= deadline:
            _say(config, Phrase("Request {request_id} is still waiting; is the node running?",
                                request_id=request_id))
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
    mid = _message_id(config, message_id)
    chosen = resolve_status(status)
    if chosen is None:
        raise CliError(Phrase("STATUS {status!r} is not known; use one of: {value}",
                              status=status, value=describe_names(STATUS_NAMES)))
    if chosen == "registered" and not (register_number or "").strip():
        raise CliError(Phrase("'registered' needs the incoming-register number: --number 152/VP"))
    if chosen == "rejected" and not note.strip():
        raise CliError(Phrase("'rejected' needs the reason: --note \"...\""))
    if len(note) > MAX_NOTE or len(register_number or "") > MAX_REGISTER_NUMBER:
        raise CliError(Phrase("--note is at most {max_note} characters, --number at most "
                              "{max_register_number}", max_note=MAX_NOTE,
                              max_register_number=MAX_REGISTER_NUMBER))
    store = open_store(config.store.url)
    try:
        asked = ask_status(store, mid, chosen, note=note, register_number=register_number,
                           now=wall_clock_now())
    finally:
        store.close()
    request = asked.request
    _say(config, Phrase("Marked {name} as {status}; the running node signs it and sends it to "
                        "the sender (request {request_id}).", name=repr(asked.name),
                        status=Phrase(_STATUS_WORDS.get(chosen, chosen)),
                        request_id=request.id))
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
    mid = _message_id(config, message_id)
    if not reason.strip() or len(reason) > MAX_NOTE:
        raise CliError(Phrase("--reason must be 1 to {max_note} characters", max_note=MAX_NOTE))
    replacement = _message_id(config, replaced_by, "--replaced-by") if replaced_by else None
    store = open_store(config.store.url)
    try:
        asked = ask_recall(store, mid, reason=reason, replaced_by=replacement,
                           now=wall_clock_now())
    finally:
        store.close()
    request = asked.request
    _say(config, Phrase("Recalling {name} from {count} office(s) (request {request_id}); each "
                        "answers with a signed accept or refuse.", name=repr(asked.name),
                        count=asked.recipients, request_id=request.id))
    if wait_seconds:
        _wait(config, request.id, wait_seconds)


@click.command("track")
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@home_option
def track(message_id: str, as_json: bool, home: Path | None) -> None:
    """Show a document's lifecycle: metadata, each office's receipt, statuses, recalls."""
    config = open_config(home)
    mid = _message_id(config, message_id)
    store = open_store(config.store.url)
    try:
        info = lifecycle(store, mid)
    finally:
        store.close()
    if "direction" not in info:
        raise CliError(Phrase("this office neither sent nor received a document {mid}", mid=mid))
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, indent=2, sort_keys=True))
        return
    language = clerk_language(config)
    click.echo(render_lifecycle(info, mid, language))


def _say(config: NodeConfig, sentence: Phrase) -> None:
    click.echo(sentence.in_language(clerk_language(config)))


#: A processing status as ``mark`` names it back (names.STATUSES, lower case in a sentence).
_STATUS_WORDS = {"registered": _("registered"), "assigned": _("assigned"),
                 "in-progress": _("in progress"), "completed": _("completed"),
                 "rejected": _("rejected")}
#: The labels of ``track``'s metadata lines, and which names table (or date) a value reads by.
_TRACK_LABELS = {"type": _("Type"), "number": _("Number"), "issuer": _("Issued by"),
                 "date": _("Date"), "subject": _("Subject"), "signer": _("Signer"),
                 "urgency": _("Urgency"), "confidentiality": _("Confidentiality"),
                 "due": _("Due date"), "reply_to": _("Reply to"), "replaces": _("Replaces")}
_TRACK_TABLES = {"type": "type", "urgency": "urgency", "confidentiality": "confidentiality"}


def render_lifecycle(info: dict[str, Any], mid: str, language: str) -> str:
    """``track``'s lines in ``language``: names of types, states and statuses by their words,
    dates dd/mm/yyyy; what offices wrote (subject, notes, reasons) shown as it is."""
    def _(message: str, /, **fields: Any) -> str:  # said in ``language``; extracted as _
        return Phrase(message, **fields).in_language(language)

    meta = info["meta"]
    direction = _("sent") if info["direction"] == "sent" else _("received")
    lines = [f"{info['name']}  ({direction}, {mid})"]
    for key, label in _TRACK_LABELS.items():
        if key not in meta:
            continue
        value = meta[key]
        if key in _TRACK_TABLES:
            value = name_of(_TRACK_TABLES[key], value, language)
        elif key in ("date", "due"):
            value = show_date(value, language)
        lines.append(f"  {Phrase(label).in_language(language) + ':':17}{value}")
    for office in info.get("recipients", []):
        state = name_of("state", office["delivery"], language)
        lines.append(f"  → {office['office']}: " + (
            _("{state}, receipt {time}", state=state,
                time=show_time(office["receipt_at"], language))
            if office["receipt_at"] else state))
        for status in office["statuses"]:
            lines.append("      " + _status_line(status, language))
    for status in info.get("statuses", []):
        lines.append("  " + _status_line(status, language))
    for item in info["recalls"]:
        line = _("recall ({state}) {time}: {reason}",
                   state=name_of("state", item["state"], language),
                   time=show_time(item["time"], language), reason=item["reason"])
        if item["refusal"]:
            line += f" — {item['refusal']}"
        lines.append("  " + line)
    return "\n".join(lines)


def _status_line(status: dict[str, Any], language: str) -> str:
    chain = Phrase({True: _("chained to receipt"), False: _("NOT chained to the receipt"),
                    None: _("no receipt to chain to")}[status["chained_to_receipt"]])
    number = (" " + Phrase("no. {number}", number=status["register_number"]).in_language(
        language)) if status["register_number"] else ""
    note = f" — {status['note']}" if status["note"] else ""
    return (f"{show_time(status['time'], language)} "
            f"{name_of('status', status['status'], language)}{number}{note} "
            f"[{chain.in_language(language)}]")
