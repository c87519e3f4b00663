"""Django pieces that ship with sqlitebck (Django itself is not required by
sqlitebck: importing these needs it).

``sqlitebck.django.sqlite3`` is a database backend, Django's own SQLite
backend but for the cloning of test databases: name it in ``DATABASES``::

    DATABASES = {"default": {"ENGINE": "sqlitebck.django.sqlite3", "NAME": ...}}
"""
