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

from app.connectors.base import Changes, WriteResult
from app.connectors.errors import (
    AuthExpired,
    ConnectorError,
    Forbidden,
    NotFound,
    StaleVersion,
    Unauthorized,
    ValidationRejected,
)
from app.connectors.quickbooks_wire import found, unchanged_since
from app.connectors.zohobooks_wire import _Cursor  # the Zoho Books connector's own cursor format
from app.connectors.zohobooks_wire import unchanged_since as zohobooks_unchanged_since
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
        def _changes(self, entity: str, cursor: str | None, *, names: bool) -> Any: ...

    def read_credit_notes(self, cursor: str | None) -> Changes[CreditNote]:
        """Credit applied to invoices since the cursor, one ``CreditNote`` per (payment, invoice): QuickBooks
        applies a credit memo through a Payment whose CreditMemo lines offset its invoice lines, in order."""
        read = self._changes("Payment", cursor, names=False)
        out = []
        for p in read.rows:
            memos = [(str(link["TxnId"]), _dec(line.get("Amount"))) for line in p.get("Line") or []
                     for link in line.get("LinkedTxn") or [] if link.get("TxnType") == "CreditMemo"]
            credit = sum((a for _, a in memos), Decimal(0))
            for line in p.get("Line") or []:
                for link in line.get("LinkedTxn") or []:
                    if link.get("TxnType") != "Invoice" or credit <= 0:
                        continue
                    taken = min(credit, _dec(line.get("Amount")))
                    credit -= taken
                    out.append(CreditNote(f"{p['Id']}:{link['TxnId']}", str(p["CustomerRef"]["value"]),
                                          (p.get("CurrencyRef") or {}).get("value") or "", taken, str(link["TxnId"]),
                                          issue_date=dt.date.fromisoformat(p["TxnDate"]) if p.get("TxnDate") else None,
                                          reference=",".join(m for m, _ in memos)))
        return Changes(out, read.cursor, read.deleted, full=read.full)

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
            rec = found(self._by_ids("Customer", [customer_id], names=True).get(str(customer_id)), "Customer",
                        customer_id)
            if rec.get("Active", True) is not False:
                cust = self.to_customer(rec)
                return WriteResult(key, cust.id, cust.version, record=cust)
            unchanged_since(rec, version, "Customer")
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
        inv = found(self._by_ids("Invoice", [w.invoice_id], names=False).get(str(w.invoice_id)), "Invoice",
                    w.invoice_id)
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


XERO_API = "/api.xro/2.0"


class XeroLifecycle:
    if TYPE_CHECKING:
        provider: str

        def _contacts_by_id(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...
        def _invoices_by_id(self, ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dt.date]: ...
        def _bulk(self, method: str, path: str, collection: str, resource: str, keys: Sequence[str],
                  elements: list[dict[str, Any]], params: dict[str, Any] | None = None,
                  ) -> tuple[list[dict[str, Any] | ConnectorError], dict[str, Any]]: ...
        def to_customer(self, c: dict[str, Any]) -> AccountingCustomer: ...
        def _keyset(self, path: str, collection: str, id_field: str, cursor: str | None,
                    params: dict[str, Any]) -> tuple[list[dict[str, Any]], Any, bool, dict[str, Any]]: ...

    def read_credit_notes(self, cursor: str | None) -> Changes[CreditNote]:
        """Sales credit notes changed since the cursor, one ``CreditNote`` per invoice they are allocated to
        (id ``{credit note}:{invoice}``); a voided or deleted credit note's allocations are deletions."""
        rows, state, full, _ = self._keyset("CreditNotes", "CreditNotes", "CreditNoteID", cursor,
                                            {"where": 'Type=="ACCRECCREDIT"'})
        out, gone = [], []
        for r in rows:
            for a in r.get("Allocations") or []:
                inv = str((a.get("Invoice") or {}).get("InvoiceID") or "")
                key = f"{r['CreditNoteID']}:{inv}"
                if r.get("Status") in ("VOIDED", "DELETED"):
                    gone.append(key)
                    continue
                out.append(CreditNote(key, str((r.get("Contact") or {}).get("ContactID") or ""),
                                      r.get("CurrencyCode") or "", _dec(a.get("Amount")), inv,
                                      number=r.get("CreditNoteNumber"), status=r.get("Status"),
                                      reference=r.get("Reference") or None))
        return Changes(out, state.dump(), gone, full=full)

    def customer_fates(self, ids: Sequence[str]) -> list[RecordFate]:
        """ARCHIVED, and merged when Xero names the contact it went into (``MergedToContactID``)."""
        found = self._contacts_by_id([str(i) for i in ids])
        into = [str(c["MergedToContactID"]) for c in found.values() if c.get("MergedToContactID")]
        survivors = self._contacts_by_id(into) if into else {}
        out = []
        for cid in (str(i) for i in ids):
            c = found.get(cid)
            if c is None:
                out.append(RecordFate(cid, "missing"))
            elif c.get("MergedToContactID"):
                heir = str(c["MergedToContactID"])
                out.append(RecordFate(cid, "merged", survivor_id=heir, name=c.get("Name"),
                                      survivor_name=(survivors.get(heir) or {}).get("Name")))
            elif c.get("ContactStatus") == "ARCHIVED":
                out.append(RecordFate(cid, "archived", name=c.get("Name")))
            elif c.get("ContactStatus") == "GDPRREQUEST":
                out.append(RecordFate(cid, "deleted", name=c.get("Name")))
            else:
                out.append(RecordFate(cid, "active", name=c.get("Name")))
        return out

    def reactivate_customer(self, customer_id: str, version: str | None = None) -> WriteResult:
        """``POST /Contacts/{id}`` with ContactStatus ACTIVE; a name taken by an active contact is refused."""
        return self._contact_status(customer_id, version, "ACTIVE", f"restore:{customer_id}")

    def _contact_status(self, customer_id: str, version: str | None, status: str, key: str) -> WriteResult:
        """Archive or restore a contact (``version``, when given, must still be its UpdatedDateUTC)."""
        def go() -> WriteResult:
            now = self._contacts_by_id([customer_id]).get(customer_id)
            if now is None:
                raise NotFound("The customer no longer exists in Xero.", provider=self.provider, status=404)
            if now.get("ContactStatus") == status:
                cust = self.to_customer(now)
                return WriteResult(key, cust.id, cust.version, record=cust)
            if version and now.get("UpdatedDateUTC") != version:
                raise StaleVersion("The customer changed in Xero since it was read.", provider=self.provider)
            if status == "ACTIVE" and now.get("MergedToContactID"):
                raise ValidationRejected("Xero merged this contact into another one; link the CRM record to that "
                                         "contact instead.", field="customer", provider=self.provider)
            answers, _ = self._bulk("POST", f"{XERO_API}/Contacts/{customer_id}", "Contacts", "contact", [key],
                                    [{"ContactID": customer_id, "ContactStatus": status}])
            if isinstance(answers[0], ConnectorError):
                raise answers[0]
            cust = self.to_customer(answers[0])
            return WriteResult(key, cust.id, cust.version, record=cust)

        return _write_guard(key, customer_id, go)

    def create_credit_notes(self, writes: Sequence[CreditNoteWrite]) -> list[WriteResult]:
        return [_write_guard(w.key, w.invoice_id, lambda w=w: self._credit_note(w)) for w in writes]

    def _credit_note(self, w: CreditNoteWrite) -> WriteResult:
        rows, today = self._invoices_by_id([w.invoice_id])
        inv = rows.get(w.invoice_id)
        if inv is None:
            raise NotFound(f"Invoice {w.invoice_id} is not in Xero.", provider=self.provider, status=404)
        if inv.get("Status") in ("VOIDED", "DELETED"):
            raise ValidationRejected(f"Invoice {inv.get('InvoiceNumber')} is void: there is nothing to credit.",
                                     provider=self.provider)
        first = (inv.get("LineItems") or [{}])[0]
        line: dict[str, Any] = {"Description": w.description[:4000], "Quantity": 1, "UnitAmount": w.amount}
        for fld in ("AccountCode", "TaxType"):
            if first.get(fld):
                line[fld] = first[fld]
        el: dict[str, Any] = {"Type": "ACCRECCREDIT", "Contact": {"ContactID": inv["Contact"]["ContactID"]},
                              "Status": "AUTHORISED", "CurrencyCode": inv.get("CurrencyCode") or w.currency,
                              "LineAmountTypes": "Exclusive", "LineItems": [line],
                              "Date": (w.issue_date or today).isoformat()}
        if w.reference:
            el["Reference"] = w.reference
        answers, _ = self._bulk("PUT", f"{XERO_API}/CreditNotes", "CreditNotes", "creditnote", [w.key], [el])
        note = answers[0]
        if isinstance(note, ConnectorError):
            raise note
        total, due = _dec(note.get("Total")), _dec(inv.get("AmountDue"))
        applied = min(total, due) if inv.get("Status") == "AUTHORISED" else Decimal(0)
        if applied > 0:
            done, _ = self._bulk("PUT", f"{XERO_API}/CreditNotes/{note['CreditNoteID']}/Allocations", "Allocations",
                                 "allocation", [f"{w.key}:allocate"],
                                 [{"Amount": applied, "Invoice": {"InvoiceID": w.invoice_id},
                                   "Date": (w.issue_date or today).isoformat()}])
            if isinstance(done[0], ConnectorError):
                raise done[0]
        record = CreditNote(str(note["CreditNoteID"]), inv["Contact"]["ContactID"], note.get("CurrencyCode")
                            or w.currency, total, w.invoice_id, w.description, note.get("CreditNoteNumber"),
                            w.issue_date or today, total - applied, "PAID" if applied == total else "AUTHORISED",
                            w.reference)
        return WriteResult(w.key, record.id, note.get("UpdatedDateUTC"), record=record)


class ZohoBooksLifecycle:
    if TYPE_CHECKING:
        provider: str

        def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                  org: bool = True, resource: str = "") -> tuple[dict[str, Any], Any]: ...
        def get_customers(self, ids: Sequence[str]) -> list[AccountingCustomer]: ...
        def _changed_rows(self, path: str, key: str, id_field: str, cursor: str | None,
                          params: dict[str, Any]) -> tuple[list[dict[str, Any]], Any, float | None]: ...

    def read_credit_notes(self, cursor: str | None) -> Changes[CreditNote]:
        """Credit notes changed since the cursor (their list, then each one's invoices credited), one
        ``CreditNote`` per invoice credited (id ``{credit note}:{invoice}``); a void one's are deletions."""
        rows, state, server_now = self._changed_rows("/creditnotes", "creditnotes", "creditnote_id", cursor, {})
        out, gone = [], []
        for row in rows:
            try:
                data, _ = self._call("GET", f"/creditnotes/{row['creditnote_id']}", resource="creditnote")
            except NotFound:
                continue
            note = data["creditnote"]
            for app in note.get("invoices_credited") or []:
                key = f"{note['creditnote_id']}:{app['invoice_id']}"
                if note.get("status") == "void":
                    gone.append(key)
                    continue
                out.append(CreditNote(key, str(note.get("customer_id") or ""), note.get("currency_code") or "",
                                      _dec(app.get("amount_applied")), str(app["invoice_id"]),
                                      number=note.get("creditnote_number"), status=note.get("status"),
                                      reference=note.get("reference_number") or None))
        watermark = server_now or (state.since if state else 0.0)
        return Changes(out, _Cursor(watermark).dump(with_ids=False), gone, full=state is None)

    def customer_fates(self, ids: Sequence[str]) -> list[RecordFate]:
        """Inactive contacts are archived; Zoho Books deletes an unused contact for good (no merge trail)."""
        out = []
        for cid in (str(i) for i in ids):
            try:
                data, _ = self._call("GET", f"/contacts/{cid}", resource="contact")
            except NotFound:
                out.append(RecordFate(cid, "deleted"))
                continue
            c = data["contact"]
            inactive = (c.get("status") or "active") == "inactive"
            out.append(RecordFate(cid, "archived" if inactive else "active", name=c.get("contact_name")))
        return out

    def reactivate_customer(self, customer_id: str, version: str | None = None) -> WriteResult:
        """``POST /contacts/{id}/active``."""
        key = f"active:{customer_id}"

        def go() -> WriteResult:
            data, _ = self._call("GET", f"/contacts/{customer_id}", resource="contact")
            current = data["contact"]
            if (current.get("status") or "active") == "inactive":
                zohobooks_unchanged_since(current, version, "customer")
                self._call("POST", f"/contacts/{customer_id}/active", resource="contact")
            [cust] = self.get_customers([customer_id])
            return WriteResult(key, cust.id, cust.version, record=cust)

        return _write_guard(key, customer_id, go)

    def create_credit_notes(self, writes: Sequence[CreditNoteWrite]) -> list[WriteResult]:
        return [_write_guard(w.key, w.invoice_id, lambda w=w: self._books_credit(w)) for w in writes]

    def _books_credit(self, w: CreditNoteWrite) -> WriteResult:
        """Zoho Books has no idempotency key: the credit note carries a reference (the write's, else its key),
        and one with that reference for this customer is reused instead of made twice."""
        data, _ = self._call("GET", f"/invoices/{w.invoice_id}", resource="invoice")
        inv = data["invoice"]
        if inv.get("status") == "void":
            raise ValidationRejected(f"Invoice {inv.get('invoice_number')} is void: there is nothing to credit.",
                                     provider=self.provider)
        reference = (w.reference or w.key)[:100]
        found, _ = self._call("GET", "/creditnotes", params={"customer_id": inv["customer_id"],
                                                              "reference_number": reference}, resource="creditnote")
        notes = found.get("creditnotes") or []
        if notes:
            note = notes[0]
        else:
            first = (inv.get("line_items") or [{}])[0]
            line: dict[str, Any] = {"description": w.description[:2000], "rate": w.amount, "quantity": 1,
                                    "name": (first.get("name") or w.description)[:100]}
            if w.item_id or first.get("item_id"):
                line["item_id"] = w.item_id or first["item_id"]
            if first.get("tax_id"):
                line["tax_id"] = first["tax_id"]
            day = w.issue_date or dt.datetime.now(dt.UTC).date()  # Zoho requires the date
            body: dict[str, Any] = {"customer_id": inv["customer_id"], "reference_number": reference,
                                    "date": day.isoformat(), "line_items": [line]}
            made, _ = self._call("POST", "/creditnotes", body=body, resource="creditnote")
            note = made["creditnote"]
        total, left = _dec(note.get("total")), _dec(note.get("balance"))
        applied = min(left, _dec(inv.get("balance"))) if inv.get("status") != "draft" else Decimal(0)
        if applied > 0:
            self._call("POST", f"/creditnotes/{note['creditnote_id']}/invoices",
                       body={"invoices": [{"invoice_id": w.invoice_id, "amount_applied": applied}]},
                       resource="creditnote")
        remaining = left - applied
        record = CreditNote(str(note["creditnote_id"]), str(inv["customer_id"]), note.get("currency_code")
                            or w.currency, total, w.invoice_id, w.description, note.get("creditnote_number"),
                            dt.date.fromisoformat(note["date"]) if note.get("date") else None, remaining,
                            "closed" if remaining == 0 else "open", reference)
        return WriteResult(w.key, record.id, note.get("last_modified_time"), record=record)
