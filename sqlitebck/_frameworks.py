"""The objects that frameworks hand out, as ends of a copy.

Applications rarely hold a bare DB-API connection: SQLAlchemy, Django,
sqlite-utils, peewee and Datasette wrap theirs. The wrappers below are
recognised by the module and name of a class in the object's type's MRO (so
subclasses are recognised too), without importing any framework, and
replaced by the DB-API connection they wrap, which is then checked like any
other (binding, thread, closed). The list is explicit: no other object's
attributes are guessed at.

=================================================  ==============================
object                                             what the copy uses
=================================================  ==============================
SQLAlchemy ``Engine`` (Flask-SQLAlchemy            a pooled connection, checked
``db.engine``, or ``db`` itself)                   out for the copy and returned
SQLAlchemy ``Connection`` (``engine.connect()``)   ``.connection.driver_connection``
SQLAlchemy pooled connection                       ``.driver_connection``
(``raw_connection()``), ``AdaptedConnection``
SQLAlchemy ORM ``Session`` (SQLModel's, and        ``session.connection()``, in
``scoped_session``: Flask-SQLAlchemy's             the session's transaction
``db.session``)
Django ``connection`` / ``connections[alias]``     ``.connection``, opened first
sqlite-utils ``Database``                          ``.conn``
peewee ``SqliteDatabase``                          ``.connection()`` of this thread
                                                   (opened for the copy if closed)
=================================================  ==============================

:func:`sqlitebck.acopy` only (they run on threads of their own, or are
asyncio's): an aiosqlite ``Connection`` (the copy runs on its thread),
SQLAlchemy's ``AsyncEngine`` and ``AsyncConnection`` (through the aiosqlite
connection they drive), a Datasette ``Database`` (on Datasette's threads).
Everything else in the table is unwrapped on the thread of the copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, Callable, NamedTuple, Protocol, Union

# -- what type checkers are told ----------------------------------------------


class PooledConnection(Protocol):
    """A SQLAlchemy pooled connection (``engine.raw_connection()``), or an
    ``AdaptedConnection``."""

    @property
    def driver_connection(self) -> Any: ...


class SQLAlchemyConnection(Protocol):
    """A SQLAlchemy ``Connection`` (``engine.connect()``; not an
    ``AsyncConnection``, whose ``get_isolation_level`` is a coroutine)."""

    @property
    def connection(self) -> PooledConnection: ...

    def get_isolation_level(self) -> str: ...


class SQLAlchemyEngine(Protocol):
    """A SQLAlchemy ``Engine`` (not an ``AsyncEngine``, whose
    ``raw_connection`` is a coroutine)."""

    def raw_connection(self) -> PooledConnection: ...


class SQLAlchemySession(Protocol):
    """A SQLAlchemy ORM ``Session`` or ``scoped_session`` (not an
    ``AsyncSession``, whose ``connection`` is a coroutine, nor an
    ``AsyncConnection``, which has no ``get_bind``)."""

    def connection(self) -> SQLAlchemyConnection: ...

    def get_bind(self) -> Any: ...


class DjangoConnection(Protocol):
    """A Django ``DatabaseWrapper`` (``django.db.connection``, for one)."""

    connection: Any

    def ensure_connection(self) -> None: ...


class Database(Protocol):
    """A sqlite-utils ``Database``."""

    @property
    def conn(self) -> Any: ...


class PeeweeDatabase(Protocol):
    """A peewee ``SqliteDatabase``."""

    def connection(self) -> Any: ...

    def is_closed(self) -> bool: ...


class AioConnection(Protocol):
    """An aiosqlite ``Connection`` (an end of :func:`sqlitebck.acopy` only)."""

    def _execute(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]: ...


class AsyncConnection(Protocol):
    """A SQLAlchemy ``AsyncConnection`` (:func:`sqlitebck.acopy` only)."""

    async def get_raw_connection(self) -> PooledConnection: ...


class AsyncEngine(Protocol):
    """A SQLAlchemy ``AsyncEngine`` (:func:`sqlitebck.acopy` only)."""

    async def raw_connection(self) -> PooledConnection: ...


class DatasetteDatabase(Protocol):
    """A Datasette ``Database`` (:func:`sqlitebck.acopy` only)."""

    async def execute_fn(self, fn: Callable[[Any], Any]) -> Any: ...

    async def execute_write_fn(self, fn: Callable[[Any], Any]) -> Any: ...


#: The framework objects that :func:`sqlitebck.copy` takes, for type checkers;
#: at run time only those listed in this module's table are accepted.
FrameworkConnection = Union[
    PooledConnection,
    SQLAlchemyConnection,
    SQLAlchemyEngine,
    SQLAlchemySession,
    DjangoConnection,
    Database,
    PeeweeDatabase,
]
#: What :func:`sqlitebck.acopy` takes beyond those.
AsyncFrameworkConnection = Union[
    AioConnection, AsyncConnection, AsyncEngine, DatasetteDatabase
]

# -- the table ------------------------------------------------------------------

# How an object is made into the connection it wraps:
SYNC = 0  # fn(obj) gives it, on any thread
CHECKOUT = 1  # fn(obj, stack) gives it; stack gives it back after the copy
ASYNC = 2  # acopy only: await fn(obj, async_stack) on the loop gives it
RUNNER = 3  # acopy only: the copy runs on the object's own thread


class Kind(NamedTuple):
    how: int
    fn: Callable[..., Any] | None
    #: What works instead, for a refusal: "use X".
    instead: str
    #: What to add to a DB-API error about a transaction open on it.
    transaction: str = ""


def _sqlalchemy_connection(obj: Any) -> object:
    return obj.connection.driver_connection


def _driver(obj: Any) -> object:
    return obj.driver_connection


def _engine(obj: Any, stack: contextlib.ExitStack) -> object:
    pooled = obj.raw_connection()
    stack.callback(pooled.close)  # back to the pool, also on error
    return pooled


def _flask_sqlalchemy(obj: Any) -> object:
    return obj.engine


def _session(obj: Any) -> object:
    return obj.connection()


def _django(obj: Any) -> object:
    obj.ensure_connection()  # Django opens its connection lazily
    return obj.connection


def _sqlite_utils(obj: Any) -> object:
    return obj.conn


def _peewee(obj: Any, stack: contextlib.ExitStack) -> object:
    if obj.is_closed():  # peewee connects per thread, on demand
        obj.connect()
        stack.callback(obj.close)
    return obj.connection()


async def _async_engine(obj: Any, stack: contextlib.AsyncExitStack) -> object:
    return await stack.enter_async_context(obj.connect())


async def _async_connection(obj: Any, stack: contextlib.AsyncExitStack) -> object:
    return (await obj.get_raw_connection()).driver_connection


_SESSION_RULES = (
    "; a SQLAlchemy Session holds a transaction from its first statement "
    "(autobegin) until session.commit(), session.rollback() or "
    "session.close(), and the copy uses that transaction's connection: "
    "finish the session's transaction first"
)

_KNOWN: dict[tuple[str, str], Kind] = {
    ("sqlalchemy.engine.base", "Engine"): Kind(
        CHECKOUT, _engine, "pass engine.connect() (and close it after)"
    ),
    ("sqlalchemy.engine.base", "Connection"): Kind(SYNC, _sqlalchemy_connection, ""),
    ("sqlalchemy.pool.base", "PoolProxiedConnection"): Kind(SYNC, _driver, ""),
    ("sqlalchemy.engine.interfaces", "AdaptedConnection"): Kind(SYNC, _driver, ""),
    ("sqlalchemy.orm.session", "Session"): Kind(
        SYNC, _session, "", transaction=_SESSION_RULES
    ),
    ("sqlalchemy.orm.scoping", "scoped_session"): Kind(
        SYNC, _session, "", transaction=_SESSION_RULES
    ),
    ("flask_sqlalchemy.extension", "SQLAlchemy"): Kind(SYNC, _flask_sqlalchemy, ""),
    ("django.db.backends.base.base", "BaseDatabaseWrapper"): Kind(SYNC, _django, ""),
    ("django.utils.connection", "ConnectionProxy"): Kind(SYNC, _django, ""),
    ("sqlite_utils.db", "Database"): Kind(SYNC, _sqlite_utils, ""),
    ("peewee", "SqliteDatabase"): Kind(
        CHECKOUT, _peewee, "call db.connect() first and pass db.connection()"
    ),
    # peewee's subclasses whose connection belongs to another thread.
    ("playhouse.sqliteq", "SqliteQueueDatabase"): Kind(
        -1,
        None,
        "its connection belongs to its writer thread: pass db.database (the path)",
    ),
    ("playhouse.pwasyncio", "AsyncSqliteDatabase"): Kind(
        -1,
        None,
        "its connection belongs to its own thread: pass db.database (the path)",
    ),
    ("aiosqlite.core", "Connection"): Kind(
        RUNNER,
        None,
        "it runs on a thread of its own: copy with "
        "'await sqlitebck.acopy(...)', or pass the database's path",
    ),
    ("sqlalchemy.ext.asyncio.engine", "AsyncEngine"): Kind(
        ASYNC,
        _async_engine,
        "it is asyncio's: copy with 'await sqlitebck.acopy(engine, ...)'",
    ),
    ("sqlalchemy.ext.asyncio.engine", "AsyncConnection"): Kind(
        ASYNC,
        _async_connection,
        "it is asyncio's: copy with "
        "'await sqlitebck.acopy(conn, ...)', which uses "
        "(await conn.get_raw_connection()).driver_connection",
    ),
    ("datasette.database", "Database"): Kind(
        RUNNER,
        None,
        "it runs its connections on Datasette's threads: copy "
        "with 'await sqlitebck.acopy(db, ...)', or pass db.path",
    ),
}


def framework_of(obj: object) -> str | None:
    """The name of the framework class ``obj`` is recognised as, or None.

    >>> framework_of(object()) is None
    True
    """
    for cls in type(obj).__mro__:
        key = (cls.__module__, cls.__qualname__)
        if key in _KNOWN:
            return ".".join(key)
    return None


def kind_of(obj: object) -> Kind | None:
    """How framework object ``obj`` is unwrapped; None for any other object."""
    name = framework_of(obj)
    if name is None:
        return None
    module, _, qualname = name.rpartition(".")
    return _KNOWN[module, qualname]


def _type(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def refusal(obj: object, why: str) -> TypeError:
    """The TypeError for framework object ``obj``, which cannot be used here."""
    return TypeError(f"a {_type(obj)} cannot be copied here: {why}")


def _checked(obj: object, inner: object) -> object:
    if inner is None:
        raise TypeError(
            f"{_type(obj)} holds no open connection (closed or invalidated)"
        )
    return inner


def connection_of(obj: object, stack: contextlib.ExitStack | None = None) -> object:
    """The DB-API connection that framework object ``obj`` wraps; any other
    object as it is. Objects that lend a connection for the copy only (an
    ``Engine``) need ``stack``, which gives it back; without it they are
    refused, as are those of :func:`sqlitebck.acopy` only.

    >>> import sqlite3
    >>> conn = sqlite3.connect(":memory:")
    >>> connection_of(conn) is conn
    True
    >>> conn.close()
    """
    kind = kind_of(obj)
    while kind is not None:
        if kind.how == SYNC and kind.fn is not None:
            inner = kind.fn(obj)
        elif kind.how == CHECKOUT and kind.fn is not None:
            if stack is None:
                raise refusal(
                    obj, "Backup keeps its ends until it is finished: " + kind.instead
                )
            inner = kind.fn(obj, stack)
        else:
            raise refusal(obj, kind.instead)
        obj = _checked(obj, inner)
        kind = kind_of(obj)
    return obj


class Held:
    """The DB-API connections behind ``source`` and ``dest``, for one copy:
    ``with Held(source, dest) as ends: copy(ends.source, ends.dest)``.
    Connections lent for the copy (an ``Engine``'s) are given back as the
    block ends, whatever happens; a DB-API error about a transaction open on
    an end gets the framework's rules added to its message."""

    __slots__ = ("_ends", "_stack", "dest", "source")

    def __init__(self, source: object, dest: object) -> None:
        self._ends = (source, dest)
        self._stack = contextlib.ExitStack()
        self.source: object = source
        self.dest: object = dest

    def __enter__(self) -> Held:
        stack = self._stack.__enter__()
        try:
            self.source = connection_of(self.source, stack)
            self.dest = connection_of(self.dest, stack)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is not None and hasattr(error, "sqlite_errorcode"):
            explain(error, *self._ends)
        self._stack.__exit__(kind, error, tb)  # its callbacks suppress nothing


def explain(error: BaseException, *ends: object) -> None:
    """Add what blocks the copy, in the terms of the frameworks of ``ends``,
    to DB-API ``error`` if it is about a transaction open on one of them."""
    if not error.args or not isinstance(error.args[0], str):
        return
    message: str = error.args[0]
    if "transaction open" not in message:
        return
    for end in ends:
        kind = kind_of(end)
        if kind is None:
            continue
        django = _django_transaction(end)
        if django:
            message = django
        elif kind.transaction:
            message += kind.transaction
        else:
            continue
        error.args = (message, *error.args[1:])
        return


def _django_transaction(end: object) -> str:
    """What a Django connection's atomic() block holds, if it is in one."""
    if not getattr(end, "in_atomic_block", False):
        return ""
    mode = getattr(end, "transaction_mode", None)
    alias = getattr(end, "alias", "?")
    if mode in ("IMMEDIATE", "EXCLUSIVE"):
        began = (
            f"which began with BEGIN {mode} (OPTIONS transaction_mode="
            f"{mode!r}): SQLite's write lock is held from its start, though "
            "nothing may have been read or written yet"
        )
    else:
        began = "which holds a transaction once it has read or written"
    return (
        f"Django connection {alias!r} is inside transaction.atomic(), {began}; "
        "a copy cannot run inside a transaction of either end: copy outside "
        "the atomic() block"
    )


async def loop_side(obj: object, stack: contextlib.AsyncExitStack) -> object:
    """For :func:`sqlitebck.acopy`, on the event loop: ``obj`` with its
    asyncio wrappers removed (an ``AsyncEngine``'s connection is closed by
    ``stack``), down to an aiosqlite connection (or whatever else they
    wrap). Other framework objects are left to :class:`Held`, on the copy's
    thread."""
    kind = kind_of(obj)
    while kind is not None:
        if kind.how == ASYNC and kind.fn is not None:
            inner = await kind.fn(obj, stack)
        elif kind.fn is _driver or kind.fn is _sqlalchemy_connection:
            # SQLAlchemy's wrappers of an aiosqlite connection, for one.
            inner = kind.fn(obj)
        else:
            return obj
        obj = _checked(obj, inner)
        kind = kind_of(obj)
    return obj


def is_runner(obj: object) -> bool:
    """True if ``obj`` runs its connection on a thread of its own."""
    kind = kind_of(obj)
    return kind is not None and kind.how == RUNNER
