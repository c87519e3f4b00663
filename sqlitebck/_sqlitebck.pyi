# The cffi-generated extension module (see build_sqlitebck.py).
from typing import Any

ffi: Any
lib: Any
