"""The copy engine: one copy between two ends, from checked settings to its
result, and the only code that calls the C job (``csrc/backup.c``).

The path of one ``copy(source, dest, pages, sleep, ...)``:

1. :func:`copy` checks its arguments once, into :class:`Settings` (by
   :func:`settings`, the one validator that ``copy``, ``Backup``, ``acopy``
   and the command line share; the defaults skip it);
2. two ``sqlite3`` connections go straight to :func:`copy_connections`;
   anything else goes through :func:`copy_ends`, which unwraps framework
   objects (``_frameworks``), finds the bindings (``_binding``), opens
   paths (``_endpoints``) and publishes a new file at the end;
3. :func:`copy_connections` starts the C job and takes its first step in one
   call (the whole copy, for a small database), then :meth:`Job.drive`
   steps it to the end: progress reports, pauses, bounded waits for locks,
   the modules' own checks between steps;
4. errors become the connection module's own exceptions (``_errors``).
"""

from __future__ import annotations

import math
import os
import sqlite3
import struct
import time
from typing import Any, Callable, NamedTuple

from sqlitebck import _binding
from sqlitebck._binding import STDLIB, Binding
from sqlitebck._endpoints import (
    Endpoint,
    Endpoints,
    wal_page_size_message,
    wal_page_sizes,
)
from sqlitebck._errors import (
    SQLITE_DONE,
    SQLITE_OK,
    SQLITE_READONLY,
    note_holds_new_copy,
    waits_for_a_lock,
)
from sqlitebck._frameworks import Held
from sqlitebck._interrupts import Checkpoint, HeldInterrupts
from sqlitebck._sqlitebck import ffi, lib

Progress = Callable[[int, int, int], object]

# The settings' one owner: the default lock timeout of copy(), Backup,
# acopy() and the command line (seconds, as sqlite3.connect's), and the range
# of a batch size (a C int).
DEFAULT_TIMEOUT = 5.0
C_INT_MIN = -(2**31)
C_INT_MAX = 2**31 - 1
# The longest pause between batches: one day (time.sleep refuses far longer
# ones, and only after the copy has begun).
MAX_SLEEP_MS = 86_400_000
# Longest time one C call copies before returning to Python, so that signals
# (Ctrl-C), progress reports and timeouts are served several times a second.
BUDGET_MS = 50
# Jobs of finished copies, kept for the next ones (allocating one is a
# noticeable part of copying a small database). A job is taken off the list
# while in use, so nested and concurrent copies never share one.
_spare_jobs: list[Job] = []
_SPARE_JOBS = 8
_new_tuple = tuple.__new__
# A finished job's result, as the C job lays out the first fields of its
# counts (sqlitebck.h): pagecount, steps, restarts, elapsed.
_RESULT = struct.Struct("@iiid")
_result_of = _RESULT.unpack_from
_Connection = sqlite3.Connection
# Retry delays while a lock held elsewhere stops the copy: doubling from the
# first to the last, never past the timeout.
_BACKOFF_FIRST = 0.001
_BACKOFF_LAST = 0.05
_PATHS = (str, bytes, os.PathLike)


class CopyResult(NamedTuple):
    """What a finished :func:`copy` did.

    ``pages``: page count of the copied database; ``steps``: backup steps
    taken; ``restarts``: times SQLite restarted the copy because another
    connection changed the source; ``elapsed``: seconds the copy took
    (for paths, opening the files and publishing a new one included).
    """

    pages: int
    steps: int
    restarts: int
    elapsed: float


class Settings(NamedTuple):
    """The settings of one copy, checked (made by :func:`settings` only).

    ``pages``: the batch size (``<= 0``: everything, as one snapshot);
    ``pause``: seconds between batches; ``timeout``: seconds to wait for a
    lock held elsewhere (None: no limit); ``progress``: the caller's
    callback or None; ``source_schema``, ``dest_schema``: the schema names,
    encoded for SQLite.
    """

    pages: int
    pause: float
    timeout: float | None
    progress: Progress | None
    source_schema: bytes
    dest_schema: bytes


def settings(
    pages: object = 0,
    sleep: object = 0,
    progress: object = None,
    source_name: object = "main",
    dest_name: object = "main",
    timeout: object = DEFAULT_TIMEOUT,
) -> Settings:
    """Check the settings of :func:`copy` (``sleep`` in milliseconds), as
    ``copy``, ``Backup``, ``acopy`` and the command line all do.

    >>> settings(pages=5, sleep=10, timeout=float("inf"))
    Settings(pages=5, pause=0.01, timeout=None, progress=None, \
source_schema=b'main', dest_schema=b'main')
    >>> settings(pages=True)
    Traceback (most recent call last):
    ...
    TypeError: pages must be an int, not bool
    """
    if progress is not None and not callable(progress):
        raise TypeError(
            f"progress must be callable or None, not {type(progress).__name__}"
        )
    return Settings(
        check_pages(pages),
        check_sleep(sleep),
        check_timeout(timeout),
        progress,
        check_schema(source_name, "source_name"),
        check_schema(dest_name, "dest_name"),
    )


def copy(
    source: Endpoint,
    dest: Endpoint,
    pages: int = 0,
    sleep: float = 0,
    *,
    progress: Progress | None = None,
    source_name: str = "main",
    dest_name: str = "main",
    timeout: float | None = DEFAULT_TIMEOUT,
    keep_wal: bool = False,
) -> CopyResult:
    """Copy database ``source_name`` of ``source`` over ``dest_name`` of ``dest``.

    ``source`` and ``dest`` are connections or paths. Connections are the
    sqlite3 module's, or those of pysqlite3, sqlean, sqlcipher3 or APSW (on
    CPython), both of one module's SQLite library; a path is opened with the
    module of the connection at the other end (the sqlite3 module if both are
    paths), and errors are that module's own classes. A
    source path is opened read-only and must exist; a destination path that
    does not exist is created atomically (it appears, complete and durable,
    only once the copy has succeeded), one that exists is overwritten
    transactionally. Connections opened from paths are closed again.

    With ``pages <= 0`` (the default) the destination becomes one consistent
    snapshot of the source. With ``pages > 0`` the copy goes online, in
    batches of that many pages with ``sleep`` milliseconds between them, so
    that other connections can use the source meanwhile.

    ``progress(status, remaining, total)`` is called after every batch (and
    about every 50 ms of a large unbatched copy, and before the step that
    commits it), with status ``SQLITE_OK``
    (0), ``SQLITE_BUSY``/``SQLITE_LOCKED`` while waiting for a lock, and
    finally ``SQLITE_DONE`` (101) with ``remaining == 0``. An exception from
    it ends the copy and propagates; the destination then keeps its previous
    content, except after the final call, which reports a copy already
    committed. The destination connection must not be used until the copy
    returns: a statement run on it meanwhile ends the copy with
    ``sqlite3.ProgrammingError``, the destination keeping its previous
    content.

    While a lock held elsewhere stops the copy, it is retried for up to
    ``timeout`` seconds (``None``: without limit), then
    ``sqlite3.OperationalError`` ("database is locked") is raised. A failed
    or interrupted copy (Ctrl-C included) leaves the destination as it was;
    only an exception that comes while the destination commits (the point
    of no return) or after finds the copy complete, and says so in a note:
    "the destination holds the new copy".

    >>> import sqlite3, sqlitebck
    >>> src = sqlite3.connect(":memory:")
    >>> _ = src.execute("CREATE TABLE t(x)")
    >>> with src:
    ...     _ = src.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(3)])
    >>> dst = sqlite3.connect(":memory:")
    >>> result = sqlitebck.copy(src, dst, pages=1, sleep=0)
    >>> result.pages, result.restarts
    (2, 0)
    >>> dst.execute("SELECT count(*) FROM t").fetchone()
    (3,)
    """
    # The defaults, as given by the signature, need no check.
    if (
        pages is _ZERO
        and sleep is _ZERO
        and progress is None
        and timeout is DEFAULT_TIMEOUT
        and source_name is _MAIN
        and dest_name is _MAIN
    ):
        checked = DEFAULTS
    else:
        checked = settings(pages, sleep, progress, source_name, dest_name, timeout)
    # True once the destination holds the new copy: an interrupt that Python
    # 3.9 and 3.10 raise as a callee returns still gets its note here.
    done: list[bool] = []
    try:
        if type(source) is _Connection and type(dest) is _Connection:
            return copy_connections(
                source, STDLIB, dest, STDLIB, checked, None, True, done
            )
        return copy_ends(source, dest, checked, keep_wal, None, done)
    except BaseException as e:
        if done:
            note_holds_new_copy(e)
        raise


class Job:
    """One copy between two connections: the only owner of its C job.

    The C job (``csrc/backup.c``) is started by ``sqlitebck_start`` or
    ``sqlitebck_copy`` and stepped by :meth:`drive`. It is ended exactly
    once, by whichever comes first:

    - the C core itself, when the copy completes or fails;
    - the ``except BaseException`` clause around the C calls of the owner
      (:func:`copy_connections`, :class:`Backup`), when the owner stops
      early: an exception from ``progress``, a timeout, Ctrl-C at any
      bytecode. The clause calls ``lib.sqlitebck_end`` directly, so that no
      Python function runs (and no second signal can strike) before the end;
    - the garbage collector, should everything else be bypassed: the C
      struct's destructor, ``sqlitebck_job_free``, ends an open job.

    Ending an ended job does nothing, so a job is never ended twice.
    """

    __slots__ = ("c", "counts", "db", "dest", "result", "sb", "source")

    def __init__(self) -> None:
        c = lib.sqlitebck_job_new()
        if c == ffi.NULL:
            raise MemoryError("out of memory for a backup job")
        self.c = ffi.gc(c, lib.sqlitebck_job_free)
        self.counts = lib.sqlitebck_job_counts(self.c)
        # The first fields of counts: a finished copy's result, in one call.
        self.result = ffi.buffer(self.counts, _RESULT.size)

    def start(
        self, source: Any, sb: Binding, dest: Any, db: Binding, checked: Settings
    ) -> int:
        """Check both connections and start the job (without stepping it)."""
        src, dst = refs(source, sb, dest, db)
        self.source, self.dest, self.sb, self.db = source, dest, sb, db
        return int(
            lib.sqlitebck_start(
                self.c,
                sb.library,
                src,
                checked.source_schema,
                dst,
                checked.dest_schema,
                checked.pages,
            )
        )

    def step(self, pages: int) -> int:
        """Start a new batch of ``pages`` pages and take its first C call."""
        lib.sqlitebck_new_batch(self.c)
        return int(lib.sqlitebck_step(self.c, pages, BUDGET_MS))

    def drive(
        self,
        rc: int,
        checked: Settings,
        batch: bool,
        checkpoint: Checkpoint | None,
    ) -> bool:
        """Carry the job on from ``rc``, the result of its last C call.

        Steps ``checked.pages`` pages a batch until the copy is done (True),
        or with ``batch`` only until the current batch is complete (False if
        more is left), pausing ``checked.pause`` seconds between batches.
        While a lock held elsewhere stops the copy, or another thread holds a
        write transaction open on the source connection, retries for up to
        ``checked.timeout`` seconds without progress. Between C calls, runs
        the modules' own checks on both connections (closed meanwhile, used
        from another thread), and asks ``checkpoint`` whether to stop.
        Raises the job's error, if any.
        """
        pages, pause, wait, progress = checked[:4]
        counts = self.counts
        source, dest = self.source, self.dest
        check_source, check_dest = self.sb.check, self.db.check
        blocked_since: float | None = None
        backoff = _BACKOFF_FIRST
        while True:
            if rc == SQLITE_DONE:
                if progress is not None:
                    progress(rc, 0, counts.pagecount)
                return True
            if rc == SQLITE_OK:
                blocked_since = None
                backoff = _BACKOFF_FIRST
                if progress is not None:
                    progress(rc, counts.remaining, counts.pagecount)
                if not counts.in_batch:
                    if batch:
                        return False
                    if pause:
                        _pause(pause, checkpoint)
            elif waits_for_a_lock(rc) and counts.open:
                now = time.monotonic()
                if blocked_since is None:
                    blocked_since = now
                left = math.inf if wait is None else blocked_since + wait - now
                if left <= 0:
                    raise self.error(rc)
                if progress is not None:
                    progress(rc, counts.remaining, counts.pagecount)
                time.sleep(min(backoff, left))
                backoff = min(backoff * 2, _BACKOFF_LAST)
            else:
                raise self.error(rc)
            if checkpoint is not None:
                checkpoint.check()
            check_source(source)
            check_dest(dest)
            rc = lib.sqlitebck_step(self.c, pages, BUDGET_MS)

    def errors(self) -> Binding:
        """The binding whose exception classes report the job's errors: the
        source's, unless only the destination's module is a DB-API one."""
        return self.sb if self.sb.dbapi else self.db

    def error(self, rc: int) -> Exception:
        """The exception for result ``rc`` of the job's last C call."""
        message = ffi.string(lib.sqlitebck_errmsg(self.c)).decode("utf-8", "replace")
        fault = lib.sqlitebck_fault(self.c)
        if fault == lib.SQLITEBCK_FAULT_VALUE:
            return ValueError(message)
        errors = self.errors()
        if fault == lib.SQLITEBCK_FAULT_USAGE:
            return errors.usage(message)
        if rc & 0xFF == SQLITE_READONLY:
            sizes = wal_page_sizes(self.source, self.dest)
            if sizes is not None:
                message = wal_page_size_message(sizes, "the destination")
        return errors.error(rc, message)


def copy_ends(
    source: object,
    dest: object,
    checked: Settings,
    keep_wal: bool,
    checkpoint: Checkpoint | None,
    done: list[bool] | None = None,
) -> CopyResult:
    """Copy between ends of any kind: connections of any supported binding,
    the connections that framework objects wrap (one lent for the copy, an
    ``Engine``'s, is given back after), and paths, which are opened (and
    closed) here with the other end's module. ``done`` gets True once the
    destination holds the new copy (see :func:`copy_connections`)."""
    started = time.perf_counter()
    with Held(source, dest) as held:
        result = _copy_unwrapped(
            held.source, held.dest, checked, keep_wal, checkpoint, done
        )
    return result._replace(elapsed=time.perf_counter() - started)


def _copy_unwrapped(
    source: object,
    dest: object,
    checked: Settings,
    keep_wal: bool,
    checkpoint: Checkpoint | None,
    done: list[bool] | None,
) -> CopyResult:
    """:func:`copy_ends` between connections and paths."""
    sb, db, pb = bindings(source, dest)
    if sb is not None and db is not None:
        return copy_connections(source, sb, dest, db, checked, checkpoint, True, done)
    # Files are opened, published and removed in many Python steps: Ctrl-C
    # waits for a point between two of them (see _interrupts), the last one
    # right before a new file is linked into place. One that comes after the
    # point of no return is raised with a note that says so.
    ends: Endpoints | None = None
    committed = False
    try:
        with HeldInterrupts() as held:
            stop = held if checkpoint is None else checkpoint
            ends = Endpoints(
                source,
                dest,
                keep_wal=keep_wal,
                module=pb.module,
                source_name=checked.source_schema,
            )
            try:
                result = copy_connections(
                    ends.source,
                    sb or pb,
                    ends.dest,
                    db or pb,
                    checked,
                    stop,
                    ends.in_place,
                )
                committed = True
            except BaseException:
                ends.close(complete=False)
                raise
            ends.close(complete=True, before_publish=stop.check)
            if done is not None:
                done.append(True)
    except BaseException as e:
        if committed and ends is not None and ends.in_place:
            note_holds_new_copy(e)
        raise
    return result


def copy_connections(
    source: Any,
    sb: Binding,
    dest: Any,
    db: Binding,
    checked: Settings,
    checkpoint: Checkpoint | None,
    final: bool,
    done: list[bool] | None = None,
) -> CopyResult:
    """Copy between two connections. With ``final`` (``dest`` is the
    destination the caller named, not a private new file), an exception
    raised after the commit notes that the destination holds the new copy,
    and ``done`` gets True before this returns: the caller's own frame notes
    one raised as this returns (Python 3.9 and 3.10 may raise a pending
    interrupt between a handler's end and the return). The path every call
    takes is kept short: it is most of the cost of copying a small database.
    """
    src, dst = refs(source, sb, dest, db)
    try:
        job = _spare_jobs.pop()
        # Its last copy committed; this one has not begun. (An interrupt
        # before the C call below must not read "committed" from the last.)
        job.counts.committed = 0
    except IndexError:
        job = Job()
    c = job.c
    try:
        # One call does it all when one step is enough (small databases).
        rc = lib.sqlitebck_copy(
            c,
            sb.library,
            src,
            checked.source_schema,
            dst,
            checked.dest_schema,
            checked.pages,
            BUDGET_MS,
        )
        if rc != SQLITE_DONE or checked.progress is not None:
            job.source, job.dest, job.sb, job.db = source, dest, sb, db
            job.drive(rc, checked, False, checkpoint)
            # A spare job keeps no connection alive.
            job.source = job.dest = None
        # Up to the return, an interrupt still gets its note.
        result = _new_tuple(CopyResult, _result_of(job.result))
        if len(_spare_jobs) < _SPARE_JOBS:
            _spare_jobs.append(job)
        if final and done is not None:
            done.append(True)
        return result
    except BaseException as e:
        lib.sqlitebck_end(c)
        if final and job.counts.committed:
            note_holds_new_copy(e)
        raise


def _pause(seconds: float, checkpoint: Checkpoint | None) -> None:
    """Sleep between batches, asking ``checkpoint`` every 50 ms whether to
    stop."""
    if checkpoint is None:
        time.sleep(seconds)
        return
    until = time.monotonic() + seconds
    while True:
        checkpoint.check()
        left = until - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, BUDGET_MS / 1000))


def refs(source: Any, sb: Binding, dest: Any, db: Binding) -> tuple[int, int]:
    """Run the modules' own checks on both connections (closed, used from
    another thread) and return how the C core refers to each. (The C job
    refuses one connection, or one file, at both ends.)"""
    sb.check(source)
    db.check(dest)
    return sb.ref(source), db.ref(dest)


def bindings(
    source: object, dest: object
) -> tuple[Binding | None, Binding | None, Binding]:
    """The bindings of ``source`` and ``dest`` (None for a path), and the one
    that opens paths; TypeError for anything else, or for connections of two
    SQLite libraries."""
    sb = _binding.binding_of(source)
    if sb is None and not isinstance(source, _PATHS):
        raise TypeError(
            f"source must be {_binding.ACCEPTED}, not "
            f"{_binding.type_name(type(source))}"
        )
    db = _binding.binding_of(dest)
    if db is None and not isinstance(dest, _PATHS):
        raise TypeError(
            f"dest must be {_binding.ACCEPTED}, not {_binding.type_name(type(dest))}"
        )
    if sb is not None and db is not None:
        _binding.same_library(sb, source, db, dest)
        return sb, db, sb
    connected = sb or db
    return sb, db, _binding.for_paths(connected, source if sb else dest)


def check_pages(pages: object) -> int:
    if not isinstance(pages, int) or isinstance(pages, bool):
        raise TypeError(f"pages must be an int, not {type(pages).__name__}")
    if not C_INT_MIN <= pages <= C_INT_MAX:
        raise OverflowError(f"pages={pages} does not fit in a C int")
    return int(pages)


def check_sleep(sleep: object) -> float:
    """Milliseconds between batches, validated, as seconds."""
    if not isinstance(sleep, (int, float)) or isinstance(sleep, bool):
        raise TypeError(
            f"sleep must be a number of milliseconds, not {type(sleep).__name__}"
        )
    if not 0 <= sleep <= MAX_SLEEP_MS:  # NaN and infinities too
        raise ValueError(
            f"sleep must be between 0 and {MAX_SLEEP_MS} (one day), not {sleep!r}"
        )
    return sleep / 1000.0


def check_timeout(timeout: object) -> float | None:
    """Seconds to wait for a lock; None (or infinity) for no limit."""
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise TypeError(
            f"timeout must be a number of seconds or None, not {type(timeout).__name__}"
        )
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be >= 0 or None, not {timeout!r}")
    return None if math.isinf(timeout) else float(timeout)


def check_schema(name: object, role: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"{role} must be a str, not {type(name).__name__}")
    if "\0" in name:
        raise ValueError(f"{role} must not contain NUL characters")
    return name.encode("utf-8")


# The settings copy() checks by identity, as its signature gives them.
DEFAULTS = settings()
_ZERO = 0
_MAIN = "main"
