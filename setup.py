import platform
import sysconfig

from setuptools import setup

options = {}
if platform.python_implementation() == "CPython" and not sysconfig.get_config_var(
    "Py_GIL_DISABLED"
):
    # cffi builds the extension on the limited API, so one wheel serves every
    # CPython >= 3.9 (free-threaded builds have no limited API: regular wheel).
    options["bdist_wheel"] = {"py_limited_api": "cp39"}

setup(cffi_modules=["build_sqlitebck.py:ffibuilder"], options=options)
