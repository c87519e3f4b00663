"""acopy(): copies for asyncio, on aiosqlite connections, paths and sqlite3."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import cast

import pytest
from helpers import Connect, make_db, python, rows, writable

import sqlitebck

aiosqlite = pytest.importorskip("aiosqlite")


def old_dest(path: Path) -> None:
    make_db(path, rows=3)


def test_paths_and_shared_connections(tmp_path: Path, connect: Connect) -> None:
    source = make_db(tmp_path / "src.db", rows=500)

    async def main() -> None:
        result = await sqlitebck.acopy(source, tmp_path / "copy.db", pages=7)
        assert result.pages > 7 and result.restarts == 0
        src = connect(source, check_same_thread=False)
        dst = connect(":memory:", check_same_thread=False)
        await sqlitebck.acopy(src, dst)
        assert rows(dst) == rows(source)
        # A connection bound to this thread fails its own thread check, and
        # the error names both ways out.
        with pytest.raises(
            sqlite3.ProgrammingError, match="check_same_thread=False, or pass its path"
        ):
            await sqlitebck.acopy(connect(source), tmp_path / "nope.db")

    asyncio.run(main())
    assert rows(tmp_path / "copy.db") == rows(source)
    assert not (tmp_path / "nope.db").exists()


def test_aiosqlite_connections_on_either_side(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=400)
    old_dest(tmp_path / "dst.db")

    async def main() -> None:
        async with aiosqlite.connect(source) as db:
            await sqlitebck.acopy(db, tmp_path / "copy.db", pages=9)
            async with aiosqlite.connect(tmp_path / "dst.db") as target:
                await sqlitebck.acopy(db, tmp_path / "copy2.db")
                await sqlitebck.acopy(tmp_path / "copy.db", target)
                async with target.execute("SELECT count(*) FROM t") as cursor:
                    assert await cursor.fetchone() == (400,)

    asyncio.run(main())
    assert rows(tmp_path / "copy.db") == rows(source)
    assert rows(tmp_path / "dst.db") == rows(source)


def test_same_argument_checks_as_copy(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            await sqlitebck.acopy(tmp_path / "a.db", tmp_path / "b.db", pages=1.5)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await sqlitebck.acopy(tmp_path / "a.db", tmp_path / "b.db", sleep=-1)
        with pytest.raises(FileNotFoundError):
            await sqlitebck.acopy(tmp_path / "missing.db", tmp_path / "b.db")

    asyncio.run(main())
    assert not (tmp_path / "b.db").exists()


def test_progress_runs_on_the_loop_which_stays_responsive(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=3000)
    events: list[str] = []
    threads: set[int] = set()

    def progress(status: int, remaining: int, total: int) -> None:
        threads.add(threading.get_ident())
        events.append("progress")

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            events.append("tick")
            await asyncio.sleep(0.001)

    async def main() -> None:
        stop = asyncio.Event()
        ticking = asyncio.ensure_future(ticker(stop))
        await sqlitebck.acopy(
            source, tmp_path / "copy.db", pages=20, sleep=2, progress=progress
        )
        stop.set()
        await ticking

    asyncio.run(main())
    assert threads == {threading.get_ident()}  # asyncio.run's loop: this thread
    first, last = events.index("progress"), len(events) - events[::-1].index("progress")
    # The loop ran other tasks between the copy's progress reports.
    assert events[first:last].count("tick") >= 5, events[first:last][:40]
    assert rows(tmp_path / "copy.db") == rows(source)


@pytest.mark.parametrize("kind", ["path", "aiosqlite"])
def test_cancelling_leaves_the_destination_as_it_was(tmp_path: Path, kind: str) -> None:
    source = make_db(tmp_path / "src.db", rows=3000)
    dest = tmp_path / "dst.db"
    old_dest(dest)
    before = rows(dest)
    new = tmp_path / "new.db"
    stopped: list[float] = []

    async def main() -> None:
        started = asyncio.Event()

        def progress(status: int, remaining: int, total: int) -> None:
            started.set()

        async def run(target: Path) -> None:
            if kind == "aiosqlite":
                async with aiosqlite.connect(source) as db:
                    await sqlitebck.acopy(
                        db,
                        target,
                        pages=5,
                        sleep=20,
                        progress=progress,
                    )
            else:
                await sqlitebck.acopy(
                    source,
                    target,
                    pages=5,
                    sleep=20,
                    progress=progress,
                )

        for target in (dest, new):
            started.clear()
            task = asyncio.ensure_future(run(target))
            await started.wait()
            began = time.perf_counter()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            stopped.append(time.perf_counter() - began)

    asyncio.run(main())
    assert rows(dest) == before
    assert writable(dest)
    assert not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.db", "src.db"]


def test_an_exception_from_progress_ends_the_copy(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=1000)
    dest = tmp_path / "dst.db"
    old_dest(dest)
    before = rows(dest)

    def progress(status: int, remaining: int, total: int) -> None:
        raise KeyError("stop")

    async def main() -> None:
        with pytest.raises(KeyError):
            await sqlitebck.acopy(source, dest, pages=3, progress=progress)

    asyncio.run(main())
    assert rows(dest) == before
    assert writable(dest)


def test_cancelled_before_its_thread_is_free_the_copy_never_starts(
    tmp_path: Path,
) -> None:
    import concurrent.futures

    source = make_db(tmp_path / "src.db", rows=200)
    dest = tmp_path / "dst.db"
    old_dest(dest)
    before = rows(dest)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(1))
        busy = loop.run_in_executor(None, time.sleep, 0.3)  # the only thread
        task = asyncio.ensure_future(sqlitebck.acopy(source, dest))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await busy

    asyncio.run(main())
    assert rows(dest) == before


@pytest.mark.parametrize("existing", [True, False])
def test_cancelling_twice_still_waits_for_the_copy_to_end(
    tmp_path: Path, existing: bool
) -> None:
    source = make_db(tmp_path / "src.db", rows=3000)
    dest = tmp_path / "dst.db"
    if existing:
        old_dest(dest)
    before = rows(dest) if existing else None

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.ensure_future(
            sqlitebck.acopy(
                source, dest, pages=5, sleep=30, progress=lambda *a: started.set()
            )
        )
        await started.wait()
        task.cancel()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Settled before the task returned: unlocked, no temporary folder.
        assert sorted(p.name for p in tmp_path.iterdir()) == (
            ["dst.db", "src.db"] if existing else ["src.db"]
        )
        if existing:
            assert writable(dest)

    asyncio.run(main())
    assert (rows(dest) if existing else None) == before


@pytest.mark.parametrize("target", ["existing", "new"])
def test_a_cancellation_says_whether_the_destination_holds_the_new_copy(
    tmp_path: Path, target: str
) -> None:
    """Cancelled at random instants, from before the copy starts to after it
    ends: ``CancelledError`` carries the note that the destination holds the
    new copy exactly when it does."""
    source = make_db(tmp_path / "src.db", rows=1500)
    expected = rows(source)
    dest = tmp_path / "dst.db"
    rng = random.Random(3)
    outcomes = {"old": 0, "new": 0, "noted": 0}

    async def once(delay: float) -> None:
        task = asyncio.ensure_future(sqlitebck.acopy(source, dest, pages=8, sleep=1))
        await asyncio.sleep(delay)
        task.cancel()
        noted = False
        try:
            await task
        except asyncio.CancelledError as e:
            noted = "holds the new copy" in " ".join(getattr(e, "__notes__", []))
        else:
            noted = True  # not cancelled in time: it returned, complete
        if not dest.exists() or rows(dest) != expected:
            assert not noted
            outcomes["old"] += 1
        else:
            # Before 3.11, asyncio replaces a cancelled task's exception with
            # a new one, without the note.
            assert noted or sys.version_info < (3, 11), "complete, and not said"
            outcomes["new"] += 1
            outcomes["noted"] += noted

    async def main() -> None:
        lengths = []
        for _ in range(3):
            began = time.perf_counter()
            await sqlitebck.acopy(source, tmp_path / "timing.db", pages=8, sleep=1)
            lengths.append(time.perf_counter() - began)
        length = min(lengths)
        for _ in range(40):
            dest.unlink(missing_ok=True)
            if target == "existing":
                old_dest(dest)
            await once(rng.uniform(0, length * 1.3))

    asyncio.run(main())
    assert outcomes["old"] > 0 and outcomes["new"] > 0, outcomes


def test_importing_the_package_loads_asyncio_only_for_acopy() -> None:
    """``import sqlitebck`` does not pay for asyncio (most of its import
    time): ``acopy`` brings it in on first use."""
    code = (
        "import sys, sqlitebck\n"
        "print('asyncio' in sys.modules, 'ssl' in sys.modules)\n"
        "from sqlitebck import acopy\n"
        "print('asyncio' in sys.modules, acopy is sqlitebck.acopy)\n"
    )
    child = python(code)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.split() == ["False", "False", "True", "True"]


def test_aiosqlite_to_aiosqlite_one_thread_parked(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=2000)
    old_dest(tmp_path / "dst.db")
    seen: list[object] = []

    async def main() -> None:
        async with (
            aiosqlite.connect(source) as db,
            aiosqlite.connect(tmp_path / "dst.db") as target,
        ):

            async def meanwhile(*args: object) -> None:
                # Queued on the parked thread: runs once the copy is over.
                async with target.execute("SELECT count(*) FROM t") as cursor:
                    seen.append(await cursor.fetchone())

            task: list[asyncio.Task[None]] = []

            def progress(status: int, remaining: int, total: int) -> None:
                if not task:
                    task.append(asyncio.ensure_future(meanwhile()))

            result = await sqlitebck.acopy(db, target, pages=20, progress=progress)
            assert result.steps > 3
            await task[0]
            assert seen == [(2000,)]
            # Cancelled halfway: the destination keeps what it had.
            await target.execute("DELETE FROM t WHERE rowid > 5")
            await target.commit()
            copying = asyncio.ensure_future(
                sqlitebck.acopy(db, target, pages=1, sleep=5)
            )
            await asyncio.sleep(0.05)
            copying.cancel()
            with pytest.raises(asyncio.CancelledError):
                await copying
            async with target.execute("SELECT count(*) FROM t") as cursor:
                assert await cursor.fetchone() == (5,)
            with pytest.raises(ValueError, match="same connection"):
                await sqlitebck.acopy(db, db)
        # A closed one is refused, and nothing is left waiting.
        with pytest.raises(ValueError):
            await sqlitebck.acopy(db, target)

    asyncio.run(main())


def test_sqlalchemy_asyncio_objects(tmp_path: Path) -> None:
    pytest.importorskip("greenlet")
    from sqlalchemy.engine.interfaces import AdaptedConnection
    from sqlalchemy.ext.asyncio import create_async_engine

    source = make_db(tmp_path / "src.db", rows=300)

    async def main() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{source}")
        try:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                # The pooled wrapper of an aiosqlite connection (the bug: it
                # was checked for aiosqlite before it was unwrapped).
                await sqlitebck.acopy(raw, tmp_path / "raw.db", pages=5)
                adapted = cast(AdaptedConnection, raw.dbapi_connection)
                assert isinstance(adapted, AdaptedConnection)  # at run time
                await sqlitebck.acopy(adapted, tmp_path / "adapted.db")
                await sqlitebck.acopy(conn, tmp_path / "conn.db")
                with pytest.raises(TypeError, match=r"AsyncConnection.*acopy"):
                    sqlitebck.copy(conn, tmp_path / "nope.db")  # type: ignore[arg-type]
            await sqlitebck.acopy(engine, tmp_path / "engine.db")
            with pytest.raises(TypeError, match=r"AsyncEngine.*acopy"):
                sqlitebck.copy(engine, tmp_path / "nope.db")  # type: ignore[arg-type]
            other = make_db(tmp_path / "other.db", rows=9)
            await sqlitebck.acopy(other, engine)  # restored into it
            assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        finally:
            await engine.dispose()

    before = rows(source)
    asyncio.run(main())
    for name in ("raw", "adapted", "conn", "engine"):
        assert rows(tmp_path / f"{name}.db") == before
    assert rows(source) == rows(tmp_path / "other.db")
    assert not (tmp_path / "nope.db").exists()


def test_copies_between_runners_in_a_cycle_take_turns(tmp_path: Path) -> None:
    """``acopy(a, b)`` with ``acopy(b, a)`` (or ``a→b→c→a``) at the same time:
    each would park the thread the other's copy runs on; they take turns
    instead, and all end. In a child, which would hang otherwise."""
    for name, n in (("a", 100), ("b", 200), ("c", 300)):
        make_db(tmp_path / f"{name}.db", rows=n)
    code = f"""
        import asyncio, sqlite3, aiosqlite, sqlitebck
        folder = {str(tmp_path)!r}

        async def count(db):
            async with db.execute("SELECT count(*) FROM t") as cursor:
                return (await cursor.fetchone())[0]

        async def main():
            async with aiosqlite.connect(folder + "/a.db") as a, \\
                    aiosqlite.connect(folder + "/b.db") as b, \\
                    aiosqlite.connect(folder + "/c.db") as c:
                for pairs in ([(a, b), (b, a)], [(a, b), (b, c), (c, a)]):
                    copies = [sqlitebck.acopy(s, d, pages=3) for s, d in pairs]
                    results = await asyncio.gather(*copies)
                    print(len(results), [await count(db) for db in (a, b, c)])

        asyncio.run(main())
        for name in "abc":
            conn = sqlite3.connect(folder + f"/{{name}}.db")
            print(conn.execute("PRAGMA integrity_check").fetchone()[0])
    """
    child = python(code)
    try:
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] in ("2 [100, 100, 300]", "2 [200, 200, 300]"), out
    assert lines[1].startswith("3 "), out
    assert lines[2:] == ["ok", "ok", "ok"], out


def test_cancelling_a_copy_between_two_runners_at_any_instant(tmp_path: Path) -> None:
    """aiosqlite → aiosqlite cancelled at random instants, from before the
    destination's thread is parked to after the copy ends: the destination
    has its old content or the new one (said by the note), its thread is
    free again and its connection works (run under ASan by ``nox -s asan``)."""
    source = make_db(tmp_path / "src.db", rows=1500)
    expected = rows(source)
    dest = tmp_path / "dst.db"
    old_dest(tmp_path / "old.db")
    sqlitebck.copy(tmp_path / "old.db", dest)
    old = rows(dest)
    rng = random.Random(5)
    outcomes = {"old": 0, "new": 0}

    async def main() -> None:
        async with (
            aiosqlite.connect(source) as db,
            aiosqlite.connect(dest) as target,
        ):
            began = time.perf_counter()
            await sqlitebck.acopy(db, tmp_path / "timing.db", pages=8, sleep=1)
            length = time.perf_counter() - began
            for _ in range(40):
                task = asyncio.ensure_future(
                    sqlitebck.acopy(db, target, pages=8, sleep=1)
                )
                await asyncio.sleep(rng.uniform(0, length * 1.3))
                task.cancel()
                try:
                    await task
                    noted = True
                except asyncio.CancelledError as e:
                    noted = "holds the new copy" in " ".join(
                        getattr(e, "__notes__", [])
                    )
                async with target.execute("SELECT * FROM t ORDER BY 1") as cursor:
                    now = [tuple(r) for r in await cursor.fetchall()]
                if now == expected:
                    assert noted or sys.version_info < (3, 11)
                    outcomes["new"] += 1
                    # Back to the old content, for the next round.
                    await sqlitebck.acopy(tmp_path / "old.db", target)
                else:
                    assert now == old and not noted
                    outcomes["old"] += 1

    asyncio.run(main())
    assert outcomes["old"] > 0 and outcomes["new"] > 0, outcomes
    assert writable(dest)
