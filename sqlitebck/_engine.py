"""The copy engine: one copy between two connections, from checked settings
to its result, and the only code that calls the C job (``csrc/backup.c``).

The path of one ``copy(source, dest, pages, sleep, ...)``:

1. :func:`arguments` checks the settings once (the one validator that
   ``copy``, ``Backup``, ``acopy`` and the command line share);
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
import time
from typing import Any, Callable, NamedTuple

from sqlitebck import _binding
from sqlitebck._binding import Binding
from sqlitebck._endpoints import Endpoints, wal_page_size_message, wal_page_sizes
from sqlitebck._errors import (
    SQLITE_DONE,
    SQLITE_OK,
    SQLITE_READONLY,
    note_holds_new_copy,
    waits_for_a_lock,
)
from sqlitebck._frameworks import connection_of
from sqlitebck._interrupts import Checkpoint, HeldInterrupts
from sqlitebck._sqlitebck import ffi, lib

Progress = Callable[[int, int, int], object]

# The settings' one owner: the default lock timeout of copy(), Backup,
# acopy() and the command line (seconds, as sqlite3.connect's), and the range
# of a batch size (a C int).
DEFAULT_TIMEOUT = 5.0
C_INT_MIN = -(2**31)
C_INT_MAX = 2**31 - 1
# Longest time one C call copies before returning to Python, so that signals
# (Ctrl-C), progress reports and timeouts are served several times a second.
BUDGET_MS = 50
# Jobs of finished copies, kept for the next ones (allocating one is a
# noticeable part of copying a small database). A job is taken off the list
# while in use, so nested and concurrent copies never share one.
_spare_jobs: list[Job] = []
_SPARE_JOBS = 8
_new_tuple = tuple.__new__
# Retry delays while a lock held elsewhere stops the copy: doubling from the
# first to the last, never past the timeout.
_BACKOFF_FIRST = 0.001
_BACKOFF_LAST = 0.05
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


class Job:
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

    def step(self, npages: int) -> int:
        """Start a new batch of ``npages`` pages and take its first C call."""
        lib.sqlitebck_new_batch(self.c)
        return int(lib.sqlitebck_step(self.c, npages, BUDGET_MS))

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
            rc = lib.sqlitebck_step(self.c, npages, BUDGET_MS)

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


def arguments(
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
        pages
        if type(pages) is int and C_INT_MIN <= pages <= C_INT_MAX
        else check_pages(pages)
    )
    delay = 0.0 if sleep == 0 and type(sleep) is int else check_sleep(sleep)
    wait = (
        timeout
        if type(timeout) is float and 0.0 <= timeout < math.inf
        else check_timeout(timeout)
    )
    if progress is not None and not callable(progress):
        raise TypeError(
            f"progress must be callable or None, not {type(progress).__name__}"
        )
    sname = (
        b"main" if source_name == "main" else check_schema(source_name, "source_name")
    )
    dname = b"main" if dest_name == "main" else check_schema(dest_name, "dest_name")
    return npages, delay, wait, sname, dname


def copy_ends(
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
    done: list[bool] | None = None,
) -> CopyResult:
    """Copy between ends of any kind: connections of any supported binding,
    the connections that framework objects wrap, and paths, which are opened
    (and closed) here with the other end's module. ``done`` gets True once
    the destination holds the new copy (see :func:`copy_connections`)."""
    source, dest = connection_of(source), connection_of(dest)
    sb, db, pb = bindings(source, dest)
    if sb is not None and db is not None:
        return copy_connections(
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
            done,
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
                result = copy_connections(
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
    sname: bytes,
    dname: bytes,
    npages: int,
    delay: float,
    wait: float | None,
    progress: Progress | None,
    started: float,
    checkpoint: Checkpoint | None,
    final: bool,
    done: list[bool] | None = None,
) -> CopyResult:
    """Copy between two connections, other arguments checked. With ``final``
    (``dest`` is the destination the caller named, not a private new file),
    an exception raised after the commit notes that the destination holds
    the new copy, and ``done`` gets True before this returns: the caller's
    own frame notes one raised as this returns (Python 3.9 and 3.10 may
    raise a pending interrupt between a handler's end and the return). The
    path every call takes is kept short: it is most of the cost of copying a
    small database (so _refs() is inlined here)."""
    sb.check(source)
    db.check(dest)
    if source is dest:
        raise ValueError("source and dest are the same connection")
    src = sb.ref(source)
    dst = db.ref(dest)
    try:
        job = _spare_jobs.pop()
    except IndexError:
        job = Job()
    c = job.c
    try:
        # One call does it all when one step is enough (small databases).
        rc = lib.sqlitebck_copy(
            c, sb.library, src, sname, dst, dname, npages, BUDGET_MS
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


def _refs(source: Any, sb: Binding, dest: Any, db: Binding) -> tuple[int, int]:
    """Run the modules' own checks on both connections (closed, used from
    another thread), refuse the same one twice, and return how the C core
    refers to each."""
    sb.check(source)
    db.check(dest)
    if source is dest:
        raise ValueError("source and dest are the same connection")
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
    if not math.isfinite(sleep) or sleep < 0:
        raise ValueError(f"sleep must be finite and >= 0, not {sleep!r}")
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
