"""The audit trail read back: every field change of a workspace, narrowed the way a bookkeeper asks."""

from __future__ import annotations

import datetime as dt

from app.ops.history import field_changes, how_field_got_value
from app.store.db import Store
from app.store.models import FieldChange, Run, Workspace

T0 = dt.datetime(2026, 11, 20, 9, 0)


def _store(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path}/h.db")
    with store.session() as s:
        ours = Workspace(name="Maple", crm_provider="hubspot", accounting_provider="xero", settings={})
        other = Workspace(name="Oak", crm_provider="pipedrive", accounting_provider="quickbooks", settings={})
        s.add_all([ours, other])
        s.flush()
        runs = [Run(workspace_id=ours.id, trigger=t, status="ok", started_at=T0 + dt.timedelta(days=n))
                for n, t in enumerate(("manual", "schedule", "undo"))]
        elsewhere = Run(workspace_id=other.id, trigger="manual", status="ok", started_at=T0)
        s.add_all([*runs, elsewhere])
        s.flush()
        rows = [
            (runs[0], "accounting", "C1", "email", None, "a@acme.test", "created"),
            (runs[0], "accounting", "C1", "city", None, "Leeds", "created"),
            (runs[1], "accounting", "C1", "email", "a@acme.test", "b@acme.test", "crm-changed"),
            (runs[1], "crm", "901", "postal_code", "LS1", "LS2", "ledger-changed"),
            (runs[2], "accounting", "C1", "email", "b@acme.test", "a@acme.test", "undo"),
            (elsewhere, "accounting", "C1", "email", None, "x@oak.test", "created"),
        ]
        s.add_all([FieldChange(run_id=r.id, side=side, record_id=rid, field=f, before=b, after=a, rule=rule)
                   for r, side, rid, f, b, a, rule in rows])
    return store


def test_changes_are_newest_first_and_only_of_the_workspace_asked(tmp_path):
    store = _store(tmp_path)
    rows = field_changes(store, "Maple")
    assert [(r.trigger, r.field, r.after) for r in rows] == [
        ("undo", "email", "a@acme.test"), ("schedule", "postal_code", "LS2"), ("schedule", "email", "b@acme.test"),
        ("manual", "city", "Leeds"), ("manual", "email", "a@acme.test")]
    assert "x@oak.test" not in {r.after for r in rows}
    assert field_changes(store, "No Such Workspace") == []
    store.dispose()


def test_filters_by_record_field_date_and_kind_of_run(tmp_path):
    store = _store(tmp_path)
    assert {r.record_id for r in field_changes(store, "Maple", record_id="901")} == {"901"}
    assert [r.before for r in field_changes(store, "Maple", field="email")] == ["b@acme.test", "a@acme.test", None]
    day2 = field_changes(store, "Maple", since=T0 + dt.timedelta(days=1), until=T0 + dt.timedelta(days=2))
    assert {r.trigger for r in day2} == {"schedule"} and len(day2) == 2
    assert [r.rule for r in field_changes(store, "Maple", trigger="undo")] == ["undo"]
    store.dispose()


def test_how_a_field_got_its_value_is_the_chain_oldest_first(tmp_path):
    store = _store(tmp_path)
    chain = how_field_got_value(store, "Maple", "C1", "email")
    assert [(c.before, c.after, c.rule) for c in chain] == [
        (None, "a@acme.test", "created"), ("a@acme.test", "b@acme.test", "crm-changed"),
        ("b@acme.test", "a@acme.test", "undo")]
    assert chain[-1].after == "a@acme.test"  # what it holds now
    store.dispose()
