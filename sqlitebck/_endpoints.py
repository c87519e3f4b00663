"""Paths as the two ends of a copy.

A source path is opened read-only and must exist. A destination path that
exists is opened and overwritten through the backup API, transactionally; one
that does not exist yet is created atomically: the copy goes into a temporary
file beside it, which is made durable and then linked into place, so that the
final path never holds a partial copy, whenever the process dies.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import urllib.parse
from typing import Union

from sqlitebck._errors import sqlite_error

Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
Endpoint = Union[sqlite3.Connection, Path]

# Files SQLite may create beside a database.
_SIDE_FILES = ("", "-journal", "-wal", "-shm")


def _path(value: object, role: str) -> str | None:
    """``value`` as a str path; None for a connection; TypeError otherwise."""
    if isinstance(value, sqlite3.Connection):
        return None
    if isinstance(value, (str, bytes, os.PathLike)):
        return os.fsdecode(os.fspath(value))
    raise TypeError(
        f"{role} must be a sqlite3.Connection or a path, not {type(value).__name__}"
    )


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _fsync(path: str, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Endpoints:
    """The connections for a copy between ``source`` and ``dest``.

    Connections passed in are used as they are; paths are opened here, and
    closed again by :meth:`close`, whatever happens.
    """

    def __init__(self, source: object, dest: object) -> None:
        src_path = _path(source, "source")
        dst_path = _path(dest, "dest")
        self._tmp: str | None = None
        self._final: str | None = None
        self._own_source = src_path is not None
        self._own_dest = dst_path is not None
        if src_path is not None:
            if dst_path is not None and _same_file(src_path, dst_path):
                raise ValueError(
                    f"source and dest are the same file: {src_path!r}, {dst_path!r}"
                )
            # FileNotFoundError names the missing file. An empty file is an
            # empty database to SQLite: copying it would wipe the destination,
            # and a path to one is almost surely a mistake.
            if os.stat(src_path).st_size == 0 and not os.path.isdir(src_path):
                raise sqlite_error(26, f"{src_path}: an empty file, not a database")
            uri = "file:" + urllib.parse.quote(src_path) + "?mode=ro"
            self.source: sqlite3.Connection = sqlite3.connect(uri, uri=True)
        else:
            assert isinstance(source, sqlite3.Connection)
            self.source = source
        try:
            if dst_path is None:
                assert isinstance(dest, sqlite3.Connection)
                self.dest: sqlite3.Connection = dest
            elif os.path.lexists(dst_path):
                self.dest = sqlite3.connect(dst_path)
            else:
                self._final = dst_path
                self._tmp = self._create_temporary(dst_path)
                try:
                    self.dest = sqlite3.connect(self._tmp)
                except BaseException:
                    self._remove_temporary()
                    raise
        except BaseException:
            if self._own_source:
                self.source.close()
            raise

    @staticmethod
    def _create_temporary(final: str) -> str:
        """Create an empty file beside ``final``, with the usual permissions."""
        directory, name = os.path.split(final)
        while True:
            tmp = os.path.join(
                directory, f".{name}.{secrets.token_hex(4)}.sqlitebck-tmp"
            )
            try:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                return tmp
            except FileExistsError:
                continue

    def _remove_temporary(self) -> None:
        if self._tmp is not None:
            for suffix in _SIDE_FILES:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._tmp + suffix)
            self._tmp = None

    def close(self, complete: bool) -> None:
        """Close the connections opened here. A new destination is put in
        place if ``complete``, else removed; nothing is left behind."""
        try:
            if self._own_dest:
                self.dest.close()
            if self._tmp is not None and self._final is not None and complete:
                self._publish(self._tmp, self._final)
        finally:
            self._remove_temporary()
            if self._own_source:
                self.source.close()

    def _publish(self, tmp: str, final: str) -> None:
        """Make ``tmp`` durable, then give it the name ``final`` atomically.

        A hard link does it without ever replacing a file that another
        process created at ``final`` meanwhile (FileExistsError); where the
        file system has no hard links, a rename does it.
        """
        _fsync(tmp)
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise
        except OSError:
            os.replace(tmp, final)
        else:
            os.unlink(tmp)
        self._tmp = None
        directory = os.path.dirname(final) or "."
        with contextlib.suppress(OSError):  # not every platform syncs folders
            _fsync(directory, directory=True)
