"""The one sentence a command's error becomes, in the clerk's language.

The node's errors carry their sentence as a ``Phrase`` (``NodeError.text``); the layers under
the node cannot import the catalog (node/language/ is part of the node), so ``ConfigError`` and
``KeysError`` carry an English format string and its fields (``template``, ``fields``), and
the sentence is looked up here, at the edge, like any other msgid. An error made without
either is shown as its English ``str()``: still one plain sentence, never a traceback.
"""
from __future__ import annotations

from lienthong.node.language.catalog import translate
from lienthong.node.language.text import Phrase


def error_sentence(error: BaseException, language: str) -> str:
    """``error``'s message in ``language``."""
    text = getattr(error, "text", None)
    if isinstance(text, Phrase):
        return text.in_language(language)
    template = getattr(error, "template", None)
    if isinstance(template, str) and template:
        # A field that is itself an error ("... not usable: {error}") is said in the language
        # of the sentence around it.
        fields = {key: error_sentence(value, language) if isinstance(value, BaseException)
                  else value for key, value in (getattr(error, "fields", None) or {}).items()}
        try:
            return translate(language, template).format(**fields) if fields else \
                translate(language, template)
        except (KeyError, IndexError, ValueError):
            pass  # a translation that lost a field: the English sentence is still right
    return str(error)
