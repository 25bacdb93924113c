"""QBO payments (applied to invoices and credit memos), deletes and voids."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox.quickbooks.faults import business, dec, missing, money, not_found, s, unsupported
from app.sandbox.quickbooks.sales import QboSales
from app.sandbox.quickbooks.schema import LINE_FIELDS, TRANSACTIONS, ZERO


class QboPayments(QboSales):
    """Payment rules, delete and void."""

    # -- payments --------------------------------------------------------------------------------
    def _payment(self, co: dict[str, Any], rec: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        customer = self._customer_ref(co, rec)
        if rec.get("TotalAmt") is None:
            raise missing("TotalAmt")
        total = dec(rec["TotalAmt"], "TotalAmt")
        if total < 0 or total != money(total):
            raise business("TotalAmt must be a positive amount with at most 2 decimal places.", "TotalAmt")
        self._currency(co, rec, customer)
        self._dates(rec, with_due=False)
        lines = rec.get("Line") or []
        if not isinstance(lines, list):
            raise unsupported("Line")
        prior = {(link["TxnType"], link["TxnId"]): Decimal(line["Amount"])
                 for line in (current or {}).get("Line", []) for link in line.get("LinkedTxn", [])}
        out, invoices, credits = [], ZERO, ZERO
        for n, line in enumerate(lines):
            if not isinstance(line, dict) or set(line) - LINE_FIELDS:
                raise unsupported(f"Line[{n}]")
            if line.get("Amount") is None:
                raise missing(f"Line[{n}].Amount")
            amount = dec(line["Amount"], "Line.Amount")
            links = line.get("LinkedTxn") or []
            if len(links) != 1 or not isinstance(links[0], dict):
                raise missing(f"Line[{n}].LinkedTxn")
            link = links[0]
            kind, txn_id = link.get("TxnType"), str(link.get("TxnId") or "")
            if kind not in ("Invoice", "CreditMemo"):
                raise business(f"A payment can't be applied to a {kind}.", "LinkedTxn.TxnType")
            txn = co["entities"][kind].get(txn_id)
            if txn is None:
                raise not_found(kind, "LinkedTxn.TxnId")
            if txn["CustomerRef"]["value"] != customer["Id"]:
                raise business(f"{kind} {txn_id} belongs to another customer.", "LinkedTxn")
            if txn.get("_voided"):
                raise business(f"{kind} {txn_id} is void.", "LinkedTxn")
            open_amount = Decimal(txn["TotalAmt"]) - Decimal(txn["_paid"]) + prior.get((kind, txn_id), ZERO)
            if amount <= 0 or amount > open_amount:
                raise business(f"The amount applied to {kind} {txn_id} ({s(amount)}) is more than its open "
                               f"balance ({s(open_amount)}).", "Line.Amount")
            if kind == "Invoice":
                invoices += amount
            else:
                credits += amount
            out.append({"Amount": s(amount), "LinkedTxn": [{"TxnId": txn_id, "TxnType": kind}]})
        applied = invoices - credits
        if applied > total:
            raise business(f"The lines ({s(applied)}) add up to more than the payment ({s(total)}).", "TotalAmt")
        rec["Line"] = out
        rec["TotalAmt"] = s(total)
        rec["UnappliedAmt"] = s(total - applied)
        rec.setdefault("DepositToAccountRef", {"value": "4", "name": "Undeposited Funds"})
        rec.setdefault("ProcessPayment", False)
        return rec

    def _apply(self, co: dict[str, Any], payment: dict[str, Any], sign: int = 1) -> None:
        now = self.now()
        for line in payment.get("Line", []):
            for link in line["LinkedTxn"]:
                txn = co["entities"][link["TxnType"]].get(link["TxnId"])
                if txn is None:
                    continue
                paid = Decimal(txn["_paid"]) + sign * Decimal(line["Amount"])
                txn["_paid"] = s(paid)
                balance = Decimal(txn["TotalAmt"]) - paid
                if link["TxnType"] == "Invoice":
                    txn["Balance"] = s(balance)
                    if txn.get("ExchangeRate"):
                        txn["HomeBalance"] = s(money(balance * Decimal(txn["ExchangeRate"])))
                else:
                    txn["RemainingCredit"] = txn["Balance"] = s(balance)
                linked = [t for t in txn.get("LinkedTxn", []) if t["TxnId"] != payment["Id"]]
                if sign > 0:
                    linked.append({"TxnId": payment["Id"], "TxnType": "Payment"})
                txn["LinkedTxn"] = linked
                txn["SyncToken"] = str(int(txn["SyncToken"]) + 1)
                txn["_updated"] = now

    def _unapply(self, co: dict[str, Any], payment: dict[str, Any]) -> None:
        self._apply(co, payment, sign=-1)

    # -- delete and void --------------------------------------------------------------------------
    def _delete(self, co: dict[str, Any], entity: str, current: dict[str, Any]) -> dict[str, Any]:
        if entity not in TRANSACTIONS:
            raise business(f"A {entity.lower()} can't be deleted; make it inactive instead.", "operation")
        if entity != "Payment" and any(t["TxnType"] == "Payment" for t in current.get("LinkedTxn", [])):
            raise business("This transaction has payments applied. Delete the payments first.")
        if entity == "Payment":
            self._unapply(co, current)
        del co["entities"][entity][current["Id"]]
        co["deleted"][entity][current["Id"]] = self.now()
        return {"Id": current["Id"], "status": "Deleted", "domain": "QBO"}

    def _void(self, co: dict[str, Any], entity: str, current: dict[str, Any]) -> dict[str, Any]:
        """Amounts become zero, the lines and the record stay, the private note says "Voided"."""
        if entity not in ("Invoice", "Payment"):
            raise business(f"A {entity} can't be voided.", "operation")
        if current.get("_voided"):
            raise business("This transaction is already void.")
        now = self.now()
        if entity == "Invoice":
            for pid in [t["TxnId"] for t in current.get("LinkedTxn", []) if t["TxnType"] == "Payment"]:
                payment = co["entities"]["Payment"].get(pid)
                if payment is None:
                    continue
                self._unapply(co, payment)
                kept = [line for line in payment["Line"] if line["LinkedTxn"][0]["TxnId"] != current["Id"]
                        or line["LinkedTxn"][0]["TxnType"] != "Invoice"]
                applied = sum((Decimal(line["Amount"]) * (1 if line["LinkedTxn"][0]["TxnType"] == "Invoice"
                                                          else -1) for line in kept), ZERO)
                payment["Line"] = kept
                payment["UnappliedAmt"] = s(Decimal(payment["TotalAmt"]) - applied)
                payment["SyncToken"] = str(int(payment["SyncToken"]) + 1)
                payment["_updated"] = now
                self._apply(co, payment)
            for line in current["Line"]:
                line["Amount"] = "0"
                detail = line.get("SalesItemLineDetail")
                if detail is not None:
                    detail["Qty"] = "0"
            for key in ("TotalAmt", "Balance", "_paid"):
                current[key] = "0"
            for key in ("HomeTotalAmt", "HomeBalance"):
                if key in current:
                    current[key] = "0"
            current["LinkedTxn"] = []
        else:
            self._unapply(co, current)
            current["Line"] = []
            current["TotalAmt"] = current["UnappliedAmt"] = "0"
        current["PrivateNote"] = "Voided"
        current["_voided"] = True
        current["SyncToken"] = str(int(current["SyncToken"]) + 1)
        current["_updated"] = now
        return self.wire(co, entity, current)

