"""The connection objects that SQLAlchemy, Django and sqlite-utils hand out."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import Connect, make_db, python, rows

import sqlitebck
from sqlitebck._frameworks import connection_of

sqlalchemy = pytest.importorskip("sqlalchemy")
sqlite_utils = pytest.importorskip("sqlite_utils")


def test_sqlalchemy_connections_on_either_side(
    tmp_path: Path, connect: Connect
) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    engine = sqlalchemy.create_engine(f"sqlite:///{source}")
    try:
        with engine.connect() as conn:  # a Connection
            memory = connect(":memory:")
            result = sqlitebck.copy(conn, memory)
            assert result.pages > 1 and rows(memory) == rows(source)
            sqlitebck.copy(conn, tmp_path / "copy.db", pages=5)
            assert rows(tmp_path / "copy.db") == rows(source)
        raw = engine.raw_connection()  # a pooled connection
        try:
            with sqlitebck.Backup(raw, tmp_path / "backup.db") as backup:
                while not backup.step(7):
                    pass
            assert rows(tmp_path / "backup.db") == rows(source)
        finally:
            raw.close()
        # As the destination: restore a backup into the application's database.
        other = make_db(tmp_path / "other.db", rows=20)
        with engine.connect() as conn:
            sqlitebck.copy(other, conn)
            count = conn.execute(sqlalchemy.text("SELECT count(*) FROM t")).scalar()
            assert count == 20
    finally:
        engine.dispose()


def test_sqlite_utils_database_on_either_side(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=50)
    db = sqlite_utils.Database(source)
    try:
        sqlitebck.copy(db, tmp_path / "copy.db")
        assert rows(tmp_path / "copy.db") == rows(source)
        # sqlite-utils uses pysqlite3 where it is installed: both ends are
        # opened by sqlite-utils, so that they share one SQLite library.
        target = sqlite_utils.Database(memory=True)
        try:
            sqlitebck.copy(db, target)
            assert target["t"].count == 50
        finally:
            target.close()
    finally:
        db.close()


def test_unwrapped_connections_get_the_usual_checks(tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        raw = engine.raw_connection()
        raw.close()  # back to the pool: no driver connection behind it
        with pytest.raises(TypeError, match="no open connection"):
            sqlitebck.copy(raw, tmp_path / "b.db")
        with engine.connect() as conn, pytest.raises(ValueError, match="same"):
            sqlitebck.copy(conn, conn)
    finally:
        engine.dispose()
    assert not (tmp_path / "b.db").exists()


def test_other_objects_are_not_guessed_at(connect: Connect) -> None:
    class Impostor:  # has the attributes, but is no known framework class
        conn = connect(":memory:")
        connection = conn

    impostor = Impostor()
    assert connection_of(impostor) is impostor
    with pytest.raises(TypeError):
        sqlitebck.copy(impostor, connect(":memory:"))


def test_aiosqlite_connections_are_for_acopy(tmp_path: Path) -> None:
    aiosqlite = pytest.importorskip("aiosqlite")
    import asyncio

    async def main() -> None:
        async with aiosqlite.connect(":memory:") as db:
            with pytest.raises(TypeError, match="acopy"):
                sqlitebck.copy(db, tmp_path / "x.db")

    asyncio.run(main())


def test_sqlalchemy_engine_lends_a_pooled_connection_for_the_copy(
    tmp_path: Path,
) -> None:
    source = make_db(tmp_path / "src.db", rows=300)
    engine = sqlalchemy.create_engine(f"sqlite:///{source}")
    pool = engine.pool
    try:
        sqlitebck.copy(engine, tmp_path / "copy.db", pages=5)
        assert rows(tmp_path / "copy.db") == rows(source)
        assert pool.checkedout() == 0
        # Given back on error too (a progress callback that raises).
        with pytest.raises(ZeroDivisionError):
            sqlitebck.copy(engine, tmp_path / "nope.db", 1, progress=lambda *a: 1 / 0)
        assert pool.checkedout() == 0
        # As the destination: restored into the engine's database.
        other = make_db(tmp_path / "other.db", rows=20)
        sqlitebck.copy(other, engine)
        assert rows(source) == rows(other) and pool.checkedout() == 0
        # Backup keeps its ends while the caller steps: it says what to pass.
        with pytest.raises(TypeError, match=r"base\.Engine.*engine\.connect\(\)"):
            sqlitebck.Backup(engine, tmp_path / "backup.db")
    finally:
        engine.dispose()
    assert not (tmp_path / "nope.db").exists()
    assert not (tmp_path / "backup.db").exists()


def test_orm_session_copies_through_its_transaction(tmp_path: Path) -> None:
    from sqlalchemy.orm import Session

    source = make_db(tmp_path / "src.db", rows=100)
    engine = sqlalchemy.create_engine(f"sqlite:///{source}")
    try:
        with Session(engine) as session:
            sqlitebck.copy(session, tmp_path / "copy.db")
            assert rows(tmp_path / "copy.db") == rows(source)
            session.execute(sqlalchemy.text("DELETE FROM t WHERE rowid > 10"))
            # Uncommitted changes: the session's rules are named.
            with pytest.raises(sqlite3.OperationalError, match=r"session\.commit\(\)"):
                sqlitebck.copy(tmp_path / "copy.db", session)
            session.rollback()
            session.execute(sqlalchemy.text("DELETE FROM t WHERE rowid > 10"))
            session.commit()
            sqlitebck.copy(tmp_path / "copy.db", session)  # restored
            count = session.execute(sqlalchemy.text("SELECT count(*) FROM t"))
            assert count.scalar() == 100
    finally:
        engine.dispose()


def test_sqlmodel_session(tmp_path: Path) -> None:
    sqlmodel = pytest.importorskip("sqlmodel")
    source = make_db(tmp_path / "src.db", rows=40)
    engine = sqlmodel.create_engine(f"sqlite:///{source}")
    try:
        with sqlmodel.Session(engine) as session:
            sqlitebck.copy(session, tmp_path / "copy.db")
        assert rows(tmp_path / "copy.db") == rows(source)
    finally:
        engine.dispose()


def test_flask_sqlalchemy_db_engine_and_session(tmp_path: Path) -> None:
    flask = pytest.importorskip("flask")
    flask_sqlalchemy = pytest.importorskip("flask_sqlalchemy")
    source = make_db(tmp_path / "src.db", rows=60)
    app = flask.Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{source}"
    db = flask_sqlalchemy.SQLAlchemy(app)
    with app.app_context():
        try:
            assert type(db.session).__name__ == "scoped_session"
            sqlitebck.copy(db.engine, tmp_path / "engine.db")
            sqlitebck.copy(db.session, tmp_path / "session.db")
            sqlitebck.copy(db, tmp_path / "db.db")
            db.session.remove()
        finally:
            db.engine.dispose()
    for name in ("engine", "session", "db"):
        assert rows(tmp_path / f"{name}.db") == rows(source)


def test_peewee_database(tmp_path: Path) -> None:
    peewee = pytest.importorskip("peewee")
    source = make_db(tmp_path / "src.db", rows=50)
    db = peewee.SqliteDatabase(str(source))
    # Closed: opened for the copy, and closed again.
    sqlitebck.copy(db, tmp_path / "copy.db")
    assert db.is_closed() and rows(tmp_path / "copy.db") == rows(source)
    db.connect()
    try:
        sqlitebck.copy(make_db(tmp_path / "other.db", rows=5), db)
        assert db.execute_sql("SELECT count(*) FROM t").fetchone() == (5,)
        assert not db.is_closed()
    finally:
        db.close()
    from playhouse.sqliteq import SqliteQueueDatabase

    queued = SqliteQueueDatabase(str(source), autostart=False)
    with pytest.raises(TypeError, match=r"SqliteQueueDatabase.*db\.database"):
        sqlitebck.copy(queued, tmp_path / "nope.db")
    assert not (tmp_path / "nope.db").exists()


def test_datasette_database_is_for_acopy(tmp_path: Path) -> None:
    datasette_app = pytest.importorskip("datasette.app")
    source = make_db(tmp_path / "src.db", rows=70)
    before = rows(source)
    ds = datasette_app.Datasette([str(source)])
    db = ds.get_database("src")
    with pytest.raises(TypeError, match=r"database\.Database.*acopy.*db\.path"):
        sqlitebck.copy(db, tmp_path / "nope.db")

    async def main() -> None:
        await sqlitebck.acopy(db, tmp_path / "copy.db", pages=3)
        await sqlitebck.acopy(make_db(tmp_path / "other.db", rows=7), db)

    asyncio.run(main())
    assert rows(tmp_path / "copy.db") == before
    assert rows(source) == rows(tmp_path / "other.db")
    for conn in db._all_file_connections:
        conn.close()
    if db._write_connection is not None:
        db._write_connection.close()


def test_refusals_name_the_type_and_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"Engine, Connection or Session.*a path"):
        sqlitebck.copy(object(), tmp_path / "x.db")  # type: ignore[arg-type]


# Errors that say what to do, where users meet them (the other messages are
# tested with their objects above).


def test_an_encrypted_destination_path_is_said_to_look_encrypted(
    tmp_path: Path,
) -> None:
    cipher = pytest.importorskip("sqlcipher3")
    path = tmp_path / "secret.db"
    conn = cipher.connect(str(path))
    try:
        conn.execute("PRAGMA key='k'")
        conn.execute("CREATE TABLE t(x)")
        conn.commit()
    finally:
        conn.close()
    before = path.read_bytes()
    source = make_db(tmp_path / "src.db", rows=5)
    with pytest.raises(sqlite3.DatabaseError) as info:
        sqlitebck.copy(source, path)
    message = str(info.value)
    assert str(path) in message and "looks encrypted" in message
    assert "sqlcipher3" in message and path.read_bytes() == before
    # Junk of no page size is not said to be encrypted.
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"precious notes\n" * 100)
    with pytest.raises(sqlite3.DatabaseError) as info:
        sqlitebck.copy(source, junk)
    assert "looks encrypted" not in str(info.value)


def test_a_source_locked_exclusively_elsewhere_says_it_may_be(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=5)
    holder = python(
        f"""
        import sqlite3, sys
        conn = sqlite3.connect({str(source)!r})
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("DELETE FROM t WHERE rowid = 1")
        conn.commit()  # the EXCLUSIVE lock stays: until the connection closes
        print("held", flush=True)
        sys.stdin.read()
        """
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(sqlite3.OperationalError, match="locking_mode=EXCLUSIVE"):
            sqlitebck.copy(source, tmp_path / "copy.db", timeout=0.2)
    finally:
        holder.communicate("")
    assert not (tmp_path / "copy.db").exists()
    sqlitebck.copy(source, tmp_path / "copy.db")  # closed: free again
    assert len(rows(tmp_path / "copy.db")) == 4


def test_django_restore_inside_an_immediate_atomic_block(tmp_path: Path) -> None:
    django = pytest.importorskip("django")
    if django.VERSION < (5, 1):
        pytest.skip("transaction_mode came with Django 5.1")
    target = make_db(tmp_path / "app.sqlite3", rows=3)
    backup = make_db(tmp_path / "backup.db", rows=8)
    code = f"""
        import django, sqlite3, sqlitebck
        from django.conf import settings
        settings.configure(DATABASES={{"default": {{
            "ENGINE": "django.db.backends.sqlite3", "NAME": {str(target)!r},
            "OPTIONS": {{"transaction_mode": "IMMEDIATE"}}}}}})
        django.setup()
        from django.db import connection, transaction
        with transaction.atomic():
            try:
                sqlitebck.copy({str(backup)!r}, connection)
            except sqlite3.OperationalError as e:
                print(e)
        sqlitebck.copy({str(backup)!r}, connection)  # outside: restored
        connection.close()
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "inside transaction.atomic()" in done.stdout
    assert "BEGIN IMMEDIATE" in done.stdout and "(it has read" not in done.stdout
    assert len(rows(target)) == 8


# A Django project whose test database is a file in WAL mode, and a test that
# needs the migrated tables. Where its workers are forked, Django's test
# runner clones that database for each --parallel worker by copying the main
# file only, which leaves the migrations (still in the -wal file) behind;
# the backend sqlitebck ships (sqlitebck.django.sqlite3) clones it with
# sqlitebck. The workers are forked here whatever the Python (3.14 made
# forkserver Linux's default, with which Django loads each clone into
# memory through the backup API).
DJANGO_SETTINGS = """
import multiprocessing
multiprocessing.set_start_method("fork", force=True)
SECRET_KEY = "test"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "walapp"]
DATABASES = {
    "default": {
        "ENGINE": __ENGINE__,
        "NAME": "app.sqlite3",
        "TEST": {"NAME": "test_app.sqlite3"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
"""

DJANGO_APP = """
from django.apps import AppConfig
from django.db.backends.signals import connection_created


def wal(sender, connection, **kwargs):
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")


class WalAppConfig(AppConfig):
    name = "walapp"

    def ready(self):
        connection_created.connect(wal)
"""

DJANGO_TESTS = """
from django.contrib.auth.models import User
from django.db import connection
from django.test import TestCase


class UsersTest(TestCase):
    def test_one(self):
        User.objects.create(username="one")
        self.assertEqual(User.objects.count(), 1)

    def test_two(self):
        User.objects.create(username="two")
        self.assertEqual(User.objects.count(), 1)



class JournalTest(TestCase):
    def test_wal(self):
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            self.assertIn(cursor.fetchone()[0], ("wal", "delete"))
        self.assertEqual(User.objects.count(), 0)
"""


def django_project(folder: Path, engine: str) -> None:
    (folder / "walapp").mkdir()
    (folder / "walapp" / "__init__.py").write_text("")
    (folder / "walapp" / "apps.py").write_text(DJANGO_APP)
    (folder / "walapp" / "tests.py").write_text(DJANGO_TESTS)
    (folder / "settings.py").write_text(
        DJANGO_SETTINGS.replace("__ENGINE__", repr(engine))
    )


def run_django_tests(folder: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="settings", PYTHONPATH=str(folder))
    return subprocess.run(
        [sys.executable, "-m", "django", "test", "walapp", "--parallel", "2"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(sys.platform != "linux", reason="Django forks its workers here")
# Two whole Django test runs, each bounded by its own 300 s: on a loaded CI
# machine (the emulated sessions run beside this one) the suite's 120 s per
# test is too short for them.
@pytest.mark.timeout(700)
@pytest.mark.parametrize("shipped", [False, True])
def test_django_parallel_tests_with_a_wal_database(
    tmp_path: Path, shipped: bool
) -> None:
    pytest.importorskip("django")
    engine = "sqlitebck.django.sqlite3" if shipped else "django.db.backends.sqlite3"
    django_project(tmp_path, engine)
    done = run_django_tests(tmp_path)
    if shipped:
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Ran 3 tests" in done.stderr
    else:  # the clones lack the tables (how the workers report it varies)
        assert done.returncode != 0


def test_django_connection_is_opened_and_copied(tmp_path: Path) -> None:
    pytest.importorskip("django")
    source = make_db(tmp_path / "django.sqlite3", rows=30)
    code = f"""
        import django, sqlite3, sqlitebck
        from django.conf import settings
        settings.configure(DATABASES={{"default": {{
            "ENGINE": "django.db.backends.sqlite3", "NAME": {str(source)!r}}}}})
        django.setup()
        from django.db import connection, connections
        assert connection.connection is None  # Django opens it lazily
        sqlitebck.copy(connection, {str(tmp_path / "copy.db")!r})
        memory = sqlite3.connect(":memory:")
        sqlitebck.copy(connections["default"], memory)
        print(memory.execute("SELECT count(*) FROM t").fetchone()[0])
        memory.close()
        connection.close()
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["30"]
    assert rows(tmp_path / "copy.db") == rows(source)
