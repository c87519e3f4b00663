"""``python -m sqlitebck SOURCE DEST``: the command line."""

import sys

from sqlitebck.cli import main

sys.exit(main())
