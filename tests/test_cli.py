"""The sqlitebck command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from helpers import (
    cli,
    hold_lock,
    integrity,
    make_db,
    one_error_line,
    release,
    rows,
    writable,
)

import sqlitebck
import sqlitebck.cli


def test_copy_prints_a_summary(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    out = cli(str(source), str(tmp_path / "new.db"))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no bar when stderr is not a terminal
    summary = out.stdout.strip()
    assert summary.startswith(f"copied {source} to {tmp_path / 'new.db'}: ")
    assert "pages" in summary and "0 restarts" in summary
    assert rows(tmp_path / "new.db") == rows(source)


def test_console_script_and_options(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("sqlitebck")
    if not script.exists():
        pytest.skip("console script not installed beside this interpreter")
    source = make_db(tmp_path / "src.db", rows=300)
    out = subprocess.run(
        [
            str(script),
            str(source),
            str(tmp_path / "new.db"),
            "--pages",
            "7",
            "--sleep",
            "0.5",
            "--timeout",
            "3",
            "--verify",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["integrity_check"] == "ok"
    assert result["bytes"] == (tmp_path / "new.db").stat().st_size
    assert result["steps"] == -(-result["pages"] // 7)
    assert set(result) == {
        "source",
        "dest",
        "pages",
        "bytes",
        "steps",
        "restarts",
        "elapsed",
        "integrity_check",
        "removed",
    }


def test_quiet_prints_nothing(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db")
    out = cli(str(source), str(tmp_path / "new.db"), "--quiet")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_existing_destination_needs_force(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    dest = make_db(tmp_path / "dst.db", rows=3)
    before = dest.read_bytes()
    out = cli(str(source), str(dest))
    assert out.returncode == 1
    assert str(dest) in one_error_line(out.stderr)
    assert "--force" in out.stderr
    assert dest.read_bytes() == before
    out = cli(str(source), str(dest), "--force", "-q")
    assert out.returncode == 0
    assert rows(dest) == rows(source)


def test_errors_are_one_line_naming_the_file(tmp_path: Path) -> None:
    out = cli(str(tmp_path / "missing.db"), str(tmp_path / "new.db"))
    assert out.returncode == 1
    assert one_error_line(out.stderr) == (
        f"sqlitebck: error: {tmp_path / 'missing.db'}: no such file or directory"
    )
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    out = cli(str(junk), str(tmp_path / "new.db"))
    assert out.returncode == 1
    line = one_error_line(out.stderr)
    assert str(junk) in line and "not a database" in line
    source = make_db(tmp_path / "src.db")
    out = cli(str(source), str(source), "--force")
    assert out.returncode == 1
    assert "same file" in one_error_line(out.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.db", "src.db"]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["only-one"],
        ["a", "b", "--pages", "x"],
        ["a", "b", "--pages", "99999999999"],
        ["a", "b", "--sleep", "-1"],
        ["a", "b", "--timeout", "-2"],
        ["a", "b", "--nope"],
        ["a", "b", "--demo"],
        ["a", "b", "--sleep", "1e300"],
        ["a", "b", "--sleep", "inf"],
        ["a", "b", "--sleep", "nan"],
        ["a", "b", "--timeout", "nan"],
        ["a", "b", "--timeout", "x"],
        ["a", "b", "--pages", "1.5"],
        ["a", "b", "--keep", "0"],
        ["a", "b", "--quiet", "--json"],
        ["a", "b", "-q", "--json"],
        ["a", ""],
        ["", "b"],
        ["--demo", "--keep", "1"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    out = cli(*args)
    assert out.returncode == 2
    assert "usage:" in out.stderr and "Traceback" not in out.stderr


def test_version_and_help() -> None:
    out = cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == (
        f"sqlitebck {sqlitebck.__version__} (SQLite {sqlitebck.sqlite_version})"
    )
    out = cli("--help")
    assert out.returncode == 0
    assert "130" in out.stdout and "--force" in out.stdout


def test_demo() -> None:
    out = cli("--demo")
    assert out.returncode == 0, out.stderr
    assert "sample database" in out.stdout
    assert out.stdout.strip().endswith("integrity_check ok")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_exits_130_and_leaves_no_destination(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    dest = tmp_path / "new.db"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sqlitebck",
            str(source),
            str(dest),
            "--pages",
            "1",
            "--sleep",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    deadline = time.monotonic() + 30
    while not any(p.name.endswith(".sqlitebck-tmp") for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 130
    assert out == ""
    assert err.strip() == f"sqlitebck: interrupted; {dest} left as it was"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.db"]


class Terminal:
    """The command run with its stderr on a pseudo-terminal of ``columns``
    columns (stdout a pipe), everything it draws there kept in ``output``."""

    def __init__(self, columns: int, *args: str) -> None:
        import pty

        self.master, slave = pty.openpty()
        self._slave = slave
        self.resize(columns)
        self.child = subprocess.Popen(
            [sys.executable, "-m", "sqlitebck", *args],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        self.output = b""

    def resize(self, columns: int) -> None:
        import fcntl
        import struct
        import termios

        size = struct.pack("HHHH", ROWS, columns, 0, 0)
        fcntl.ioctl(self._slave, termios.TIOCSWINSZ, size)

    def read(self) -> bool:
        """Read what the command drew next; False once it closed the terminal."""
        ready, _, _ = select.select([self.master], [], [], 60)
        assert ready, "nothing drawn for a minute"
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: the command closed the terminal
            return False
        self.output += chunk
        return bool(chunk)

    def read_until(self, text: bytes) -> None:
        while text not in self.output:
            assert self.read(), f"ended before drawing {text!r}: {self.output!r}"

    def finish(self) -> tuple[int, str]:
        """Let the command end; return its exit code and stdout."""
        os.close(self._slave)
        while self.read():
            pass
        out, _ = self.child.communicate(timeout=60)
        os.close(self.master)
        return self.child.returncode, out


ROWS = 6


def frames(output: bytes) -> list[str]:
    """The lines the progress bar drew, in order."""
    drawn = (f.replace("\x1b[K", "") for f in output.decode().split("\r"))
    return [f for f in drawn if f.strip()]


def screen_after_each_frame(output: bytes, columns: int) -> list[str]:
    """Feed ``output`` to a terminal emulator of ``columns`` columns one frame
    at a time, checking after each that the frame is the only thing on the
    screen, on one row, as drawn (nothing wrapped, nothing stale left
    beside or below it); return the first row after each."""
    pyte = pytest.importorskip("pyte")
    screen = pyte.Screen(columns, ROWS)
    stream = pyte.ByteStream(screen)
    seen = []
    for piece in output.split(b"\r"):
        stream.feed(b"\r" + piece)
        frame = piece.decode().replace("\x1b[K", "")
        assert screen.cursor.y == 0, f"wrapped at {columns}: {frame!r}"
        assert screen.display[0].rstrip() == frame.rstrip(), screen.display
        assert all(not row.strip() for row in screen.display[1:]), screen.display
        seen.append(screen.display[0].rstrip())
    return seen


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
@pytest.mark.parametrize("columns", [40, 80, 200])
def test_progress_bar_fits_the_terminal(tmp_path: Path, columns: int) -> None:
    source = make_db(tmp_path / "src.db", rows=2000, size=1000)
    args = [str(source), str(tmp_path / "new.db"), "--pages", "20", "--sleep", "20"]
    term = Terminal(columns, *args)
    code, out = term.finish()
    assert code == 0
    assert out.startswith("copied ")
    drawn = frames(term.output)
    assert len(drawn) >= 3
    assert all(len(line) < columns for line in drawn)  # the last column spare
    shown = screen_after_each_frame(term.output, columns)
    assert shown[-1] == ""  # the bar is cleared at the end
    first, last = drawn[0], drawn[-1]
    assert "100.0%" in last and "ETA" in last
    # What each width shows: the percentage and ETA always, the bar from 40
    # columns, pages from 80, everything at 200.
    assert "[" in last
    if columns >= 80:
        assert "pages" in first
    if columns >= 200:
        assert "MB/s" in first and "elapsed 0:00:0" in first
    assert term.output.endswith(b"\r\x1b[K")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
def test_progress_bar_follows_a_resize(tmp_path: Path) -> None:
    """A terminal narrowed during the copy gets lines that fit it from the
    next redraw on."""
    source = make_db(tmp_path / "src.db", rows=2000, size=1000)
    args = [str(source), str(tmp_path / "new.db"), "--pages", "1", "--sleep", "50"]
    term = Terminal(200, *args)
    term.read_until(b"MB/s")
    resized_at = len(term.output)
    term.resize(40)
    while not any(len(f) < 40 for f in frames(term.output[resized_at:])):
        assert term.read()
    term.child.send_signal(signal.SIGINT)  # enough: end it early
    code, _ = term.finish()
    assert code == 130
    after = frames(term.output[resized_at:])
    assert after[-1].startswith("sqlitebck: interrupted; ")  # (not the bar)
    after = after[:-1]
    narrow = next(i for i, f in enumerate(after) if len(f) < 40)
    assert all(len(f) < 40 for f in after[narrow:])
    assert not (tmp_path / "new.db").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
@pytest.mark.parametrize("columns", [40, 80])
def test_waiting_for_a_lock_shows_no_bar(tmp_path: Path, columns: int) -> None:
    """Before the first step nothing is known: no bar, no percentage, until
    the lock is released and the copy runs."""
    source = make_db(tmp_path / "src.db", rows=2000, size=1000)
    holder = hold_lock(source)
    args = [str(source), str(tmp_path / "new.db"), "--pages", "20", "--timeout", "120"]
    try:
        term = Terminal(columns, *args)
        term.read_until(b"waiting for a lock")
    finally:
        release(holder)
    code, out = term.finish()
    assert code == 0, term.output
    assert out.startswith("copied ")
    screen_after_each_frame(term.output, columns)
    drawn = frames(term.output)
    waiting = [f for f in drawn if "waiting for a lock" in f]
    first_step = next(i for i, f in enumerate(drawn) if "%" in f)
    assert drawn.index(waiting[0]) < first_step
    assert all("%" not in f and "[" not in f for f in drawn[:first_step])
    assert "100.0%" in drawn[-1]


def test_progress_bar_redraws_at_most_ten_times_a_second() -> None:
    import io

    from sqlitebck.cli import ProgressBar

    out = io.StringIO()
    times = iter([0.0, 0.0, 0.05, 0.099, 0.1, 0.15, 0.21, 0.22])
    bar = ProgressBar(out, page_size=4096, clock=times.__next__)
    for remaining in (9, 8, 7, 6, 5, 4):
        bar(0, remaining, 10)
    bar(101, 0, 10)  # the last report is always drawn
    assert [f.split()[1] for f in frames(out.getvalue().encode())] == [
        "10.0%",
        "40.0%",
        "60.0%",
        "100.0%",
    ]


def test_verify_never_tracebacks(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    dest = tmp_path / "new.db"
    # A schema the source lacks: the copy fails before --verify runs.
    out = cli(str(source), str(dest), "--verify", "--source-name", "nope")
    assert out.returncode == 1
    assert "nope" in one_error_line(out.stderr)
    # A damaged copy: --verify says so in one line.
    broken = make_db(tmp_path / "broken.db", rows=2000)
    conn = sqlite3.connect(broken)
    conn.execute("CREATE INDEX t_v ON t(v)")
    conn.commit()
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='t_v'")
    page = root.fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(broken, "r+b") as f:  # scribble over the index's root page
        f.seek((page - 1) * size + 100)
        f.write(os.urandom(size - 200))
    out = cli(str(broken), str(dest), "--verify")
    assert out.returncode == 1
    line = one_error_line(out.stderr)
    assert str(dest) in line and "integrity_check" in line


def test_missing_destination_folder_is_named(tmp_path: Path) -> None:
    """DEST's folder, or a backup folder, that is missing (an unmounted
    disk, say): the same one-line error, naming the folder to create, with
    or without --keep."""
    source = make_db(tmp_path / "src.db")
    folder = tmp_path / "no"
    expected = (
        f"sqlitebck: error: {folder}: no such folder; "
        f"create it first (mkdir -p {folder})"
    )
    for args in (
        [str(folder / "new.db")],
        [str(folder), "--keep", "3"],
        [str(folder), "--keep", "3", "--json", "--verify"],
    ):
        out = cli(str(source), *args)
        assert (out.returncode, out.stdout) == (1, ""), out.stderr
        assert one_error_line(out.stderr) == expected
    for args in ([f"{folder}/"], [f"{folder}/", "--keep", "3"]):
        out = cli(str(source), *args)
        assert out.returncode == 1
        assert one_error_line(out.stderr) == expected.replace(
            f"{folder}:", f"{folder}/:"
        ).replace(f"-p {folder})", f"-p {folder}/)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.db"]
    # An existing file is no folder: that, with --keep, is a usage error.
    out = cli(str(source), str(source), "--keep", "3")
    assert out.returncode == 2 and "--keep needs a folder" in out.stderr


def test_a_text_file_is_not_a_database(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("a line of text\n" * 100)
    out = cli(str(notes), str(tmp_path / "new.db"))
    assert out.returncode == 1
    assert one_error_line(out.stderr) == (
        f"sqlitebck: error: {notes}: not an SQLite database"
    )


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_an_unreadable_source_says_permission_denied() -> None:
    """Run as another user than the file's owner (nobody, through setpriv,
    when the tests run as root, who may read anything)."""
    folder = Path(tempfile.mkdtemp())  # not under pytest's private folder
    try:
        folder.chmod(0o777)
        source = make_db(folder / "src.db")
        source.chmod(0o200)
        user: list[str] = []
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root, and no setpriv to be another user")
            user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
            probe = subprocess.run(
                [*user, sys.executable, "-c", "import sqlitebck"],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if probe.returncode != 0:
                # pyenv's interpreters under root's private home, say.
                pytest.skip(f"this Python cannot run as another user: {probe.stderr}")
        out = subprocess.run(
            [*user, sys.executable, "-m", "sqlitebck", "src.db", "new.db"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 1, out.stderr
        assert one_error_line(out.stderr) == (
            "sqlitebck: error: src.db: permission denied: this user may not "
            "read it; give it read permission, or copy it as a user who may "
            "read it"
        )
        assert sorted(p.name for p in folder.iterdir()) == ["src.db"]
    finally:
        shutil.rmtree(folder)


def test_a_lock_that_outlasts_the_timeout_names_the_option(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db")
    holder = hold_lock(source)
    try:
        out = cli(str(source), str(tmp_path / "new.db"), "--timeout", "0.2")
    finally:
        release(holder)
    assert out.returncode == 1
    line = one_error_line(out.stderr)
    assert line.startswith(f"sqlitebck: error: copying {source} to ")
    assert "locked" in line
    assert line.endswith(
        "--timeout 0.2 seconds: try again, or wait longer with a larger --timeout"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.db"]


def test_pages_below_zero_is_one_snapshot_as_in_copy(tmp_path: Path) -> None:
    """The command and copy() share one rule: pages <= 0 copies the whole
    database as one consistent snapshot, and --help says so."""
    source = make_db(tmp_path / "src.db", rows=2000, size=1000)
    steps = {}
    for pages in ("-1", "0", "1"):
        dest = tmp_path / f"new{pages}.db"
        out = cli(str(source), str(dest), "--pages", pages, "--json")
        assert out.returncode == 0, out.stderr
        steps[pages] = json.loads(out.stdout)["steps"]
        assert rows(dest) == rows(source)
    assert steps["-1"] == steps["0"] < steps["1"]
    assert "0 (default) or less: the whole" in " ".join(cli("--help").stdout.split())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX special files")
def test_special_destinations_are_refused(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db")
    out = cli(str(source), os.devnull, "--force")
    assert out.returncode == 1
    assert "not writing" in one_error_line(out.stderr)
    assert not os.path.exists(os.devnull + "-journal")
    notes = tmp_path / "notes"
    notes.write_bytes(b"x")
    out = cli(str(source), str(notes), "--force")
    assert out.returncode == 1
    assert "not a database" in one_error_line(out.stderr)
    assert notes.read_bytes() == b"x"


def test_keep_wal(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", journal="wal")
    assert cli(str(source), str(tmp_path / "plain.db")).returncode == 0
    assert cli(str(source), str(tmp_path / "wal.db"), "--keep-wal").returncode == 0
    assert (tmp_path / "plain.db").read_bytes()[18:20] == b"\x01\x01"
    assert (tmp_path / "wal.db").read_bytes()[18:20] == b"\x02\x02"
    out = cli(str(source), str(tmp_path / "v.db"), "--keep-wal", "--verify")
    assert out.returncode == 0
    assert not (tmp_path / "v.db-wal").exists()  # --verify leaves nothing


# Ctrl-C at a chosen moment: the real copy runs, and the process sends itself
# SIGINT when the copy reports it has committed (status 101), or just after
# copy() returns.
INTERRUPT_AT = """
    import os, signal, sys
    import sqlitebck, sqlitebck.cli
    real = sqlitebck.copy
    def copy(*args, **kwargs):
        if WHEN == "commit":
            theirs = kwargs["progress"]
            def interrupt(status, remaining, total):
                theirs(status, remaining, total)
                if status == 101:
                    os.kill(os.getpid(), signal.SIGINT)
            kwargs["progress"] = interrupt
        result = real(*args, **kwargs)
        if WHEN == "returned":
            os.kill(os.getpid(), signal.SIGINT)
        return result
    sqlitebck.copy = copy
    sys.exit(sqlitebck.cli.main(ARGS))
"""


def interrupted_cli(when: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = INTERRUPT_AT.replace("WHEN", repr(when)).replace("ARGS", repr(list(args)))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tempfile.gettempdir(),
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_after_the_commit_reports_success(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    # Existing DEST: committed when the final progress call comes.
    dest = make_db(tmp_path / "dst.db", rows=3)
    out = interrupted_cli("commit", str(source), str(dest), "--force")
    assert out.returncode == 0, out.stderr
    assert "holds the new copy" in out.stderr and "Traceback" not in out.stderr
    assert rows(dest) == rows(source)
    # New DEST: not yet published then, so it is left absent: 130.
    new = tmp_path / "new.db"
    out = interrupted_cli("commit", str(source), str(new))
    assert out.returncode == 130, out.stderr
    assert out.stderr.strip() == f"sqlitebck: interrupted; {new} left as it was"
    assert not new.exists()
    # After copy() returned: published, success.
    out = interrupted_cli("returned", str(source), str(new), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["dest"] == str(new)
    assert rows(new) == rows(source)
    # With --verify still to run: the copy is there, unverified: exit 1.
    out = interrupted_cli("returned", str(source), str(dest), "--force", "--verify")
    assert out.returncode == 1
    assert "not verified" in one_error_line(out.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.db", "new.db", "src.db"]


READY_THEN_MAIN = """
import sys
import sqlitebck.cli
try:
    print("ready", flush=True)
    code = sqlitebck.cli.main()  # argv: sys.argv[1:]
except KeyboardInterrupt:  # before main() began: nothing was done
    code = 130
sys.exit(code)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("existing", [True, False])
def test_ctrl_c_at_random_moments_tells_the_truth(
    tmp_path: Path, existing: bool
) -> None:
    """130 only with DEST as it was (absent, if new); 0 only with DEST holding
    the copy; either way DEST passes integrity_check, nothing is locked and
    nothing is left behind. The instants are spread from before the copy
    starts to after it ends, the first milliseconds densely."""
    source = make_db(tmp_path / "src.db", rows=3000)
    dest = tmp_path / "dst.db"
    new = rows(source)
    rng = random.Random(1729)
    codes = []
    for i in range(20):
        if dest.exists():
            dest.unlink()
        if existing:
            make_db(dest, rows=3)
        old = rows(dest) if existing else None
        args = [str(source), str(dest), "--force", "--pages", "5", "--sleep", "1"]
        child = subprocess.Popen(
            [sys.executable, "-c", READY_THEN_MAIN, *args, "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0, 0.01) if i % 2 else rng.uniform(0, 0.15))
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert "Traceback" not in err
        codes.append(child.returncode)
        if child.returncode == 130:
            assert (rows(dest) if dest.exists() else None) == old, err
        else:
            assert child.returncode == 0, err
            assert rows(dest) == new
        if dest.exists():
            assert integrity(dest) == "ok"
            assert writable(dest)
        assert writable(source)
        assert sorted(p.name for p in tmp_path.iterdir()) == (
            ["dst.db", "src.db"] if dest.exists() else ["src.db"]
        )
    print(codes)


def source_checkout(folder: Path) -> Path:
    """A copy of the package's source tree in ``folder``, as a checkout has
    it before any build: no compiled core."""
    shutil.copytree(
        Path(sqlitebck.__file__).parent,
        folder / "sqlitebck",
        ignore=shutil.ignore_patterns(
            "_sqlitebck*.so", "_sqlitebck*.pyd", "__pycache__"
        ),
    )
    (folder / "build_sqlitebck.py").write_text("# the cffi build script\n")
    return folder


def test_run_from_a_source_checkout_says_why_in_one_line(tmp_path: Path) -> None:
    checkout = source_checkout(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=checkout,
            capture_output=True,
            text=True,
            timeout=120,
        )

    # No site-packages (-S): the checkout is all there is.
    alone = (
        f"the source checkout at {checkout} has no compiled core and no "
        "sqlitebck is installed: `pip install .` (then run from another "
        "folder) or `pip install -e .` in it"
    )
    out = run("-S", "-m", "sqlitebck", "app.db", "backup.db")
    assert (out.returncode, out.stdout) == (1, "")
    assert one_error_line(out.stderr) == f"sqlitebck: error: {alone}"
    out = run("-S", "-c", "import sqlitebck")
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == f"ImportError: {alone}"
    assert "ModuleNotFoundError" not in out.stderr
    # With the installed package: the checkout hides it, unless the install
    # is an editable one (a finder that maps the name before sys.path).
    out = run("-m", "sqlitebck", "--version")
    if out.returncode == 0:
        assert out.stdout.startswith(f"sqlitebck {sqlitebck.__version__} ")
    else:
        installed = Path(sqlitebck.__file__).parent
        assert (out.returncode, out.stdout) == (1, "")
        assert one_error_line(out.stderr) == (
            f"sqlitebck: error: the source checkout at {checkout} hides the "
            f"sqlitebck installed at {installed}, and has no compiled core: run "
            "the `sqlitebck` command, or from another folder, or build in place "
            "with `pip install -e .`"
        )


def test_a_ctrl_c_that_python_drops_still_stops_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A KeyboardInterrupt raised where Python cannot propagate it (a weakref
    callback, as when a Ctrl-C strikes the end of an import) is only printed
    by Python, as "Exception ignored", and lost: the command keeps it, and
    stops the copy at its next progress report, DEST left as it was."""
    import gc
    import weakref

    source = make_db(tmp_path / "src.db", rows=3000)
    dest = tmp_path / "new.db"

    class Thing:
        pass

    def interrupt(ref: object) -> None:
        raise KeyboardInterrupt

    thing = [Thing()]
    ref = weakref.ref(thing[0], interrupt)
    copy = sqlitebck.cli.Run.copy

    def copy_after_a_dropped_interrupt(self: sqlitebck.cli.Run) -> int:
        thing.clear()  # the callback runs, and Python drops what it raised
        gc.collect()  # at once on PyPy too
        return copy(self)

    monkeypatch.setattr(sqlitebck.cli.Run, "copy", copy_after_a_dropped_interrupt)
    handler = signal.getsignal(signal.SIGINT)
    code = sqlitebck.cli.main([str(source), str(dest), "--pages", "5", "-q"])
    # Called with arguments (not as the program), it leaves Ctrl-C alone.
    assert signal.getsignal(signal.SIGINT) is handler
    assert ref() is None
    err = capsys.readouterr().err
    assert code == 130 and not dest.exists(), err
    assert "Exception ignored" not in err and "Traceback" not in err
    assert sqlitebck.cli._dropped_interrupts == []
