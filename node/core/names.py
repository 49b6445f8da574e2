"""File names: which ones the outbox ignores, and how a name from elsewhere is made safe.

Pure functions (no I/O), so they can be tested exhaustively. Two jobs:

* ``is_noise`` keeps editors' lock files, partial downloads and hidden files out of the
  outbox capture (docs/design.md §5.1): a LibreOffice lock file looks exactly like a
  document to the watcher, so the name is the only thing that tells them apart.
* ``safe_file_name`` and ``unique_name`` turn a name that came from somewhere we do not
  control (a peer, or a clerk's folder) into one component that is safe to create inside one
  folder on Linux, on a Samba share and on Windows (docs/reliability.md §2, hostile names).
  Names are attacker data: the result is never a path, never a device name, never our own
  temp prefix, never longer than NAME_MAX bytes, and always NFC so that the Vietnamese
  ``Nguyễn`` written by a macOS client (NFD) and by Windows (NFC) is the same name.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Set

#: Prefix of every temporary file lienthong creates; never taken, never produced.
TEMP_PREFIX = ".lienthong-"
#: NAME_MAX on ext4, XFS, btrfs, NTFS (in UTF-16 units, which this bound also satisfies).
MAX_NAME_BYTES = 255
#: What a name that cleans down to nothing becomes.
FALLBACK_NAME = "document"
#: An "extension" longer than this is treated as part of the name when truncating.
_MAX_EXTENSION_BYTES = 64
#: How many " (n)" suffixes ``unique_name`` tries against a callable before giving up.
_MAX_SUFFIX = 100_000

_NOISE_EXACT = frozenset({"4913", "thumbs.db", "ehthumbs.db", "desktop.ini", ".ds_store"})
_NOISE_SUFFIXES = (
    ".part", ".partial", ".crdownload", ".tmp", ".temp", ".swp", ".swx", ".meta.toml",
)
_NOISE_PREFIXES = (".", "~$", "~syncthing~")

# Unicode categories removed from names: C0/C1/DEL (Cc), format characters such as bidi
# overrides, zero-width spaces and the BOM (Cf: "invoice\u202efdp.exe"), lone surrogates
# left by undecodable bytes (Cs), and line/paragraph separators (Zl, Zp).
_STRIPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_WINDOWS_INVALID = frozenset('<>:"|?*')
_SEPARATORS = re.compile(r"[/\\]")
_SUPERSCRIPT_DIGITS = "\u00b9\u00b2\u00b3"
_RESERVED_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789" + _SUPERSCRIPT_DIGITS}
)


def is_noise(name: str) -> bool:
    """True for temporary, hidden, lock and sidecar names that are never taken as documents.

    Dotfiles cover LibreOffice ``.~lock.x#``, macOS ``._x`` and ``.DS_Store``, emacs ``.#x``,
    gedit ``.goutputstream-*``, rsync ``.x.XXXXXX`` and our own ``.lienthong-*``. Sidecar
    ``*.meta.toml`` files travel with their document, so they are not documents themselves.
    """
    if not name:
        return True
    lowered = name.lower()
    return (
        lowered.startswith(_NOISE_PREFIXES)
        or lowered in _NOISE_EXACT
        or lowered.endswith(_NOISE_SUFFIXES)
        or (lowered.startswith("~wrl") and lowered.endswith(".tmp"))
        or name.endswith("~")
        or (len(name) >= 2 and name.startswith("#") and name.endswith("#"))
    )


def safe_file_name(name: str, *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """Return ``name`` as one component that is safe to create inside a single folder.

    The steps run in this order because each one can undo the previous one's guarantee
    otherwise: NFC first (NFD Vietnamese is longer, so truncating first would cut letters in
    half), then the last path component, then removal of dangerous characters, then the
    Windows rules, then the byte limit. Leading dots are stripped, which also renames
    anything using our ``.lienthong-`` temp prefix. A caller that will append a suffix
    (``.reason.txt``) passes a smaller ``max_bytes``.
    """
    text = unicodedata.normalize("NFC", name)
    components = [part for part in _SEPARATORS.split(text) if part]
    text = components[-1] if components else ""
    text = "".join(
        char for char in text
        if char not in _WINDOWS_INVALID and unicodedata.category(char) not in _STRIPPED_CATEGORIES
    )
    # Removing characters can expose a new composition ("e" + ZWSP + U+0301).
    text = unicodedata.normalize("NFC", text).strip(". ")
    if not text:
        return FALLBACK_NAME
    if _is_reserved_device(text):
        text = "_" + text
    text = _fit(text, min(max_bytes, MAX_NAME_BYTES))
    if not is_safe_component(text):
        # Unreachable by construction; kept so that a future edit fails safe, not open.
        return FALLBACK_NAME
    return text


def is_safe_component(name: str) -> bool:
    """True if ``name`` already satisfies everything ``safe_file_name`` guarantees."""
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return (
        0 < len(encoded) <= MAX_NAME_BYTES
        and name not in (".", "..")
        and name == unicodedata.normalize("NFC", name)
        and name == name.strip(". ")
        and not name.lower().startswith(TEMP_PREFIX)
        and not _SEPARATORS.search(name)
        and not _is_reserved_device(name)
        and all(
            char not in _WINDOWS_INVALID and unicodedata.category(char) not in _STRIPPED_CATEGORIES
            for char in name
        )
    )


def unique_name(existing: Set[str] | Callable[[str], bool], name: str, *,
                max_bytes: int = MAX_NAME_BYTES) -> str:
    """Return ``name`` (NFC), or ``name (2)``, ``name (3)``... whichever does not clash.

    ``existing`` is either the set of names already in the folder or a function that says
    whether a candidate clashes. With a set, two names clash when they are equal after NFC
    and case folding: an ext4 folder may hold the NFC and NFD spellings as two files, and
    Samba, NTFS and macOS clients see ``Báo cáo.pdf`` and ``BÁO CÁO.pdf`` as one, so a new
    file must never land on either. The suffix goes before the extension, and the stem is
    shortened so the result stays within ``max_bytes`` (default NAME_MAX) bytes.
    """
    name = unicodedata.normalize("NFC", name)
    if callable(existing):
        clashes = existing
    else:
        taken = {clash_key(other) for other in existing}

        def clashes(candidate: str) -> bool:
            return clash_key(candidate) in taken

    if not clashes(name):
        return name
    stem, extension = _split_extension(name)
    for number in range(2, _MAX_SUFFIX):
        suffix = f" ({number}){extension}"
        room = max_bytes - len(suffix.encode("utf-8"))
        candidate = _truncate_utf8(stem, room) + suffix
        if not clashes(candidate):
            return candidate
    raise FileExistsError(f"no free variant of {name!r} after {_MAX_SUFFIX} tries")


def clash_key(name: str) -> str:
    """Two names with the same key are the same file to some client (NFC, case folded)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def _is_reserved_device(name: str) -> bool:
    """Windows opens a device for ``CON``, ``con.txt``, ``COM1 .pdf`` and ``COM¹.x`` alike."""
    stem = name.split(".", 1)[0].rstrip(" ")
    return stem.upper() in _RESERVED_DEVICES


def _split_extension(name: str) -> tuple[str, str]:
    """``("report", ".pdf")``; no extension for dotfiles, a bare dot or an absurdly long tail."""
    dot = name.rfind(".")
    if dot <= 0 or dot == len(name) - 1:
        return name, ""
    extension = name[dot:]
    if len(extension.encode("utf-8")) > _MAX_EXTENSION_BYTES:
        return name, ""
    return name[:dot], extension


def _truncate_utf8(text: str, limit: int) -> str:
    """The longest prefix of ``text`` that is at most ``limit`` UTF-8 bytes, still NFC."""
    while len(text.encode("utf-8")) > limit:
        text = text.encode("utf-8")[:max(limit, 0)].decode("utf-8", errors="ignore")
        # Cutting can in rare cases leave a prefix whose NFC form differs; renormalise and
        # cut again until it is stable (each round only shortens the text).
        text = unicodedata.normalize("NFC", text)
    return text


def _fit(name: str, limit: int) -> str:
    """Shorten ``name`` to ``limit`` bytes, keeping its extension and never splitting a letter."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, extension = _split_extension(name)
    stem = _truncate_utf8(stem, limit - len(extension.encode("utf-8"))).rstrip(". ")
    if not stem:
        return _truncate_utf8(name, limit).rstrip(". ") or FALLBACK_NAME
    return stem + extension
