"""Binding the extension to the SQLite that the sqlite3 module already uses.

Everything that differs between CPython and PyPy lives here: which module
file carries SQLite, and how a connection's ``sqlite3 *`` is obtained. Both
are checked against live connections before anything else uses them; if a
check fails, importing sqlitebck fails with ImportError rather than ever
handing SQLite a wrong pointer.
"""

from __future__ import annotations

import importlib
import platform
import sqlite3
import sys
from typing import Callable

from sqlitebck._sqlitebck import ffi, lib

PYPY = platform.python_implementation() == "PyPy"

# The module whose file holds (or links) the SQLite the sqlite3 module uses.
_CARRIER = "_sqlite3_cffi" if PYPY else "_sqlite3"


def _library_paths() -> list[str | None]:
    """Where to look for the loaded SQLite, best first; None: the program."""
    paths: list[str | None] = []
    try:
        module = importlib.import_module(_CARRIER)
    except ImportError:
        module = None
    if sys.platform == "win32":
        paths.append("sqlite3.dll")  # _sqlite3.pyd re-exports none of SQLite
    path = getattr(module, "__file__", None)
    if isinstance(path, str):
        paths.append(path)
    paths.append(None)  # a _sqlite3 built into the interpreter
    return paths


def _bind() -> None:
    err = ffi.new("char[]", 512)
    tried = []
    for path in _library_paths():
        encoded = ffi.NULL if path is None else path.encode()
        if lib.sqlitebck_bind(encoded, err, len(err)) == 0:
            version = ffi.string(lib.sqlitebck_libversion()).decode()
            if version == sqlite3.sqlite_version:
                return
            tried.append(
                f"{path or 'the main program'} has SQLite {version}, but the "
                f"sqlite3 module uses {sqlite3.sqlite_version}"
            )
        else:
            tried.append(ffi.string(err).decode(errors="replace"))
    raise ImportError(
        "sqlitebck could not find the SQLite library of the sqlite3 module: "
        + "; ".join(tried)
    )


def _pypy_ref(conn: sqlite3.Connection) -> int:
    """PyPy: a connection's reference is its ``sqlite3 *`` itself."""
    return int(ffi.cast("uintptr_t", conn._db))  # type: ignore[attr-defined]


def _references() -> Callable[[sqlite3.Connection], int]:
    """How to refer to a connection in calls to the C core.

    On CPython, by the address of the connection object (``id``): the C core
    reads the ``sqlite3 *db`` that follows the object header, whose size the
    interpreter reports as ``object.__basicsize__``. On PyPy, by the value of
    the connection's ``_db`` handle.
    """
    if PYPY:
        lib.sqlitebck_set_handle_offset(0)
        return _pypy_ref
    lib.sqlitebck_set_handle_offset(object.__basicsize__)
    return id


if hasattr(sqlite3.Connection, "getlimit"):  # Python 3.11+: the cheapest
    _getlimit = sqlite3.Connection.getlimit

    def check_connection(conn: sqlite3.Connection) -> None:
        """Run the sqlite3 module's own checks on ``conn``.

        ProgrammingError if it is closed, or if it was opened with
        ``check_same_thread=True`` in another thread. The base class method is
        called, so that a subclass cannot add side effects.
        """
        _getlimit(conn, 0)

else:
    _cursor = sqlite3.Connection.cursor

    def check_connection(conn: sqlite3.Connection) -> None:
        """Run the sqlite3 module's own checks on ``conn`` (see above)."""
        _cursor(conn)


def _verify(ref: Callable[[sqlite3.Connection], int]) -> None:
    """Check the handle accessor against a live connection; ImportError if
    what the C core reads through it disagrees with the sqlite3 module."""
    probe = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn = ref(probe)
        if lib.sqlitebck_handle(conn) == ffi.NULL:
            raise ImportError("connection handle is NULL")
        probe.execute("CREATE TABLE t(x)")
        probe.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(7)])
        if lib.sqlitebck_total_changes(conn) != probe.total_changes:
            raise ImportError("total_changes disagrees")
        probe.execute("BEGIN")
        in_txn = lib.sqlitebck_get_autocommit(conn) == 0
        probe.execute("COMMIT")
        out_txn = lib.sqlitebck_get_autocommit(conn) == 1
        if not (in_txn and out_txn):
            raise ImportError("the autocommit flag disagrees")
    except ImportError as e:
        raise ImportError(
            "sqlitebck does not recognise the layout of sqlite3.Connection "
            f"on this Python ({platform.python_implementation()} "
            f"{platform.python_version()}): {e}; refusing to use it"
        ) from None
    finally:
        probe.close()


_bind()
#: ``connection_ref(conn)``: how the C core is told which connection to use.
connection_ref = _references()
_verify(connection_ref)
