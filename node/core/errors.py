"""The node's one error hierarchy: every exception raised in lienthong.node derives from
``NodeError``.

An error carries two things: ``code``, a stable machine word (a class attribute; log fields,
tests and scripts may rely on it, so a code is never renamed or reused), and its message
(``str(error)``), one plain sentence a clerk or an IT officer can act on. The command line
catches ``NodeError`` once, at its edge (node/cli/main.py), and prints that sentence instead of
a traceback; the protocol has the same shape for what a peer sends (lienthong/protocol/errors.py).

A few errors (``Refused``, ``MetadataError``, the inbox's ``Refusal``, reconciliation's
``_Refused``) also set ``code`` on the
instance, to a finer reason from their own table; the class code names the family.

The roots and their codes (a subclass inherits its root's code unless it has its own)::

    NodeError                 node-error
    core         AccessError                 clerks-group-unusable
                 RestrictedFolderError       restricted-folder
                 LeaseExpired                lease-expired
    store        StoreError                  store-error
                 DatabaseStopped             database-stopped
                 ChainBroken                 audit-chain-broken
    identity     IdentityHistoryError        identity-history-damaged
                 RotationError               rotation-refused
                 SignerNotOfPeer             signer-not-of-peer
    spool        ChangedWhileSealing         changed-while-sealing
    watch        ObserverUnavailable         watch-unavailable
    documents    MetadataError               bad-metadata
    edxml        EdxmlError                  bad-edxml
                 NumberError                 bad-number
                 ProgrammeFileError          bad-programme
                 PetitionError               bad-petition
    outbox       SidecarFound                sidecar-found
                 Refused                     file-refused
                 TargetError                 unknown-target
    inbox        _CannotPublish              cannot-publish
                 Refusal                     offer-refused
    audit        AuditFailed                 audit-failed
                 BadHead                     bad-audit-head
    status       OwnCardUnreadable           own-card-unreadable
    backup       BackupError                 backup-error
    report       ReportError                 report-error
    control      RequestRefused              request-refused
    petitions    NotPetitionStaff            not-petition-staff
                 _Mismatch                   status-mismatch
    reconciliation _Refused                  summary-refused
    web          AccountError                web-account
                 Answer                      web-request-refused
    cli          CliError                    command-error

tests/node/core/test_errors.py holds the same table: it fails when an exception class in
lienthong.node does not derive from ``NodeError`` or a code changes or repeats.

An error made with a ``Phrase`` (``NodeError(Phrase("{name} ...", name=...))``) keeps it as
``text``: ``str(error)`` is the English sentence (logs), and the command line's edge shows
``text`` in the clerk's language (node/cli/errors.py).
"""
from __future__ import annotations

from typing import Any

from lienthong.node.language.text import Phrase


class NodeError(Exception):
    """Base class: something the node cannot do, said in plain language (``str(error)``)."""

    code = "node-error"
    #: The sentence as a translatable message, when the error was made with one.
    text: Phrase | None = None

    def __init__(self, *args: Any) -> None:
        if args and isinstance(args[0], Phrase):
            self.text = args[0]
            args = (str(args[0]), *args[1:])
        super().__init__(*args)
