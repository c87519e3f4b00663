"""Online copies under a busy writer: the stdlib's livelock against sqlitebck.

A second process commits a small real change (money moved between two
accounts) about every millisecond, and records how long each commit took.
Meanwhile the stdlib's ``Connection.backup(target, pages=100)`` and
``sqlitebck.copy(source, dest, pages=100)`` take turns copying the database
to a new file, for WAL and rollback-journal sources. A stdlib copy that has
not finished after ``--cap`` seconds is abandoned (SQLite restarts it after
every commit of the writer, so it would finish only once the writer stops).

Reported per copy: whether and when it finished, how often SQLite restarted
it, how many commits the writer made meanwhile, and the writer's worst
commit time during the copy.

Run: python bench/online.py [--size-mb 40] [--cap 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import sqlitebck

WRITER = textwrap.dedent(
    """
    import json, os, random, sqlite3, sys, time
    path, stop = sys.argv[1], sys.argv[2]
    conn = sqlite3.connect(path, isolation_level=None, timeout=120)
    conn.execute("PRAGMA synchronous=NORMAL")
    rng = random.Random(1)
    commits = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not os.path.exists(stop):
        a, b = rng.sample(range(100), 2)
        started = time.time()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE accounts SET balance = balance - 1 WHERE id = ?", (a,))
        conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = ?", (b,))
        conn.execute("COMMIT")
        commits.append((started, time.time() - started))
        if len(commits) == 1:
            print("started", flush=True)
        time.sleep(0.001)
    print(json.dumps(commits), flush=True)
    """
)


class Abandoned(Exception):
    pass


def make_source(path: Path, journal: str, size_mb: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER)")
    conn.executemany(
        "INSERT INTO accounts VALUES (?, 1000)", [(i,) for i in range(100)]
    )
    conn.execute("CREATE TABLE filler(v BLOB)")
    conn.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?) "
        "INSERT INTO filler SELECT randomblob(1000) FROM c",
        (size_mb * 1000,),
    )
    conn.commit()
    conn.close()


Series = list[tuple[float, int]]  # (seconds since the start, pages remaining)


def stdlib_copy(
    source: Path, dest: Path, cap: float, series: Series
) -> tuple[bool, int]:
    """Connection.backup(pages=100); (finished, restarts)."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(dest)
    started = time.monotonic()
    restarts = 0
    last_done = 0

    def progress(status: int, remaining: int, total: int) -> None:
        nonlocal restarts, last_done
        series.append((time.monotonic() - started, remaining))
        done = total - remaining
        if done < last_done:
            restarts += 1
        last_done = done
        if time.monotonic() - started > cap:
            raise Abandoned

    try:
        src.backup(dst, pages=100, progress=progress)
        return True, restarts
    except Abandoned:
        return False, restarts
    finally:
        src.close()
        dst.close()


def sqlitebck_copy(
    source: Path, dest: Path, cap: float, series: Series
) -> tuple[bool, int]:
    """sqlitebck.copy(pages=100); (finished, restarts)."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(dest)
    started = time.monotonic()

    def progress(status: int, remaining: int, total: int) -> None:
        series.append((time.monotonic() - started, remaining))

    try:
        result = sqlitebck.copy(src, dst, pages=100, timeout=cap, progress=progress)
        return True, result.restarts
    finally:
        src.close()
        dst.close()


CONTENDERS: dict[str, Callable[[Path, Path, float, Series], tuple[bool, int]]] = {
    "stdlib backup(pages=100)": stdlib_copy,
    "sqlitebck.copy(pages=100)": sqlitebck_copy,
}


def run_mode(
    journal: str, args: argparse.Namespace, tmp: Path
) -> list[dict[str, object]]:
    source = tmp / f"source-{journal}.db"
    make_source(source, journal, args.size_mb)
    stop = tmp / f"stop-{journal}"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(source), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "started"
    results: list[dict[str, object]] = []
    try:
        for round_ in range(args.rounds):
            for name, contender in CONTENDERS.items():  # alternating: A B A B
                dest = tmp / f"copy-{journal}-{round_}-{len(results)}.db"
                series: Series = []
                t0 = time.time()
                finished, restarts = contender(source, dest, args.cap, series)
                t1 = time.time()
                results.append(
                    {
                        "journal": journal,
                        "contender": name,
                        "finished": finished,
                        "seconds": t1 - t0,
                        "restarts": restarts,
                        "t0": t0,
                        "t1": t1,
                        "series": series,
                    }
                )
                dest.unlink()
                time.sleep(0.2)
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=120)
    commits = json.loads(out.splitlines()[-1])
    for r in results:
        during = [lat for t, lat in commits if r["t0"] <= t <= r["t1"]]
        r["commits"] = len(during)
        r["worst_stall_ms"] = 1000 * max(during, default=0.0)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=40)
    parser.add_argument("--cap", type=float, default=10.0, help="seconds")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs; source {args.size_mb} MB, writer committing "
        f"about every 1 ms; stdlib abandoned after {args.cap:g} s\n"
    )
    print(
        "| source | contender | finished | seconds | restarts "
        "| writer commits meanwhile | writer's worst commit |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="sqlitebck-bench-") as tmp:
        for journal in ("wal", "delete"):
            for r in run_mode(journal, args, Path(tmp)):
                label = "WAL" if journal == "wal" else "rollback"
                done = "yes" if r["finished"] else f"no, abandoned after {args.cap:g} s"
                print(
                    f"| {label} | {r['contender']} | {done} | {r['seconds']:.2f} | "
                    f"{r['restarts']} | {r['commits']} | {r['worst_stall_ms']:.1f} ms |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
