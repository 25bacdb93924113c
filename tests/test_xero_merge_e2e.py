"""A Xero contact merged into another by the bookkeeper, end to end (issue 21, point 1): the sync of the next won
deal holds it with a plain reason and the "link to the surviving contact" way out; taking it moves the link, and
the next sync makes exactly one invoice, for the survivor, with nothing created twice."""

from __future__ import annotations

import datetime as dt

from app.ops import ways_out
from tests.ways_out_world import make_world

HARBOUR = "Harbour Lights Ltd"
RAW = ("MergedToContactID", "ARCHIVED", "HTTP", "Validation", "Exception")


def test_a_won_deal_of_a_merged_xero_contact_waits_then_goes_to_the_survivor(tmp_path):
    with make_world(tmp_path, "xero") as w:
        loser = w.acct_ids[HARBOUR]
        survivor = w.new_customer("Harbour Lights Limited")
        w.books.user_merge_contacts(loser, survivor)  # in Xero's web app: the API cannot merge

        # The company wins a deal in HubSpot after the merge.
        today = dt.date.today().isoformat()
        deal = w.crm.create("deals", dealname="Lighthouse refit", amount="1250.00", pipeline="default",
                            dealstage="closedwon", closedate=f"{today}T00:00:00.000Z", deal_currency_code="GBP")
        w.crm.associate("deals", deal, "companies", w.crm_ids[HARBOUR], [5, 341])
        item = w.crm.create("line_items", name="Lantern glass", quantity="5", price="250.00",
                            hs_line_item_currency_code="GBP")
        w.crm.associate("line_items", item, "deals", deal, [20])

        first = w.sync()
        assert first.status == "ok", first.errors
        assert not _invoices(w), "no invoice may go to the merged-away contact"
        held = w.held()
        [item_held] = held[deal]["items"]
        message = item_held["message"]
        assert message.startswith(f"{HARBOUR} was merged into Harbour Lights Limited in Xero, so this deal's "
                                  "invoice is waiting."), message
        assert not any(raw in message for raw in RAW)
        assert item_held["way_out"]["kind"] == "link_to_survivor"
        assert item_held["way_out"]["target_id"] == survivor

        again = w.sync()  # still waiting, still one hold, still no invoice
        assert again.status == "ok", again.errors
        assert list(w.held()) == [deal] and not _invoices(w)

        [way] = ways_out.ways_out(w.store, w.ws_id)
        assert (way.kind, way.target_id, [x.name for x in way.waiting]) == (
            "link_to_survivor", survivor, ["Lighthouse refit"])
        taken = ways_out.take(w.store, w.tokens, w.name, way.key, **w.options())
        assert taken.ok, taken.message
        assert w.link_of(HARBOUR).acct_id == survivor

        after = w.sync()
        assert after.status == "ok", after.errors
        [invoice] = _invoices(w)
        assert invoice.customer_id == survivor and invoice.total == 1250
        assert w.held() == {} or all(r.get("release") for r in w.held().values())
        assert w.sync().status == "ok" and len(_invoices(w)) == 1  # never twice
        acct = w.connector()
        try:  # no contact was made for the merged company: the survivor carries it
            names = [c.party.name for c in acct.read_customers(None).records]
        finally:
            acct.close()
        assert names.count("Harbour Lights Limited") == 1 and "Harbour Lights Ltd 2" not in names


def _invoices(w):
    acct = w.connector()
    try:
        return [i for i in acct.read_invoices(None).records if i.status != "void"]
    finally:
        acct.close()
