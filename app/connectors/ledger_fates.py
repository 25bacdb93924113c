"""Ledger customers archived, merged or gone; reactivating them; credit notes against an invoice.

Mixins for the three accounting connectors (each ``Connector`` lists one as its last base), so these
methods live apart from the read and write paths:

* ``customer_fates(ids)``: each customer ``active``, ``archived`` (QuickBooks ``Active: false``, Xero
  ``ARCHIVED``, Zoho Books ``inactive``), ``merged`` (Xero ``MergedToContactID``; QuickBooks merges by
  renaming one customer to another's name, and the loser is made inactive, so an inactive customer whose
  name, without QuickBooks' " (deleted)", is an active customer's is reported merged into it, not
  certain), ``deleted`` or ``missing`` (Zoho Books deletes unused contacts for good).
* ``reactivate_customer(id, version)``: QuickBooks sparse update ``Active: true``; Xero ``ContactStatus:
  ACTIVE``; Zoho Books ``POST /contacts/{id}/active``. A name taken meanwhile is the ledger's
  ``DuplicateName``.
* ``create_credit_notes(writes)``: one credit note per write, for the write's net amount on one line
  (the invoice's first product and tax code), allocated to the invoice up to what it still owes:
  QuickBooks ``CreditMemo`` applied by a zero ``Payment``; Xero ``ACCRECCREDIT`` then
  ``PUT /CreditNotes/{id}/Allocations``; Zoho Books ``POST /creditnotes`` then
  ``POST /creditnotes/{id}/invoices``. ``WriteResult.record`` is the ``CreditNote``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from app.connectors.base import WriteResult
from app.connectors.errors import (
    AuthExpired,
    ConnectorError,
    Forbidden,
    NotFound,
    StaleVersion,
    Unauthorized,
    ValidationRejected,
)
from app.domain.lifecycle import CreditNote, CreditNoteWrite, RecordFate
from app.domain.models import AccountingCustomer

_NS = uuid.UUID("6f7d0a52-3c0e-4e0b-9f5e-2b4d7a1c9e31")
_DELETED_SUFFIX = (" (deleted)", " (deleted-")


def _plain_name(display: str) -> str:
    for suffix in _DELETED_SUFFIX:
        at = display.rfind(suffix)
        if at > 0:
            return display[:at]
    return display


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _write_guard(key: str, record_id: str, fn: Any) -> WriteResult:
    """Run one write; a lost sign-in is raised, any other failure becomes the result's error."""
    try:
        result: WriteResult = fn()
    except (AuthExpired, Unauthorized, Forbidden):
        raise
    except ConnectorError as exc:
        return WriteResult(key, record_id, error=exc)
    return result


class QuickBooksLifecycle:
    if TYPE_CHECKING:
        provider: str

        def _by_ids(self, entity: str, ids: Sequence[str], names: bool) -> dict[str, dict[str, Any]]: ...
        def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                  requestid: str | None = None, resource: str = "") -> tuple[dict[str, Any], Any]: ...
        def to_customer(self, c: dict[str, Any]) -> AccountingCustomer: ...
        def find_customers(self, *, name: str | None = None,
                           email: str | None = None) -> list[AccountingCustomer]: ...

    def customer_fates(self, ids: Sequence[str]) -> list[RecordFate]:
        rows = self._by_ids("Customer", [str(i) for i in ids], names=True)
        out = []
        for cid in (str(i) for i in ids):
            row = rows.get(cid)
            if row is None:
                out.append(RecordFate(cid, "missing"))
                continue
            cust = self.to_customer(row)
            name = cust.raw_name or cust.party.name
            if cust.active:
                out.append(RecordFate(cid, "active", name=name))
                continue
            plain = _plain_name(name)
            heirs = [c for c in self.find_customers(name=plain) if c.active and c.id != cid]
            if len(heirs) == 1:
                out.append(RecordFate(cid, "merged", survivor_id=heirs[0].id, name=plain,
                                      survivor_name=heirs[0].raw_name, certain=False))
            else:
                out.append(RecordFate(cid, "archived", name=plain))
        return out

    def reactivate_customer(self, customer_id: str, version: str | None = None) -> WriteResult:
        """Sparse update ``Active: true`` (QuickBooks takes " (deleted)" off the name again)."""
        key = f"reactivate:{customer_id}"

        def go() -> WriteResult:
            rec = self._by_ids("Customer", [customer_id], names=True).get(str(customer_id))
            if rec is None:
                raise NotFound(f"Customer {customer_id} is not in QuickBooks.", provider=self.provider)
            if rec.get("Active", True) is not False:
                cust = self.to_customer(rec)
                return WriteResult(key, cust.id, cust.version, record=cust)
            if version and str(rec.get("SyncToken")) != str(version):
                raise StaleVersion("The customer changed in QuickBooks since it was read.", provider=self.provider,
                                   code="5010")
            data, _ = self._call("POST", "/customer", body={"Id": str(rec["Id"]), "SyncToken": str(rec["SyncToken"]),
                                                            "sparse": True, "Active": True},
                                 requestid=str(uuid.uuid5(_NS, f"qbo:reactivate:{rec['Id']}:{rec['SyncToken']}")),
                                 resource="customer")
            cust = self.to_customer(data["Customer"])
            return WriteResult(key, cust.id, cust.version, record=cust)

        return _write_guard(key, customer_id, go)

    def create_credit_notes(self, writes: Sequence[CreditNoteWrite]) -> list[WriteResult]:
        return [_write_guard(w.key, w.invoice_id, lambda w=w: self._credit_memo(w)) for w in writes]

    def _credit_memo(self, w: CreditNoteWrite) -> WriteResult:
        inv = self._by_ids("Invoice", [w.invoice_id], names=False).get(str(w.invoice_id))
        if inv is None:
            raise NotFound(f"Invoice {w.invoice_id} is not in QuickBooks.", provider=self.provider)
        sales = [ln for ln in inv.get("Line") or [] if ln.get("DetailType") == "SalesItemLineDetail"]
        if _dec(inv.get("TotalAmt")) == 0 or not sales:
            raise ValidationRejected(f"Invoice {inv.get('DocNumber') or w.invoice_id} is void: there is nothing to "
                                     "credit.", provider=self.provider)
        first = sales[0]["SalesItemLineDetail"]
        detail: dict[str, Any] = {"ItemRef": {"value": w.item_id or first["ItemRef"]["value"]}, "Qty": 1,
                                  "UnitPrice": w.amount}
        if first.get("TaxCodeRef"):
            detail["TaxCodeRef"] = first["TaxCodeRef"]
        body: dict[str, Any] = {"CustomerRef": {"value": inv["CustomerRef"]["value"]},
                                "Line": [{"DetailType": "SalesItemLineDetail", "Amount": w.amount,
                                          "Description": w.description[:4000], "SalesItemLineDetail": detail}]}
        if inv.get("CurrencyRef"):
            body["CurrencyRef"] = {"value": inv["CurrencyRef"]["value"]}
        if w.reference:
            body["PrivateNote"] = w.reference[:4000]
        if w.issue_date:
            body["TxnDate"] = w.issue_date.isoformat()
        data, _ = self._call("POST", "/creditmemo", body=body, requestid=str(uuid.uuid5(_NS, f"qbo:memo:{w.key}")),
                             resource="creditmemo")
        memo = data["CreditMemo"]
        total = _dec(memo.get("TotalAmt"))
        applied = min(total, _dec(inv.get("Balance")))
        if applied > 0:
            self._call("POST", "/payment", body={
                "CustomerRef": {"value": inv["CustomerRef"]["value"]}, "TotalAmt": 0,
                **({"CurrencyRef": {"value": inv["CurrencyRef"]["value"]}} if inv.get("CurrencyRef") else {}),
                "Line": [{"Amount": applied, "LinkedTxn": [{"TxnId": str(inv["Id"]), "TxnType": "Invoice"}]},
                         {"Amount": applied, "LinkedTxn": [{"TxnId": str(memo["Id"]), "TxnType": "CreditMemo"}]}]},
                requestid=str(uuid.uuid5(_NS, f"qbo:apply:{w.key}")), resource="payment")
        note = CreditNote(str(memo["Id"]), inv["CustomerRef"]["value"], (memo.get("CurrencyRef") or {}).get("value")
                          or w.currency, total, str(inv["Id"]), w.description, memo.get("DocNumber"),
                          dt.date.fromisoformat(memo["TxnDate"]) if memo.get("TxnDate") else None,
                          total - applied, "closed" if applied == total else "open", w.reference)
        return WriteResult(w.key, note.id, str(memo.get("SyncToken") or "0"), record=note)
