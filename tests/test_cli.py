"""The sqlitebck command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from helpers import cli, integrity, make_db, one_error_line, rows, writable

import sqlitebck


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
        ["a", "b", "--keep", "2"],  # b is no folder
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


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    import pty

    source = make_db(tmp_path / "src.db", rows=2000, size=1000)
    master, slave = pty.openpty()
    started = time.monotonic()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sqlitebck",
            str(source),
            str(tmp_path / "new.db"),
            "--pages",
            "20",
            "--sleep",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    os.close(slave)
    screen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        assert ready, "no output from the progress bar"
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    out, _ = child.communicate(timeout=30)
    elapsed = time.monotonic() - started
    os.close(master)
    assert child.returncode == 0
    text = screen.decode()
    frames = [f for f in text.split("\r") if f.startswith("[")]
    assert len(frames) >= 3
    first, last = frames[0], frames[-1]
    assert "%" in first and "pages" in first and "MB/s" in first
    assert "elapsed 0:00:0" in first and "ETA" in first
    assert "100.0%" in last
    assert len(frames) <= 10 * elapsed + 2  # at most ~10 redraws a second
    assert text.endswith("\r\x1b[K")  # the bar is cleared at the end
    assert out.startswith("copied ")


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
    source = make_db(tmp_path / "src.db")
    dest = tmp_path / "no" / "new.db"
    out = cli(str(source), str(dest))
    assert out.returncode == 1
    assert one_error_line(out.stderr) == (
        f"sqlitebck: error: {dest}: its folder does not exist"
    )
    out = cli(str(source), str(tmp_path / "no") + "/")
    assert out.returncode == 1
    assert "no such folder" in one_error_line(out.stderr)


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
