"""Property tests: any database, copied any way, dumps as the source does."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sqlitebck

TYPES = ["INTEGER", "REAL", "TEXT", "BLOB", ""]
values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.binary(max_size=3000),
)


@st.composite
def tables(draw: st.DrawFn, index: int) -> dict[str, Any]:
    columns = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=4))
    ids = draw(st.lists(st.integers(-(10**9), 10**9), unique=True, max_size=60))
    return {
        "name": f"t{index}",
        "columns": columns,
        "without_rowid": draw(st.booleans()),
        "rows": [[i] + [draw(values) for _ in columns] for i in ids],
        "index": draw(st.booleans()),
        "view": draw(st.booleans()),
        "trigger": draw(st.booleans()),
    }


@st.composite
def databases(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 4))
    return {
        "page_size": draw(st.sampled_from([512 << k for k in range(8)])),
        "auto_vacuum": draw(st.sampled_from(["NONE", "FULL", "INCREMENTAL"])),
        "journal": draw(st.sampled_from(["delete", "wal"])),
        "tables": [draw(tables(i)) for i in range(count)],
    }


def build(path: Path, spec: dict[str, Any]) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={spec['page_size']}")
    conn.execute(f"PRAGMA auto_vacuum={spec['auto_vacuum']}")
    conn.execute(f"PRAGMA journal_mode={spec['journal']}").fetchone()
    conn.execute("BEGIN")
    for t in spec["tables"]:
        cols = ", ".join(f"c{i} {ty}" for i, ty in enumerate(t["columns"]))
        tail = " WITHOUT ROWID" if t["without_rowid"] else ""
        conn.execute(f"CREATE TABLE {t['name']}(id INTEGER PRIMARY KEY, {cols}){tail}")
        marks = ", ".join("?" * (1 + len(t["columns"])))
        conn.executemany(f"INSERT INTO {t['name']} VALUES ({marks})", t["rows"])
        if t["index"]:
            conn.execute(f"CREATE INDEX {t['name']}_c0 ON {t['name']}(c0)")
        if t["view"]:
            conn.execute(f"CREATE VIEW {t['name']}_v AS SELECT * FROM {t['name']}")
        if t["trigger"]:
            conn.execute(
                f"CREATE TRIGGER {t['name']}_tr AFTER DELETE ON {t['name']} "
                f"BEGIN SELECT 1; END"
            )
    conn.execute("COMMIT")
    return conn


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    spec=databases(),
    pages=st.sampled_from([0, -1, 1, 3, 50, 10_000]),
    sleep=st.sampled_from([0, 0.1]),
    target=st.sampled_from(["memory", "new file", "existing file", "backup object"]),
)
def test_any_database_copied_any_way_dumps_the_same(
    spec: dict[str, Any], pages: int, sleep: float, target: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = build(Path(tmp) / "src.db", spec)
        dest_path = Path(tmp) / "dst.db"
        if target == "memory":
            dest: Any = sqlite3.connect(":memory:")
        elif target == "existing file":
            dest = sqlite3.connect(dest_path)
            dest.execute("CREATE TABLE old(x)")
            dest.execute("INSERT INTO old VALUES (1)")
            dest.commit()
        else:
            dest = dest_path
        if target == "backup object":
            with sqlitebck.Backup(source, dest) as backup:
                while not backup.step(pages):
                    pass
        else:
            sqlitebck.copy(source, dest, pages, sleep)
        if not isinstance(dest, sqlite3.Connection):
            dest = sqlite3.connect(dest)
        assert list(dest.iterdump()) == list(source.iterdump())
        assert dest.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        for pragma in ("page_size", "auto_vacuum"):
            mine = dest.execute(f"PRAGMA {pragma}").fetchone()
            assert mine == source.execute(f"PRAGMA {pragma}").fetchone(), pragma
        dest.close()
        source.close()
