"""QBO invoices and credit memos: lines, discounts, totals, balances and currencies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from app.sandbox.quickbooks.customers import QboCustomers
from app.sandbox.quickbooks.faults import (
    QboFault,
    business,
    dec,
    invalid_ref,
    missing,
    money,
    not_found,
    s,
    too_long,
    unsupported,
)
from app.sandbox.quickbooks.schema import (
    _EMAIL,
    DISCOUNT_DETAIL_FIELDS,
    HUNDRED,
    LINE_FIELDS,
    RATES,
    SALES_DETAIL_FIELDS,
    ZERO,
)


class QboSales(QboCustomers):
    """Sales-form rules."""

    # -- invoices and credit memos ----------------------------------------------------------------
    @staticmethod
    def _active_ref(co: dict[str, Any], ref: Any, entity: str, field: str) -> dict[str, Any]:
        """The active record a ``{"value": id}`` reference names; QuickBooks' missing or not-found fault otherwise."""
        if not isinstance(ref, dict) or not ref.get("value"):
            raise missing(field)
        found: dict[str, Any] | None = co["entities"][entity].get(str(ref["value"]))
        if found is None or not found.get("Active", True):
            raise not_found(entity, field)
        return found

    def _customer_ref(self, co: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
        customer = self._active_ref(co, rec.get("CustomerRef"), "Customer", "CustomerRef")
        rec["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        return customer

    def _currency(self, co: dict[str, Any], rec: dict[str, Any], customer: dict[str, Any]) -> str:
        code = customer["CurrencyRef"]["value"]
        sent = rec.get("CurrencyRef")
        if sent is not None:
            if not isinstance(sent, dict) or not sent.get("value"):
                raise missing("CurrencyRef.value")
            if sent["value"] != code:
                raise business(f"The transaction currency ({sent['value']}) must match the currency of the "
                               f"customer ({code}).", "CurrencyRef")
        rec["CurrencyRef"] = self._currency_ref(code)
        if code != co["home_currency"]:
            rate = dec(rec["ExchangeRate"], "ExchangeRate") if rec.get("ExchangeRate") else RATES.get(code, ZERO)
            rec["ExchangeRate"] = s(rate)
        else:
            rec.pop("ExchangeRate", None)
        return code

    def _dates(self, rec: dict[str, Any], with_due: bool) -> None:
        for key in ("TxnDate", "DueDate"):
            value = rec.get(key)
            if value is not None:
                try:
                    dt.date.fromisoformat(str(value))
                except ValueError:
                    raise QboFault("2010", "Request has invalid or unsupported property",
                                   f"Property Name:{key} must be a date (YYYY-MM-DD)", key) from None
        rec.setdefault("TxnDate", self.today())
        if with_due and not rec.get("DueDate"):
            rec["DueDate"] = (dt.date.fromisoformat(rec["TxnDate"]) + dt.timedelta(days=30)).isoformat()
        if with_due and rec["DueDate"] < rec["TxnDate"]:
            raise business("The due date can't be before the transaction date.", "DueDate")

    def _lines(self, co: dict[str, Any], rec: dict[str, Any], current: dict[str, Any] | None) -> Decimal:
        """Validate and number the lines; add QBO's subtotal line; returns the total (no tax here)."""
        lines = rec.get("Line")
        if not isinstance(lines, list) or not lines:
            raise missing("Line")
        old_ids = {str(line.get("Id")) for line in (current or {}).get("Line", []) if line.get("Id")}
        next_id = max([int(i) for i in old_ids if i.isdigit()] + [0]) + 1
        sales: list[dict[str, Any]] = []
        discount: dict[str, Any] | None = None
        for n, raw in enumerate(lines):
            if not isinstance(raw, dict):
                raise unsupported("Line")
            for key in raw:
                if key not in LINE_FIELDS:
                    raise unsupported(f"Line.{key}")
            kind = raw.get("DetailType")
            if not kind:
                raise missing(f"Line[{n}].DetailType")
            if kind == "SubTotalLineDetail":
                continue  # read-only: QBO recomputes it
            line: dict[str, Any] = {}
            if raw.get("Id") and str(raw["Id"]) in old_ids:
                line["Id"] = str(raw["Id"])
            if raw.get("Description") is not None:
                if len(str(raw["Description"])) > 4000:
                    raise too_long("Line.Description", 4000, len(str(raw["Description"])))
                line["Description"] = str(raw["Description"])
            if kind == "SalesItemLineDetail":
                detail = raw.get("SalesItemLineDetail")
                if not isinstance(detail, dict):
                    raise missing("SalesItemLineDetail")
                for key in detail:
                    if key not in SALES_DETAIL_FIELDS:
                        raise unsupported(f"SalesItemLineDetail.{key}")
                if raw.get("Amount") is None:
                    raise missing("Line.Amount")
                amount = dec(raw["Amount"], "Line.Amount")
                item = self._active_ref(co, detail.get("ItemRef"), "Item", "SalesItemLineDetail.ItemRef")
                out_detail: dict[str, Any] = {"ItemRef": {"value": item["Id"], "name": item["Name"]}}
                qty = dec(detail["Qty"], "Qty") if detail.get("Qty") is not None else None
                price = dec(detail["UnitPrice"], "UnitPrice") if detail.get("UnitPrice") is not None else None
                if price is not None and price.as_tuple().exponent < -5:  # type: ignore[operator]
                    raise business("UnitPrice takes at most 5 decimal places.", "UnitPrice")
                if qty is not None and price is not None and money(qty * price) != amount:
                    raise business(f"Amount is not equal to UnitPrice * Qty. Supplied value:{s(amount)}",
                                   "Line.Amount")
                if amount != money(amount):
                    raise business("Amount takes at most 2 decimal places.", "Line.Amount")
                if price is not None:
                    out_detail["UnitPrice"] = s(price)
                if qty is not None:
                    out_detail["Qty"] = s(qty)
                tax = detail.get("TaxCodeRef")
                if tax is not None:
                    if not isinstance(tax, dict) or tax.get("value") not in ("TAX", "NON"):
                        raise invalid_ref("TaxCode", (tax or {}).get("value"), "TaxCodeRef")
                    out_detail["TaxCodeRef"] = {"value": tax["value"]}
                if detail.get("ServiceDate"):
                    out_detail["ServiceDate"] = str(detail["ServiceDate"])
                line.update({"Amount": s(amount), "DetailType": kind, "SalesItemLineDetail": out_detail})
                sales.append(line)
            elif kind == "DescriptionOnly":
                line.update({"DetailType": kind, "DescriptionLineDetail": {}})
                sales.append(line)
            elif kind == "DiscountLineDetail":
                if discount is not None:
                    raise business("Only one discount line is allowed on a transaction.", "Line")
                detail = raw.get("DiscountLineDetail") or {}
                for key in detail:
                    if key not in DISCOUNT_DETAIL_FIELDS:
                        raise unsupported(f"DiscountLineDetail.{key}")
                discount = {**line, "DetailType": kind, "_raw": detail, "_amount": raw.get("Amount")}
            else:
                raise business(f"Line type {kind} isn't supported on this transaction.", "Line.DetailType")
        subtotal = sum((Decimal(line.get("Amount", "0")) for line in sales), ZERO)
        out = []
        for num, line in enumerate(sales, start=1):
            line_id = line.pop("Id", None)
            if line_id is None:
                line_id = str(next_id)
                next_id += 1
            out.append({"Id": line_id, "LineNum": num, **line})
        total = subtotal
        if discount is not None:
            detail = discount.pop("_raw")
            sent = discount.pop("_amount")
            account = {"value": "86", "name": "Discounts given"}
            if detail.get("PercentBased"):
                if detail.get("DiscountPercent") is None:
                    raise missing("DiscountLineDetail.DiscountPercent")
                pct = dec(detail["DiscountPercent"], "DiscountPercent")
                if not ZERO <= pct <= HUNDRED:
                    raise business("A discount percentage is between 0 and 100.", "DiscountPercent")
                amount = money(subtotal * pct / HUNDRED)  # QBO rounds the discount on the subtotal
                out_detail = {"PercentBased": True, "DiscountPercent": s(pct), "DiscountAccountRef": account}
            else:
                if sent is None:
                    raise missing("Line.Amount")
                amount = money(dec(sent, "Line.Amount"))
                if amount < 0 or amount > subtotal:
                    raise business("A discount can't be negative or more than the subtotal.", "Line.Amount")
                out_detail = {"PercentBased": False, "DiscountAccountRef": account}
            if "Id" not in discount:
                discount["Id"] = str(next_id)
            out.append({"Id": discount["Id"], **({"Description": discount["Description"]}
                                                 if discount.get("Description") else {}),
                        "Amount": s(amount), "DetailType": "DiscountLineDetail", "DiscountLineDetail": out_detail})
            total = subtotal - amount
        out.append({"Amount": s(subtotal), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        rec["Line"] = out
        return total

    def _sales(self, co: dict[str, Any], entity: str, rec: dict[str, Any],
               current: dict[str, Any] | None) -> dict[str, Any]:
        customer = self._customer_ref(co, rec)
        if current is not None and current["CustomerRef"]["value"] != customer["Id"] and Decimal(current["_paid"]):
            raise business("You can't change the customer of a transaction that has payments applied.", "CustomerRef")
        code = self._currency(co, rec, customer)
        self._dates(rec, with_due=entity == "Invoice")
        if entity == "Invoice" and not rec.get("SalesTermRef"):
            rec["SalesTermRef"] = {"value": "3", "name": "Net 30"}
        total = self._lines(co, rec, current)
        doc = rec.get("DocNumber")
        if doc is not None:
            doc = str(doc)
            if len(doc) > 21:
                raise too_long("DocNumber", 21, len(doc))
            if co["duplicate_doc_check"] and any(
                    o.get("DocNumber") == doc and (current is None or o["Id"] != current["Id"])
                    for o in co["entities"][entity].values()):
                raise QboFault("6210", "Duplicate Document Number Error",
                               "Duplicate Document Number Error : You must specify a different number. This number "
                               "has already been used.", "DocNumber")
        elif current is None:
            co["doc_number"] += 1
            rec["DocNumber"] = str(co["doc_number"])
        for key, limit in (("PrivateNote", 4000),):
            if rec.get(key) is not None and len(str(rec[key])) > limit:
                raise too_long(key, limit, len(str(rec[key])))
        memo = rec.get("CustomerMemo")
        if memo is not None:
            if not isinstance(memo, dict) or set(memo) - {"value", "id"}:
                raise unsupported("CustomerMemo")
            if len(str(memo.get("value") or "")) > 1000:
                raise too_long("CustomerMemo", 1000, len(str(memo.get("value"))))
        bill_email = rec.get("BillEmail")
        if bill_email is not None and not _EMAIL.match(str((bill_email or {}).get("Address") or "")):
            raise business("Invalid email address in BillEmail.", "BillEmail.Address")
        applied = Decimal((current or {}).get("_paid", "0"))
        if total < applied:
            raise business(f"The new total ({s(total)}) is less than the amount already paid ({s(applied)}).",
                           "Line")
        rec["TotalAmt"] = s(total)
        rec["TxnTaxDetail"] = {"TotalTax": "0"}
        rec["_paid"] = s(applied)
        rec["LinkedTxn"] = list((current or {}).get("LinkedTxn") or [])
        if entity == "Invoice":
            rec["Balance"] = s(total - applied)
            rec.setdefault("EmailStatus", "NotSet")
            rec.setdefault("PrintStatus", "NeedToPrint")
            rec.setdefault("ApplyTaxAfterDiscount", False)
            rec["Deposit"] = "0"
        else:
            rec["RemainingCredit"] = rec["Balance"] = s(total - applied)
        if code != co["home_currency"]:
            rate = Decimal(rec["ExchangeRate"])
            rec["HomeTotalAmt"] = s(money(total * rate))
            if entity == "Invoice":
                rec["HomeBalance"] = s(money((total - applied) * rate))
        else:
            rec.pop("HomeTotalAmt", None)
            rec.pop("HomeBalance", None)
        return rec

