"""The confidentiality rule: a guarded class (secret, top-secret) goes to or comes from a
peer only where ``[confidentiality]`` allows it for that peer or a group it belongs to (pure)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from lienthong.config.schema import GUARDED_CLASSES
from lienthong.node.documents.metadata_error import MetadataError
from lienthong.node.documents.vocabulary import CONFIDENTIALITY_NAMES
from lienthong.node.language.text import Phrase


def not_allowed(confidentiality: str, peers: Iterable[str], *,
                allowed: Mapping[str, tuple[str, ...]],
                groups: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The peers ``[confidentiality]`` does not allow this class for, sending or receiving:
    a guarded class (secret, top-secret) must be listed under the peer's name or under a
    group the peer belongs to; the others need no permission."""
    if confidentiality not in GUARDED_CLASSES:
        return []
    refused = []
    for peer in peers:
        names = [peer] + [group for group, members in groups.items() if peer in members]
        if not any(confidentiality in allowed.get(name, ()) for name in names):
            refused.append(peer)
    return refused


def check_confidentiality(confidentiality: str, recipients: Iterable[str], *,
                          allowed: Mapping[str, tuple[str, ...]],
                          groups: Mapping[str, tuple[str, ...]]) -> None:
    """Refuse a guarded class (secret, top-secret) unless allowed for every recipient.

    ``recipients`` are peer names. A class is allowed for a peer when ``[confidentiality]``
    lists it under the peer's name or under a group the peer belongs to.
    """
    refused = not_allowed(confidentiality, recipients, allowed=allowed, groups=groups)
    if refused:
        raise MetadataError("confidentiality-refused", Phrase(
            "confidentiality: this document is marked {code} ({name}), and this office is not "
            "allowed to send {code} documents to {offices}. Only classes normal and "
            "confidential may be sent without permission; the administrator can allow it in "
            "lienthong.toml, e.g. [confidentiality] {office} = [\"{code}\"]. Otherwise send it "
            "by the channel for secret documents.", code=confidentiality,
            name=CONFIDENTIALITY_NAMES[confidentiality][0], offices=", ".join(sorted(refused)),
            office=sorted(refused)[0]))
