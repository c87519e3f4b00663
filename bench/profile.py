"""Where the time of a copy to a new file goes, against the floor.

Each copy runs in a child process of its own (one copy per child, timed from
the call to its return; the child's start-up and set-up are not timed), the
variants taking turns (A B C ... B C ... A), so that a noisy machine slows
all of them alike; reported are medians, the spread (min-max) and ratios.

Modes (file -> new file and memory -> new file, and what they are held
against):

  file          sqlitebck.copy(path, new path)
  memory        sqlitebck.copy(in-memory connection, new path)
  stdlib        sqlite3: Connection.backup, file -> new file
  stdlib-mem    sqlite3: Connection.backup, memory -> new file
  floor         copy_file_range (shutil.copyfile) + fsync: bench/run.py's floor
  floor-wb      copy_file_range in 8 MiB pieces, each followed by
                sync_file_range(SYNC_FILE_RANGE_WRITE), + fsync: the real floor
                on Linux (the disk writes while the copy goes on); sendfile
                where os has no copy_file_range (PyPy 3.9)
  write         the serialized database written at once + fsync: run.py's
                memory -> file floor
  write-wb      the serialized database written in 1 MiB pieces, write-back
                requested every 8 MiB, + fsync

With --strace, each mode once more under ``strace -f -T``: the system calls
of the copy alone (between two getppid() markers), their count, time and
sizes. With --perf, under ``perf record -e cpu-clock`` (started and stopped by
the child around the copy through perf's control FIFO): on-CPU time per copy
and its split by library and by function (Debian's libsqlite3 is stripped:
its time is one line). --base PYTHON adds the modes "file" and "memory" run by
another interpreter (e.g. a venv with the previous release installed), so
that before and after run side by side; --variant LABEL=PYTHON (repeatable)
does the same for any number of builds (e.g. one per tuning constant).

Run: python bench/profile.py [--mb 100] [--rounds 7] [--strace] [--perf]
     [--base /tmp/venv-old/bin/python] [--variant wb8=/tmp/wb8/python ...]
     [--modes file,memory,floor,...]
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1_000_000
ROWS_PER_MB = 3_400  # bench/run.py's row shape: ~1 MB per 3,400 rows
MODES = [
    "file",
    "memory",
    "stdlib",
    "stdlib-mem",
    "floor",
    "floor-wb",
    "write",
    "write-wb",
]
SYNC_FILE_RANGE_WRITE = 2
PIECE = 8 << 20


def make_source(path: Path, mb: int) -> None:
    """bench/run.py's database shape, ``mb`` MB of it."""
    from run import make_source as make_rows  # bench/ is this script's folder

    make_rows(path, mb * ROWS_PER_MB).close()


def _writeback(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sync_file_range.argtypes = [
        ctypes.c_int,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_uint,
    ]
    libc.sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)


def peak_rss() -> int:
    """This process's peak resident memory so far, in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def child(mode: str, src: str, dst: str) -> None:
    """One copy in this process; prints its seconds and how much its peak
    resident memory grew during the copy (bytes)."""
    for suffix in ("", "-journal", "-wal"):
        with_suffix = dst + suffix
        if os.path.exists(with_suffix):
            os.unlink(with_suffix)
    mem = None
    data = b""
    if mode in ("memory", "stdlib-mem", "write", "write-wb"):
        mem = sqlite3.connect(":memory:")
        disk = sqlite3.connect(src)
        disk.backup(mem)
        disk.close()
        data = mem.serialize() if mode.startswith("write") else b""
    import sqlitebck  # imported (and bound) before the copy is timed

    ctl = os.environ.get("PROFILE_PERF_CTL")

    def perf(command: bytes) -> None:
        if ctl:
            fd = os.open(ctl, os.O_WRONLY)
            os.write(fd, command)
            os.close(fd)
            fd = os.open(ctl + ".ack", os.O_RDONLY)
            os.read(fd, 5)
            os.close(fd)

    peak_before = peak_rss()
    perf(b"enable\n")
    os.getppid()  # the marker of the copy's first system call, for --strace
    started = time.perf_counter()
    if mode == "file":
        sqlitebck.copy(src, dst)
    elif mode == "memory" and mem is not None:
        sqlitebck.copy(mem, dst)
    elif mode in ("stdlib", "stdlib-mem"):
        a = mem if mem is not None else sqlite3.connect(src)
        b = sqlite3.connect(dst)
        a.backup(b)
        b.close()
        a.close()
    elif mode == "floor":
        shutil.copyfile(src, dst)
        fd = os.open(dst, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    elif mode == "floor-wb":
        fi = os.open(src, os.O_RDONLY)
        fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        size, offset = os.fstat(fi).st_size, 0
        while offset < size:
            if hasattr(os, "copy_file_range"):
                offset += os.copy_file_range(fi, fo, PIECE, offset, offset)
            else:  # PyPy 3.9: sendfile, the same in-kernel copy
                offset += os.sendfile(fo, fi, offset, PIECE)
            _writeback(fo)
        os.fsync(fo)
        os.close(fo)
        os.close(fi)
    elif mode == "write":
        with open(dst, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    elif mode == "write-wb":
        view = memoryview(data)
        fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        offset = 0
        while offset < len(view):
            offset += os.pwrite(fo, view[offset : offset + (1 << 20)], offset)
            if offset % PIECE == 0:
                _writeback(fo)
        os.fsync(fo)
        os.close(fo)
    else:
        raise ValueError(mode)
    elapsed = time.perf_counter() - started
    os.getppid()
    perf(b"disable\n")
    print(json.dumps([elapsed, peak_rss() - peak_before]))


def run_child(
    python: str, mode: str, src: Path, dst: Path, wrap: list[str] | None = None
) -> tuple[float, int]:
    env = dict(os.environ)
    cmd = [python, str(Path(__file__).resolve()), "--child", mode, str(src), str(dst)]
    res = subprocess.run(
        (wrap or []) + cmd,
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),  # not the project folder (no compiled module)
        env=env,
    )
    seconds, grown = json.loads(res.stdout.strip().splitlines()[-1])
    return float(seconds), int(grown)


def timing(
    variants: list[tuple[str, str, str]], src: Path, dst: Path, rounds: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds of each variant (label, python, mode), taking turns, and the
    most its peak resident memory grew during a copy."""
    times: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    grown: dict[str, int] = {label: 0 for label, _, _ in variants}
    for r in range(rounds):
        turn = variants[r % len(variants) :] + variants[: r % len(variants)]
        for label, python, mode in turn:
            seconds, more = run_child(python, mode, src, dst)
            times[label].append(seconds)
            grown[label] = max(grown[label], more)
    return times, grown


SYSCALL = re.compile(r"^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+).*<([\d.]+)>$")
SIZED = {"pread64", "pwrite64", "read", "write", "copy_file_range"}


def strace_summary(python: str, mode: str, src: Path, dst: Path, tmp: Path) -> str:
    """The copy's system calls: count, seconds, commonest sizes."""
    log = tmp / f"strace-{mode}.txt"
    run_child(python, mode, src, dst, ["strace", "-f", "-T", "-o", str(log)])
    lines = log.read_text(errors="replace").splitlines()
    marks = [i for i, line in enumerate(lines) if re.match(r"^\d+\s+getppid\(\)", line)]
    body = lines[marks[0] + 1 : marks[1]]
    count: collections.Counter[str] = collections.Counter()
    secs: dict[str, float] = collections.defaultdict(float)
    sizes: dict[str, collections.Counter[int]] = collections.defaultdict(
        collections.Counter
    )
    for line in body:
        m = SYSCALL.match(line)
        if not m:
            continue
        name, ret, took = m.group(1), int(m.group(3)), float(m.group(4))
        count[name] += 1
        secs[name] += took
        if name in SIZED:
            sizes[name][ret] += 1
    out = [f"{mode}: system calls of one copy (strace -f -T; times inflated by strace)"]
    for name, n in count.most_common():
        if n < 3 and secs[name] < 1e-3:
            continue
        common = ", ".join(f"{v} x {k} B" for k, v in sizes[name].most_common(3))
        out.append(f"  {name:16} {n:6}  {secs[name] * 1e3:7.1f} ms  {common}".rstrip())
    return "\n".join(out)


def perf_summary(python: str, mode: str, src: Path, dst: Path, tmp: Path) -> str:
    """On-CPU time of one copy, split by library and by function."""
    data, ctl = tmp / f"perf-{mode}.data", tmp / "perf-ctl"
    for fifo in (ctl, Path(str(ctl) + ".ack")):
        if fifo.exists():
            fifo.unlink()
        os.mkfifo(fifo)
    os.environ["PROFILE_PERF_CTL"] = str(ctl)
    try:
        run_child(
            python,
            mode,
            src,
            dst,
            [
                *("perf", "record", "-q", "-e", "cpu-clock", "-F", "10000"),
                *("-D", "-1", "--control", f"fifo:{ctl},{ctl}.ack", "-o", str(data)),
            ],
        )
    finally:
        del os.environ["PROFILE_PERF_CTL"]

    def report(sort: str, top: int) -> list[tuple[float, str]]:
        res = subprocess.run(
            ["perf", "report", "-i", str(data), "--stdio", "--sort", sort],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = []
        for line in res.stdout.splitlines():
            m = re.match(r"^\s+([\d.]+)%\s+(.*\S)", line)
            if m:
                rows.append((float(m.group(1)), m.group(2)))
        return rows[:top]

    script = subprocess.run(
        ["perf", "script", "-i", str(data)], capture_output=True, text=True
    )
    on_cpu_ms = len(script.stdout.splitlines()) / 10.0  # 10 kHz samples
    out = [f"{mode}: {on_cpu_ms:.0f} ms on CPU (perf record -e cpu-clock, 10 kHz)"]
    out += [f"  {pct:5.1f}%  {name}" for pct, name in report("dso", 5)]
    out.append("  functions:")
    out += [f"  {pct:5.1f}%  {name}" for pct, name in report("sym", 12)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SRC", "DST"))
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--base", help="another interpreter: its file and memory")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=PYTHON",
        help="one more interpreter (repeatable): its file and memory",
    )
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--perf", action="store_true")
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    modes = args.modes.split(",")
    variants = [(mode, sys.executable, mode) for mode in modes]
    others: list[tuple[str, str]] = [("base", args.base)] if args.base else []
    for variant in args.variant:
        name, _, python = variant.partition("=")
        others.append((name, python))
    for name, python in others:
        variants += [
            (f"{mode} ({name})", python, mode)
            for mode in ("file", "memory")
            if mode in modes
        ]
    with tempfile.TemporaryDirectory(prefix="sqlitebck-profile-", dir=args.dir) as t:
        tmp = Path(t)
        src, dst = tmp / "src.db", tmp / "dst.db"
        make_source(src, args.mb)
        size = src.stat().st_size
        print(f"{size / MB:.0f} MB database, {args.rounds} rounds", flush=True)
        times, grown = timing(variants, src, dst, args.rounds)
        med = {label: statistics.median(t) for label, t in times.items()}
        refs = [r for r in ("floor", "floor-wb", "stdlib") if r in med]
        print(
            "| variant | median | spread | peak RSS growth | "
            + " | ".join(f"/ {r}" for r in refs)
            + " |"
        )
        print("| --- " * (4 + len(refs)) + "|")
        for label, secs in times.items():
            cells = " | ".join(f"{med[label] / med[r]:.2f}" for r in refs)
            print(
                f"| {label} | {med[label] * 1e3:.1f} ms | "
                f"{min(secs) * 1e3:.0f}-{max(secs) * 1e3:.0f} ms | "
                f"{grown[label] / MB:.1f} MB | {cells} |",
                flush=True,
            )
        for mode in modes if args.strace else []:
            summary = strace_summary(sys.executable, mode, src, dst, tmp)
            print("\n" + summary, flush=True)
        for mode in modes if args.perf else []:
            print("\n" + perf_summary(sys.executable, mode, src, dst, tmp), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
