"""One node per home (node/store/node_lock.py): a second taker is refused with a sentence that
names the holder, in the clerk's language where it is shown."""
from __future__ import annotations

from pathlib import Path

import pytest

from lienthong.node.language.text import from_error
from lienthong.node.store.node_lock import (
    Holder,
    HomeLock,
    NodeAlreadyRunning,
    already_running_on_database,
)


def test_a_second_lock_on_a_home_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first, second = HomeLock(tmp_path), HomeLock(tmp_path)
    first.acquire(Holder(pid=101, host="may-a"), started="2026-12-07T08:00:00Z")
    try:
        with pytest.raises(NodeAlreadyRunning) as refused:
            second.acquire(Holder(pid=202, host="may-b"), started="2026-12-07T08:00:01Z")
    finally:
        first.release()
    said = from_error(refused.value)
    assert str(said).startswith(f"The node in {tmp_path} is already running (process 101 on "
                                "may-a)")
    assert not isinstance(said, str)
    assert said.in_language("vi").startswith(f"Nút trong {tmp_path} đang chạy rồi (tiến trình "
                                             "101 trên máy may-a)")


def test_an_unreadable_holder_on_the_database_is_said_as_such() -> None:
    said = from_error(already_running_on_database("postgresql://x@h/db", None))
    assert "a process whose PID and host could not be read" in str(said)
    assert "không đọc được PID" in said.in_language("vi")  # type: ignore[union-attr]
