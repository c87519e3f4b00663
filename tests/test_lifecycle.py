"""A copy is safe at every instant: interrupted, closed, re-entered, shared.

Each test puts a copy where its promise is hardest to keep: Ctrl-C at random
instants (the first milliseconds densely), connections closed from a
callback or another thread in every phase, the destination used while it is
being written, threads sharing a connection, re-entrant calls, and the
caller's own hooks. Crash-prone cases run in child processes, so that a crash
fails the test instead of killing the runner.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Literal

import pytest
from helpers import Connect, fill, integrity, make_db, python, rows

import sqlitebck

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
PYPY = sys.implementation.name == "pypy"


def with_args(code: str, *args: object) -> str:
    """``code`` for a child Python, run as if with ``args`` on its command line."""
    return f"import sys\nsys.argv[1:] = {[str(a) for a in args]!r}\n{code}"


# A child that copies SOURCE over DEST (connections, or paths) again and
# again, each time with a Ctrl-C timed to strike at a random instant of the
# copy, and after each checks what the user relies on. The timer is
# setitimer's SIGALRM, precise to microseconds, whose handler sends SIGINT.
SIGNAL_FUZZ = r"""
import json, os, random, signal, sqlite3, sys, time, traceback
import sqlitebck
from helpers import writable

source, dest, mode, trials, seed, shims = sys.argv[1:7]
trials, rng = int(trials), random.Random(int(seed))
sqlitebck._endpoints.USE_SHIMS = shims == "True"
folder = os.path.dirname(dest)
armed = [False]

def interrupt(signum, frame):
    if armed[0]:
        signal.raise_signal(signal.SIGINT)

signal.signal(signal.SIGALRM, interrupt)

def content(path):
    conn = sqlite3.connect(path)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
        if "t" not in names:
            return ok, names, None
        return ok, names, conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()

def old_dest():
    if os.path.exists(dest):
        os.unlink(dest)
    conn = sqlite3.connect(dest)
    conn.execute("CREATE TABLE old(x)")
    conn.execute("INSERT INTO old VALUES (1)")
    conn.commit()
    conn.close()

src_rows = content(source)[2]
files = sorted(os.listdir(folder))
# How long one copy takes, to spread the interrupts over all of it.
old_dest()
began = time.perf_counter()
sqlitebck.copy(source, dest, pages=7)
length = time.perf_counter() - began
outcomes = {"old": 0, "new": 0, "noted": 0}
for trial in range(trials):
    pages = rng.choice([0, 1, 7, 64])
    new_path = mode == "new-path"
    if new_path:
        if os.path.exists(dest):
            os.unlink(dest)
    else:
        old_dest()
    if mode == "connections":
        src = sqlite3.connect(source, timeout=1.25)
        dst = sqlite3.connect(dest, timeout=2.5)
        ends = (src, dst)
    else:
        ends = (source, dest)
    # Half the interrupts in the first two milliseconds, half anywhere.
    delay = rng.uniform(0, 0.002) if trial % 2 else rng.uniform(0, length * 1.2)
    interrupted = inside = noted = False
    try:
        armed[0] = True
        signal.setitimer(signal.ITIMER_REAL, max(delay, 1e-6))
        sqlitebck.copy(*ends, pages=pages)
        armed[0] = False
    except KeyboardInterrupt as e:
        interrupted, raised = True, e
        # Raised here (before copy() began or after it returned: in this
        # frame, or in the timer's handler called from it), it is no answer
        # of copy()'s; nor is one raised in copy()'s own frame, as it calls
        # in or returns (Python 3.9 and 3.10 raise a pending interrupt there,
        # after the call it made has returned).
        called = e.__traceback__.tb_next
        inside = called is not None and called.tb_next is not None and (
            called.tb_next.tb_frame.f_code is not interrupt.__code__)
        noted = "holds the new copy" in " ".join(getattr(e, "__notes__", []))
    armed[0] = False
    signal.setitimer(signal.ITIMER_REAL, 0)
    if mode == "connections":
        for conn, ms in ((src, 1250), (dst, 2500)):
            assert not conn.in_transaction, trial
            got = conn.execute("PRAGMA busy_timeout").fetchone()[0]
            assert got == ms, (trial, got, ms)
        src.close()
        dst.close()
    # An interrupt raised out of copy() says the destination holds the new
    # copy exactly when it does (it came at the point of no return).
    if new_path and not os.path.exists(dest):
        assert interrupted and not noted, trial
        outcomes["old"] += 1
    else:
        ok, names, n = content(dest)
        assert ok == "ok", (trial, ok)
        if names == ["old"]:
            assert interrupted and not noted, trial
            outcomes["old"] += 1
        else:
            assert names == ["t"] and n == src_rows, (trial, names, n)
            assert noted or not inside, (trial, "raised, not noted", "".join(
                traceback.format_exception(type(raised), raised, raised.__traceback__)))
            outcomes["new"] += 1
            outcomes["noted"] += noted
        assert writable(dest), trial
    assert writable(source), trial
    left = sorted(set(os.listdir(folder)) - {os.path.basename(dest)})
    assert left == [f for f in files if f != os.path.basename(dest)], (trial, left)
print(json.dumps(outcomes))
"""


@POSIX
@pytest.mark.parametrize(
    ("mode", "shims"),
    [
        ("connections", False),
        ("existing-path", True),  # the source path is read through a shim
        ("existing-path", False),
        ("new-path", True),  # ... and the new file written through one
        ("new-path", False),
    ],
)
@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_ctrl_c_at_any_instant_leaves_the_destination_old_or_new(
    tmp_path: Path, mode: str, shims: bool, journal: str
) -> None:
    source = make_db(tmp_path / "src.db", rows=1500, journal=journal)
    dest = tmp_path / "dest.db"
    trials = 80 if PYPY else 150
    child = python(with_args(SIGNAL_FUZZ, source, dest, mode, trials, 7, shims))
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    outcomes = json.loads(out)
    # Interrupts struck both before and after the copy committed.
    assert outcomes["old"] > 0 and outcomes["new"] > 0, outcomes


# A child that closes one end of a copy at a chosen moment, and reports how
# the copy ended. A crash kills the child, not the test runner.
CLOSE_DURING = r"""
import json, os, sqlite3, sys, threading, time
import sqlitebck

source, dest, which, when = sys.argv[1:5]
src = sqlite3.connect(source, check_same_thread=False)
dst = sqlite3.connect(dest, check_same_thread=False)
victim = src if which == "source" else dst
closed = []

def close():
    try:
        victim.close()
        closed.append(True)
    except sqlite3.OperationalError as e:  # PyPy refuses: the copy goes on
        closed.append(str(e))

calls = [0]

def progress(status, remaining, total):
    calls[0] += 1
    if when == "first-progress" and calls[0] == 1:
        close()
    elif when == "middle-progress" and remaining <= total // 2 and not closed:
        close()
    elif when == "last-progress" and status == 101:
        close()

outcome = "copied"
try:
    if when == "between-steps":
        backup = sqlitebck.Backup(src, dst)
        backup.step(5)
        close()
        try:
            while not backup.step(5):
                pass
        finally:
            backup.finish()
    elif when == "before-finish":
        backup = sqlitebck.Backup(src, dst)
        backup.step(5)
        close()
        backup.finish()
        outcome = "finished"
    elif when == "thread":
        timer = threading.Timer(0.002, close)
        timer.start()
        try:
            sqlitebck.copy(src, dst, pages=1, sleep=0.2)
        finally:
            timer.join()
    else:
        sqlitebck.copy(src, dst, pages=5, progress=progress)
except sqlite3.ProgrammingError as e:
    outcome = "ProgrammingError"
except sqlite3.OperationalError as e:
    outcome = "OperationalError: " + str(e)
print(json.dumps({"outcome": outcome, "closed": closed}))
"""

WHEN = [
    "first-progress",
    "middle-progress",
    "last-progress",
    "between-steps",
    "before-finish",
    "thread",
]


@pytest.mark.parametrize("when", WHEN)
@pytest.mark.parametrize("which", ["source", "dest"])
def test_closing_a_connection_at_any_phase_is_never_a_crash(
    tmp_path: Path, which: str, when: str
) -> None:
    source = make_db(tmp_path / "src.db", rows=600)
    dest = make_db(tmp_path / "dest.db", rows=3)
    before = rows(dest)
    child = python(with_args(CLOSE_DURING, source, dest, which, when))
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err  # no crash
    report: dict[str, Any] = json.loads(out)
    closed = report["closed"] == [True]
    if not closed:  # PyPy refuses to close a connection in use
        assert PYPY and "unfinished backups" in report["closed"][0], report
    assert integrity(dest) == "ok"
    if when == "last-progress":  # the copy had committed: nothing to undo
        assert report["outcome"] == "copied"
        assert rows(dest) == rows(source)
    elif when == "before-finish":
        assert report["outcome"] == "finished"
        assert rows(dest) == before
    elif closed:
        assert report["outcome"] == "ProgrammingError", report
        assert rows(dest) == before
    else:
        assert report["outcome"] == "copied", report
        assert rows(dest) == rows(source)


def allow_all(*args: object) -> int:
    """An authorizer that allows everything."""
    return sqlite3.SQLITE_OK


def old_content(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE old(x)")
    conn.execute("INSERT INTO old VALUES (1)")
    conn.commit()


USES = {
    "read": lambda dst: dst.execute("SELECT count(*) FROM sqlite_master").fetchall(),
    "write": lambda dst: dst.execute("INSERT INTO old VALUES (2)"),
    "begin": lambda dst: dst.execute("BEGIN"),
    "create": lambda dst: dst.execute("CREATE TABLE stray(x)"),
}


@pytest.mark.parametrize("use", sorted(USES))
@pytest.mark.parametrize("isolation", ["DEFERRED", None])
@pytest.mark.parametrize("on_disk", [False, True])
@pytest.mark.parametrize("cached", [False, True])
def test_using_the_destination_during_a_copy_never_corrupts_it(
    tmp_path: Path,
    use: str,
    isolation: Literal["DEFERRED"] | None,
    on_disk: bool,
    cached: bool,
    connect: Connect,
) -> None:
    src = connect(":memory:")
    fill(src, rows=400)
    path = str(tmp_path / "dest.db") if on_disk else ":memory:"
    dst = connect(path, isolation_level=isolation)
    old_content(dst)
    if cached:  # the statement is in the sqlite3 module's cache: not prepared
        USES[use](dst)
        dst.rollback()
        dst.execute("DROP TABLE IF EXISTS stray")
        dst.commit()
    before = rows(dst, "old")
    outcome: list[BaseException | None] = []

    def progress(status: int, remaining: int, total: int) -> None:
        if status == 0 and not outcome:
            try:
                USES[use](dst)
            except sqlite3.Error as e:
                outcome.append(e)
            else:
                outcome.append(None)

    try:
        sqlitebck.copy(src, dst, pages=5, progress=progress)
    except sqlite3.ProgrammingError as e:  # the copy noticed the use
        assert "used during the copy" in str(e)
        copied = False
    else:
        copied = True
    if dst.in_transaction:
        dst.rollback()
    assert integrity(dst) == "ok"
    if copied:  # the use was refused, and changed nothing
        assert isinstance(outcome[0], sqlite3.Error), outcome
        assert rows(dst) == rows(src)
        assert dst.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    else:
        assert rows(dst, "old") == before
        assert dst.execute("SELECT name FROM sqlite_master").fetchall() == [("old",)]
    if not cached:  # a new statement is refused before it runs
        assert copied and re.search("too (long|large|big)", str(outcome[0]))
    # The destination is free, and the next copy works.
    sqlitebck.copy(src, dst)
    assert rows(dst) == rows(src)


@pytest.mark.parametrize("autocommit", [False, True])
def test_schema_changes_on_a_destination_in_a_transaction_are_refused(
    tmp_path: Path, autocommit: bool, connect: Connect
) -> None:
    src = connect(make_db(tmp_path / "src.db", rows=400))
    dst = connect(tmp_path / "dest.db", isolation_level=None)
    old_content(dst)
    if not autocommit:
        dst.execute("BEGIN")  # nothing read yet: SQLite accepts it
    with sqlitebck.Backup(src, dst) as backup:
        backup.step(3)
        with pytest.raises(sqlite3.Error, match=r"too (long|large|big)"):
            dst.execute("CREATE TABLE stray(x)")
        with pytest.raises(sqlite3.Error, match=r"too (long|large|big)"):
            dst.execute("PRAGMA user_version = 7")
        while not backup.step(5):
            pass
    if dst.in_transaction:
        dst.execute("COMMIT")
    assert integrity(tmp_path / "dest.db") == "ok"
    assert rows(tmp_path / "dest.db") == rows(src)
    dst.execute("CREATE TABLE fine(x)")  # the destination takes statements again


def test_a_cached_read_between_backup_steps_abandons_the_copy(
    tmp_path: Path, connect: Connect
) -> None:
    src = connect(make_db(tmp_path / "src.db", rows=400))
    dst = connect(tmp_path / "dest.db")
    old_content(dst)
    dst.execute("SELECT * FROM old").fetchall()  # now in the statement cache
    backup = sqlitebck.Backup(src, dst)
    backup.step(3)
    with pytest.raises(sqlite3.Error):
        dst.execute("SELECT * FROM old").fetchall()
    with pytest.raises(sqlite3.ProgrammingError, match="used during the copy"):
        backup.step(3)
    backup.finish()
    assert integrity(tmp_path / "dest.db") == "ok"
    assert rows(tmp_path / "dest.db", "old") == [(1,)]


def test_threads_sharing_a_connection_give_its_busy_timeout_back(
    tmp_path: Path, connect: Connect
) -> None:
    source = make_db(tmp_path / "src.db", rows=800)
    shared = connect(source, timeout=3.5, check_same_thread=False)
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def copier(n: int) -> None:
        try:
            for round_ in range(6):
                with contextlib.closing(sqlite3.connect(tmp_path / f"d{n}.db")) as dst:
                    if round_ == 0:
                        start.wait()
                    sqlitebck.copy(shared, dst, pages=n * 3 + round_ + 1)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=copier, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert shared.execute("PRAGMA busy_timeout").fetchone() == (3500,)


def test_a_connection_being_written_is_no_end_of_another_copy(
    src: sqlite3.Connection, dst: sqlite3.Connection, connect: Connect
) -> None:
    third = connect(":memory:")
    with sqlitebck.Backup(src, dst) as backup:
        for stepped in (False, True):
            if stepped:  # now dst also has the backup's write transaction
                backup.step(1)
            with pytest.raises(sqlite3.OperationalError, match=r"another copy|transa"):
                sqlitebck.copy(dst, third)
            with pytest.raises(sqlite3.OperationalError, match=r"another copy|transa"):
                sqlitebck.copy(third, dst)
            with pytest.raises(sqlite3.OperationalError, match="another copy"):
                sqlitebck.Backup(third, src)  # src may be read, not written
        while not backup.step(2):
            pass
    sqlitebck.copy(dst, third)
    assert rows(third) == rows(src)


@pytest.mark.parametrize("call", ["finish", "step", "step-from-thread"])
def test_reentrant_backup_calls_are_refused_and_disturb_nothing(
    tmp_path: Path, call: str, connect: Connect
) -> None:
    source = make_db(tmp_path / "src.db", rows=400, journal="wal")
    src = connect(source, check_same_thread=False)
    dst = connect(tmp_path / "dest.db")
    backup = sqlitebck.Backup(src, dst)
    refused: list[BaseException] = []

    def inner() -> None:
        try:
            if call == "finish":
                backup.finish()
            else:
                backup.step(1)
        except sqlite3.ProgrammingError as e:
            refused.append(e)

    def authorizer(*args: object) -> int:
        # Runs inside step(), when the copy takes its snapshot of the source.
        if not refused:
            if call == "step-from-thread":
                t = threading.Thread(target=inner)
                t.start()
                t.join()
            else:
                inner()
        return sqlite3.SQLITE_OK

    src.set_authorizer(authorizer)
    assert backup.step(5) is False
    src.set_authorizer(allow_all)  # None clears it on Python 3.11+ only
    assert len(refused) == 1 and "in use" in str(refused[0])
    assert backup.page_count - backup.remaining == 5  # exactly one batch
    while not backup.step(7):
        pass
    backup.finish()
    assert rows(dst) == rows(src)
    # The snapshot is released: the source takes writes again.
    fill(connect(source, timeout=0), rows=1)


def test_a_denying_authorizer_gets_a_clear_error(
    tmp_path: Path, connect: Connect
) -> None:
    src = connect(make_db(tmp_path / "src.db"))
    dst = connect(tmp_path / "dest.db")
    old_content(dst)

    def deny_pragmas(action: int, *args: object) -> int:
        return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_PRAGMA else 0

    for conn, what in ((src, "snapshot|busy timeout"), (dst, "busy timeout")):
        conn.set_authorizer(deny_pragmas)
        with pytest.raises(sqlite3.DatabaseError, match=what) as info:
            sqlitebck.copy(src, dst)
        assert "not authorized" in str(info.value)
        conn.set_authorizer(allow_all)
        assert rows(dst, "old") == [(1,)]
    # Connections in memory have no busy timeout to take over: no PRAGMA.
    mem_src, mem_dst = connect(":memory:"), connect(":memory:")
    fill(mem_src, rows=50)
    for conn in (mem_src, mem_dst):
        conn.set_authorizer(deny_pragmas)
    sqlitebck.copy(mem_src, mem_dst)
    assert rows(mem_dst) == rows(mem_src)


def test_a_progress_handler_that_interrupts_gets_a_clear_error(
    tmp_path: Path, connect: Connect
) -> None:
    src = connect(make_db(tmp_path / "src.db"))
    dst = connect(":memory:")
    src.set_progress_handler(lambda: 1, 1)
    with pytest.raises(sqlite3.OperationalError, match="interrupted") as info:
        sqlitebck.copy(src, dst)
    assert "snapshot" in str(info.value) or "busy timeout" in str(info.value)
    src.set_progress_handler(None, 1)
    sqlitebck.copy(src, dst)
    assert rows(dst) == rows(src)


# What a trace callback may see of a copy: nothing for connections in memory;
# for a file source, the statements that take over its busy timeout and hold
# its snapshot (see README).
DOCUMENTED = {"PRAGMA busy_timeout", 'PRAGMA "main".schema_version'}


@pytest.mark.parametrize("on_disk", [False, True])
def test_trace_callbacks_see_only_the_documented_statements(
    tmp_path: Path, on_disk: bool, connect: Connect
) -> None:
    if on_disk:
        src = connect(make_db(tmp_path / "src.db", rows=900))
        dst = connect(tmp_path / "dest.db")
    else:
        src, dst = connect(":memory:"), connect(":memory:")
        fill(src, rows=900)
    seen: list[str] = []
    for conn in (src, dst):
        conn.set_trace_callback(seen.append)
    for pages in (0, 3):
        sqlitebck.copy(src, dst, pages=pages)
    assert set(seen) <= (DOCUMENTED if on_disk else set())


def test_a_refused_copy_keeps_the_callers_locks_on_the_file(
    tmp_path: Path, connect: Connect
) -> None:
    """Nothing opens a database file a second time behind SQLite's back:
    closing such a descriptor would drop every POSIX lock of the process on
    the file, and another process could write under a reader's feet."""
    app = make_db(tmp_path / "app.db", rows=50)
    reader = connect(app, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (50,)
    writer = """
        import sqlite3, sys
        c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
        try:
            c.execute("BEGIN EXCLUSIVE")
            c.execute("DELETE FROM t")
            c.execute("COMMIT")
            print("wrote")
        except sqlite3.OperationalError:
            print("locked")
    """
    for attempt in ("same file", "restore"):
        with pytest.raises((ValueError, sqlite3.OperationalError)):
            if attempt == "same file":
                sqlitebck.copy(reader, app)
            else:  # waits for the reader's lock, then gives up
                sqlitebck.copy(make_db(tmp_path / "b.db", rows=5), app, timeout=0.1)
        child = python(with_args(textwrap.dedent(writer), app))
        out, err = child.communicate(timeout=60)
        assert out.strip() == "locked", err
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (50,)
    reader.execute("COMMIT")


# A child that opens a Backup, steps it once, then forks: the fork's child
# uses the Backup (or just exits with it alive), and the parent then
# completes its copy, which must be whole.
FORK_DURING = r"""
import os, sqlite3, sys
import sqlitebck

source, dest, new_path, child_does = sys.argv[1:5]
if new_path == "False":
    conn = sqlite3.connect(dest)
    conn.execute("CREATE TABLE old(x)")
    conn.commit()
    conn.close()
backup = sqlitebck.Backup(source, dest)
backup.step(3)
pid = os.fork()
if pid == 0:
    outcome = "untouched"
    try:
        if child_does == "step":
            backup.step(3)
        elif child_does == "finish":
            backup.finish()
    except sqlite3.ProgrammingError as e:
        outcome = "refused: " + str(e)
    print(outcome, flush=True)
    sys.exit(0)  # a normal exit: the Backup is finalized here
_, status = os.waitpid(pid, 0)
assert status == 0, status
while not backup.step(3):
    pass
backup.finish()
conn = sqlite3.connect(dest)
print(conn.execute("PRAGMA integrity_check").fetchone()[0],
      conn.execute("SELECT count(*) FROM t").fetchone()[0], flush=True)
conn.close()
"""


@POSIX
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
@pytest.mark.parametrize("child_does", ["nothing", "step", "finish"])
@pytest.mark.parametrize("new_path", [True, False])
def test_a_fork_child_leaves_its_parents_backup_alone(
    tmp_path: Path, new_path: bool, child_does: str
) -> None:
    source = make_db(tmp_path / "src.db", rows=400)
    dest = tmp_path / "dest.db"
    child = python(with_args(FORK_DURING, source, dest, new_path, child_does))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    said, result = out.splitlines()
    if child_does == "nothing":
        assert said == "untouched"
    else:
        assert said.startswith("refused: ") and "fork()" in said, said
    assert result == "ok 400"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".sqlitebck-tmp")]


# A child that tries to replace the destination's database with
# Connection.deserialize() while a copy writes into it: from the progress
# callback between two steps, and from a trace callback of the source that
# runs inside the copy's first call (the statement that takes the source's
# snapshot). Before the backup begins, a callback may replace it: the copy
# then goes into what the connection holds.
DESERIALIZE_DURING = r"""
import sqlite3, sys
import sqlitebck

source, dest, where = sys.argv[1:4]
other = sqlite3.connect(":memory:")
other.execute("CREATE TABLE other(x)")
data = other.serialize()
other.close()
src = sqlite3.connect(source)
dst = sqlite3.connect(dest)
refused = []

def swap(*args):
    # The statement a copy runs on the source once the backup has begun, or
    # a progress report before the end.
    if args[0] == 101 or "schema_version" not in str(args[0]) and where == "trace":
        return
    try:
        dst.deserialize(data)
        refused.append("accepted")
    except sqlite3.Error as e:
        refused.append(type(e).__name__)

if where == "trace":
    src.set_trace_callback(swap)
    sqlitebck.copy(src, dst, pages=5)
else:
    sqlitebck.copy(src, dst, pages=5, progress=swap)
src.set_trace_callback(None)
print(sorted(set(refused)), dst.execute("SELECT count(*) FROM t").fetchone()[0])
src.close()
dst.close()
"""


@pytest.mark.skipif(
    not hasattr(sqlite3.Connection, "deserialize"), reason="Python 3.11+"
)
@pytest.mark.parametrize("where", ["progress", "trace"])
def test_replacing_the_destination_during_a_copy_is_refused(
    tmp_path: Path, where: str
) -> None:
    source = make_db(tmp_path / "src.db", rows=400)
    dest = make_db(tmp_path / "dst.db", rows=3)
    child = python(with_args(DESERIALIZE_DURING, source, dest, where))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err  # not a crash
    refused, count = out.rsplit(" ", 1)
    assert "accepted" not in refused and refused != "[]", refused
    assert int(count) == 400
    assert rows(dest) == rows(source)


# A child that copies between connections in memory while the source's
# authorizer uses the destination: it runs when the copy prepares the
# statement that keeps the source alive, after the backup has begun (when
# the first call returns with the copy unfinished, or before the second step
# of one call), and writes a row into the destination, or commits it, or
# replaces its database. Each must be refused, as the destination is being
# written, or at worst abandon the copy: never a crash, never a half-copied
# destination.
USE_DURING_GUARD = r"""
import sqlite3, sys
import sqlitebck

use, how = sys.argv[1:3]
src = sqlite3.connect(":memory:")
src.execute("CREATE TABLE t(x)")
n = 3000 if how == "one-call" else 400
src.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * n)
src.commit()
dst = sqlite3.connect(":memory:", isolation_level=None)
dst.execute("CREATE TABLE old(x)")
dst.execute("INSERT INTO old VALUES (1)")
if use == "deserialize":  # Python 3.11+
    other = sqlite3.connect(":memory:")
    other.execute("CREATE TABLE other(x)")
    data = other.serialize()
outcome = []

def authorizer(action, *args):
    if action == sqlite3.SQLITE_TRANSACTION and not outcome:
        try:
            if use == "write":
                dst.execute("INSERT INTO old VALUES (2)")
            elif use == "commit":
                dst.execute("BEGIN")
                dst.execute("COMMIT")
            else:
                dst.deserialize(data)
            outcome.append("accepted")
        except sqlite3.Error as e:
            outcome.append(type(e).__name__)
    return sqlite3.SQLITE_OK

src.set_authorizer(authorizer)
try:
    if how == "backup":
        with sqlitebck.Backup(src, dst) as backup:
            while not backup.step(5):
                pass
    else:
        sqlitebck.copy(src, dst, pages=5 if how == "batches" else 0)
    copied = "copied"
except sqlite3.ProgrammingError as e:
    copied = "abandoned" if "used during the copy" in str(e) else repr(e)
if dst.in_transaction:
    dst.rollback()
names = [r[0] for r in dst.execute("SELECT name FROM sqlite_master")]
print(outcome, copied, dst.execute("PRAGMA integrity_check").fetchone()[0], names)
"""


@pytest.mark.parametrize("how", ["batches", "backup", "one-call"])
@pytest.mark.parametrize("use", ["write", "commit", "deserialize"])
def test_a_source_authorizer_that_uses_the_destination_is_refused(
    use: str, how: str
) -> None:
    if use == "deserialize" and not hasattr(sqlite3.Connection, "deserialize"):
        pytest.skip("Python 3.11+")
    child = python(with_args(USE_DURING_GUARD, use, how))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err  # not a crash
    outcome, copied, ok, names = out.strip().rsplit(" ", 3)
    assert "accepted" not in outcome and outcome != "[]", out
    assert ok == "ok", out
    if copied == "copied":
        assert names == "['t']", out
    else:
        assert copied == "abandoned" and names == "['old']", out


# The same, with the source's authorizer closing the destination: the
# destination must stay allocated (a zombie, freed when the copy lets it go)
# and the copy end as for any connection closed during it.
CLOSE_DURING_GUARD = r"""
import sqlite3, sys
import sqlitebck

how = sys.argv[1]
src = sqlite3.connect(":memory:")
src.execute("CREATE TABLE t(x)")
src.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 400)
src.commit()
dst = sqlite3.connect(":memory:")

def authorizer(action, *args):
    if action == sqlite3.SQLITE_TRANSACTION:
        dst.close()
    return sqlite3.SQLITE_OK

src.set_authorizer(authorizer)
try:
    if how == "backup":
        with sqlitebck.Backup(src, dst) as backup:
            while not backup.step(5):
                pass
    else:
        sqlitebck.copy(src, dst, pages=5)
    print("copied")
except sqlite3.Error as e:
    print(type(e).__name__, e)
"""


@pytest.mark.parametrize("how", ["copy", "backup"])
def test_a_source_authorizer_that_closes_the_destination(how: str) -> None:
    child = python(with_args(CLOSE_DURING_GUARD, how))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err  # not a crash
    out = out.strip()
    if PYPY and out.endswith("not authorized"):
        # PyPy's close() fails while the copy's guard statement is prepared
        # on the destination: the authorizer raised, so SQLite refused.
        assert out.startswith("DatabaseError could not prepare"), out
        return
    assert out == "ProgrammingError Cannot operate on a closed database.", out


# A child whose two threads copy X over Y and Y over X, again and again, at
# the same moments: one of the two copies is refused while the other runs,
# and neither waits for the other for ever (each holding its own source).
CROSSED_COPIES = r"""
import sqlite3, sys, threading
import sqlitebck

x = sqlite3.connect(":memory:", check_same_thread=False)
y = sqlite3.connect(":memory:", check_same_thread=False)
for conn in (x, y):
    conn.execute("CREATE TABLE t(x)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 2000)
    conn.commit()
outcomes = set()

def copier(source, dest):
    for _ in range(1000):
        try:
            sqlitebck.copy(source, dest)
            outcomes.add("copied")
        except sqlite3.OperationalError as e:
            outcomes.add("refused" if "another copy" in str(e) else repr(e))

threads = [threading.Thread(target=copier, args=ends) for ends in ((x, y), (y, x))]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sorted(outcomes))
"""


def test_crossed_copies_from_two_threads_never_wait_for_each_other() -> None:
    child = python(CROSSED_COPIES)
    try:
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert set(json.loads(out.replace("'", '"'))) <= {"copied", "refused"}, out
