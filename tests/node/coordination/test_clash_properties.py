"""Properties of ``find_clashes`` over generated programmes (hypothesis), and combinations the
example test does not cover: all-day items, an item running past midnight, three offices, a
leader named two ways, the same office booking its leader twice."""
from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.node.coordination.clashes import Clash, SourcedItem, find_clashes, fold
from lienthong.node.documents.programme_items import ProgrammeItem

DAYS = (dt.date(2027, 1, 5), dt.date(2027, 1, 6))
LEADERS = ("Nguyễn Văn An", "nguyen van  an", "Trần Thị Bình", "Lê Cường")
PLACES = ("", "Phòng họp 1", "phong hop 1", "Hội trường A")
TITLES = ("Họp Thường trực", "hop thuong truc", "Tiếp công dân", "Giao ban")
OFFICES = ("tinhuy", "hdnd", "ubnd")

ANY_TITLE = st.sampled_from(TITLES)
times = st.one_of(st.none(), st.builds(dt.time, st.integers(0, 23), st.sampled_from((0, 30))))


@st.composite
def sourced_items(draw: st.DrawFn, titles: st.SearchStrategy[str] = ANY_TITLE) -> SourcedItem:
    start = draw(times)
    end = None
    if start is not None and draw(st.booleans()):
        minutes = draw(st.integers(30, 240))
        later = dt.datetime.combine(DAYS[0], start) + dt.timedelta(minutes=minutes)
        end = later.time() if later.date() == DAYS[0] else None
    office = draw(st.sampled_from(OFFICES))
    return SourcedItem(office, f"{office}.xlsx", ProgrammeItem(
        draw(st.sampled_from(DAYS)), start, end, draw(titles),
        tuple(draw(st.lists(st.sampled_from(LEADERS), max_size=2, unique=True))),
        draw(st.sampled_from(PLACES)), ""))


def keys(clashes: list[Clash]) -> list[tuple[str, str, frozenset[int]]]:
    """A clash as (kind, subject folded, the pair of items by identity), order aside."""
    return [(c.kind, fold(c.subject), frozenset({id(c.first), id(c.second)})) for c in clashes]


def _overlap(a: SourcedItem, b: SourcedItem) -> bool:
    (a0, a1), (b0, b1) = a.item.interval(), b.item.interval()
    return a0 < b1 and b0 < a1


@settings(max_examples=300, deadline=None)
@given(st.lists(sourced_items(), max_size=9))
def test_the_list_finds_exactly_the_clashes_of_its_pairs_each_once(
        items: list[SourcedItem]) -> None:
    """The sweep (sorted, stopping early) misses no pair and reports none twice."""
    found = keys(find_clashes(items))
    assert len(found) == len(set(found))
    pairwise = set()
    for a, b in itertools.combinations(items, 2):
        pairwise |= set(keys(find_clashes([a, b])))
    assert set(found) == pairwise


@settings(max_examples=300, deadline=None)
@given(st.lists(sourced_items(), max_size=9), st.randoms())
def test_clashes_are_symmetric_whatever_the_order(items: list[SourcedItem], rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert sorted(map(repr, keys(find_clashes(items)))) == \
        sorted(map(repr, keys(find_clashes(shuffled))))
    for a, b in itertools.combinations(items, 2):
        assert set(keys(find_clashes([a, b]))) == set(keys(find_clashes([b, a])))


@settings(max_examples=200, deadline=None)
@given(sourced_items())
def test_an_item_never_clashes_with_itself(item: SourcedItem) -> None:
    assert find_clashes([item]) == []
    copy = SourcedItem(item.office, item.source, ProgrammeItem(**{
        name: getattr(item.item, name) for name in
        ("day", "start", "end", "activity", "leaders", "place", "host")}))
    assert find_clashes([item, copy]) == []  # listed twice: one activity, not two


@settings(max_examples=200, deadline=None)
@given(st.lists(sourced_items(st.just("")), min_size=1, max_size=8))
def test_disjoint_times_never_clash(items: list[SourcedItem]) -> None:
    """Items laid end to end (each starting when the one before ends) never clash, whatever
    their leaders and places, when their titles differ."""
    laid = []
    begin = dt.datetime.combine(DAYS[0], dt.time(6, 0))
    for n, sourced in enumerate(items):
        end = begin + dt.timedelta(minutes=30 * (1 + n % 3))
        laid.append(SourcedItem(sourced.office, sourced.source, ProgrammeItem(
            begin.date(), begin.time(), end.time(), f"Việc {n}", sourced.item.leaders,
            sourced.item.place, "")))
        begin = end
    assert find_clashes(laid) == []


@settings(max_examples=300, deadline=None)
@given(sourced_items(), sourced_items(), st.sampled_from(LEADERS))
def test_the_same_leader_at_overlapping_times_always_clashes(
        a: SourcedItem, b: SourcedItem, leader: str) -> None:
    first = SourcedItem(a.office, a.source, ProgrammeItem(
        DAYS[0], a.item.start, a.item.end, "Việc một", (*a.item.leaders, leader), a.item.place,
        ""))
    second = SourcedItem(b.office, b.source, ProgrammeItem(
        DAYS[0], b.item.start, b.item.end, "Việc hai", (leader.upper(), *b.item.leaders),
        b.item.place, ""))
    found = find_clashes([first, second])
    leader_clashes = {fold(c.subject) for c in found if c.kind == "leader"}
    if _overlap(first, second):
        assert fold(leader) in leader_clashes
    else:
        assert found == []


def _at(office: str, start: str | None, end: str | None, title: str,
        leaders: tuple[str, ...] = (), place: str = "",
        day: dt.date = DAYS[0]) -> SourcedItem:
    return SourcedItem(office, f"{office}.ics", ProgrammeItem(
        day, dt.time.fromisoformat(start) if start else None,
        dt.time.fromisoformat(end) if end else None, title, leaders, place, ""))


def _found(items: list[SourcedItem]) -> list[tuple[str, str, str, str]]:
    return sorted((c.kind, fold(c.subject), c.first.office, c.second.office)
                  for c in find_clashes(items))


def test_an_all_day_item_clashes_with_anything_that_day_sharing_its_leader_or_place() -> None:
    items = [_at("hdnd", None, None, "Làm việc tại huyện X", ("Lê Cường",), "Huyện X"),
             _at("ubnd", "14:00", "15:00", "Tiếp khách", ("Le Cuong",), "Phòng 2"),
             _at("tinhuy", "09:00", None, "Kiểm tra", (), "huyen x"),
             _at("ubnd", "09:00", "10:00", "Họp", ("Lê Cường",), "", day=DAYS[1])]
    assert _found(items) == [("leader", "le cuong", "hdnd", "ubnd"),
                             ("place", "huyen x", "hdnd", "tinhuy")]


def test_an_item_running_past_midnight_meets_the_next_morning() -> None:
    """23:30 with no end lasts the default hour: it overlaps 00:00-00:15 of the next day."""
    late = _at("hdnd", "23:30", None, "Trực bão", ("Trần Thị Bình",))
    early = _at("ubnd", "00:00", "00:15", "Kiểm tra đê", ("Tran Thi Binh",), day=DAYS[1])
    after = _at("ubnd", "00:30", "01:00", "Họp sớm", ("Trần Thị Bình",), day=DAYS[1])
    assert _found([after, early, late]) == [("leader", "tran thi binh", "hdnd", "ubnd")]


def test_three_offices_one_joint_event_and_one_office_out_of_step() -> None:
    """Two offices list the joint meeting alike (no clash); the third at another hour clashes
    with both (event-time), and its own leader booked twice clashes within the office."""
    items = [_at("hdnd", "08:00", "10:00", "Hội nghị tổng kết", ("Lê Cường",), "Hội trường A"),
             _at("ubnd", "08:00", "10:00", "hoi nghi tong ket", ("Le Cuong",), "hoi truong a"),
             _at("tinhuy", "09:00", "11:00", "Hội nghị tổng kết", (), ""),
             _at("tinhuy", "10:30", "11:30", "Tiếp đoàn", ("Nguyễn Văn An",), ""),
             _at("tinhuy", "11:00", "12:00", "Làm việc với Sở", ("nguyen van an",), "")]
    assert _found(items) == [("event-time", "hoi nghi tong ket", "hdnd", "tinhuy"),
                             ("event-time", "hoi nghi tong ket", "ubnd", "tinhuy"),
                             ("leader", "nguyen van an", "tinhuy", "tinhuy")]
