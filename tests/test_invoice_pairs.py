"""Won deals become invoices and payments flow back to the deal, on every CRM x ledger pair, over HTTP.

Each CRM sandbox is seeded through its own seeding code with one company and one open deal with three
line items; the deal is then marked won through the CRM's API, as a salesperson's click would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal as D
from unittest import mock

import pytest

from app.connectors import registry
from app.connectors.base import Connection, RecordWrite
from app.connectors.tokens import MemoryTokenStore
from app.domain.money import LEDGER_TAX_ROUNDING, invoice_totals, line_net
from app.ops.connect import connect
from app.sandbox import demo_data as demo
from app.sandbox.registry import sandbox_class
from app.sandbox.server import serve
from app.store.db import Store
from app.store.models import ConflictRow, Workspace
from app.sync.engine import SyncEngine
from app.sync.invoices import reference_for
from tests.support import Connected, in_process, no_sleep, over_http
from tests.test_cli import ROOT, add_acme, cli

CRMS = ("hubspot", "salesforce", "pipedrive", "zohocrm")
LEDGERS = ("quickbooks", "xero", "zohobooks")
PAIRS = list(itertools.product(CRMS, LEDGERS))
WON = {"hubspot": {"dealstage": "closedwon"}, "salesforce": {"StageName": "Closed Won"},
       "pipedrive": {"status": "won"}, "zohocrm": {"Stage": "Closed Won"}}
LOST = {"hubspot": {"dealstage": "closedlost"}, "salesforce": {"StageName": "Closed Lost"},
        "pipedrive": {"status": "lost"}, "zohocrm": {"Stage": "Closed Lost"}}
THREE_LINES = [demo.DemoLine("CONS-HR", "Consulting hour", D("7.5"), D("125.00"), D("12.5")),
               demo.DemoLine("LIC-SEAT", "Additional seat (monthly)", D(3), D("19.99")),
               demo.DemoLine("HW-KIT", "Hardware starter kit", D(1), D("249.50"), D(5))]
READ_LIKE = re.compile(r"/search|/token|/query|/coql|/batch/read|/associations/.*/batch|oauth", re.I)
DISCOUNT_NOTE = re.compile(r" \([0-9.]+% discount\)$")
_FULL = demo.demo_data()


def _one_company() -> demo.DemoCompany:
    base = next(c for c in _FULL.companies if c.country == "US" and not c.mess and not c.in_ledger)
    return dataclasses.replace(base, key="c-test")


def small_world(deals: list[tuple[str, list[demo.DemoLine]]]) -> demo.DemoData:
    """One clean US company and the given open deals (name, lines), closing today."""
    company = _one_company()
    today = dt.date.today().isoformat()
    return demo.DemoData([company], [], [demo.DemoDeal(f"d{n}", name, company.key, "open", "USD", today, lines)
                                         for n, (name, lines) in enumerate(deals)])


@contextlib.contextmanager
def crm_seeded(crm: str, data: demo.DemoData, *, http: bool = True) -> Iterator[Connected]:
    """The CRM sandbox seeded by its own seeding code, with ``data`` instead of the demo's data set."""
    with mock.patch.object(demo, "demo_data", return_value=data):
        if not http:
            yield in_process(crm, "demo")
            return
        stack = contextlib.ExitStack()
        side = stack.enter_context(over_http(crm, "demo"))
    with stack:
        yield with_sandbox_waits(side)


def with_sandbox_waits(side: Connected) -> Connected:
    """A wait (our pacing, a Retry-After) moves the sandbox's clock, as in-process: its rate windows pass at
    once over real HTTP too, instead of the test sleeping through HubSpot's five searches a second."""
    side.connector.close()
    side.connector = registry.make_connector(side.conn, side.tokens, sleep=side.sandbox.advance)
    return side


class Pair:
    def __init__(self, tmp_path, crm: Connected, acct: Connected, settings: dict | None = None) -> None:
        self.crm, self.acct = crm, acct
        self.store = Store(f"sqlite:///{tmp_path}/w.db")
        with self.store.session() as s:
            ws = Workspace(name="t", crm_provider=crm.conn.provider, accounting_provider=acct.conn.provider,
                           settings=settings or {})
            s.add(ws)
            s.flush()
            self.ws_id = ws.id

    def sync(self):
        result = SyncEngine(self.store, self.ws_id, self.crm.connector, self.acct.connector).run()
        assert result.status == "ok", result.errors
        return result

    def deals(self):
        return self.crm.connector.read_deals(None).records

    def mark(self, deal_id: str, values: dict) -> None:
        [res] = self.crm.connector.update_deals([RecordWrite("t", "deal", deal_id, values)])
        assert res.ok, res.error

    def invoices(self):
        return [i for i in self.acct.connector.read_invoices(None).records if i.status != "void"]

    def lines(self, inv):
        """The invoice's lines (Zoho Books lists invoices without them: ask for the one invoice)."""
        if inv.lines or self.acct.conn.provider != "zohobooks":
            return inv.lines
        data, _ = self.acct.connector._call("GET", f"/invoices/{inv.id}", resource="invoice")
        return self.acct.connector.to_invoice(data["invoice"]).lines

    def deal_fields(self, deal_id: str) -> dict[str, str]:
        with self.store.session() as s:
            names = s.get(Workspace, self.ws_id).settings["deal_fields"]
        [deal] = [d for d in self.deals() if d.id == deal_id]
        return {ours: deal.properties.get(theirs) for ours, theirs in names.items()}

    def pay(self, invoice_id: str, amount: D, date: str) -> None:
        if self.acct.conn.provider == "xero":  # a draft must be approved in Xero before it takes payments
            [inv] = [i for i in self.invoices() if i.id == invoice_id]
            if inv.status == "draft":
                self.acct.sandbox.user_edit("invoice", invoice_id, Status="AUTHORISED")
        self.acct.sandbox.record_payment(invoice_id, amount, date)


def count_writes(*sides: Connected) -> list[list[str]]:
    """Record every request that writes at each sandbox (reads sent as POST, like searches, excluded)."""
    logs: list[list[str]] = []
    for side in sides:
        log: list[str] = []
        side.sandbox.exchange_hooks.append(lambda req, _resp, log=log: log.extend(_writes_in(req)))
        logs.append(log)
    return logs


def _writes_in(req) -> list[str]:
    if req.method == "GET" or READ_LIKE.search(req.path):
        return []
    if req.path.endswith("/composite"):  # Salesforce: a bundle of sub-requests, reads or writes
        subs = (req.json() or {}).get("compositeRequest") or []
        return [f"{r.get('method')} {r.get('url')}" for r in subs if r.get("method") != "GET"]
    if req.path.endswith("/batch") and "BatchItemRequest" in (req.json() or {}):  # QuickBooks
        subs = req.json()["BatchItemRequest"]
        return [f"batch {r.get('operation')}" for r in subs if "Query" not in r]
    return [f"{req.method} {req.path}"]


def _num(value) -> D | None:
    return None if value in (None, "") else D(str(value))


def _date(value) -> str | None:
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():  # HubSpot dates come back as epoch milliseconds
        return dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC).date().isoformat()
    return text[:10]


@pytest.mark.parametrize(("crm", "ledger"), PAIRS, ids=[f"{c}-{a}" for c, a in PAIRS])
def test_won_deal_invoiced_once_and_payments_flow_back(tmp_path, crm, ledger):
    data = small_world([("Rollout with three lines", THREE_LINES)])
    with crm_seeded(crm, data) as c, over_http(ledger, "empty") as a:
        w = Pair(tmp_path, c, a)
        w.sync()
        assert w.invoices() == []  # an open deal is not invoiced
        [deal] = w.deals()
        assert not deal.won and len(deal.line_items) == 3
        w.mark(deal.id, WON[crm])

        first = w.sync()
        assert first.counts["invoices_created"] == 1
        [inv] = w.invoices()
        assert inv.reference == reference_for(deal.id)
        got = sorted((DISCOUNT_NOTE.sub("", li.description), li.quantity, li.amount) for li in w.lines(inv))
        want = sorted((li.name, li.quantity, line_net(li.quantity, li.unit_price, li.discount_percent))
                      for li in THREE_LINES)
        assert got == want
        expected = invoice_totals([(li.quantity, li.unit_price, li.discount_percent, D(0)) for li in THREE_LINES],
                                  rounding=LEDGER_TAX_ROUNDING[ledger]).total
        assert inv.total == expected == D("1117.31")
        fields = w.deal_fields(deal.id)
        assert fields["crossledger_invoice_number"] == inv.number
        assert _num(fields["crossledger_balance_due"]) == expected

        w.pay(inv.id, D("100.00"), (dt.date.today() - dt.timedelta(days=2)).isoformat())
        w.sync()
        fields = w.deal_fields(deal.id)
        assert fields["crossledger_invoice_status"] == "Partly paid"
        assert _num(fields["crossledger_amount_paid"]) == D("100.00")
        assert _num(fields["crossledger_balance_due"]) == expected - D("100.00")

        paid_on = dt.date.today().isoformat()
        w.pay(inv.id, expected - D("100.00"), paid_on)
        w.sync()
        fields = w.deal_fields(deal.id)
        assert fields["crossledger_invoice_status"] == "Paid"
        assert _num(fields["crossledger_amount_paid"]) == expected
        assert _num(fields["crossledger_balance_due"]) == 0
        assert _date(fields["crossledger_last_payment"]) == paid_on
        assert fields["crossledger_invoice_number"] == inv.number
        assert fields["crossledger_invoice_link"] == (inv.web_url or a.connector.invoice_url(inv.id))
        assert fields["crossledger_invoice_link"].startswith(("http://", "https://"))

        crm_writes, ledger_writes = count_writes(c, a)
        for _ in range(5):
            assert w.sync().counts["writes"] == 0
        assert crm_writes == [] and ledger_writes == []
        assert len(w.invoices()) == 1


# -- in-process checks: batching, awkward amounts, deals edited after invoicing -----------------------------

def _won_world(tmp_path, crm: str, ledger: str, deals, settings: dict | None = None,
               products: tuple = ()) -> Pair:
    data = small_world(deals)
    data.products = (*data.products, *products)  # the CRM's catalogue, with any extra products
    with crm_seeded(crm, data, http=False) as c:
        pass
    w = Pair(tmp_path, c, in_process(ledger, "empty"), settings)
    w.sync()
    for deal in w.deals():
        w.mark(deal.id, WON[crm])
    return w


def _invoice_creates(req) -> int:
    """How many invoices one request asks the ledger to create."""
    if req.method in ("PUT", "POST") and re.search(r"/api.xro/2.0/Invoices$", req.path, re.I):  # Xero
        return len((req.json() or {}).get("Invoices") or [])
    if req.method == "POST" and req.path.endswith("/batch"):  # QuickBooks
        return sum(1 for r in req.json().get("BatchItemRequest") or [] if "Invoice" in r and r.get("operation")
                   == "create")
    if req.method == "POST" and re.search(r"/(invoice|invoices)$", req.path):  # QBO single, Zoho Books
        return 1
    return 0


@pytest.mark.parametrize(("ledger", "requests"), [("quickbooks", 1), ("xero", 1), ("zohobooks", 4)])
def test_invoices_are_created_through_the_ledgers_batch_endpoint(tmp_path, ledger, requests):
    deals = [(f"Deal {n}", THREE_LINES[n % 3:n % 3 + 1]) for n in range(4)]  # the demo's 5th is a renewal
    w = _won_world(tmp_path, "hubspot", ledger, deals)
    calls: list[int] = []
    w.acct.sandbox.exchange_hooks.append(lambda req, _r: calls.append(_invoice_creates(req)) if
                                         _invoice_creates(req) else None)
    assert w.sync().counts["invoices_created"] == 4
    assert len(calls) == requests and sum(calls) == 4  # QBO: one batch request; Xero: one bulk POST
    assert len(w.invoices()) == 4 and w.sync().counts["writes"] == 0


def _tax_codes(w: Pair, ledger: str) -> dict[str, tuple[str, D]]:
    """Three tax codes with different rates, as each ledger names them."""
    if ledger == "xero":
        return {"a": ("OUTPUT2", D(20)), "b": ("RROUTPUT", D(5)), "c": ("ZERORATEDOUTPUT", D(0))}
    if ledger == "zohobooks":
        taxes = w.acct.connector._call("GET", "/settings/taxes")[0]["taxes"]
        by_rate = {D(str(t["tax_percentage"])): str(t["tax_id"]) for t in taxes}
        return {"a": (by_rate[D(20)], D(20)), "b": (by_rate[D(5)], D(5)), "c": (by_rate[D(0)], D(0))}
    # QuickBooks US: taxable or not; the sales tax itself comes from the customer's location (none here).
    return {"a": ("TAX", D(0)), "b": ("NON", D(0)), "c": ("TAX", D(0))}


AWKWARD = [demo.DemoLine("CONS-HR", "Consulting hour", D("0.3333"), D("125.00"), D("12.5")),
           demo.DemoLine("LIC-SEAT", "Additional seat (monthly)", D("3"), D("19.99"), D("12.5")),
           demo.DemoLine("SUPP-PR", "Priority support (quarter)", D("1"), D("333.33")),
           demo.DemoLine("HW-KIT", "Hardware starter kit", D("0.5"), D("249.50"), D("12.5")),
           demo.DemoLine("LIC-PRO", "Pro licence (annual)", D("0.6667"), D("1188.00"), D("5"))]
AWKWARD_TAX = {"CONS-HR": "a", "LIC-SEAT": "b", "SUPP-PR": "a", "HW-KIT": "c", "LIC-PRO": "b"}


@pytest.mark.parametrize("ledger", LEDGERS)
def test_awkward_amounts_total_to_the_cent_as_the_ledger_computes(tmp_path, ledger):
    w = _won_world(tmp_path, "hubspot", ledger, [("Awkward", AWKWARD)])
    codes = _tax_codes(w, ledger)
    settings = {"invoices": {"tax_codes": {sku: codes[k][0] for sku, k in AWKWARD_TAX.items()}}}
    with w.store.session() as s:
        s.get(Workspace, w.ws_id).settings = settings
    assert w.sync().counts["invoices_created"] == 1
    [inv] = w.invoices()
    predicted = invoice_totals([(li.quantity, li.unit_price, li.discount_percent, codes[AWKWARD_TAX[li.sku]][1])
                                for li in AWKWARD], rounding=LEDGER_TAX_ROUNDING[ledger])
    assert inv.total == predicted.total  # the pre-flight figure is the ledger's own, to the cent
    assert sum((li.amount for li in w.lines(inv)), D(0)) == predicted.subtotal
    if ledger != "quickbooks":
        other = invoice_totals([(li.quantity, li.unit_price, li.discount_percent, codes[AWKWARD_TAX[li.sku]][1])
                                for li in AWKWARD], rounding="invoice" if ledger == "xero" else "line")
        assert other.total != inv.total  # these amounts tell per-line from per-invoice tax rounding apart
        assert predicted.tax > 0 and {li.tax_code for li in w.lines(inv)} == {c for c, _ in codes.values()}


def edit_line(w: Pair, line_id: str, quantity: str) -> None:
    """Through HubSpot's API, as the CRM's own screen does; HubSpot then recomputes the deal amount."""
    resp = w.crm.connector.api.request("PATCH", f"/crm/v3/objects/line_items/{line_id}",
                                       json_body={"properties": {"quantity": quantity}})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("ledger", LEDGERS)
def test_deal_edited_after_invoicing_updates_a_draft_or_is_flagged(tmp_path, ledger):
    w = _won_world(tmp_path, "hubspot", ledger, [("Edited later", THREE_LINES)])
    w.sync()
    [inv] = w.invoices()
    [deal] = w.deals()
    line = deal.line_items[1]
    edit_line(w, line.id, "5")  # the salesperson edits a line
    edited = w.sync()
    [after] = w.invoices()
    assert after.id == inv.id
    assert edited.counts["invoices_created"] == 0
    assert after.total == inv.total + D("2") * D("19.99")  # the still-unpaid invoice follows the deal
    assert w.sync().counts["writes"] == 0

    w.pay(inv.id, D("10.00"), dt.date.today().isoformat())  # now it has a payment: no more changes
    edit_line(w, line.id, "7")
    w.sync()
    [still] = w.invoices()
    assert still.total == after.total
    with w.store.session() as s:
        flags = [(c.field, c.acct_value) for c in s.query(ConflictRow).filter_by(crm_id=deal.id)]
    assert [f for f, _ in flags] == ["invoice:lines"] and "The deal grew" in flags[0][1]
    assert w.sync().counts["conflicts"] == 0  # flagged once, not on every run

    w.mark(deal.id, LOST["hubspot"])
    w.sync()
    with w.store.session() as s:
        flags = [(c.field, c.acct_value) for c in s.query(ConflictRow).filter_by(crm_id=deal.id)]
    assert ("invoice:won", flags[-1][1]) == flags[-1] and "was lost after it was invoiced" in flags[-1][1]
    assert [i.status for i in w.invoices()] != ["void"] and len(w.invoices()) == 1  # never voided on its own
    assert w.sync().counts["conflicts"] == 0


# -- kill -9 while invoices are being created, then run again ------------------------------------------------

def _reader(provider: str, url: str):
    """A connector of the test's own, to look at the sandbox as the user would in the provider's app."""
    conn = Connection(id=f"{provider}-reader", provider=provider, base_url=url, auth_url=url)
    tokens = MemoryTokenStore()
    connect(conn, tokens, client_secret="sandbox-secret", timeout=20)
    return registry.make_connector(conn, tokens, sleep=no_sleep)


@pytest.mark.slow
@pytest.mark.parametrize(("crm", "ledger"), [("hubspot", "quickbooks"), ("pipedrive", "zohobooks"),
                                              ("salesforce", "xero")])
def test_killed_during_invoice_creation_leaves_one_invoice_per_won_deal(secret_service, tmp_path, crm, ledger):
    home = tmp_path / "home"
    crm_box, ledger_box = sandbox_class(crm)(), sandbox_class(ledger)()
    data = small_world([(f"Won deal {n}", THREE_LINES[n % 3:]) for n in range(7)])
    for deal in data.deals:
        deal.stage = "won"
    with mock.patch.object(demo, "demo_data", return_value=data):
        crm_box.seed("demo")
    ledger_box.seed("empty")
    child: dict[str, subprocess.Popen] = {}
    kill_at = {"n": 0, "seen": 0}

    def kill_mid_invoice(req, _resp) -> None:
        """The ledger has just committed an invoice create; the sync dies before it hears back."""
        if not _invoice_creates(req):
            return
        kill_at["seen"] += 1
        proc = child.get("run")
        if proc is not None and kill_at["seen"] == kill_at["n"]:
            os.kill(proc.pid, signal.SIGKILL)

    ledger_box.exchange_hooks.append(kill_mid_invoice)
    crm_server, ledger_server = serve(crm_box, timeout_delay=1.0), serve(ledger_box, timeout_delay=1.0)
    try:
        add_acme(home, crm_server.url, ledger_server.url, crm, ledger)
        outcomes: list[int] = []
        for nth in (1, 2):  # killed at the first invoice request, then (on the rerun) at the second
            kill_at["n"], kill_at["seen"] = nth, 0
            run = subprocess.Popen([sys.executable, "-m", "app", "--home", str(home), "sync", "acme", "--json"],
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            child["run"] = run
            outcomes.append(run.wait(timeout=300))
            child.pop("run")
            if outcomes[-1] == 0:  # every invoice was already made: nothing left to be killed in
                break
        assert outcomes[0] == -signal.SIGKILL, "the first sync finished before it could be killed"
        assert set(outcomes) <= {0, -signal.SIGKILL}
        final = json.loads(cli(home, "sync", "acme", "--json").stdout)
        assert final["errors"] == 0, final
        assert json.loads(cli(home, "sync", "acme", "--json").stdout)["writes"] == 0

        crm_reader, ledger_reader = _reader(crm, crm_server.url), _reader(ledger, ledger_server.url)
        won = {d.id for d in crm_reader.read_deals(None).records if d.won and not d.archived}
        invoices = [i for i in ledger_reader.read_invoices(None).records if i.status != "void"]
        crm_reader.close()
        ledger_reader.close()
    finally:
        crm_server.stop()
        ledger_server.stop()
    assert len(won) == 7
    refs = sorted(i.reference or "" for i in invoices)
    assert refs == sorted(reference_for(d) for d in won)  # exactly one invoice per won deal
    status = json.loads(cli(home, "status", "--json").stdout)
    assert status["workspaces"][0]["invoices"]["linked"] == 7


# -- the demo, as someone trying the app sees it ---------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("crm", "ledger"), [("hubspot", "xero"), ("zohocrm", "zohobooks"),
                                              ("salesforce", "quickbooks")])
def test_demo_invoices_every_won_deal_and_shows_payment_states(secret_service, tmp_path, crm, ledger):
    home = tmp_path / "home"
    out = cli(home, "demo", "--headless", "--crm", crm, "--accounting", ledger).stdout
    assert "invoices created for won deals" in out and "Invoices for won deals:" in out
    # each invoice line: its state, then how much of it is paid ("Overdue  0.00 of 9.50 GBP paid")
    lines = [line for line in out.splitlines() if " invoice " in line and line.rstrip().endswith(" paid")]
    assert lines and all(re.search(r"\s[\d.]+ of +[\d.]+ [A-Z]{3} paid$", line) for line in lines), lines
    status = json.loads(cli(home, "status", "--json").stdout)
    [ws] = status["workspaces"]
    invoices = ws["invoices"]
    won = [d for d in _FULL.deals if d.stage == "won"]
    held = [q for q in ws["quarantined"] if q["record_type"] == "deal"]
    assert invoices["linked"] + len(held) == len(won)
    assert invoices["linked"] >= len(won) * 0.7
    assert all(q["reasons"] for q in held)
    assert len({r["invoice_id"] for r in invoices["deals"]}) == invoices["linked"]  # one invoice per deal
    states = invoices["by_status"]
    assert states.get("paid"), states
    part = [r for r in invoices["deals"] if 0 < D(r["amount_paid"]) < D(r["total"])]
    assert part and all(r["status"] in ("partly_paid", "overdue") for r in part)  # past due is said first
    for row in invoices["deals"]:
        assert row["number"] and row["link"] and D(row["total"]) == D(row["amount_paid"]) + D(row["balance_due"])
        if row["status"] == "paid":
            assert D(row["balance_due"]) == 0
    again = json.loads(cli(home, "sync", "demo", "--json").stdout)
    assert again["writes"] == 0 and again["errors"] == 0


def test_workspace_can_ask_for_review_instead_of_updating_drafts(tmp_path):
    w = _won_world(tmp_path, "hubspot", "xero", [("Review edits", THREE_LINES)],
                   settings={"invoices": {"edited_deal": "flag"}})
    w.sync()
    [inv] = w.invoices()
    assert inv.status == "draft"
    [deal] = w.deals()
    edit_line(w, deal.line_items[0].id, "9")
    assert w.sync().counts["conflicts"] == 1
    [after] = w.invoices()
    assert after.total == inv.total  # left as it was, for a person to decide
    with w.store.session() as s:
        [flag] = s.query(ConflictRow).filter_by(crm_id=deal.id).all()
    assert flag.field == "invoice:lines" and flag.outcome == "open"


def test_an_update_the_ledger_refuses_mid_run_is_journalled_as_failed_and_flagged(tmp_path):
    """The invoice was approved in the ledger between our read and our update: flagged, never left pending."""
    from app.connectors.base import WriteResult
    from app.connectors.errors import ValidationRejected
    from app.store.models import Journal

    w = _won_world(tmp_path, "hubspot", "xero", [("Approved meanwhile", THREE_LINES)])
    w.sync()
    [deal] = w.deals()
    edit_line(w, deal.line_items[1].id, "5")
    refused = lambda writes: [WriteResult(x.key, error=ValidationRejected(  # noqa: E731
        "This document cannot be edited as it has a payment or credit note allocated to it.", provider="xero"))
        for x in writes]
    with mock.patch.object(w.acct.connector, "update_invoices", refused):
        w.sync()
    with w.store.session() as s:
        ops = {(j.op, j.status) for j in s.query(Journal).filter_by(op="update_invoice")}
        flags = [c.field for c in s.query(ConflictRow).filter_by(crm_id=deal.id)]
    assert ops == {("update_invoice", "failed")}  # not left pending for the next run to puzzle over
    assert flags == ["invoice:lines"]
