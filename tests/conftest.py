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
