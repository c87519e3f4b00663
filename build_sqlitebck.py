"""The cffi builder for ``sqlitebck._sqlitebck`` (out-of-line, API mode).

The declarations handed to cffi are the block of ``csrc/sqlitebck.h``
between its ``cdef begin`` and ``cdef end`` markers, so that C and Python
see one single text. No SQLite library is linked: ``csrc/library.c`` binds
the SQLite that Python's own sqlite3 module loaded, at import time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cffi import FFI

CSRC = Path("csrc")


def cdef_text() -> str:
    """Return the cffi declarations: the marked block of the C header."""
    text = (Path(__file__).parent / CSRC / "sqlitebck.h").read_text()
    start = text.index("/* cdef begin */") + len("/* cdef begin */")
    return text[start : text.index("/* cdef end */")]


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "sqlitebck._sqlitebck",
    '#include "sqlitebck.h"',
    sources=[
        str(CSRC / name) for name in ("library.c", "registry.c", "backup.c", "vfs.c")
    ],
    include_dirs=[str(CSRC)],
    libraries=["dl"] if sys.platform.startswith("linux") else [],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
