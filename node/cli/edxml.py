"""``lienthong export --edxml ID``: a received document (and its statuses) as edXML files for
the office's document-management system (docs/edxml.md). Needs no passphrase."""
from __future__ import annotations

import os
from pathlib import Path

import click

from lienthong.node.cli.common import CliError, clerk_language, home_option, open_config
from lienthong.node.cli.documents import _message_id
from lienthong.node.control.lifecycle import lifecycle
from lienthong.node.core.home import write_private_file
from lienthong.node.core.names import safe_file_name
from lienthong.node.edxml.export import edxml_document_id, status_edxml, write_document_edxml
from lienthong.node.edxml.intake import EDXML_SUFFIX
from lienthong.node.edxml.message import CODE_OF_STATUS
from lienthong.node.language.text import Phrase
from lienthong.node.store.database import open_store


@click.command("export")
@click.argument("message_id")
@click.option("--edxml", "as_edxml", is_flag=True, required=True,
              help="Write edXML (QCVN 102:2016); the only format for now.")
@click.option("--statuses", is_flag=True,
              help="Also write each processing status as an edXML status message.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Folder to write into.")
@home_option
def export(message_id: str, as_edxml: bool, statuses: bool, out_dir: Path,
           home: Path | None) -> None:
    """Write a received document as an edXML message (with --statuses, its statuses too)."""
    if not as_edxml:
        raise CliError(Phrase("say which format to write: --edxml"))
    config = open_config(home)
    mid = _message_id(config, message_id)
    store = open_store(config.store.url)
    try:
        info = lifecycle(store, mid)
        rows = [r for r in store.stored_received(mid)
                if r.meta.get("kind") not in ("status", "recall")]
    finally:
        store.close()
    if not rows and not (statuses and info.get("direction") == "sent"):
        raise CliError(Phrase("no document with message ID {mid} was received by this office",
                              mid=mid))
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = info.get("meta", {})
    written: list[Path] = []
    if rows:
        row = rows[0]
        path = config.home / row.stored_path
        recalled = [r["recalled_path"] for r in info["recalls"] if r.get("recalled_path")]
        if not path.exists() and recalled:
            path = config.home / recalled[-1]
        if not path.exists():
            raise CliError(Phrase("the document {name!r} is no longer at {stored_path}",
                                  name=row.name, stored_path=row.stored_path))
        name = row.name if row.name.lower().endswith(EDXML_SUFFIX) else row.name + EDXML_SUFFIX
        target = _free(out_dir, name)
        try:
            write_document_edxml(config, path, target, name=row.name, message_id=mid,
                                 sender=info["sender"], meta=row.meta)
        except FileExistsError:
            raise CliError(Phrase("{target} already exists; remove it or choose another --out "
                                  "folder", target=target)) from None
        written.append(target)
    if statuses:
        document_id = edxml_document_id(meta, mid)
        found = list(info.get("statuses", []))
        for office in info.get("recipients", []):
            found += [dict(s, office=office["office"]) for s in office["statuses"]]
        for number, status in enumerate(found, 1):
            if status["status"] not in CODE_OF_STATUS:
                continue
            data = status_edxml(config, status=status["status"],
                                office=status.get("office", config.node.name),
                                document_id=document_id, time=status["time"],
                                note=status["note"] or "",
                                register_number=status["register_number"])
            code = CODE_OF_STATUS[status["status"]]
            written.append(_write(out_dir, f"{mid}-status-{number}-{code}{EDXML_SUFFIX}", data))
    language = clerk_language(config)
    for path in written:
        click.echo(Phrase("Wrote {file}", file=path).in_language(language))


def _free(folder: Path, name: str) -> Path:
    target = folder / safe_file_name(name)
    if os.path.lexists(target):
        raise CliError(Phrase("{target} already exists; remove it or choose another --out folder",
                              target=target))
    return target


def _write(folder: Path, name: str, data: bytes) -> Path:
    target = _free(folder, name)
    write_private_file(target, data)
    return target
