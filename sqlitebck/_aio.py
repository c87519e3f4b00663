"""Copies for asyncio: :func:`acopy`.

The copy runs on another thread (an aiosqlite connection's own thread, one
of Datasette's, or a thread of the event loop's default executor), so that
the loop stays free:
the C steps release the GIL, and every step is bounded in time. The caller's
``progress`` runs on the event loop's thread, and the copy waits for it, so
that an exception it raises ends the copy as with :func:`sqlitebck.copy`.
Cancelling the task stops the copy at its next check (between two steps, or
within 50 ms of a pause) and waits for it to end, so that the destination
has its previous content again when ``CancelledError`` propagates.

Two ends that each run on a thread of their own (two aiosqlite connections,
say) take part in one copy thus: the copy runs on the first one's thread,
while the second one's thread is *parked*: it runs a call of ours that
hands over its connection and then waits until the copy has ended. SQLite
requires that a connection be used by one thread at a time (which the
parked thread guarantees: nothing else it was asked to do can run), not
always the same one; only the module's thread check
(``check_same_thread``) objects, so the parked end gets only its closed
check while the copy runs (``_binding.parked``). The parked thread waits
for the loop to say the copy is over (which it says however the copy ends:
error, cancellation), and the copy's thread starts only once the other is
parked, so neither waits for the other. Two such copies that share an end
take turns (``_taking_turns``): else ``acopy(a, b)`` and ``acopy(b, a)``
could each park the thread the other's copy needs, and wait forever.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Callable

from sqlitebck import _binding
from sqlitebck._endpoints import AsyncEndpoint
from sqlitebck._engine import (
    DEFAULT_TIMEOUT,
    CopyResult,
    Progress,
    Settings,
    copy_connections,
    copy_ends,
    settings,
)
from sqlitebck._errors import holds_new_copy, note_holds_new_copy
from sqlitebck._frameworks import (
    explain,
    framework_of,
    is_runner,
    loop_side,
    refusal,
)

_AIOSQLITE = "aiosqlite.core.Connection"
_DATASETTE = "datasette.database.Database"
# What a function run on a runner's thread hands back: its result, or the
# exception it raised (Datasette's write thread would die of a BaseException).
_Outcome = tuple[bool, Any]


class _Turn:
    """The turns of the copies between two runners that one runner takes
    part in: a lock, and how many copies hold it or wait for it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


# By the id of the runner: an entry lives only while a copy that holds the
# runner (which keeps it alive, and its id unique) holds or waits for it.
_TURNS: dict[int, _Turn] = {}


@contextlib.asynccontextmanager
async def _taking_turns(ends: tuple[object, object]) -> AsyncIterator[None]:
    """If both ends are runners, wait until neither takes part in another
    copy between two runners, and hold both until the block ends. The locks
    are taken in one order (by id), so that copies in a cycle (``a`` to
    ``b`` and ``b`` to ``a``) run one after the other, not each parking the
    thread that the other's copy runs on."""
    if not all(is_runner(end) for end in ends):
        yield
        return
    turns: list[tuple[int, _Turn]] = []
    for end in sorted(ends, key=id):
        turn = _TURNS.setdefault(id(end), _Turn())
        turn.users += 1
        turns.append((id(end), turn))
    try:
        async with contextlib.AsyncExitStack() as held:
            for _, turn in turns:
                await held.enter_async_context(turn.lock)
            yield
    finally:
        for key, turn in turns:
            turn.users -= 1
            if not turn.users:
                del _TURNS[key]


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


def _guarded(fn: Callable[[Any], Any]) -> Callable[[Any], _Outcome]:
    """``fn`` as a call that hands back its exception rather than raise it."""

    def call(conn: Any) -> _Outcome:
        try:
            return True, fn(conn)
        except BaseException as e:  # raised again on the loop, by _unguard
            return False, e

    return call


async def _unguard(outcome: Awaitable[_Outcome]) -> Any:
    ok, value = await outcome
    if not ok:
        raise value
    return value


def _on_thread_of(
    runner: Any, fn: Callable[[Any], Any], writes: bool
) -> asyncio.Future[Any]:
    """Run ``fn(conn)`` on the thread of ``runner`` (an aiosqlite
    connection, a Datasette database), with ``conn`` the connection it runs
    there: the one that writes if ``writes``."""
    call = _guarded(fn)
    if framework_of(runner) == _AIOSQLITE:
        outcome = runner._execute(lambda: call(runner._conn))
    else:  # Datasette: reads on its executor, writes on its write thread
        if runner.ds.executor is None:
            raise refusal(
                runner,
                "Datasette runs it without threads (num_sql_threads=0), on "
                "the event loop's: pass db.path",
            )
        outcome = (runner.execute_write_fn if writes else runner.execute_fn)(call)
    return asyncio.ensure_future(_unguard(outcome))


def _same_thread_hint(error: BaseException, ends: tuple[object, ...]) -> None:
    """Name both ways out when the copy's thread failed the thread check of a
    connection made on the event loop's thread."""
    if "thread" not in str(error) or not error.args:
        return
    for end in ends:
        b = _binding.binding_of(end)
        if b is None or not b.dbapi or not isinstance(error, b.module.ProgrammingError):
            continue
        try:
            b.check(end)  # fine here, on the loop's thread: made here
        except Exception:
            continue
        error.args = (
            f"{str(error.args[0]).rstrip('.')}: acopy copies on another "
            f"thread, and this {_binding.type_name(type(end))} was opened on "
            "the event loop's "
            "thread with check_same_thread=True (the default): open it with "
            "check_same_thread=False, or pass its path",
        )
        return


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

    Either end may also be an ``aiosqlite.Connection`` (the copy then runs on
    that connection's own thread, as its thread check requires; with two, on
    the source's, the other's thread waiting meanwhile), a SQLAlchemy
    ``AsyncEngine`` or ``AsyncConnection`` (through the aiosqlite connection
    it drives), or a Datasette ``Database`` (on Datasette's threads). A
    ``sqlite3.Connection`` must have been opened with
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
    async with contextlib.AsyncExitStack() as stack:
        # SQLAlchemy's asyncio objects give their aiosqlite connection here,
        # on the loop; the others are unwrapped on the copy's thread.
        ends = (await loop_side(source, stack), await loop_side(dest, stack))
        if ends[0] is ends[1] and ends[0] is not None:
            raise ValueError("source and dest are the same connection")
        try:
            async with _taking_turns(ends):
                return await _acopy(ends, checked, keep_wal)
        except BaseException as e:
            if hasattr(e, "sqlite_errorcode"):
                explain(e, source, dest)
            _same_thread_hint(e, ends)
            raise
    raise AssertionError("unreachable")  # pragma: no cover - for mypy


async def _acopy(
    ends: tuple[object, object],
    checked: Settings,
    keep_wal: bool,
) -> CopyResult:
    """:func:`acopy` of ``ends``, from which the loop's wrappers are gone."""
    loop = asyncio.get_running_loop()
    stop = _Cancellation()
    if checked.progress is not None:
        # Reported on the loop's thread.
        checked = checked._replace(progress=_on_loop(loop, checked.progress, stop))
    runners = [is_runner(end) for end in ends]

    def copy_on_this_thread(source: object, dest: object) -> CopyResult:
        stop.check()  # cancelled while the copy waited for its thread
        return copy_ends(source, dest, checked, keep_wal, stop)

    parked: asyncio.Future[Any] | None = None
    release = threading.Event()
    run: asyncio.Future[CopyResult]
    try:
        if all(runners):
            # The copy runs on the source's thread; the destination's thread
            # is parked first, handing over its connection.
            handed: asyncio.Future[Any] = loop.create_future()

            def park(conn: Any) -> None:
                def hand() -> None:
                    if not handed.done():
                        handed.set_result(conn)

                loop.call_soon_threadsafe(hand)
                release.wait()

            parked = _on_thread_of(ends[1], park, writes=True)
            await asyncio.wait({handed, parked}, return_when=asyncio.FIRST_COMPLETED)
            if not handed.done():
                await parked  # it failed: its error (a closed connection)
            dest_conn = handed.result()

            def copy_with_parked(source: Any) -> CopyResult:
                stop.check()
                sb = _binding.binding_of(source)
                db = _binding.binding_of(dest_conn)
                if sb is None or db is None:  # pragma: no cover - sqlite3 both
                    raise TypeError("a runner's connection is no DB-API one")
                _binding.same_library(sb, source, db, dest_conn)
                return copy_connections(
                    source, sb, dest_conn, _binding.parked(db), checked, stop, True
                )

            run = _on_thread_of(ends[0], copy_with_parked, writes=False)
        elif runners[0]:
            run = _on_thread_of(
                ends[0], lambda conn: copy_on_this_thread(conn, ends[1]), False
            )
        elif runners[1]:
            run = _on_thread_of(
                ends[1], lambda conn: copy_on_this_thread(ends[0], conn), True
            )
        else:
            # The caller's context (a Flask application's, say) goes along.
            context = contextvars.copy_context()
            run = loop.run_in_executor(
                None, context.run, copy_on_this_thread, ends[0], ends[1]
            )
        try:
            return await asyncio.shield(run)
        except asyncio.CancelledError as cancelled:
            stop.cancel()
            # The copy ends (and rolls back) on its thread; whatever else
            # comes (another cancellation), the destination is settled before
            # this task goes on. If it was past the point of no return, the
            # cancellation says that the destination holds the new copy.
            while not run.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({run})
            if not run.cancelled():
                error = run.exception()  # retrieved: the cancellation counts
                if error is None or holds_new_copy(error):
                    note_holds_new_copy(cancelled)
            raise
    finally:
        release.set()
        if parked is not None:
            # Back from its thread before this returns (at once: released).
            while not parked.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({parked})
            if not parked.cancelled():
                parked.exception()  # retrieved: the copy's outcome counts
