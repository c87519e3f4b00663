"""Nothing is lost, whatever happens around a copy: faults, bad input, load."""

from __future__ import annotations

import contextlib
import gc
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Connect, fill, integrity, make_db, open_fds, python, rows

import sqlitebck

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")

FILE_MAY_NOT_GROW = """
    import resource, signal, sqlite3, sys, sqlitebck
    sqlitebck._endpoints.USE_SHIMS = {shims}
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    try:
        sqlitebck.copy({source!r}, {dest!r}, pages={pages})
        print("copied")
    except sqlite3.OperationalError as e:
        print(type(e).__name__, e.sqlite_errorname)
"""

# SQLite reports a full disk (ENOSPC) as SQLITE_FULL, and a file that may not
# grow (EFBIG, from RLIMIT_FSIZE) as SQLITE_IOERR_WRITE or, after a short
# write, SQLITE_FULL.
CANNOT_GROW = ("SQLITE_FULL", "SQLITE_IOERR_WRITE")


@POSIX
@pytest.mark.parametrize("pages", [0, 10])
def test_file_size_limit_keeps_an_existing_destination(
    tmp_path: Path, pages: int, shims: bool
) -> None:
    source = make_db(tmp_path / "src.db", rows=3000)  # about 1 MB
    dest = make_db(tmp_path / "dst.db", rows=100)
    before = rows(dest)
    limit = dest.stat().st_size + 100_123
    child = python(
        FILE_MAY_NOT_GROW.format(
            limit=limit, source=str(source), dest=str(dest), pages=pages, shims=shims
        )
    )
    out, err = child.communicate(timeout=60)
    assert out.split()[0] == "OperationalError", err
    assert out.split()[1] in CANNOT_GROW
    assert integrity(dest) == "ok"
    assert rows(dest) == before


@POSIX
@pytest.mark.parametrize("pages", [0, 10])
# 1 MB, cut at 200 kB; 10 MB, cut at 6 MB: after the writer asked for the
# write-back of its first 4 MiB (csrc/vfs.c, SQLITEBCK_WRITEBACK).
@pytest.mark.parametrize(("size", "limit"), [(3000, 200_123), (30_000, 6_000_123)])
def test_file_size_limit_leaves_nothing_for_a_new_destination(
    tmp_path: Path, pages: int, size: int, limit: int, shims: bool
) -> None:
    source = make_db(tmp_path / "src.db", rows=size)
    child = python(
        FILE_MAY_NOT_GROW.format(
            limit=limit,
            source=str(source),
            dest=str(tmp_path / "new.db"),
            pages=pages,
            shims=shims,
        )
    )
    out, err = child.communicate(timeout=60)
    assert out.split()[0] == "OperationalError", err
    assert out.split()[1] in CANNOT_GROW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.db"]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 kB file system (tmpfs): needs the right to mount (root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@POSIX
@pytest.mark.parametrize("pages", [0, 10])
def test_full_disk_keeps_an_existing_destination(
    tmp_path: Path, tiny_disk: Path, pages: int, shims: bool
) -> None:
    source = make_db(tmp_path / "src.db", rows=3000)
    dest = make_db(tiny_disk / "dst.db", rows=100)
    before = rows(dest)
    with pytest.raises(sqlite3.OperationalError) as info:
        sqlitebck.copy(source, dest, pages=pages)
    assert info.value.sqlite_errorname == "SQLITE_FULL"
    assert integrity(dest) == "ok"
    assert rows(dest) == before


@POSIX
@pytest.mark.parametrize("pages", [0, 10])
@pytest.mark.parametrize("size", [3000, 30_000])  # 1 MB; 10 MB, many flushes
def test_full_disk_leaves_nothing_for_a_new_destination(
    tmp_path: Path, tiny_disk: Path, pages: int, size: int, shims: bool
) -> None:
    source = make_db(tmp_path / "src.db", rows=size)
    with pytest.raises(sqlite3.OperationalError) as info:
        sqlitebck.copy(source, tiny_disk / "new.db", pages=pages)
    assert info.value.sqlite_errorname == "SQLITE_FULL"
    assert list(tiny_disk.iterdir()) == []


COPY_FOREVER = """
    import sqlite3, sys, sqlitebck
    src = sqlite3.connect({source!r})
    dst = sqlite3.connect({dest!r})
    print("ready", flush=True)
    while True:
        sqlitebck.copy(src, dst, pages=37, sleep=0.2)
        sqlitebck.copy(src, dst)
"""


@POSIX
def test_killed_at_random_moments_the_destination_is_old_or_new(
    tmp_path: Path,
) -> None:
    source = make_db(tmp_path / "src.db", rows=6000)
    new = rows(source)
    rng = random.Random(2026)
    for trial in range(12):
        dest = make_db(tmp_path / f"dst{trial}.db", rows=50)
        old = rows(dest)
        child = python(COPY_FOREVER.format(source=str(source), dest=str(dest)))
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        # Opening it rolls back a hot journal left by the killed copy.
        assert integrity(dest) == "ok"
        assert rows(dest) in (old, new)


def test_truncated_source_is_a_database_error(tmp_path: Path, connect: Connect) -> None:
    source = make_db(tmp_path / "src.db", rows=600)
    os.truncate(source, source.stat().st_size // 2)
    for pages in (0, 5):
        with pytest.raises(sqlite3.DatabaseError) as info:
            sqlitebck.copy(source, connect(":memory:"), pages=pages)
        assert info.value.sqlite_errorname == "SQLITE_CORRUPT"


def test_empty_source_path_is_refused(tmp_path: Path, connect: Connect) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    dest = make_db(tmp_path / "dst.db", rows=5)
    before = rows(dest)
    with pytest.raises(sqlite3.DatabaseError, match="empty file") as info:
        sqlitebck.copy(empty, dest)
    assert info.value.sqlite_errorname == "SQLITE_NOTADB"
    assert rows(dest) == before
    # A connection to an empty file is an empty database, as SQLite says.
    out = connect(":memory:")
    assert sqlitebck.copy(connect(empty), out).pages == 0


def test_directory_as_source_or_destination(tmp_path: Path, connect: Connect) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises((sqlite3.DatabaseError, OSError)) as info:
        sqlitebck.copy(folder, connect(":memory:"))
    # Set where SQLite produced the error (PyPy 3.9's own sqlite3 module, which
    # may raise first here, sets no code).
    assert getattr(info.value, "sqlite_errorcode", None) != 0
    source = make_db(tmp_path / "src.db")
    with pytest.raises((sqlite3.DatabaseError, OSError)):
        sqlitebck.copy(source, folder)
    assert list(folder.iterdir()) == []


def test_abandoned_backups_leak_no_handles(tmp_path: Path, connect: Connect) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    dest = make_db(tmp_path / "dst.db", rows=5)
    before = rows(dest)
    fill(connect(tmp_path / "warm.db"))
    gc.collect()
    fds = open_fds()
    for i in range(100):
        backup = sqlitebck.Backup(source, dest if i % 2 else tmp_path / "new.db")
        backup.step(3)
        del backup
        gc.collect()  # PyPy finalizes dropped objects only when it collects
    assert open_fds() <= fds  # (PyPy may meanwhile collect an older one)
    assert rows(dest) == before
    assert not (tmp_path / "new.db").exists()


def rss() -> int:
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs /proc")
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_twenty_thousand_copies_do_not_grow_memory(connect: Connect) -> None:
    src = connect(":memory:")
    fill(src, rows=20, size=50)
    dst = connect(":memory:")
    for _ in range(15_000):  # warm up: PyPy's JIT and GC settle by then
        sqlitebck.copy(src, dst)
        sqlitebck.copy(src, dst, pages=1)
    gc.collect()
    before = rss()
    for _ in range(10_000):
        sqlitebck.copy(src, dst)
        sqlitebck.copy(src, dst, pages=1)
    gc.collect()
    assert rss() - before < 8 * 1024 * 1024


def test_eight_threads_copying_different_databases(tmp_path: Path) -> None:
    sources = [make_db(tmp_path / f"src{i}.db", rows=400 + 50 * i) for i in range(8)]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for round_ in range(5):
                dest = tmp_path / f"dst{i}-{round_}.db"
                sqlitebck.copy(sources[i], dest, pages=i * 7)
                with (
                    contextlib.closing(sqlite3.connect(":memory:")) as memory,
                    contextlib.closing(sqlite3.connect(dest)) as copied,
                ):
                    sqlitebck.copy(copied, memory, pages=3)
                    assert rows(memory) == rows(sources[i])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_copies_while_other_threads_use_the_source_connection(
    tmp_path: Path,
    connect: Connect,
) -> None:
    # Autocommit: each write is committed as its statement ends. (A thread
    # that leaves a write transaction open when a copy starts makes it fail at
    # once; threads sharing a connection must coordinate, as ever.)
    source = connect(
        make_db(tmp_path / "src.db", rows=2000),
        check_same_thread=False,
        isolation_level=None,
    )
    first = rows(source)
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                source.execute("SELECT count(*) FROM t").fetchone()
        except BaseException as e:
            errors.append(e)

    def writer() -> None:
        try:
            while not stop.is_set():
                source.execute("INSERT INTO t(v) VALUES (randomblob(100))")
                time.sleep(0.001)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=f) for f in (reader, reader, writer)]
    for t in threads:
        t.start()
    try:
        for pages in (0, 5, 50):
            dest = connect(":memory:")
            sqlitebck.copy(source, dest, pages=pages, sleep=0.2)
            copied = rows(dest)
            assert integrity(dest) == "ok"
            assert copied[: len(first)] == first
            assert set(copied) <= set(rows(source))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []


def test_a_write_transaction_in_another_thread_is_waited_for(
    tmp_path: Path, connect: Connect
) -> None:
    source = connect(make_db(tmp_path / "src.db", rows=500), check_same_thread=False)
    dest = connect(":memory:")
    opened = threading.Event()
    statuses: list[int] = []

    def progress(status: int, remaining: int, total: int) -> None:
        statuses.append(status)
        if len(statuses) == 1:
            # Another thread opens a write transaction on the source
            # connection, and commits it 0.3 s later.
            def other() -> None:
                source.execute("INSERT INTO t(v) VALUES (x'42')")
                opened.set()
                time.sleep(0.3)
                source.commit()

            threading.Thread(target=other).start()
            opened.wait()

    result = sqlitebck.copy(source, dest, pages=10, progress=progress, timeout=30)
    assert 5 in statuses  # it waited, reporting SQLITE_BUSY
    assert result.restarts == 0
    assert rows(dest) == rows(source)
