"""The ``sqlitebck`` command: copy one SQLite database file to another, or
into a folder of dated backups.

Exit codes: 0 success; 1 the copy failed or was refused (DEST exists without
--force, --verify found damage or could not finish); 2 usage error; 130
interrupted by Ctrl-C with DEST left as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shlex
import signal
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, TextIO

import sqlitebck
from sqlitebck._endpoints import connect
from sqlitebck._engine import (
    DEFAULT_TIMEOUT,
    check_pages,
    check_sleep,
    check_timeout,
)
from sqlitebck._errors import SQLITE_DONE, waits_for_a_lock

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _columns(out: TextIO) -> int:
    """The width of the terminal ``out`` writes to, read anew each time (the
    window may have been resized); 80 if it cannot be told."""
    try:
        return os.get_terminal_size(out.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return 80


# The bar's width in cells: it takes the room the other fields leave, within
# these bounds, and is dropped when less is left.
_BAR_MIN = 10
_BAR_MAX = 40
_BAR = "bar"  # the bar's place among the fields


def fit(fields: list[tuple[int, str]], fraction: float, width: int) -> str:
    """One line of at most ``width`` characters: ``fields`` (text, or
    ``_BAR`` for a bar ``fraction`` full), each with a rank: while the line is
    too long, the bar shrinks, then the field of highest rank is dropped,
    and the last one left is cut.

    >>> fields = [(3, _BAR), (0, " 50.0%"), (5, "50/100 pages"), (2, "ETA 0:00:01")]
    >>> fit(fields, 0.5, 60)
    '[###########------------]   50.0%  50/100 pages  ETA 0:00:01'
    >>> fit(fields, 0.5, 39)
    '[########--------]   50.0%  ETA 0:00:01'
    >>> fit(fields, 0.5, 12), fit([(0, "waiting for a lock")], 0.0, 12)
    (' 50.0%', 'waiting for')
    """
    shown = list(fields)
    while True:
        texts = [text for _, text in shown if text is not _BAR]
        line = "  ".join(texts)
        if len(texts) < len(shown):  # the bar, with the room that is left
            room = width - len(line) - (2 if texts else 0) - 2  # gap, "[" "]"
            if room >= _BAR_MIN:
                cells = min(room, _BAR_MAX)
                filled = int(cells * fraction)
                bar = f"[{'#' * filled}{'-' * (cells - filled)}]"
                return "  ".join(bar if t is _BAR else t for _, t in shown)
        elif len(line) <= width or len(shown) <= 1:
            return line[:width].rstrip()
        shown.remove(max(shown, key=lambda field: field[0]))


class ProgressBar:
    """One line on a terminal, redrawn in place at most ``hz`` times a second
    (and at once when the terminal's width changes), never wider than the
    terminal: fields are dropped as it narrows.

    >>> import io
    >>> out = io.StringIO()
    >>> bar = ProgressBar(out, page_size=4096, clock=iter([0.0, 1.0, 2.0]).__next__)
    >>> bar(0, 50, 100)
    >>> out.getvalue().split()[:3]
    ['[#######--------]', '50.0%', '50/100']
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
        self._width = 0
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
        width = _columns(self._out)
        if (
            status != SQLITE_DONE
            and width == self._width
            and now - self._last_draw < self._interval
        ):
            return
        self._last_draw, self._width = now, width
        # One column spare: a line that fills the last one leaves some
        # terminals waiting to wrap.
        fraction, fields = self.fields(status, remaining, total, now)
        line = fit(fields, fraction, width - 1)
        self._out.write("\r" + line + "\x1b[K")
        self._out.flush()
        self._drawn = True

    def fields(
        self, status: int, remaining: int, total: int, now: float
    ) -> tuple[float, list[tuple[int, str]]]:
        """The fraction done, and what the line shows, in order, each with
        its rank for :func:`fit` (the highest is dropped first)."""
        elapsed = now - self._start
        waiting = waits_for_a_lock(status)
        if total == 0:  # before the first step: nothing to measure yet
            state = "waiting for a lock" if waiting else "starting"
            return 0.0, [(0, state), (7, f"elapsed {_duration(elapsed)}")]
        done = total - remaining
        fraction = done / total
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _duration(remaining / rate) if rate > 0 else "?"
        fields = [
            (3, _BAR),
            (0, f"{100 * fraction:5.1f}%"),
            (5, f"{done}/{total} pages"),
            (6, f"{rate * self._page_size / 1e6:.1f} MB/s"),
            (7, f"elapsed {_duration(elapsed)}"),
            (2, f"ETA {eta}"),
        ]
        if self.restarts:
            fields.append((4, f"{self.restarts} restarts"))
        if waiting:
            fields.append((1, "waiting for a lock"))
        return fraction, fields

    def clear(self) -> None:
        if self._drawn:
            self._out.write("\r\x1b[K")
            self._out.flush()


# How many fresh names a dated backup tries if another one takes its name.
_NAME_ATTEMPTS = 5
_STAMP = re.compile(r"-\d{8}T\d{6}\.\d{6}Z")


def _shown(text: str) -> str:
    """``text`` (a path, or a message naming one) as it can be printed: bytes
    of a file name that are not UTF-8 as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _page_size(path: str) -> int:
    """The page size of database ``path``, or 4096 if it cannot be read."""
    try:
        conn = connect(path, "ro", timeout=0)
        try:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 4096


def _integrity(path: str) -> str:
    # Read-write, so that closing it removes the -wal and -shm files that
    # reading a WAL database creates.
    conn = connect(path, "rw")
    try:
        found = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()
    # One line: SQLite puts several problems in one row, a line each.
    return "; ".join(line for r in found for line in str(r).splitlines())


def _number(
    kind: Callable[[str], float], check: Callable[[float], object]
) -> Callable[[str], float]:
    """An argparse type: ``kind(text)`` if ``check``, the engine's validator
    of that setting (the API's own rule), accepts it, else a usage error."""

    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        try:
            check(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return value

    convert.__name__ = check.__name__.replace("check_", "")
    return convert


def check_keep(keep: float) -> None:
    """How many backups ``--keep`` keeps: at least one."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, not {keep}")


def _path_argument(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("an empty path names no file")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqlitebck",
        description=(
            "Copy a SQLite database through SQLite's online backup API. "
            "With a folder as DEST, write a dated backup into it: "
            "FOLDER/STEM-YYYYMMDDTHHMMSS.ffffffZ.SUFFIX (UTC), named after SOURCE."
        ),
        epilog=(
            "exit codes: 0 success, 1 the copy failed or was refused, "
            "2 usage error, 130 interrupted (DEST is then left as it was)"
        ),
    )
    parser.add_argument(
        "source", nargs="?", type=_path_argument, metavar="SOURCE", help="database"
    )
    parser.add_argument(
        "dest",
        nargs="?",
        type=_path_argument,
        metavar="DEST",
        help="file to copy it to, or a folder for a dated backup",
    )
    parser.add_argument(
        "--pages",
        type=_number(int, check_pages),
        default=0,
        metavar="N",
        help=(
            "pages per batch; 0 (default) or less: the whole database as one "
            "consistent snapshot, as copy() takes it"
        ),
    )
    parser.add_argument(
        "--sleep",
        type=_number(float, check_sleep),
        default=0,
        metavar="MS",
        help="milliseconds between batches (default 0, at most one day)",
    )
    parser.add_argument(
        "--timeout",
        type=_number(float, check_timeout),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=(
            "how long to wait for a lock held elsewhere (default "
            f"{DEFAULT_TIMEOUT:g}; inf: forever)"
        ),
    )
    parser.add_argument("--source-name", default="main", metavar="SCHEMA")
    parser.add_argument("--dest-name", default="main", metavar="SCHEMA")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing DEST"
    )
    parser.add_argument(
        "--keep-wal",
        action="store_true",
        help="leave a new DEST in WAL mode if SOURCE is (default: one "
        "self-contained file, journal_mode=DELETE)",
    )
    parser.add_argument(
        "--keep",
        type=_number(int, check_keep),
        metavar="N",
        help="with a folder as DEST: then delete the oldest backups of SOURCE "
        "there, keeping the newest N",
    )
    parser.add_argument(
        "--verify", action="store_true", help="run PRAGMA integrity_check on DEST"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    output.add_argument(
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
    print(f"sqlitebck: error: {_shown(message)}", file=sys.stderr)
    return EXIT_FAILED


def _no_folder(folder: str) -> str:
    """The one message for a backup folder, or DEST's folder, that is missing."""
    return f"{folder}: no such folder; create it first (mkdir -p {shlex.quote(folder)})"


def _failed_copy(error: Exception, source: str, dest: str, timeout: float) -> str:
    """What a failed copy says: the error (naming the file it is about, or
    else after both names), and ``--timeout`` when a lock outlasted it."""
    text = str(error)
    if not text.startswith((f"{source}: ", f"{dest}: ")):
        text = f"copying {source} to {dest}: {text}"
    code = getattr(error, "sqlite_errorcode", None)
    locked = waits_for_a_lock(code) if isinstance(code, int) else "locked" in text
    if locked and isinstance(error, sqlite3.Error):
        text += (
            f"; another program held it for longer than --timeout {timeout:g} "
            "seconds: try again, or wait longer with a larger --timeout"
        )
    return text


class Folder:
    """Dated backups of one source in one folder: ``STEM-<UTC time>SUFFIX``,
    where the time is ``YYYYMMDDTHHMMSS.ffffffZ``, so that names sort in time
    order.

    >>> f = Folder("backups", "/data/app.db")
    >>> f.name(datetime(2026, 11, 23, 4, 15, tzinfo=timezone.utc))
    'backups/app-20261123T041500.000000Z.db'
    >>> [bool(f.pattern.match(n)) for n in
    ...  ["app-20261123T041500.000000Z.db", "app-x-20261123T041500.000000Z.db",
    ...   "app-20261123T041500.000000Z.db-wal", "app.db"]]
    [True, False, False, False]
    """

    def __init__(self, folder: str, source: str) -> None:
        self.folder = folder
        self.stem, self.suffix = os.path.splitext(os.path.basename(source))
        self.pattern = re.compile(
            re.escape(self.stem) + _STAMP.pattern + re.escape(self.suffix) + r"\Z"
        )

    def name(self, when: datetime) -> str:
        stamp = when.strftime("%Y%m%dT%H%M%S.%fZ")
        return os.path.join(self.folder, f"{self.stem}-{stamp}{self.suffix}")

    def new_name(self, when: datetime | None = None) -> str:
        """A name for a backup made ``when`` (now) that no file has yet: later
        by as many microseconds as names are taken."""
        when = when or datetime.now(timezone.utc)
        while os.path.lexists(self.name(when)):
            when += timedelta(microseconds=1)
        return self.name(when)

    def prune(self, keep: int, newest: str) -> list[str]:
        """Delete the oldest backups (regular files whose names match), so
        that ``keep`` are left counting ``newest``; return what was deleted."""
        mine = os.path.basename(newest)
        older = sorted(
            name
            for name in os.listdir(self.folder)
            if name != mine
            and self.pattern.match(name)
            and os.path.isfile(os.path.join(self.folder, name))
            and not os.path.islink(os.path.join(self.folder, name))
        )
        excess = max(len(older) - (keep - 1), 0)
        doomed = [os.path.join(self.folder, name) for name in older[:excess]]
        for path in doomed:
            os.unlink(path)
        return doomed


class Run:
    """What one run has done so far: enough to tell the truth on Ctrl-C."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dest: str | None = None
        self.existed: bool | None = None  # whether DEST existed; None: not begun
        self.committed = False  # the copy's final progress call has come
        self.result: sqlitebck.CopyResult | None = None
        self.copied = False
        self.verified: str | None = None
        self.removed: list[str] | None = None

    def copy(self) -> int:
        """Copy, verify, prune and report; return the exit code."""
        args = self.args
        source, target = str(args.source), str(args.dest)
        folder = Folder(target, source) if os.path.isdir(target) else None
        if folder is None and (target.endswith(("/", os.sep)) or args.keep):
            return _fail(_no_folder(target))
        if folder is None and os.path.lexists(target) and not args.force:
            return _fail(f"{target}: exists; use --force to overwrite it")
        show_bar = not (args.quiet or args.json) and sys.stderr.isatty()
        bar = ProgressBar(sys.stderr, _page_size(source)) if show_bar else None
        timeout = args.timeout  # inf: forever, as copy() takes it
        for attempt in range(1, _NAME_ATTEMPTS + 1):
            dest = self.dest = folder.new_name() if folder else target
            self.existed = os.path.lexists(dest)
            try:
                self.result = sqlitebck.copy(
                    source,
                    dest,
                    args.pages,
                    args.sleep,
                    progress=self._progress(bar),
                    source_name=args.source_name,
                    dest_name=args.dest_name,
                    timeout=timeout,
                    keep_wal=args.keep_wal,
                )
                break
            except FileExistsError as e:
                # Another run took this name during the copy: take another.
                if folder is None or attempt == _NAME_ATTEMPTS:
                    return _fail(f"{e.filename}: {e.strerror}")
            except FileNotFoundError as e:
                if e.filename == dest:
                    return _fail(_no_folder(os.path.dirname(dest)))
                return _fail(f"{e.filename}: no such file or directory")
            except (sqlite3.Error, OSError, ValueError, OverflowError) as e:
                return _fail(_failed_copy(e, source, dest, timeout))
            finally:
                if bar:
                    bar.clear()
        self.copied = True
        if args.verify:
            try:
                verified = _integrity(dest)
            except (sqlite3.Error, OSError) as e:
                return _fail(f"{dest}: copied, but --verify could not read it: {e}")
            if verified != "ok":
                return _fail(f"{dest}: integrity_check failed: {verified}")
            self.verified = verified
        if folder is not None and args.keep is not None:
            try:
                self.removed = folder.prune(args.keep, dest)
            except OSError as e:
                return _fail(f"{dest}: copied, but old backups were not removed: {e}")
        self.report()
        return EXIT_OK

    def _progress(self, bar: ProgressBar | None) -> sqlitebck.Progress:
        """The progress callback: draws ``bar``, and notes the final call,
        which comes once the copy is committed."""

        def progress(status: int, remaining: int, total: int) -> None:
            if status == SQLITE_DONE:
                self.committed = True
            if _dropped_interrupts:
                _dropped_interrupts.clear()
                raise KeyboardInterrupt  # one Python had to drop (see main)
            if bar is not None:
                bar(status, remaining, total)

        return progress

    def report(self, note: str = "") -> None:
        """Print the summary (or the JSON line) of a copy that is complete."""
        args, dest, result = self.args, str(self.dest), self.result
        try:
            size: int | None = os.path.getsize(dest)
        except OSError:
            size = None
        if args.json:
            fields = {
                "source": args.source,
                "dest": dest,
                "pages": result.pages if result else None,
                "bytes": size,
                "steps": result.steps if result else None,
                "restarts": result.restarts if result else None,
                "elapsed": round(result.elapsed, 6) if result else None,
                "integrity_check": self.verified,
                "removed": self.removed or [],
            }
            print(json.dumps(fields))
        elif not args.quiet:
            line = f"copied {args.source} to {dest}"
            if result is not None:
                mb = f" ({size / 1e6:.1f} MB)" if size is not None else ""
                line += (
                    f": {result.pages} pages{mb} in {result.elapsed:.2f} s, "
                    f"{result.restarts} restarts"
                )
            if self.verified:
                line += f", integrity_check {self.verified}"
            if self.removed:
                n = len(self.removed)
                line += f", removed {n} old backup{'s' if n > 1 else ''}"
            print(_shown(line + note))

    def interrupted(self) -> int:
        """The exit code and words for a Ctrl-C: 130 only if DEST is as it was.

        A copy commits inside ``copy()``, so an interrupt may arrive after its
        commit and before it returns: a new DEST exists only if it was
        published, an existing one changed only if the copy committed.
        """
        dest = self.dest
        if not self.copied and dest is not None and self.existed is not None:
            # An existing DEST changed if the copy committed; a new one exists
            # only once published (and sqlitebck.copy() delivers a Ctrl-C
            # only after the final progress call, or not at all).
            self.copied = self.committed if self.existed else os.path.lexists(dest)
        if not self.copied or dest is None:
            where = self.dest or self.args.dest
            print(
                f"sqlitebck: interrupted; {_shown(str(where))} left as it was",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        if self.args.verify and self.verified is None:
            return _fail(
                f"interrupted after the copy, before --verify finished: "
                f"{dest} holds the new copy, not verified"
            )
        skipped = (
            "; old backups were not removed"
            if self.args.keep is not None and self.removed is None
            else ""
        )
        print(
            f"sqlitebck: interrupted after the copy was complete: "
            f"{_shown(dest)} holds the new copy{skipped}",
            file=sys.stderr,
        )
        self.report()
        return EXIT_OK


def _demo(args: argparse.Namespace, run: Run) -> int:
    with tempfile.TemporaryDirectory(prefix="sqlitebck-demo-") as tmp:
        source = os.path.join(tmp, "sample.db")
        conn = connect(source, "rwc")
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
        return run.copy()


# Ctrl-C that Python had to drop: a KeyboardInterrupt raised inside code it
# cannot propagate from (the weakref callback that ends an import, say) is
# only printed, as "Exception ignored". While main() runs, such an interrupt
# is kept here instead, and raised at the next progress report.
_dropped_interrupts: list[bool] = []


def _keeping_interrupts(
    hook: Callable[[Any], object],
) -> Callable[[Any], object]:
    """``sys.unraisablehook`` ``hook``, except that a dropped Ctrl-C is kept."""

    def unraisable(unraisable: Any) -> object:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _dropped_interrupts.append(True)
            return None
        return hook(unraisable)

    return unraisable


def _ignore_interrupts() -> None:
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return its exit code. Run as the program
    (``argv`` None), it ignores Ctrl-C once it has an answer to give."""
    run: Run | None = None
    unraisablehook = sys.unraisablehook
    sys.unraisablehook = _keeping_interrupts(unraisablehook)
    try:
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:  # print any name, whatever the console
                reconfigure(errors="backslashreplace")
        parser = _parser()
        args = parser.parse_args(argv)
        if args.demo and (args.source or args.dest):
            parser.error("--demo takes no SOURCE or DEST")
        if not args.demo and (args.source is None or args.dest is None):
            parser.error("SOURCE and DEST are required")
        if args.keep is not None and (
            args.demo or (os.path.lexists(args.dest) and not os.path.isdir(args.dest))
        ):
            parser.error("--keep needs a folder as DEST")
        run = Run(args)
        return _demo(args, run) if args.demo else run.copy()
    except KeyboardInterrupt:
        if argv is None:
            _ignore_interrupts()  # no second Ctrl-C cuts the answer short
        if run is None:
            print("sqlitebck: interrupted; nothing was copied", file=sys.stderr)
            return EXIT_INTERRUPTED
        if run.args.demo:
            print(
                "sqlitebck: interrupted; the demo's files are removed",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        return run.interrupted()
    finally:
        if argv is None:
            _ignore_interrupts()  # exiting: a late Ctrl-C changes nothing
        sys.unraisablehook = unraisablehook
        _dropped_interrupts.clear()


if __name__ == "__main__":
    sys.exit(main())
