"""SQLite result codes turned into the sqlite3 module's own exceptions.

The class chosen for a result code is the one CPython's and PyPy's sqlite3
modules choose themselves, taken from the module of the connections copied
(``pysqlite3.dbapi2.OperationalError`` for pysqlite3's, ...), and every
exception carries ``sqlite_errorcode`` and ``sqlite_errorname`` as theirs do
(Python 3.11+, pysqlite3, sqlean, sqlcipher3).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlitebck._sqlitebck import lib

# The result codes Python tests, from their one declaration (csrc/sqlitebck.h).
SQLITE_OK: int = lib.SQLITE_OK
SQLITE_BUSY: int = lib.SQLITE_BUSY
SQLITE_LOCKED: int = lib.SQLITE_LOCKED
SQLITE_NOTADB: int = lib.SQLITE_NOTADB
SQLITE_READONLY: int = lib.SQLITE_READONLY
SQLITE_CANTOPEN: int = lib.SQLITE_CANTOPEN
SQLITE_READONLY_ROLLBACK: int = lib.SQLITE_READONLY_ROLLBACK
SQLITE_READONLY_DIRECTORY: int = lib.SQLITE_READONLY_DIRECTORY
SQLITE_DONE: int = lib.SQLITE_DONE
SQLITE_IOERR_SHORT_READ: int = lib.SQLITE_IOERR_SHORT_READ


def waits_for_a_lock(rc: int) -> bool:
    """True for a result that means a lock held elsewhere stopped a step
    (SQLITE_BUSY or SQLITE_LOCKED, extended or not): retried, not failed.

    >>> waits_for_a_lock(5), waits_for_a_lock(261), waits_for_a_lock(1)
    (True, True, False)
    """
    return rc & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)


_PRIMARY = (
    "OK ERROR INTERNAL PERM ABORT BUSY LOCKED NOMEM READONLY INTERRUPT IOERR "
    "CORRUPT NOTFOUND FULL CANTOPEN PROTOCOL EMPTY SCHEMA TOOBIG CONSTRAINT "
    "MISMATCH MISUSE NOLFS AUTH FORMAT RANGE NOTADB NOTICE WARNING"
).split()

# Extended result codes: primary | (n << 8) for the n-th name (from 1); "-"
# marks a number SQLite does not use.
_EXTENDED = {
    "OK": "LOAD_PERMANENTLY SYMLINK",
    "ERROR": "MISSING_COLLSEQ RETRY SNAPSHOT",
    "IOERR": (
        "READ SHORT_READ WRITE FSYNC DIR_FSYNC TRUNCATE FSTAT UNLOCK RDLOCK "
        "DELETE BLOCKED NOMEM ACCESS CHECKRESERVEDLOCK LOCK CLOSE DIR_CLOSE "
        "SHMOPEN SHMSIZE SHMLOCK SHMMAP SEEK DELETE_NOENT MMAP GETTEMPPATH "
        "CONVPATH VNODE AUTH BEGIN_ATOMIC COMMIT_ATOMIC ROLLBACK_ATOMIC DATA "
        "CORRUPTFS IN_PAGE"
    ),
    "LOCKED": "SHAREDCACHE VTAB",
    "BUSY": "RECOVERY SNAPSHOT TIMEOUT",
    "CANTOPEN": "NOTEMPDIR ISDIR FULLPATH CONVPATH DIRTYWAL SYMLINK",
    "CORRUPT": "VTAB SEQUENCE INDEX",
    "READONLY": "RECOVERY CANTLOCK ROLLBACK DBMOVED CANTINIT DIRECTORY",
    "ABORT": "- ROLLBACK",
    "CONSTRAINT": (
        "CHECK COMMITHOOK FOREIGNKEY FUNCTION NOTNULL PRIMARYKEY TRIGGER "
        "UNIQUE VTAB ROWID PINNED DATATYPE"
    ),
    "NOTICE": "RECOVER_WAL RECOVER_ROLLBACK RBU",
    "WARNING": "AUTOINDEX",
    "AUTH": "USER",
}


def _names() -> dict[int, str]:
    names = {code: "SQLITE_" + name for code, name in enumerate(_PRIMARY)}
    names[100] = "SQLITE_ROW"
    names[SQLITE_DONE] = "SQLITE_DONE"
    for primary, suffixes in _EXTENDED.items():
        base = _PRIMARY.index(primary)
        for n, suffix in enumerate(suffixes.split(), start=1):
            if suffix != "-":
                names[base | (n << 8)] = f"SQLITE_{primary}_{suffix}"
    return names


ERROR_NAMES = _names()

# The DB-API class for a primary result code, as the sqlite3 module maps it
# (and pysqlite3, sqlean and sqlcipher3, which share its code); anything not
# listed is a DatabaseError.
_CLASSES: dict[int, str] = {
    2: "InternalError",  # INTERNAL
    12: "InternalError",  # NOTFOUND
    18: "DataError",  # TOOBIG
    19: "IntegrityError",  # CONSTRAINT
    20: "IntegrityError",  # MISMATCH
    21: "InterfaceError",  # MISUSE
    25: "InterfaceError",  # RANGE
}
for _code in (1, 3, 4, 5, 6, 8, 9, 10, 13, 14, 15, 16, 17):
    # ERROR PERM ABORT BUSY LOCKED READONLY INTERRUPT IOERR FULL CANTOPEN
    # PROTOCOL EMPTY SCHEMA
    _CLASSES[_code] = "OperationalError"

_NOMEM: int = lib.SQLITE_NOMEM


def error_name(code: int) -> str:
    """Return SQLite's name for result ``code``, as the sqlite3 module does.

    >>> error_name(5), error_name(261), error_name(12345)
    ('SQLITE_BUSY', 'SQLITE_BUSY_RECOVERY', 'SQLITE_UNKNOWN')
    """
    return ERROR_NAMES.get(code, "SQLITE_UNKNOWN")


# The note on an exception that came after the point of no return: the
# destination committed (or a new file was linked into place) before it.
HOLDS_NEW_COPY = (
    "sqlitebck: the destination holds the new copy (it was complete when this came)"
)


def note_holds_new_copy(error: BaseException) -> None:
    """Note on ``error`` that the destination holds the new copy, once
    (``add_note`` from Python 3.11, ``__notes__`` set by hand before).

    >>> e = KeyboardInterrupt()
    >>> note_holds_new_copy(e); note_holds_new_copy(e)
    >>> e.__notes__
    ['sqlitebck: the destination holds the new copy (it was complete when this came)']
    """
    notes = getattr(error, "__notes__", None)
    if notes is None:
        notes = error.__notes__ = []
    if HOLDS_NEW_COPY not in notes:
        notes.append(HOLDS_NEW_COPY)


def holds_new_copy(error: BaseException) -> bool:
    """True if ``error`` carries the note of :func:`note_holds_new_copy`."""
    return HOLDS_NEW_COPY in getattr(error, "__notes__", ())


def sqlite_error(code: int, message: str, module: Any = sqlite3) -> Exception:
    """Return the exception DB-API ``module`` (the sqlite3 module, or
    pysqlite3's, sqlean's, sqlcipher3's) would raise for ``code``, in its own
    classes.

    >>> e = sqlite_error(5, "database is locked")
    >>> type(e).__name__, e.sqlite_errorcode, e.sqlite_errorname
    ('OperationalError', 5, 'SQLITE_BUSY')
    """
    primary = code & 0xFF
    if primary == _NOMEM:
        return MemoryError(message)
    exc: Any = getattr(module, _CLASSES.get(primary, "DatabaseError"))(message)
    exc.sqlite_errorcode = code
    exc.sqlite_errorname = error_name(code)
    return exc  # type: ignore[no-any-return]
