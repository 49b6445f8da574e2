"""The documents pages: the list, one document, its actions (mark, recall), and sending.

The clerk's actions take the node's own paths: marking and recalling are
``control.asking`` (what ``lienthong mark``/``recall`` call), a message is
``outbox.drop.write_message`` (``lienthong message``), an upload is ``outbox.drop.drop_upload``
(written in ``tmp/``, fsynced, renamed into ``outbox/<peer>/`` with its sidecar): from there
the outbox pipeline does the rest, refusals, receipts and audit unchanged. Each action is
audited (``web-action``) with the user's name.
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred

from lienthong.node.control.asking import ask_recall, ask_status
from lienthong.node.core.names import safe_file_name
from lienthong.node.documents.metadata import MAX_MESSAGE_BYTES, document_meta
from lienthong.node.documents.metadata_error import MetadataError
from lienthong.node.documents.vocabulary import (
    CONFIDENTIALITY_NAMES,
    STATUS_NAMES,
    URGENCY_NAMES,
)
from lienthong.node.language.catalog import translate
from lienthong.node.language.names import name_of
from lienthong.node.language.text import Phrase
from lienthong.node.outbox.drop import drop_upload, write_message
from lienthong.node.web import views
from lienthong.node.web.context import Answer, PageContext, multipart_fields


def documents(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    query = views.DocumentQuery.from_args(ctx.args())
    rows = yield ctx.status.reads.run(views.documents, query)
    offices = sorted(p.name for p in ctx.rt.directory.peers)
    ctx.page("documents.html", page="documents", title=translate(ctx.lang, "Documents"),
             query=query, rows=rows, offices=offices,
             types=(*ctx.rt.config.documents.types, "message"))


def document(ctx: PageContext, message_id: str) -> Generator[Deferred[Any], Any, None]:
    doc = yield ctx.status.reads.run(views.document, message_id.lower()[:32])
    if doc is None:
        raise Answer(404, Phrase("This office neither sent nor received that document."))
    title = doc["meta"].get("number") or doc["name"]
    ctx.page("document.html", page="documents", title=title, doc=doc,
             statuses=list(STATUS_NAMES))


def document_action(ctx: PageContext, message_id: str,
                    action: str) -> Generator[Deferred[Any], Any, None]:
    mid = message_id.lower()[:32]
    rt = ctx.rt
    if action == "mark":
        asked = yield rt.db(ask_status, rt.store, mid, ctx.arg("status"),
                            note=ctx.arg("note"),
                            register_number=ctx.arg("register_number") or None,
                            now=rt.now_text())
        text = Phrase("{name} is marked {status}; the node signs it and tells the sender.",
                      name=asked.name, status=name_of("status", asked.status, ctx.lang))
    elif action == "recall":
        asked = yield rt.db(ask_recall, rt.store, mid, reason=ctx.arg("reason"),
                            replaced_by=None, now=rt.now_text())
        text = Phrase("{name} is being recalled from {count} office(s).", name=asked.name,
                      count=asked.recipients)
    else:
        raise Answer(404, Phrase("There is no such page."))
    yield rt.audit("web-action", message_id=mid, user=ctx.user, action=action,
                   request=asked.request.id)
    raise ctx.done_with(text, f"/documents/{mid}")


def _targets(ctx: PageContext) -> list[str]:
    """The trusted offices and the groups this node sends to, as the send form lists them."""
    peers = [p.name for p in ctx.rt.directory.peers if p.state == "trusted"]
    return sorted(peers) + sorted(ctx.rt.config.groups)


def _target(ctx: PageContext, chosen: str) -> str:
    if chosen not in _targets(ctx):
        raise Answer(400, Phrase("{target} is not an office or group this node sends to.",
                                 target=chosen))
    return chosen


def send_form(ctx: PageContext) -> None:
    ctx.page("send.html", page="send", title=translate(ctx.lang, "Send"),
             targets=_targets(ctx), types=ctx.rt.config.documents.types,
             urgencies=list(URGENCY_NAMES), classes=list(CONFIDENTIALITY_NAMES))


def send_message(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    target = _target(ctx, ctx.arg("to"))
    urgency = ctx.arg("urgency") or "normal"
    if urgency not in URGENCY_NAMES:
        raise Answer(400, Phrase("The urgency {urgency} is not known.", urgency=urgency))
    text = ctx.arg("text")
    if not text.strip():
        raise Answer(400, Phrase("The message is empty; write its text first."))
    if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise Answer(400, Phrase("A message is at most {kib} KiB; send a longer text as a "
                                 "document.", kib=MAX_MESSAGE_BYTES // 1024))
    rt = ctx.rt
    try:
        placed = yield rt.io(write_message, rt.config, [target], text, now=rt.now(),
                             urgency=urgency)
    except ValueError as exc:
        raise Answer(400, Phrase("The message was not sent: {reason}",
                                 reason=str(exc))) from None
    yield rt.audit("web-action", user=ctx.user, action="message", target=target,
                   file=placed.name)
    raise ctx.done_with(Phrase("The message to {target} is queued.", target=target), "/send")


def send_document(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    form = multipart_fields(ctx.request)
    upload = form.get("file")
    if not isinstance(upload, tuple) or not upload[1]:
        raise Answer(400, Phrase("Choose the file to send."))
    filename, data = upload
    target = _target(ctx, str(form.get("to", "")))
    fields = {key: str(form[key]).strip() for key in (
        "type", "number", "urgency", "confidentiality", "subject", "signer", "due")
        if str(form.get(key, "")).strip()}
    rt = ctx.rt
    settings = rt.config.documents
    try:
        document_meta(fields, types=settings.types, notation=settings.number_notation,
                      lenient_numbers=settings.lenient_numbers)
    except MetadataError as exc:
        raise Answer(400, Phrase("The document was not sent: {reason}",
                                 reason=exc.reason_text)) from None
    name = safe_file_name(filename or "document")
    placed = yield rt.io(drop_upload, rt.config, [target], name, data, fields)
    yield rt.audit("web-action", user=ctx.user, action="upload", target=target,
                   file=placed.name, bytes=len(data))
    raise ctx.done_with(Phrase(
        "{name} is in the outbox for {target}; its receipt will show on the documents "
        "page.", name=placed.name, target=target), "/send")
