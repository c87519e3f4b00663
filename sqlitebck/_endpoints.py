"""Paths as the two ends of a copy.

Every file is handed to SQLite as a URI built here, by :func:`uri`, from the
bytes of its name: a path is always a file name, never a URI, whatever
characters it holds. All files are opened by :func:`connect`, the one place
that calls a DB-API module's ``connect``.

A source path is opened read-only and must exist. A destination path that
exists must be a regular file holding an SQLite database (or nothing); it is
opened and overwritten through the backup API, transactionally, and keeps
its journal mode. One that does not exist yet is created atomically: the copy
goes into a private folder (mode 0700) created beside it, where nobody else
can swap or read the file, is made durable, and is then linked into place
under its final name, so that the final path never holds a partial copy,
whenever the process dies.

Files the package opens itself go through the VFS shims of ``csrc/vfs.c``
(when the bound SQLite has them, and the DB-API module is ``sqlite3``): a
source path is read ahead, and the private copy of a new destination is
written in large sequential writes, without a rollback journal (it is
discarded on failure, and made durable before it is published). Files of
the caller's own connections never are.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import sqlite3
import stat
import time
import urllib.parse
import warnings
from types import ModuleType
from typing import Any, Callable, Protocol, Union

from sqlitebck import _binding
from sqlitebck._errors import (
    SQLITE_BUSY,
    SQLITE_CANTOPEN,
    SQLITE_IOERR_SHORT_READ,
    SQLITE_NOTADB,
    SQLITE_OK,
    SQLITE_READONLY,
    SQLITE_READONLY_DIRECTORY,
    SQLITE_READONLY_ROLLBACK,
    sqlite_error,
)
from sqlitebck._frameworks import AsyncFrameworkConnection, FrameworkConnection
from sqlitebck._sqlitebck import ffi, lib


class APSWConnection(Protocol):
    """What sqlitebck needs of an APSW connection (APSW ships type hints;
    pysqlite3, sqlean and sqlcipher3 do not, so theirs are Any)."""

    def sqlite3pointer(self) -> int: ...


Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
#: What :func:`sqlitebck.copy` takes as either end: a connection (the sqlite3
#: module's, or pysqlite3's, sqlean's, sqlcipher3's or APSW's), the path of a
#: database file, or a framework object that wraps a connection (see
#: ``_frameworks``).
Endpoint = Union[sqlite3.Connection, APSWConnection, Path, FrameworkConnection]
#: What :func:`sqlitebck.acopy` takes as either end: an ``Endpoint``, or an
#: aiosqlite connection, a SQLAlchemy ``AsyncEngine`` or ``AsyncConnection``,
#: a Datasette ``Database``.
AsyncEndpoint = Union[Endpoint, AsyncFrameworkConnection]


# The first 16 bytes of every SQLite database file.
MAGIC = b"SQLite format 3\0"
# The private folder beside a new destination: a short name, so that any
# destination name that fits NAME_MAX works, that says which process made it
# (".<pid>.<random>.sqlitebck-tmp"): a later copy into the same folder
# removes the folders of processes that are gone (killed, or out of file
# descriptors when they would have removed it).
PRIVATE_SUFFIX = ".sqlitebck-tmp"
_PRIVATE_NAME = re.compile(r"\.([0-9]+)\.[0-9a-f]{8}" + re.escape(PRIVATE_SUFFIX))
_COPY_NAME = "copy.db"
# What SQLite may leave beside the copy in its private folder.
_COPY_FILES = [_COPY_NAME + suffix for suffix in ("", "-journal", "-wal", "-shm")]
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_READONLY = "attempt to write a readonly database"
_NOTADB = "file is not a database"
#: Whether files the package opens itself use the VFS shims (tests turn it
#: off to run the same faults through SQLite's own VFS).
USE_SHIMS = True
# Page cache of the connections the package opens itself, in pages: a copy
# reads and writes every page once, and a small cache stays in the CPU's.
_SHIM_CACHE_PAGES = 256


def uri(path: Path, mode: str, vfs: str | None = None) -> str:
    """The URI that names file ``path`` to SQLite, opened with ``mode``
    (and through VFS ``vfs``, if given).

    The name is made absolute (against the current folder, without resolving
    anything) and every byte of it is percent-encoded except letters, digits,
    ``-._~`` and ``/``, so that ``?``, ``#``, ``%``, a leading ``//``, a
    ``file:`` prefix and bytes that are not UTF-8 all name the file itself.

    >>> uri("/tmp/a b?#%.db", "ro")
    'file:///tmp/a%20b%3F%23%25.db?mode=ro'
    >>> uri(b"//srv/caf\\xc3\\xa9\\xff", "rw")
    'file:////srv/caf%C3%A9%FF?mode=rw'
    """
    name = os.fsencode(path)
    if b"\0" in name:
        raise ValueError(f"embedded null byte in path {os.fsdecode(name)!r}")
    if not os.path.isabs(name):
        name = os.path.join(os.getcwdb(), name)
    if os.sep == "\\":  # Windows: C:\x becomes /C:/x
        name = b"/" + name.replace(b"\\", b"/")
    query = f"mode={mode}" if vfs is None else f"mode={mode}&vfs={vfs}"
    return f"file://{urllib.parse.quote_from_bytes(name, safe='/')}?{query}"


def connect(
    path: Path,
    mode: str,
    module: ModuleType = sqlite3,
    timeout: float = 5.0,
    vfs: str | None = None,
) -> sqlite3.Connection:
    """Open file ``path`` with DB-API ``module`` (the sqlite3 module, or
    pysqlite3's, sqlean's, sqlcipher3's; SQLite URI ``mode``: ``ro``, ``rw``
    or ``rwc``), through VFS ``vfs`` if given; the one place where the
    package opens a file."""
    conn: sqlite3.Connection = module.connect(
        uri(path, mode, vfs), uri=True, timeout=timeout
    )
    return conn


def shim(kind: int, module: ModuleType) -> str | None:
    """The name of VFS shim ``kind`` (``lib.SQLITEBCK_VFS_*``) for a file the
    package opens itself with ``module``; None where it is not to be used:
    turned off, another SQLite (another DB-API module), or not registered."""
    if not USE_SHIMS or module is not sqlite3:
        return None
    name = lib.sqlitebck_vfs_name(kind)
    return None if name == ffi.NULL else ffi.string(name).decode()


def _path(value: object) -> str | None:
    """``value`` as a str path; None for a connection (the caller checked
    that it is one: see sqlitebck._bindings)."""
    if isinstance(value, (str, bytes, os.PathLike)):
        return os.fsdecode(os.fspath(value))
    return None


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except (OSError, ValueError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _fsync(path: str, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_header(conn: Any, schema: bytes = b"main") -> bytes | None:
    """The first 100 bytes of the database file of ``schema`` of connection
    ``conn`` (zeros past its end), read through the file SQLite has open:
    opening the file again and closing it would drop every POSIX lock this
    process holds on it, the caller's included. None if there is no file."""
    binding = _binding.binding_of(conn)
    if binding is None:
        return None
    buf = ffi.new("unsigned char[]", 100)
    rc = lib.sqlitebck_read_header(
        binding.library, binding.ref(conn), schema, buf, len(buf)
    )
    return (
        bytes(ffi.buffer(buf)) if rc in (SQLITE_OK, SQLITE_IOERR_SHORT_READ) else None
    )


def _renamed(error: OSError, path: str) -> OSError:
    """``error`` naming the user's ``path`` instead of a file of ours."""
    if error.errno is None:
        return error
    return type(error)(error.errno, error.strerror, path)


def _attempt(action: Callable[[], object]) -> BaseException | None:
    """Run ``action``; return what it raised instead of raising it."""
    try:
        action()
    except BaseException as e:  # reported by the caller
        return e
    return None


def _remove_folder(private: str) -> None:
    """Remove a private folder: its files by name, then the folder, which
    needs no file descriptor (a process out of them can still clean up);
    anything else found in it, with shutil.rmtree."""
    for name in _COPY_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(private, name))
    try:
        os.rmdir(private)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        shutil.rmtree(private)


# How long a private folder of a process that seems gone must have been
# left untouched before it is removed: a process in another PID namespace (a
# container sharing the folder) seems gone, though its copy may be running.
ORPHAN_IDLE_SECONDS = 3600


def _idle_since(private: str) -> float:
    """When the private folder ``private`` or a file in it last changed."""
    times = []
    for name in ("", *_COPY_FILES):
        with contextlib.suppress(OSError):
            times.append(os.lstat(os.path.join(private, name)).st_mtime)
    return max(times, default=0.0)


def _remove_orphans(folder: str) -> None:
    """Remove the private folders in ``folder`` that processes of this user
    left behind when they died (POSIX: a process that no longer exists, and
    nothing in the folder changed for ORPHAN_IDLE_SECONDS). Those of live
    processes, of other users, and anything else are left."""
    if os.name != "posix":  # os.kill() would end a process there
        return
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return  # the copy itself will say what is wrong with the folder
    for entry in entries:
        found = _PRIVATE_NAME.fullmatch(entry.name)
        if found is None:
            continue
        pid = int(found.group(1))
        try:
            mine = entry.is_dir(follow_symlinks=False) and (
                entry.stat(follow_symlinks=False).st_uid == os.getuid()
            )
            if not mine or pid == os.getpid():
                continue
            if time.time() - _idle_since(entry.path) < ORPHAN_IDLE_SECONDS:
                continue
            os.kill(pid, 0)  # raises ProcessLookupError if it is gone
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                _remove_folder(entry.path)
        except (OSError, OverflowError):
            continue  # alive (another user's), or unreadable: left alone


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def page_size(header: bytes) -> int:
    """The page size a database file's header gives (bytes 16-17, big-endian;
    1 stands for 65536).

    >>> page_size(bytes(16) + b"\\x10\\x00"), page_size(bytes(16) + b"\\x00\\x01")
    (4096, 65536)
    """
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


def wal_page_sizes(source: Any, dest: Any) -> tuple[int, int] | None:
    """(destination's, source's) page sizes if ``dest`` is a WAL database
    file whose page size differs from the source database file's: SQLite's
    backup cannot change the page size of a WAL database. None otherwise, or
    if either is not a file."""
    dst_header, src_header = _file_header(dest), _file_header(source)
    if dst_header is None or src_header is None or dst_header[18:19] != b"\x02":
        return None
    sizes = page_size(dst_header), page_size(src_header)
    return sizes if sizes[0] != sizes[1] and 0 not in sizes else None


def wal_page_size_message(sizes: tuple[int, int], name: str) -> str:
    """Why a copy into a WAL database of another page size failed, and what
    to do (``sizes``: as :func:`wal_page_sizes` gives them)."""
    return (
        f"{name} is a WAL database with pages of {sizes[0]} bytes and the "
        f"source's are {sizes[1]}: SQLite's backup cannot change the page "
        "size of a WAL database (attempt to write a readonly database). Close "
        "its other connections and copy to its path (sqlitebck then takes it "
        "out of WAL mode for the copy), or set it to journal_mode=DELETE first"
    )


# What a file that looks encrypted is said to be.
_ENCRYPTED = (
    ": it looks encrypted (a whole number of pages whose first bytes look "
    "random: an SQLCipher database?); open it with sqlcipher3 and its key "
    "(PRAGMA key), and pass that connection"
)


def looks_encrypted(header: bytes, size: int) -> bool:
    """True if a file of ``size`` bytes that starts with ``header`` (not
    SQLite's) looks like an encrypted database: a whole number of 512-byte
    blocks (every page size is one), whose first 16 bytes (SQLCipher's salt)
    look random.

    >>> looks_encrypted(bytes(range(16)) * 2, 4096), looks_encrypted(b"hello", 5)
    (True, False)
    """
    first = header[:16]
    return (
        size >= 512 and size % 512 == 0 and len(first) == 16 and len(set(first)) >= 12
    )


def _unreadable(
    path: str, conn: Any, error: Exception, module: Any
) -> Exception | None:
    """Explain why source ``path`` cannot be read, if ``error`` (from a first
    read) is one a user can act on: no database (or an encrypted one), or
    not readable read-only; None for any other error."""
    code = getattr(error, "sqlite_errorcode", None)
    # PyPy 3.9's sqlite3 module sets no code: SQLite's message says it.
    notadb = code == SQLITE_NOTADB if code is not None else str(error) == _NOTADB
    if notadb and os.stat(path).st_size % 512:  # not whole pages, encrypted or not
        return sqlite_error(SQLITE_NOTADB, f"{path}: not an SQLite database", module)
    if notadb:
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        return sqlite_error(
            SQLITE_NOTADB,
            f"{path}: file is not a database"
            + (
                _ENCRYPTED
                if looks_encrypted(_file_header(conn) or b"", size)
                else ", or it is encrypted (an SQLCipher database: open it "
                "with sqlcipher3 and its key, and pass that connection)"
            ),
            module,
        )
    readonly = (
        code & 0xFF == SQLITE_READONLY if code is not None else str(error) == _READONLY
    )
    if not readonly:
        return None
    header = _file_header(conn)
    if header is None:
        return None
    wal = header[18:19] == b"\x02"
    if wal and not os.path.exists(path + "-shm"):
        return sqlite_error(
            SQLITE_READONLY_DIRECTORY,
            f"{path}: cannot be read read-only: it is a WAL database, and its "
            f"shared-memory file {path}-shm does not exist and cannot be "
            "created, because the folder is not writable. Copy it while a "
            "program that writes it has it open (the -shm file then exists), "
            "or as a user who may write to its folder.",
            module,
        )
    if not wal and os.path.exists(path + "-journal"):
        return sqlite_error(
            SQLITE_READONLY_ROLLBACK,
            f"{path}: cannot be read read-only: it has a hot journal "
            f"({path}-journal), left by a write that was interrupted, and only "
            "a connection that may write can roll it back. Open the database "
            "once read-write (any SQLite program does it on its first read, "
            "e.g. sqlite3 FILE 'PRAGMA schema_version'), or pass sqlitebck a "
            "read-write sqlite3.Connection as the source, then copy again.",
            module,
        )
    return None


def _check_side_file_names(path: str, suffix: str, module: Any) -> None:
    """Refuse existing destination ``path`` if the name of the file SQLite
    must create beside it to write it (``path + suffix``) is too long."""
    name = os.fsencode(os.path.basename(path))
    try:
        longest = os.pathconf(os.path.dirname(path) or os.curdir, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf: SQLite will say
        return
    if len(name) + len(suffix) > longest:
        raise sqlite_error(
            SQLITE_CANTOPEN,
            f"{path}: name too long to write the database in place: SQLite "
            f"needs a file beside it named NAME{suffix}, {len(name) + len(suffix)} "
            f"bytes, and this file system allows {longest}; copy to a new file, "
            "or rename this one",
            module,
        )


# Who may read a new copy: the permission bits and group of its source's
# file (no group for a database that is not a file).
Access = tuple[int, Union[int, None]]
_ANYONE: Access = (0o666, None)


def _access_of(st: os.stat_result) -> Access:
    return stat.S_IMODE(st.st_mode), st.st_gid


def _new_file_access(source: Any, schema: bytes) -> Access:
    """Who may read a copy of schema ``schema`` of connection ``source``:
    as its file (anyone, less the umask, for a database that is not a file).
    The name comes from SQLite (sqlite3_db_filename), not from a statement."""
    binding = _binding.binding_of(source)
    if binding is None:
        return _ANYONE
    try:
        binding.check(source)  # closed, another thread: the copy will say so
    except Exception:
        return _ANYONE
    name = lib.sqlitebck_filename(binding.library, binding.ref(source), schema)
    if name == ffi.NULL or not ffi.string(name):
        return _ANYONE
    try:
        st = os.stat(os.fsdecode(ffi.string(name)))
    except (OSError, ValueError):
        return _ANYONE
    return _access_of(st) if stat.S_ISREG(st.st_mode) else _ANYONE


class Endpoints:
    """The connections for a copy between ``source`` and ``dest``.

    Connections passed in are used as they are; paths are opened here (with
    DB-API ``module``), and closed again by :meth:`close`, whatever happens.
    A new destination path is published in rollback-journal mode (``DELETE``:
    one self-contained file), or as the copy left it with ``keep_wal``; an
    existing destination path keeps its own journal mode.
    """

    def __init__(
        self,
        source: object,
        dest: object,
        *,
        keep_wal: bool = False,
        module: ModuleType = sqlite3,
        source_name: bytes = b"main",
    ) -> None:
        self._module = module
        self._keep_wal = keep_wal
        self._own_source = False
        self._own_dest = False
        self._dest_path: str | None = None
        # A new destination: the private folder holding the copy, the final
        # path and the permission bits the copy gets there.
        self._private: str | None = None
        self._final: str | None = None
        self._final_mode = 0o666
        # Whether the destination is put back in rollback-journal mode after
        # the copy (the backup API copies the source's WAL flag), or in WAL
        # mode (taken out of it for the copy: see _open_existing).
        self._rollback = False
        self._back_to_wal = False
        src_path = _path(source)
        dst_path = _path(dest)
        try:
            if src_path is None:
                self.source: Any = source
                access = None
            else:
                if dst_path is not None and _same_file(src_path, dst_path):
                    raise ValueError(
                        f"source and dest are the same file: {src_path!r}, {dst_path!r}"
                    )
                access = self._open_source(src_path)
            if dst_path is None:
                self.dest: Any = dest
            elif os.path.lexists(dst_path):
                self._open_existing(dst_path)
            else:
                if access is None:
                    access = _new_file_access(self.source, source_name)
                self._create(dst_path, access)
        except BaseException:
            self.close(complete=False)
            raise

    def _open_source(self, path: str) -> Access:
        """Open ``path`` read-only as the source; return who may read it."""
        st = os.stat(path)  # FileNotFoundError names the missing file
        if not stat.S_ISREG(st.st_mode):
            # /dev/null reads as an empty database, and a pipe blocks the open
            # for ever: neither is a database to copy.
            raise sqlite_error(
                SQLITE_CANTOPEN,
                f"{path}: is {_kind(st.st_mode)}, not a database file",
                self._module,
            )
        # An empty file is an empty database to SQLite: copying it would wipe
        # the destination, and a path to one is almost surely a mistake.
        if st.st_size == 0:
            raise sqlite_error(
                SQLITE_NOTADB, f"{path}: an empty file, not a database", self._module
            )
        # No busy handler: the copy manages its own waits for locks.
        vfs = shim(lib.SQLITEBCK_VFS_READER, self._module)
        try:
            self.source = connect(path, "ro", self._module, timeout=0, vfs=vfs)
        except self._module.Error:
            if os.access(path, os.R_OK):
                raise
            raise sqlite_error(
                SQLITE_CANTOPEN,
                f"{path}: permission denied: this user may not read it; give "
                "it read permission, or copy it as a user who may read it",
                self._module,
            ) from None
        self._own_source = True
        try:
            self.source.execute("PRAGMA schema_version").fetchall()
        except self._module.Error as e:
            explained = _unreadable(path, self.source, e, self._module)
            if explained is not None:
                raise explained from None
            # Anything else (a lock, not a database) the copy reports itself.
        return _access_of(st)

    def _open_existing(self, path: str) -> None:
        """Open existing destination ``path``, refusing what is no database."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if not os.path.islink(path):
                raise
            raise sqlite_error(
                SQLITE_CANTOPEN,
                f"{path}: a symbolic link to {os.readlink(path)!r}, which does "
                "not exist; not writing through it",
                self._module,
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise sqlite_error(
                SQLITE_CANTOPEN,
                f"{path}: exists and is {_kind(st.st_mode)}, not a database "
                "file; not writing to it",
                self._module,
            )
        self._dest_path = path
        self.dest = connect(path, "rw", self._module)
        self._own_dest = True
        header = _file_header(self.dest) or bytes(100)
        if st.st_size > 0 and header[:16] != MAGIC:
            raise sqlite_error(
                SQLITE_NOTADB,
                f"{path}: file is not a database"
                + (_ENCRYPTED if looks_encrypted(header, st.st_size) else "")
                + "; it is left untouched",
                self._module,
            )
        self._rollback = header[18:19] != b"\x02"
        _check_side_file_names(
            path, "-journal" if self._rollback else "-wal", self._module
        )
        sizes = wal_page_sizes(self.source, self.dest)
        if sizes is not None:
            # A WAL database of another page size: out of WAL mode for the
            # copy (it needs no other connection to it), back in it after.
            try:
                cursor = self.dest.execute("PRAGMA journal_mode=DELETE")
                mode = str(cursor.fetchone()[0]).lower()
                cursor.close()
            except self._module.OperationalError:  # locked: others have it open
                mode = "wal"
            if mode != "delete":
                raise sqlite_error(
                    SQLITE_READONLY, wal_page_size_message(sizes, path), self._module
                )
            self._back_to_wal = True

    def _create(self, path: str, access: Access) -> None:
        """Open an empty file in a new private folder beside ``path``; the
        copy is written there and published as ``path`` by :meth:`close`.
        It is readable by no more than its source (``access``): the same
        permission bits less the umask, and the source's group where this
        process may give it that group, else no group bits at all."""
        source_mode, source_gid = access
        folder, name = os.path.split(path)
        if not name:
            raise sqlite_error(
                SQLITE_CANTOPEN,
                f"{path}: names a folder, not a database file",
                self._module,
            )
        self._final = self._dest_path = path
        self._rollback = not self._keep_wal
        _remove_orphans(folder or os.curdir)
        while True:
            private = os.path.join(
                folder or os.curdir,
                f".{os.getpid()}.{secrets.token_hex(4)}{PRIVATE_SUFFIX}",
            )
            try:
                os.mkdir(private, 0o700)
            except FileExistsError:
                continue
            except OSError as e:
                raise _renamed(e, path) from None
            break
        self._private = private
        copy = os.path.join(private, _COPY_NAME)
        try:
            # The owner must be able to write it while the copy runs (SQLite
            # reopens it by name); nobody else can reach it in the private
            # folder. It gets the source's bits less the umask when published.
            fd = os.open(
                copy,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC,
                source_mode | 0o600,
            )
            try:
                st = os.fstat(fd)
                created = stat.S_IMODE(st.st_mode)
                if source_gid is not None and st.st_gid != source_gid:
                    try:
                        os.fchown(fd, -1, source_gid)
                    except (OSError, AttributeError):  # not a member; Windows
                        source_mode &= ~0o070
            finally:
                os.close(fd)
            if created & 0o600 != 0o600:
                os.chmod(copy, created | 0o600)
        except OSError as e:
            raise _renamed(e, path) from None
        self._final_mode = created & source_mode
        vfs = shim(lib.SQLITEBCK_VFS_WRITER, self._module)
        self.dest = connect(copy, "rw", self._module, vfs=vfs)
        self._own_dest = True
        if vfs is not None:
            # No journal: a failed copy is removed, never rolled back. No
            # sync at commit: the file is synced before it is published. An
            # error writing the gathered pages still fails the commit (the
            # shim returns it from the SQLITE_FCNTL_SYNC every commit sends).
            self.dest.execute("PRAGMA journal_mode=OFF").fetchall()
            self.dest.execute("PRAGMA synchronous=OFF")
            self.dest.execute(f"PRAGMA cache_size={_SHIM_CACHE_PAGES}")

    @property
    def in_place(self) -> bool:
        """True once what the destination connection commits is what the
        caller named: an existing destination, or a new one once published."""
        return self._final is None

    def close(
        self, complete: bool, before_publish: Callable[[], object] = lambda: None
    ) -> None:
        """Close the connections opened here; put a new destination in place
        if ``complete``, else remove it. ``before_publish`` is called right
        before the new file is linked into place: what it raises leaves the
        file unpublished. Every step is taken whatever the others did; after
        a complete copy, the first error is raised (an incomplete one is
        already failing with its own error)."""
        first: BaseException | None = None
        if self._own_dest and self._back_to_wal:
            first = _attempt(self._back_in_wal_mode)
            if first is not None and not complete:  # failing with its own error
                warnings.warn(str(first), RuntimeWarning, stacklevel=3)
        if complete and self._own_dest and self._rollback:
            first = first or _attempt(self._settle_journal_mode)
        if self._own_dest:
            self._own_dest = False
            error = _attempt(self.dest.close)
            first = first or error
        if complete and first is None and self._final is not None:
            first = _attempt(lambda: self._publish(before_publish))
        if self._private is not None:
            error = _attempt(self._remove_private)
            first = first or error
        if self._own_source:
            self._own_source = False
            error = _attempt(self.source.close)
            first = first or error
        if complete and first is not None:
            raise first

    def _back_in_wal_mode(self) -> None:
        """Put an existing destination taken out of WAL mode back in it; an
        error that names the mode it is left in if that fails (another
        connection opened it meanwhile)."""
        cursor = self.dest.cursor()
        try:
            mode = str(cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except self._module.Error as e:
            mode = f"delete ({e})"
        finally:
            cursor.close()
        if mode.lower() != "wal":
            raise sqlite_error(
                SQLITE_BUSY,
                f"{self._dest_path}: left in rollback-journal mode, not WAL as "
                f"it was (journal_mode: {mode}), because another connection "
                "opened it during the copy; set PRAGMA journal_mode=WAL again "
                "once nothing else has it open",
                self._module,
            )

    def _settle_journal_mode(self) -> None:
        """Put the destination back in rollback-journal mode if the copy
        made it WAL. A new file that cannot be is not published; an existing
        one already holds the new content, so a warning says so."""
        # The cursor is closed whatever happens (Ctrl-C included): a statement
        # left open would keep the connection, and its -wal file, alive.
        cursor = self.dest.cursor()
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() == "wal":
                mode = cursor.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
                if str(mode).lower() == "wal":
                    raise sqlite_error(
                        5,
                        "the journal mode could not be set back to DELETE",
                        self._module,
                    )
        except self._module.Error as e:
            if self._final is not None:
                raise
            warnings.warn(
                f"{self._dest_path}: the copy is complete, but the file is left in "
                f"WAL mode (it was not): {e}",
                RuntimeWarning,
                stacklevel=4,
            )
        finally:
            cursor.close()

    def _publish(self, before_link: Callable[[], object]) -> None:
        """Make the copy durable, then give it its final name atomically.

        A hard link does it without ever replacing a file that another
        process created there meanwhile (FileExistsError); where the file
        system has no hard links, a rename does it. ``before_link`` is the
        last chance to stop (a Ctrl-C or a cancellation during the fsync).
        """
        assert self._private is not None and self._final is not None
        copy, final = os.path.join(self._private, _COPY_NAME), self._final
        try:
            if stat.S_IMODE(os.stat(copy).st_mode) != self._final_mode:
                os.chmod(copy, self._final_mode)
            _fsync(copy)
            before_link()
            try:
                os.link(copy, final)
            except FileExistsError:
                raise FileExistsError(
                    errno.EEXIST,
                    "created by another program during the copy; left as it is",
                    final,
                ) from None
            except OSError:
                os.replace(copy, final)
        except OSError as e:
            raise _renamed(e, final) from None
        self._final = None
        folder = os.path.dirname(final) or os.curdir
        with contextlib.suppress(OSError):  # not every platform syncs folders
            _fsync(folder, directory=True)

    def _remove_private(self) -> None:
        assert self._private is not None
        _remove_folder(self._private)
        self._private = None
