"""The sqlitebck command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import cli, make_db, one_error_line, rows

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
