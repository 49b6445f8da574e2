"""What one edXML message may hold, and the error that refuses one (pure).

:class:`Limits` bounds a message (its bytes, its attachments' count and decoded bytes); the
constants bound a field's text and the pieces the parser is fed. Every refusal anywhere in
reading a message is an :class:`EdxmlError` whose ``reason`` tells a clerk what is wrong and
what to do (docs/edxml.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from lienthong.node.core.errors import NodeError
from lienthong.node.language.text import Phrase

#: A message of this many bytes or more is refused before it is parsed (docs/edxml.md).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_ATTACHMENTS = 100
#: Longest text of a field; Content (the document's text, 1.7) may be longer.
MAX_FIELD = 2000
MAX_CONTENT = 200_000
#: Bytes fed to the XML parser at a time, and characters of base64 text decoded at a time
#: (small: expat and the decoder each hold a few of them; larger chunks were no faster).
CHUNK = 64 * 1024


class EdxmlError(NodeError):
    """An edXML message that will not be used, with a reason a clerk can act on.

    ``code`` is stable (audit log, tests): ``bad-edxml`` for a malformed or hostile message,
    ``edxml-too-large`` for one over the size limit, ``edxml-wrong-recipient`` for a header
    naming an office this dispatch does not go to, ``edxml-unknown-document`` for a recall,
    replacement or status naming a document this office does not know.
    """

    code = "bad-edxml"

    def __init__(self, code: str, reason: str | Phrase) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        #: The reason as a clerk reads it, translated where it is shown (the reason file in
        #: failed/, the command line's edge); ``reason`` is its English (audit log, log).
        self.reason_text = reason
        self.reason = str(reason)
        if isinstance(reason, Phrase):
            self.text = reason


def bad_edxml(reason: Phrase) -> EdxmlError:
    """A malformed or hostile message (``bad-edxml``), for the reason a clerk reads."""
    return EdxmlError("bad-edxml", reason)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one message may hold; ``max_attachment_bytes`` bounds the decoded total."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_attachment_bytes: int = DEFAULT_MAX_BYTES
    max_attachments: int = MAX_ATTACHMENTS


def too_large(size: int, limits: Limits) -> EdxmlError:
    return EdxmlError("edxml-too-large", Phrase(
        "the edXML file is {size} bytes, more than the {limit} bytes this office accepts. "
        "Send the attachments as separate documents, or ask the administrator to raise "
        "[edxml] max_mib in lienthong.toml.", size=size, limit=limits.max_bytes))

