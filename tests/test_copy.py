"""copy(): what it copies, what it returns, how it reports progress; on every
SQLite library at hand (``EVERY_LIBRARY``, see conftest.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import ModuleType

import pytest
from helpers import Connect, fill, integrity, make_db, page_count, rows

import sqlitebck

EVERY_LIBRARY = True


def test_seed_readme_example_memory_to_file_to_memory(
    tmp_path: Path, connect: Connect
) -> None:
    conn = connect(":memory:")
    conn.execute("CREATE TABLE foo(bar TEXT)")
    conn.execute("INSERT INTO foo VALUES ('ok')")
    conn.commit()
    conn2 = connect(tmp_path / "test.db")
    sqlitebck.copy(conn, conn2)
    conn.close()
    conn3 = connect(":memory:")
    sqlitebck.copy(conn2, conn3)
    assert conn3.execute("SELECT bar FROM foo").fetchall() == [("ok",)]


def test_copy_replaces_whole_destination(
    src: sqlite3.Connection, dst: sqlite3.Connection
) -> None:
    dst.execute("CREATE TABLE other(x)")
    dst.commit()
    sqlitebck.copy(src, dst)
    assert rows(dst) == rows(src)
    names = dst.execute("SELECT name FROM sqlite_master").fetchall()
    assert names == [("t",)]


def test_file_to_file(tmp_path: Path, connect: Connect) -> None:
    source = make_db(tmp_path / "a.db", rows=2000)
    a = connect(source)
    b = connect(tmp_path / "b.db")
    result = sqlitebck.copy(a, b)
    assert rows(b) == rows(a)
    assert integrity(b) == "ok"
    assert result.pages == page_count(a) == page_count(b)


def test_result_describes_the_copy(
    src: sqlite3.Connection, dst: sqlite3.Connection
) -> None:
    result = sqlitebck.copy(src, dst)
    assert isinstance(result, sqlitebck.CopyResult)
    assert result.pages == page_count(src)
    assert result.steps == 1
    assert result.restarts == 0
    assert isinstance(result.elapsed, float) and result.elapsed >= 0
    with pytest.raises(AttributeError):
        result.pages = 3  # type: ignore[misc]


def test_seed_pages_and_sleep_over_multipage_database(
    src: sqlite3.Connection, dst: sqlite3.Connection
) -> None:
    total = page_count(src)
    assert total > 10
    result = sqlitebck.copy(src, dst, pages=1, sleep=10)
    assert rows(dst) == rows(src)
    assert result.steps == total
    assert result.pages == total


def test_subclassed_connections_on_both_sides(
    connect: Connect, sqlite: ModuleType
) -> None:
    class MyConnection(sqlite.Connection):  # type: ignore[name-defined,misc]
        pass

    a = connect(":memory:", factory=MyConnection)
    b = connect(":memory:", factory=MyConnection)
    fill(a)
    sqlitebck.copy(a, b)
    assert rows(b) == rows(a)


def test_progress_is_called_after_every_step(
    src: sqlite3.Connection, dst: sqlite3.Connection
) -> None:
    calls: list[tuple[int, int, int]] = []
    total = page_count(src)
    sqlitebck.copy(src, dst, pages=3, progress=lambda *a: calls.append(a))
    assert len(calls) == -(-total // 3)
    assert all(status == 0 for status, _, _ in calls[:-1])
    assert calls[-1] == (101, 0, total)  # SQLITE_DONE
    remaining = [r for _, r, _ in calls]
    assert remaining == sorted(remaining, reverse=True)


def test_progress_callback_of_the_stdlib_works_unchanged(
    src: sqlite3.Connection, dst: sqlite3.Connection
) -> None:
    seen: list[str] = []

    def progress(status: int, remaining: int, total: int) -> None:
        seen.append(f"{status}:{total - remaining}/{total}")

    src.backup(dst, pages=5, progress=progress)
    theirs = list(seen)
    seen.clear()
    sqlitebck.copy(src, dst, pages=5, progress=progress)
    assert seen == theirs


def test_exception_from_progress_propagates_and_keeps_destination(
    tmp_path: Path, src: sqlite3.Connection, connect: Connect
) -> None:
    old = make_db(tmp_path / "old.db", rows=5)
    dst = connect(old)
    before = rows(dst)

    class Stop(Exception):
        pass

    stop = Stop("stop here")

    def progress(status: int, remaining: int, total: int) -> None:
        if remaining < total // 2:
            raise stop

    with pytest.raises(Stop) as info:
        sqlitebck.copy(src, dst, pages=2, progress=progress)
    assert info.value is stop
    assert rows(dst) == before
    assert integrity(dst) == "ok"
    assert not dst.in_transaction
    sqlitebck.copy(src, dst)  # the destination is usable again
    assert rows(dst) == rows(src)


def test_attached_and_temp_schemas(tmp_path: Path, connect: Connect) -> None:
    make_db(tmp_path / "aux.db", rows=50)
    a = connect(":memory:")
    a.execute("ATTACH DATABASE ? AS 'bücher'", (str(tmp_path / "aux.db"),))
    b = connect(":memory:")
    sqlitebck.copy(a, b, source_name="bücher")
    assert rows(b) == rows(a, "bücher.t")

    c = connect(":memory:")
    c.execute("ATTACH DATABASE ? AS extra", (str(tmp_path / "extra.db"),))
    sqlitebck.copy(b, c, dest_name="extra", pages=4)
    assert rows(c, "extra.t") == rows(b)

    b.execute("CREATE TEMP TABLE scratch(x)")
    b.execute("INSERT INTO scratch VALUES (42)")
    b.commit()
    d = connect(":memory:")
    sqlitebck.copy(b, d, source_name="temp")
    assert d.execute("SELECT x FROM scratch").fetchall() == [(42,)]


@pytest.mark.parametrize("side", ["source_name", "dest_name"])
def test_unknown_schema_is_operational_error(
    src: sqlite3.Connection, dst: sqlite3.Connection, side: str, sqlite: ModuleType
) -> None:
    with pytest.raises(sqlite.OperationalError, match="unknown database") as info:
        sqlitebck.copy(src, dst, **{side: "nowhere"})  # type: ignore[arg-type]
    assert info.value.sqlite_errorcode == 1
    assert info.value.sqlite_errorname == "SQLITE_ERROR"


def test_a_read_transaction_on_the_source_is_copied_as_its_snapshot(
    tmp_path: Path,
    connect: Connect,
) -> None:
    path = make_db(tmp_path / "wal.db", rows=100, journal="wal")
    reader = connect(path, isolation_level=None)
    reader.execute("BEGIN")
    snapshot = rows(reader)
    writer = connect(path)
    writer.execute("DELETE FROM t WHERE id > 10")
    writer.commit()

    for pages in (0, 3):
        out = connect(":memory:")
        sqlitebck.copy(reader, out, pages=pages)
        assert rows(out) == snapshot
        assert reader.in_transaction  # the caller's transaction is left alone
    reader.execute("COMMIT")
    assert len(rows(reader)) == 10


def test_source_data_is_unchanged_and_connection_usable(
    tmp_path: Path,
    connect: Connect,
) -> None:
    path = make_db(tmp_path / "a.db", rows=300)
    a = connect(path)
    before = rows(a)
    sqlitebck.copy(a, connect(":memory:"), pages=7)
    sqlitebck.copy(a, connect(":memory:"))
    assert rows(a) == before
    assert not a.in_transaction
    a.execute("INSERT INTO t(v) VALUES (x'00')")
    a.commit()


def test_busy_timeouts_of_both_connections_are_restored(
    tmp_path: Path, connect: Connect
) -> None:
    a = connect(make_db(tmp_path / "a.db"), timeout=2.5)
    b = connect(tmp_path / "b.db", timeout=0.75)
    sqlitebck.copy(a, b)
    sqlitebck.copy(a, b, pages=2)
    assert a.execute("PRAGMA busy_timeout").fetchone() == (2500,)
    assert b.execute("PRAGMA busy_timeout").fetchone() == (750,)


def test_copies_that_take_many_steps_on_every_library(
    connect: Connect, tmp_path: Path
) -> None:
    """Each shape of copy that takes more than one step, into memory and into
    files, with a progress callback that sees every step."""
    big = connect(":memory:")
    fill(big, rows=3000, size=1000)  # ~ 800 pages
    expected = rows(big)
    made = iter(range(1000))

    def target(kind: str) -> sqlite3.Connection:
        if kind == "memory":
            return connect(":memory:")
        return connect(tmp_path / f"out{next(made)}.db")

    calls: list[int] = []

    def progress(status: int, remaining: int, total: int) -> None:
        calls.append(status)

    for kind in ("memory", "file"):
        for pages in (0, 1, 7, 100):
            out = target(kind)
            calls.clear()
            result = sqlitebck.copy(big, out, pages=pages, progress=progress)
            assert rows(out) == expected, (kind, pages)
            assert integrity(out) == "ok"
            assert calls[-1] == 101 and set(calls[:-1]) <= {0}, (kind, pages)
            if pages > 0:
                assert result.steps >= result.pages // pages, (kind, pages)
        with sqlitebck.Backup(big, target(kind)) as backup:
            steps = 0
            while not backup.step(5):
                steps += 1
        assert steps >= 100


def test_sqlite_version_is_the_sqlite3_modules() -> None:
    assert sqlitebck.sqlite_version == sqlite3.sqlite_version
