"""The step-wise copy object, :class:`Backup`, on the engine of ``_engine``."""

from __future__ import annotations

import os
import threading
from typing import Any

from sqlitebck._binding import STDLIB, Binding
from sqlitebck._endpoints import Endpoint, Endpoints
from sqlitebck._engine import (
    DEFAULT_TIMEOUT,
    Job,
    Settings,
    bindings,
    check_pages,
    settings,
)
from sqlitebck._errors import SQLITE_OK, note_holds_new_copy
from sqlitebck._frameworks import connection_of
from sqlitebck._interrupts import HeldInterrupts
from sqlitebck._sqlitebck import lib


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
        timeout: float | None = DEFAULT_TIMEOUT,
        keep_wal: bool = False,
    ) -> None:
        self._busy = threading.Lock()
        self._owner = os.getpid()  # a fork() child must leave it alone
        self._usage: Binding = STDLIB
        self._ends: Endpoints | None = None
        self._done = False
        # Opened as an online copy (pages > 0): the caller may pause between
        # steps for as long as it likes, so no snapshot is held unless the
        # source is WAL (or step() is asked for everything at once).
        self._settings = settings(
            pages=1, source_name=source_name, dest_name=dest_name, timeout=timeout
        )
        src, dst = connection_of(source), connection_of(dest)
        sb, db, pb = bindings(src, dst)
        self._usage = (sb or pb) if (sb or pb).dbapi else (db or pb)
        self._job = job = Job()
        try:
            self._open(job, src, sb, dst, db, pb, keep_wal)
        except BaseException:
            # A Ctrl-C held back while opening is delivered as the block ends:
            # whatever was opened is closed before it propagates.
            self._abandon()
            raise

    def _open(
        self,
        job: Job,
        src: Any,
        sb: Binding | None,
        dst: Any,
        db: Binding | None,
        pb: Binding,
        keep_wal: bool,
    ) -> None:
        """Open the ends and start the job, with Ctrl-C held back."""
        with HeldInterrupts() as held:
            checked = self._settings
            ends = Endpoints(
                src,
                dst,
                keep_wal=keep_wal,
                module=pb.module,
                source_name=checked.source_schema,
            )
            try:
                rc = job.start(ends.source, sb or pb, ends.dest, db or pb, checked)
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
        checked: Settings = self._settings._replace(pages=check_pages(pages))
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
                    rc = job.step(checked.pages)
                    self._done = job.drive(rc, checked, True, held)
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

    def __exit__(
        self, kind: object, error: BaseException | None, traceback: object
    ) -> None:
        ends = self._ends
        self.finish()
        # The block is left by an exception (a Ctrl-C during the step that
        # completed the copy, say) and finish() put the complete copy in
        # place: the exception now comes after the point of no return.
        if error is not None and self._done and ends is not None and ends.in_place:
            note_holds_new_copy(error)

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
