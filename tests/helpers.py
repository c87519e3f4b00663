"""Helpers the tests share: real databases on disk and in memory, child
processes, and a lock held by another process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Callable, Union

DB = Union[str, Path, sqlite3.Connection]
# The type of the ``connect`` fixture (conftest.py): sqlite3.connect, closing
# every connection it opened once the test ends.
Connect = Callable[..., sqlite3.Connection]


def fill(conn: sqlite3.Connection, rows: int = 200, size: int = 300) -> None:
    """Give ``conn`` a table ``t`` of ``rows`` rows of ``size``-byte blobs."""
    conn.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
        "WHERE i < ?) INSERT INTO t(v) SELECT randomblob(?) FROM c",
        (rows, size),
    )
    conn.commit()


def make_db(
    path: str | Path, rows: int = 200, size: int = 300, journal: str = "delete"
) -> Path:
    """Create a database file holding ``rows`` rows; return its path."""
    conn = sqlite3.connect(path)
    mode = conn.execute(f"PRAGMA journal_mode={journal}").fetchone()[0]
    assert mode == journal, mode
    fill(conn, rows, size)
    conn.close()
    return Path(path)


def opened(db: DB) -> sqlite3.Connection:
    """``db`` if it is a connection (of any DB-API module), else a new
    sqlite3 connection to the file it names."""
    return sqlite3.connect(db) if isinstance(db, (str, os.PathLike)) else db


def rows(db: DB, table: str = "t") -> list[Any]:
    """All rows of ``table``, in order, from a connection or a file."""
    conn = opened(db)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    finally:
        if conn is not db:
            conn.close()


def integrity(db: DB) -> str:
    conn = opened(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        if conn is not db:
            conn.close()


def page_count(conn: sqlite3.Connection, schema: str = "main") -> int:
    return int(conn.execute(f"PRAGMA {schema}.page_count").fetchone()[0])


def python(code: str, **kw: Any) -> subprocess.Popen[str]:
    """Start a child Python running ``code`` (dedented), pipes on stdio; it
    can import this module (``from helpers import writable``)."""
    here = str(Path(__file__).parent)
    path = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)
    # Not the project folder: "-c" would import the uncompiled source tree.
    kw.setdefault("cwd", tempfile.gettempdir())
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kw,
    )


HOLD_LOCK = """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute(sys.argv[2])
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
    print("released", flush=True)
"""


def hold_lock(path: Path, begin: str = "BEGIN EXCLUSIVE"):  # type: ignore[no-untyped-def]
    """A child process holding a lock on ``path`` until told to release it."""
    code = HOLD_LOCK.replace("sys.argv[1]", repr(str(path))).replace(
        "sys.argv[2]", repr(begin)
    )
    child = python(code)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "locked"
    return child


def cli(
    *args: str | bytes, cwd: str | bytes | Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the sqlitebck command in a child process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "sqlitebck", *args],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=120,
        cwd=cwd or tempfile.gettempdir(),
    )


def one_error_line(stderr: str) -> str:
    """The command's one error line; fails on a traceback or more lines."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("sqlitebck: error: ")
    return lines[0]


def open_fds() -> int:
    """How many file descriptors this process has open (needs /proc)."""
    import pytest

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc")
    return len(os.listdir("/proc/self/fd"))


def release(child) -> None:  # type: ignore[no-untyped-def]
    out, err = child.communicate("go\n", timeout=30)
    assert "released" in out, err


def writable(path: str | Path) -> bool:
    """True if another connection can write ``path`` at once: nothing holds
    a lock on it."""
    conn = sqlite3.connect(path, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()
