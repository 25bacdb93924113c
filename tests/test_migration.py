"""The one-time migration as a bookkeeper meets it: a plan first, then exactly that plan, once."""

from __future__ import annotations

import itertools
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.connectors import registry
from app.connectors.base import Limits
from app.domain.models import AccountingCustomer, CrmRecord, Party
from app.ops.migration import PlanInput, build_plan, describe_result, estimate_calls, run_migration
from app.ops.workspaces import UserError
from app.store.db import Store
from app.store.models import Journal, Link, MigrationPlan, Quarantine, Workspace
from app.sync.engine import SyncEngine
from tests.support import in_process
from tests.test_cli import ROOT, _serve, add_acme, cli, qbo_customers

PAIRS = list(itertools.product(registry.available("crm"), registry.available("accounting")))


class World:
    def __init__(self, tmp_path: Path, crm: str, acct: str, **acct_kw) -> None:
        self.store = Store(f"sqlite:///{tmp_path}/m.db")
        with self.store.session() as s:
            ws = Workspace(name="t", crm_provider=crm, accounting_provider=acct, settings={})
            s.add(ws)
            s.flush()
            self.ws_id = ws.id
        self.crm = in_process(crm, "demo")
        self.acct = in_process(acct, "demo", **acct_kw)

    def migrate(self, **kw):
        return run_migration(self.store, self.ws_id, self.crm.connector, self.acct.connector, **kw)

    def ledger(self) -> list[AccountingCustomer]:
        return [c for c in self.acct.connector.read_customers(None).records if c.active]

    def crm_names(self) -> list[str]:
        return [r.properties.get("name") or r.properties.get("Name") or r.properties.get("Account_Name") or ""
                for r in self.crm.connector.read_records("company", None).records]

    def links(self) -> dict[tuple[str, str], str]:
        with self.store.session() as s:
            return {(lk.crm_type, lk.crm_id): lk.acct_id for lk in s.scalars(select(Link))}


@pytest.mark.parametrize(("crm", "acct"), PAIRS, ids=[f"{c}-{a}" for c, a in PAIRS])
def test_dry_run_then_apply_give_the_same_counts_and_a_second_apply_does_nothing(tmp_path, crm, acct):
    w = World(tmp_path, crm, acct)
    ledger_before = len(w.ledger())
    plan = w.migrate()
    assert plan.status == "planned", plan.errors
    assert plan.counts["link"] > 10 and plan.counts["create_ledger"] > 100 and plan.counts["invalid"] > 5
    assert len(w.ledger()) == ledger_before  # a dry run writes nothing
    assert not w.links()
    # every row says what it is, and why
    assert all(r.explanation for r in plan.rows if r.action in ("link", "invalid", "review"))
    assert any("same" in r.explanation for r in plan.rows if r.action == "link")
    assert plan.estimate.acct_calls >= plan.counts["create_ledger"] / w.acct.connector.limits.batch_max

    done = w.migrate(apply=True)
    assert done.status == "applied", done.errors
    assert done.done == plan.counts  # what was shown is what was done
    ledger = w.ledger()
    assert len(ledger) == ledger_before + plan.counts["create_ledger"]
    names = Counter((c.raw_name or c.party.name).casefold() for c in ledger)
    assert max(names.values()) == 1
    links = w.links()
    linked_rows = plan.counts["link"] + plan.counts["create_crm"]
    assert len(links) >= linked_rows + plan.counts["create_ledger"]

    again = w.migrate(apply=True)
    assert again.status == "nothing_to_do" and again.writes == 0
    assert len(w.ledger()) == len(ledger) and w.links() == links
    assert "nothing left to do" in describe_result(again)

    # the baseline holds: the regular sync finds no customer to create or change, and a new plan is empty
    sync = SyncEngine(w.store, w.ws_id, w.crm.connector, w.acct.connector).run()
    assert sync.counts["created"] == 0 and sync.counts["updated"] == 0, sync.counts
    fresh = w.migrate()
    assert fresh.counts["link"] == fresh.counts["create_ledger"] == fresh.counts["create_crm"] == 0
    assert fresh.already_linked == len(links)  # every linked record is recognised as such


def test_excluded_rows_are_not_written(tmp_path):
    w = World(tmp_path, "hubspot", "quickbooks")
    plan = w.migrate()
    pick = {a: next(r for r in plan.rows if r.action == a) for a in ("create_ledger", "create_crm", "link")}
    with pytest.raises(UserError, match="no row 999999"):
        w.migrate(exclude=[999999])
    shown = w.migrate(exclude=[r.id for r in pick.values()])  # before applying, the plan is shown again
    assert shown.excluded == 3
    assert shown.counts["create_ledger"] == plan.counts["create_ledger"] - 1
    assert "left out" in describe_result(shown)

    done = w.migrate(apply=True)
    assert done.status == "applied", done.errors
    assert done.done == shown.counts
    names = {(c.raw_name or c.party.name) for c in w.ledger()}
    assert pick["create_ledger"].after["ledger"]["display_name"] not in names
    assert pick["create_crm"].name not in w.crm_names()
    link_row = pick["link"]
    assert tuple(link_row.crm.split(" ")) not in w.links()
    assert w.migrate(apply=True).status == "nothing_to_do"


def test_cancelled_apply_resumes_without_duplicates(tmp_path):
    w = World(tmp_path, "hubspot", "xero")
    plan = w.migrate()
    cancel = threading.Event()
    seen: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        seen.append(stage)
        if done >= 50:
            cancel.set()

    first = w.migrate(apply=True, progress=progress, cancel=cancel)
    assert first.status == "cancelled"
    assert any("left" in s for s in seen)  # the ETA is updated while running
    assert "continue" in describe_result(first)
    with w.store.session() as s:
        assert s.scalars(select(MigrationPlan)).one().status == "applying"
    with pytest.raises(UserError, match="has not finished"):
        w.migrate()  # no new plan while one is half done
    second = w.migrate(apply=True)
    assert second.status == "applied"
    assert second.done == plan.counts
    names = Counter((c.raw_name or c.party.name).casefold() for c in w.ledger())
    assert max(names.values()) == 1


def test_a_daily_cap_pauses_the_import_and_it_continues_by_itself(tmp_path):
    w = World(tmp_path, "hubspot", "xero")
    plan = w.migrate()
    w.acct.sandbox.set_daily_usage(4999)  # one call left today
    stages: list[str] = []
    done = w.migrate(apply=True, progress=lambda stage, *_: stages.append(stage), sleep=w.acct.sandbox.advance)
    assert done.status == "applied", done.errors
    assert done.done == plan.counts
    assert any("daily limit" in s and "continues by itself" in s for s in stages)


def test_eta_comes_from_the_providers_limits():
    qbo = Limits(requests=500, window_seconds=60, batch_max=30)
    assert estimate_calls(10, qbo) == (pytest.approx(1.2), 0)
    xero = Limits(requests=60, window_seconds=60, batch_max=50, daily_cap=5000)
    seconds, days = estimate_calls(12_000, xero)
    assert days == 2 and seconds == pytest.approx(12_000)


def test_a_pipedrive_import_is_estimated_in_tokens_a_new_record_costs_five():
    from app.connectors import registry
    from app.connectors.base import Connection
    from app.connectors.tokens import MemoryTokenStore
    from app.ops.migration.estimate import estimate
    from app.store.models import MigrationRow

    lite = registry.make_connector(Connection(id="p", provider="pipedrive", base_url="http://pipedrive.test",
                                              extra={"seats": 1}), MemoryTokenStore())
    assert (lite.limits.daily_cap, lite.limits.write_cost, lite.limits.cap_unit) == (30_000, 5, "tokens")
    # 10,000 new CRM records at 5 tokens each: 50,000 tokens, a day and more on Lite with one seat
    rows = [MigrationRow(action="create_crm", status="pending", excluded=False, payload={}) for _ in range(10_000)]
    ledger = Limits(requests=60, window_seconds=60, batch_max=50, daily_cap=5000)
    found = estimate(rows, lite.limits, ledger, "Xero", "Pipedrive")
    lite.close()
    assert found.days == 1
    assert found.note.startswith("Pipedrive allows 30,000 tokens a day: the import pauses")


MAPPING = {"company": {"name": "name", "email": "email", "phone": "phone", "country": "country",
                       "tax_id": "tax_id", "city": "city"}}


def _crm(rid: str, **props) -> CrmRecord:
    return CrmRecord("company", rid, props, None, False, None)


def _cust(cid: str, name: str, **fields) -> AccountingCustomer:
    return AccountingCustomer(cid, Party("company", name, **fields), None, True, "0", name)


def test_matching_is_explained_and_ambiguous_pairs_wait_for_review():
    crm = {("company", r.id): r for r in [
        _crm("1", name="Acme Widgets Ltd", email="accounts@acmewidgets.com", country="GB"),
        _crm("2", name="Harbour Bakery Ltd", email="hello@harbourbakery.io"),
        _crm("3", name="HARBOUR BAKERY LIMITED", email="hello@harbourbakery.io"),
        _crm("4", name="Copper Kettle Catering Ltd"),
        _crm("5", name="Totally Different Name", email="billing@zephyr-optics.com"),
        _crm("6", name="Broken Email Ltd", email="accounts@@broken"),
    ]}
    ledger = {c.id: c for c in [
        _cust("L1", "ACME Widgets Limited", email="accounts@acmewidgets.com", city="Leeds"),
        _cust("L2", "Copper Kettle Caterers Ltd"),
        _cust("L3", "Zephyr Optics GmbH", email="billing@zephyr-optics.com"),
        _cust("L4", "Saffron Print Studio", email="hello@saffronprint.de"),
    ]}
    rows, already = build_plan(PlanInput(crm, ledger, {}, MAPPING))
    by = {(r.action, r.crm_ref[1] if r.crm_ref else r.acct_id): r for r in rows}
    assert already == 0
    link = by[("link", "1")]
    assert link.acct_id == "L1" and "same email" in link.explanation and link.score >= 92
    assert link.after["crm"]["city"] == "Leeds"  # blanks are filled both ways
    # the two Harbour Bakery records are one customer: one create, standing for both
    create = by[("create_ledger", "2")]
    assert [tuple(r) for r in create.payload["refs"]] == [("company", "2"), ("company", "3")]
    assert "duplicate" in create.explanation
    review = by[("review", "4")]
    assert review.acct_id == "L2" and "name 86%" in review.explanation
    assert by[("review", "5")].acct_id == "L3"  # same email, names disagree: never created beside it
    assert "not valid" in by[("invalid", "6")].explanation
    assert {r.acct_id for r in rows if r.action == "create_crm"} == {"L4"}
    assert not any(r.action == "create_crm" and r.acct_id in ("L2", "L3") for r in rows)


def test_review_and_invalid_rows_are_listed_as_held_back(tmp_path):
    w = World(tmp_path, "hubspot", "quickbooks")
    plan = w.migrate()
    w.migrate(apply=True)
    with w.store.session() as s:
        held = {q.record_id: q for q in s.scalars(select(Quarantine))}
    invalid = [r for r in plan.rows if r.action == "invalid" and r.crm]
    assert invalid and all(r.crm.split(" ")[1] in held for r in invalid)
    assert all(held[r.crm.split(" ")[1]].reasons["items"] for r in invalid)


def _journal_counts(con: sqlite3.Connection) -> tuple[int, int]:
    """Pending and done migration steps, read on one open read-only connection (it is polled every 2 ms;
    opening the database each time is what would cost the CPU)."""
    try:
        rows = con.execute("SELECT status, count(*) FROM journal WHERE payload LIKE '%migration_row%' "
                           "GROUP BY status").fetchall()
    except sqlite3.OperationalError:
        return 0, 0
    counts = dict(rows)
    return counts.get("pending", 0), counts.get("done", 0)


@pytest.mark.slow
def test_migration_killed_halfway_and_restarted_finishes_with_no_duplicate_and_nothing_lost(secret_service,
                                                                                             tmp_path):
    home = tmp_path / "home"
    crm_proc, crm_url = _serve("hubspot", tmp_path / "hs.json")
    qbo_proc, qbo_url = _serve("quickbooks", tmp_path / "qbo.json")
    rng = random.Random(7)
    try:
        add_acme(home, crm_url, qbo_url)
        human = cli(home, "migrate", "acme").stdout
        assert "dry run" in human and "--apply" in human and "Traceback" not in human
        plan = json.loads(cli(home, "migrate", "acme", "--json").stdout)  # a new dry run: the plan to apply
        assert plan["status"] == "planned" and plan["counts"]["create_ledger"] > 100
        left_out = next(r for r in plan["rows"] if r["action"] == "create_ledger")
        plan = json.loads(cli(home, "migrate", "acme", "--exclude", str(left_out["id"]), "--json").stdout)
        assert plan["excluded"] == 1  # the plan that will be applied
        before = len(qbo_customers(tmp_path / "qbo.json"))
        db = home / "crossledger.db"
        kills = 0
        # killed just after a batch was journalled (maybe sent, never recorded), then after some were recorded
        for wait_for in ((1, 0), (0, 30 + rng.randrange(40))):
            run = subprocess.Popen([sys.executable, "-m", "app", "--home", str(home), "migrate", "acme", "--apply",
                                    "--json"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 240  # a child on a busy machine may take a minute to start
            watch = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            while run.poll() is None and time.monotonic() < deadline:
                pending, done = _journal_counts(watch)
                if pending >= wait_for[0] and done >= wait_for[1] and (pending or done):
                    run.send_signal(signal.SIGKILL)
                    kills += 1
                    break
                time.sleep(0.002)
            watch.close()
            run.wait()
        assert kills == 2
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        assert con.execute("SELECT status FROM migration_plan ORDER BY id DESC").fetchone()[0] == "applying"
        con.close()
        final = json.loads(cli(home, "migrate", "acme", "--apply", "--json").stdout)
        assert final["status"] == "applied", final
        assert final["done"] == plan["counts"]
        assert all(r["status"] == "done" for r in final["rows"] if not r["excluded"])  # nothing lost
        again = json.loads(cli(home, "migrate", "acme", "--apply", "--json").stdout)
        assert again["status"] == "nothing_to_do" and again["writes"] == 0
        sync = json.loads(cli(home, "sync", "acme", "--json").stdout)
        assert sync["created"] == 0 and sync["updated"] == 0
    finally:
        for p in (crm_proc, qbo_proc):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
            p.stdout.close()
    customers = [c for c in qbo_customers(tmp_path / "qbo.json") if c.get("Active", True)]
    names = Counter(c["DisplayName"].casefold() for c in customers)
    assert max(names.values()) == 1  # no duplicate
    assert len(qbo_customers(tmp_path / "qbo.json")) == before + plan["counts"]["create_ledger"]
    created = {r["after"]["ledger"]["display_name"].casefold() for r in plan["rows"]
               if r["action"] == "create_ledger" and not r["excluded"]}
    assert created <= set(names)  # nothing lost
    assert left_out["after"]["ledger"]["display_name"].casefold() not in names  # and nothing more
    hs = json.loads((tmp_path / "hs.json").read_text())
    hs_names = Counter(str(c).casefold() for c in _hubspot_company_names(hs))
    made = [r["name"].casefold() for r in plan["rows"] if r["action"] == "create_crm"]
    assert made and all(hs_names[n] == 1 for n in made), [(n, hs_names[n]) for n in made]


def _hubspot_company_names(state: dict) -> list[str]:
    """Names of the live companies and contacts in a HubSpot sandbox's saved state."""
    objects = state["objects"]
    names = [str(c["p"].get("name") or "") for c in objects["companies"].values() if not c.get("archived")]
    names += [f"{c['p'].get('firstname') or ''} {c['p'].get('lastname') or ''}".strip()
              for c in objects["contacts"].values() if not c.get("archived")]
    return names


def test_a_stop_in_the_middle_of_a_page_keeps_what_was_answered(tmp_path):
    """Single-record ledgers are journalled a page (25 writes) at a time: when the run stops after some
    of a page were sent, those are recorded as made, and the rest is sent by the next apply, once."""
    w = World(tmp_path, "hubspot", "zohobooks")
    plan = w.migrate()
    cancel = threading.Event()
    creates: list[int] = []

    def count(req, resp) -> None:
        if req.method == "POST" and req.path.rstrip("/").endswith("/contacts") and resp.status < 300:
            creates.append(1)
            if len(creates) == 30:  # five writes into the second page
                cancel.set()

    w.acct.sandbox.exchange_hooks.append(count)
    first = w.migrate(apply=True, cancel=cancel)
    assert first.status == "cancelled"
    with w.store.session() as s:
        pending = s.scalar(select(func.count()).select_from(Journal).where(Journal.status == "pending"))
        done = s.scalar(select(func.count()).select_from(Journal).where(Journal.status == "done",
                                                                         Journal.op == "create_customer"))
    assert done == len(creates) == 30  # every write answered is recorded, none left to be looked up
    assert pending == 20  # the page's writes never sent
    w.acct.sandbox.exchange_hooks.remove(count)
    second = w.migrate(apply=True)
    assert second.status == "applied", second.errors
    assert second.done == plan.counts
    names = Counter((c.raw_name or c.party.name).casefold() for c in w.ledger())
    assert max(names.values()) == 1


def test_a_refusal_while_the_next_page_waits_leaves_only_the_refused_page_pending(tmp_path):
    """Pages are sent in the background while the next is journalled: when one is refused (here the day's
    calls run out, and the run is not to wait), the page journalled behind it was never sent and leaves
    the journal; what was answered is recorded, and the next apply finishes without a duplicate."""
    w = World(tmp_path, "hubspot", "xero")
    plan = w.migrate()
    assert plan.counts["create_ledger"] > 100  # three pages of 50 or more
    w.acct.sandbox.set_daily_usage(4999)  # one call left today: the first page's
    first = w.migrate(apply=True, wait_for_quota=False)
    assert first.status != "applied"
    with w.store.session() as s:
        steps = Counter(s.execute(select(Journal.status).where(Journal.op == "create_customer")).scalars())
    assert steps == {"done": 50, "pending": 50}  # the first page made; the refused one unknown to us
    w.acct.sandbox.set_daily_usage(0)
    second = w.migrate(apply=True)
    assert second.status == "applied", second.errors
    assert second.done == plan.counts
    names = Counter((c.raw_name or c.party.name).casefold() for c in w.ledger())
    assert max(names.values()) == 1


def test_a_plan_of_one_of_each_is_told_in_the_singular():
    from app.ops.migration.estimate import Estimate, MigrationResult

    plan = MigrationResult("Acme", "dry_run", "planned", 3, counts={"create_ledger": 1}, excluded=1, already_linked=1,
                           estimate=Estimate(acct_calls=1), crm_label="HubSpot", ledger_label="Xero")
    text = describe_result(plan)
    assert "1 record was linked before and is left to the regular sync." in text
    assert "1 row is left out at your request." in text and "(1 write call)." in text
    done = MigrationResult("Acme", "apply", "applied", 3, done={"create_ledger": 1}, writes=1,
                           crm_label="HubSpot", ledger_label="Xero")
    assert "(1 record written)" in describe_result(done)
    assert "(s)" not in text + describe_result(done)
