"""The error refusing a document's metadata, with a reason a clerk can act on (pure)."""
from __future__ import annotations

from lienthong.node.core.errors import NodeError
from lienthong.node.language.text import Phrase


class MetadataError(NodeError):
    """Metadata that will not be sent, with a reason a clerk can act on.

    ``code`` is stable (audit log, tests): ``bad-metadata`` for a sidecar or folder mistake,
    ``confidentiality-refused`` for a class this office may not send to that peer.
    """

    code = "bad-metadata"

    def __init__(self, code: str, reason: str | Phrase, *, petition: bool = False) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        #: The reason as a clerk reads it (a Phrase is translated where it is written, in
        #: the reason file beside the refused document).
        self.reason_text = reason
        self.reason = str(reason)
        #: A citizens' petition's: its file name must not be logged or audited, and
        #: ``reason`` never repeats a value (docs/petitions.md §5).
        self.petition = petition


def refusal(reason: str | Phrase) -> MetadataError:
    """The refusal of a sidecar or folder mistake (``bad-metadata``), for the reason a clerk
    reads."""
    return MetadataError("bad-metadata", reason)
