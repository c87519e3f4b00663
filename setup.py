from setuptools import setup

setup(cffi_modules=["build_sqlitebck.py:ffibuilder"])
