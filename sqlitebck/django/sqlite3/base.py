"""The backend module Django loads for ``"ENGINE": "sqlitebck.django.sqlite3"``."""

from __future__ import annotations

from typing import Any

from django.db.backends.sqlite3 import base  # type: ignore[import-untyped]

from sqlitebck.django.sqlite3.creation import DatabaseCreation


class DatabaseWrapper(base.DatabaseWrapper):  # type: ignore[misc]
    """Django's SQLite ``DatabaseWrapper``, with :class:`DatabaseCreation`."""

    creation_class: Any = DatabaseCreation
