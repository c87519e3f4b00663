"""Why ``import sqlitebck`` found no compiled core, in one line.

The usual cause: Python was started in a source checkout (``python -m
sqlitebck`` or ``python -c "import sqlitebck"`` from its root, where the
README's commands leave you), so the checkout's ``sqlitebck/`` folder, which
holds no compiled ``_sqlitebck`` unless built in place, hides the installed
package.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import PathFinder
from typing import NoReturn


def message(package: str) -> str:
    """What is wrong with the package in folder ``package``, and what to do.

    >>> message("/nowhere/sqlitebck")  # doctest: +ELLIPSIS
    'sqlitebck at /nowhere/sqlitebck has no compiled core (_sqlitebck): reinstall it...'
    """
    parent = os.path.dirname(os.path.abspath(package))
    if not os.path.isfile(os.path.join(parent, "build_sqlitebck.py")):
        return (
            f"sqlitebck at {package} has no compiled core (_sqlitebck): "
            "reinstall it (pip install --force-reinstall sqlitebck)"
        )
    others = [p for p in sys.path if os.path.abspath(p or os.curdir) != parent]
    installed = PathFinder.find_spec("sqlitebck", others)
    if installed is not None and installed.submodule_search_locations:
        where = next(iter(installed.submodule_search_locations))
        return (
            f"the source checkout at {parent} hides the sqlitebck installed at "
            f"{where}, and has no compiled core: run the `sqlitebck` command, "
            "or from another folder, or build in place with `pip install -e .`"
        )
    return (
        f"the source checkout at {parent} has no compiled core and no "
        "sqlitebck is installed: `pip install .` (then run from another "
        "folder) or `pip install -e .` in it"
    )


def fail() -> NoReturn:
    """Raise ImportError saying why; under ``python -m sqlitebck`` (which
    imports the package first), print it as the command's one error line."""
    text = message(os.path.dirname(os.path.abspath(__file__)))
    if sys.argv[:1] == ["-m"]:  # set so while -m imports the package
        print(f"sqlitebck: error: {text}", file=sys.stderr)
        raise SystemExit(1)
    raise ImportError(text, name="sqlitebck") from None
