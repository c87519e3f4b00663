"""Django pieces that ship with sqlitebck (Django itself is not required by
sqlitebck: importing these needs it).

``sqlitebck.django.sqlite3`` is a database backend, Django's own SQLite
backend but for the cloning of test databases: name it in ``DATABASES``::

    DATABASES = {"default": {"ENGINE": "sqlitebck.django.sqlite3", "NAME": ...}}

``sqlitebck.django.dbbackup.SqlitebckConnector`` is a django-dbbackup
connector that restores into the live database through the backup API
(never over its file) and backs up a consistent snapshot::

    DBBACKUP_CONNECTOR_MAPPING = {
        "django.db.backends.sqlite3": "sqlitebck.django.dbbackup.SqlitebckConnector"
    }
"""
