"""A folder as DEST: dated backups, and --keep N rotation, across runs."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from helpers import cli, make_db, one_error_line, rows

from sqlitebck.cli import Folder

STAMPED = re.compile(r"app-\d{8}T\d{6}\.\d{6}Z\.db\Z")


def backups(folder: Path) -> list[str]:
    """Backups of app.db in ``folder``: regular files with stamped names."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if STAMPED.match(p.name) and p.is_file() and not p.is_symlink()
    )


def test_dated_backups_sort_in_time_order_and_never_collide(tmp_path: Path) -> None:
    source = make_db(tmp_path / "app.db", rows=100)
    folder = tmp_path / "backups"
    folder.mkdir()
    written = []
    for _ in range(4):
        out = cli(str(source), str(folder) + "/", "--json")
        assert out.returncode == 0, out.stderr
        written.append(json.loads(out.stdout)["dest"])
    names = [os.path.basename(p) for p in written]
    assert names == backups(folder) == sorted(set(names))  # in time order
    assert all(rows(folder / n) == rows(source) for n in names)
    # The stamp is UTC, close to now.
    stamp = datetime.strptime(names[-1][4:-3], "%Y%m%dT%H%M%S.%fZ")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    assert abs((now - stamp).total_seconds()) < 600


def test_a_taken_name_moves_on_by_a_microsecond(tmp_path: Path) -> None:
    folder = Folder(str(tmp_path), "/data/app.db")
    when = datetime(2026, 11, 23, 4, 15, 0, 999999, tzinfo=timezone.utc)
    first = folder.name(when)
    Path(first).touch()
    assert folder.new_name(when) == str(tmp_path / "app-20261123T041501.000000Z.db")
    assert folder.new_name(when) > first


def test_keep_deletes_only_the_oldest_backups_of_that_source(tmp_path: Path) -> None:
    source = make_db(tmp_path / "app.db", rows=50)
    folder = tmp_path / "backups"
    folder.mkdir()
    decoys = [
        "app-20000101T000000.000000Z.db-wal",  # a side file
        "app-20000101T000000.000000Z.db.txt",
        "app-x-20000101T000000.000000Z.db",  # another source's backups
        "other-20000101T000000.000000Z.db",
        "app-2000.db",
        "app.db",
        "notes.txt",
    ]
    for name in decoys:
        (folder / name).write_text("keep me")
    (folder / "app-20000101T000000.000001Z.db").mkdir()  # a folder, not a file
    (folder / "app-20000101T000000.000002Z.db").symlink_to(source)  # a link
    old = folder / "app-19990101T000000.000000Z.db"
    old.write_text("an old backup")
    for run in range(1, 6):
        out = cli(str(source), str(folder), "--keep", "3", "--verify")
        assert out.returncode == 0, out.stderr
        assert "integrity_check ok" in out.stdout
        assert len(backups(folder)) == min(run + 1, 3)
    assert not old.exists()
    for name in decoys:
        assert (folder / name).read_text() == "keep me"
    assert (folder / "app-20000101T000000.000001Z.db").is_dir()
    assert (folder / "app-20000101T000000.000002Z.db").is_symlink()
    assert source.exists()
    out = cli(str(source), str(folder), "--keep", "1", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert len(result["removed"]) == 3
    assert backups(folder) == [os.path.basename(result["dest"])]
    assert not any(p.name.endswith(".sqlitebck-tmp") for p in folder.iterdir())


def test_keep_removes_nothing_when_verification_fails(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    source = make_db(tmp_path / "app.db", rows=2000)
    for _ in range(2):
        assert cli(str(source), str(folder)).returncode == 0
    kept = backups(folder)
    # Damage an index of the source: the copy is made, and fails --verify.
    conn = sqlite3.connect(source)
    conn.execute("CREATE INDEX t_v ON t(v)")
    conn.commit()
    page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='t_v'")
    root = page.fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(source, "r+b") as f:
        f.seek((root - 1) * size + 100)
        f.write(os.urandom(size - 200))
    out = cli(str(source), str(folder), "--keep", "1", "--verify")
    assert out.returncode == 1
    assert "integrity_check failed" in one_error_line(out.stderr)
    assert set(kept) < set(backups(folder))  # nothing old was removed


def test_keep_needs_a_folder(tmp_path: Path) -> None:
    # (A DEST that does not exist is a missing folder: see test_cli.py.)
    source = make_db(tmp_path / "app.db")
    one = make_db(tmp_path / "one.db")
    out = cli(str(source), str(one), "--keep", "2", "--force")
    assert out.returncode == 2
    assert "--keep needs a folder" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "one.db"]


def test_stem_and_suffix_come_from_the_source(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    for name in ("data.sqlite3", "plain", "two.dots.db"):
        make_db(tmp_path / name)
        assert cli(str(tmp_path / name), str(folder)).returncode == 0
    names = sorted(p.name for p in folder.iterdir())
    patterns = [r"data-\S+Z\.sqlite3", r"plain-\S+Z", r"two\.dots-\S+Z\.db"]
    assert [bool(re.fullmatch(p, n)) for p, n in zip(patterns, names)] == [True] * 3
