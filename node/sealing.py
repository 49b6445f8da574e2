"""Seal a spooled document into its envelope file (blocking: runs in a worker thread).

One pass over the plaintext both encrypts and hashes it; the signed header can only be made at
the end, when the size and digests are known. The ciphertext lands in ``envelope.bin`` beside
the spooled plaintext, so a transfer can later resume from any byte offset of a file that
never changes, and the header token is kept in ``header.jws``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nacl.public

from keys.identity import NodeKeys
from node.failpoints import failpoint
from node.home import fsync_dir
from node.writeback import Writeback
from protocol.envelope import SealedEnvelope, Sealer

#: 4 MiB: fewer Python turns per GiB; a few MiB in flight is nothing beside the RSS budget.
READ_SIZE = 4 * 1024 * 1024
PAYLOAD = "payload"
ENVELOPE = "envelope.bin"
HEADER = "header.jws"


class ChangedWhileSealing(Exception):
    """The spooled file changed size while it was being read (it should be ours alone)."""


def seal_spooled(spool_dir: Path, *, node_keys: NodeKeys,
                 recipients: Mapping[str, tuple[str, nacl.public.PublicKey]], name: str,
                 message_id: str, created: str, meta: Mapping[str, Any] | None = None
                 ) -> SealedEnvelope:
    """Encrypt ``spool_dir/payload`` for ``recipients`` and sign; write envelope and header."""
    current = node_keys.current_encryption
    tmp = spool_dir / ".lienthong-envelope.part"
    with open(spool_dir / PAYLOAD, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        sealer = Sealer(identity=node_keys.identity, sender=node_keys.node_id,
                        sender_key=(current.kid, current.private.public_key),
                        recipients=recipients, name=name, size=size, message_id=message_id,
                        created=created, meta=meta)
        with open(tmp, "wb") as sink:
            writeback = Writeback(sink.fileno())
            while block := source.read(READ_SIZE):
                sealed_block = sealer.feed(block)
                sink.write(sealed_block)
                writeback.wrote(len(sealed_block))
                failpoint("sender-during-seal")
            try:
                sealed = sealer.finish()
            except Exception as exc:
                raise ChangedWhileSealing(f"{name!r} changed size while it was sealed") from exc
            sink.write(sealed.tail)
            sink.flush()
            os.fsync(sink.fileno())
    os.replace(tmp, spool_dir / ENVELOPE)
    (spool_dir / HEADER).write_text(sealed.header_token + "\n", encoding="ascii")
    fsync_dir(spool_dir)
    return sealed
