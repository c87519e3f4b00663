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

- ``cli``: the ``sqlitebck`` command (``__main__``: ``python -m sqlitebck``),
  and ``django``: Django's SQLite backend whose test databases are cloned by
  sqlitebck, and a django-dbbackup connector; both use the public API only.
- ``__init__``: the public API, defined by the modules below.
- ``_aio``: :func:`acopy`, a copy on another thread for asyncio.
- ``_backup``: :class:`Backup`, a copy stepped by its caller.
- ``_engine``: :func:`copy`, one copy from checked settings
  (``Settings``, one validator) to its result (``Job``: the C job's start
  and steps; a C job is ended directly in the ``except`` clauses around its
  calls, here and in ``_backup``).
- ``_endpoints``: paths opened, new files published, the VFS shims chosen.
- ``_frameworks``: the connections inside SQLAlchemy, Django, aiosqlite, ...
- ``_binding``: which SQLite library a connection belongs to, its handle.
- ``_interrupts``: Ctrl-C held back while files are opened and published.
- ``_errors``: result codes turned into each module's own exceptions.
- ``_unbuilt``: why no compiled core was found (a source checkout), in one line.
- ``_sqlitebck`` (cffi, from ``csrc/``): ``library.c``, the SQLite
  libraries bound, the connections' handles, the process id;
  ``registry.c``, the connections in use and their busy timeouts;
  ``backup.c``, the job (snapshots, steps, guards, fence); ``vfs.c``, the
  shims; ``sqlitebck.h``, what Python sees; ``sqlite_abi.h``, SQLite's
  objects.

One ``copy(src, dst)`` of two ``sqlite3`` connections: ``_engine.copy``
takes the settings (checked by ``_engine.settings`` unless they are the
defaults), ``_engine.copy_connections`` starts the C job and steps it in one
call (``sqlitebck_copy``), ``Job.drive`` steps on if more is left; a path
goes through ``_engine.copy_ends`` and ``_endpoints.Endpoints`` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:  # first: a checkout's unbuilt source tree says so in one line
    from sqlitebck._sqlitebck import ffi, lib
except ModuleNotFoundError as e:
    if e.name != "sqlitebck._sqlitebck":
        raise
    from sqlitebck._unbuilt import fail

    fail()

from sqlitebck._backup import Backup
from sqlitebck._binding import STDLIB
from sqlitebck._endpoints import AsyncEndpoint, Endpoint
from sqlitebck._engine import CopyResult, Progress, copy

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
CopyResult.__module__ = Backup.__module__ = copy.__module__ = __name__
