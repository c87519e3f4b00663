"""Online copies under a real writer process: they finish, and are consistent;
on every SQLite library at hand (``EVERY_LIBRARY``, see conftest.py)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from helpers import Connect, integrity, python

import sqlitebck

EVERY_LIBRARY = True
ACCOUNTS = 50
TOTAL = ACCOUNTS * 1000

# Moves money between accounts, one transaction at a time, about every
# millisecond, until the stop file appears (or 60 s have passed).
WRITER = """
    import os, random, sqlite3, time
    conn = sqlite3.connect({path!r}, isolation_level=None, timeout=60)
    conn.execute("PRAGMA synchronous=OFF")
    rng = random.Random(7)
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline and not os.path.exists({stop!r}):
        a, b = rng.sample(range({accounts}), 2)
        x = rng.randint(1, 50)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (x, a))
        conn.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (x, b))
        conn.execute("UPDATE ops SET n = n + 1")
        conn.execute("COMMIT")
        n += 1
        if n == 1:
            print("started", flush=True)
        time.sleep(0.001)
    print(n, flush=True)
"""


def bank(path: Path, journal: str) -> Path:
    conn = sqlite3.connect(path)
    assert conn.execute(f"PRAGMA journal_mode={journal}").fetchone()[0] == journal
    conn.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER)")
    conn.executemany(
        "INSERT INTO accounts VALUES (?, 1000)", [(i,) for i in range(ACCOUNTS)]
    )
    conn.execute("CREATE TABLE ops(n INTEGER)")
    conn.execute("INSERT INTO ops VALUES (0)")
    # Enough pages that a copy in small batches takes a while.
    conn.execute("CREATE TABLE filler(v BLOB)")
    conn.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
        "WHERE i < 2000) INSERT INTO filler SELECT randomblob(1000) FROM c"
    )
    conn.commit()
    conn.close()
    return path


def total(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT sum(balance) FROM accounts").fetchone()[0])


def ops(path: Path) -> int:
    conn = sqlite3.connect(path, timeout=60)
    try:
        return int(conn.execute("SELECT n FROM ops").fetchone()[0])
    finally:
        conn.close()


@contextlib.contextmanager
def writer(path: Path) -> Iterator[None]:
    """A writer process committing to the bank at ``path`` all the time."""
    stop = path.with_name(path.name + ".stop")
    child = python(WRITER.format(path=str(path), stop=str(stop), accounts=ACCOUNTS))
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "started"
    try:
        yield
    finally:
        stop.touch()
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert int(out) > 0


@pytest.fixture(params=["wal", "delete"])
def busy_bank(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A bank database with a writer process committing to it all the time."""
    path = bank(tmp_path / f"bank-{request.param}.db", request.param)
    with writer(path):
        yield path


@pytest.mark.parametrize("pages", [0, 3, 500])
def test_copies_under_a_writer_finish_and_are_one_snapshot(
    busy_bank: Path, pages: int, connect: Connect
) -> None:
    source = connect(busy_bank, timeout=60)
    wal = source.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for _ in range(3):
        before = ops(busy_bank)
        out = connect(":memory:")
        result = sqlitebck.copy(source, out, pages, sleep=1, timeout=30)
        assert total(out) == TOTAL
        assert integrity(out) == "ok"
        assert result.pages == out.execute("PRAGMA page_count").fetchone()[0]
        if wal:
            # No restart was needed; in the slow batched copy (hundreds of
            # batches, a millisecond apart) the writer surely committed too.
            assert result.restarts == 0
            if pages == 3:
                assert ops(busy_bank) > before
        else:
            # Escalation bounds the restarts of a rollback-journal source:
            # three, and perhaps one more as the snapshot is taken.
            assert result.restarts <= 4


def test_wal_online_copy_never_restarts_while_the_writer_commits(
    tmp_path: Path, connect: Connect
) -> None:
    path = bank(tmp_path / "bank.db", "wal")
    with writer(path):
        seen: list[int] = []
        before = ops(path)
        result = sqlitebck.copy(
            connect(path),
            connect(tmp_path / "copy.db"),
            pages=10,
            sleep=2,
            progress=lambda s, r, t: seen.append(ops(path)),
        )
        assert result.restarts == 0
        assert result.steps > 20
        # Commits went on between the batches: the writer was never blocked.
        assert seen[-1] - before > 10
    assert total(connect(tmp_path / "copy.db")) == TOTAL


def test_rollback_online_copy_escalates_after_restarts(
    busy_bank: Path, connect: Connect
) -> None:
    source = connect(busy_bank, timeout=60)
    if source.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        pytest.skip("rollback-journal sources only")
    out = connect(":memory:")
    result = sqlitebck.copy(source, out, pages=2, sleep=2)
    # The writer commits far more often than that: three restarts, then the
    # snapshot is held (taking it may cost one more) and the copy finishes.
    assert result.restarts in (3, 4)
    assert total(out) == TOTAL


@pytest.mark.parametrize("journal", ["wal", "delete"])
@pytest.mark.parametrize("isolation", [None, "DEFERRED"])
def test_writes_through_the_source_connection_reach_the_destination(
    tmp_path: Path,
    journal: str,
    isolation: Literal["DEFERRED"] | None,
    connect: Connect,
) -> None:
    path = bank(tmp_path / "bank.db", journal)
    source = connect(path, isolation_level=isolation)
    dest = connect(tmp_path / "copy.db")
    written = []

    def progress(status: int, remaining: int, total: int) -> None:
        if remaining:
            source.execute("INSERT INTO filler VALUES (randomblob(1500))")
            source.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 0")
            source.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
            if source.in_transaction:
                source.commit()
            written.append(remaining)

    result = sqlitebck.copy(source, dest, pages=50, progress=progress)
    assert len(written) > 3
    assert result.restarts == 0
    assert dest.execute("SELECT count(*) FROM filler").fetchone()[0] == 2000 + len(
        written
    )
    assert total(dest) == TOTAL
    assert integrity(dest) == "ok"
    assert not source.in_transaction
