"""Two CRM products with the same name and different codes each become their own ledger item.

QuickBooks Online and Zoho Books refuse a second item of the same name, so the second product
gets its SKU in the name; Xero keys items by code and keeps the name. Either way each invoice
line points at its own product, and an item the ledger still refuses holds only its own deal.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from app.connectors.base import ItemWrite
from app.domain.models import Item
from app.sandbox import demo_data as demo
from app.store.db import Store
from app.store.models import Quarantine
from app.sync.engine import SyncEngine
from app.sync.invoices import unique_item_names
from tests.test_invoice_pairs import _won_world

BLUE = demo.DemoLine("W-BLUE", "Widget", D(2), D("10.00"))
RED = demo.DemoLine("W-RED", "Widget", D(1), D("12.50"))


def _world(tmp_path, ledger: str):
    """Both products in the CRM's catalogue too, as a salesperson would have made them."""
    return _won_world(tmp_path, "hubspot", ledger, [("Blue order", [BLUE]), ("Red order", [RED])],
                      products=(("W-BLUE", "Widget", D("10.00")), ("W-RED", "Widget", D("12.50"))))


def _items(w) -> dict[str, tuple[str, str | None]]:
    return {i.id: (i.name, i.sku) for i in w.acct.connector.read_items(None).records}


@pytest.mark.parametrize("ledger", ["quickbooks", "zohobooks", "xero"])
def test_same_name_different_codes_become_two_items_and_each_line_bills_its_own(tmp_path, ledger):
    w = _world(tmp_path, ledger)
    result = w.sync()
    assert result.counts["invoices_created"] == 2 and result.counts["deals_held"] == 0
    items = _items(w)
    by_sku = {sku: name for name, sku in items.values()}
    if ledger == "xero":
        assert by_sku == {"W-BLUE": "Widget", "W-RED": "Widget"}
    else:
        assert by_sku == {"W-BLUE": "Widget (W-BLUE)", "W-RED": "Widget (W-RED)"}
    for inv in w.invoices():
        [line] = w.lines(inv)
        sku = items[line.item_id][1]
        assert (sku, line.unit_price) in {("W-BLUE", D("10.00")), ("W-RED", D("12.50"))}
    assert {items[w.lines(i)[0].item_id][1] for i in w.invoices()} == {"W-BLUE", "W-RED"}
    assert w.sync().counts["writes"] == 0  # the next run finds both items by code: nothing made twice


def test_a_product_the_ledger_still_refuses_holds_only_its_own_deal_with_the_reason(tmp_path):
    w = _world(tmp_path, "quickbooks")
    # Someone made an item called "Widget (W-RED)" for another product, by hand, in QuickBooks.
    [made] = w.acct.connector.create_items([ItemWrite("by-hand", Item(None, "Widget (W-RED)", "OTHER"))])
    assert made.ok
    result = SyncEngine(w.store, w.ws_id, w.crm.connector, w.acct.connector).run()
    assert result.counts["invoices_created"] == 1 and result.counts["deals_held"] == 1
    with Store(w.store.url).session() as s:
        [held] = [q for q in s.query(Quarantine) if q.record_type == "deal"]
    assert held.name == "Red order"
    [reason] = [i["message"] for i in held.reasons["items"]]
    assert reason.startswith("Its product 'Widget (W-RED)' could not be created in QuickBooks Online:")
    assert "the deal follows on the next sync" in reason


def test_unique_names_are_deterministic_and_fit_the_ledgers_limit():
    wanted = {"new-item:w-2": Item(None, "Widget", "W-2"), "new-item:w-1": Item(None, "Widget", "W-1"),
              "new-item:gadget": Item(None, "Gadget", None)}
    ledger = {"gizmo": ("7", "G-1")}
    first = unique_item_names(wanted, ledger)
    again = unique_item_names(dict(reversed(list(wanted.items()))), ledger)
    assert {t: i.name for t, i in first.items()} == {t: i.name for t, i in again.items()} == {
        "new-item:w-2": "Widget (W-2)", "new-item:w-1": "Widget (W-1)", "new-item:gadget": "Gadget"}
    # A new product named like a ledger item of another code; a very long name keeps its code.
    later = unique_item_names({"new-item:g-2": Item(None, "Gizmo", "G-2"),
                               "new-item:l": Item(None, "L" * 120, "LONG-1")}, {**ledger, ("l" * 120): ("8", "X")})
    assert later["new-item:g-2"].name == "Gizmo (G-2)"
    assert len(later["new-item:l"].name) == 100 and later["new-item:l"].name.endswith(" (LONG-1)")
