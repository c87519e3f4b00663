"""Django's SQLite backend, whose test databases are cloned by sqlitebck
(for ``manage.py test --parallel``): a consistent copy that includes what is
still in the ``-wal`` file, where Django's own clone copies the main file
only. Use ``"ENGINE": "sqlitebck.django.sqlite3"``."""
