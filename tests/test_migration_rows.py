"""The migration writes its journal, audit rows, links and plan rows straight to SQLite: the same text
in the database as SQLAlchemy writes for the same values, so every other reader finds what it expects."""

from __future__ import annotations

import datetime as dt
import sqlite3

from sqlalchemy import bindparam, insert, update

from app.ops.migration.writes import _JOURNAL, _LINK, _LINKS, _execute_many, _insert_many
from app.store.db import Store
from app.store.models import Run, Workspace


def _raw(path, table: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
    finally:
        con.close()


def test_rows_written_straight_to_sqlite_read_as_sqlalchemy_writes_them(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/m.db")
    with store.session() as s:
        ws = Workspace(name="t", crm_provider="hubspot", accounting_provider="xero", settings={})
        s.add(ws)
        s.flush()
        run = Run(workspace_id=ws.id, trigger="migration", status="running")
        s.add(run)
        s.flush()
        ws_id, run_id = ws.id, run.id
    whole = dt.datetime(2026, 12, 7, 14, 0, 5)  # no microseconds: the case a plain isoformat writes differently
    snapshot = {"crm": {"name": "Société Générale", "email": None}, "acct": {"name": "Société Générale"}}
    links = [(ws_id, "customer", "company", str(n), f"X-{n}", "created", run_id, snapshot, whole, whole)
             for n in range(250)]  # in the columns' own order, not the table's
    with store.session() as s:  # the same rows each way (a hundred to a statement, then fifty)
        s.execute(insert(_LINKS), [dict(zip(_LINK, r, strict=True)) for r in links])
    with store.session() as s:
        _insert_many(s, _LINKS, _LINK, [(*r[:3], f"b{r[3]}", *r[4:]) for r in links])
    rows = _raw(tmp_path / "m.db", "link")
    assert len(rows) == 500 and [r[0] for r in rows] == list(range(1, 501))
    for ours, theirs in zip(rows[:250], rows[250:], strict=True):
        assert theirs[4] == f"b{ours[4]}"
        assert ours[:4] == (ours[0], *theirs[1:4]) and ours[5:] == theirs[5:]

    journal = {"workspace_id": ws_id, "run_id": run_id, "op": "create_customer", "side": "accounting",
               "crm_type": "company", "crm_id": "1", "target_id": None, "payload": {"refs": [["company", "1"]]},
               "status": "pending", "error": None, "created_at": whole, "updated_at": whole}
    with store.session() as s:
        s.execute(insert(_JOURNAL), [{**journal, "key": "a"}, {**journal, "key": "b"}])
    with store.session() as s:  # one answered through SQLAlchemy, one straight to the driver
        def done() -> object:
            return update(_JOURNAL).where(_JOURNAL.c.key == bindparam("b_key")).values(
                status="done", target_id=bindparam("b_target"), updated_at=bindparam("b_now"))

        s.execute(done(), [{"b_key": "a", "b_target": "X-1", "b_now": whole}])
        _execute_many(s, "test journal done", done, [{"b_key": "b", "b_target": "X-1", "b_now": whole}])
    a, b = _raw(tmp_path / "m.db", "journal")
    assert a[3] == "a" and b[3] == "b"
    assert [v for i, v in enumerate(a) if i not in (0, 3)] == [v for i, v in enumerate(b) if i not in (0, 3)]
    store.dispose()
