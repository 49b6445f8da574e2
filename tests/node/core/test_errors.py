"""The node's one error hierarchy (node/core/errors.py): every exception class in
lienthong.node derives from ``NodeError``, and the codes are unique and never change."""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from lienthong.node.core.errors import NodeError

ROOT = Path(__file__).resolve().parents[3]

#: Every root (a direct subclass of NodeError) and its code, as node/core/errors.py lists
#: them. A code is part of the interface (logs, scripts): change a line here only with care.
ROOT_CODES = {
    "lienthong.node.audit.heads.BadHead": "bad-audit-head",
    "lienthong.node.audit.report.AuditFailed": "audit-failed",
    "lienthong.node.backup.format.BackupError": "backup-error",
    "lienthong.node.cli.common.CliError": "command-error",
    "lienthong.node.control.requests.RequestRefused": "request-refused",
    "lienthong.node.core.access.AccessError": "clerks-group-unusable",
    "lienthong.node.core.fence.LeaseExpired": "lease-expired",
    "lienthong.node.control.received._Mismatch": "status-mismatch",
    "lienthong.node.documents.metadata_error.MetadataError": "bad-metadata",
    "lienthong.node.edxml.limits.EdxmlError": "bad-edxml",
    "lienthong.node.documents.numbers.NumberError": "bad-number",
    "lienthong.node.documents.programme_items.ProgrammeFileError": "bad-programme",
    "lienthong.node.documents.petitions.PetitionError": "bad-petition",
    "lienthong.node.core.restricted.RestrictedFolderError": "restricted-folder",
    "lienthong.node.petitions.access.NotPetitionStaff": "not-petition-staff",
    "lienthong.node.identity.history.IdentityHistoryError": "identity-history-damaged",
    "lienthong.node.identity.rotation.RotationError": "rotation-refused",
    "lienthong.node.identity.signers.SignerNotOfPeer": "signer-not-of-peer",
    "lienthong.node.inbox.finishing._CannotPublish": "cannot-publish",
    "lienthong.node.inbox.offer_checks.Refusal": "offer-refused",
    "lienthong.node.outbox.pipeline.TargetError": "unknown-target",
    "lienthong.node.outbox.refusals.Refused": "file-refused",
    "lienthong.node.outbox.sidecars.SidecarFound": "sidecar-found",
    "lienthong.node.reconciliation.exchange._Refused": "summary-refused",
    "lienthong.node.report.figures.ReportError": "report-error",
    "lienthong.node.spool.sealing.ChangedWhileSealing": "changed-while-sealing",
    "lienthong.node.status.gather.OwnCardUnreadable": "own-card-unreadable",
    "lienthong.node.store.audit_chain.ChainBroken": "audit-chain-broken",
    "lienthong.node.store.db_thread.DatabaseStopped": "database-stopped",
    "lienthong.node.store.records.StoreError": "store-error",
    "lienthong.node.watch.observer.ObserverUnavailable": "watch-unavailable",
    "lienthong.node.web.accounts.AccountError": "web-account",
    "lienthong.node.web.context.Answer": "web-request-refused",
}


def _node_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of lienthong.node, by its full name."""
    found: dict[str, type[BaseException]] = {}
    for path in sorted((ROOT / "node").rglob("*.py")):
        parts = path.relative_to(ROOT / "node").with_suffix("").parts
        if parts[-1] in ("__init__", "__main__"):  # __main__ runs the command line
            continue
        module = importlib.import_module(".".join(("lienthong.node", *parts)))
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


@pytest.fixture(scope="module")
def exceptions() -> dict[str, type[BaseException]]:
    return _node_exceptions()


def test_every_exception_of_the_node_derives_from_node_error(
        exceptions: dict[str, type[BaseException]]) -> None:
    strays = sorted(name for name, cls in exceptions.items() if not issubclass(cls, NodeError))
    assert strays == [], f"derive these from lienthong.node.core.errors.NodeError: {strays}"


def test_the_roots_and_their_codes_are_the_documented_ones(
        exceptions: dict[str, type[BaseException]]) -> None:
    roots = {name: cls.code for name, cls in exceptions.items()  # type: ignore[attr-defined]
             if NodeError in cls.__bases__}
    assert roots == ROOT_CODES
    documented = (ROOT / "node" / "core" / "errors.py").read_text(encoding="utf-8")
    for name, code in ROOT_CODES.items():
        assert name.rsplit(".", 1)[1] in documented and code in documented, name


def test_codes_are_unique(exceptions: dict[str, type[BaseException]]) -> None:
    """A class that sets its own code does not reuse another's (subclasses may inherit)."""
    owners: dict[str, list[str]] = {}
    for name, cls in exceptions.items():
        if "code" in vars(cls):
            owners.setdefault(vars(cls)["code"], []).append(name)
    assert {code: names for code, names in owners.items() if len(names) > 1} == {}

