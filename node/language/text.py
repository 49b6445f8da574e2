"""A clerk-facing message that is translated where it is shown, not where it is made.

``Phrase("{name} was refused: {reason}", name=..., reason=...)`` keeps the msgid (one whole
sentence with named fields, never fragments) and its fields; ``str()`` is the English text
(logs, exceptions), ``in_language("vi")`` the Vietnamese. Fields are formatted after the
translation, so a translator may reorder them; a field may itself be a ``Phrase`` (a name such
as "annual programme"), translated with the sentence. ``as_json``/``from_json`` carry a phrase
through JSON (the status snapshot, the status API) to where it is shown. ``Phrase`` is a Babel
extraction keyword (``babel.cfg``), so a message made this way is in the catalog like any ``_()``.
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
        # a field that is an error ("... not usable: {error}") is said in this language too
        fields = {key: value.in_language(language) if isinstance(value, Phrase)
                  else shown(from_error(value), language) if isinstance(value, BaseException)
                  else value for key, value in self.fields.items()}
        return translate(language, self.message).format(**fields)

    def __str__(self) -> str:
        return self.message.format(**{key: str(value) if isinstance(value, Phrase) else value
                                      for key, value in self.fields.items()})

    def as_json(self) -> dict[str, Any]:
        return {"phrase": self.message, "fields": {
            key: value.as_json() if isinstance(value, Phrase) else value
            for key, value in self.fields.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Phrase:
        return cls(data["phrase"], **{
            key: cls.from_json(value) if isinstance(value, Mapping) and "phrase" in value
            else value for key, value in (data.get("fields") or {}).items()})


def from_error(error: BaseException) -> Phrase | str:
    """An error's sentence as a Phrase when it carries one: ``text`` (the node's errors), or
    ``template`` and ``fields`` (config/ and keys/, which cannot import this room); else its
    English ``str()``."""
    text = getattr(error, "text", None)
    if isinstance(text, Phrase):
        return text
    template = getattr(error, "template", None)
    if isinstance(template, str) and template:
        return Phrase(template, **(getattr(error, "fields", None) or {}))
    return str(error)


def shown(text: str | Phrase, language: str) -> str:
    """``text`` as the clerk reads it: a Phrase translated, a plain string as it is."""
    return text.in_language(language) if isinstance(text, Phrase) else text
