"""Binding the extension to the SQLite libraries that Python modules already use.

A *binding* is one module whose connections sqlitebck accepts: the stdlib's
``sqlite3``, ``pysqlite3`` (``pysqlite3-binary``), ``sqlean`` (``sqlean.py``),
``sqlcipher3`` (``sqlcipher3-binary``) and ``apsw``. Each carries (or links)
its own SQLite library; the C core keeps one table of SQLite functions per
library, and a connection is only ever handed to the library that opened it.

A binding is made ready on first use (the stdlib's at import), in three
checked steps; if one fails, the binding is refused (``ImportError`` for the
stdlib's, ``TypeError`` naming the reason for the others) rather than ever
handing SQLite a wrong pointer:

1. The library is the one the module already loaded: looked up through the
   file of the extension module that carries it, with ``RTLD_NOLOAD`` (never
   loading anything new), and its ``sqlite3_libversion()`` must be the
   version the module reports.
2. The handle accessor (on CPython, the ``sqlite3 *`` right after the object
   header, as all of these modules keep it) is checked against a live
   connection of the module's own class: what the library reads through it
   must agree with what the module reports (and, for APSW, with its
   documented ``Connection.sqlite3pointer()``).
3. Nothing else: the closed and thread checks are the module's own, through
   its cheapest public call that runs them.

Everything that differs between CPython and PyPy lives here too. On PyPy only
the stdlib's module is supported; its connection's handle is ``conn._db``.
"""

from __future__ import annotations

import copy
import importlib.machinery
import platform
import sys
from typing import Any, Callable

from sqlitebck._errors import sqlite_error
from sqlitebck._sqlitebck import ffi, lib

PYPY = platform.python_implementation() == "PyPy"

_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


class BindingError(Exception):
    """Why a binding cannot be used (turned into ImportError or TypeError)."""


def _pypy_ref(conn: Any) -> int:
    """PyPy: a connection's reference is its ``sqlite3 *`` itself; 0 once it
    is closed (by another thread since it was checked), as the C core
    expects of a closed connection."""
    db = conn._db
    return 0 if db is None else int(ffi.cast("uintptr_t", db))


def type_name(cls: type) -> str:
    """``module.QualName`` of ``cls``, as error messages name a type."""
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return qualname if module in (None, "builtins") else f"{module}.{qualname}"


class Binding:
    """One module whose connections sqlitebck accepts, and its SQLite.

    ``name`` is the module users import; ``module``, the module that holds
    its DB-API names (``connect``, the exception classes, ``sqlite_version``;
    for APSW, ``apsw`` itself); ``carrier``, the name of the extension module
    whose file holds or links the library. Once :meth:`ready`, ``library`` is
    the index of the library's table in the C core, ``connection`` the
    module's base connection class, ``check(conn)`` runs the module's own
    closed and thread checks, ``ref(conn)`` gives the C core's reference to
    ``conn``, and ``paths`` is the binding that opens paths beside one of its
    connections (None: none can).
    """

    __slots__ = (
        "carrier",
        "check",
        "class_module",
        "connection",
        "dbapi",
        "failure",
        "library",
        "module",
        "module_name",
        "name",
        "paths",
        "ref",
    )

    def __init__(
        self,
        name: str,
        module_name: str,
        carrier: str,
        dbapi: bool,
        class_module: str | None = None,
    ) -> None:
        self.name = name
        self.module_name = module_name
        self.carrier = carrier
        # The module that defines the connection class (the carrier, but for
        # PyPy's sqlite3, whose class is pure Python over _sqlite3_cffi).
        self.class_module = class_module or carrier
        self.dbapi = dbapi
        self.module: Any = None
        self.connection: type | None = None
        self.library = -1
        self.failure: str | None = None
        self.check: Callable[[Any], object] = _unready
        self.ref: Callable[[Any], int] = id
        self.paths: Binding | None = None

    def __repr__(self) -> str:
        return f"<sqlitebck binding {self.name}, library {self.library}>"

    # -- finding the module of a connection ------------------------------------

    def loaded_class(self) -> type | None:
        """The module's connection class if the module is already imported
        and its class is the extension module's own; else None. Nothing is
        imported here."""
        if self.connection is not None:
            return self.connection
        module = sys.modules.get(self.module_name)
        definer = sys.modules.get(self.class_module)
        cls = getattr(module, "Connection", None)
        if not isinstance(cls, type) or definer is None:
            return None
        # The class must be the one the extension module defines (a pure
        # Python class of the same name would have no handle to read).
        if getattr(definer, "Connection", None) is not cls:
            return None
        return cls

    # -- making it ready ------------------------------------------------------

    def ready(self) -> Binding:
        """Bind and verify on first use; raise TypeError if it cannot be."""
        if self.library < 0:
            if self.failure is None:
                try:
                    self._prepare()
                except BindingError as e:
                    self.failure = str(e)
            if self.failure is not None:
                raise TypeError(self.failure)
        return self

    def _prepare(self) -> None:
        cls = self.loaded_class()
        if cls is None:  # pragma: no cover - only called for loaded modules
            raise BindingError(f"{self.name} is not imported")
        module = sys.modules[self.module_name]
        self.module = module
        library = self._bind(module)
        ref: Callable[[Any], int] = _pypy_ref if PYPY else id
        _verify(self, cls, library, ref)
        self.check = _checker(cls, self.dbapi)
        self.ref = ref
        self.connection = cls
        self.library = library  # published last: ready from here on
        if self.dbapi:
            self.paths = self
        elif STDLIB.library == library:
            # APSW on the very SQLite of the sqlite3 module (as Debian's
            # python3-apsw is): paths beside it are opened by the sqlite3
            # module, on that one library.
            self.paths = STDLIB

    def version(self, module: Any) -> str:
        """The SQLite version the module reports."""
        if self.dbapi:
            return str(module.sqlite_version)
        for name in ("sqlite_lib_version", "sqlitelibversion"):
            if hasattr(module, name):
                return str(getattr(module, name)())
        return "unknown"

    def _library_paths(self) -> list[str | None]:
        """Where to look for the loaded SQLite, best first; None: the program."""
        carrier = sys.modules.get(self.carrier)
        path = getattr(carrier, "__file__", None)
        paths: list[str | None] = []
        if self is STDLIB and sys.platform == "win32":
            paths.append("sqlite3.dll")  # _sqlite3.pyd re-exports none of SQLite
        if isinstance(path, str) and (PYPY or path.endswith(_EXTENSION_SUFFIXES)):
            paths.append(path)
        if self is STDLIB:
            paths.append(None)  # a _sqlite3 built into the interpreter
        return paths

    def _bind(self, module: Any) -> int:
        expected = self.version(module)
        err = ffi.new("char[]", 512)
        index = ffi.new("int *")
        tried = []
        for path in self._library_paths():
            encoded = ffi.NULL if path is None else path.encode()
            if lib.sqlitebck_bind(encoded, index, err, len(err)) == 0:
                version = ffi.string(lib.sqlitebck_libversion(index[0])).decode()
                if version == expected:
                    return int(index[0])
                tried.append(
                    f"{path or 'the main program'} has SQLite {version}, but "
                    f"{self.name} reports {expected}"
                )
            else:
                tried.append(ffi.string(err).decode(errors="replace"))
        if not tried:
            tried.append(f"{self.carrier} is not a loaded extension module")
        how = (
            " (a SQLite built into a module without exporting its functions, "
            "as in APSW's wheels from PyPI, cannot be called from outside it; "
            "APSW's own Connection.backup copies between its connections)"
            if not self.dbapi
            else ""
        )
        raise BindingError(
            f"sqlitebck cannot call the SQLite library of {self.name}: "
            + "; ".join(tried)
            + how
        )

    # -- errors in the module's own classes -----------------------------------

    def error(self, code: int, message: str) -> Exception:
        """The exception the module would raise for SQLite result ``code``."""
        hint = _HINTS.get(message)
        if hint is not None:
            message = f"{message}: {hint}"
        if self.dbapi:
            return sqlite_error(code, message, self.module)
        exc: Exception = self.module.exceptionfor(code)
        exc.args = (message,)
        return exc

    def usage(self, message: str) -> Exception:
        """The module's exception for a connection used the wrong way."""
        if self.dbapi:
            return self.module.ProgrammingError(message)  # type: ignore[no-any-return]
        return self.module.MisuseError(message)  # type: ignore[no-any-return]


# What SQLite's own words for a refusal leave unsaid.
_HINTS = {
    # The copy's wait for a lock timed out. A connection in another process
    # that set PRAGMA locking_mode=EXCLUSIVE keeps its lock until it closes;
    # it cannot be told apart from a long transaction without opening the
    # file, which would drop this process's own POSIX locks on it.
    "database is locked": (
        "another connection held a lock on it for the whole timeout: a long "
        "transaction, or a connection that set PRAGMA locking_mode=EXCLUSIVE "
        "(which keeps its lock until it is closed, so that no other "
        "connection, in any process, can read or write it meanwhile); copy "
        "once that connection is closed, or with a longer timeout"
    ),
    # SQLCipher refuses a backup between an encrypted and a plain database.
    "backup is not supported with encrypted databases": (
        "SQLCipher copies only between two encrypted (keyed) databases, or "
        "two plain ones; to make a plain copy of an encrypted database (or "
        "the reverse), ATTACH the other with KEY '' (or its key) and run "
        "SELECT sqlcipher_export('its name') on the encrypted connection"
    ),
}


def _unready(conn: Any) -> None:  # pragma: no cover - replaced by ready()
    raise TypeError("binding used before it is ready")


def _checker(cls: type, dbapi: bool) -> Callable[[Any], object]:
    """The module's cheapest public call that runs its closed and thread
    checks (and does nothing else), taken from the base class so that a
    subclass cannot add side effects: ``getlimit`` (Python 3.11+), else
    ``cursor`` (which also makes a cursor, dropped at once); on PyPy, its
    module's own ``_check_thread`` and ``_check_closed``; APSW checks no
    thread, and ``sqlite3pointer`` refuses a closed connection."""
    if not dbapi:
        return cls.sqlite3pointer  # type: ignore[attr-defined,no-any-return]
    thread = getattr(cls, "_check_thread", None)
    closed = getattr(cls, "_check_closed", None)
    if PYPY and thread is not None and closed is not None:
        # PyPy's sqlite3 module is Python: its own two checks, which every
        # public method runs first, cost a fraction of any such method.

        def check_pypy(conn: Any) -> object:
            thread(conn)
            return closed(conn)

        return check_pypy
    getlimit = getattr(cls, "getlimit", None)
    if getlimit is not None:

        def check(conn: Any) -> object:
            return getlimit(conn, 0)

        return check
    return cls.cursor  # type: ignore[attr-defined,no-any-return]


def _verify(
    binding: Binding, cls: type, library: int, ref: Callable[[Any], int]
) -> None:
    """Check the handle accessor against a live connection of class ``cls``;
    BindingError if what library ``library`` reads through it disagrees with
    what the module reports."""
    kw = {"isolation_level": None} if binding.dbapi else {}
    probe: Any = cls(":memory:", **kw)
    try:
        conn = ref(probe)
        handle = lib.sqlitebck_handle(conn)
        if handle == ffi.NULL:
            raise BindingError("connection handle is NULL")
        # APSW documents its handle: the one read must be that one.
        if not binding.dbapi and (
            int(ffi.cast("uintptr_t", handle)) != probe.sqlite3pointer()
        ):
            raise BindingError("the handle is not Connection.sqlite3pointer()")
        probe.execute("CREATE TABLE t(x)")
        for i in range(7):
            probe.execute("INSERT INTO t VALUES (?)", (i,))
        total = probe.total_changes if binding.dbapi else probe.totalchanges()
        if lib.sqlitebck_total_changes(library, conn) != total:
            raise BindingError("total_changes disagrees")
        probe.execute("BEGIN")
        in_txn = lib.sqlitebck_get_autocommit(library, conn) == 0
        probe.execute("COMMIT")
        out_txn = lib.sqlitebck_get_autocommit(library, conn) == 1
        if not (in_txn and out_txn):
            raise BindingError("the autocommit flag disagrees")
    except BindingError as e:
        raise BindingError(
            f"sqlitebck does not recognise the layout of {type_name(cls)} "
            f"on this Python ({platform.python_implementation()} "
            f"{platform.python_version()}): {e}; refusing to use it"
        ) from None
    finally:
        probe.close()


# The bindings sqlitebck knows, in the order error messages list them.
STDLIB = Binding(
    "sqlite3",
    "sqlite3",
    "_sqlite3_cffi" if PYPY else "_sqlite3",
    dbapi=True,
    class_module="_sqlite3",
)
_OTHERS = (
    ()
    if PYPY
    else (
        Binding("pysqlite3", "pysqlite3.dbapi2", "pysqlite3._sqlite3", dbapi=True),
        Binding("sqlean", "sqlean.dbapi2", "sqlean._sqlite3", dbapi=True),
        Binding("sqlcipher3", "sqlcipher3.dbapi2", "sqlcipher3._sqlite3", dbapi=True),
        Binding("apsw", "apsw", "apsw", dbapi=False),
    )
)
_NAMES = [b.name for b in (STDLIB, *_OTHERS)]
ACCEPTED = (
    "a connection of "
    + (
        " or ".join(_NAMES)
        if len(_NAMES) < 3
        else ", ".join(_NAMES[:-1]) + " or " + _NAMES[-1]
    )
    + " (or of a subclass), a framework object that wraps one (a SQLAlchemy "
    "Engine, Connection or Session, a Django connection, a sqlite-utils or "
    "peewee database), or a path (str, bytes or os.PathLike)"
)

# The binding of each connection class seen so far (subclasses included).
_by_type: dict[type, Binding] = {}


def binding_of(obj: object) -> Binding | None:
    """The binding of connection ``obj``, ready; None if ``obj`` is no
    connection of a module sqlitebck knows. TypeError if its binding cannot
    be used."""
    t = type(obj)
    b = _by_type.get(t)
    if b is None:
        for candidate in (STDLIB, *_OTHERS):
            cls = candidate.loaded_class()
            if cls is not None and issubclass(t, cls):
                b = candidate
                break
        else:
            return None
        _by_type[t] = b
    if b.library < 0:
        try:
            b.ready()
        except TypeError as e:
            raise TypeError(f"{type_name(t)} cannot be copied: {e}") from None
    return b


def parked(b: Binding) -> Binding:
    """``b`` for a connection whose own thread is parked while another
    thread copies with it (see ``_aio``): its module's closed check only,
    without the thread check, which would refuse the other thread. Only a
    DB-API module's ``in_transaction`` is known to check that alone."""
    if not b.dbapi:  # pragma: no cover - runners hold sqlite3 connections
        raise TypeError(f"a {b.name} connection cannot be parked")
    lent = copy.copy(b)
    closed_check = b.connection.in_transaction.__get__  # type: ignore[union-attr]
    lent.check = closed_check
    return lent


def same_library(sb: Binding, source: object, db: Binding, dest: object) -> None:
    """TypeError unless both ends are connections of one SQLite library."""
    if sb.library != db.library:
        raise TypeError(
            f"source is a {type_name(type(source))} and dest a "
            f"{type_name(type(dest))}: {sb.name} and {db.name} use two "
            "different SQLite libraries (SQLite "
            f"{sb.version(sb.module)} and {db.version(db.module)}), and "
            "neither may be handed the other's connection; open both ends "
            "with the same module, or pass one of them as a path"
        )


def for_paths(connected: Binding | None, conn: object) -> Binding:
    """The binding that opens the path ends of a copy whose other end is a
    connection of binding ``connected`` (None: both ends are paths)."""
    if connected is None:
        return STDLIB
    if connected.paths is None:
        raise TypeError(
            f"a path cannot be copied to or from a {type_name(type(conn))}: "
            f"{connected.name} uses its own SQLite library, which sqlitebck "
            f"cannot open files with; open the file with {connected.name} and "
            "pass the connection"
        )
    return connected.paths


# Where the C core finds a connection's handle: the same for every binding
# (see _verify), the object header's size on CPython, the handle itself on PyPy.
lib.sqlitebck_set_handle_offset(0 if PYPY else object.__basicsize__)
try:
    STDLIB.ready()
except TypeError as e:
    raise ImportError(
        str(e).replace("sqlitebck cannot call", "sqlitebck could not find")
    ) from None
