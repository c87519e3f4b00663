"""Copy SQLite databases through SQLite's online backup API.

sqlitebck works on the connections of Python's own :mod:`sqlite3` module and
calls the very SQLite library that module loaded::

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
import sqlite3
import time
from typing import Any, Callable, NamedTuple

from sqlitebck import _binding
from sqlitebck._endpoints import Endpoint, Endpoints
from sqlitebck._errors import (
    SQLITE_BUSY,
    SQLITE_DONE,
    SQLITE_LOCKED,
    SQLITE_MISUSE,
    SQLITE_OK,
    sqlite_error,
)
from sqlitebck._sqlitebck import ffi, lib

__all__ = ["Backup", "CopyResult", "__version__", "copy", "sqlite_version"]

__version__ = "2.0.0"

#: Version of the SQLite library in use: always ``sqlite3.sqlite_version``.
sqlite_version: str = ffi.string(lib.sqlitebck_libversion()).decode()

#: ``progress(status, remaining, total)``, as for ``sqlite3.Connection.backup``.
Progress = Callable[[int, int, int], object]

_INT_MIN = -(2**31)
_INT_MAX = 2**31 - 1
# Longest time one C call copies before returning to Python, so that signals
# (Ctrl-C), progress reports and timeouts are served several times a second.
_BUDGET_MS = 50
# Job structs of finished copies, kept for the next ones (allocating one
# is a noticeable part of copying a small database). A job is taken off the
# list while in use, so nested and concurrent copies never share one.
_spare_jobs: list[Any] = []
_SPARE_JOBS = 8
_new_tuple = tuple.__new__
# Retry delays while a lock held elsewhere stops the copy: doubling from the
# first to the last, never past the timeout.
_BACKOFF_FIRST = 0.001
_BACKOFF_LAST = 0.05


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

    ``source`` and ``dest`` are ``sqlite3.Connection`` objects or paths. A
    source path is opened read-only and must exist; a destination path that
    does not exist is created atomically (it appears, complete and durable,
    only once the copy has succeeded), one that exists is overwritten
    transactionally. Connections opened from paths are closed again.

    With ``pages <= 0`` (the default) the destination becomes one consistent
    snapshot of the source. With ``pages > 0`` the copy goes online, in
    batches of that many pages with ``sleep`` milliseconds between them, so
    that other connections can use the source meanwhile.

    ``progress(status, remaining, total)`` is called after every batch (and
    about every 50 ms of a large unbatched copy), with status ``SQLITE_OK``
    (0), ``SQLITE_BUSY``/``SQLITE_LOCKED`` while waiting for a lock, and
    finally ``SQLITE_DONE`` (101) with ``remaining == 0``. An exception from
    it ends the copy and propagates; the destination then keeps its previous
    content, except after the final call, which reports a copy already
    committed.

    While a lock held elsewhere stops the copy, it is retried for up to
    ``timeout`` seconds (``None``: without limit), then
    ``sqlite3.OperationalError`` ("database is locked") is raised. A failed
    or interrupted copy (Ctrl-C included) leaves the destination as it was.

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
    if isinstance(source, sqlite3.Connection) and isinstance(dest, sqlite3.Connection):
        return _result(
            _copy(source, dest, sname, dname, npages, delay, wait, progress), started
        )
    ends = Endpoints(source, dest, keep_wal=keep_wal)
    try:
        job = _copy(ends.source, ends.dest, sname, dname, npages, delay, wait, progress)
    except BaseException:
        ends.close(complete=False)
        raise
    ends.close(complete=True)
    return _result(job, started)


def _copy(
    source: sqlite3.Connection,
    dest: sqlite3.Connection,
    sname: bytes,
    dname: bytes,
    npages: int,
    delay: float,
    wait: float | None,
    progress: Progress | None,
) -> Any:
    """Copy between two connections, other arguments checked; return the
    finished job. The path every call takes is kept short: it is most of the
    cost of copying a small database."""
    src, dst = _refs(source, dest)
    job = _spare_jobs.pop() if _spare_jobs else ffi.new("sqlitebck_job *")
    # One call does it all when one step is enough (small databases).
    rc = lib.sqlitebck_copy(job, src, sname, dst, dname, npages, _BUDGET_MS)
    if rc == SQLITE_DONE:
        if progress is not None:
            progress(rc, 0, job.pagecount)
        return job
    if job.backup == ffi.NULL:  # refused, or failed before it started
        raise _error(job, rc)
    try:
        _drive(job, rc, npages, wait, progress, source, dest, delay)
    except BaseException:
        lib.sqlitebck_close(job)
        raise
    rc = lib.sqlitebck_close(job)
    if rc != SQLITE_OK:
        raise _error(job, rc)
    return job


def _result(job: Any, started: float) -> CopyResult:
    """The result of a finished job; the job struct is kept for reuse."""
    result = _new_tuple(
        CopyResult,
        (job.pagecount, job.steps, job.restarts, time.perf_counter() - started),
    )
    if len(_spare_jobs) < _SPARE_JOBS:
        _spare_jobs.append(job)
    return result


class Backup:
    """A copy driven step by step by its caller, as with APSW's ``Backup``.

    Arguments (connections or paths), validation and errors are those of
    :func:`copy`; a new destination path appears once the copy is complete
    and :meth:`finish` is called (or the ``with`` block ends). ``timeout``
    bounds how long each :meth:`step` waits for a lock held elsewhere. Until
    it is finished, the destination keeps its previous content for every
    other connection. Leaving the ``with`` block, :meth:`close`, or dropping
    the object before the copy is complete rolls the destination back to its
    previous content and releases it.

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
        self._open = False
        self._done = False
        self._wait = _timeout(timeout)
        sname = _schema(source_name, "source_name")
        dname = _schema(dest_name, "dest_name")
        self._ends = Endpoints(source, dest, keep_wal=keep_wal)
        try:
            # Opened as an online copy: the caller may pause between steps for
            # as long as it likes, so no snapshot is held unless the source is
            # WAL (or step() is asked for everything at once).
            self._job = _open_job(self._ends.source, self._ends.dest, sname, dname, 1)
            rc = lib.sqlitebck_hold(self._job)
            if rc != SQLITE_OK:
                error = _error(self._job, rc)
                lib.sqlitebck_close(self._job)
                raise error
        except BaseException:
            self._ends.close(complete=False)
            raise
        self._open = True

    def step(self, pages: int = -1) -> bool:
        """Copy up to ``pages`` pages (``<= 0``: all that is left, as one
        snapshot); return True once the whole database is copied."""
        npages = _pages(pages)
        if self._done:
            return True
        if not self._open:
            raise sqlite3.ProgrammingError("the backup is closed")
        source, dest = self._ends.source, self._ends.dest
        _binding.check_connection(source)
        _binding.check_connection(dest)
        job = self._job
        job.batch_left = 0  # a new batch, whatever became of the last one
        rc = lib.sqlitebck_step(job, npages, _BUDGET_MS)
        self._done = _drive(job, rc, npages, self._wait, None, source, dest, None)
        return self._done

    @property
    def remaining(self) -> int:
        """Pages still to copy, as of the last step."""
        return int(self._job.remaining)

    @property
    def page_count(self) -> int:
        """Pages in the source database, as of the last step."""
        return int(self._job.pagecount)

    @property
    def done(self) -> bool:
        """True once the whole database is copied (and committed)."""
        return self._done

    def finish(self) -> None:
        """End the backup: roll the destination back unless it is complete,
        and release both connections. Calling it again does nothing."""
        if self._open:
            self._open = False
            try:
                lib.sqlitebck_close(self._job)
            finally:
                self._ends.close(complete=self._done)

    close = finish

    def __enter__(self) -> Backup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()

    def __del__(self) -> None:
        if getattr(self, "_open", False):
            self.finish()


def _open_job(
    source: sqlite3.Connection,
    dest: sqlite3.Connection,
    sname: bytes,
    dname: bytes,
    npages: int,
) -> Any:
    """Check both connections and start a job between them."""
    src, dst = _refs(source, dest)
    job = ffi.new("sqlitebck_job *")
    rc = lib.sqlitebck_open(job, src, sname, dst, dname, npages)
    if rc != SQLITE_OK:
        raise _error(job, rc)
    return job


def _refs(source: sqlite3.Connection, dest: sqlite3.Connection) -> tuple[int, int]:
    """Run the sqlite3 module's checks on both connections (closed, used
    from another thread), refuse the same one twice, and return how the C
    core refers to each."""
    check = _binding.check_connection
    check(source)
    check(dest)
    if source is dest:
        raise ValueError("source and dest are the same connection")
    ref = _binding.connection_ref
    return ref(source), ref(dest)


def _drive(
    job: Any,
    rc: int,
    npages: int,
    wait: float | None,
    progress: Progress | None,
    source: sqlite3.Connection,
    dest: sqlite3.Connection,
    delay: float | None,
) -> bool:
    """Carry ``job`` on from ``rc``, the result of its last step.

    Steps until the copy is done, sleeping ``delay`` seconds between batches;
    with ``delay`` None, only until the current batch is complete. Returns
    True once the copy is done. Retries while a lock held elsewhere stops
    it, or while the source connection has a write transaction open (another
    thread may be using it), for up to ``wait`` seconds without progress;
    between C calls, runs the sqlite3 module's checks on both connections
    (closed meanwhile, used from another thread).
    """
    step = lib.sqlitebck_step
    blocked_since: float | None = None
    backoff = _BACKOFF_FIRST
    while True:
        if rc in (SQLITE_OK, SQLITE_DONE):
            blocked_since = None
            backoff = _BACKOFF_FIRST
            if progress is not None:
                progress(rc, job.remaining, job.pagecount)
            if rc == SQLITE_DONE:
                return True
            if job.batch_left == 0:
                if delay is None:
                    return False
                if delay:
                    time.sleep(delay)
        elif rc & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED):
            now = time.monotonic()
            if blocked_since is None:
                blocked_since = now
            left = math.inf if wait is None else blocked_since + wait - now
            if left <= 0:
                raise _error(job, rc)
            if progress is not None:
                progress(rc, job.remaining, job.pagecount)
            time.sleep(min(backoff, left))
            backoff = min(backoff * 2, _BACKOFF_LAST)
        else:
            raise _error(job, rc)
        _binding.check_connection(source)
        _binding.check_connection(dest)
        rc = step(job, npages, _BUDGET_MS)


def _error(job: Any, rc: int) -> Exception:
    """The exception for result ``rc`` of ``job``, with SQLite's message."""
    message = ffi.string(lib.sqlitebck_errmsg(job, rc)).decode("utf-8", "replace")
    if rc == SQLITE_MISUSE and job.fault:
        return ValueError(message)
    return sqlite_error(rc, message)


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
