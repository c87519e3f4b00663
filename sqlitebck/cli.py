"""The ``sqlitebck`` command: copy one SQLite database file to another.

Exit codes: 0 success; 1 the copy failed or was refused (DEST exists without
--force, --verify found damage); 2 usage error; 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from typing import TextIO

import sqlitebck

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    """One line on a terminal, redrawn in place at most ``hz`` times a second.

    >>> import io
    >>> out = io.StringIO()
    >>> bar = ProgressBar(out, page_size=4096, clock=iter([0.0, 1.0, 2.0]).__next__)
    >>> bar(0, 50, 100)
    >>> out.getvalue().split()[:3]
    ['[##########----------]', '50.0%', '50/100']
    """

    def __init__(
        self,
        out: TextIO,
        page_size: int,
        hz: float = 10.0,
        clock: object = time.monotonic,
    ) -> None:
        self._out = out
        self._page_size = page_size
        self._interval = 1.0 / hz
        self._clock = clock
        self._start = self._now()
        self._last_draw = -math.inf
        self._last_done = 0
        self.restarts = 0
        self._drawn = False

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def __call__(self, status: int, remaining: int, total: int) -> None:
        done = total - remaining
        if done < self._last_done:
            self.restarts += 1
        self._last_done = done
        now = self._now()
        if status != 101 and now - self._last_draw < self._interval:
            return
        self._last_draw = now
        elapsed = now - self._start
        fraction = done / total if total else 1.0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _duration(remaining / rate) if rate > 0 else "?"
        filled = int(20 * fraction)
        line = (
            f"[{'#' * filled}{'-' * (20 - filled)}] {100 * fraction:5.1f}% "
            f"{done}/{total} pages  {rate * self._page_size / 1e6:6.1f} MB/s  "
            f"elapsed {_duration(elapsed)}  ETA {eta}"
        )
        if self.restarts:
            line += f"  {self.restarts} restarts"
        if status in (5, 6):
            line += "  (waiting for a lock)"
        self._out.write("\r" + line + "\x1b[K")
        self._out.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self._out.write("\r\x1b[K")
            self._out.flush()


def _page_size(path: str) -> int:
    """The page size of database ``path``, or 4096 if it cannot be read."""
    try:
        uri = "file:" + urllib.parse.quote(path) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True)
        try:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 4096


def _integrity(path: str) -> str:
    uri = "file:" + urllib.parse.quote(path) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        found = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()
    return "; ".join(str(r) for r in found)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqlitebck",
        description="Copy a SQLite database through SQLite's online backup API.",
        epilog=(
            "exit codes: 0 success, 1 the copy failed or was refused, "
            "2 usage error, 130 interrupted (DEST is then left as it was)"
        ),
    )
    parser.add_argument("source", nargs="?", metavar="SOURCE", help="database to copy")
    parser.add_argument("dest", nargs="?", metavar="DEST", help="file to copy it to")
    parser.add_argument(
        "--pages",
        type=int,
        default=0,
        metavar="N",
        help="pages per batch; 0 (default): one consistent snapshot",
    )
    parser.add_argument(
        "--sleep",
        type=float,
        default=0,
        metavar="MS",
        help="milliseconds between batches (default 0)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for a lock held elsewhere (default 5; inf: forever)",
    )
    parser.add_argument("--source-name", default="main", metavar="SCHEMA")
    parser.add_argument("--dest-name", default="main", metavar="SCHEMA")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing DEST"
    )
    parser.add_argument(
        "--verify", action="store_true", help="run PRAGMA integrity_check on DEST"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    parser.add_argument(
        "--json", action="store_true", help="print the result as one line of JSON"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="back up a sample database of ~50 MB in a temporary folder",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=(
            f"sqlitebck {sqlitebck.__version__} (SQLite {sqlitebck.sqlite_version})"
        ),
    )
    return parser


def _fail(message: str) -> int:
    print(f"sqlitebck: error: {message}", file=sys.stderr)
    return EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    source, dest = str(args.source), str(args.dest)
    if os.path.lexists(dest) and not args.force:
        return _fail(f"{dest}: exists; use --force to overwrite it")
    show_bar = not (args.quiet or args.json) and sys.stderr.isatty()
    bar = ProgressBar(sys.stderr, _page_size(source)) if show_bar else None
    timeout = None if math.isinf(args.timeout) else args.timeout
    try:
        result = sqlitebck.copy(
            source,
            dest,
            args.pages,
            args.sleep,
            progress=bar,
            source_name=args.source_name,
            dest_name=args.dest_name,
            timeout=timeout,
        )
    except FileNotFoundError as e:
        return _fail(f"{e.filename}: no such file or directory")
    except (sqlite3.Error, OSError, ValueError) as e:
        return _fail(f"copying {source} to {dest}: {e}")
    finally:
        if bar:
            bar.clear()
    verified = None
    if args.verify:
        verified = _integrity(dest)
        if verified != "ok":
            return _fail(f"{dest}: integrity_check failed: {verified}")
    size = os.path.getsize(dest)
    if args.json:
        print(
            json.dumps(
                {
                    "source": source,
                    "dest": dest,
                    "pages": result.pages,
                    "bytes": size,
                    "steps": result.steps,
                    "restarts": result.restarts,
                    "elapsed": round(result.elapsed, 6),
                    "integrity_check": verified,
                }
            )
        )
    elif not args.quiet:
        check = f", integrity_check {verified}" if verified else ""
        print(
            f"copied {source} to {dest}: {result.pages} pages ({size / 1e6:.1f} MB) "
            f"in {result.elapsed:.2f} s, {result.restarts} restarts{check}"
        )
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="sqlitebck-demo-") as tmp:
        source = os.path.join(tmp, "sample.db")
        conn = sqlite3.connect(source)
        conn.execute(
            "CREATE TABLE readings(id INTEGER PRIMARY KEY, at REAL, data BLOB)"
        )
        conn.execute(
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
            "WHERE i < 12000) INSERT INTO readings(at, data) "
            "SELECT i * 0.5, randomblob(3000) FROM c"
        )
        conn.execute("CREATE INDEX readings_at ON readings(at)")
        conn.commit()
        conn.close()
        if not (args.quiet or args.json):
            size = os.path.getsize(source) / 1e6
            print(f"sample database: {source} ({size:.1f} MB)")
        args.source, args.dest = source, os.path.join(tmp, "backup.db")
        args.verify = True
        if not args.pages:
            args.pages = 256  # batches, so that the progress bar moves
        return _run(args)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.timeout < 0 or math.isnan(args.timeout):
        parser.error("--timeout must be >= 0")
    if args.sleep < 0 or not math.isfinite(args.sleep):
        parser.error("--sleep must be finite and >= 0")
    if not -(2**31) <= args.pages < 2**31:
        parser.error("--pages does not fit in a C int")
    if args.demo and (args.source or args.dest):
        parser.error("--demo takes no SOURCE or DEST")
    if not args.demo and (args.source is None or args.dest is None):
        parser.error("SOURCE and DEST are required")
    try:
        return _demo(args) if args.demo else _run(args)
    except KeyboardInterrupt:
        where = (
            "the demo's files are removed"
            if args.demo
            else f"{args.dest} left as it was"
        )
        print(f"sqlitebck: interrupted; {where}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
