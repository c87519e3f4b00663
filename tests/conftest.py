"""Fixtures the tests share; the helpers they use are in helpers.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from helpers import fill


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
