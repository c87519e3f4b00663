"""Fixtures the tests share; the helpers they use are in helpers.py.

Every connection a test opens is closed by the test (``connect`` below does it
for you): pyproject.toml turns ResourceWarning ("unclosed database") into an
error, and ``collect_garbage`` makes such a leak fail the test that caused it.
"""

from __future__ import annotations

import gc
import importlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from helpers import Connect, fill

import sqlitebck
from sqlitebck import _binding

# The SQLite libraries a test module that sets ``EVERY_LIBRARY = True`` runs
# on: its ``sqlite`` fixture (and so ``connect``, ``src`` and ``dst``) is the
# DB-API module of each in turn. Each module brings its own SQLite library:
# the interpreter's (3.40 on Debian 12, 3.53 on Debian unstable), and those
# pysqlite3-binary and sqlean.py bundle (3.5x). An absent one is skipped.
LIBRARIES = {
    "sqlite3": "sqlite3",
    "pysqlite3": "pysqlite3.dbapi2",
    "sqlean": "sqlean.dbapi2",
}


def pytest_report_header() -> str:
    where = os.path.dirname(sqlitebck.__file__)
    return f"sqlitebck {sqlitebck.__version__} from {where}"


def pytest_sessionstart(session: pytest.Session) -> None:
    # The nox test sessions set this: the suite must test the installed wheel,
    # not the source tree.
    expected = os.environ.get("SQLITEBCK_EXPECT_INSTALLED_UNDER")
    if expected and not os.path.realpath(sqlitebck.__file__).startswith(
        os.path.realpath(expected) + os.sep
    ):
        raise pytest.UsageError(
            f"sqlitebck was imported from {sqlitebck.__file__}, not from {expected}"
        )


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """After each test, collect its garbage: an unclosed connection (freed by
    the cyclic collector only) then warns, as an error, during this test."""
    yield
    gc.collect()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if getattr(metafunc.module, "EVERY_LIBRARY", False) and (
        "sqlite" in metafunc.fixturenames
    ):
        metafunc.parametrize("sqlite", list(LIBRARIES), indirect=True)


@pytest.fixture
def sqlite(request: pytest.FixtureRequest) -> ModuleType:
    """The DB-API module whose connections the test copies: the sqlite3
    module, or in a module with ``EVERY_LIBRARY = True`` each of LIBRARIES."""
    name = getattr(request, "param", "sqlite3")
    if name == "sqlite3":
        return sqlite3
    if _binding.PYPY:
        pytest.skip(f"{name} is a CPython extension")
    try:
        return importlib.import_module(LIBRARIES[name])
    except ImportError:
        pytest.skip(f"{name} is not installed (no wheel for this platform)")


@pytest.fixture
def connect(sqlite: ModuleType) -> Iterator[Callable[..., sqlite3.Connection]]:
    """``sqlite.connect``, with every connection it opened closed after the test."""
    opened: list[sqlite3.Connection] = []

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        if args and isinstance(args[0], os.PathLike):
            args = (os.fspath(args[0]), *args[1:])  # pysqlite3 takes str only
        conn: sqlite3.Connection = sqlite.connect(*args, **kwargs)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def src(connect: Connect) -> sqlite3.Connection:
    """An in-memory source with a few pages of data."""
    conn = connect(":memory:")
    fill(conn)
    return conn


@pytest.fixture
def dst(connect: Connect) -> sqlite3.Connection:
    """An empty in-memory destination."""
    return connect(":memory:")


@pytest.fixture(params=[True, False], ids=["shims", "sqlite-vfs"])
def shims(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run a test twice: files the package opens itself go through the VFS
    shims of csrc/vfs.c, then through SQLite's own VFS."""
    import sqlitebck._endpoints

    monkeypatch.setattr(sqlitebck._endpoints, "USE_SHIMS", request.param)
    return bool(request.param)
