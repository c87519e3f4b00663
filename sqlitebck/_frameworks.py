"""The connection objects that frameworks hand out, as ends of a copy.

Applications rarely hold a bare DB-API connection: SQLAlchemy, Django and
sqlite-utils wrap theirs. The wrappers below are recognised by the module and
name of a class in the object's type's MRO (so subclasses are recognised
too), without importing any framework, and replaced by the DB-API connection
they wrap, which is then checked like any other (binding, thread, closed).
The list is explicit: no other object's attributes are guessed at.

====================================================  ==========================
object                                                its DB-API connection
====================================================  ==========================
SQLAlchemy ``Connection`` (``engine.connect()``)      ``.connection.driver_connection``
SQLAlchemy pooled connection (``raw_connection()``)   ``.driver_connection``
Django ``connection`` / ``connections[alias]``        ``.connection``, opened first
sqlite-utils ``Database``                             ``.conn``
====================================================  ==========================

An aiosqlite ``Connection`` runs its connection on a thread of its own, so it
is an end of :func:`sqlitebck.acopy` only.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Callable, Protocol, Union


class PooledConnection(Protocol):
    """A SQLAlchemy pooled connection (``engine.raw_connection()``)."""

    @property
    def driver_connection(self) -> Any: ...


class SQLAlchemyConnection(Protocol):
    """A SQLAlchemy ``Connection`` (``engine.connect()``)."""

    @property
    def connection(self) -> PooledConnection: ...


class DjangoConnection(Protocol):
    """A Django ``DatabaseWrapper`` (``django.db.connection``, for one)."""

    connection: Any

    def ensure_connection(self) -> None: ...


class Database(Protocol):
    """A sqlite-utils ``Database``."""

    @property
    def conn(self) -> Any: ...


class AioConnection(Protocol):
    """An aiosqlite ``Connection`` (an end of :func:`sqlitebck.acopy` only)."""

    def _execute(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]: ...


#: The framework objects that :func:`sqlitebck.copy` takes, for type checkers;
#: at run time only those listed in this module's table are accepted.
FrameworkConnection = Union[
    PooledConnection, SQLAlchemyConnection, DjangoConnection, Database
]


def _sqlalchemy_connection(obj: Any) -> object:
    return obj.connection.driver_connection


def _sqlalchemy_pooled(obj: Any) -> object:
    return obj.driver_connection


def _django(obj: Any) -> object:
    obj.ensure_connection()  # Django opens its connection lazily
    return obj.connection


def _sqlite_utils(obj: Any) -> object:
    return obj.conn


def _aiosqlite(obj: Any) -> object:
    raise TypeError(
        "an aiosqlite.Connection runs on its own thread: copy with "
        "'await sqlitebck.acopy(...)'"
    )


_KNOWN: dict[tuple[str, str], Callable[[Any], object]] = {
    ("sqlalchemy.engine.base", "Connection"): _sqlalchemy_connection,
    ("sqlalchemy.pool.base", "PoolProxiedConnection"): _sqlalchemy_pooled,
    ("django.db.backends.base.base", "BaseDatabaseWrapper"): _django,
    ("django.utils.connection", "ConnectionProxy"): _django,
    ("sqlite_utils.db", "Database"): _sqlite_utils,
    ("aiosqlite.core", "Connection"): _aiosqlite,
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


def connection_of(obj: object) -> object:
    """The DB-API connection that framework object ``obj`` wraps; any other
    object as it is.

    >>> import sqlite3
    >>> conn = sqlite3.connect(":memory:")
    >>> connection_of(conn) is conn
    True
    >>> conn.close()
    """
    name = framework_of(obj)
    if name is None:
        return obj
    module, _, qualname = name.rpartition(".")
    inner = _KNOWN[module, qualname](obj)
    if inner is None:
        raise TypeError(
            f"{type(obj).__module__}.{type(obj).__qualname__} holds no open "
            "connection (closed or invalidated)"
        )
    return inner
