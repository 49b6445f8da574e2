"""A clerk-facing message that is translated where it is shown, not where it is made.

``Phrase("{name} was refused: {reason}", name=..., reason=...)`` keeps the msgid (one whole
sentence with named fields, never fragments) and its fields; ``str()`` is the English text
(logs, exceptions), ``in_language("vi")`` the Vietnamese. Fields are formatted after the
translation, so a translator may reorder them. ``Phrase`` is a Babel extraction keyword
(``babel.cfg``), so a message made this way is in the catalog like any ``_()``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lienthong.node.language.catalog import translate


def _(message: str) -> str:
    """Marks a msgid for extraction where the translation happens later (a table of names)."""
    return message


@dataclass(frozen=True, slots=True, init=False)
class Phrase:
    message: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, message: str, /, **fields: Any) -> None:
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "fields", dict(fields))

    def in_language(self, language: str) -> str:
        return translate(language, self.message).format(**self.fields)

    def __str__(self) -> str:
        return self.message.format(**self.fields)
