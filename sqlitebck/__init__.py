"""Copy SQLite databases through SQLite's online backup API.

sqlitebck works on the connections of Python's own :mod:`sqlite3` module (and
of pysqlite3, sqlean.py, sqlcipher3 and APSW, see ``_binding``) and calls the
very SQLite library that module loaded::

    >>> import sqlite3, sqlitebck
    >>> src = sqlite3.connect(":memory:")
    >>> _ = src.execute("CREATE TABLE t(x)")
    >>> dst = sqlite3.connect(":memory:")
    >>> sqlitebck.copy(src, dst).pages
    2
    >>> dst.execute("SELECT name FROM sqlite_master").fetchall()
    [('t',)]
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from typing import Any, Callable, NamedTuple

from sqlitebck import _binding
from sqlitebck._binding import STDLIB, Binding
from sqlitebck._endpoints import AsyncEndpoint, Endpoint, Endpoints
from sqlitebck._errors import (
    SQLITE_DONE,
    SQLITE_OK,
    note_holds_new_copy,
    waits_for_a_lock,
)
from sqlitebck._frameworks import connection_of
from sqlitebck._interrupts import Checkpoint, HeldInterrupts
from sqlitebck._sqlitebck import ffi, lib

__all__ = [
    "AsyncEndpoint",
    "Backup",
    "CopyResult",
    "Endpoint",
    "Progress",
    "__version__",
    "acopy",
    "copy",
    "sqlite_version",
]

__version__ = "2.0.0"

#: Version of the SQLite library in use: always ``sqlite3.sqlite_version``.
sqlite_version: str = ffi.string(lib.sqlitebck_libversion(STDLIB.library)).decode()

#: ``progress(status, remaining, total)``, as for ``sqlite3.Connection.backup``.
Progress = Callable[[int, int, int], object]

_INT_MIN = -(2**31)
_INT_MAX = 2**31 - 1
# Longest time one C call copies before returning to Python, so that signals
# (Ctrl-C), progress reports and timeouts are served several times a second.
_BUDGET_MS = 50
# Jobs of finished copies, kept for the next ones (allocating one is a
# noticeable part of copying a small database). A job is taken off the list
# while in use, so nested and concurrent copies never share one.
_spare_jobs: list[_Job] = []
_SPARE_JOBS = 8
_new_tuple = tuple.__new__
# Retry delays while a lock held elsewhere stops the copy: doubling from the
# first to the last, never past the timeout.
_BACKOFF_FIRST = 0.001
_BACKOFF_LAST = 0.05
_Connection = sqlite3.Connection
_PATHS = (str, bytes, os.PathLike)


class CopyResult(NamedTuple):
    """What a finished :func:`copy` did.

    ``pages``: page count of the copied database; ``steps``: backup steps
    taken; ``restarts``: times SQLite restarted the copy because another
    connection changed the source; ``elapsed``: seconds the call took.
    """

    pages: int
    steps: int
    restarts: int
    elapsed: float


class _Job:
    """One copy between two connections: the only owner of its C job.

    The C job (``csrc/backup.c``) is started by ``sqlitebck_start`` or
    ``sqlitebck_copy`` and stepped by :meth:`drive`. It is ended exactly
    once, by whichever comes first:

    - the C core itself, when the copy completes or fails;
    - the ``except BaseException`` clause around the C calls of the owner
      (:func:`copy`, :class:`Backup`), when the owner stops early: an
      exception from ``progress``, a timeout, Ctrl-C at any bytecode. The
      clause calls ``lib.sqlitebck_end`` directly, so that no Python
      function runs (and no second signal can strike) before the end;
    - the garbage collector, should everything else be bypassed: the C
      struct's destructor, ``sqlitebck_job_free``, ends an open job.

    Ending an ended job does nothing, so a job is never ended twice.
    """

    __slots__ = ("c", "counts", "db", "dest", "sb", "source")

    def __init__(self) -> None:
        c = lib.sqlitebck_job_new()
        if c == ffi.NULL:
            raise MemoryError("out of memory for a backup job")
        self.c = ffi.gc(c, lib.sqlitebck_job_free)
        self.counts = lib.sqlitebck_job_counts(self.c)

    def start(
        self,
        source: Any,
        sb: Binding,
        dest: Any,
        db: Binding,
        sname: bytes,
        dname: bytes,
        npages: int,
    ) -> int:
        """Check both connections and start the job (without stepping it)."""
        src, dst = _refs(source, sb, dest, db)
        self.source, self.dest, self.sb, self.db = source, dest, sb, db
        return int(
            lib.sqlitebck_start(self.c, sb.library, src, sname, dst, dname, npages)
        )

    def drive(
        self,
        rc: int,
        npages: int,
        wait: float | None,
        progress: Progress | None,
        delay: float,
        batch: bool,
        checkpoint: Checkpoint | None,
    ) -> bool:
        """Carry the job on from ``rc``, the result of its last C call.

        Steps ``npages`` pages a batch until the copy is done (True), or with
        ``batch`` only until the current batch is complete (False if more is
        left), sleeping ``delay`` seconds between batches. While a lock held
        elsewhere stops the copy, or another thread holds a write transaction
        open on the source connection, retries for up to ``wait`` seconds
        without progress. Between C calls, runs the modules' own checks on
        both connections (closed meanwhile, used from another thread), and
        asks ``checkpoint`` whether to stop. Raises the job's error, if any.
        """
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
                    if delay:
                        _pause(delay, checkpoint)
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
            rc = lib.sqlitebck_step(self.c, npages, _BUDGET_MS)

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
        return errors.error(rc, message)


def copy(
    source: Endpoint,
    dest: Endpoint,
    pages: int = 0,
    sleep: float = 0,
    *,
    progress: Progress | None = None,
    source_name: str = "main",
    dest_name: str = "main",
    timeout: float | None = 5.0,
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
    started = time.perf_counter()
    npages, delay, wait, sname, dname = _arguments(
        pages, sleep, progress, source_name, dest_name, timeout
    )
    if type(source) is _Connection and type(dest) is _Connection:
        return _copy(
            source,
            STDLIB,
            dest,
            STDLIB,
            sname,
            dname,
            npages,
            delay,
            wait,
            progress,
            started,
            None,
            True,
        )
    return _copy_ends(
        source,
        dest,
        sname,
        dname,
        npages,
        delay,
        wait,
        progress,
        started,
        keep_wal,
        None,
    )


def _arguments(
    pages: object,
    sleep: object,
    progress: object,
    source_name: object,
    dest_name: object,
    timeout: object,
) -> tuple[int, float, float | None, bytes, bytes]:
    """The arguments of :func:`copy`, checked: the batch size, the pause in
    seconds, the lock timeout in seconds, and both schema names, encoded."""
    # The usual values pass a quick test here; any other gets the full check.
    npages = (
        pages if type(pages) is int and _INT_MIN <= pages <= _INT_MAX else _pages(pages)
    )
    delay = 0.0 if sleep == 0 and type(sleep) is int else _sleep(sleep)
    wait = (
        timeout
        if type(timeout) is float and 0.0 <= timeout < math.inf
        else _timeout(timeout)
    )
    if progress is not None and not callable(progress):
        raise TypeError(
            f"progress must be callable or None, not {type(progress).__name__}"
        )
    sname = b"main" if source_name == "main" else _schema(source_name, "source_name")
    dname = b"main" if dest_name == "main" else _schema(dest_name, "dest_name")
    return npages, delay, wait, sname, dname


def _copy_ends(
    source: object,
    dest: object,
    sname: bytes,
    dname: bytes,
    npages: int,
    delay: float,
    wait: float | None,
    progress: Progress | None,
    started: float,
    keep_wal: bool,
    checkpoint: Checkpoint | None,
) -> CopyResult:
    """Copy between ends of any kind: connections of any supported binding,
    the connections that framework objects wrap, and paths, which are opened
    (and closed) here with the other end's module."""
    source, dest = connection_of(source), connection_of(dest)
    sb, db, pb = _bindings(source, dest)
    if sb is not None and db is not None:
        return _copy(
            source,
            sb,
            dest,
            db,
            sname,
            dname,
            npages,
            delay,
            wait,
            progress,
            started,
            checkpoint,
            True,
        )
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
                source, dest, keep_wal=keep_wal, module=pb.module, source_name=sname
            )
            try:
                result = _copy(
                    ends.source,
                    sb or pb,
                    ends.dest,
                    db or pb,
                    sname,
                    dname,
                    npages,
                    delay,
                    wait,
                    progress,
                    started,
                    stop,
                    ends.in_place,
                )
                committed = True
            except BaseException:
                ends.close(complete=False)
                raise
            ends.close(complete=True, before_publish=stop.check)
    except BaseException as e:
        if committed and ends is not None and ends.in_place:
            note_holds_new_copy(e)
        raise
    return result


def _copy(
    source: Any,
    sb: Binding,
    dest: Any,
    db: Binding,
    sname: bytes,
    dname: bytes,
    npages: int,
    delay: float,
    wait: float | None,
    progress: Progress | None,
    started: float,
    checkpoint: Checkpoint | None,
    final: bool,
) -> CopyResult:
    """Copy between two connections, other arguments checked. With ``final``
    (``dest`` is the destination the caller named, not a private new file),
    an exception raised after the commit notes that the destination holds
    the new copy. The path every call takes is kept short: it is most of the
    cost of copying a small database (so _refs() is inlined here)."""
    sb.check(source)
    db.check(dest)
    if source is dest:
        raise ValueError("source and dest are the same connection")
    src = sb.ref(source)
    dst = db.ref(dest)
    try:
        job = _spare_jobs.pop()
    except IndexError:
        job = _Job()
    c = job.c
    try:
        # One call does it all when one step is enough (small databases).
        rc = lib.sqlitebck_copy(
            c, sb.library, src, sname, dst, dname, npages, _BUDGET_MS
        )
        if rc != SQLITE_DONE or progress is not None:
            job.source, job.dest, job.sb, job.db = source, dest, sb, db
            job.drive(rc, npages, wait, progress, delay, False, checkpoint)
            # A spare job keeps no connection alive.
            job.source = job.dest = None
        # Up to the return, an interrupt still gets its note.
        counts = job.counts
        result = _new_tuple(
            CopyResult,
            (
                counts.pagecount,
                counts.steps,
                counts.restarts,
                time.perf_counter() - started,
            ),
        )
        if len(_spare_jobs) < _SPARE_JOBS:
            _spare_jobs.append(job)
        return result
    except BaseException as e:
        lib.sqlitebck_end(c)
        if final and job.counts.committed:
            note_holds_new_copy(e)
        raise


class Backup:
    """A copy driven step by step by its caller, as with APSW's ``Backup``.

    Arguments (connections or paths), validation and errors are those of
    :func:`copy`; a new destination path appears once the copy is complete
    and :meth:`finish` is called (or the ``with`` block ends). ``timeout``
    bounds how long each :meth:`step` waits for a lock held elsewhere. Until
    it is finished, the destination keeps its previous content for every
    other connection. Leaving the ``with`` block, :meth:`close`, or dropping
    the object before the copy is complete rolls the destination back to its
    previous content and releases it. A call made while another call on the
    same object runs (from a callback inside :meth:`step`, or from another
    thread) raises ``sqlite3.ProgrammingError`` and changes nothing.

    >>> import sqlite3, sqlitebck
    >>> src = sqlite3.connect(":memory:")
    >>> _ = src.execute("CREATE TABLE t(x)")
    >>> dst = sqlite3.connect(":memory:")
    >>> with sqlitebck.Backup(src, dst) as backup:
    ...     while not backup.step(1):
    ...         print(f"{backup.remaining} of {backup.page_count} pages to go")
    1 of 2 pages to go
    >>> backup.done
    True
    """

    def __init__(
        self,
        source: Endpoint,
        dest: Endpoint,
        *,
        source_name: str = "main",
        dest_name: str = "main",
        timeout: float | None = 5.0,
        keep_wal: bool = False,
    ) -> None:
        self._busy = threading.Lock()
        self._owner = os.getpid()  # a fork() child must leave it alone
        self._usage: Binding = STDLIB
        self._ends: Endpoints | None = None
        self._done = False
        self._wait = _timeout(timeout)
        sname = _schema(source_name, "source_name")
        dname = _schema(dest_name, "dest_name")
        src, dst = connection_of(source), connection_of(dest)
        sb, db, pb = _bindings(src, dst)
        self._usage = (sb or pb) if (sb or pb).dbapi else (db or pb)
        self._job = job = _Job()
        try:
            self._open(job, src, sb, dst, db, pb, sname, dname, keep_wal)
        except BaseException:
            # A Ctrl-C held back while opening is delivered as the block ends:
            # whatever was opened is closed before it propagates.
            self._abandon()
            raise

    def _open(
        self,
        job: _Job,
        src: Any,
        sb: Binding | None,
        dst: Any,
        db: Binding | None,
        pb: Binding,
        sname: bytes,
        dname: bytes,
        keep_wal: bool,
    ) -> None:
        """Open the ends and start the job, with Ctrl-C held back."""
        with HeldInterrupts() as held:
            ends = Endpoints(
                src, dst, keep_wal=keep_wal, module=pb.module, source_name=sname
            )
            try:
                # Opened as an online copy: the caller may pause between steps
                # for as long as it likes, so no snapshot is held unless the
                # source is WAL (or step() is asked for everything at once).
                rc = job.start(
                    ends.source, sb or pb, ends.dest, db or pb, sname, dname, 1
                )
                if rc != SQLITE_OK:
                    raise job.error(rc)
                held.check()
            except BaseException:
                lib.sqlitebck_end(job.c)
                ends.close(complete=False)
                raise
            self._ends = ends

    def _abandon(self) -> None:
        """End the job and close the ends, if they were opened."""
        with HeldInterrupts():
            ends, self._ends = self._ends, None
            try:
                lib.sqlitebck_end(self._job.c)
            finally:
                if ends is not None:
                    ends.close(complete=False)

    def _claim(self) -> None:
        """Claim the object for one call, or raise ProgrammingError."""
        if not self._busy.acquire(blocking=False):
            raise self._usage.usage(
                "the Backup is in use by another call (a callback inside step(), "
                "or another thread)"
            )

    def step(self, pages: int = -1) -> bool:
        """Copy up to ``pages`` pages (``<= 0``: all that is left, as one
        snapshot); return True once the whole database is copied.

        A lock held elsewhere that outlasts ``timeout`` raises
        ``sqlite3.OperationalError``; the backup may then be stepped again.
        Any other error ends it."""
        npages = _pages(pages)
        # Ctrl-C waits for a point between two C calls: claimed, the object
        # is always released again.
        try:
            with HeldInterrupts() as held:
                self._claim()
                try:
                    if self._done:
                        return True
                    if self._ends is None:
                        raise self._usage.usage("the backup is closed")
                    job = self._job
                    job.sb.check(job.source)
                    job.db.check(job.dest)
                    lib.sqlitebck_new_batch(job.c)
                    rc = lib.sqlitebck_step(job.c, npages, _BUDGET_MS)
                    self._done = job.drive(
                        rc, npages, self._wait, None, 0.0, True, held
                    )
                    return self._done
                finally:
                    self._busy.release()
        except BaseException as e:
            ends = self._ends
            if self._job.counts.committed and ends is not None and ends.in_place:
                note_holds_new_copy(e)
            raise

    @property
    def remaining(self) -> int:
        """Pages still to copy, as of the last step."""
        return int(self._job.counts.remaining)

    @property
    def page_count(self) -> int:
        """Pages in the source database, as of the last step."""
        return int(self._job.counts.pagecount)

    @property
    def done(self) -> bool:
        """True once the whole database is copied (and committed)."""
        return self._done

    def finish(self) -> None:
        """End the backup: roll the destination back unless it is complete,
        and release both connections. Calling it again does nothing.

        In a child of ``fork()``, a Backup of its parent's is refused
        (``sqlite3.ProgrammingError``), and then forgotten: its job,
        connections and files are the parent's, and are left to it."""
        if os.getpid() != self._owner:
            self._forget()
            raise self._usage.usage(
                "this Backup belongs to the process that made it, not to this "
                "child of fork(); it is left to its owner"
            )
        ends: Endpoints | None = None
        try:
            with HeldInterrupts() as held:
                self._claim()
                try:
                    ends, self._ends = self._ends, None
                    if ends is not None:
                        try:
                            lib.sqlitebck_end(self._job.c)
                        finally:
                            # A finished backup keeps no connection alive.
                            self._job.source = self._job.dest = None
                            ends.close(self._done, before_publish=held.check)
                finally:
                    self._busy.release()
        except BaseException as e:
            if self._done and ends is not None and ends.in_place:
                note_holds_new_copy(e)
            raise

    close = finish

    def __enter__(self) -> Backup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()

    def _forget(self) -> None:
        """In a child of fork(): drop the parent's job and ends untouched."""
        if self._ends is not None:
            self._ends = None
            lib.sqlitebck_end(self._job.c)  # only forgets it (see backup.c)

    def __del__(self) -> None:
        if getattr(self, "_ends", None) is None:
            return
        if os.getpid() != self._owner:
            self._forget()
        else:
            self.finish()


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
        time.sleep(min(left, _BUDGET_MS / 1000))


def _refs(source: Any, sb: Binding, dest: Any, db: Binding) -> tuple[int, int]:
    """Run the modules' own checks on both connections (closed, used from
    another thread), refuse the same one twice, and return how the C core
    refers to each."""
    sb.check(source)
    db.check(dest)
    if source is dest:
        raise ValueError("source and dest are the same connection")
    return sb.ref(source), db.ref(dest)


def _bindings(
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


def _pages(pages: object) -> int:
    if not isinstance(pages, int) or isinstance(pages, bool):
        raise TypeError(f"pages must be an int, not {type(pages).__name__}")
    if not _INT_MIN <= pages <= _INT_MAX:
        raise OverflowError(f"pages={pages} does not fit in a C int")
    return int(pages)


def _sleep(sleep: object) -> float:
    """Milliseconds between batches, validated, as seconds."""
    if not isinstance(sleep, (int, float)) or isinstance(sleep, bool):
        raise TypeError(
            f"sleep must be a number of milliseconds, not {type(sleep).__name__}"
        )
    if not math.isfinite(sleep) or sleep < 0:
        raise ValueError(f"sleep must be finite and >= 0, not {sleep!r}")
    return sleep / 1000.0


def _timeout(timeout: object) -> float | None:
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


def _schema(name: object, role: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"{role} must be a str, not {type(name).__name__}")
    if "\0" in name:
        raise ValueError(f"{role} must not contain NUL characters")
    return name.encode("utf-8")


from sqlitebck._aio import acopy  # noqa: E402 - it uses what is defined above
