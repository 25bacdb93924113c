"""Undo of a sync run (issue 14), over real HTTP on CRM x ledger pairs, as a bookkeeper would use it.

One run creates a customer (a new CRM company), three invoices (won deals), updates two fields on the
ledger side and one on the CRM side. Then people act on it: one invoice is sent, one is paid, one of
the fields is edited again in the ledger. The undo must take back exactly what is still safe to.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import func, select

from app import cli as cli_module
from app.connectors.base import CustomerWrite, RecordWrite
from app.connectors.tokens import MemoryTokenStore
from app.ops import history, status
from app.ops.sync_run import run_sync
from app.ops.undo import UndoError, apply_undo, held_by_undo, plan_undo, release_undone, undoable_runs
from app.ops.workspaces import add_workspace, save_connection
from app.sandbox import demo_data as demo
from app.store.db import Store
from app.store.models import FieldChange, Journal, Link, Run
from app.sync.mapping import map_record, reverse_map
from tests.support import Connected, over_http
from tests.test_invoice_pairs import THREE_LINES, WON, small_world
from tests.test_invoice_pairs import count_writes as _count_writes

WS = "Undo Co"
NEW_COMPANY = "Beta Undo Ltd"


SF_RETRIEVE = re.compile(r"^POST /services/data/v[\d.]+/composite/sobjects/\w+$")  # Salesforce's read by ids


def count_writes(*sides: Connected) -> list[list[str]]:
    """Every request that writes, per sandbox (lists filled as requests arrive)."""
    return _count_writes(*sides)


def real(logs: list[list[str]]) -> list[list[str]]:
    """The writes, leaving out Salesforce's retrieve-by-ids (a POST that reads)."""
    return [[w for w in log if not SF_RETRIEVE.match(w)] for log in logs]


class World:
    def __init__(self, tmp_path: Path, crm: Connected, acct: Connected, tokens: MemoryTokenStore) -> None:
        self.crm, self.acct, self.tokens = crm, acct, tokens
        self.store = Store(f"sqlite:///{tmp_path}/undo.db")
        ws = add_workspace(self.store, WS, crm.conn.provider, acct.conn.provider)
        self.ws_id = ws.id
        save_connection(self.store, ws, crm.conn)
        save_connection(self.store, ws, acct.conn)
        self.mapping = crm.connector.default_mapping()

    def wait(self, seconds: float) -> None:
        """A rate limit waited out by moving both sandboxes' clocks (Xero's minute costs no wall time)."""
        for side in (self.crm, self.acct):
            side.sandbox.advance(seconds)

    def sync(self):
        result = run_sync(self.store, self.tokens, WS, sleep=self.wait)
        assert result.status == "ok", result.errors
        self.wait(60)  # a sync may use Xero's whole minute (it reads credit notes too): the test's reads get the next
        return result

    # -- what people do in either system --------------------------------------------------------
    def crm_edit(self, otype: str, rid: str | None, **fields) -> str:
        props = reverse_map(fields, otype, self.mapping)
        [res] = self.crm.connector.update_records([RecordWrite(f"user-{rid}-{sorted(fields)}", otype, rid, props)])
        assert res.ok, res.error
        return res.id

    def crm_fields(self, otype: str, rid: str) -> dict:
        [rec] = self.crm.connector.get_records(otype, [rid])
        return map_record(rec, self.mapping).fields()

    def ledger_edit(self, customer_id: str, **fields) -> None:
        [cust] = self.acct.connector.get_customers([customer_id])
        [res] = self.acct.connector.update_customers([CustomerWrite(
            f"user-{customer_id}-{sorted(fields.items())}", cust.party.with_fields(fields), id=customer_id,
            version=cust.version, display_name=cust.raw_name)])
        assert res.ok, res.error

    def customer(self, customer_id: str):
        [cust] = self.acct.connector.get_customers([customer_id])
        return cust

    def active_named(self, name: str) -> list:
        return [c for c in self.acct.connector.find_customers(name=name) if c.active]

    def invoice_states(self, ids: list[str]) -> dict:
        return {s.invoice.id: s for s in self.acct.connector.get_invoice_states(ids)}

    def send(self, invoice_id: str) -> None:
        """The bookkeeper emails the invoice from the ledger."""
        ledger, conn = self.acct.conn.provider, self.acct.connector
        if ledger == "quickbooks":
            conn._call("POST", f"/invoice/{invoice_id}/send", params={"sendTo": "ap@customer.example"})
        elif ledger == "xero":
            self.acct.sandbox.user_edit("invoice", invoice_id, Status="AUTHORISED")
            conn._call("POST", f"/api.xro/2.0/Invoices/{invoice_id}/Email")
        else:
            conn._call("POST", f"/invoices/{invoice_id}/status/sent", resource="invoice")

    def pay(self, invoice_id: str, amount: D) -> None:
        if self.acct.conn.provider == "xero":  # Xero takes payments on approved invoices only
            self.acct.sandbox.user_edit("invoice", invoice_id, Status="AUTHORISED")
        self.acct.sandbox.record_payment(invoice_id, amount, dt.date.today().isoformat())

    def rows(self, model) -> int:
        with self.store.session() as s:
            return s.scalar(select(func.count()).select_from(model))

    def link(self, crm_type: str, crm_id: str, object_type: str = "customer") -> Link | None:
        with self.store.session() as s:
            return s.scalars(select(Link).where(Link.object_type == object_type, Link.crm_type == crm_type,
                                                Link.crm_id == crm_id)).first()


@contextlib.contextmanager
def world(tmp_path: Path, crm: str, ledger: str) -> Iterator[World]:
    tokens = MemoryTokenStore()
    data = small_world([("Rollout", THREE_LINES[:1]), ("Seats", THREE_LINES[1:2]), ("Kit", THREE_LINES[2:])])
    with contextlib.ExitStack() as stack:
        with mock.patch.object(demo, "demo_data", return_value=data):
            c = stack.enter_context(over_http(crm, "demo", tokens=tokens))
        a = stack.enter_context(over_http(ledger, "empty", tokens=tokens))
        w = World(tmp_path, c, a, tokens)
        yield w
        w.store.dispose()


class Scene:
    """The run to undo, and what people did after it."""

    def __init__(self, w: World) -> None:
        self.w = w
        w.sync()  # the first sync links the company (creates it in the empty ledger)
        [self.company] = list(w.crm.connector.read_records("company", None).records)
        link = w.link("company", self.company.id)
        self.acct_id = link.acct_id
        self.before = w.customer(self.acct_id).party.fields()
        self.crm_before = w.crm_fields("company", self.company.id)
        deals = sorted(w.crm.connector.read_deals(None).records, key=lambda d: d.name)
        self.deals = {d.name: d for d in deals}

        # Between the two syncs: the CRM gets a new company and edits on the old one, the ledger
        # edits the postal code, and the three deals are won.
        self.new_company = w.crm_edit("company", None, name=NEW_COMPANY, city="Leeds")
        w.crm_edit("company", self.company.id, city="Harrogate", address_line1="1 New Street")
        w.ledger_edit(self.acct_id, postal_code="HG1 1AA")
        for d in deals:
            [res] = w.crm.connector.update_deals([RecordWrite(f"won-{d.id}", "deal", d.id, WON[w.crm.conn.provider])])
            assert res.ok, res.error

        self.result = w.sync()
        self.run_id = self.result.run_id
        assert self.result.counts["created"] == 1 and self.result.counts["invoices_created"] == 3
        self.invoices = {}
        with w.store.session() as s:
            for lk in s.scalars(select(Link).where(Link.object_type == "invoice")):
                name = next(n for n, d in self.deals.items() if d.id == lk.crm_id)
                self.invoices[name] = lk.acct_id
        self.new_acct_id = w.link("company", self.new_company).acct_id

        # After the run: one invoice is sent, one is paid, the street is edited again in the ledger.
        w.send(self.invoices["Seats"])
        w.pay(self.invoices["Kit"], D("10.00"))
        w.ledger_edit(self.acct_id, address_line1="2 Other Road")


PAIRS = [("hubspot", "quickbooks"), ("pipedrive", "xero"), ("salesforce", "zohobooks")]


@pytest.mark.parametrize(("crm", "ledger"), PAIRS, ids=[f"{c}-{a}" for c, a in PAIRS])
def test_undo_reverses_what_is_safe_and_explains_the_rest(tmp_path, crm, ledger):
    with world(tmp_path, crm, ledger) as w:
        sc = Scene(w)
        assert sc.run_id in undoable_runs(w.store, WS)

        # The dry run reads both sides and writes nothing, anywhere.
        writes = count_writes(w.crm, w.acct)
        counts = (w.rows(Run), w.rows(Journal), w.rows(FieldChange), w.rows(Link))
        plan = plan_undo(w.store, w.tokens, WS, sc.run_id)
        assert real(writes) == [[], []]
        assert (w.rows(Run), w.rows(Journal), w.rows(FieldChange), w.rows(Link)) == counts

        steps = {(s.kind, s.record_type, s.record_id, s.field) for s in plan.steps}
        assert ("void_invoice", "invoice", sc.invoices["Rollout"], None) in steps
        assert ("deactivate_customer", "customer", sc.new_acct_id, None) in steps
        assert ("restore_field", "customer", sc.acct_id, "city") in steps
        assert ("restore_field", "company", sc.company.id, "postal_code") in steps
        assert sum(1 for s in plan.steps if s.kind == "unlink") == 2  # the new company's link, the invoice's
        assert not any(s.record_id in (sc.invoices["Seats"], sc.invoices["Kit"]) for s in plan.steps)
        city = next(s for s in plan.steps if s.field == "city")
        assert (city.current, city.restore_to) == ("Harrogate", sc.before["city"])
        assert sc.before["city"] in city.description and city.label

        reasons = {(r.record_type, r.record_id, r.field): r.reason for r in plan.refusals}
        assert "sent to the customer" in reasons[("invoice", sc.invoices["Seats"], None)]
        assert "payment" in reasons[("invoice", sc.invoices["Kit"], None)]
        street = reasons[("customer", sc.acct_id, "address_line1")]
        assert "changed again" in street and "2 Other Road" in street
        assert all("Error" not in r and "Traceback" not in r for r in reasons.values())
        assert plan.run_summary.startswith("Sync of ") and "1 customer created" in plan.run_summary

        # The undo itself.
        writes = count_writes(w.crm, w.acct)
        result = apply_undo(w.store, w.tokens, WS, sc.run_id)
        assert result.status == "ok", result.errors
        assert result.done == len(plan.steps) and result.failed == 0 and result.refused == len(plan.refusals)
        assert f"run {sc.run_id}" in result.message
        assert len(real(writes)[1]) >= 3  # void, restore, deactivate went to the ledger

        states = w.invoice_states(list(sc.invoices.values()))
        assert states[sc.invoices["Rollout"]].invoice.status == "void"
        assert states[sc.invoices["Seats"]].invoice.status != "void"
        assert states[sc.invoices["Kit"]].invoice.status != "void"
        assert w.customer(sc.new_acct_id).active is False
        now = w.customer(sc.acct_id).party.fields()
        assert now["city"] == sc.before["city"]
        assert now["address_line1"] == "2 Other Road"  # changed again since: left alone
        assert w.crm_fields("company", sc.company.id)["postal_code"] == sc.crm_before["postal_code"]
        assert w.link("company", sc.new_company) is None
        assert w.link("deal", sc.deals["Rollout"].id, "invoice") is None
        assert w.link("deal", sc.deals["Seats"].id, "invoice") is not None

        # The undo is a run of its own, in the audit trail.
        with w.store.session() as s:
            undo = s.get(Run, result.undo_run_id)
            assert undo.trigger == "undo" and undo.status == "ok" and undo.counts["undo_of"] == sc.run_id
            assert undo.counts["voided"] == 1 and undo.counts["deactivated"] == 1
        trail = history.field_changes(w.store, WS, trigger="undo")
        assert {(c.field, c.after) for c in trail} >= {("city", sc.before["city"]), ("status", "void"),
                                                       ("active", "false")}
        assert sc.run_id not in undoable_runs(w.store, WS)
        with pytest.raises(UndoError, match="already undone"):
            apply_undo(w.store, w.tokens, WS, sc.run_id)
        with pytest.raises(UndoError, match="itself an undo"):
            plan_undo(w.store, w.tokens, WS, result.undo_run_id)

        # The next sync does not make again what was undone, nor send the run's values again.
        before_sync = len(w.invoice_states(list(sc.invoices.values())))
        again = w.sync()
        assert again.counts["created"] == 0 and again.counts.get("invoices_created", 0) == 0
        assert w.active_named(NEW_COMPANY) == []
        assert w.customer(sc.acct_id).party.fields()["city"] == sc.before["city"]
        assert w.crm_fields("company", sc.company.id)["postal_code"] == sc.crm_before["postal_code"]
        assert len(w.invoice_states(list(sc.invoices.values()))) == before_sync
        held = {(t, rid) for t, rid, _ in held_by_undo(w.store, WS)}
        assert held == {("company", sc.new_company), ("deal", sc.deals["Rollout"].id)}
        [ws_status] = status.status_json(w.store)["workspaces"]
        shown = {q["record_id"]: " ".join(q["reasons"]) for q in ws_status["quarantined"]}
        assert "Undone by you on" in shown[sc.new_company] and "Sync again" in shown[sc.new_company]
        assert "crossledger" not in shown[sc.new_company]

        # Released, the company and the deal's invoice are made again by the next sync.
        assert release_undone(w.store, WS, "company", sc.new_company)
        assert release_undone(w.store, WS, "deal", sc.deals["Rollout"].id)
        assert held_by_undo(w.store, WS) == []
        remade = w.sync()  # neither record changed: released, they are planned all the same
        assert remade.counts["created"] == 1 and remade.counts["invoices_created"] == 1
        back = w.customer(w.link("company", sc.new_company).acct_id)
        assert back.active and back.id != sc.new_acct_id  # a new customer: the undone one stays inactive
        # QuickBooks renames the inactive one "… (deleted)" and Xero frees an archived contact's name: the
        # same name again; Zoho Books keeps an inactive contact's name taken: "(2)"
        assert back.party.name == (NEW_COMPANY + " (2)" if ledger == "zohobooks" else NEW_COMPANY), back.party.name
        assert w.customer(sc.new_acct_id).active is False
        fresh = w.link("deal", sc.deals["Rollout"].id, "invoice")
        assert fresh is not None and fresh.acct_id != sc.invoices["Rollout"]
        assert w.invoice_states([fresh.acct_id])[fresh.acct_id].invoice.status != "void"
        [ws_status] = status.status_json(w.store)["workspaces"]
        assert ws_status["quarantined"] == []
        assert w.sync().counts["created"] == 0  # and only once


def test_a_crash_mid_undo_resumes_without_writing_anything_twice(tmp_path, monkeypatch):
    from app.connectors import quickbooks

    with world(tmp_path, "hubspot", "quickbooks") as w:
        sc = Scene(w)
        plan = plan_undo(w.store, w.tokens, WS, sc.run_id)
        real = quickbooks.Connector.deactivate_customer

        def dies_after_sending(self, customer_id, version=None):
            real(self, customer_id, version)  # the ledger made the change ...
            raise RuntimeError("power cut")  # ... and the machine died before it was recorded

        monkeypatch.setattr(quickbooks.Connector, "deactivate_customer", dies_after_sending)
        with pytest.raises(RuntimeError):
            apply_undo(w.store, w.tokens, WS, sc.run_id)
        monkeypatch.setattr(quickbooks.Connector, "deactivate_customer", real)
        with w.store.session() as s:
            first = s.scalars(select(Run).where(Run.trigger == "undo")).one()
            assert first.status == "failed"
            pending = s.scalars(select(Journal).where(Journal.run_id == first.id, Journal.status == "pending")).all()
            assert [j.op for j in pending] == ["undo_deactivate_customer"]
        assert w.link("company", sc.new_company) is not None  # not unlinked yet: the step after
        assert sc.run_id in undoable_runs(w.store, WS)

        log = w.acct.sandbox.request_log
        mark = len(log)
        result = apply_undo(w.store, w.tokens, WS, sc.run_id)
        assert result.status == "ok", result.errors
        assert result.done == len(plan.steps)
        resent = [(m, p) for m, p, _ in log[mark:] if m == "POST"]
        assert resent == []  # everything done before the crash was recognised, not sent again
        assert w.customer(sc.new_acct_id).active is False
        assert w.invoice_states([sc.invoices["Rollout"]])[sc.invoices["Rollout"]].invoice.status == "void"
        assert w.customer(sc.acct_id).party.fields()["city"] == sc.before["city"]
        assert w.link("company", sc.new_company) is None
        with w.store.session() as s:
            assert s.scalars(select(Journal).where(Journal.status == "pending",
                                                   Journal.op.like("undo_%"))).all() == []
        with pytest.raises(UndoError, match="already undone"):
            plan_undo(w.store, w.tokens, WS, sc.run_id)


def test_undo_refuses_while_a_sync_holds_the_lease_and_for_unknown_or_dry_runs(tmp_path):
    from app.store import lease

    with world(tmp_path, "hubspot", "quickbooks") as w:
        w.sync()
        w.crm_edit("company", None, name=NEW_COMPANY, city="Leeds")
        run_id = w.sync().run_id
        dry = run_sync(w.store, w.tokens, WS, dry_run=True, sleep=w.wait).run_id
        with pytest.raises(UndoError, match="dry run"):
            plan_undo(w.store, w.tokens, WS, dry)
        with pytest.raises(UndoError, match="no run 999"):
            plan_undo(w.store, w.tokens, WS, 999)
        assert lease.acquire(w.store, w.ws_id, "other-machine:1:x")
        with pytest.raises(UndoError, match="is running"):
            apply_undo(w.store, w.tokens, WS, run_id)
        lease.release(w.store, w.ws_id, "other-machine:1:x")
        assert apply_undo(w.store, w.tokens, WS, run_id).status == "ok"


def test_cli_history_and_undo_dry_run_json(tmp_path, monkeypatch, capsys):
    import json

    with world(tmp_path, "hubspot", "quickbooks") as w:
        sc = Scene(w)
        monkeypatch.setattr(cli_module, "_tokens", lambda *_a: w.tokens)
        base = ["--home", str(tmp_path / "home"), "--db", f"sqlite:///{tmp_path}/undo.db"]

        assert cli_module.main([*base, "history", WS, "--record", sc.acct_id, "--json"]) == 0
        changes = json.loads(capsys.readouterr().out)["changes"]
        assert {(c["field"], c["after"]) for c in changes} >= {("city", "Harrogate")}
        assert all(c["record_id"] == sc.acct_id and c["run_id"] for c in changes)

        assert cli_module.main([*base, "history", WS, "--field", "city"]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split()[:4] == ["When", "Run", "By", "Side"]
        # in a bookkeeper's words: the field's label and why it changed, not the store's codes
        assert any("Harrogate" in line and "ledger" in line and " City " in line and "Changed in" in line
                   for line in table[1:]), table

        writes = count_writes(w.crm, w.acct)
        assert cli_module.main([*base, "undo", str(sc.run_id), "--dry-run", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["dry_run"] is True and out["run_id"] == sc.run_id and out["workspace"] == WS
        assert {s["kind"] for s in out["steps"]} == {"void_invoice", "deactivate_customer", "restore_field",
                                                     "unlink"}
        assert any("sent to the customer" in r["reason"] for r in out["refusals"])
        assert real(writes) == [[], []]

        assert cli_module.main([*base, "undo", str(sc.run_id), "--dry-run"]) == 0
        text = capsys.readouterr().out
        assert "Nothing was changed (dry run)" in text and "has been sent to the customer" in text

        assert cli_module.main([*base, "undo", "Other Co", str(sc.run_id), "--dry-run"]) == 2
        assert "belongs to workspace 'Undo Co'" in capsys.readouterr().err

        [ws_status] = status.status_json(w.store)["workspaces"]
        assert sc.run_id in [r["id"] for r in ws_status["last_runs"]]

        assert cli_module.main([*base, "undo", WS, str(sc.run_id), "--json"]) == 0
        done = json.loads(capsys.readouterr().out)
        assert done["status"] == "ok" and done["undo_run_id"] and done["dry_run"] is False
        assert cli_module.main([*base, "undo", str(sc.run_id)]) == 2
        assert "already undone" in capsys.readouterr().err
        assert cli_module.main([*base, "release", WS, "company", "nope"]) == 2
        assert NEW_COMPANY in capsys.readouterr().err  # says what is held back
        assert cli_module.main([*base, "release", WS, "company", sc.new_company]) == 0
        assert f"Released {NEW_COMPANY}" in capsys.readouterr().out


def test_cancel_stops_between_steps_and_a_second_undo_finishes_the_rest(tmp_path):
    import threading

    with world(tmp_path, "hubspot", "quickbooks") as w:
        sc = Scene(w)
        plan = plan_undo(w.store, w.tokens, WS, sc.run_id)
        cancel = threading.Event()
        seen: list[tuple[str, int, int]] = []

        def progress(stage: str, done: int, total: int) -> None:
            seen.append((stage, done, total))
            if done == 1:
                cancel.set()  # the person presses Cancel while the second step is announced

        first = apply_undo(w.store, w.tokens, WS, sc.run_id, progress=progress, cancel=cancel)
        assert first.status == "cancelled" and "cancelled" in first.message and "again" in first.message
        # first the read of both sides (nothing counted yet), then each change counted out of all of them
        assert seen[0] == ("Reading the current values on both sides again", 0, 0)
        assert seen[1] == (plan.steps[0].description, 0, len(plan.steps))
        assert sc.run_id in undoable_runs(w.store, WS)

        second = apply_undo(w.store, w.tokens, WS, sc.run_id)
        assert second.status == "ok" and second.done == len(plan.steps)
        with w.store.session() as s:
            undo = s.get(Run, second.undo_run_id)
            assert undo.counts["writes"] < len(plan.steps)  # what the first attempt did was not sent again
        assert w.customer(sc.new_acct_id).active is False


def test_undo_planning_reads_the_crms_deals_once_not_once_per_invoice(tmp_path, monkeypatch):
    with world(tmp_path, "hubspot", "quickbooks") as w:
        w.sync()
        deals = w.crm.connector.read_deals(None).records
        for d in deals:
            [res] = w.crm.connector.update_deals([RecordWrite(f"won-{d.id}", "deal", d.id, WON["hubspot"])])
            assert res.ok, res.error
        result = w.sync()
        assert result.counts["invoices_created"] == 3 and result.counts["deals_updated"] >= 3

        reads: list[str] = []
        connector_class = type(w.crm.connector)
        real_read = connector_class.read_deals

        def counted(self, cursor):
            reads.append(cursor)
            return real_read(self, cursor)

        monkeypatch.setattr(connector_class, "read_deals", counted)
        plan = plan_undo(w.store, w.tokens, WS, result.run_id)
        assert len(reads) == 1  # was one full read of the CRM's deals for every invoice's deal
        voided = {s.record_id for s in plan.steps if s.kind == "void_invoice"}
        restored = {s.record_id for s in plan.steps if s.kind == "restore_field" and s.record_type == "deal"}
        assert len(voided) == 3 and restored == {d.id for d in deals}
