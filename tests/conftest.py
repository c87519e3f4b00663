"""Fixtures the tests share; the helpers they use are in helpers.py.

Every connection a test opens is closed by the test (``connect`` below does it
for you): pyproject.toml turns ResourceWarning ("unclosed database") into an
error, and ``collect_garbage`` makes such a leak fail the test that caused it.
"""

from __future__ import annotations

import gc
import os
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import fill

import sqlitebck


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


@pytest.fixture
def connect() -> Iterator[Callable[..., sqlite3.Connection]]:
    """``sqlite3.connect``, with every connection it opened closed after the test."""
    opened: list[sqlite3.Connection] = []

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = sqlite3.connect(*args, **kwargs)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def src() -> Iterator[sqlite3.Connection]:
    """An in-memory source with a few pages of data."""
    conn = sqlite3.connect(":memory:")
    fill(conn)
    yield conn
    conn.close()


@pytest.fixture
def dst() -> Iterator[sqlite3.Connection]:
    """An empty in-memory destination."""
    conn = sqlite3.connect(":memory:")
    yield conn
    conn.close()


@pytest.fixture(params=[True, False], ids=["shims", "sqlite-vfs"])
def shims(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run a test twice: files the package opens itself go through the VFS
    shims of csrc/vfs.c, then through SQLite's own VFS."""
    import sqlitebck._endpoints

    monkeypatch.setattr(sqlitebck._endpoints, "USE_SHIMS", request.param)
    return bool(request.param)
