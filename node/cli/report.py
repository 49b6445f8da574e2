"""``lienthong report``: the yearly cooperation report, as HTML and, on request, PDF.

Reads the store (the node may be running) and opens the keystore: a v3 envelope header seals
its ``created`` and type, which this office reads as the document's reader (the passphrase is
found as ``lienthong start`` finds it). The figures come from node/report/figures.py, the page
from node/report/render.py. ``--json`` prints the figures
for scripts (and the tests that compare two offices' reports).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from lienthong.keys.card import read_card
from lienthong.keys.errors import KeysError
from lienthong.node.cli.common import CliError, clerk_language, home_option, open_config
from lienthong.node.core.home import write_public_file
from lienthong.node.language.text import Phrase, from_error
from lienthong.node.store.database import open_store


@click.command("report")
@click.option("--year", type=click.IntRange(2000, 2200), required=True,
              help="The year of the report, e.g. 2026.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The HTML file to write (required unless --json).")
@click.option("--lang", type=click.Choice(["vi", "en"]), default=None,
              help="Vietnamese or English (default: lienthong --lang, $LIENTHONG_LANG, else "
                   "the node's language).")
@click.option("--pdf", "pdf", is_flag=True,
              help="Also print it to a PDF beside the HTML (needs Chromium and Playwright).")
@click.option("--chromium", default=None,
              help="The Chromium executable for --pdf (default: chromium on PATH, or "
                   "/usr/bin/chromium).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@home_option
def report(year: int, out: Path | None, lang: str | None, pdf: bool, chromium: str | None,
           as_json: bool, home: Path | None) -> None:
    """The yearly cooperation report: documents, deadlines, delivery times, recalls, failures,
    reconciliations and witnessed audit heads, with charts, as one HTML file (and a PDF)."""
    from lienthong.node.app.process import load_keys_and_passphrase
    from lienthong.node.report.figures import collect
    from lienthong.node.report.render import print_pdf, render_html

    if out is None and not as_json:
        raise CliError(Phrase("say where to write the report: --out FILE.html (or --json)"))
    config = open_config(home)
    try:
        own = read_card(config.card_path.read_text(encoding="utf-8"))
    except (OSError, KeysError) as exc:
        raise CliError(Phrase("cannot read this office's own card {card_path}: {error}",
                              card_path=config.card_path, error=from_error(exc))
                       ) from None
    try:
        keys, _ = load_keys_and_passphrase(config)
    except KeysError as exc:
        raise CliError(Phrase("the report reads the sealed headers of this office's documents, "
                              "so it needs the keystore: {error}", error=from_error(exc))
                       ) from None
    store = open_store(config.store.url)
    try:
        figures = collect(store, year=year, own_name=config.node.name,
                          own_node_id=own.node_id, coordination=config.coordination,
                          now=time.time(), keys=keys)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(figures.as_json(), ensure_ascii=False, indent=2))
    if out is None:
        return
    lang = lang or clerk_language(config)
    page = render_html(figures, lang=lang)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_public_file(out, page.encode("utf-8"))
    if not as_json:
        click.echo(Phrase("Wrote the {year} report of {office} to {file}", year=year,
                          office=config.node.name, file=out).in_language(lang))
    if pdf:
        target = out.with_suffix(".pdf")
        print_pdf(out, target, chromium=chromium)
        if not as_json:
            click.echo(Phrase("Printed it to {file}", file=target).in_language(lang))
