"""copy() refuses what it must refuse, with the sqlite3 module's exceptions."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import Connect, fill, make_db, rows

import sqlitebck
from sqlitebck import _errors


@pytest.mark.parametrize("bad", [None, 1, 2.5, object(), ["a.db"]])
def test_non_connections_are_type_errors(
    src: sqlite3.Connection, dst: sqlite3.Connection, bad: Any
) -> None:
    name = type(bad).__qualname__
    with pytest.raises(
        TypeError, match=rf"source must be a connection of sqlite3.*, not {name}$"
    ):
        sqlitebck.copy(bad, dst)
    with pytest.raises(
        TypeError, match=rf"dest must be a connection of sqlite3.*, not {name}$"
    ):
        sqlitebck.copy(src, bad)


def test_cursor_is_not_a_connection(src: sqlite3.Connection) -> None:
    with pytest.raises(TypeError):
        sqlitebck.copy(src, src.cursor())  # type: ignore[arg-type]


def test_same_connection_is_value_error(src: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="same connection"):
        sqlitebck.copy(src, src)
    # Whatever state the connection is in: a transaction open on it (which
    # would refuse it as a destination, or as a source) changes nothing.
    src.execute("INSERT INTO t(v) VALUES ('x')")
    assert src.in_transaction
    with pytest.raises(ValueError, match="same connection"):
        sqlitebck.copy(src, src)
    with pytest.raises(ValueError, match="same connection"):
        sqlitebck.Backup(src, src)
    src.rollback()


def test_same_file_is_value_error_before_writing(
    tmp_path: Path, connect: Connect
) -> None:
    path = make_db(tmp_path / "a.db")
    os.symlink(path, tmp_path / "link.db")
    os.link(path, tmp_path / "hard.db")
    before = path.read_bytes()
    a = connect(path)
    for other in ("a.db", "link.db", "hard.db"):
        b = connect(tmp_path / other)
        with pytest.raises(ValueError, match="same database file"):
            sqlitebck.copy(a, b)
        with pytest.raises(ValueError, match="same database file"):
            sqlitebck.copy(b, a, pages=1)
        b.close()
    assert path.read_bytes() == before


def test_same_file_attached_under_another_name(
    tmp_path: Path, connect: Connect
) -> None:
    path = make_db(tmp_path / "a.db")
    a = connect(path)
    b = connect(":memory:")
    b.execute("ATTACH DATABASE ? AS other", (str(path),))
    with pytest.raises(ValueError):
        sqlitebck.copy(a, b, dest_name="other")
    sqlitebck.copy(a, b)  # main of b is another database: fine
    assert rows(b) == rows(a)


def test_closed_connections_are_programming_errors(
    src: sqlite3.Connection, dst: sqlite3.Connection
) -> None:
    closed = sqlite3.connect(":memory:")
    closed.close()
    with pytest.raises(sqlite3.ProgrammingError):
        sqlitebck.copy(closed, dst)
    with pytest.raises(sqlite3.ProgrammingError):
        sqlitebck.copy(src, closed)


def errors_in_thread(target: Callable[[], object]) -> list[BaseException]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return errors


def test_connection_from_another_thread_is_programming_error(
    src: sqlite3.Connection, dst: sqlite3.Connection, connect: Connect
) -> None:
    errors = errors_in_thread(lambda: sqlitebck.copy(src, dst))
    assert [type(e) for e in errors] == [sqlite3.ProgrammingError]

    def copy_from_a_connection_of_that_thread() -> None:
        with contextlib.closing(sqlite3.connect(":memory:")) as own:
            sqlitebck.copy(own, dst)

    errors = errors_in_thread(copy_from_a_connection_of_that_thread)
    assert [type(e) for e in errors] == [sqlite3.ProgrammingError]

    shared = connect(":memory:", check_same_thread=False)
    fill(shared)
    out = connect(":memory:", check_same_thread=False)
    assert errors_in_thread(lambda: sqlitebck.copy(shared, out)) == []
    assert rows(out) == rows(shared)


@pytest.mark.parametrize("timeout", [None, 5.0, 0])
def test_source_write_transaction_is_refused_at_once(
    src: sqlite3.Connection, dst: sqlite3.Connection, timeout: float | None
) -> None:
    src.execute("INSERT INTO t(v) VALUES (x'01')")
    assert src.in_transaction
    with pytest.raises(sqlite3.OperationalError, match="write transaction") as info:
        sqlitebck.copy(src, dst, timeout=timeout)
    assert isinstance(info.value, sqlite3.DatabaseError)  # what the seed raised
    assert info.value.sqlite_errorcode == 5
    assert info.value.sqlite_errorname == "SQLITE_BUSY"
    assert dst.execute("SELECT name FROM sqlite_master").fetchall() == []
    src.commit()
    sqlitebck.copy(src, dst)
    assert rows(dst) == rows(src)


def test_destination_in_transaction_is_operational_error(
    src: sqlite3.Connection, dst: sqlite3.Connection
) -> None:
    dst.execute("CREATE TABLE keep(x)")
    dst.execute("INSERT INTO keep VALUES (1)")
    assert dst.in_transaction
    with pytest.raises(sqlite3.OperationalError, match="transaction"):
        sqlitebck.copy(src, dst)
    dst.commit()
    assert dst.execute("SELECT x FROM keep").fetchall() == [(1,)]


def test_read_only_destination_is_operational_error(
    tmp_path: Path, src: sqlite3.Connection, connect: Connect
) -> None:
    path = make_db(tmp_path / "ro.db", rows=3)
    before = rows(path)
    ro = connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as info:
        sqlitebck.copy(src, ro)
    assert info.value.sqlite_errorcode & 0xFF == 8
    assert info.value.sqlite_errorname.startswith("SQLITE_READONLY")
    assert rows(path) == before


def test_source_that_is_not_a_database_is_database_error(
    tmp_path: Path, dst: sqlite3.Connection, connect: Connect
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    conn = connect(junk)
    for pages in (0, 1):
        with pytest.raises(sqlite3.DatabaseError, match="not a database") as info:
            sqlitebck.copy(conn, dst, pages=pages)
        assert info.value.sqlite_errorcode == 26
        assert info.value.sqlite_errorname == "SQLITE_NOTADB"


@pytest.mark.parametrize(
    ("pages", "error"),
    [
        (True, TypeError),
        (1.0, TypeError),
        ("1", TypeError),
        (None, TypeError),
        (2**31, OverflowError),
        (-(2**31) - 1, OverflowError),
        (10**100, OverflowError),
    ],
)
def test_bad_pages(
    src: sqlite3.Connection, dst: sqlite3.Connection, pages: Any, error: type
) -> None:
    with pytest.raises(error):
        sqlitebck.copy(src, dst, pages=pages)


def test_extreme_valid_pages(src: sqlite3.Connection, dst: sqlite3.Connection) -> None:
    sqlitebck.copy(src, dst, pages=2**31 - 1)
    sqlitebck.copy(src, dst, pages=-(2**31))
    assert rows(dst) == rows(src)


@pytest.mark.parametrize(
    ("sleep", "error"),
    [
        (-1, ValueError),
        (-0.5, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (86_400_001, ValueError),  # more than a day between batches
        (True, TypeError),
        ("10", TypeError),
        (None, TypeError),
    ],
)
def test_bad_sleep(
    src: sqlite3.Connection, dst: sqlite3.Connection, sleep: Any, error: type
) -> None:
    with pytest.raises(error):
        sqlitebck.copy(src, dst, pages=1, sleep=sleep)


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (-1, ValueError),
        (float("nan"), ValueError),
        (False, TypeError),
        ("5", TypeError),
    ],
)
def test_bad_timeout(
    src: sqlite3.Connection, dst: sqlite3.Connection, timeout: Any, error: type
) -> None:
    with pytest.raises(error):
        sqlitebck.copy(src, dst, timeout=timeout)


@pytest.mark.parametrize("timeout", [0, 0.5, 3, None, float("inf")])
def test_good_timeouts(
    src: sqlite3.Connection, dst: sqlite3.Connection, timeout: Any
) -> None:
    sqlitebck.copy(src, dst, timeout=timeout, sleep=0.5, pages=50)
    assert rows(dst) == rows(src)


def test_bad_progress_and_names(
    src: sqlite3.Connection, dst: sqlite3.Connection
) -> None:
    with pytest.raises(TypeError, match="progress"):
        sqlitebck.copy(src, dst, progress=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="source_name"):
        sqlitebck.copy(src, dst, source_name=b"main")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        sqlitebck.copy(src, dst, dest_name="ma\0in")
    with pytest.raises(ValueError):
        sqlitebck.copy(src, dst, dest_name="\udcff")
    with pytest.raises(TypeError):
        sqlitebck.copy(src, dst, 1, 0, None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (1, sqlite3.OperationalError),  # ERROR
        (5, sqlite3.OperationalError),  # BUSY
        (517, sqlite3.OperationalError),  # BUSY_SNAPSHOT: by its primary code
        (6, sqlite3.OperationalError),  # LOCKED
        (8, sqlite3.OperationalError),  # READONLY
        (13, sqlite3.OperationalError),  # FULL
        (778, sqlite3.OperationalError),  # IOERR_WRITE
        (11, sqlite3.DatabaseError),  # CORRUPT
        (26, sqlite3.DatabaseError),  # NOTADB
        (19, sqlite3.IntegrityError),  # CONSTRAINT
        (18, sqlite3.DataError),  # TOOBIG
        (2, sqlite3.InternalError),  # INTERNAL
    ],
)
def test_error_classes_follow_the_sqlite3_module(code: int, cls: type) -> None:
    exc = _errors.sqlite_error(code, "message")
    assert type(exc) is cls
    assert str(exc) == "message"
    assert exc.sqlite_errorcode == code  # type: ignore[attr-defined]
    assert exc.sqlite_errorname == _errors.error_name(code)  # type: ignore[attr-defined]


def test_out_of_memory_is_memory_error() -> None:
    assert type(_errors.sqlite_error(7, "out of memory")) is MemoryError


@pytest.mark.skipif(sys.version_info < (3, 11), reason="constants from 3.11")
def test_error_names_agree_with_the_sqlite3_module() -> None:
    checked = 0
    for code, name in _errors.ERROR_NAMES.items():
        if hasattr(sqlite3, name):
            assert getattr(sqlite3, name) == code, name
            checked += 1
    assert checked > 100
