"""File names are file names, never URIs: odd characters, bytes that are not
UTF-8, a ``file:`` prefix and long names, on both sides of a copy, through
the API and the command line."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from pathlib import Path

import pytest
from helpers import cli, make_db, one_error_line, rows

import sqlitebck
from sqlitebck._endpoints import uri

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file names")

# Names that SQLite would read as URIs, or as URI parts, if it were given them.
ODD = [
    "q?mode=ro.db",
    "hash#frag.db",
    "pct%41%2F.db",
    "ü ünïcode.db",
    "a b&c=d;e.db",
    "file:prefixed.db",
]
# Bytes that are no UTF-8: latin-1, and no encoding at all.
RAW = [b"caf\xe9.db", b"\xff\xfe\x80.db"]
NAMES: list[str | bytes] = [*ODD, *RAW]
NAME_MAX = 255


def odd_db(folder: Path, name: str | bytes, rows_: int = 50) -> bytes:
    """A database at ``folder/name`` (created under a plain name, then
    renamed); returns the full path as bytes."""
    plain = make_db(folder / "plain.tmp", rows=rows_)
    target = os.path.join(os.fsencode(folder), os.fsencode(name))
    os.rename(plain, target)
    return target


def content(path: str | bytes) -> list[object]:
    """Rows of table t of the database at ``path``, whatever its name."""
    conn = sqlitebck._endpoints.connect(path, "ro")
    try:
        return conn.execute("SELECT * FROM t ORDER BY 1").fetchall()
    finally:
        conn.close()


def listing(folder: Path) -> list[bytes]:
    return sorted(os.listdir(os.fsencode(folder)))


def test_uri_encodes_every_byte_that_is_not_plain() -> None:
    assert uri("/a/b c/%41?x#y", "ro") == "file:///a/b%20c/%2541%3Fx%23y?mode=ro"
    assert uri(b"/caf\xe9", "rw") == "file:///caf%E9?mode=rw"
    assert uri("/caf\udce9", "rw") == "file:///caf%E9?mode=rw"  # surrogateescape
    assert uri("//host/x", "ro") == "file:////host/x?mode=ro"
    assert uri(Path("/x"), "ro") == "file:///x?mode=ro"
    with pytest.raises(ValueError, match="null"):
        uri("/a\0b", "ro")


def test_relative_names_are_made_absolute_unresolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert uri("file:x.db", "ro") == uri(str(tmp_path / "file:x.db"), "ro")
    assert uri("a/../b", "ro").endswith("/a/../b?mode=ro")


@POSIX
@pytest.mark.parametrize("name", NAMES)
def test_odd_names_on_both_sides(tmp_path: Path, name: str | bytes) -> None:
    raw = os.fsencode(name)
    source = odd_db(tmp_path, b"src-" + raw)
    expected = content(source)
    new = os.path.join(os.fsencode(tmp_path), b"dst-" + raw)
    for kind in (bytes, os.fsdecode, lambda p: Path(os.fsdecode(p))):
        sqlitebck.copy(kind(source), kind(new))
        assert content(new) == expected
        assert listing(tmp_path) == sorted([b"src-" + raw, b"dst-" + raw])
        # Now it exists: overwritten in place, through the same name.
        sqlitebck.copy(kind(source), kind(new), pages=3)
        assert content(new) == expected
        assert listing(tmp_path) == sorted([b"src-" + raw, b"dst-" + raw])
        os.unlink(new)


@POSIX
def test_file_prefix_relative_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    odd_db(tmp_path, "file:src.db", rows_=30)  # sqlite3.connect() would take a URI
    # A folder literally named "file:bk": the copy lands in it, complete.
    os.mkdir("file:bk")
    sqlitebck.copy("file:src.db", "file:bk/out.db")
    assert rows("./file:bk/out.db") == rows("./file:src.db")
    assert os.listdir("file:bk") == ["out.db"]
    assert not os.path.exists("bk")
    # An existing DEST literally named "file:out.db" is the one overwritten,
    # not "out.db".
    make_db("out.db", rows=3)
    odd_db(tmp_path, "file:out.db", rows_=4)
    untouched = Path("out.db").read_bytes()
    sqlitebck.copy("file:src.db", "file:out.db")
    assert rows("./file:out.db") == rows("./file:src.db")
    assert Path("out.db").read_bytes() == untouched


@POSIX
def test_leading_double_slash(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db", rows=20)
    doubled = "/" + str(source)  # //tmp/...: a valid POSIX name
    out = tmp_path / "out.db"
    sqlitebck.copy(doubled, "/" + str(out))
    assert rows(out) == rows(source)
    done = cli(doubled, "/" + str(tmp_path / "cli.db"), "--verify")
    assert done.returncode == 0, done.stderr
    assert rows(tmp_path / "cli.db") == rows(source)


@POSIX
@pytest.mark.parametrize("name", NAMES)
def test_odd_names_through_the_command_line(tmp_path: Path, name: str | bytes) -> None:
    raw = os.fsencode(name)
    source = odd_db(tmp_path, b"src-" + raw)
    dest = os.path.join(os.fsencode(tmp_path), b"dst-" + raw)
    done = cli(source, dest, "--verify")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("copied ") and "integrity_check ok" in done.stdout
    assert content(dest) == content(source)
    again = cli(source, dest, "--verify", "--json")
    assert again.returncode == 1
    assert "exists; use --force" in one_error_line(again.stderr)
    forced = cli(source, dest, "--force", "--verify", "--json")
    assert forced.returncode == 0, forced.stderr
    import json

    result = json.loads(forced.stdout)
    # The JSON holds the exact names (surrogate escapes for raw bytes).
    assert os.fsencode(result["dest"]) == dest
    assert result["integrity_check"] == "ok"
    assert listing(tmp_path) == sorted([b"src-" + raw, b"dst-" + raw])


@POSIX
def test_file_prefix_through_the_command_line(tmp_path: Path) -> None:
    odd_db(tmp_path, "file:src.db", rows_=30)
    (tmp_path / "file:bk").mkdir()
    done = cli("file:src.db", "file:bk/out.db", "--verify", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "integrity_check ok" in done.stdout
    assert rows(tmp_path / "file:bk" / "out.db") == rows(tmp_path / "file:src.db")
    assert os.listdir(tmp_path / "file:bk") == ["out.db"]


def long_name(length: int) -> str:
    return "n" * (length - 3) + ".db"


@POSIX
@pytest.mark.parametrize("length", [224, 240, 247, 248, 250, 255])
def test_long_new_destination_names(tmp_path: Path, length: int) -> None:
    source = make_db(tmp_path / "src.db", rows=100)
    dest = tmp_path / long_name(length)
    sqlitebck.copy(source, dest, pages=5)
    assert rows(dest) == rows(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["src.db", dest.name])
    # As a source too, and through the command line.
    back = tmp_path / "back.db"
    sqlitebck.copy(dest, back)
    assert rows(back) == rows(source)
    other = tmp_path / long_name(length).replace("n", "m")
    done = cli(str(source), str(other), "--verify")
    assert done.returncode == 0, done.stderr
    assert rows(other) == rows(source)


@POSIX
@pytest.mark.parametrize("length", [224, 247])
def test_long_existing_destination_names_that_leave_room(
    tmp_path: Path, length: int
) -> None:
    source = make_db(tmp_path / "src.db", rows=100)
    dest = make_db(tmp_path / long_name(length), rows=3)
    sqlitebck.copy(source, dest)
    assert rows(dest) == rows(source)


@POSIX
@pytest.mark.parametrize("length", [248, 255])
def test_long_existing_destination_without_room_for_a_journal(
    tmp_path: Path, length: int
) -> None:
    source = make_db(tmp_path / "src.db", rows=100)
    dest = tmp_path / long_name(length)
    sqlitebck.copy(source, dest)  # new: fine
    make_db(tmp_path / "small.db", rows=3)
    with contextlib.closing(sqlite3.connect(":memory:")) as memory:
        sqlitebck.copy(tmp_path / "small.db", memory)
    before = dest.read_bytes()
    with pytest.raises(sqlite3.OperationalError, match="name too long") as info:
        sqlitebck.copy(tmp_path / "small.db", dest)
    assert info.value.sqlite_errorname == "SQLITE_CANTOPEN"
    assert str(dest) in str(info.value)
    assert dest.read_bytes() == before
    done = cli(str(source), str(dest), "--force")
    assert done.returncode == 1
    assert "name too long" in one_error_line(done.stderr)


@POSIX
def test_name_longer_than_name_max_is_the_users_error(tmp_path: Path) -> None:
    source = make_db(tmp_path / "src.db")
    dest = tmp_path / long_name(NAME_MAX + 1)
    with pytest.raises(OSError) as info:
        sqlitebck.copy(source, dest)
    assert info.value.filename == str(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.db"]
