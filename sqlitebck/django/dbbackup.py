"""A django-dbbackup connector that backs up and restores SQLite databases
through sqlitebck: ``sqlitebck.django.dbbackup.SqlitebckConnector``.

django-dbbackup's own SQLite connectors restore by writing the backup over
the database file. With the database in WAL mode that does not work: what
the ``-wal`` file beside it holds (and the connections that have it open
keep reading) is not the restored file's, so the restore is lost at the
next checkpoint, or the file is corrupted. This connector restores through
SQLite's backup API, into the live database (one transaction, as any other
writer; connections that stay open see the restored data), and backs up one
consistent snapshot of it, what is still in its ``-wal`` file included, as a
self-contained database file (the dumps are interchangeable with those of
django-dbbackup's ``SqliteBackupConnector``). Name it in the settings::

    DBBACKUP_CONNECTOR_MAPPING = {
        "django.db.backends.sqlite3": "sqlitebck.django.dbbackup.SqlitebckConnector",
        "sqlitebck.django.sqlite3": "sqlitebck.django.dbbackup.SqlitebckConnector",
    }

(or per database, as ``DBBACKUP_CONNECTORS = {"default": {"CONNECTOR":
...}}``). A backup's ``.metadata`` file names the connector that made it,
and ``dbrestore`` uses that one: backups made before the switch are
restored by the connector that made them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import IO, Any

from dbbackup import settings, utils
from dbbackup.db.base import BaseDBConnector

# The public API (a user's module, not one of the package's core).
import sqlitebck


class SqlitebckConnector(BaseDBConnector):  # type: ignore[misc]
    """Backs up a SQLite database (``connections[alias]``) with
    :func:`sqlitebck.copy` to a new file, and restores a backup with
    :func:`sqlitebck.copy` into the open database: never over its file.

    The dump is a whole database file: ``--exclude-tables`` is refused
    (django-dbbackup's ``SqliteConnector`` dumps SQL, and can leave tables
    out). Scratch files go to ``DBBACKUP_TMP_DIR``, in a private folder that
    is removed after.
    """

    extension = "sqlite3"

    def create_dump(self) -> IO[bytes]:
        """A consistent snapshot of the database, as a file object."""
        if self.exclude:
            raise ValueError(
                f"{type(self).__name__} copies whole databases, and cannot "
                f"leave out tables ({', '.join(map(str, self.exclude))}): use "
                "dbbackup.db.sqlite.SqliteConnector to exclude tables"
            )
        with tempfile.TemporaryDirectory(dir=settings.TMP_DIR) as folder:
            path = os.path.join(folder, f"dump.{self.extension}")
            sqlitebck.copy(self.connection, path)
            with open(path, "rb") as copied:
                dump: IO[bytes] = utils.create_spooled_temporary_file(fileobj=copied)
        dump.seek(0)
        return dump

    def restore_dump(self, dump: Any) -> None:
        """Copy the database in ``dump`` (a file object) into the live
        database, through its Django connection: one transaction, which the
        database's other connections see as any other writer's. A dump that
        is no database is refused ("the backup: not an SQLite database"),
        the database untouched."""
        with tempfile.TemporaryDirectory(dir=settings.TMP_DIR) as folder:
            path = os.path.join(folder, f"restore.{self.extension}")
            with open(path, "xb") as copied:
                shutil.copyfileobj(dump, copied, settings.TMP_FILE_READ_SIZE)
            try:
                sqlitebck.copy(path, self.connection)
            except Exception as error:
                # Named as the user knows it, not by its scratch copy's name.
                if error.args and isinstance(error.args[0], str):
                    message = error.args[0].replace(path, "the backup")
                    error.args = (message, *error.args[1:])
                raise
