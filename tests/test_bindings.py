"""Connections of other SQLite bindings (pysqlite3, sqlean.py, sqlcipher3,
APSW), and of the sqlite3 module in Python 3.12's transaction modes.

Each binding carries its own SQLite library: a copy stays within one, its
paths are opened by it, and its errors are its own classes. The packages are
in the test extras where PyPI has them (CPython on Linux x86_64; sqlean.py on
3.10+); elsewhere these tests are skipped.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import python, rows

import sqlitebck
from sqlitebck import _binding

DBAPI = ["pysqlite3", "sqlean", "sqlcipher3"]


@pytest.fixture(params=DBAPI)
def mod(request: pytest.FixtureRequest) -> Any:
    """The DB-API module of one binding (its ``dbapi2``)."""
    if _binding.PYPY:
        pytest.skip("other bindings are CPython extensions")
    module = pytest.importorskip(f"{request.param}.dbapi2")
    probe = module.connect(":memory:")
    try:
        _binding.binding_of(probe)
    except TypeError as e:
        if sys.platform == "linux":
            raise
        # Whether a module exports SQLite's functions is the module's choice;
        # where it does not, it is refused, saying why.
        pytest.skip(str(e))
    finally:
        probe.close()
    return module


@pytest.fixture
def opened(mod: Any) -> Iterator[list[Any]]:
    """Connections a test opens with ``mod``, closed at the end."""
    conns: list[Any] = []
    yield conns
    for conn in conns:
        conn.close()


def open_(mod: Any, opened: list[Any], path: str | Path = ":memory:", **kw: Any) -> Any:
    conn = mod.connect(str(path), **kw)
    opened.append(conn)
    return conn


def filled(mod: Any, opened: list[Any], path: str | Path = ":memory:") -> Any:
    conn = open_(mod, opened, path)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.executemany(
        "INSERT INTO t(v) VALUES (randomblob(?))", [(300,) for _ in range(200)]
    )
    conn.commit()
    return conn


def file_rows(mod: Any, path: Path, key: str | None = None) -> list[Any]:
    conn = mod.connect(str(path))
    try:
        if key is not None:
            conn.execute(f"PRAGMA key = '{key}'")
        return rows(conn)
    finally:
        conn.close()


# -- copies within one binding --------------------------------------------------


def test_memory_and_file_connections(
    mod: Any, opened: list[Any], tmp_path: Path
) -> None:
    src = filled(mod, opened)
    expected = rows(src)
    mem = open_(mod, opened)
    result = sqlitebck.copy(src, mem)
    assert result.pages > 10 and rows(mem) == expected
    disk = open_(mod, opened, tmp_path / "disk.db")
    sqlitebck.copy(mem, disk, pages=5)
    assert rows(disk) == expected
    back = open_(mod, opened)
    sqlitebck.copy(disk, back, pages=-1, progress=lambda *a: None)
    assert rows(back) == expected
    with sqlitebck.Backup(disk, open_(mod, opened)) as backup:
        while not backup.step(3):
            pass
    assert backup.done


def test_paths_beside_a_connection(mod: Any, opened: list[Any], tmp_path: Path) -> None:
    src = filled(mod, opened)
    expected = rows(src)
    out = tmp_path / "out.db"
    sqlitebck.copy(src, out)  # a new file
    assert file_rows(mod, out) == expected
    sqlitebck.copy(src, out)  # an existing one
    dst = open_(mod, opened)
    sqlitebck.copy(out, dst)  # a path as the source
    assert rows(dst) == expected
    with sqlitebck.Backup(out, tmp_path / "again.db") as backup:
        backup.step()
    assert file_rows(mod, tmp_path / "again.db") == expected


def test_attached_schemas(mod: Any, opened: list[Any], tmp_path: Path) -> None:
    src = filled(mod, opened, tmp_path / "a.db")
    expected = rows(src)
    dst = open_(mod, opened, isolation_level=None)
    dst.execute(f"ATTACH '{tmp_path / 'b.db'}' AS other")
    sqlitebck.copy(src, dst, dest_name="other")
    assert rows(dst, "other.t") == expected
    again = open_(mod, opened)
    sqlitebck.copy(dst, again, source_name="other")
    assert rows(again) == expected


def test_subclasses(mod: Any, opened: list[Any]) -> None:
    class Sub(mod.Connection):  # type: ignore[misc]
        pass

    src = filled(mod, opened)
    dst = open_(mod, opened, factory=Sub)
    assert type(dst) is Sub
    sqlitebck.copy(src, dst)
    assert rows(dst) == rows(src)


def test_a_path_beside_a_connection_is_opened_by_its_module(
    mod: Any, opened: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = mod.connect

    def connect(database: str, *args: Any, **kw: Any) -> Any:
        calls.append(database)
        return real(database, *args, **kw)

    def refuse(*args: Any, **kw: Any) -> Any:
        raise AssertionError("the sqlite3 module opened a file")

    monkeypatch.setattr(mod, "connect", connect)
    monkeypatch.setattr(sqlite3, "connect", refuse)
    src = filled(mod, opened)
    sqlitebck.copy(src, tmp_path / "out.db")
    dst = real(":memory:")
    opened.append(dst)
    sqlitebck.copy(tmp_path / "out.db", dst)
    files = [c for c in calls if c.startswith("file:")]  # not filled()'s
    assert len(files) == 2 and files[-1].endswith("/out.db?mode=ro")
    assert rows(dst) == rows(src)


# -- errors in the binding's own classes ----------------------------------------


def test_errors_are_the_bindings_own(
    mod: Any, opened: list[Any], tmp_path: Path
) -> None:
    src = filled(mod, opened)
    dst = open_(mod, opened, isolation_level=None)
    with pytest.raises(mod.OperationalError, match="unknown database") as info:
        sqlitebck.copy(src, dst, source_name="nope")
    assert info.value.sqlite_errorname == "SQLITE_ERROR"
    assert not isinstance(info.value, sqlite3.Error)
    dst.execute("BEGIN")
    dst.execute("SELECT count(*) FROM sqlite_master").fetchall()
    with pytest.raises(mod.OperationalError, match="destination database is in use"):
        sqlitebck.copy(src, dst)
    dst.execute("COMMIT")
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(mod.DatabaseError) as bad:
        sqlitebck.copy(tmp_path / "junk.db", dst)
    assert bad.value.sqlite_errorname == "SQLITE_NOTADB"
    with pytest.raises(ValueError, match="same connection"):
        sqlitebck.copy(src, src)
    closed = open_(mod, opened)
    closed.close()
    with pytest.raises(mod.ProgrammingError, match="closed"):
        sqlitebck.copy(src, closed)
    with pytest.raises(mod.ProgrammingError, match="closed"):
        sqlitebck.Backup(closed, dst)


def test_thread_check_is_the_bindings_own(mod: Any, opened: list[Any]) -> None:
    src = filled(mod, opened)
    dst = open_(mod, opened)
    raised: list[BaseException] = []

    def other_thread() -> None:
        try:
            sqlitebck.copy(src, dst)
        except BaseException as e:
            raised.append(e)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert len(raised) == 1 and isinstance(raised[0], mod.ProgrammingError)
    assert "thread" in str(raised[0])


# -- never two SQLite libraries together ---------------------------------------

CROSS = """
    import sqlite3, sys, sqlitebck
    import {a}.dbapi2 as a
    b = {b}
    x, y = a.connect(":memory:"), b.connect(":memory:")
    x.execute("CREATE TABLE t(v)")
    x.commit()
    for source, dest in ((x, y), (y, x)):
        try:
            sqlitebck.copy(source, dest)
        except TypeError as e:
            print("TypeError:", e)
        with sqlitebck.Backup(source, ":memory:") as backup:  # its own stays fine
            backup.step()
    print("alive")
"""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("pysqlite3", "sqlite3"),
        ("sqlcipher3", "sqlite3"),
        ("pysqlite3", "__import__('sqlcipher3.dbapi2').dbapi2"),
        ("sqlean", "__import__('pysqlite3.dbapi2').dbapi2"),
    ],
)
def test_connections_of_two_libraries_are_refused(a: str, b: str) -> None:
    if _binding.PYPY:
        pytest.skip("other bindings are CPython extensions")
    for name in (a, b):
        if "(" in name:
            name = name.split("'")[1]
        pytest.importorskip(name)
    child = python(CROSS.format(a=a, b=b if "(" in b else f"__import__('{b}')"))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    lines = out.splitlines()
    assert lines[-1] == "alive"
    refusals = [line for line in lines if line.startswith("TypeError:")]
    assert len(refusals) == 2, out
    for line in refusals:
        assert "different SQLite libraries" in line
        assert f"{a}.dbapi2.Connection" in line


def test_a_path_beside_a_connection_never_reaches_the_stdlib(
    mod: Any, opened: list[Any], tmp_path: Path
) -> None:
    # Another library's connection is refused even where only the path
    # would be opened by the stdlib: the file is opened by the binding.
    src = filled(mod, opened)
    std = sqlite3.connect(":memory:")
    try:
        with pytest.raises(TypeError, match="different SQLite libraries"):
            sqlitebck.copy(src, std)
        with pytest.raises(TypeError, match="different SQLite libraries"):
            sqlitebck.Backup(std, src)
    finally:
        std.close()


# -- what is not accepted --------------------------------------------------------


class NotAConnection:
    class Inner:
        pass


def test_unsupported_types_are_named_in_full() -> None:
    with pytest.raises(TypeError) as info:
        sqlitebck.copy(NotAConnection.Inner(), ":memory:")  # type: ignore[arg-type]
    message = str(info.value)
    assert "test_bindings.NotAConnection.Inner" in message
    assert "sqlite3" in message and "path" in message
    if not _binding.PYPY:
        for name in ("pysqlite3", "sqlean", "sqlcipher3", "apsw"):
            assert name in message
    with pytest.raises(TypeError, match=r"dest must be .*, not int"):
        sqlitebck.copy(":memory:", 3)  # type: ignore[arg-type]


def test_apsw(tmp_path: Path) -> None:
    """APSW's wheels from PyPI keep SQLite's functions to themselves:
    refused, saying why. An APSW linked to the sqlite3 module's library (as
    Debian's python3-apsw is) is accepted, with paths beside it."""
    if _binding.PYPY:
        pytest.skip("APSW is a CPython extension")
    apsw = pytest.importorskip("apsw")
    conn = apsw.Connection(":memory:")
    std = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
        binding = _binding.binding_of(std)
        try:
            apsw_binding = _binding.binding_of(conn)
        except TypeError as e:
            assert "apsw.Connection" in str(e)
            assert "provides no sqlite3_" in str(e)
            with pytest.raises(TypeError, match=r"apsw\.Connection"):
                sqlitebck.copy(conn, std)
            return
        assert apsw_binding is not None and binding is not None
        assert apsw_binding.library == binding.library
        sqlitebck.copy(conn, std)
        assert std.execute("SELECT * FROM t").fetchall() == [(1,)]
        sqlitebck.copy(std, conn)
        sqlitebck.copy(conn, tmp_path / "beside-apsw.db")  # by the sqlite3 module
        assert file_rows(sqlite3, tmp_path / "beside-apsw.db") == [(1,)]
    finally:
        conn.close()
        std.close()


# -- SQLCipher ---------------------------------------------------------------------


@pytest.fixture
def cipher() -> Any:
    if _binding.PYPY:
        pytest.skip("sqlcipher3 is a CPython extension")
    return pytest.importorskip("sqlcipher3.dbapi2")


def keyed(cipher: Any, path: str | Path, key: str) -> Any:
    conn = cipher.connect(str(path))
    conn.execute(f"PRAGMA key = '{key}'")
    return conn


def test_sqlcipher_encrypted_to_encrypted(cipher: Any, tmp_path: Path) -> None:
    src = keyed(cipher, tmp_path / "a.db", "one")
    mem = keyed(cipher, ":memory:", "two")
    dst = keyed(cipher, tmp_path / "b.db", "three")
    try:
        src.execute("CREATE TABLE t(x)")
        src.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
        src.commit()
        expected = rows(src)
        sqlitebck.copy(src, mem)
        assert rows(mem) == expected
        sqlitebck.copy(mem, dst, pages=2)
        assert rows(dst) == expected
    finally:
        for conn in (src, mem, dst):
            conn.close()
    # Re-encrypted with the destination's key; unreadable without it.
    assert file_rows(cipher, tmp_path / "b.db", "three") == expected
    assert b"SQLite format 3" not in (tmp_path / "b.db").read_bytes()[:16]
    with pytest.raises(cipher.DatabaseError):
        file_rows(cipher, tmp_path / "b.db")


def test_sqlcipher_refuses_encrypted_to_plain(cipher: Any, tmp_path: Path) -> None:
    src = keyed(cipher, ":memory:", "one")
    plain = cipher.connect(str(tmp_path / "plain.db"))
    try:
        src.execute("CREATE TABLE t(x)")
        src.commit()
        with pytest.raises(cipher.OperationalError) as info:
            sqlitebck.copy(src, plain)
        assert "sqlcipher_export" in str(info.value)
        with pytest.raises(cipher.OperationalError):
            sqlitebck.copy(plain, src)
        # A new path beside a keyed connection is a plain file: refused too.
        with pytest.raises(cipher.OperationalError):
            sqlitebck.copy(src, tmp_path / "new.db")
        assert not (tmp_path / "new.db").exists()
        # What SQLCipher offers instead.
        src.execute(f"ATTACH '{tmp_path / 'export.db'}' AS export KEY ''")
        src.execute("SELECT sqlcipher_export('export')")
        src.execute("DETACH export")
    finally:
        src.close()
        plain.close()
    assert file_rows(sqlite3, tmp_path / "export.db") == []


# -- Python 3.12+ transaction control ----------------------------------------------

# sqlite3.connect, untyped: the autocommit keyword is 3.12+.
connect: Any = sqlite3.connect
MODES: list[dict[str, Any]] = [{}, {"isolation_level": None}]
if sys.version_info >= (3, 12):
    MODES += [{"autocommit": False}, {"autocommit": True}]


@pytest.mark.parametrize("smode", MODES, ids=repr)
@pytest.mark.parametrize("dmode", MODES, ids=repr)
def test_transaction_modes_on_both_sides(
    smode: dict[str, Any], dmode: dict[str, Any], tmp_path: Path
) -> None:
    src = connect(tmp_path / "src.db", **smode)
    dst = connect(tmp_path / "dst.db", **dmode)
    try:
        src.execute("CREATE TABLE t(x)")
        src.execute("INSERT INTO t VALUES (1)")
        src.commit()
        dst.execute("CREATE TABLE old(y)")
        dst.commit()  # autocommit=False: a new transaction, nothing read yet
        sqlitebck.copy(src, dst)
        dst.commit()
        assert dst.execute("SELECT * FROM t").fetchall() == [(1,)]
        dst.commit()
        sqlitebck.copy(src, dst, pages=1)
        dst.commit()
        # Reading opens a transaction on the destination: refused, as SQLite does.
        if dst.execute("SELECT count(*) FROM t").fetchone() and not dst.in_transaction:
            return  # autocommit mode: the read's transaction is over
        with pytest.raises(sqlite3.OperationalError, match="in use"):
            sqlitebck.copy(src, dst)
        dst.rollback()
    finally:
        src.close()
        dst.close()


def test_a_plain_begin_with_nothing_read(tmp_path: Path) -> None:
    src = sqlite3.connect(":memory:")
    dst = sqlite3.connect(tmp_path / "dst.db", isolation_level=None)
    try:
        src.execute("CREATE TABLE t(x)")
        dst.execute("BEGIN")
        sqlitebck.copy(src, dst)
        dst.execute("COMMIT")
        assert dst.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
        dst.execute("BEGIN")
        dst.execute("SELECT * FROM sqlite_master").fetchall()
        with pytest.raises(sqlite3.OperationalError, match="in use"):
            sqlitebck.copy(src, dst)
        dst.execute("COMMIT")
    finally:
        src.close()
        dst.close()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="autocommit is 3.12+")
def test_autocommit_false_source_keeps_its_transaction(tmp_path: Path) -> None:
    src = connect(tmp_path / "src.db", autocommit=False)
    dst = connect(":memory:", autocommit=False)
    try:
        src.execute("CREATE TABLE t(x)")
        src.commit()
        src.execute("SELECT * FROM t").fetchall()  # a read transaction
        sqlitebck.copy(src, dst)
        assert src.in_transaction
        src.execute("INSERT INTO t VALUES (1)")  # a write transaction: refused
        with pytest.raises(sqlite3.OperationalError, match="write transaction"):
            sqlitebck.copy(src, dst)
        src.rollback()
    finally:
        src.close()
        dst.close()


def test_an_encrypted_file_is_named_and_said_to_be_encrypted(
    cipher: Any, tmp_path: Path
) -> None:
    path = tmp_path / "secret.db"
    conn = keyed(cipher, path, "k")
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.close()
    with pytest.raises(sqlite3.DatabaseError) as info:
        sqlitebck.copy(path, tmp_path / "out.db")
    assert str(path) in str(info.value) and "encrypted" in str(info.value)
    assert info.value.sqlite_errorname == "SQLITE_NOTADB"
    wrong = keyed(cipher, path, "wrong")  # a wrong key: the connection's own
    out = cipher.connect(":memory:")
    try:
        with pytest.raises(cipher.DatabaseError, match="encrypted"):
            sqlitebck.copy(wrong, out)
    finally:
        wrong.close()
        out.close()
    assert not (tmp_path / "out.db").exists()
