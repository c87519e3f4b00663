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

The map, for contributors (imports run down this list, never up):

- ``__init__``: the public API: :func:`copy`, and what the others define.
- ``cli``: the ``sqlitebck`` command (``__main__``: ``python -m sqlitebck``).
- ``_aio``: :func:`acopy`, a copy on another thread for asyncio.
- ``_backup``: :class:`Backup`, a copy stepped by its caller.
- ``_engine``: one copy from checked settings to its result (``Job``: the
  C job's start and steps; a C job is ended directly in the ``except``
  clauses around its calls, here and in ``_backup``).
- ``_endpoints``: paths opened, new files published, the VFS shims chosen.
- ``_frameworks``: the connections inside SQLAlchemy, Django, aiosqlite, ...
- ``_binding``: which SQLite library a connection belongs to, its handle.
- ``_interrupts``: Ctrl-C held back while files are opened and published.
- ``_errors``: result codes turned into each module's own exceptions.
- ``_sqlitebck`` (cffi, from ``csrc/``): ``library.c``, the SQLite
  libraries bound and the connections' handles; ``backup.c``, the job
  (connections in use, snapshots, steps); ``vfs.c``, the shims;
  ``sqlitebck.h``, what Python sees; ``sqlite_abi.h``, SQLite's objects.

One ``copy(src, dst)`` of two ``sqlite3`` connections: ``copy`` checks the
settings (``_engine.arguments``), ``_engine.copy_connections`` starts the C
job and steps it in one call (``sqlitebck_copy``), ``Job.drive`` steps on
if more is left; a path goes through ``_engine.copy_ends`` and
``_endpoints.Endpoints`` first.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from sqlitebck._backup import Backup
from sqlitebck._binding import STDLIB
from sqlitebck._endpoints import AsyncEndpoint, Endpoint
from sqlitebck._engine import (
    DEFAULT_TIMEOUT,
    CopyResult,
    Progress,
    arguments,
    copy_connections,
    copy_ends,
)
from sqlitebck._errors import note_holds_new_copy
from sqlitebck._frameworks import Held
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

_Connection = sqlite3.Connection


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
    started = time.perf_counter()
    npages, delay, wait, sname, dname = arguments(
        pages, sleep, progress, source_name, dest_name, timeout
    )
    # True once the destination holds the new copy: an interrupt that Python
    # raises as a callee returns still gets its note here.
    done: list[bool] = []
    try:
        if type(source) is _Connection and type(dest) is _Connection:
            return copy_connections(
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
                done,
            )
        # Framework objects unwrapped, a connection lent (an Engine's) given
        # back after.
        with Held(source, dest) as ends:
            return copy_ends(
                ends.source,
                ends.dest,
                sname,
                dname,
                npages,
                delay,
                wait,
                progress,
                started,
                keep_wal,
                None,
                done,
            )
    except BaseException as e:
        if done:
            note_holds_new_copy(e)
        raise


if TYPE_CHECKING:
    from sqlitebck._aio import acopy


def __getattr__(name: str) -> Any:
    """``acopy``, imported on first use: it brings asyncio (most of the cost
    of importing the package), which a program that only copies never needs."""
    if name == "acopy":
        from sqlitebck._aio import acopy

        globals()["acopy"] = acopy
        return acopy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Shown as the package's own.
CopyResult.__module__ = Backup.__module__ = __name__
