"""The customer sync end to end, CRM sandbox -> ledger sandbox, for every pair built so far."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from app.connectors import registry
from app.connectors.base import RecordWrite
from app.sandbox.base import Fault
from app.store.db import Store
from app.store.models import Journal, Link, Quarantine, Workspace
from app.sync.engine import SyncEngine
from tests.support import in_process

PAIRS = [(c, a) for c, a in itertools.product(registry.available("crm"), registry.available("accounting"))]


def pytest_generate_tests(metafunc):
    if "pair" in metafunc.fixturenames:
        metafunc.parametrize("pair", PAIRS or [pytest.param(None, marks=pytest.mark.skip("no connectors"))],
                             ids=[f"{c}-{a}" for c, a in PAIRS] or None)


class World:
    def __init__(self, tmp_path, crm: str, acct: str, seed: str = "demo"):
        self.store = Store(f"sqlite:///{tmp_path}/w.db")
        with self.store.session() as s:
            ws = Workspace(name="t", crm_provider=crm, accounting_provider=acct, settings={})
            s.add(ws)
            s.flush()
            self.ws_id = ws.id
        self.crm = in_process(crm, seed)
        self.acct = in_process(acct, seed)

    def sync(self, **kw):
        return SyncEngine(self.store, self.ws_id, self.crm.connector, self.acct.connector, **kw).run()

    def ledger_customers(self):
        return self.acct.connector.read_customers(None).records

    def links(self):
        with self.store.session() as s:
            return list(s.query(Link).filter_by(workspace_id=self.ws_id))


def no_duplicates(customers) -> None:
    names = Counter((c.raw_name or c.party.name).casefold() for c in customers if c.active)
    assert [n for n, k in names.items() if k > 1] == []


def test_demo_data_syncs_with_links_quarantine_and_no_duplicates(tmp_path, pair):
    w = World(tmp_path, *pair)
    before = {c.id for c in w.ledger_customers()}
    result = w.sync()
    assert result.status == "ok", result.errors
    c = result.counts
    assert c["created"] > 100 and c["linked"] >= 15 and c["quarantined"] >= 10
    customers = w.ledger_customers()
    no_duplicates(customers)
    # Every created customer is new, and every CRM duplicate shares one ledger customer.
    assert len({x.id for x in customers} - before) == c["created"]
    links = w.links()
    by_acct = Counter(lk.acct_id for lk in links)
    assert any(n > 1 for n in by_acct.values()), "CRM duplicates should share a ledger customer"
    with w.store.session() as s:
        reasons = [i["message"] for q in s.query(Quarantine) for i in q.reasons["items"]]
    assert any("email address" in r for r in reasons) and any("not valid for" in r for r in reasons)
    with w.store.session() as s:  # one count per held record: customers and people, and won deals apart
        held = Counter("deal" if q.record_type == "deal" else "party" for q in s.query(Quarantine))
    assert c["quarantined"] == held["party"] and c.get("deals_held", 0) == held["deal"]

    again = w.sync()
    assert again.counts["writes"] == 0 and again.counts["created"] == 0
    assert again.status == "ok"


def test_incremental_run_reads_only_the_change_feeds_and_an_edit_flows(tmp_path, pair):
    w = World(tmp_path, *pair)
    w.sync()
    w.sync()  # some feeds hand back our own writes once; they are recognised and write nothing
    crm_calls = w.crm.connector.api.request_count
    acct_calls = w.acct.connector.api.request_count
    idle = w.sync()
    assert idle.counts["writes"] == 0
    # One read per object type: companies, people and deals; customers, items, invoices, payments and credit notes.
    assert w.crm.connector.api.request_count - crm_calls <= 3
    assert w.acct.connector.api.request_count - acct_calls <= 5

    link = next(lk for lk in w.links() if lk.crm_type == "company" and lk.how == "created")
    mapping = w.crm.connector.default_mapping()["company"]
    email_field = mapping["email"].split("|")[0]
    [res] = w.crm.connector.update_records(
        [RecordWrite("t1", "company", link.crm_id, {email_field: "new-billing@example.com"})])
    assert res.ok, res.error
    edited = w.sync()
    assert edited.counts["updated"] == 1 and edited.counts["writes"] == 1
    [cust] = w.acct.connector.get_customers([link.acct_id])
    assert cust.party.email == "new-billing@example.com"
    assert w.sync().counts["writes"] == 0


def test_killed_between_send_and_record_then_rerun_creates_no_duplicate(tmp_path, pair):
    w = World(tmp_path, *pair)
    before = {c.id for c in w.ledger_customers()}
    engine = SyncEngine(w.store, w.ws_id, w.crm.connector, w.acct.connector)
    lost: list = []

    def power_cut(done):
        # The ledger has committed this batch of creates; the process dies before we record any of it.
        lost.extend(done)
        raise KeyboardInterrupt("power cut")

    engine._record_done = power_cut
    with pytest.raises(KeyboardInterrupt):
        engine.run()
    assert lost and all(d.target_id for d in lost)
    made = {c.id for c in w.ledger_customers()} - before
    assert {d.target_id for d in lost} <= made  # really in the ledger...
    with w.store.session() as s:  # ...and not recorded by us
        pending = {j.key for j in s.query(Journal).filter_by(status="pending")}
    assert {d.key for d in lost} <= pending
    result = w.sync()
    assert result.status == "ok", result.errors
    no_duplicates(w.ledger_customers())
    assert w.sync().counts["writes"] == 0


def test_rate_limits_and_server_errors_are_retried(tmp_path, pair):
    w = World(tmp_path, *pair)
    w.acct.sandbox.faults += [Fault("429", nth=2, match="POST|PUT"), Fault("500", nth=3, match="GET")]
    w.crm.sandbox.faults += [Fault("500", nth=1, match="."), Fault("429", nth=3, match=".")]
    result = w.sync()
    assert result.status == "ok", result.errors
    no_duplicates(w.ledger_customers())
    assert all(f.fired for f in w.acct.sandbox.faults + w.crm.sandbox.faults)
