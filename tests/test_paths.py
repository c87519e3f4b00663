"""Paths on either side: read-only sources, atomic new destinations."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import Connect, integrity, make_db, open_fds, python, rows

import sqlitebck
from sqlitebck import _endpoints


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
    sqlitebck._endpoints.USE_SHIMS = {shims}
    def progress(status, remaining, total):
        if remaining < total // 2:
            print("halfway", flush=True)
            sys.stdin.readline()  # wait here to be killed
    sqlitebck.copy({source!r}, {dest!r}, pages=20, progress=progress)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_killed_mid_copy_leaves_no_file_at_the_final_path(
    tmp_path: Path, shims: bool
) -> None:
    source = make_db(tmp_path / "src.db", rows=2000)
    dest = tmp_path / "new.db"
    child = python(
        KILLED_MID_COPY.format(source=str(source), dest=str(dest), shims=shims)
    )
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


def private_folders(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".sqlitebck-tmp")]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644, 0o400, 0o664])
def test_new_copy_is_no_more_readable_than_its_source(
    tmp_path: Path, mode: int, umask: int
) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    source.chmod(mode)
    expected = mode & ~umask
    seen: list[int] = []

    def progress(status: int, remaining: int, total: int) -> None:
        # While the copy runs: one private folder, and a file inside it that
        # nobody else may read more than the final copy allows.
        (private,) = private_folders(tmp_path)
        assert private.stat().st_mode & 0o777 == 0o700
        seen.append((private / "copy.db").stat().st_mode & 0o777)

    old = os.umask(umask)
    try:
        sqlitebck.copy(source, tmp_path / "new.db", pages=50, progress=progress)
        conn = sqlite3.connect(source)
        sqlitebck.copy(conn, tmp_path / "from-conn.db")
        conn.close()
        memory = sqlite3.connect(":memory:")
        sqlitebck.copy(memory, tmp_path / "from-memory.db")
        memory.close()
    finally:
        os.umask(old)
    assert seen and all(m & 0o077 == expected & 0o077 for m in seen)
    assert (tmp_path / "new.db").stat().st_mode & 0o777 == expected
    assert (tmp_path / "from-conn.db").stat().st_mode & 0o777 == expected
    assert (tmp_path / "from-memory.db").stat().st_mode & 0o777 == 0o666 & ~umask
    assert rows(tmp_path / "new.db") == rows(source)
    assert private_folders(tmp_path) == []


SWAPPER = """
    import os, sys
    os.setgid(65534)
    os.setuid(65534)
    private = sys.argv[1]
    for attempt in (
        lambda: os.listdir(private),
        lambda: os.rename(private, private + ".moved"),
        lambda: os.unlink(os.path.join(private, "copy.db")),
        lambda: os.symlink("/etc/passwd", os.path.join(private, "x")),
    ):
        try:
            attempt()
            print("done")
        except PermissionError:
            print("refused")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_temporary_file_cannot_be_swapped_by_another_user() -> None:
    """In a shared sticky folder like /tmp, another user can neither see nor
    move nor replace the file SQLite writes the copy into."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to act as another user")
    import shutil
    import subprocess
    import tempfile

    shared = Path(tempfile.mkdtemp())
    try:
        shared.chmod(0o1777)  # like /tmp
        source = make_db(shared / "src.db", rows=300)
        answers: list[str] = []

        def progress(status: int, remaining: int, total: int) -> None:
            if not answers:
                (private,) = private_folders(shared)
                code = SWAPPER.replace("sys.argv[1]", repr(str(private)))
                done = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        "import textwrap; exec(textwrap.dedent(" + repr(code) + "))",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                answers.extend(done.stdout.split() or [done.stderr])

        sqlitebck.copy(source, shared / "new.db", pages=50, progress=progress)
        assert answers == ["refused"] * 4
        assert rows(shared / "new.db") == rows(source)
        assert sorted(p.name for p in shared.iterdir()) == ["new.db", "src.db"]
    finally:
        shutil.rmtree(shared)


# Copies a source into a new file as another user (nobody) who is not a
# member of the source's group; prints the copy's group and mode.
COPY_AS_NOBODY = """
    import os, sys
    import sqlitebck
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    os.umask(0o002)
    sqlitebck.copy(sys.argv[1], sys.argv[2])
    st = os.stat(sys.argv[2])
    print(st.st_gid, oct(st.st_mode & 0o777))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_new_copy_keeps_its_sources_group_or_gets_no_group_bits() -> None:
    """A 0640 source of group G becomes a 0640 copy of group G where the
    process may give it that group (root here); else its group bits are
    cleared, so no group that could not read the source can read the copy."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to set groups and act as another user")
    import shutil
    import tempfile

    group = 4242  # a group neither root's nor nobody's
    shared = Path(tempfile.mkdtemp())
    try:
        shared.chmod(0o1777)
        source = make_db(shared / "src.db", rows=30)
        os.chown(source, -1, group)
        source.chmod(0o644 | 0o020)  # readable by all, writable by the group
        sqlitebck.copy(source, shared / "as-root.db")
        st = (shared / "as-root.db").stat()
        assert st.st_gid == group
        code = COPY_AS_NOBODY.replace("sys.argv[1]", repr(str(source)))
        code = code.replace("sys.argv[2]", repr(str(shared / "as-nobody.db")))
        child = python(code)
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        gid, mode = out.split()
        assert int(gid) != group
        assert mode == oct(0o604)  # 0o664 & ~umask, less the group bits
        assert rows(shared / "as-nobody.db") == rows(source)
    finally:
        shutil.rmtree(shared)


def test_dangling_symlink_destination_is_refused(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db")
    link = tmp_path / "link.db"
    link.symlink_to(tmp_path / "target.db")
    with pytest.raises(sqlite3.OperationalError, match="does not exist") as info:
        sqlitebck.copy(source, link)
    assert info.value.sqlite_errorname == "SQLITE_CANTOPEN"
    assert str(link) in str(info.value)
    assert not (tmp_path / "target.db").exists()
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.db", "src.db"]


def test_symlink_to_a_database_is_written_through(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    (tmp_path / "real").mkdir()
    target = make_db(tmp_path / "real" / "target.db", rows=3)
    link = tmp_path / "link.db"
    link.symlink_to(target)
    sqlitebck.copy(source, link, pages=7)
    assert link.is_symlink()
    assert rows(target) == rows(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.db", "real", "src.db"]
    assert os.listdir(tmp_path / "real") == ["target.db"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX special files")
def test_destinations_that_are_not_regular_files_are_refused(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    to_null = tmp_path / "to-null"
    to_null.symlink_to(os.devnull)
    for dest in (Path(os.devnull), fifo, folder, to_null):
        with pytest.raises(sqlite3.OperationalError, match="not writing") as info:
            sqlitebck.copy(source, dest)
        assert info.value.sqlite_errorname == "SQLITE_CANTOPEN"
        assert str(dest) in str(info.value)
    assert not os.path.exists(os.devnull + "-journal")
    assert list(folder.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fifo",
        "folder",
        "src.db",
        "to-null",
    ]


@pytest.mark.parametrize(
    "content", [b"x", b"SQLite format", b"SQLite format 4\0" + b"\0" * 100]
)
def test_short_files_that_are_not_databases_are_never_clobbered(
    tmp_path: Path, content: bytes
) -> None:
    source = make_db(tmp_path / "src.db")
    dest = tmp_path / "notes"
    dest.write_bytes(content)
    with pytest.raises(sqlite3.DatabaseError) as info:
        sqlitebck.copy(source, dest)
    assert info.value.sqlite_errorname == "SQLITE_NOTADB"
    assert dest.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "src.db"]


def test_an_empty_existing_file_is_an_empty_database(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db")
    dest = tmp_path / "empty.db"
    dest.touch()
    sqlitebck.copy(source, dest)
    assert rows(dest) == rows(source)


def test_errors_name_the_users_paths(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db")
    (tmp_path / "a-file").write_text("x")
    for dest, error in (
        (tmp_path / "missing" / "new.db", FileNotFoundError),
        (tmp_path / "a-file" / "new.db", NotADirectoryError),
        (tmp_path / ("n" * 256), OSError),
    ):
        with pytest.raises(error) as info:
            sqlitebck.copy(source, dest)
        assert info.value.filename == str(dest)
        assert "sqlitebck-tmp" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "src.db"]


def test_failures_leave_no_descriptor_and_no_file(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"x")
    dangling = tmp_path / "dangling.db"
    dangling.symlink_to(tmp_path / "nowhere.db")
    long_existing = tmp_path / ("n" * 250)
    sqlitebck.copy(source, long_existing)

    def stop(status: int, remaining: int, total: int) -> None:
        raise RuntimeError("stop")

    def unfinished_backup() -> None:
        with sqlitebck.Backup(source, tmp_path / "new.db") as backup:
            backup.step(1)
            raise RuntimeError("stop")

    attempts = [
        lambda: sqlitebck.copy(source, tmp_path / "missing" / "x.db"),
        lambda: sqlitebck.copy(source, tmp_path / ("n" * 256)),
        lambda: sqlitebck.copy(source, tmp_path / "new.db", pages=2, progress=stop),
        lambda: sqlitebck.copy(junk, tmp_path / "new.db"),
        lambda: sqlitebck.copy(source, notes),
        lambda: sqlitebck.copy(source, dangling),
        lambda: sqlitebck.copy(source, os.devnull),
        lambda: sqlitebck.copy(long_existing, long_existing),
        lambda: sqlitebck.copy(source, long_existing),
        unfinished_backup,
    ]
    before_files = sorted(p.name for p in tmp_path.iterdir())
    for attempt in attempts:  # warm up: imports, caches
        with pytest.raises(Exception):  # noqa: B017 - every kind, on purpose
            attempt()
    import gc

    def settled_fds() -> int:
        for _ in range(3):
            gc.collect()
        return open_fds()

    fds = settled_fds()
    for i in range(100):
        with pytest.raises(Exception):  # noqa: B017
            attempts[i % len(attempts)]()
    # No growth. (Earlier tests' dropped connections may close meanwhile, as
    # PyPy's collector gets to them: the count may fall.)
    assert settled_fds() <= fds
    assert sorted(p.name for p in tmp_path.iterdir()) == before_files


HOT_JOURNAL = """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA cache_size=10")  # spill pages to the file early
    conn.execute("BEGIN")
    conn.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
        "WHERE i < 3000) INSERT INTO t(v) SELECT randomblob(1000) FROM c"
    )
    print("spilled", flush=True)
    sys.stdin.readline()  # wait here to be killed
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_hot_journal_source_is_explained(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=50)
    before = rows(source)
    child = python(HOT_JOURNAL.replace("sys.argv[1]", repr(str(source))))
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "spilled"
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    journal = tmp_path / "src.db-journal"
    assert journal.stat().st_size > 0  # left hot by the killed writer
    with pytest.raises(sqlite3.OperationalError, match="hot journal") as info:
        sqlitebck.copy(source, tmp_path / "new.db")
    assert info.value.sqlite_errorname == "SQLITE_READONLY_ROLLBACK"
    assert str(source) in str(info.value) and "read-write" in str(info.value)
    assert journal.exists()  # the source was not touched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.db", "src.db-journal"]
    # What the message says to do works: a read-write open rolls it back.
    conn = sqlite3.connect(source)
    conn.execute("PRAGMA schema_version").fetchone()
    conn.close()
    sqlitebck.copy(source, tmp_path / "new.db")
    assert rows(tmp_path / "new.db") == before


READ_ONLY_FOLDER = """
    import os, sqlite3, sys, sqlitebck
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
    try:
        sqlitebck.copy(sys.argv[1], sqlite3.connect(":memory:"))
        print("copied")
    except sqlite3.OperationalError as e:
        print(getattr(e, "sqlite_errorname", "?"), e)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_wal_source_in_a_read_only_folder_is_explained() -> None:
    import shutil
    import tempfile

    # Under /tmp, so that another user (root's tests run it as nobody, for
    # whom the folder's mode counts) can reach it.
    top = Path(tempfile.mkdtemp())
    folder = top / "ro"
    try:
        top.chmod(0o755)
        folder.mkdir()
        source = make_db(folder / "wal.db", journal="wal")
        assert sorted(os.listdir(folder)) == ["wal.db"]  # no -wal, no -shm
        source.chmod(0o644)
        folder.chmod(0o555)
        if os.geteuid() != 0 and os.access(folder, os.W_OK):
            pytest.skip("cannot make a folder read-only here")
        code = READ_ONLY_FOLDER.replace("sys.argv[1]", repr(str(source)))
        child = python(code)
        out, err = child.communicate(timeout=60)
        assert out.startswith("SQLITE_READONLY_DIRECTORY "), err
        assert "WAL database" in out and "-shm" in out and str(source) in out
        assert sorted(os.listdir(folder)) == ["wal.db"]
    finally:
        folder.chmod(0o755)
        shutil.rmtree(top)


def header_mode(path: Path) -> bytes:
    """Bytes 18-19 of the database header: 1 rollback journal, 2 WAL."""
    return path.read_bytes()[18:20]


def test_new_copies_of_wal_databases_are_self_contained(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=300, journal="wal")
    writer = sqlite3.connect(source)
    writer.execute("INSERT INTO t(v) VALUES (x'01')")
    writer.commit()  # in the -wal file only, until a checkpoint
    out = tmp_path / "out"
    out.mkdir()
    sqlitebck.copy(source, out / "plain.db", pages=10)
    with sqlitebck.Backup(source, out / "backup.db") as backup:
        backup.step()
    sqlitebck.copy(source, out / "wal.db", keep_wal=True)
    writer.close()
    assert sorted(os.listdir(out)) == ["backup.db", "plain.db", "wal.db"]
    assert header_mode(out / "plain.db") == b"\x01\x01"
    assert header_mode(out / "backup.db") == b"\x01\x01"
    assert header_mode(out / "wal.db") == b"\x02\x02"
    # One file: it opens read-only where no -shm can be created.
    out.chmod(0o555)
    try:
        conn = sqlite3.connect(f"file:{out / 'plain.db'}?mode=ro", uri=True)
        assert len(rows(conn)) == 301
        conn.close()
    finally:
        out.chmod(0o755)
    assert sorted(os.listdir(out)) == ["backup.db", "plain.db", "wal.db"]


def test_existing_destinations_keep_their_journal_mode(tmp_path: Path) -> None:
    wal_source = make_db(tmp_path / "wal-src.db", rows=100, journal="wal")
    rollback_source = make_db(tmp_path / "src.db", rows=100)
    rollback_dest = make_db(tmp_path / "rollback.db", rows=3)
    wal_dest = make_db(tmp_path / "wal.db", rows=3, journal="wal")
    sqlitebck.copy(wal_source, rollback_dest)  # SQLite alone would make it WAL
    sqlitebck.copy(rollback_source, wal_dest)
    assert header_mode(rollback_dest) == b"\x01\x01"
    assert header_mode(wal_dest) == b"\x02\x02"
    assert rows(rollback_dest) == rows(wal_source)
    assert rows(wal_dest) == rows(rollback_source)
    assert not (tmp_path / "rollback.db-wal").exists()


def test_restore_into_a_live_database(tmp_path: Path) -> None:
    """The README's restore: copy the backup over the live database."""
    live = make_db(tmp_path / "app.db", rows=100, journal="wal")
    sqlitebck.copy(live, tmp_path / "backup.db")
    app = sqlite3.connect(live)  # the application keeps its connection
    app.execute("DELETE FROM t WHERE id > 10")
    app.commit()
    reader = sqlite3.connect(live)
    assert len(rows(reader)) == 10
    sqlitebck.copy(tmp_path / "backup.db", live)
    assert len(rows(app)) == len(rows(reader)) == 100
    assert app.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert integrity(app) == "ok"
    app.close()
    reader.close()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
def test_a_source_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    dest = make_db(tmp_path / "important.db", rows=5)
    before = rows(dest)
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    for source in (os.devnull, fifo):  # an empty database; an open that blocks
        with pytest.raises(sqlite3.OperationalError, match="not a database file"):
            sqlitebck.copy(source, dest)
    assert rows(dest) == before


def test_a_failed_settling_step_still_closes_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every clean-up step runs whatever failed before it: a new copy whose
    journal mode cannot be settled (a full disk, no descriptors left) is
    closed and removed all the same, never left open holding its space."""
    import sqlitebck._endpoints as endpoints

    source = make_db(tmp_path / "src.db", rows=300, journal="wal")

    def fail(self: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(endpoints.Endpoints, "_settle_journal_mode", fail)
    with pytest.raises(OSError, match="No space"):
        sqlitebck.copy(source, tmp_path / "new.db")
    fds = "/proc/self/fd"
    if os.path.isdir(fds):
        targets = []
        for fd in os.listdir(fds):
            with contextlib.suppress(OSError):
                targets.append(os.readlink(os.path.join(fds, fd)))
        assert not [t for t in targets if t.startswith(str(tmp_path))], targets
    # No new file, no private folder: only the source (and its WAL files).
    assert {p.name for p in tmp_path.iterdir()} <= {
        "src.db",
        "src.db-wal",
        "src.db-shm",
    }


@pytest.mark.skipif(os.name != "posix", reason="process ids of POSIX")
def test_a_new_copy_removes_the_folders_of_dead_processes_only(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=10)
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(done.stdout)  # that process has exited
    folders = {
        "dead": tmp_path / f".{dead}.0123abcd.sqlitebck-tmp",
        "alive": tmp_path / f".{os.getppid()}.0123abcd.sqlitebck-tmp",
        "other": tmp_path / f".{dead}.not-ours.sqlitebck-tmp",
        # Its process seems gone, but it was written to a minute ago: it may
        # be a live copy in another PID namespace (a container).
        "recent": tmp_path / f".{dead}.4567abcd.sqlitebck-tmp",
    }
    idle = time.time() - _endpoints.ORPHAN_IDLE_SECONDS - 60
    for name, folder in folders.items():
        folder.mkdir(mode=0o700)
        (folder / "copy.db").write_bytes(b"x" * 4096)
        if name == "dead":
            (folder / "copy.db-journal").write_bytes(b"j")
        moment = time.time() - 60 if name == "recent" else idle
        for path in [*folder.iterdir(), folder]:
            os.utime(path, (moment, moment))
    sqlitebck.copy(source, tmp_path / "new.db")
    assert not folders["dead"].exists()
    assert all(folders[name].exists() for name in ("alive", "other", "recent"))
    assert rows(tmp_path / "new.db") == rows(source)


def test_restoring_over_a_wal_database_of_another_page_size(tmp_path: Path) -> None:
    """SQLite's backup cannot change the page size of a WAL database: to a
    path, sqlitebck takes it out of WAL mode for the copy (and back in after);
    while another connection has it open, or given as a connection, the error
    says why and what to do."""
    source = tmp_path / "src.db"
    conn = sqlite3.connect(source)
    conn.execute("PRAGMA page_size=8192")
    conn.execute("CREATE TABLE t(x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    dest = tmp_path / "live.db"
    conn = sqlite3.connect(dest)
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    conn.execute("CREATE TABLE old(y)")
    conn.commit()
    for target in (dest, conn):  # another connection is open / a connection
        with pytest.raises(sqlite3.OperationalError, match="page size") as info:
            sqlitebck.copy(source, target)
        assert "8192" in str(info.value) and "WAL" in str(info.value)
    conn.close()
    sqlitebck.copy(source, dest)
    conn = sqlite3.connect(dest)
    try:
        assert conn.execute("PRAGMA page_size").fetchone() == (8192,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    finally:
        conn.close()


def test_a_backup_block_left_by_an_exception_after_the_last_step_says_so(
    tmp_path: Path,
) -> None:
    """The with block of a Backup to a new path puts the complete copy in
    place as it ends: an exception leaving the block after the last step
    (a Ctrl-C, say) carries the note that the destination holds the copy;
    one before it leaves no file and no note."""
    source = make_db(tmp_path / "src.db", rows=300)
    for complete in (True, False):
        new = tmp_path / f"new-{complete}.db"
        with pytest.raises(RuntimeError) as info, sqlitebck.Backup(source, new) as b:
            while not b.step(5):
                if not complete:
                    break
            raise RuntimeError("interrupted")
        notes = getattr(info.value, "__notes__", [])
        assert new.exists() is complete
        assert any("holds the new copy" in n for n in notes) is complete
    assert rows(tmp_path / "new-True.db") == rows(source)
