"""Activities of the offices' programmes that clash in time or place (pure).

The consolidating office balances the offices' programmes and adjusts the activities that
clash. Three kinds of clash are found among items from every office:

* ``leader``: the same leader is booked for two activities at overlapping times;
* ``place``: the same place holds two activities at overlapping times;
* ``event-time``: two offices list the same activity (same title, same day) at different
  times, so at least one of them has it wrong.

An activity that two offices both list with the same title and the same time is one joint
event, not a clash. Names, places and titles are compared without case, diacritics or extra
spaces ("Hội trường A" = "hoi truong  a").
"""
from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from lienthong.node.documents.programme_items import ProgrammeItem

CLASH_KINDS = ("leader", "place", "event-time")


@dataclass(frozen=True, slots=True)
class SourcedItem:
    """An item and where it came from: the office and its programme file."""

    office: str
    source: str
    item: ProgrammeItem


@dataclass(frozen=True, slots=True)
class Clash:
    kind: str
    subject: str
    first: SourcedItem
    second: SourcedItem


def fold(text: str) -> str:
    text = unicodedata.normalize("NFC", text).lower().replace("đ", "d")
    return " ".join("".join(c for c in unicodedata.normalize("NFD", text)
                            if unicodedata.category(c) != "Mn").split())


def _overlap(a: ProgrammeItem, b: ProgrammeItem) -> bool:
    a_start, a_end = a.interval()
    b_start, b_end = b.interval()
    return a_start < b_end and b_start < a_end


def _same_event(a: SourcedItem, b: SourcedItem) -> bool:
    return (fold(a.item.activity) == fold(b.item.activity)
            and a.item.interval() == b.item.interval())


def find_clashes(items: Sequence[SourcedItem]) -> list[Clash]:
    """Every clash among ``items``, each pair once, in the order of the earlier item."""
    ordered = sorted(items, key=lambda s: (s.item.interval(), s.office, s.item.activity))
    clashes: list[Clash] = []
    for i, first in enumerate(ordered):
        first_end = first.item.interval()[1]
        for second in ordered[i + 1:]:
            if second.item.day != first.item.day and second.item.interval()[0] >= first_end:
                break
            same_title = (first.office != second.office and first.item.activity
                          and fold(first.item.activity) == fold(second.item.activity))
            if same_title and second.item.day == first.item.day \
                    and first.item.interval() != second.item.interval():
                clashes.append(Clash("event-time", first.item.activity, first, second))
                continue
            if not _overlap(first.item, second.item) or _same_event(first, second):
                continue
            leaders = {fold(n): n for n in first.item.leaders}
            # A leader written twice in one item (two spellings) is one clash, not two.
            for key in dict.fromkeys(fold(name) for name in second.item.leaders):
                if key in leaders:
                    clashes.append(Clash("leader", leaders[key], first, second))
            if first.item.place and fold(first.item.place) == fold(second.item.place):
                clashes.append(Clash("place", first.item.place, first, second))
    return clashes
