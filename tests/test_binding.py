"""The extension uses the sqlite3 module's own SQLite, through checked handles
(other modules' libraries: test_bindings.py)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from typing import Callable

import pytest
from helpers import Connect

import sqlitebck
from sqlitebck import _binding
from sqlitebck._sqlitebck import ffi, lib


def test_extension_links_no_sqlite() -> None:
    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("no ldd")
    out = subprocess.run(
        [ldd, lib.__file__ if hasattr(lib, "__file__") else _module_file()],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "libc" in out
    assert "sqlite" not in out.lower()


def _module_file() -> str:
    import sqlitebck._sqlitebck as module

    return str(module.__file__)


def test_bound_library_is_the_one_the_sqlite3_module_uses(connect: Connect) -> None:
    assert sqlitebck.sqlite_version == sqlite3.sqlite_version
    # A connection opened by the sqlite3 module is usable by the bound library.
    conn = connect(":memory:")
    conn.execute("CREATE TABLE t(x)")
    conn.execute("INSERT INTO t VALUES (1)")
    library = _binding.STDLIB.library
    assert lib.sqlitebck_total_changes(library, _binding.STDLIB.ref(conn)) == 1
    conn.close()


def verify(ref: Callable[[object], int]) -> None:
    std = _binding.STDLIB
    _binding._verify(std, sqlite3.Connection, std.library, ref)


def test_accessor_check_rejects_a_wrong_handle(connect: Connect) -> None:
    other = connect(":memory:")
    with pytest.raises(_binding.BindingError, match="does not recognise the layout"):
        verify(lambda conn: _binding.STDLIB.ref(other))


@pytest.mark.skipif(_binding.PYPY, reason="CPython's object layout")
def test_accessor_check_rejects_a_null_handle() -> None:
    closed = sqlite3.connect(":memory:")
    closed.close()  # CPython sets the handle to NULL
    with pytest.raises(_binding.BindingError, match="NULL"):
        verify(lambda conn: id(closed))


def test_binding_to_a_library_not_loaded_fails_cleanly(connect: Connect) -> None:
    err = ffi.new("char[]", 512)
    index = ffi.new("int *", -7)
    assert lib.sqlitebck_bind(b"/nonexistent/libnothing.so", index, err, len(err)) == 1
    assert b"/nonexistent/libnothing.so" in ffi.string(err)
    assert index[0] == -7
    # The previous binding is kept.
    a = connect(":memory:")
    a.execute("CREATE TABLE t(x)")
    b = connect(":memory:")
    sqlitebck.copy(a, b)
    assert b.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    a.close()
    b.close()


def test_one_table_per_library() -> None:
    # Bound again (through the same file, or the program that links it), the
    # sqlite3 module's library keeps its index.
    err = ffi.new("char[]", 512)
    index = ffi.new("int *", -1)
    for path in _binding.STDLIB._library_paths():
        name = ffi.NULL if path is None else path.encode()
        if lib.sqlitebck_bind(name, index, err, len(err)) == 0:
            version = ffi.string(lib.sqlitebck_libversion(index[0])).decode()
            assert (index[0] == _binding.STDLIB.library) == (
                version == sqlite3.sqlite_version
            )


def test_an_unbound_index_is_refused() -> None:
    assert lib.sqlitebck_libversion(99) == ffi.NULL
    assert lib.sqlitebck_libversion(-1) == ffi.NULL
    conn = sqlite3.connect(":memory:")
    ref = _binding.STDLIB.ref(conn)
    assert lib.sqlitebck_total_changes(7, ref) == -1
    assert lib.sqlitebck_get_autocommit(7, ref) == -1
    job = lib.sqlitebck_job_new()
    try:
        other = sqlite3.connect(":memory:")
        rc = lib.sqlitebck_copy(job, 7, ref, b"main", ref, b"main", 0, 50)
        assert rc == 21  # SQLITE_MISUSE, nothing touched
        assert b"no SQLite library" in ffi.string(lib.sqlitebck_errmsg(job))
        other.close()
    finally:
        lib.sqlitebck_job_free(job)
        conn.close()


def test_doctests() -> None:
    """Every module's examples run, and give what they show."""
    import doctest
    import importlib
    import pkgutil

    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    names = [m.name for m in pkgutil.iter_modules(sqlitebck.__path__)]
    modules = [sqlitebck] + [
        importlib.import_module(f"sqlitebck.{name}")
        for name in names
        if name not in ("_sqlitebck", "__main__")
    ]
    for module in modules:
        for test in doctest.DocTestFinder().find(module):
            runner.run(test, clear_globs=False)
            # The examples leave their connections open, as examples do.
            for value in test.globs.values():
                if isinstance(value, sqlite3.Connection):
                    value.close()
            test.globs.clear()
    failures, tried = runner.summarize(verbose=False)
    assert tried > 0 and failures == 0
