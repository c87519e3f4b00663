"""Paths on either side: read-only sources, atomic new destinations."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import Connect, integrity, make_db, python, rows

import sqlitebck


def open_fds_on(path: Path) -> int:
    """How many descriptors of this process are open on ``path``."""
    fds = Path("/proc/self/fd")
    if not fds.exists():
        pytest.skip("needs /proc")
    count = 0
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) == str(path.resolve()):
                count += 1
        except OSError:
            pass
    return count


@pytest.mark.parametrize("kind", [str, bytes, Path])
def test_source_and_destination_paths_of_every_kind(tmp_path: Path, kind: type) -> None:
    source = make_db(tmp_path / "src.db", rows=500)
    before = source.read_bytes()

    def as_kind(p: Path) -> Any:
        return os.fsencode(p) if kind is bytes else kind(p)

    result = sqlitebck.copy(as_kind(source), as_kind(tmp_path / "new.db"))
    assert rows(tmp_path / "new.db") == rows(source)
    assert result.pages > 1
    assert source.read_bytes() == before  # opened read-only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db", "src.db"]
    assert open_fds_on(source) == 0
    assert open_fds_on(tmp_path / "new.db") == 0


def test_mixed_connection_and_path(tmp_path: Path, connect: Connect) -> None:
    conn = connect(":memory:")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    conn.execute("INSERT INTO t VALUES (1, 'x')")
    conn.commit()
    sqlitebck.copy(conn, tmp_path / "a.db")
    back = connect(":memory:")
    sqlitebck.copy(tmp_path / "a.db", back)
    assert rows(back) == [(1, "x")]


def test_new_file_gets_the_usual_permissions(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db")
    old = os.umask(0o022)
    try:
        sqlitebck.copy(source, tmp_path / "new.db")
    finally:
        os.umask(old)
    assert (tmp_path / "new.db").stat().st_mode & 0o777 == 0o644


def test_missing_source_is_file_not_found_and_creates_nothing(
    tmp_path: Path, connect: Connect
) -> None:
    with pytest.raises(FileNotFoundError) as info:
        sqlitebck.copy(tmp_path / "missing.db", tmp_path / "new.db")
    assert info.value.filename == str(tmp_path / "missing.db")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        sqlitebck.copy(tmp_path / "missing.db", connect(":memory:"))
    assert list(tmp_path.iterdir()) == []


def test_existing_destination_is_overwritten(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=100)
    dest = make_db(tmp_path / "dst.db", rows=5)
    sqlitebck.copy(source, dest, pages=3)
    assert rows(dest) == rows(source)
    assert open_fds_on(dest) == 0


def test_failed_copy_keeps_an_existing_destination(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    dest = make_db(tmp_path / "dst.db", rows=5)
    before = rows(dest)

    def progress(status: int, remaining: int, total: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        sqlitebck.copy(source, dest, pages=2, progress=progress)
    assert rows(dest) == before
    assert integrity(dest) == "ok"
    assert open_fds_on(dest) == 0 and open_fds_on(source) == 0


def test_failed_copy_into_a_new_path_leaves_nothing(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=300)

    def progress(status: int, remaining: int, total: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        sqlitebck.copy(source, tmp_path / "new.db", pages=2, progress=progress)
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(sqlite3.DatabaseError):
        sqlitebck.copy(junk, tmp_path / "new.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.db", "src.db"]


def test_destination_that_is_not_a_database_is_never_clobbered(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db")
    for content in (b"precious notes, not a database\n" * 200, b"short"):
        dest = tmp_path / "notes.txt"
        dest.write_bytes(content)
        with pytest.raises(sqlite3.DatabaseError) as info:
            sqlitebck.copy(source, dest)
        assert info.value.sqlite_errorname == "SQLITE_NOTADB"
        assert dest.read_bytes() == content


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_same_file_through_paths_is_value_error(
    tmp_path: Path, link: str, connect: Connect
) -> None:
    source = make_db(tmp_path / "src.db")
    before = source.read_bytes()
    other = tmp_path / "other.db"
    if link == "same":
        other = source
    elif link == "symlink":
        other.symlink_to(source)
    else:
        os.link(source, other)
    with pytest.raises(ValueError, match="same"):
        sqlitebck.copy(source, other)
    with pytest.raises(ValueError, match="same"):
        sqlitebck.copy(other, connect(source))
    with pytest.raises(ValueError, match="same"):
        sqlitebck.Backup(connect(other), source)
    assert source.read_bytes() == before
    assert {p.name for p in tmp_path.iterdir()} <= {"src.db", "other.db"}


def test_wal_source_path(tmp_path: Path, connect: Connect) -> None:
    source = make_db(tmp_path / "src.db", rows=300, journal="wal")
    writer = connect(source)  # keeps the WAL in use
    writer.execute("INSERT INTO t(v) VALUES (x'01')")
    writer.commit()
    sqlitebck.copy(source, tmp_path / "copy.db", pages=10)
    assert rows(tmp_path / "copy.db") == rows(writer)


def test_backup_object_with_paths(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    with sqlitebck.Backup(source, tmp_path / "early.db") as backup:
        backup.step(2)
    assert not (tmp_path / "early.db").exists()
    with sqlitebck.Backup(str(source), str(tmp_path / "full.db")) as backup:
        while not backup.step(7):
            assert not (tmp_path / "full.db").exists()
    assert rows(tmp_path / "full.db") == rows(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.db", "src.db"]
    assert open_fds_on(source) == 0


def test_destination_directory_missing(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db")
    with pytest.raises(FileNotFoundError):
        sqlitebck.copy(source, tmp_path / "no" / "such" / "dir.db")
    assert open_fds_on(source) == 0


KILLED_MID_COPY = """
    import sqlite3, sys, sqlitebck
    def progress(status, remaining, total):
        if remaining < total // 2:
            print("halfway", flush=True)
            sys.stdin.readline()  # wait here to be killed
    sqlitebck.copy({source!r}, {dest!r}, pages=20, progress=progress)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_killed_mid_copy_leaves_no_file_at_the_final_path(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=2000)
    dest = tmp_path / "new.db"
    child = python(KILLED_MID_COPY.format(source=str(source), dest=str(dest)))
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "halfway"
    assert not dest.exists()
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert not dest.exists()
    # A later copy to the same path works, and leaves its own file only.
    sqlitebck.copy(source, dest)
    assert rows(dest) == rows(source)
