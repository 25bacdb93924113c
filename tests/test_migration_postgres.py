"""The import on PostgreSQL: its journal, audit rows, links and plan rows go through SQLAlchemy there (the
straight-to-the-driver statements are SQLite's), with the same outcome."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from app.ops.migration import run_migration
from app.store.models import FieldChange, Journal, Link, MigrationRow, Workspace
from tests.support import in_process
from tests.test_postgres import pg_url, store  # the PostgreSQL server and a clean store per test

__all__ = ["pg_url", "store"]


def test_an_import_on_postgresql_journals_records_and_links_every_customer_once(store):
    with store.session() as s:
        ws = Workspace(name="pg", crm_provider="hubspot", accounting_provider="xero", settings={})
        s.add(ws)
        s.flush()
        ws_id = ws.id
    crm, acct = in_process("hubspot", "demo"), in_process("xero", "demo")
    plan = run_migration(store, ws_id, crm.connector, acct.connector)
    assert plan.counts["create_ledger"] > 100  # three pages of Xero's 50 and more
    done = run_migration(store, ws_id, crm.connector, acct.connector, apply=True)
    assert done.status == "applied", done.errors
    assert done.done == plan.counts
    with store.session() as s:
        journal = Counter(s.execute(select(Journal.status).where(Journal.op == "create_customer")).scalars())
        made = set(s.scalars(select(Journal.target_id).where(Journal.op == "create_customer")))
        audit = s.scalar(select(func.count()).select_from(FieldChange).where(FieldChange.side == "accounting"))
        links = {lk.acct_id for lk in s.scalars(select(Link).where(Link.how == "created"))}
        rows = Counter(s.execute(select(MigrationRow.status).where(MigrationRow.action == "create_ledger")).scalars())
    assert journal == {"done": plan.counts["create_ledger"]}
    assert None not in made and made <= links  # every customer made is linked, by the id the ledger gave it
    assert audit >= 2 * plan.counts["create_ledger"]  # at least a name and an email each
    assert rows == {"done": plan.counts["create_ledger"]}
    names = Counter((c.raw_name or c.party.name).casefold() for c in acct.connector.read_customers(None).records)
    assert max(names.values()) == 1
