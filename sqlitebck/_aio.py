"""Copies for asyncio: :func:`acopy`.

The copy runs on another thread (an aiosqlite connection's own thread, or a
thread of the event loop's default executor), so that the loop stays free:
the C steps release the GIL, and every step is bounded in time. The caller's
``progress`` runs on the event loop's thread, and the copy waits for it, so
that an exception it raises ends the copy as with :func:`sqlitebck.copy`.
Cancelling the task stops the copy at its next check (between two steps, or
within 50 ms of a pause) and waits for it to end, so that the destination
has its previous content again when ``CancelledError`` propagates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading

from sqlitebck._endpoints import AsyncEndpoint
from sqlitebck._engine import (
    DEFAULT_TIMEOUT,
    CopyResult,
    Progress,
    copy_ends,
    settings,
)
from sqlitebck._errors import holds_new_copy, note_holds_new_copy
from sqlitebck._frameworks import AioConnection, framework_of

_AIOSQLITE = "aiosqlite.core.Connection"


class _Cancelled(BaseException):
    """Raised on the copy's thread to stop it: the task was cancelled."""


class _Cancellation:
    """The checkpoint of a copy whose task may be cancelled."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            raise _Cancelled


def _on_loop(
    loop: asyncio.AbstractEventLoop,
    progress: Progress,
    stop: _Cancellation,
) -> Progress:
    """A progress callback for the copy's thread that runs ``progress`` on
    the event loop's thread and waits for it (or for a cancellation)."""

    def report(status: int, remaining: int, total: int) -> None:
        done: concurrent.futures.Future[object] = concurrent.futures.Future()

        def call() -> None:
            if done.set_running_or_notify_cancel():
                try:
                    done.set_result(progress(status, remaining, total))
                except BaseException as e:  # handed to the copy's thread
                    done.set_exception(e)

        loop.call_soon_threadsafe(call)
        while True:
            try:
                stop.check()
            except _Cancelled:
                done.cancel()
                raise
            try:
                done.result(timeout=0.05)
                return
            except concurrent.futures.TimeoutError:
                continue

    return report


def _thread_side(end: object) -> object:
    """What the copy's thread uses for ``end``: an aiosqlite connection's own
    sqlite3 connection, anything else as it is."""
    if framework_of(end) == _AIOSQLITE:
        return end._conn  # type: ignore[attr-defined]
    return end


async def acopy(
    source: AsyncEndpoint,
    dest: AsyncEndpoint,
    pages: int = 0,
    sleep: float = 0,
    *,
    progress: Progress | None = None,
    source_name: str = "main",
    dest_name: str = "main",
    timeout: float | None = DEFAULT_TIMEOUT,
    keep_wal: bool = False,
) -> CopyResult:
    """:func:`sqlitebck.copy` for asyncio: the same arguments, checks, errors
    and result, without blocking the event loop.

    Either end may also be an ``aiosqlite.Connection``: the copy then runs on
    that connection's own thread, as its thread check requires (at most one
    end may be one). A ``sqlite3.Connection`` must have been opened with
    ``check_same_thread=False``, as the copy runs on another thread.
    ``progress`` is called on the event loop's thread. Cancelling the task
    ends the copy within about 50 ms, and ``CancelledError`` propagates once
    the destination has its previous content again (a new destination path
    is not created). Only a cancellation that comes while the destination
    commits (or a new file is linked into place), the point of no return,
    finds the copy complete: ``CancelledError`` propagates then too, with a
    note (``__notes__``) saying that the destination holds the new copy.

    >>> import asyncio, sqlite3, sqlitebck
    >>> src = sqlite3.connect(":memory:", check_same_thread=False)
    >>> _ = src.execute("CREATE TABLE t(x)")
    >>> dst = sqlite3.connect(":memory:", check_same_thread=False)
    >>> asyncio.run(sqlitebck.acopy(src, dst)).pages
    2
    >>> src.close(); dst.close()
    """
    checked = settings(pages, sleep, progress, source_name, dest_name, timeout)
    runners: list[AioConnection] = [
        e  # type: ignore[misc]
        for e in (source, dest)
        if framework_of(e) == _AIOSQLITE
    ]
    if len(runners) > 1:
        raise TypeError(
            "both ends are aiosqlite connections, each with a thread of its own: "
            "the copy can run on one of them only; pass a path for one end"
        )
    loop = asyncio.get_running_loop()
    stop = _Cancellation()
    report = None if progress is None else _on_loop(loop, progress, stop)

    def work() -> CopyResult:
        stop.check()  # cancelled while the copy waited for its thread
        return copy_ends(
            _thread_side(source),
            _thread_side(dest),
            checked._replace(progress=report),
            keep_wal,
            stop,
        )

    run: asyncio.Future[CopyResult]
    if runners:
        run = asyncio.ensure_future(runners[0]._execute(work))
    else:
        run = loop.run_in_executor(None, work)
    try:
        return await asyncio.shield(run)
    except asyncio.CancelledError as cancelled:
        stop.cancel()
        # The copy ends (and rolls back) on its thread; whatever else comes
        # (another cancellation), the destination is settled before this
        # task goes on. If it was past the point of no return, the
        # cancellation says that the destination holds the new copy.
        while not run.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({run})
        if not run.cancelled():
            error = run.exception()  # retrieved: the cancellation is what counts
            if error is None or holds_new_copy(error):
                note_holds_new_copy(cancelled)
        raise
