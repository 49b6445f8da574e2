"""Named crash points for the fault-injection suite (tests/faults/).

A fault test starts a real node process with ``LIENTHONG_FAILPOINT=<stage>`` (optionally
``<stage>:<n>`` to trip on the n-th pass) and the node SIGKILLs itself when it reaches that
stage, exactly as a power cut or an OOM kill would stop it there: no cleanup, no flush. The
variable is read once at import; with it unset every call is a dictionary lookup that does
nothing. Stages are listed here so the suite and the code agree on their names.
"""
from __future__ import annotations

import os
import signal

STAGES = frozenset({
    # sender
    "sender-after-take",          # the file is in the spool, nothing sealed or recorded yet
    "sender-during-batch-take",   # a batch's one record in every folder, n files moved in
    "sender-during-seal",         # part of the envelope written
    "sender-before-dispatches-committed",  # a unit of several dispatch rows written, not committed
    "sender-accepted-before-dispatch-committed",  # a small document offered and accepted,
                                                  # its dispatch not committed, no DATA sent
    "sender-mid-transfer",        # some DATA frames written to the receiver
    "sender-before-transfer-notes-committed",  # offered/sent notes written, not committed
    "sender-after-trailer-kept",  # a streamed seal's trailer kept, its digest not recorded
    "sender-before-receipt-stored",  # receipt arrived (receiver has stored), not yet recorded
    # receiver
    "receiver-mid-transfer",      # part of the ciphertext in the partial file
    "receiver-last-data-at-end",  # a small document's last DATA written in its END's hop,
                                  # not yet proven or fsynced
    "receiver-before-inbox-fsync",  # a batch linked into the inbox, the inbox folder not
                                    # fsynced, the staging names still there
    "receiver-after-fsync-before-commit",  # document fsynced into the inbox, not committed
    "receiver-before-stored-committed",  # a batch's stored rows + audit, not committed
    "receiver-after-commit-before-receipt",  # committed, the receipt not yet sent
    "receiver-before-sidecars",   # a batch stored and receipted, its sidecars not written
    "receiver-before-sidecars-flushed",  # sidecars written and renamed, not yet flushed
    "receiver-after-commit-before-copies",  # committed, its edXML copies not yet written
    "receiver-before-control-applied",  # a control document committed, its handler not run
})

_SPEC = os.environ.get("LIENTHONG_FAILPOINT", "")
_NAME, _, _COUNT = _SPEC.partition(":")
_remaining = {_NAME: int(_COUNT or "1")} if _NAME else {}


def failpoint(stage: str) -> None:
    """SIGKILL this process if the configured failpoint is ``stage`` (on its n-th pass)."""
    if stage not in _remaining:
        return
    _remaining[stage] -= 1
    if _remaining[stage] <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
