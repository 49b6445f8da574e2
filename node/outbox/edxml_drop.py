"""An ``.edxml`` file in the outbox: read safely, then sent as one document, or turned into the
recall or status it asks for (node/edxml/intake.py says what each becomes).

A document message becomes one dispatch whose payload is the edXML file itself, untouched (so
the receiver gets exactly the package the sending system produced, and the receipt's SHA-256
vouches for it), with its header mapped into the signed metadata. A recall or a status message
leaves a control request, as ``lienthong recall`` and ``lienthong mark`` do, and the file is
filed into ``sent/<target>/`` as the record of what was asked. A refusal moves the file into
``failed/`` with a reason a clerk can act on, audited; nothing is sent.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger

from lienthong.node.core.access import AccessPolicy, access_policy
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.names import unique_name
from lienthong.node.edxml.intake import (
    document_meta_for,
    queue_recall,
    queue_status,
    read_edxml,
    replaced_document,
)
from lienthong.node.edxml.limits import EdxmlError, Limits
from lienthong.node.edxml.message import RECALL, StatusMessage
from lienthong.node.language.text import Phrase
from lienthong.node.outbox.sidecars import Prepared
from lienthong.node.runtime.node_runtime import NodeRuntime

log = Logger(namespace="lienthong.outbox")


def edxml_limits(rt: NodeRuntime) -> Limits:
    max_bytes = rt.config.edxml.max_mib * 1024 * 1024
    return Limits(max_bytes=max_bytes,
                  max_attachment_bytes=min(max_bytes, rt.config.max_document_bytes))


def file_into_sent(path: Path, folder: Path, access: AccessPolicy) -> Path:
    """Blocking: move a handled recall or status file into ``folder`` under a free name,
    with the access rule (node/core/access.py)."""
    access.make_folder(folder)
    target = folder / unique_name(lambda n: os.path.lexists(folder / n), path.name)
    os.rename(path, target)
    access.settle(target)
    fsync_dir(folder)
    fsync_dir(path.parent)
    return target


@inlineCallbacks
def prepare_edxml(rt: NodeRuntime, path: Path, target: str, recipients: list[str],
                  message_id: str, refuse: Callable[[Path, str, str | Phrase], Deferred]):
    """A ``Prepared`` to take the edXML document with, or None when it was refused or was a
    recall or status (then it is already handled)."""
    try:
        message = yield rt.io(read_edxml, path, edxml_limits(rt))
        if isinstance(message, StatusMessage):
            mid, request = yield rt.db(queue_status, rt.store, message, rt.now_text())
            yield _filed(rt, path, target, "edxml-status-queued", mid, request)
            return None
        if message.business.doc_type == RECALL:
            mid, request = yield rt.db(queue_recall, rt.store, message, rt.now_text())
            yield _filed(rt, path, target, "edxml-recall-queued", mid, request)
            return None
        replaces = yield rt.db(replaced_document, rt.store, message)
        meta = document_meta_for(
            message, file_name=path.name, recipients=[rt.peer_name(n) for n in recipients],
            organ_ids=rt.config.edxml.offices, types=rt.config.documents.types,
            replaces=replaces)
    except EdxmlError as exc:
        yield refuse(path, exc.code, exc.reason_text)
        return None
    except OSError as exc:
        yield refuse(path, "bad-edxml", Phrase("the edXML file could not be read ({problem}); "
                                               "put it back in the outbox",
                                               problem=exc.strerror))
        return None
    return Prepared(message_id=message_id, meta=meta, sidecar=None, spool_dir=rt.config.spool)


@inlineCallbacks
def _filed(rt: NodeRuntime, path: Path, target: str, kind: str, message_id: str,
           request: int):
    where = yield rt.io(file_into_sent, path, rt.config.sent / target,
                        access_policy(rt.config.node.clerks_group))
    yield rt.audit(kind, message_id=message_id, request=request, name=path.name,
                   filed=str(where))
    log.info("{name!r}: {kind} for {mid} (request {request})", name=path.name, kind=kind,
             mid=message_id, request=request)
