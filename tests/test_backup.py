"""The step-wise Backup object."""

from __future__ import annotations

import gc
import sqlite3
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    Connect,
    fill,
    hold_lock,
    integrity,
    make_db,
    page_count,
    release,
    rows,
    writable,
)

import sqlitebck


@pytest.fixture
def old_dest(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A destination file that already holds a small database."""
    conn = sqlite3.connect(make_db(tmp_path / "dest.db", rows=3))
    yield conn
    conn.close()


def file_of(conn: sqlite3.Connection) -> str:
    """The file of the main database of ``conn``."""
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def test_stepping_page_by_page(
    src: sqlite3.Connection, dst: sqlite3.Connection
) -> None:
    total = page_count(src)
    with sqlitebck.Backup(src, dst) as backup:
        assert (backup.remaining, backup.page_count, backup.done) == (0, 0, False)
        left = []
        while not backup.step(1):
            assert backup.page_count == total
            left.append(backup.remaining)
        assert left == list(range(total - 1, 0, -1))
        assert backup.done and backup.remaining == 0
        assert backup.step() is True  # done stays done
    assert rows(dst) == rows(src)


def test_step_everything_at_once(
    src: sqlite3.Connection, dst: sqlite3.Connection
) -> None:
    backup = sqlitebck.Backup(src, dst)
    assert backup.step() is True
    assert backup.step(-5) is True
    backup.finish()
    assert rows(dst) == rows(src)


def test_leaving_the_with_block_early_rolls_back(
    src: sqlite3.Connection, old_dest: sqlite3.Connection
) -> None:
    before = rows(old_dest)
    path = file_of(old_dest)
    with sqlitebck.Backup(src, old_dest) as backup:
        assert backup.step(3) is False
        assert not writable(path)  # the copy holds the destination meanwhile
    assert rows(old_dest) == before
    assert integrity(old_dest) == "ok"
    assert writable(path)


def test_an_exception_in_the_with_block_rolls_back(
    src: sqlite3.Connection, old_dest: sqlite3.Connection
) -> None:
    before = rows(old_dest)
    with pytest.raises(KeyError), sqlitebck.Backup(src, old_dest) as backup:
        backup.step(2)
        raise KeyError("stop")
    assert rows(old_dest) == before


def test_dropping_an_unfinished_backup_rolls_back_and_releases(
    src: sqlite3.Connection, old_dest: sqlite3.Connection
) -> None:
    before = rows(old_dest)
    path = file_of(old_dest)
    backup = sqlitebck.Backup(src, old_dest)
    backup.step(2)
    del backup
    gc.collect()
    gc.collect()
    assert rows(old_dest) == before
    assert writable(path)
    sqlitebck.copy(src, old_dest)
    assert rows(old_dest) == rows(src)


def test_finish_and_close_are_idempotent(
    src: sqlite3.Connection, dst: sqlite3.Connection
) -> None:
    backup = sqlitebck.Backup(src, dst)
    backup.step(1)
    backup.finish()
    backup.finish()
    backup.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        backup.step()
    assert dst.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_same_rules_as_copy(
    tmp_path: Path,
    src: sqlite3.Connection,
    dst: sqlite3.Connection,
    connect: Connect,
) -> None:
    with pytest.raises(TypeError):
        sqlitebck.Backup(src, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sqlitebck.Backup(src, src)
    path = make_db(tmp_path / "a.db")
    with pytest.raises(ValueError):
        sqlitebck.Backup(connect(path), connect(path))
    with pytest.raises(sqlite3.OperationalError, match="unknown database"):
        sqlitebck.Backup(src, dst, source_name="nope")
    with pytest.raises(ValueError):
        sqlitebck.Backup(src, dst, timeout=-1)
    backup = sqlitebck.Backup(src, dst, timeout=0.1)
    with pytest.raises(TypeError):
        backup.step(1.5)  # type: ignore[arg-type]
    src.execute("INSERT INTO t(v) VALUES (x'00')")  # a write transaction
    with pytest.raises(sqlite3.OperationalError, match="write transaction"):
        backup.step(1)
    with pytest.raises(sqlite3.OperationalError, match="write transaction"):
        sqlitebck.Backup(src, connect(":memory:"))  # (dst is being written)
    src.commit()
    assert backup.step() is True
    backup.close()
    assert rows(dst) == rows(src)


def test_a_lock_held_elsewhere_times_out_then_the_backup_goes_on(
    tmp_path: Path, connect: Connect
) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    a = connect(source)
    b = connect(tmp_path / "dst.db")
    with sqlitebck.Backup(a, b, timeout=0.2) as backup:
        backup.step(2)
        holder = hold_lock(source)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                backup.step(2)
        finally:
            release(holder)
        while not backup.step(5):
            pass
    assert rows(b) == rows(a)


def close_during_backup(conn: sqlite3.Connection) -> bool:
    """Close ``conn`` while a backup uses it; True if it closed.

    CPython closes with sqlite3_close_v2(), which SQLite defers until the
    backup ends; PyPy with sqlite3_close(), which refuses: both are safe.
    """
    try:
        conn.close()
        return True
    except sqlite3.OperationalError as e:
        assert "unfinished backups" in str(e)
        return False


def test_closing_the_destination_before_finishing_is_safe(
    src: sqlite3.Connection, old_dest: sqlite3.Connection
) -> None:
    before = rows(old_dest)
    path = file_of(old_dest)
    backup = sqlitebck.Backup(src, old_dest)
    backup.step(2)
    if close_during_backup(old_dest):
        with pytest.raises(sqlite3.ProgrammingError):
            backup.step(2)
    backup.finish()
    assert rows(path) == before
    assert writable(path)


def test_closing_the_source_before_finishing_is_safe(
    tmp_path: Path,
    old_dest: sqlite3.Connection,
    connect: Connect,
) -> None:
    source = connect(make_db(tmp_path / "src.db"))
    backup = sqlitebck.Backup(source, old_dest)
    backup.step(2)
    if close_during_backup(source):
        with pytest.raises(sqlite3.ProgrammingError):
            backup.step(2)
    backup.finish()
    fill(old_dest, rows=1)  # the destination is free again


def test_backups_of_subclassed_and_attached_schemas(
    tmp_path: Path, connect: Connect
) -> None:
    make_db(tmp_path / "aux.db", rows=40)
    a = connect(":memory:")
    a.execute("ATTACH DATABASE ? AS aux", (str(tmp_path / "aux.db"),))
    b = connect(":memory:")
    with sqlitebck.Backup(a, b, source_name="aux") as backup:
        while not backup.step(4):
            pass
    assert rows(b) == rows(a, "aux.t")


@pytest.mark.parametrize("how", ["pages", "progress", "backup"])
def test_a_finished_copy_keeps_no_connection_alive(how: str) -> None:
    """A finished copy (its job kept for the next one) holds no reference to
    either connection: a dropped in-memory database is freed."""

    class Connection(sqlite3.Connection):  # weak references need a subclass
        pass

    src = sqlite3.connect(":memory:", factory=Connection)
    fill(src)
    dst = sqlite3.connect(":memory:", factory=Connection)
    backup = None
    if how == "pages":
        sqlitebck.copy(src, dst, pages=1)
    elif how == "progress":
        sqlitebck.copy(src, dst, progress=lambda *a: None)
    else:
        backup = sqlitebck.Backup(src, dst)
        backup.step(1)
        backup.finish()
    refs = [weakref.ref(src), weakref.ref(dst)]
    src.close()
    dst.close()
    del src, dst
    for _ in range(3):  # PyPy: objects with finalizers take more than one
        gc.collect()
    assert [ref() for ref in refs] == [None, None]
    assert backup is None or backup.done is False
