"""The VFS shims of csrc/vfs.c: used for the files the package opens itself,
never for the caller's; same bytes, same snapshots, same errors as SQLite's
own VFS. (Full disks, file size limits, Ctrl-C and SIGKILL run through both
in test_reliability, test_lifecycle and test_paths: the ``shims`` fixture.)"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
from pathlib import Path

import pytest
from helpers import Connect, integrity, make_db, open_fds, python, rows

import sqlitebck
from sqlitebck import _endpoints
from sqlitebck._sqlitebck import ffi, lib

WRITER = "sqlitebck-writer"
READER = "sqlitebck-reader"
# Rows of 400-byte blobs for a database of about 9 MB: more than twice the
# bytes after which the writer asks for write-back (SQLITEBCK_WRITEBACK, 4 MiB).
WRITE_BACK_ROWS = 20_000
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")


def dump(db: str | Path | sqlite3.Connection) -> list[str]:
    conn = db if isinstance(db, sqlite3.Connection) else sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        if conn is not db:
            conn.close()


def test_both_shims_are_registered_on_the_bound_library() -> None:
    assert (
        ffi.string(lib.sqlitebck_vfs_name(lib.SQLITEBCK_VFS_WRITER))
        == b"sqlitebck-writer"
    )
    assert (
        ffi.string(lib.sqlitebck_vfs_name(lib.SQLITEBCK_VFS_READER))
        == b"sqlitebck-reader"
    )
    assert _endpoints.shim(lib.SQLITEBCK_VFS_WRITER, sqlite3) == WRITER
    # Another DB-API module has another SQLite: no shim.
    assert _endpoints.shim(lib.SQLITEBCK_VFS_WRITER, os) is None


def test_only_files_the_package_opens_use_them(
    tmp_path: Path, connect: Connect
) -> None:
    source = make_db(tmp_path / "src.db", rows=50)
    dest = connect(tmp_path / "dst.db")
    ends = _endpoints.Endpoints(source, dest)
    try:
        # The caller's connection is untouched; the source is opened through
        # the reader (a URI naming it), read-only.
        assert ends.dest is dest
        assert dest.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        ends.close(complete=False)
    ends = _endpoints.Endpoints(source, tmp_path / "new.db")
    try:
        # The private new file: written through the writer, with no journal.
        assert ends.dest.execute("PRAGMA journal_mode").fetchone()[0] == "off"
    finally:
        ends.close(complete=False)
    assert not (tmp_path / "new.db").exists()
    assert (
        _endpoints.uri("/x.db", "ro", READER)
        == "file:///x.db?mode=ro&vfs=sqlitebck-reader"
    )


def test_the_default_vfs_is_unchanged(tmp_path: Path) -> None:
    # A name nobody registered is refused; the shims' names are accepted; a
    # plain connection is in SQLite's own default VFS (whose journal mode
    # and locking are the usual ones).
    with pytest.raises(sqlite3.OperationalError):  # "no such vfs" (CPython)
        sqlite3.connect(f"file:{tmp_path}/x.db?vfs=nonesuch", uri=True)
    plain = sqlite3.connect(tmp_path / "plain.db")
    assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    plain.close()


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_new_file_and_memory_copies_are_identical(
    tmp_path: Path, journal: str, shims: bool, connect: Connect
) -> None:
    source = make_db(tmp_path / "src.db", rows=12_000, size=400, journal=journal)
    expected = dump(source)
    sqlitebck.copy(source, tmp_path / "new.db")
    assert integrity(tmp_path / "new.db") == "ok"
    assert dump(tmp_path / "new.db") == expected
    memory = connect(":memory:")
    sqlitebck.copy(source, memory, pages=100)
    assert dump(memory) == expected
    sqlitebck.copy(memory, tmp_path / "from-memory.db")
    assert dump(tmp_path / "from-memory.db") == expected
    # Keeping WAL: the published file is WAL, self-contained.
    sqlitebck.copy(source, tmp_path / "kept.db", keep_wal=True)
    assert sorted(p.name for p in tmp_path.iterdir() if "kept" in p.name) == ["kept.db"]
    with open(tmp_path / "kept.db", "rb") as f:
        assert f.read(20)[18] == (2 if journal == "wal" else 1)
    assert dump(tmp_path / "kept.db") == expected


def test_the_writer_is_a_faithful_file(tmp_path: Path) -> None:
    """A workload of random writes, rewrites, reads, rollbacks, vacuums and
    journal mode changes through the writer ends as through SQLite's VFS."""
    conns = [
        sqlite3.connect(f"file:{tmp_path}/w.db?vfs={WRITER}", uri=True),
        sqlite3.connect(tmp_path / "plain.db"),
    ]
    rng = random.Random(15)
    for conn in conns:
        conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)")
    for step in range(300):
        op = rng.random()
        seed = rng.randrange(1 << 30)
        for conn in conns:
            r = random.Random(seed)
            if op < 0.55:
                conn.executemany(
                    "INSERT OR REPLACE INTO t VALUES (?, ?)",
                    [
                        (r.randrange(5000), r.randbytes(r.randrange(10, 3000)))
                        for _ in range(r.randrange(1, 80))
                    ],
                )
                conn.commit()
            elif op < 0.7:
                conn.execute("DELETE FROM t WHERE k % 7 = ?", (r.randrange(7),))
                conn.commit()
            elif op < 0.8:
                conn.execute("INSERT INTO t VALUES (NULL, randomblob(5000))")
                conn.rollback()
            elif op < 0.85:
                conn.execute("VACUUM")
            elif op < 0.9:
                mode = ["wal", "delete", "off", "truncate"][step % 4]
                conn.execute(f"PRAGMA journal_mode={mode}").fetchall()
            else:
                assert conn.execute("SELECT count(*) FROM t").fetchone()
    assert dump(conns[0]) == dump(conns[1])
    for conn in conns:
        conn.close()
    assert integrity(tmp_path / "w.db") == "ok"
    assert dump(tmp_path / "w.db") == dump(tmp_path / "plain.db")


# A writer process: every transaction adds one row to t and sets c.n to the
# number of rows, so that a copy is one snapshot exactly if count(t) == c.n
# and t's keys are 1..n. It pauses 0.2 ms between transactions: without any
# pause, on a loaded machine, a rollback-journal writer holds its exclusive
# lock nearly all the time, and no reader (SQLite's own busy handler, or a
# copy's) gets a shared lock for many seconds.
WRITER_PROCESS = """
    import sqlite3, sys, time
    conn = sqlite3.connect({source!r}, timeout=30, isolation_level=None)
    print("ready", flush=True)
    n = conn.execute("SELECT n FROM c").fetchone()[0]
    while True:
        n += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, randomblob(700))", (n,))
        conn.execute("UPDATE c SET n = ?", (n,))
        conn.execute("COMMIT")
        time.sleep(0.0002)
"""


def consistent(db: str | Path | sqlite3.Connection) -> int:
    """The number of rows of a consistent copy; fails on any other."""
    assert integrity(db) == "ok"
    got = rows(db)
    n: int = rows(db, "c")[0][0]
    assert [r[0] for r in got] == list(range(1, n + 1))
    return n


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_copies_under_a_writer_process_are_snapshots(
    tmp_path: Path, journal: str, shims: bool, connect: Connect
) -> None:
    source = tmp_path / "src.db"
    conn = connect(source)
    conn.execute(f"PRAGMA journal_mode={journal}").fetchall()
    conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)")
    conn.execute("CREATE TABLE c(n)")
    conn.execute(
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
        "WHERE i < 6000) INSERT INTO t SELECT i, randomblob(700) FROM s"
    )
    conn.execute("INSERT INTO c VALUES (6000)")
    conn.commit()
    conn.close()
    child = python(WRITER_PROCESS.format(source=str(source)))
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    seen = []
    try:
        for trial in range(8):
            pages = [0, 0, 64, 500][trial % 4]
            dest = tmp_path / f"copy{trial}.db"
            sqlitebck.copy(source, dest, pages=pages, timeout=30)
            seen.append(consistent(dest))
            memory = connect(":memory:")
            sqlitebck.copy(source, memory, pages=pages, timeout=30)
            seen.append(consistent(memory))
    finally:
        child.kill()
        child.communicate(timeout=30)
    assert seen[-1] > 6000, seen  # the writer wrote during the copies
    assert consistent(source) >= seen[-1]


def test_a_source_path_is_read_again_after_every_write(
    tmp_path: Path, connect: Connect
) -> None:
    """The reader forgets what it read once the file may change: copies of a
    source written between them (by this process) see every write."""
    source = make_db(tmp_path / "src.db", rows=3000)
    writer = connect(source)
    for i in range(5):
        memory = connect(":memory:")
        sqlitebck.copy(source, memory, pages=7)
        assert rows(memory) == rows(writer)
        writer.execute("UPDATE t SET v = randomblob(300) WHERE id % 5 = ?", (i,))
        writer.commit()
    writer.close()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_through_the_shims_leaves_nothing(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=20_000)
    calls = [0]

    def progress(status: int, remaining: int, total: int) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sqlitebck.copy(source, tmp_path / "new.db", pages=200, progress=progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.db"]
    sqlitebck.copy(source, tmp_path / "new.db")
    assert dump(tmp_path / "new.db") == dump(source)


@POSIX
def test_large_new_files_leave_no_descriptor(tmp_path: Path, shims: bool) -> None:
    # Files large enough for the writer's write-back requests, which open a
    # descriptor of their own: closed with the file, whatever the source.
    source = make_db(tmp_path / "src.db", rows=WRITE_BACK_ROWS, size=400)
    expected = dump(source)
    memory = sqlite3.connect(":memory:")
    sqlitebck.copy(source, memory)
    before = open_fds()
    sqlitebck.copy(source, tmp_path / "new.db")
    sqlitebck.copy(memory, tmp_path / "from-memory.db", pages=300)
    assert open_fds() == before
    memory.close()
    for name in ("new.db", "from-memory.db"):
        assert integrity(tmp_path / name) == "ok"
        assert dump(tmp_path / name) == expected


OUT_OF_DESCRIPTORS_MID_COPY = """
    import os, sqlite3, sqlitebck
    sqlitebck._endpoints.USE_SHIMS = {shims}
    held, state = [], ["before"]
    def progress(status, remaining, total):
        # From the first batch until a quarter is left, not one descriptor
        # is free: the writer's write-back requests cannot open theirs.
        if state[0] == "before":
            state[0] = "out"
            try:
                while True:
                    held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                pass
        elif state[0] == "out" and remaining * 4 < total:
            state[0] = "after"
            while held:
                os.close(held.pop())
    sqlitebck.copy({source!r}, {dest!r}, pages=200, progress=progress)
    print("copied", state[0], len(os.listdir("/proc/self/fd")))
"""


@POSIX
def test_out_of_descriptors_mid_copy_still_copies(tmp_path: Path, shims: bool) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc")
    source = make_db(tmp_path / "src.db", rows=WRITE_BACK_ROWS, size=400)
    child = python(
        OUT_OF_DESCRIPTORS_MID_COPY.format(
            source=str(source), dest=str(tmp_path / "new.db"), shims=shims
        )
    )
    out, err = child.communicate(timeout=120)
    assert out.split()[:2] == ["copied", "after"], err
    assert integrity(tmp_path / "new.db") == "ok"
    assert dump(tmp_path / "new.db") == dump(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db", "src.db"]
