"""The small business's hands in its CRM: what its people do there, per CRM.

Companies and people are created and corrected, and deals are won, lost and reopened, through the
CRM's API (the app's own connector, as any integration would). A new deal with its product lines, a
changed line, an archive or a merge are done as a person does them in the CRM's screens (the sandbox's
own state, as its seeding does): the app never writes those, so its connectors have no call for them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from unittest import mock

from app.connectors.base import RecordWrite
from app.sandbox import demo_data
from app.sandbox.pipedrive.common import v2_time
from app.sync.mapping import reverse_map


class NotAvailable(Exception):
    """This CRM (or its sandbox) cannot do that yet."""


class Refused(Exception):
    """The provider refused what the business tried (its own mistake, not the app's)."""


def seed_products(box: Any) -> None:
    """The CRM's own seeding, with the demo's products and pipelines and no companies, people or deals."""
    with mock.patch.object(demo_data, "demo_data", return_value=demo_data.DemoData([], [], [])):
        box.seed("demo")


Line = tuple[str, Decimal, Decimal]  # sku, quantity, discount percent (the product's list price)


class Crm:
    provider = ""
    won: dict[str, Any] = {}
    lost: dict[str, Any] = {}
    reopened: dict[str, Any] = {}

    def __init__(self, box: Any, connector: Any) -> None:
        self.box, self.conn = box, connector
        self.mapping = connector.default_mapping()
        self._n = 0
        self.prices = {sku: price for sku, _name, price in demo_data.PRODUCTS}
        self.names = {sku: name for sku, name, _price in demo_data.PRODUCTS}
        self.line_ids: dict[str, dict[str, str]] = {}  # deal -> sku -> line record (HubSpot's line items)

    def _key(self, what: str) -> str:
        self._n += 1
        return f"year-{what}-{self._n}"

    def _write(self, otype: str, rid: str | None, fields: dict[str, Any]) -> str:
        props = reverse_map(fields, otype, self.mapping)
        [res] = self.conn.update_records([RecordWrite(self._key(otype), otype, rid, props)])
        if not res.ok:
            raise Refused(f"the CRM refused {otype} {rid or 'new'}: {res.error}")
        return str(res.id or rid)

    # -- through the API -------------------------------------------------------------------------------
    def new_company(self, fields: dict[str, Any]) -> str:
        return self._write("company", None, fields)

    def new_person(self, fields: dict[str, Any]) -> str:
        return self._write("person", None, fields)

    def edit(self, otype: str, rid: str, fields: dict[str, Any]) -> None:
        self._write(otype, rid, fields)

    def set_stage(self, deal_id: str, stage: str, day: dt.date) -> None:
        props = {"won": self.won, "lost": self.lost, "open": self.reopened}[stage]
        props = {k: (v(day) if callable(v) else v) for k, v in props.items()}
        [res] = self.conn.update_deals([RecordWrite(self._key("deal"), "deal", deal_id, props)])
        if not res.ok:
            raise Refused(f"the CRM refused the stage of deal {deal_id}: {res.error}")

    # -- in the CRM's screens ------------------------------------------------------------------------
    def new_deal(self, company_id: str, name: str, currency: str, close: dt.date, lines: list[Line]) -> str:
        raise NotImplementedError

    def change_quantity(self, deal_id: str, sku: str, quantity: Decimal) -> None:
        raise NotImplementedError

    def deal_value(self, deal_id: str, prop: str) -> Any:
        """What the deal's field shows in the CRM's screens."""
        raise NotImplementedError

    def archive_company(self, company_id: str) -> bool:
        """Archive (or delete, where that is the CRM's only way) a company; True when its deals go with it."""
        raise NotAvailable(f"archiving a company in the {self.provider} sandbox")

    def merge_companies(self, keep: str, lose: str) -> None:
        raise NotAvailable(f"merging companies in the {self.provider} sandbox")


def _iso_day(day: dt.date) -> str:
    return day.isoformat()


class HubSpot(Crm):
    provider = "hubspot"
    won = {"dealstage": "closedwon", "closedate": lambda d: f"{d.isoformat()}T00:00:00.000Z"}
    lost = {"dealstage": "closedlost", "closedate": lambda d: f"{d.isoformat()}T00:00:00.000Z"}
    reopened = {"dealstage": "contractsent"}

    def new_deal(self, company_id: str, name: str, currency: str, close: dt.date, lines: list[Line]) -> str:
        b = self.box
        with b.lock:
            products = {r["p"].get("hs_sku"): rid for rid, r in b.state["objects"]["products"].items()}
            when = b._stamp()
            deal = b._insert("deals", {"dealname": name, "deal_currency_code": currency, "pipeline": "default",
                                       "dealstage": "appointmentscheduled", "dealtype": "newbusiness",
                                       "closedate": f"{close.isoformat()}T00:00:00.000Z"}, when)
            b._associate("deals", deal, "companies", company_id, [5, 341])
            for sku, qty, disc in lines:
                item = b._insert("line_items", {
                    "name": self.names[sku], "quantity": str(qty), "price": str(self.prices[sku]),
                    "hs_discount_percentage": str(disc) if disc else None, "hs_sku": sku,
                    "hs_product_id": products[sku], "hs_line_item_currency_code": currency}, when)
                b._associate("line_items", item, "deals", deal, [20])
                self.line_ids.setdefault(deal, {})[sku] = item
            b.persist()
        return deal

    def change_quantity(self, deal_id: str, sku: str, quantity: Decimal) -> None:
        self.box.edit("line_items", self.line_ids[deal_id][sku], quantity=str(quantity))
        self.box.edit("deals", deal_id)  # the deal's modification time moves with its lines, as in HubSpot

    def deal_value(self, deal_id: str, prop: str) -> Any:
        return self.box.state["objects"]["deals"][deal_id]["p"].get(prop)

    def archive_company(self, company_id: str) -> bool:
        self.box.archive("companies", company_id)
        return False

    def merge_companies(self, keep: str, lose: str) -> None:
        self.box.merge("companies", keep, lose)


class Salesforce(Crm):
    provider = "salesforce"
    won = {"StageName": "Closed Won", "CloseDate": _iso_day}
    lost = {"StageName": "Closed Lost", "CloseDate": _iso_day}
    reopened = {"StageName": "Negotiation/Review"}

    def new_deal(self, company_id: str, name: str, currency: str, close: dt.date, lines: list[Line]) -> str:
        b = self.box
        with b.lock:
            recs = b.state["records"]
            mc = b.multicurrency
            currency = currency if mc else "USD"
            std_pb = b.standard_pricebook()
            product = {r.get("ProductCode"): pid for pid, r in recs["Product2"].items()}
            when = b._stamp()
            info = b._stage("Prospecting")
            oid = b._new_id("Opportunity")
            opp = b._put("Opportunity", oid, {
                "AccountId": company_id, "Name": name, "Amount": None, "StageName": "Prospecting",
                "CloseDate": close.isoformat(), "Probability": info["DefaultProbability"], "IsClosed": False,
                "IsWon": False, "ForecastCategoryName": info["ForecastCategoryName"], "Pricebook2Id": std_pb,
                "HasOpportunityLineItem": False, **({"CurrencyIsoCode": currency} if mc else {})}, when)
            for sku, qty, disc in lines:
                pid = product[sku]
                entry = next(e for e in recs["PricebookEntry"].values() if e["Product2Id"] == pid
                             and (not mc or e.get("CurrencyIsoCode") == currency))
                values = {"OpportunityId": oid, "PricebookEntryId": entry["Id"], "Product2Id": pid,
                          "Quantity": str(qty), "UnitPrice": str(self.prices[sku]), "ListPrice": entry["UnitPrice"],
                          "Discount": str(disc) if disc else None, "ServiceDate": None, "Description": None,
                          **({"CurrencyIsoCode": currency} if mc else {})}
                values.update(b._line_totals(values))
                b._put("OpportunityLineItem", b._new_id("OpportunityLineItem"), values, when)
            b._roll_up(opp, when)
            b.persist()
        return oid

    def change_quantity(self, deal_id: str, sku: str, quantity: Decimal) -> None:
        b = self.box
        recs = b.state["records"]
        product = {r.get("ProductCode"): pid for pid, r in recs["Product2"].items()}
        for rid, rec in recs["OpportunityLineItem"].items():
            if rec.get("OpportunityId") == deal_id and rec.get("Product2Id") == product[sku]:
                b.edit("OpportunityLineItem", rid, Quantity=str(quantity))
                return
        raise KeyError(f"deal {deal_id} has no line {sku}")

    def deal_value(self, deal_id: str, prop: str) -> Any:
        rec = self.box.state["records"]["Opportunity"].get(deal_id)
        return None if rec is None else rec.get(prop)

    def archive_company(self, company_id: str) -> bool:
        self.box.delete("Account", company_id)  # Salesforce deletes an account's opportunities with it
        return True

    def merge_companies(self, keep: str, lose: str) -> None:
        self.box.merge("Account", keep, lose)


class Pipedrive(Crm):
    provider = "pipedrive"
    won = {"status": "won"}
    lost = {"status": "lost"}
    reopened = {"status": "open"}

    def new_deal(self, company_id: str, name: str, currency: str, close: dt.date, lines: list[Line]) -> str:
        b = self.box
        with b.lock:
            st = b.state
            products = {str(p.get("code")): p["id"] for p in st["products"].values()}
            pipe = min(st["pipelines"].values(), key=lambda p: p["id"])
            stage = min((s for s in st["stages"].values() if s["pipeline_id"] == pipe["id"]),
                        key=lambda s: s["order_nr"])
            did = b.next_id("deal")
            when = v2_time(b.now())
            st["deals"][str(did)] = {
                "id": did, "title": name, "owner_id": st["user"]["id"], "person_id": None,
                "org_id": int(company_id), "pipeline_id": pipe["id"], "stage_id": stage["id"], "value": "0",
                "currency": currency, "add_time": when, "update_time": when, "stage_change_time": when,
                "is_deleted": False, "is_archived": False, "status": "open", "probability": None,
                "lost_reason": None, "visible_to": 3, "close_time": None, "won_time": None, "lost_time": None,
                "expected_close_date": close.isoformat(), "label_ids": [], "origin": "API", "origin_id": None,
                "channel": None, "channel_id": None, "source_lead_id": None, "arr": None, "mrr": None, "acv": None,
                "custom_fields": {}, "_archive_time": None}
            for order, (sku, qty, disc) in enumerate(lines, start=1):
                b._attach(did, {"product_id": products[sku], "item_price": self.prices[sku], "quantity": qty,
                                "discount": disc, "discount_type": "percentage", "tax": Decimal(0),
                                "tax_method": "none", "comments": "", "is_enabled": True}, when, order_nr=order)
            b.persist()
        return str(did)

    def change_quantity(self, deal_id: str, sku: str, quantity: Decimal) -> None:
        b = self.box
        with b.lock:
            products = {str(p.get("code")): p["id"] for p in b.state["products"].values()}
            for rec in b.state["deal_products"].values():
                if rec["deal_id"] == int(deal_id) and rec["product_id"] == products[sku]:
                    b._apply_line(rec, {"quantity": quantity})
                    b._touch(rec)
                    b._revalue(int(deal_id))
                    b.persist()
                    return
        raise KeyError(f"deal {deal_id} has no line {sku}")

    def deal_value(self, deal_id: str, prop: str) -> Any:
        rec = self.box.state["deals"][str(deal_id)]
        return (rec.get("custom_fields") or {}).get(prop, rec.get(prop))

    def archive_company(self, company_id: str) -> bool:
        self.box.delete("organizations", company_id)  # its deals stay, without an organization
        return False

    def merge_companies(self, keep: str, lose: str) -> None:
        """Pipedrive's merge (``PUT /v1/organizations/{id}/merge``): the loser's deals and people move to ``keep``."""
        self.conn._call("PUT", f"/api/v1/organizations/{int(lose)}/merge", body={"merge_with_id": int(keep)})


class ZohoCrm(Crm):
    provider = "zohocrm"
    won = {"Stage": "Closed Won", "Closing_Date": _iso_day}
    lost = {"Stage": "Closed Lost", "Closing_Date": _iso_day}
    reopened = {"Stage": "Negotiation/Review"}

    def new_deal(self, company_id: str, name: str, currency: str, close: dt.date, lines: list[Line]) -> str:
        b = self.box
        with b.lock:
            recs = b.state["records"]
            products = {r.get("Product_Code"): rid for rid, r in recs["Products"].items()}
            now, user = int(b.now()), b.state["user"]["id"]
            rows = [{"id": b.new_id(), "Product": products[sku], "Description": self.names[sku],
                     "Quantity": str(qty), "Unit_Price": str(self.prices[sku]), "Discount": str(disc),
                     "Created_Time": now, "Modified_Time": now} for sku, qty, disc in lines]
            amount = sum((q * self.prices[s] * (100 - d) / 100 for s, q, d in lines), Decimal(0))
            rid = b.new_id()
            rec = {"id": rid, "Owner": user, "Created_By": user, "Modified_By": user, "Created_Time": now,
                   "Modified_Time": now, "Deal_Name": name, "Amount": str(amount.quantize(Decimal("0.01"))),
                   "Currency": currency, "Pipeline": b.state["pipelines"][0]["id"],
                   "Stage": b.stage_id("Qualification"), "Closing_Date": close.isoformat(),
                   "Account_Name": company_id, "Line_Items": rows, "Type": "New Business"}
            b._derive("Deals", rec, None)
            recs["Deals"][rid] = rec
            b.persist()
        return rid

    def change_quantity(self, deal_id: str, sku: str, quantity: Decimal) -> None:
        b = self.box
        rec = b.state["records"]["Deals"][deal_id]
        products = {r.get("Product_Code"): pid for pid, r in b.state["records"]["Products"].items()}
        rows = [dict(r) for r in rec.get("Line_Items") or []]
        for r in rows:
            if r["Product"] == products[sku]:
                r["Quantity"] = str(quantity)
                r["Modified_Time"] = int(b.now())
                b.edit("Deals", deal_id, Line_Items=rows)
                return
        raise KeyError(f"deal {deal_id} has no line {sku}")

    def deal_value(self, deal_id: str, prop: str) -> Any:
        rec = self.box.state["records"]["Deals"].get(deal_id)
        return None if rec is None else rec.get(prop)

    def archive_company(self, company_id: str) -> bool:
        self.box.delete("Accounts", company_id)
        return False

    def merge_companies(self, keep: str, lose: str) -> None:
        """Zoho CRM's Merge Records API: the loser's deals and contacts move to ``keep``, the loser to the bin."""
        self.conn._call("POST", f"/Accounts/{keep}/actions/merge", body={"merge": [{"data": [{"id": lose}]}]})


CRMS = {c.provider: c for c in (HubSpot, Salesforce, Pipedrive, ZohoCrm)}
