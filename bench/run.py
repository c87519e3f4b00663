"""sqlitebck against every alternative, side by side in one process run.

Contenders take turns on the same work (A B C ... A B C ...), each timed from
opening its connections to closing them, the disk catching up (os.sync,
untimed) after each turn; reported are medians and ratios to
the stdlib's ``Connection.backup``. Directions: file -> new file, memory ->
new file, file -> memory; sizes: tiny (2 pages), 1, 10, 100 MB (and 1 GB with
--large). Also: peak RSS of a file -> file copy of the largest size (each
contender in a child process), and the online scenario of bench/online.py.

APSW carries its own SQLite build (a second library): it gets its own copy of
each source file, so that no file is ever opened by two SQLite libraries. The
sqlite3 shell's ``.backup`` runs where the ``sqlite3`` command exists (its own
process, started for each copy, as a user would run it). The floor of each
direction moves the bytes without SQLite: copy_file_range (shutil.copyfile)
+ fsync, write the serialized database + fsync, read the file into memory.
On Linux, the "floor (write-back)" of the two directions to a new file also
asks the kernel to start writing back every 8 MiB as it goes
(sync_file_range), so that the disk writes during the copy and the fsync
waits only for the tail: the real floor of a large file (see
bench/profile.py).

Writes bench/results.md and bench/results.png (matplotlib, a bench-only
extra: pip install '.[bench]').

Run: python bench/run.py [--large] [--quick] [--sizes "100 MB,1 GB"] [--no-online]
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlitebck

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import online  # noqa: E402

apsw: Any  # a module, or None where APSW is not installed
try:
    apsw = importlib.import_module("apsw")
except ImportError:  # reported as missing in the results
    apsw = None

MB = 1_000_000
SHELL = shutil.which("sqlite3")

# A contender does one copy; (source file, in-memory source, dest file) -> None.
# Directions: "file→file", "memory→file", "file→memory".
Work = Callable[[], None]


def make_source(path: Path, rows: int) -> sqlite3.Connection:
    """A database file of ``rows`` rows of a typical shape (a key, a short
    text, a number, a small blob, and an index on the text), committed;
    returns its connection. bench/profile.py makes its sources here too."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, value REAL, data BLOB)"
    )
    conn.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
        "WHERE i < ?) INSERT INTO t(name, value, data) "
        "SELECT hex(randomblob(8)), random() / 7.0, randomblob(200) FROM c",
        (rows,),
    )
    conn.execute("CREATE INDEX t_name ON t(name)")
    conn.commit()
    return conn


class Case:
    """One size: its source file, an in-memory copy, and APSW's own copies."""

    def __init__(self, tmp: Path, label: str, rows: int) -> None:
        self.label = label
        self.path = tmp / f"src-{label}.db"
        conn = make_source(self.path, rows)
        self.memory = sqlite3.connect(":memory:")
        conn.backup(self.memory)
        conn.close()
        self.size = self.path.stat().st_size
        self.dest = tmp / f"dst-{label}.db"
        self.apsw_path = tmp / f"apsw-src-{label}.db"
        shutil.copyfile(self.path, self.apsw_path)
        self.apsw_memory = None
        if apsw is not None:
            self.apsw_memory = apsw.Connection(":memory:")
            disk = apsw.Connection(str(self.apsw_path))
            with self.apsw_memory.backup("main", disk, "main") as b:
                b.step(-1)
            disk.close()


def fresh(path: Path) -> str:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return str(path)


# Write-back of a file's dirty pages, started, not waited for (Linux).
WRITEBACK_PIECE = 8 << 20
SYNC_FILE_RANGE_WRITE = 2
sync_file_range: Any = None
if sys.platform.startswith("linux"):
    sync_file_range = ctypes.CDLL(None, use_errno=True).sync_file_range
    sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    sync_file_range.argtypes += [ctypes.c_uint]


# The largest database the iterdump contender copies: its executescript
# grows quadratically on PyPy (a 10 MB dump runs for minutes there).
ITERDUMP_MAX = 2 * MB if sys.implementation.name == "pypy" else 11 * MB


def contenders(case: Case, direction: str) -> dict[str, Work]:
    """The contenders that can do ``direction``, as zero-argument callables."""
    src, mem, dst = str(case.path), case.memory, case.dest
    works: dict[str, Work] = {}

    def source() -> sqlite3.Connection:
        return mem if direction == "memory→file" else sqlite3.connect(src)

    def target() -> sqlite3.Connection:
        return (
            sqlite3.connect(":memory:")
            if direction == "file→memory"
            else (sqlite3.connect(fresh(dst)))
        )

    def pair(copy: Callable[[sqlite3.Connection, sqlite3.Connection], object]) -> Work:
        def work() -> None:
            a, b = source(), target()
            copy(a, b)
            b.close()
            if a is not mem:
                a.close()

        return work

    works["stdlib backup"] = pair(lambda a, b: a.backup(b))
    works["sqlitebck.copy"] = pair(sqlitebck.copy)
    # The package opening the files itself (the command line's case): the
    # path ends are read and written through its VFS shims.
    if direction == "file→file":

        def paths() -> None:
            sqlitebck.copy(src, fresh(dst))

        works["sqlitebck.copy(paths)"] = paths
    elif direction == "memory→file":

        def to_path() -> None:
            sqlitebck.copy(mem, fresh(dst))

        works["sqlitebck.copy(paths)"] = to_path
    else:

        def from_path() -> None:
            b = sqlite3.connect(":memory:")
            sqlitebck.copy(src, b)
            b.close()

        works["sqlitebck.copy(paths)"] = from_path
    if SHELL is not None and direction == "file→file":

        def shell() -> None:
            fresh(dst)
            subprocess.run([SHELL, src, f".backup '{dst}'"], check=True)

        works["sqlite3 shell .backup"] = shell
    if apsw is not None:
        apsw_src, apsw_mem = str(case.apsw_path), case.apsw_memory

        def apsw_work() -> None:
            a: Any = (
                apsw_mem if direction == "memory→file" else apsw.Connection(apsw_src)
            )
            b = apsw.Connection(
                ":memory:" if direction == "file→memory" else fresh(dst)
            )
            with b.backup("main", a, "main") as backup:
                backup.step(-1)
            b.close()
            if a is not apsw_mem:
                a.close()

        works["APSW backup"] = apsw_work
    if direction != "file→memory":

        def vacuum_into() -> None:
            a = source()
            a.execute("VACUUM INTO ?", (fresh(dst),))
            if a is not mem:
                a.close()

        works["VACUUM INTO"] = vacuum_into
    if case.size <= ITERDUMP_MAX:

        def iterdump() -> None:
            a, b = source(), target()
            b.executescript("\n".join(a.iterdump()))
            b.close()
            if a is not mem:
                a.close()

        works["iterdump + executescript"] = iterdump
    if direction == "file→file":

        def copyfile() -> None:
            shutil.copyfile(src, fresh(dst))

        def copyfile_fsync() -> None:
            shutil.copyfile(src, fresh(dst))
            fd = os.open(dst, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

        def copy_writeback() -> None:
            fi = os.open(src, os.O_RDONLY)
            fo = os.open(fresh(dst), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            size, offset = os.fstat(fi).st_size, 0
            while offset < size:
                offset += os.copy_file_range(fi, fo, WRITEBACK_PIECE, offset, offset)
                sync_file_range(fo, 0, 0, SYNC_FILE_RANGE_WRITE)
            os.fsync(fo)
            os.close(fo)
            os.close(fi)

        works["shutil.copyfile"] = copyfile
        works["floor"] = copyfile_fsync
        if sync_file_range is not None and hasattr(os, "copy_file_range"):
            works["floor (write-back)"] = copy_writeback
    elif direction == "memory→file" and hasattr(mem, "serialize"):
        data = mem.serialize()  # once: the floor is writing the bytes

        def write_fsync() -> None:
            with open(fresh(dst), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

        def write_writeback() -> None:
            view = memoryview(data)
            fo = os.open(fresh(dst), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            offset = 0
            while offset < len(view):
                offset += os.pwrite(fo, view[offset : offset + (1 << 20)], offset)
                if offset % WRITEBACK_PIECE == 0:
                    sync_file_range(fo, 0, 0, SYNC_FILE_RANGE_WRITE)
            os.fsync(fo)
            os.close(fo)

        works["floor"] = write_fsync
        if sync_file_range is not None:
            works["floor (write-back)"] = write_writeback
    elif direction == "file→memory":

        def read_bytes() -> None:
            with open(src, "rb") as f:
                f.read()

        works["floor"] = read_bytes
    return works


def measure(works: dict[str, Work], rounds: int, inner: int) -> dict[str, float]:
    """Median seconds per copy of each contender, taking turns, the disk's
    write-back caught up (os.sync, untimed) after each turn."""
    times: dict[str, list[float]] = {name: [] for name in works}
    names = list(works)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            work = works[name]
            started = time.perf_counter()
            for _ in range(inner):
                work()
            times[name].append((time.perf_counter() - started) / inner)
            # Untimed: write back what this contender left dirty (the floor's
            # shutil.copyfile and the in-memory pages of a 1 GB copy), so
            # that the next one never waits for it.
            os.sync()
    return {name: statistics.median(t) for name, t in times.items()}


RSS_CHILD = """
import os, sqlite3, sys, sqlitebck
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
name, src, dst = sys.argv[1:4]
if name == "apsw":
    import apsw
base = status("VmRSS:")
if name == "sqlitebck":
    sqlitebck.copy(sqlite3.connect(src), sqlite3.connect(dst))
elif name == "stdlib":
    sqlite3.connect(src).backup(sqlite3.connect(dst))
elif name == "apsw":
    b = apsw.Connection(dst)
    with b.backup("main", apsw.Connection(src), "main") as bk:
        bk.step(-1)
print(status("VmHWM:") - base)
"""


def peak_rss(case: Case) -> dict[str, float]:
    """Peak RSS over the process's baseline (MB) of one file -> file copy."""
    out = {}
    names = ["stdlib", "sqlitebck"] + (["apsw"] if apsw is not None else [])
    for name in names:
        src = case.apsw_path if name == "apsw" else case.path
        res = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, name, str(src), fresh(case.dest)],
            capture_output=True,
            text=True,
            check=True,
            # Not the project folder, whose sqlitebck/ has no compiled module.
            cwd=tempfile.gettempdir(),
        )
        out[name] = int(res.stdout) / MB
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="add a 1 GB database")
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--sizes", help="only these sizes (labels, comma-separated)")
    parser.add_argument("--no-online", action="store_true", help="skip bench/online")
    args = parser.parse_args()
    sizes = [("tiny", 0), ("1 MB", 3_400), ("10 MB", 34_000), ("100 MB", 340_000)]
    if args.large:
        sizes.append(("1 GB", 3_400_000))
    if args.sizes:
        wanted = {label.strip() for label in args.sizes.split(",")}
        sizes = [size for size in sizes if size[0] in wanted]
    machine = (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
        + (
            f", APSW {apsw.apsw_version()} (its own SQLite {apsw.sqlite_lib_version()})"
            if apsw is not None
            else ", no APSW"
        )
        + f", {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"
    )
    print(machine, flush=True)
    results: dict[tuple[str, str], dict[str, float]] = {}
    sizes_bytes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="sqlitebck-bench-", dir=HERE.parent) as t:
        tmp = Path(t)
        rss: dict[str, float] = {}
        for label, rows in sizes:
            case = Case(tmp, label, rows)
            sizes_bytes[label] = case.size
            big = case.size > 50 * MB
            rounds = (3 if args.quick else 5) if big else (5 if args.quick else 9)
            inner = 300 if label == "tiny" else 1
            for direction in ("file→file", "memory→file", "file→memory"):
                results[(label, direction)] = measure(
                    contenders(case, direction), rounds, inner
                )
                print(label, direction, "done", flush=True)
            if label == sizes[-1][0]:
                rss = peak_rss(case)
            case.memory.close()
        online_args = argparse.Namespace(size_mb=40, cap=10.0, rounds=1)
        online_results = []
        for journal in () if args.no_online else ("wal", "delete"):
            online_results += online.run_mode(journal, online_args, tmp)
    table = report(machine, results, sizes_bytes, rss, online_results, sizes[-1][0])
    args.out.with_suffix(".md").write_text(table)
    chart(args.out.with_suffix(".png"), results, sizes_bytes, online_results)
    print(table)
    return 0


def report(
    machine: str,
    results: dict[tuple[str, str], dict[str, float]],
    sizes: dict[str, int],
    rss: dict[str, float],
    online_results: list[dict[str, object]],
    largest: str,
) -> str:
    lines = [f"Machine: {machine}.", "", summary(results), ""]
    lines.append("| size | direction | contender | median | MB/s | ratio to stdlib |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for (label, direction), medians in results.items():
        base = medians["stdlib backup"]
        for name, sec in sorted(medians.items(), key=lambda kv: kv[1]):
            unit = f"{sec * 1e6:.1f} µs" if sec < 1e-3 else f"{sec * 1e3:.1f} ms"
            rate = sizes[label] / sec / MB
            lines.append(
                f"| {label} | {direction} | {name} | {unit} | {rate:.0f} | "
                f"{sec / base:.2f} |"
            )
    lines += ["", f"Peak RSS above the process's baseline, {largest} file → file:", ""]
    lines += ["| contender | MB |", "| --- | --- |"]
    lines += [f"| {name} | {mb:.1f} |" for name, mb in rss.items()]
    lines += ["", "Cost growth, file → file, time per MB:", ""]
    lines += ["| size | stdlib | sqlitebck.copy |", "| --- | --- | --- |"]
    for (label, direction), medians in results.items():
        if direction == "file→file" and label != "tiny":
            mb = sizes[label] / MB
            lines.append(
                f"| {label} | {medians['stdlib backup'] / mb * 1e3:.2f} ms | "
                f"{medians['sqlitebck.copy'] / mb * 1e3:.2f} ms |"
            )
    lines += ["", "Online, a writer committing every ~1 ms (bench/online.py):", ""]
    lines += [
        "| source | contender | finished | seconds | restarts | writer's worst commit |"
    ]
    lines += ["| --- | --- | --- | --- | --- | --- |"]
    for r in online_results:
        lines.append(
            f"| {'WAL' if r['journal'] == 'wal' else 'rollback'} | {r['contender']} | "
            f"{'yes' if r['finished'] else 'no (abandoned)'} | {r['seconds']:.2f} | "
            f"{r['restarts']} | {r['worst_stall_ms']:.1f} ms |"
        )
    return "\n".join(lines) + "\n"


SUMMARY_COLUMNS = [
    "sqlitebck.copy",
    "sqlitebck.copy(paths)",
    "APSW backup",
    "sqlite3 shell .backup",
    "VACUUM INTO",
    "iterdump + executescript",
    "floor",
    "floor (write-back)",
]


def summary(results: dict[tuple[str, str], dict[str, float]]) -> str:
    """Time relative to the stdlib's backup (lower is faster), per case."""
    lines = [
        "| size | direction | stdlib backup | " + " | ".join(SUMMARY_COLUMNS) + " |"
    ]
    lines.append("| --- " * (3 + len(SUMMARY_COLUMNS)) + "|")
    for (label, direction), medians in results.items():
        base = medians["stdlib backup"]
        unit = f"{base * 1e6:.0f} µs" if base < 1e-3 else f"{base * 1e3:.1f} ms"
        cells = [
            f"{medians[name] / base:.2f}" if name in medians else "n/a"
            for name in SUMMARY_COLUMNS
        ]
        lines.append(f"| {label} | {direction} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(
    path: Path,
    results: dict[tuple[str, str], dict[str, float]],
    sizes: dict[str, int],
    online_results: list[dict[str, object]],
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: no chart", file=sys.stderr)
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    labels = [label for label in sizes if label != "tiny"]
    names = sorted({n for (lb, d), m in results.items() if d == "file→file" for n in m})
    for name in names:
        xs, ys = [], []
        for label in labels:
            medians = results[(label, "file→file")]
            if name in medians:
                xs.append(sizes[label] / MB)
                ys.append(sizes[label] / medians[name] / MB)
        left.plot(xs, ys, marker="o", label=name)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("database size (MB)")
    left.set_ylabel("throughput (MB/s)")
    left.set_title("file → new file")
    left.legend(fontsize=8)
    for r in online_results:
        if r["journal"] != "wal":
            continue
        series = r["series"]
        assert isinstance(series, list)
        xs = [t for t, _ in series if t <= 3.0]
        ys = [rem for t, rem in series if t <= 3.0]
        right.plot(xs, ys, label=str(r["contender"]))
    right.set_xlabel("seconds")
    right.set_ylabel("pages remaining")
    right.set_title("online copy of a 40 MB WAL database, writer every ~1 ms")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
