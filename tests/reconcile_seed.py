"""The demo workspace with one case of every discrepancy kind planted in its sandboxes, for September 2026.

Shared by tests/test_reconcile_ui.py, tests/test_reconcile.py and docs/screenshots/make_reconcile_screenshots.py.
The demo is run in-process (its sandboxes are served on 127.0.0.1 by this process); then, through each
sandbox's own write path where the provider would accept the change, as a bookkeeper would:
- the invoice of one September deal is voided                     -> void_while_won (high);
- another September invoice gets one more licence                 -> amount_mismatch (high);
- the third September invoice is paid in full                     -> payment_status_mismatch (medium);
- the fourth is re-billed to a customer in another currency       -> customer_mismatch + currency_mismatch;
- an open deal is moved to Closed Won in September in HubSpot     -> won_without_invoice (high);
- a September invoice is raised in QuickBooks with no deal        -> invoice_without_deal (medium);
- a second customer is added in QuickBooks with an existing email -> duplicate_customer (low);
- the customer of the paid invoice is made inactive in QuickBooks -> ledger_customer_gone (medium);
- the company of that paid deal is deleted in HubSpot             -> crm_record_gone (medium);
- an open deal is won in September, synced (so invoiced), then moved to Closed Lost in HubSpot
                                                                   -> not_won_invoiced (high).
Not planted here (the sync does not keep them in the mirror yet): credited_while_won and late_payment.
The demo's own records held back for review are each flagged once too (held_back).
Every other September deal and invoice is clean, and so is every other month.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.connectors.tokens import MemoryTokenStore
from app.ops import sandboxes
from app.ops.demo import run_demo
from app.ops.reconcile_month import month_data
from app.ops.sync_run import run_sync
from app.ops.workspaces import get_workspace
from app.store.db import Store

MONTH = "2026-09"


@dataclass
class Planted:
    store: Store
    tokens: MemoryTokenStore
    home: Path
    voided: str  # invoice ids
    changed: str
    paid: str
    rebilled: str
    won_deal: str  # the deal won without an invoice
    orphan: str  # the invoice with no deal
    duplicate: str  # the new ledger customer
    deals: dict[str, str]  # invoice id -> deal id
    archived_customer: str
    deleted_company: str
    lost_deal: str


def _server(provider: str) -> Any:
    return next(server.app for state, server in sandboxes._running.items() if provider in state)


def plant(store: Store, tokens: MemoryTokenStore, home: Path) -> Planted:
    ws = get_workspace(store, "demo")
    hub = _server("hubspot")
    deals = hub.state["objects"]["deals"]
    lost = next(x for x in deals.values() if not x.get("archived") and x["p"].get("amount")
                and x["p"].get("dealstage") not in ("closedwon", "closedlost")
                and x["p"].get("pipeline", "default") == "default")  # closedwon is a stage of this pipeline
    hub._update_one("deals", lost, {"dealstage": "closedwon", "closedate": f"{MONTH}-18T00:00:00.000Z"})
    hub.advance(hub.search_lag)
    assert run_sync(store, tokens, "demo", trigger="demo").status == "ok"
    hub.advance(60)  # a minute passes after that sync
    data = month_data(store, ws.id, MONTH)
    in_month = sorted((data.deal_invoice[d.id], d.id) for d in data.deals
                      if d.won and d.close_date and d.close_date.strftime("%Y-%m") == MONTH
                      and d.id in data.deal_invoice)
    assert lost["id"] in dict(in_month).values(), "the deal won in September is invoiced"
    in_month = [(i, d) for i, d in in_month if d != lost["id"]]
    assert len(in_month) >= 4, "the demo should have four invoiced deals won in September 2026"
    qbo = _server("quickbooks")
    company = next(iter(qbo.state["companies"].values()))
    invoices, customers = company["entities"]["Invoice"], company["entities"]["Customer"]
    (a, _), (b, _), (c, _), (d, _) = in_month[:4]

    qbo._write(company, "Invoice", {"Id": a, "SyncToken": invoices[a]["SyncToken"]}, "void")

    lines = [ln for ln in invoices[b]["Line"] if ln["DetailType"] in ("SalesItemLineDetail", "DiscountLineDetail")]
    first = lines[0]
    detail = dict(first["SalesItemLineDetail"], Qty=str(int(first["SalesItemLineDetail"]["Qty"]) + 1))
    lines[0] = {**first, "Amount": f"{float(detail['UnitPrice']) * int(detail['Qty']):.2f}",
                "SalesItemLineDetail": detail}
    qbo._write(company, "Invoice", {"Id": b, "SyncToken": invoices[b]["SyncToken"], "sparse": True, "Line": lines},
               "update")

    paid = invoices[c]
    qbo._write(company, "Payment", {"CustomerRef": paid["CustomerRef"], "CurrencyRef": paid["CurrencyRef"],
                                    "TotalAmt": paid["Balance"], "TxnDate": f"{MONTH}-30",
                                    "Line": [{"Amount": paid["Balance"],
                                              "LinkedTxn": [{"TxnId": c, "TxnType": "Invoice"}]}]})

    gone = invoices[c]["CustomerRef"]["value"]  # paid in full above: nothing left open
    qbo._write(company, "Customer", {"Id": gone, "SyncToken": customers[gone]["SyncToken"], "sparse": True,
                                     "Active": False}, "update")

    # Billed to the wrong customer, in that customer's currency (QuickBooks keeps an invoice in its
    # customer's currency, so the two change together; the sandbox's API refuses the edit, a person does not).
    rebill = invoices[d]
    other = next(x for x in customers.values() if x.get("Active", True)
                 and x.get("CurrencyRef", {}).get("value") not in (None, rebill["CurrencyRef"]["value"]))
    rebill["CustomerRef"] = {"value": other["Id"], "name": other["DisplayName"]}
    rebill["CurrencyRef"] = dict(other["CurrencyRef"])
    rebill["SyncToken"] = str(int(rebill["SyncToken"]) + 1)
    rebill["_updated"] = qbo.now()

    open_deal = next(x for x in hub.state["objects"]["deals"].values()
                     if not x.get("archived") and x["p"].get("dealstage") not in ("closedwon", "closedlost")
                     and x["p"].get("amount") and x["p"].get("pipeline", "default") == "default")
    hub._update_one("deals", open_deal, {"dealstage": "closedwon", "closedate": f"{MONTH}-12T00:00:00.000Z"})
    hub.advance(hub.search_lag)  # the deal was won well before the check: HubSpot's search has indexed it

    buyer = next(x for x in customers.values() if x.get("Active", True)
                 and x.get("CurrencyRef", {}).get("value") == company.get("home_currency", "USD"))
    orphan = qbo._write(company, "Invoice", {
        "CustomerRef": {"value": buyer["Id"]}, "TxnDate": f"{MONTH}-21",
        "Line": [{"Amount": "180.00", "DetailType": "SalesItemLineDetail",
                  "SalesItemLineDetail": {"ItemRef": {"value": "3"}, "UnitPrice": "180", "Qty": "1"}}]})

    known = next(x for x in customers.values() if x.get("Active", True) and x.get("PrimaryEmailAddr"))
    twin = qbo._write(company, "Customer", {
        "DisplayName": "Accounts Payable (do not use)", "CurrencyRef": dict(known["CurrencyRef"]),
        "PrimaryEmailAddr": {"Address": known["PrimaryEmailAddr"]["Address"]}})
    deleted_company = next(x.company_id for x in data.deals if x.id == dict(in_month)[c])
    assert deleted_company
    hub.archive("companies", deleted_company)
    hub._update_one("deals", lost, {"dealstage": "closedlost"})
    hub.advance(hub.search_lag)
    return Planted(store, tokens, home, a, b, c, d, open_deal["id"], orphan["Id"], twin["Id"], dict(in_month),
                   gone, deleted_company, lost["id"])


@contextmanager
def planted_demo(home: Path) -> Iterator[Planted]:
    """The synced demo in ``home`` with the discrepancies above planted; its sandboxes stop on exit."""
    home.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{home}/crossledger.db")
    tokens = MemoryTokenStore()
    try:
        run_demo(store, tokens, home)
        yield plant(store, tokens, home)
    finally:
        sandboxes.stop_all()
        store.dispose()
