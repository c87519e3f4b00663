"""README.md's examples and recipes, run as written: its doctests, the
Python example at the top, and its shell recipes (the cron job as cron runs
it, with no environment but a short PATH)."""

from __future__ import annotations

import doctest
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import integrity, rows

README = Path(__file__).parent.parent / "README.md"
# What cron gives a job: no environment but a short PATH.
# cron's bare environment; a sanitizer's settings, when the suite runs under
# one (the nox asan session), are the test harness's and go along.
CRON = [
    "env",
    "-i",
    "PATH=/usr/bin:/bin",
    *(
        f"{name}={os.environ[name]}"
        for name in ("LD_PRELOAD", "ASAN_OPTIONS")
        if name in os.environ
    ),
    "/bin/sh",
    "-ec",
]


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks in ``language``, in order."""
    fence = re.compile(rf"^```{language}\n(.*?)^```$", re.M | re.S)
    return fence.findall(README.read_text())


def block_with(language: str, text: str) -> str:
    (found,) = [b for b in blocks(language) if text in b]
    return found


def script() -> str:
    """The installed ``sqlitebck`` command, by its absolute path."""
    found = Path(sys.executable).with_name("sqlitebck")
    if not found.exists():
        pytest.skip("console script not installed beside this interpreter")
    return str(found)


def test_doctests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parser, runner = (
        doctest.DocTestParser(),
        doctest.DocTestRunner(optionflags=doctest.ELLIPSIS),
    )
    examples = [b for b in blocks("python") if ">>> " in b]
    assert examples
    for i, text in enumerate(examples):
        test = parser.get_doctest(text, {}, f"README-{i}", str(README), 0)
        runner.run(test, clear_globs=False)
        for value in test.globs.values():
            if isinstance(value, sqlite3.Connection):
                value.close()
    failures, tried = runner.summarize(verbose=False)
    assert tried > 0 and failures == 0


def test_the_python_example_at_the_top(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    names: dict[str, object] = {}
    exec(blocks("python")[0], names)
    for value in names.values():
        if isinstance(value, sqlite3.Connection):
            value.close()
    for copy in ("backup.db", "2026-11-23.db"):
        assert rows(copy, "notes") == [] and integrity(copy) == "ok"


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CRON, command], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell recipes")
def test_the_command_line_example(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "app.db")
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.close()
    recipe = block_with("sh", ".venv/bin/sqlitebck app.db ")
    out = run(recipe.replace(".venv/bin/sqlitebck", script()), tmp_path)
    assert out.returncode == 0, out.stderr
    (backup,) = (tmp_path / "backups").iterdir()
    assert re.fullmatch(r"app-\d{8}T\d{6}\.\d{6}Z\.db", backup.name)
    assert integrity(tmp_path / "copy.db") == integrity(backup) == "ok"


@pytest.mark.skipif(sys.platform == "win32", reason="cron")
def test_the_backup_job_and_the_restore_as_cron_runs_them(tmp_path: Path) -> None:
    """The recipes, with /srv/ moved into a temporary folder and the venv's
    command where /srv/app/.venv/bin/sqlitebck stands."""

    def here(text: str) -> str:
        text = text.replace("/srv/app/.venv/bin/sqlitebck", script())
        return text.replace("/srv/", f"{tmp_path}/srv/")

    app = tmp_path / "srv" / "app" / "app.db"
    app.parent.mkdir(parents=True)
    conn = sqlite3.connect(app)
    conn.execute("PRAGMA journal_mode=WAL").fetchone()  # its statement done
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    conn.executemany("INSERT INTO t(v) VALUES (?)", [(i,) for i in range(100)])
    conn.commit()
    # The folder, created once; then the job, as cron runs it, twice.
    out = run(here(block_with("sh", "mkdir -p /srv/backups")), tmp_path)
    assert out.returncode == 0, out.stderr
    (job,) = [
        line
        for line in block_with("crontab", "sqlitebck").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    *when, command = job.split(maxsplit=5)
    assert when == ["15", "3", "*", "*", "*"]
    for _ in range(2):
        out = run(here(command), tmp_path)
        assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    backups = sorted((tmp_path / "srv" / "backups").iterdir())
    assert len(backups) == 2
    saved = rows(backups[-1])
    # The application goes on, then the backup is restored under it.
    conn.execute("DELETE FROM t WHERE id > 10")
    conn.commit()
    restore = block_with("sh", "--force --verify /srv/backups/")
    name = re.search(r"app-\S+Z\.db", restore)
    assert name is not None
    out = run(here(restore.replace(name.group(), backups[-1].name)), tmp_path)
    assert out.returncode == 0, out.stderr
    assert rows(conn) == saved and len(saved) == 100
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert sorted(os.listdir(tmp_path / "srv" / "backups")) == [b.name for b in backups]
