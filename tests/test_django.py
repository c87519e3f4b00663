"""The django-dbbackup connector sqlitebck ships, through django-dbbackup's
own ``dbbackup`` and ``dbrestore`` commands, in a Django project run as a
child process, on a WAL database that this process keeps open (as a running
site would)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import opened

pytest.importorskip("django")
pytest.importorskip("dbbackup")

OURS = "sqlitebck.django.dbbackup.SqlitebckConnector"

SETTINGS = """
SECRET_KEY = "test"
INSTALLED_APPS = ["dbbackup"]
DATABASES = {"default": {"ENGINE": __ENGINE__, "NAME": __NAME__}}
STORAGES = {
    "dbbackup": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": __STORE__},
    }
}
DBBACKUP_TMP_DIR = __TMP__
USE_TZ = True
"""


def project(folder: Path, engine: str, naming: str) -> None:
    """A Django project in ``folder`` whose database is ``folder/app.db``,
    backed up into ``folder/store``, by the connector ``naming`` says:
    django-dbbackup's own (``stock``), ours in ``DBBACKUP_CONNECTORS``, or
    ours in ``DBBACKUP_CONNECTOR_MAPPING`` (for ``engine``)."""
    (folder / "store").mkdir()
    (folder / "tmp").mkdir()
    settings = (
        SETTINGS.replace("__ENGINE__", repr(engine))
        .replace("__NAME__", repr(str(folder / "app.db")))
        .replace("__STORE__", repr(str(folder / "store")))
        .replace("__TMP__", repr(str(folder / "tmp")))
    )
    if naming == "connectors":
        settings += f"DBBACKUP_CONNECTORS = {{'default': {{'CONNECTOR': {OURS!r}}}}}\n"
    elif naming == "mapping":
        settings += f"DBBACKUP_CONNECTOR_MAPPING = {{{engine!r}: {OURS!r}}}\n"
    (folder / "settings.py").write_text(settings)


def manage(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="settings", PYTHONPATH=str(folder))
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def live_wal_database(path: Path) -> sqlite3.Connection:
    """A WAL database at ``path`` whose rows are all in its ``-wal`` file
    (never checkpointed), and the connection that keeps it so."""
    live = sqlite3.connect(path, isolation_level=None)
    assert live.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    live.execute("PRAGMA wal_autocheckpoint=0")
    live.execute("CREATE TABLE t(x)")
    live.executemany(
        "INSERT INTO t VALUES (?)", [(f"backed up {i}",) for i in range(50)]
    )
    return live


def contents(db: sqlite3.Connection | Path) -> list[tuple[str]]:
    """Rows of t, from a connection, or from a file (opened and closed)."""
    conn = opened(db)
    try:
        return conn.execute("SELECT x FROM t ORDER BY rowid").fetchall()
    finally:
        if conn is not db:
            conn.close()


@pytest.mark.parametrize(
    ("engine", "naming"),
    [
        ("django.db.backends.sqlite3", "stock"),
        ("django.db.backends.sqlite3", "connectors"),
        ("sqlitebck.django.sqlite3", "mapping"),
    ],
)
def test_dbrestore_into_a_live_wal_database(
    tmp_path: Path, engine: str, naming: str
) -> None:
    project(tmp_path, engine, naming)
    db = tmp_path / "app.db"
    live = live_wal_database(db)
    try:
        backed_up = contents(live)
        # All of it is in the -wal file: the main file is one page, its
        # header (stat(), not read: this process must not open and close
        # the file, which would drop the locks of the live connection).
        assert db.stat().st_size <= 4096

        compress = ["-z"] if naming == "mapping" else []
        done = manage(tmp_path, "dbbackup", *compress)
        assert done.returncode == 0, done.stderr
        (dump,) = [p for p in (tmp_path / "store").iterdir() if p.suffix != ".metadata"]
        if naming != "stock":
            assert OURS in (dump.parent / f"{dump.name}.metadata").read_text()
        if naming != "stock" and not compress:
            # One self-contained database file (not in WAL mode), all there.
            assert dump.read_bytes()[18:20] == b"\x01\x01"
            assert contents(dump) == backed_up

        live.execute("UPDATE t SET x = 'changed after'")
        live.execute("INSERT INTO t VALUES ('added after')")
        changed = contents(live)
        done = manage(tmp_path, "dbrestore", "--noinput", *compress)
        assert done.returncode == 0, done.stderr

        if naming == "stock":
            # The backup was written over the main file; the -wal file beside
            # it holds the changes, which still win: the restore is lost, for
            # good once the last connection checkpoints on closing.
            assert contents(live) == changed
            live.close()
            assert contents(db) == changed
            return
        # Through the connection that stayed open, and a new one.
        assert contents(live) == backed_up
        other = sqlite3.connect(db)
        assert contents(other) == backed_up
        assert other.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        other.close()
        assert live.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert list((tmp_path / "tmp").iterdir()) == []  # scratch files removed
    finally:
        live.close()


def test_dbrestore_of_a_dump_that_is_no_database(tmp_path: Path) -> None:
    project(tmp_path, "django.db.backends.sqlite3", "connectors")
    live = live_wal_database(tmp_path / "app.db")
    try:
        before = contents(live)
        bogus = tmp_path / "bogus.sqlite3"
        bogus.write_bytes(b"not a database at all, " * 500)
        done = manage(tmp_path, "dbrestore", "--noinput", "--input-path", str(bogus))
        assert done.returncode != 0
        assert "the backup: not an SQLite database" in done.stderr, done.stderr[-2000:]
        assert contents(live) == before
        assert list((tmp_path / "tmp").iterdir()) == []
    finally:
        live.close()


def test_dbbackup_excluding_tables_is_refused(tmp_path: Path) -> None:
    project(tmp_path, "django.db.backends.sqlite3", "connectors")
    live = live_wal_database(tmp_path / "app.db")
    try:
        done = manage(tmp_path, "dbbackup", "--exclude-tables", "t")
        assert done.returncode != 0
        assert "cannot leave out tables (t)" in done.stderr, done.stderr[-2000:]
        assert "SqliteConnector" in done.stderr
        assert list((tmp_path / "store").iterdir()) == []
    finally:
        live.close()
