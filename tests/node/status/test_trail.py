"""One document's trail, built from the store and rendered."""
from __future__ import annotations

import io

from rich.console import Console

from lienthong.node.status.render_trail import render_trail
from lienthong.node.status.trail import build_trail
from tests.node.statushelp import NOW, Office


def test_trail_rendering_shows_the_story(office: Office) -> None:
    """A trail lists the document, its recipients and its audit events in order."""
    store = office.store()
    try:
        story = build_trail(store, office.honest.sent_message_id)
        missing = build_trail(store, "0" * 32)
    finally:
        store.close()
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(render_trail(story, now=NOW))
    text = console.export_text()
    assert [e["kind"] for e in story["events"]] == ["taken", "sealed", "receipt-verified",
                                                    "delivered"]
    assert "Công văn 45.txt" in text and "→ hdnd" in text and "receipt-verified" in text
    assert missing["found"] is False
