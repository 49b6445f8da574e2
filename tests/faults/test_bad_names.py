"""Hostile and awkward file names, from a peer and from the clerk's outbox.

From a peer, the name is attacker data inside a correctly signed envelope (mallory, an
enrolled identity, signs what it likes; tests/faults/hostile.py). The receiver either refuses
the envelope (what the envelope format forbids: separators, NUL, non-NFC, over 255 bytes) with
a specific code and a security event, or stores the document under a safe name inside
``inbox/<sender>/``: never outside it, never over an existing file or through a symlink, never
under a name that looks like a temporary or partial file, always with the original name in
``.meta.json``. From the outbox, the same names must be captured or refused with a reason.
"""
from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lienthong.keys import jws
from lienthong.node.core.names import TEMP_PREFIX, clash_key, is_noise, is_safe_component
from lienthong.protocol.envelope import ENVELOPE_TYP
from lienthong.protocol.events import Receipt, Reject
from tests.faults.hostile import (
    HostileClient,
    Identity,
    card_of,
    enrol,
    make_identity,
    resign,
    seal,
)
from tests.integration.harness import (
    TestNode,
    make_network,
    sent_all,
    sha256,
    spool_entries,
    wait_for,
)

VIET_253 = "Ệ" * 83 + ".pdf"  # 83 x 3 + 4 = 253 UTF-8 bytes in NFC
assert len(VIET_253.encode()) == 253


@dataclass
class Arena:
    alpha: TestNode
    beta: TestNode
    mallory: Identity
    base: Path

    @property
    def folder(self) -> Path:
        return self.beta.inbox / "mallory"


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    base = tmp_path_factory.mktemp("names")
    nodes = make_network(base, ["alpha", "beta"])
    mallory = make_identity(base / "mallory", "mallory")
    enrol(nodes["beta"], mallory)
    nodes["beta"].start()
    nodes["alpha"].start()
    try:
        yield Arena(nodes["alpha"], nodes["beta"], mallory, base)
    finally:
        nodes["alpha"].kill()
        nodes["beta"].kill()


def _send_named(arena: Arena, name: str, data: bytes):  # type: ignore[no-untyped-def]
    """Deliver ``data`` from mallory under ``name`` exactly as written (signed by hand)."""
    sealed = seal(arena.mallory, card_of(arena.beta), data, name="placeholder.bin")
    named = resign(sealed, arena.mallory, name=name)
    client = HostileClient(arena.beta, arena.mallory)
    try:
        client.hello()
        return named, client.deliver(named)
    finally:
        client.close()


def _files_outside_inbox(arena: Arena) -> set[Path]:
    """Every file under the arena except mallory's inbox and what the nodes write for
    themselves (store, logs, spool, sent, partial transfers)."""
    own = ("state", "logs", "spool", "sent", "tmp", "keys")
    found = set()
    for path in arena.base.rglob("*"):
        relative = path.relative_to(arena.base).parts
        if len(relative) > 1 and relative[1] in own:
            continue
        if path.is_relative_to(arena.folder) or path.is_dir():
            continue
        found.add(path)
    return found


def _sidecars(folder: Path) -> list[dict]:
    """The ``.meta.json`` sidecars of ``folder`` that are complete: each is renamed into place
    whole, a moment after its document's receipt (node/inbox/publication.py)."""
    return [json.loads(meta_file.read_text()) for meta_file in folder.glob("*.meta.json")]


def _stored(arena: Arena, message_id: str) -> tuple[Path, dict]:
    found: list[dict] = []

    def written() -> bool:  # both sidecars: the receipt's is renamed into place last
        found[:] = [meta for meta in _sidecars(arena.folder) if meta["message_id"] == message_id
                    and (arena.folder / (meta["stored_as"] + ".receipt.jws")).exists()]
        return bool(found)
    wait_for(written, timeout=30, what=f"the sidecars of {message_id} in {arena.folder}")
    return arena.folder / found[0]["stored_as"], found[0]


ACCEPTED = {
    "dot-dot": "..",
    "dot": ".",
    "three-dots": "...",
    "control-characters": "bao\ncao\r\t\x1b[31m.pdf",
    "bidi-override": "invoice\u202efdp.exe",
    "zero-width": "ha\u200bnoi\ufeff.pdf",
    "windows-device": "CON",
    "windows-device-extension": "con.txt",
    "windows-device-space": "COM1 .pdf",
    "windows-device-superscript": "LPT\u00b9.txt",
    "windows-invalid-characters": 'a<b>c:"d|e?f*.txt',
    "drive-letter-without-slash": "C:boot.ini",
    "trailing-dot-space": "bao-cao.pdf. ",
    "our-temp-prefix": TEMP_PREFIX + "envelope.part",
    "partial-suffix": "bien-ban.part",
    "looks-like-our-partial": "0123456789abcdef0123456789abcdef-0123456789abcdef.part",
    "office-lock": "~$hop-dong.docx",
    "desktop-ini": "desktop.ini",
    "hidden": ".bashrc",
    "html": "<img src=x onerror=alert(1)>.pdf",
    "sql": "x'); DROP TABLE received;--.pdf",
    "vietnamese-253-bytes": VIET_253,
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_peer_name_is_stored_safely(arena: Arena, case: str) -> None:
    """A name the envelope allows is stored inside inbox/mallory/ under a safe, non-temporary
    name, byte-identical, with the original name in its metadata; nothing lands elsewhere."""
    name = ACCEPTED[case]
    data = f"noi dung {case}\n".encode() * 50
    before = _files_outside_inbox(arena)
    sealed, answer = _send_named(arena, name, data)
    assert isinstance(answer, Receipt), answer
    path, meta = _stored(arena, sealed.message_id)
    assert meta["name"] == name
    assert path.resolve().parent == arena.folder.resolve()
    assert is_safe_component(path.name), path.name
    assert not is_noise(path.name) and not path.name.lower().startswith(TEMP_PREFIX), (
        f"stored as {path.name!r}, which looks like a temporary or partial file to the node "
        "itself, to its own checkers and to hot-folder tools reading the inbox")
    assert not path.is_symlink() and path.read_bytes() == data
    assert _files_outside_inbox(arena) == before


def test_same_name_twice_never_overwrites_and_stays_within_255_bytes(arena: Arena) -> None:
    """Two documents with the same 253-byte Vietnamese name: both kept, the second with a
    suffix, still at most 255 bytes and NFC; the first is untouched."""
    first_data, second_data = b"ban thu nhat\n" * 20, b"ban thu hai\n" * 20
    first, answer = _send_named(arena, VIET_253 + "", first_data)
    assert isinstance(answer, Receipt)
    second, answer = _send_named(arena, VIET_253, second_data)
    assert isinstance(answer, Receipt)
    path1, _ = _stored(arena, first.message_id)
    path2, meta2 = _stored(arena, second.message_id)
    assert path1 != path2 and path1.read_bytes() == first_data and path2.read_bytes() == second_data
    assert len(path2.name.encode()) <= 255 and unicodedata.is_normalized("NFC", path2.name)
    assert meta2["name"] == VIET_253


def test_existing_file_and_symlink_are_never_written_through(arena: Arena) -> None:
    """A file and a symlink (to a file outside) already sit at the names mallory sends: both
    are left as they were and the documents get other names."""
    arena.folder.mkdir(parents=True, exist_ok=True)
    existing = arena.folder / "hop-dong.pdf"
    existing.write_bytes(b"do not touch")
    outside = arena.base / "outside-target.txt"
    outside.write_bytes(b"outside")
    (arena.folder / "lien-ket.pdf").symlink_to(outside)
    for name in ("hop-dong.pdf", "lien-ket.pdf"):
        sealed, answer = _send_named(arena, name, b"moi\n" * 10)
        assert isinstance(answer, Receipt)
        path, _ = _stored(arena, sealed.message_id)
        assert path.name != name and path.read_bytes() == b"moi\n" * 10
    assert existing.read_bytes() == b"do not touch"
    assert outside.read_bytes() == b"outside" and (arena.folder / "lien-ket.pdf").is_symlink()


@pytest.mark.parametrize("existing", ["case", "nfd-on-disk"])
def test_names_that_collide_after_nfc_and_case_folding_get_a_suffix(arena: Arena,
                                                                    existing: str) -> None:
    """A name is already in the inbox (from this peer, or written in NFD by an SMB or macOS
    client); the peer's 'BÁO CÁO QUÝ.pdf' or NFC spelling is the same file to Windows, Samba
    and macOS clients, so it must be stored under another name, not beside it."""
    folder = arena.folder
    folder.mkdir(parents=True, exist_ok=True)
    if existing == "case":
        first, answer = _send_named(arena, "Báo cáo quý.pdf", b"quy 1\n" * 10)
        assert isinstance(answer, Receipt)
        incoming = "BÁO CÁO QUÝ.pdf"
    else:
        incoming = "Công văn mật số 9.pdf"
        (folder / unicodedata.normalize("NFD", incoming)).write_bytes(b"from an smb client")
    sealed, answer = _send_named(arena, incoming, b"quy 2\n" * 10)
    assert isinstance(answer, Receipt)
    path, meta = _stored(arena, sealed.message_id)
    clashing = [p.name for p in folder.iterdir() if p != path and
                clash_key(p.name) == clash_key(path.name)]
    assert clashing == [], f"{path.name!r} collides with {clashing} on Windows/SMB/macOS clients"


REFUSED = {
    "parent-traversal": "../../etc/cron.d/lienthong",
    "absolute": "/etc/passwd",
    "backslash-traversal": "..\\..\\boot.ini",
    "windows-absolute": "C:\\Windows\\win.ini",
    "unc": "\\\\server\\share\\x.pdf",
    "device-namespace": "\\\\?\\C:\\x.pdf",
    "nul": "a\x00b.pdf",
    "nfd": unicodedata.normalize("NFD", "Nguyễn Thị Hường.pdf"),
    "nfd-grows-past-255": unicodedata.normalize("NFD", "Ệ" * 60 + ".pdf"),
    "256-bytes": "a" * 252 + ".pdf",
    "vietnamese-300-bytes": "Ệ" * 100,
    "empty": "",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_peer_name_the_envelope_forbids_is_refused(arena: Arena, case: str) -> None:
    """Names no reader may accept: REJECT bad-envelope-header, a security event, nothing written."""
    name = REFUSED[case]
    before = _files_outside_inbox(arena)
    inbox_before = set(arena.folder.iterdir()) if arena.folder.exists() else set()
    sealed, answer = _send_named(arena, name, b"tan cong\n" * 10)
    assert isinstance(answer, Reject) and answer.code == "bad-envelope-header", answer
    wait_for(lambda: arena.beta.query("audit_entries", kind="security-refused",
                                      message_id=jws.decode(sealed.token, ENVELOPE_TYP)
                                      .payload["message_id"]),
             timeout=15, what="a security event for the refused name")
    assert _files_outside_inbox(arena) == before
    assert (set(arena.folder.iterdir()) if arena.folder.exists() else set()) == inbox_before


# -- the same names in the clerk's outbox -------------------------------------------------------

OUTBOX_NAMES = {
    "control-characters": "bao\ncao\x1b[31m.pdf",
    "bidi-override": "invoice\u202efdp.exe",
    "windows-device": "CON",
    "trailing-dot-space": "bao-cao.pdf. ",
    "html": "<img src=x onerror=alert(1)>.pdf",
    "nfd-254-bytes": unicodedata.normalize("NFD", "Ệ" * 50 + ".pdf"),
    "nfc-244-bytes": "Ệ" * 80 + ".pdf",
}


def _drop_by_rename(node: TestNode, name: str, data: bytes) -> None:
    """Drop a file as a careful program would, with the temp copy outside the outbox (a temp
    name beside a 250-byte name would itself be too long)."""
    staging = node.home / "drop-staging"
    staging.mkdir(exist_ok=True)
    tmp = staging / "incoming"
    tmp.write_bytes(data)
    os.rename(tmp, node.outbox / "beta" / name)


def test_outbox_names_are_sent_under_safe_names(arena: Arena) -> None:
    """Awkward names dropped at alpha arrive at beta under safe names, with the NFC original in
    the metadata, and are kept in alpha's sent/ with their receipts; an undecodable name is
    refused into failed/ with a reason."""
    assert len(OUTBOX_NAMES["nfd-254-bytes"].encode()) == 254
    (arena.alpha.outbox / "beta").mkdir(parents=True, exist_ok=True)
    documents = {}
    for case, name in OUTBOX_NAMES.items():
        data = f"outbox {case}\n".encode() * 30
        _drop_by_rename(arena.alpha, name, data)
        documents[unicodedata.normalize("NFC", name)] = data
    undecodable = os.fsencode(arena.alpha.outbox / "beta") + b"/bad\xff\xfe.pdf"
    with open(undecodable, "wb") as sink:
        sink.write(b"undecodable name\n")
    wait_for(lambda: sent_all(arena.alpha, len(documents)), timeout=30,
             what="alpha to deliver the awkward names and file each in sent/ with its receipt")
    folder = arena.beta.inbox / "alpha"
    stored: dict[str, Path] = {}

    def all_written() -> bool:
        stored.update({meta["name"]: folder / meta["stored_as"] for meta in _sidecars(folder)})
        return set(documents) <= set(stored)
    wait_for(all_written, timeout=30, what="the sidecars of every document at beta")
    for original, data in documents.items():
        path = stored[original]
        assert is_safe_component(path.name) and path.read_bytes() == data
        assert sha256(path.read_bytes()) == sha256(data)
    sent = arena.alpha.home / "sent" / "beta"
    wait_for(lambda: len([p for p in sent.iterdir() if p.name.endswith(".beta.receipt.jws")])
             >= len(documents), timeout=30,
             what="every sent document to be kept in sent/ with beta's receipt beside it")
    kept = {p.read_bytes() for p in sent.iterdir() if not p.name.endswith((".jws", ".json"))}
    assert set(documents.values()) <= kept
    assert spool_entries(arena.alpha) == []
    wait_for(lambda: any(p.name.endswith(".reason.txt")
                         for p in (arena.alpha.home / "failed").iterdir()),
             timeout=30, what="the undecodable name to be refused into failed/")
    reasons = [p.read_text() for p in (arena.alpha.home / "failed").glob("*.reason.txt")]
    assert any("bad-name" in text for text in reasons), reasons
    wait_for(lambda: any('"bad-name"' in e.detail_json
                         for e in arena.alpha.query("audit_entries", kind="refused")),
             timeout=10, what="the refusal of the undecodable name to be audited")
