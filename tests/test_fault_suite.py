"""The fault suite: the sandboxes fail about one request in ten, in every way a network or a provider
can (500, 429 with Retry-After, read timeouts, a connection reset after the write was committed,
malformed JSON, a truncated body, an access token expiring mid-run). Runs converge, nothing is
created twice, nothing is lost, and every failure is logged with a reason."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from app.sandbox.base import Fault
from app.store.db import Store
from app.store.models import Link, Quarantine, Run, Workspace
from app.sync.engine import SyncEngine
from tests.support import in_process

KINDS = ("500", "429", "timeout", "reset_after_commit", "malformed", "truncated", "expire_token")
PAIRS = [("hubspot", "quickbooks"), ("pipedrive", "xero"), ("salesforce", "zohobooks"), ("zohocrm", "quickbooks")]


def faults(offset: int) -> list[Fault]:
    """Seven kinds, each every 35th request at its own phase: one request in five fails (a sync of the demo
    makes only a few dozen calls per side thanks to batching, so one in ten would not reach every kind)."""
    return [Fault(kind, nth=offset + 2 + 5 * n, every=35, retry_after=1) for n, kind in enumerate(KINDS)]


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{c}-{a}" for c, a in PAIRS])
def test_runs_converge_under_ten_percent_faults_without_duplicates(tmp_path, pair, caplog):
    crm_name, acct_name = pair
    clean = Store(f"sqlite:///{tmp_path}/clean.db")  # the same data synced with no faults, for comparison
    faulty = Store(f"sqlite:///{tmp_path}/faulty.db")
    results = {}
    for label, store, inject in (("clean", clean, False), ("faulty", faulty, True)):
        with store.session() as s:
            ws = Workspace(name="f", crm_provider=crm_name, accounting_provider=acct_name, settings={})
            s.add(ws)
            s.flush()
            ws_id = ws.id
        crm, acct = in_process(crm_name, "demo"), in_process(acct_name, "demo")
        if inject:
            crm.sandbox.faults += faults(0)
            acct.sandbox.faults += faults(2)
        runs = []
        with caplog.at_level(logging.WARNING):
            for _ in range(8):
                runs.append(SyncEngine(store, ws_id, crm.connector, acct.connector).run())
                for side in (crm, acct):  # the next scheduled run comes a few minutes later
                    side.sandbox.advance(300)
                if runs[-1].status == "ok" and runs[-1].counts["writes"] == 0:
                    break
        results[label] = (store, ws_id, crm, acct, runs)

    store, ws_id, crm, acct, runs = results["faulty"]
    fired = Counter(f.kind for side in (crm, acct) for f in side.sandbox.faults for _ in range(f.fired))
    assert sum(fired.values()) >= 10 and len(fired) >= 5, fired  # the faults really happened
    assert runs[-1].status == "ok" and runs[-1].counts["writes"] == 0, [r.status for r in runs]

    # Nothing created twice: active ledger customers and invoices are unique by name / reference.
    customers = [c for c in acct.connector.read_customers(None).records if c.active]
    names = Counter((c.raw_name or c.party.name).casefold() for c in customers)
    assert [n for n, k in names.items() if k > 1] == []
    invoices = acct.connector.read_invoices(None).records
    refs = Counter(i.reference for i in invoices if i.reference and i.status != "void")
    assert [r for r, k in refs.items() if k > 1] == []

    # Nothing lost: the faulty world ends where the clean one did.
    def outcome(store, ws_id):
        with store.session() as s:
            links = {(lk.crm_type, lk.crm_id) for lk in s.query(Link).filter_by(workspace_id=ws_id,
                                                                                   object_type="customer")}
            held = {(q.record_type, q.record_id) for q in s.query(Quarantine).filter_by(workspace_id=ws_id)}
        return links, held

    assert outcome(store, ws_id) == outcome(*results["clean"][:2])
    clean_acct = results["clean"][3]
    assert len(invoices) == len(clean_acct.connector.read_invoices(None).records)

    # Every run that hit trouble says why, in words.
    with store.session() as s:
        troubled = [r for r in s.query(Run).filter_by(workspace_id=ws_id) if r.status != "ok"]
    for r in troubled:
        assert r.message and len(r.message) > 20, (r.status, r.message)
