"""``python -m sqlitebck SOURCE DEST``: the command line."""

import sys

try:
    from sqlitebck.cli import main
except KeyboardInterrupt:  # Ctrl-C while starting: nothing was done
    print("sqlitebck: interrupted; nothing was copied", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
