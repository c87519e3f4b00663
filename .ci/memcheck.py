"""valgrind memcheck over a representative workload (run by .ci/run).

``python .ci/memcheck.py`` runs itself under valgrind with ``--workload``:
every path of the C core (snapshot and paged copies, file and memory ends,
paths, the Backup object finished and abandoned, refused and failed copies).
It fails if any memcheck error or definite leak has a frame in the C core
(csrc/backup.c, functions sqlitebck_*). Reports from the interpreter and
cffi's own one-time module setup, whose stacks never pass through the core,
are counted and shown, not judged.
"""

import contextlib
import gc
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from typing import Callable

import sqlitebck

# A frame in the C core: its source file, or one of its functions (not the
# _cffi_f_* wrappers that cffi generates around them).
CORE_FRAME = re.compile(r"backup\.c:|[ :(]sqlitebck_[a-z_]+ \(")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src_path = os.path.join(tmp, "src.db")
        src = sqlite3.connect(src_path)
        src.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        src.execute(
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
            "WHERE i < 3000) INSERT INTO t(v) SELECT randomblob(300) FROM c"
        )
        src.commit()
        for pages in (0, 1, 7, -1):
            sqlitebck.copy(src, sqlite3.connect(":memory:"), pages)
            sqlitebck.copy(src, os.path.join(tmp, f"new{pages}.db"), pages)
        wal = sqlite3.connect(os.path.join(tmp, "wal.db"))
        wal.execute("PRAGMA journal_mode=WAL").fetchone()
        sqlitebck.copy(src, wal)
        sqlitebck.copy(wal, sqlite3.connect(":memory:"), pages=5)
        with sqlitebck.Backup(src_path, os.path.join(tmp, "b.db")) as backup:
            while not backup.step(100):
                pass
        abandoned = sqlitebck.Backup(src, sqlite3.connect(":memory:"))
        abandoned.step(2)
        del abandoned
        gc.collect()
        bad_calls: list[Callable[[], object]] = [
            lambda: sqlitebck.copy(src, src),
            lambda: sqlitebck.copy(src, sqlite3.connect(":memory:"), source_name="x"),
            lambda: sqlitebck.copy(os.path.join(tmp, "missing.db"), ":memory:"),
        ]
        for bad in bad_calls:
            with contextlib.suppress(ValueError, sqlite3.Error, OSError):
                bad()
        junk = os.path.join(tmp, "junk.db")
        with open(junk, "wb") as f:
            f.write(b"\x01" * 8192)
        with contextlib.suppress(sqlite3.DatabaseError):
            sqlitebck.copy(junk, sqlite3.connect(":memory:"), pages=3)

        def stop(status: int, remaining: int, total: int) -> None:
            raise KeyError(status)

        with contextlib.suppress(KeyError):
            sqlitebck.copy(src, sqlite3.connect(":memory:"), 3, progress=stop)
        lifecycle(src_path, tmp)
    print("memcheck workload done")


def closer(conn: sqlite3.Connection, when: int) -> Callable[[int, int, int], None]:
    """A progress callback that closes ``conn`` at call ``when`` (or status)."""
    calls = [0]

    def close_it(status: int, remaining: int, total: int) -> None:
        calls[0] += 1
        if when in (calls[0], status):
            with contextlib.suppress(sqlite3.OperationalError):
                conn.close()

    return close_it


def lifecycle(src_path: str, tmp: str) -> None:
    """Connections closed and used mid-copy, from callbacks and between steps."""
    for victim in ("source", "dest"):
        for when in (1, 5, 101):
            src = sqlite3.connect(src_path)
            dst = sqlite3.connect(os.path.join(tmp, f"close-{victim}-{when}.db"))
            closing = src if victim == "source" else dst
            close_it = closer(closing, when)
            with contextlib.suppress(sqlite3.ProgrammingError):
                sqlitebck.copy(src, dst, pages=7, progress=close_it)
            src.close()
            dst.close()
        src = sqlite3.connect(src_path)
        dst = sqlite3.connect(":memory:")
        backup = sqlitebck.Backup(src, dst)
        backup.step(3)
        with contextlib.suppress(sqlite3.OperationalError):
            (src if victim == "source" else dst).close()
        with contextlib.suppress(sqlite3.ProgrammingError):
            backup.step(3)
        backup.finish()
    src = sqlite3.connect(src_path)
    dst = sqlite3.connect(":memory:", isolation_level=None)

    def use_dest(status: int, remaining: int, total: int) -> None:
        with contextlib.suppress(sqlite3.Error):
            dst.execute("CREATE TABLE stray(x)")

    with contextlib.suppress(sqlite3.ProgrammingError):
        sqlitebck.copy(src, dst, pages=5, progress=use_dest)
    src.close()
    dst.close()


def judge() -> int:
    log = os.path.join(tempfile.gettempdir(), "sqlitebck-memcheck.log")
    env = dict(os.environ, PYTHONMALLOC="malloc")
    done = subprocess.run(
        [
            "valgrind",
            "--leak-check=full",
            "--show-leak-kinds=definite",
            f"--log-file={log}",
            sys.executable,
            __file__,
            "--workload",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if "memcheck workload done" not in done.stdout:
        print(done.stdout, done.stderr, sep="\n")
        return 1
    with open(log) as f:
        text = f.read()
    blocks = re.split(r"\n==\d+== \n", text)
    reports = [
        b for b in blocks if re.search(r"uninitialised|Invalid|definitely lost in", b)
    ]
    ours = [b for b in reports if CORE_FRAME.search(b)]
    for block in ours:
        print(block)
    print(f"memcheck: {len(reports)} reports, {len(ours)} in the C core")
    return 1 if ours else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--workload"]:
        main()
        sys.exit(0)
    sys.exit(judge())
