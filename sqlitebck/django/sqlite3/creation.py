"""Test databases cloned through SQLite's backup API."""

from __future__ import annotations

import os
from typing import Any

from django.db.backends.sqlite3 import creation  # type: ignore[import-untyped]


class DatabaseCreation(creation.DatabaseCreation):  # type: ignore[misc]
    """Django's SQLite ``DatabaseCreation``, whose clones of a test database
    file (one per ``--parallel`` worker) are made with sqlitebck: one
    consistent snapshot, the ``-wal`` file's content included, published
    atomically. In-memory test databases are Django's own business."""

    def _clone_test_db(self, suffix: Any, verbosity: int, keepdb: bool = False) -> None:
        source = self.connection.settings_dict["NAME"]
        target = self.get_test_db_clone_settings(suffix)["NAME"]
        if self.is_in_memory_db(source):
            super()._clone_test_db(suffix, verbosity, keepdb)
            return
        if keepdb and os.path.exists(target):
            return
        if verbosity >= 1:
            self.log(f"Cloning test database {source!r} to {target!r} (sqlitebck)")
        if os.path.exists(target):
            os.remove(target)
        # The public API (a user's module, not one of the package's core).
        import sqlitebck

        sqlitebck.copy(self.connection, target)
