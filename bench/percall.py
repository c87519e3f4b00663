"""The per-call cost of copying a tiny database (two rows), memory -> memory.

Wall time: sqlitebck.copy and the stdlib's Connection.backup take turns,
medians of 15 rounds. Instructions: if valgrind is installed, each is run
20,000 times under callgrind (counts are repeatable, unlike seconds), minus
an empty run. Run: python bench/percall.py
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import subprocess
import sys
import timeit

import sqlitebck

N = 20_000


def connections() -> tuple[sqlite3.Connection, sqlite3.Connection]:
    src = sqlite3.connect(":memory:")
    src.execute("CREATE TABLE t(x)")
    src.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    src.commit()
    return src, sqlite3.connect(":memory:")


def loop(which: str) -> None:
    src, dst = connections()
    if which == "stdlib":
        for _ in range(N):
            src.backup(dst)
    elif which == "sqlitebck":
        for _ in range(N):
            sqlitebck.copy(src, dst)


def instructions(which: str) -> int:
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--loop",
            which,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    line = next(x for x in out.splitlines() if "Collected" in x)
    return int(line.split()[-1])


def main() -> int:
    if sys.argv[1:2] == ["--loop"]:
        loop(sys.argv[2])
        return 0
    src, dst = connections()
    stdlib, ours = [], []
    for _ in range(15):
        stdlib.append(timeit.timeit(lambda: src.backup(dst), number=N) / N)
        ours.append(timeit.timeit(lambda: sqlitebck.copy(src, dst), number=N) / N)
    a, b = statistics.median(stdlib), statistics.median(ours)
    print(
        f"wall time per call: stdlib {a * 1e6:.2f} µs, sqlitebck {b * 1e6:.2f} µs, "
        f"ratio {b / a:.2f}"
    )
    if shutil.which("valgrind"):
        base = instructions("none")
        a, b = (instructions(w) - base for w in ("stdlib", "sqlitebck"))
        print(
            f"instructions per call: stdlib {a // N}, sqlitebck {b // N}, "
            f"ratio {b / a:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
