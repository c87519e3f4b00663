"""Locks held by other processes, bounded waits, Ctrl-C, and the GIL; the
tests in this process on every SQLite library at hand (``EVERY_LIBRARY``)."""

from __future__ import annotations

import bisect
import signal
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest
from helpers import Connect, hold_lock, integrity, make_db, python, release, rows

import sqlitebck

EVERY_LIBRARY = True


@pytest.mark.parametrize("pages", [0, 3])
def test_locked_source_times_out_and_destination_is_unchanged(
    tmp_path: Path, pages: int, connect: Connect, sqlite: ModuleType
) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    dest = make_db(tmp_path / "dst.db", rows=4)
    before = rows(dest)
    child = hold_lock(source)
    try:
        with pytest.raises(sqlite.OperationalError, match="locked") as info:
            sqlitebck.copy(connect(source), connect(dest), pages, timeout=0.3)
        assert info.value.sqlite_errorcode & 0xFF == 5
        assert info.value.sqlite_errorname.startswith("SQLITE_BUSY")
    finally:
        release(child)
    assert rows(dest) == before
    assert integrity(dest) == "ok"


def test_locked_destination_times_out_and_is_unchanged(
    tmp_path: Path, connect: Connect, sqlite: ModuleType
) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    dest = make_db(tmp_path / "dst.db", rows=4)
    before = rows(dest)
    child = hold_lock(dest, "BEGIN")  # a reader: the copy cannot commit
    try:
        with pytest.raises(sqlite.OperationalError, match="locked"):
            sqlitebck.copy(connect(source), connect(dest), timeout=0.3)
    finally:
        release(child)
    assert rows(dest) == before


@pytest.mark.parametrize("pages", [0, 5])
def test_lock_released_before_the_timeout_is_waited_for(
    tmp_path: Path, pages: int, connect: Connect
) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    a = connect(source)
    b = connect(tmp_path / "dst.db")
    child = hold_lock(source)
    statuses: list[int] = []
    timer = threading.Timer(0.4, release, [child])
    timer.start()
    try:
        sqlitebck.copy(
            a, b, pages, timeout=30, progress=lambda s, r, t: statuses.append(s)
        )
    finally:
        timer.join()
    assert 5 in statuses  # it did wait, reporting SQLITE_BUSY meanwhile
    assert statuses[-1] == 101
    assert rows(b) == rows(a)


INTERRUPT_WHILE_WAITING = """
    import sqlite3, sys, sqlitebck
    src = sqlite3.connect({source!r})
    dst = sqlite3.connect({dest!r})
    def progress(status, remaining, total):
        if status == 5:
            print("waiting", flush=True)
    try:
        sqlitebck.copy(src, dst, {pages}, timeout=None, progress=progress)
    except KeyboardInterrupt:
        print("interrupted", dst.execute("SELECT count(*) FROM t").fetchone()[0],
              dst.in_transaction, flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("pages", [0, 2])
def test_ctrl_c_ends_an_endless_wait(tmp_path: Path, pages: int) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    dest = make_db(tmp_path / "dst.db", rows=4)
    holder = hold_lock(source)
    try:
        child = python(
            INTERRUPT_WHILE_WAITING.format(
                source=str(source), dest=str(dest), pages=pages
            )
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
        assert out.split() == ["interrupted", "4", "False"], err
    finally:
        release(holder)


INTERRUPT_WHILE_COPYING = """
    import sqlite3, sys, sqlitebck
    src = sqlite3.connect(":memory:")
    src.execute("CREATE TABLE t(v BLOB)")
    src.execute("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
                "WHERE i < 40000) INSERT INTO t SELECT zeroblob(4000) FROM c")
    src.commit()
    dst = sqlite3.connect({dest!r})
    left = []
    def progress(status, remaining, total):
        left.append(remaining)  # before the parent is told: Ctrl-C may follow
        if len(left) == 1:
            print("copying", flush=True)
    try:
        sqlitebck.copy(src, dst, progress=progress)
        print("finished")
    except KeyboardInterrupt:
        print("interrupted", left[-1] > 0,
              dst.execute("SELECT count(*) FROM t").fetchone()[0],
              dst.execute("PRAGMA integrity_check").fetchone()[0], flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_ends_a_large_snapshot_copy(tmp_path: Path) -> None:
    dest = make_db(tmp_path / "dst.db", rows=4)
    child = python(INTERRUPT_WHILE_COPYING.format(dest=str(dest)))
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "copying"
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert out.split() == ["interrupted", "True", "4", "ok"], err


def test_other_threads_run_while_pages_are_copied(connect: Connect) -> None:
    src = connect(":memory:", check_same_thread=False)
    src.execute("CREATE TABLE t(v BLOB)")
    src.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
        "WHERE i < 40000) INSERT INTO t SELECT zeroblob(4000) FROM c"
    )
    src.commit()
    dst = connect(":memory:", check_same_thread=False)
    # The copying thread notes when each step (one C call, up to ~50 ms)
    # begins and ends: a step runs from the end of one progress call to the
    # start of the next.
    steps: list[tuple[float, float]] = []
    done = threading.Event()

    def worker() -> None:
        last = 0.0

        def progress(status: int, remaining: int, total: int) -> None:
            nonlocal last
            now = time.perf_counter()
            if last:
                steps.append((last, now))
            last = time.perf_counter()

        try:
            for _ in range(3):
                last = time.perf_counter()
                sqlitebck.copy(src, dst, progress=progress)
        finally:
            done.set()

    # This thread notes the time meanwhile, as often as it gets the GIL
    # (sleep(0) hands it over at once). Were the GIL held during a step, no
    # note could fall inside one.
    notes: list[float] = []
    t = threading.Thread(target=worker)
    t.start()
    while not done.is_set():
        notes.append(time.perf_counter())
        time.sleep(0)
    t.join()
    margin = 0.001  # notes are in time order: count those inside each step
    inside = sum(
        max(
            0,
            bisect.bisect_left(notes, end - margin)
            - bisect.bisect_right(notes, begin + margin),
        )
        for begin, end in steps
    )
    assert len(steps) >= 5
    assert inside >= 10, (inside, len(steps), len(notes))
