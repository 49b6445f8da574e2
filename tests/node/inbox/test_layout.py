"""The inbox layout (node/inbox/layout.py): what is written beside a received document."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lienthong.node.core.access import AccessPolicy
from lienthong.node.inbox import layout


def test_sidecar_contents_are_fsynced_not_only_their_names(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A sidecar whose name survives a power cut but whose bytes do not would be an empty file
    in the inbox: each sidecar's own descriptor is fsynced before the folder is."""
    synced: list[tuple[int, int]] = []
    real_fsync = layout.os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(layout.os, "fsync", fsync)
    final = tmp_path / "quyet-dinh.pdf"
    final.write_bytes(b"%PDF")
    layout.write_sidecar_files(final, {"so_ky_hieu": "12/QĐ-UBND"}, "receipt.token",
                              AccessPolicy())
    meta = final.with_name(final.name + layout.META_SUFFIX)
    receipt = final.with_name(final.name + layout.RECEIPT_SUFFIX)
    assert json.loads(meta.read_text(encoding="utf-8")) == {"so_ky_hieu": "12/QĐ-UBND"}
    assert receipt.read_text(encoding="ascii") == "receipt.token\n"
    for path in (meta, receipt):
        st = path.stat()
        assert (st.st_dev, st.st_ino) in synced, path.name


def test_every_suffix_the_node_writes_beside_a_document_is_neutralised_or_paired() -> None:
    """The list of node-written endings names every room's own constant, so a new sidecar
    kind cannot be added without a peer being kept from forging it."""
    from lienthong.node.control.received import RECALL_NOTE_SUFFIX, RECALL_SUFFIX
    from lienthong.node.edxml.export import FOLDER_SUFFIX
    from lienthong.node.edxml.intake import EDXML_SUFFIX
    from lienthong.node.outbox.walk import REASON_SUFFIX
    for suffix in (layout.META_SUFFIX, layout.RECEIPT_SUFFIX, FOLDER_SUFFIX, RECALL_SUFFIX,
                   RECALL_NOTE_SUFFIX, REASON_SUFFIX):
        assert suffix in layout.NODE_SUFFIXES
    for suffix in (layout.META_SUFFIX, layout.RECEIPT_SUFFIX, EDXML_SUFFIX, FOLDER_SUFFIX):
        assert suffix in layout.BESIDE_SUFFIXES


@pytest.mark.parametrize("name", ["bao-cao.pdf.meta.json", "bao-cao.pdf.receipt.jws",
                                  "BAO-CAO.PDF.META.JSON", "x.pdf.files", "x.recall.jws",
                                  "x.recall.txt", "x.reason.txt", "Quyết định.pdf.Receipt.JWS"])
def test_a_peer_name_ending_like_a_node_written_file_gets_file_added(tmp_path: Path,
                                                                      name: str) -> None:
    """x.pdf.meta.json arrives as x.pdf.meta.json.file: nothing a peer sends looks like a
    sidecar the node wrote."""
    final = layout.choose_inbox_path(tmp_path / "inbox" / "hdnd", name, AccessPolicy())
    assert final.name.endswith(".file")
    assert final.name[:-len(".file")].casefold() == name.casefold()
    assert not any(final.name.casefold().endswith(s) for s in layout.NODE_SUFFIXES)


def test_a_long_name_ending_like_a_sidecar_still_fits_with_room_for_sidecars(
        tmp_path: Path) -> None:
    """The check is made on the name as shortened, so cutting a long name can neither keep nor
    make a sidecar's ending."""
    for name in ("đ" * 140 + ".pdf.meta.json", "a.meta" + "đ" * 140 + ".json",
                 "x" * 240 + ".receipt.jws"):
        final = layout.choose_inbox_path(tmp_path, name, AccessPolicy())
        assert not any(final.name.casefold().endswith(s) for s in layout.NODE_SUFFIXES), name
        assert len(final.name.encode()) <= layout.STORED_NAME_BYTES


def test_an_edxml_copy_and_a_document_never_share_a_name(tmp_path: Path) -> None:
    """.edxml is a real document's ending too, so it is not renamed; instead a document is
    never given the name of an .edxml already there, nor an .edxml the name of a document."""
    folder = tmp_path / "inbox" / "hdnd"
    folder.mkdir(parents=True)
    (folder / "to-trinh.pdf.edxml").write_bytes(b"planted")
    assert layout.choose_inbox_path(folder, "to-trinh.pdf", AccessPolicy()).name == \
        "to-trinh (2).pdf"
    (folder / "bao-cao.pdf").write_bytes(b"real")
    assert layout.choose_inbox_path(folder, "bao-cao.pdf.edxml", AccessPolicy()).name == \
        "bao-cao.pdf (2).edxml"
    assert layout.choose_inbox_path(folder, "cong-van.edxml", AccessPolicy()).name == \
        "cong-van.edxml"


def test_a_received_document_and_its_sidecars_follow_the_access_rule(tmp_path: Path) -> None:
    """With the clerks' group, the inbox folder is 2750 and the document and sidecars 0640 in
    that group, whatever the staging file's mode was."""
    access = AccessPolicy(group="clerks", gid=os.getegid())
    folder = tmp_path / "inbox" / "hdnd"
    final = layout.choose_inbox_path(folder, "qd.pdf", access)
    assert os.stat(folder).st_mode & 0o7777 == 0o2750
    staging = tmp_path / "staging"
    staging.write_bytes(b"document")
    os.chmod(staging, 0o600)
    layout.publish_staged(staging, final, access)
    layout.write_sidecar_files(final, {"x": 1}, "tok", access)
    for path in (final, final.with_name(final.name + layout.META_SUFFIX),
                 final.with_name(final.name + layout.RECEIPT_SUFFIX)):
        st = path.stat()
        assert (st.st_mode & 0o7777, st.st_gid) == (0o640, os.getegid()), path.name
