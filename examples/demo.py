"""Back up a sample database of a few tens of MB, showing progress, and verify it.

Run: python examples/demo.py
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import sqlitebck


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sqlitebck-demo-") as tmp:
        source = Path(tmp) / "sample.db"
        backup = Path(tmp) / "backup.db"
        src = sqlite3.connect(source)
        src.execute("CREATE TABLE readings(id INTEGER PRIMARY KEY, at REAL, data BLOB)")
        src.execute(
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
            "WHERE i < 12000) INSERT INTO readings(at, data) "
            "SELECT i * 0.5, randomblob(3000) FROM c"
        )
        src.execute("CREATE INDEX readings_at ON readings(at)")
        src.commit()
        size = source.stat().st_size
        print(f"sample database: {source} ({size / 1e6:.1f} MB)")

        started = time.perf_counter()

        def progress(status: int, remaining: int, total: int) -> None:
            done = total - remaining
            sys.stdout.write(f"\rcopied {done}/{total} pages ({100 * done // total}%)")
            sys.stdout.flush()

        dst = sqlite3.connect(backup)
        result = sqlitebck.copy(src, dst, pages=256, progress=progress)
        print()
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        summary = "SELECT count(*), sum(length(data)) FROM readings"
        same = src.execute(summary).fetchone() == dst.execute(summary).fetchone()
        print(
            f"backup: {backup.stat().st_size / 1e6:.1f} MB, {result.pages} pages in "
            f"{result.steps} steps, {result.restarts} restarts, "
            f"{time.perf_counter() - started:.2f} s; integrity_check: {check}; "
            f"rows match: {same}"
        )
        src.close()
        dst.close()
        return 0 if check == "ok" and same else 1


if __name__ == "__main__":
    sys.exit(main())
