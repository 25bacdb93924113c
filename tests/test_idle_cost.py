"""A sync with little to do costs little, however many customers are linked: an idle cycle, or one with one
record changed, reads from the store only the links and mirrored records of what changed (counted as
rows the store hands back, not timed), and still plans that change as before."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import event

from app.connectors.base import CustomerWrite, RecordWrite
from app.store.db import Store
from app.store.models import Link, Mirror, Workspace
from app.sync.engine import SyncEngine
from tests.support import in_process

EXTRA = 2_000  # companies beyond the demo's, each a linked customer after the first sync


class Counted:
    def __init__(self) -> None:
        self.rows: Counter[str] = Counter()  # links and mirrored records loaded
        self.statements = 0


@contextlib.contextmanager
def counting(store: Store) -> Iterator[Counted]:
    out = Counted()

    def loaded(target: object, _context: object) -> None:
        out.rows[type(target).__name__] += 1

    def statement(*_args: object) -> None:
        out.statements += 1

    event.listen(Link, "load", loaded)
    event.listen(Mirror, "load", loaded)
    event.listen(store.engine, "before_cursor_execute", statement)
    try:
        yield out
    finally:
        event.remove(Link, "load", loaded)
        event.remove(Mirror, "load", loaded)
        event.remove(store.engine, "before_cursor_execute", statement)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The demo's CRM (its won deals invoiced) and 2,000 more companies, all linked, synced until quiet."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('idle')}/idle.db")
    with store.session() as s:
        ws = Workspace(name="idle", crm_provider="hubspot", accounting_provider="quickbooks", settings={
            "safety": {"mass_change_percent": 100, "mass_change_records": 10**9}})
        s.add(ws)
        s.flush()
        ws_id = ws.id
    crm, acct = in_process("hubspot", "demo"), in_process("quickbooks", "demo")
    crm.sandbox.add_companies(EXTRA)

    def sync() -> object:
        return SyncEngine(store, ws_id, crm.connector, acct.connector).run()

    first = sync()
    assert first.status == "ok" and first.counts["invoices_created"] > 0
    sync()  # the feeds hand the first run's writes back once
    with store.session() as s:
        linked = s.query(Link).filter_by(workspace_id=ws_id, object_type="customer").count()
    assert linked > EXTRA
    yield {"store": store, "sync": sync, "crm": crm, "acct": acct, "ws_id": ws_id, "linked": linked}
    crm.connector.close()
    acct.connector.close()
    store.dispose()


def test_an_idle_cycle_loads_no_link_or_mirror_row_per_customer(world):
    with counting(world["store"]) as seen:
        result = world["sync"]()
    assert result.status == "ok" and result.counts["writes"] == 0
    # deals held back earlier are looked at again (a few); nothing is loaded per linked customer
    assert sum(seen.rows.values()) < 50, seen.rows
    assert seen.statements < 60, seen.statements


def test_one_company_edited_in_the_crm_loads_its_own_rows_and_reaches_the_ledger(world):
    crm, acct = world["crm"], world["acct"]
    company = next(c for c in crm.connector.read_records("company", None).records
                   if c.properties.get("name", "").startswith("Bulk Company"))
    edit = RecordWrite("e1", "company", company.id, {"billing_email": "accounts@one-edit.example"})
    assert crm.connector.update_records([edit])[0].ok
    with counting(world["store"]) as seen:
        result = world["sync"]()
    assert result.status == "ok" and result.counts["updated"] == 1
    assert sum(seen.rows.values()) < 50 and seen.statements < 60, (seen.rows, seen.statements)
    ledger = {c.party.name: c.party.email for c in acct.connector.read_customers(None).records}
    assert ledger[company.properties["name"]] == "accounts@one-edit.example"


def test_one_customer_edited_in_the_ledger_loads_its_own_rows_and_reaches_the_crm(world):
    crm, acct = world["crm"], world["acct"]
    customer = next(c for c in acct.connector.read_customers(None).records if c.party.name.startswith("Bulk Company"))
    edited = customer.party.with_fields({"email": "ledger@one-edit.example"})
    assert acct.connector.update_customers([CustomerWrite("e2", edited, id=customer.id,
                                                          version=customer.version)])[0].ok
    with counting(world["store"]) as seen:
        result = world["sync"]()
    assert result.status == "ok" and result.counts["updated"] == 1
    assert sum(seen.rows.values()) < 50 and seen.statements < 60, (seen.rows, seen.statements)
    emails = {c.properties.get("name"): c.properties.get("billing_email")
              for c in crm.connector.read_records("company", None).records}
    assert emails[customer.party.name] == "ledger@one-edit.example"
