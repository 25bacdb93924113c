"""The bookkeeper's hands in the ledger: payments in and out, edits, a sale typed straight into the books.

Voids, customer edits and the counter sale go through the ledger's API (the app's connector); payments
and refunds are what the bank feed and the bookkeeper enter in the ledger's screens (the sandbox's own
helpers, the ones its tests use).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from app.connectors.base import CustomerWrite, InvoiceWrite
from app.domain.lifecycle import CreditNoteWrite
from app.domain.models import Invoice, InvoiceLine
from bench.year.crm import Refused

HOME = {"quickbooks": ("USD", "US"), "xero": ("GBP", "GB"), "zohobooks": ("GBP", "GB")}


class Ledger:
    def __init__(self, provider: str, box: Any, connector: Any) -> None:
        self.provider, self.box, self.conn = provider, box, connector
        self.currency, self.country = HOME[provider]
        self._n = 0

    def _key(self, what: str) -> str:
        self._n += 1
        return f"bookkeeper-{what}-{self._n}"

    def state(self, invoice_id: str) -> Any:
        found = self.conn.get_invoice_states([invoice_id])
        return found[0] if found else None

    def pay(self, invoice_id: str, amount: Decimal, day: dt.date) -> str:
        if self.provider == "xero":  # Xero takes payments on approved invoices only: the bookkeeper approves it
            inv = self.box.state["tenants"][self.box.default_tenant]["invoices"][invoice_id]
            if inv.get("Status") == "DRAFT":
                self.box.user_edit("invoice", invoice_id, Status="AUTHORISED")
        try:
            return str(self.box.record_payment(invoice_id, amount, day.isoformat()))
        except Exception as exc:  # the ledger's screen said no (an archived customer...)
            raise Refused(f"the ledger refused a payment on {invoice_id}: {exc}") from exc

    def refund(self, payment_id: str) -> None:
        """The payment is given back (reversed in the ledger): the invoice is owed again."""
        if self.provider == "xero":
            self.box.delete_payment_record(payment_id)
        elif self.provider == "zohobooks":
            with self.box.lock:
                org = self.box._org_of("payments", payment_id)
                self.box._drop_payment(org, self.box._books(org)["payments"][payment_id])
                self.box.persist()
        else:
            self.box.user_delete("Payment", payment_id)

    def void(self, invoice_id: str) -> bool:
        st = self.state(invoice_id)
        res = self.conn.void_invoice(invoice_id, st.version if st else None)
        return bool(res.ok)

    def credit(self, invoice_id: str, amount: Decimal, why: str) -> bool:
        """A credit note against the invoice, applied to it (the ledger's own screen; Xero wants it approved)."""
        st = self.state(invoice_id)
        if st is None:
            return False
        if self.provider == "xero" and st.invoice.status == "draft":
            self.box.user_edit("invoice", invoice_id, Status="AUTHORISED")
        if self.provider == "zohobooks" and st.invoice.status == "draft":  # a draft takes no credit: sent first
            self.box.user_edit("invoices", invoice_id, _state="sent")
        [res] = self.conn.create_credit_notes([CreditNoteWrite(self._key("credit"), st.invoice.customer_id,
                                                               self.currency, invoice_id, amount, why)])
        if not res.ok:
            raise Refused(f"the ledger refused a credit note on {invoice_id}: {res.error}")
        return True

    def edit_customer_phone(self, customer_id: str, phone: str) -> None:
        [cust] = self.conn.get_customers([customer_id])
        [res] = self.conn.update_customers([CustomerWrite(self._key("customer"), cust.party.with_fields(
            {"phone": phone}), id=customer_id, version=cust.version, display_name=cust.raw_name)])
        if not res.ok:
            raise Refused(f"the ledger refused the edit of {customer_id}: {res.error}")

    def counter_sale(self, customer_id: str, amount: Decimal, day: dt.date) -> str:
        """An invoice the bookkeeper types into the ledger for a sale the CRM never saw."""
        items = [i for i in self.conn.read_items(None).records if getattr(i, "active", True)]
        line = InvoiceLine("Walk-in repair", Decimal(1), amount, item_id=items[0].id if items else None)
        invoice = Invoice(None, customer_id, self.currency, (line,), reference=f"COUNTER-{self._n + 1}",
                          issue_date=day, due_date=day + dt.timedelta(days=30))
        [res] = self.conn.create_invoices([InvoiceWrite(self._key("invoice"), invoice)])
        if not res.ok:
            raise Refused(f"the ledger refused the counter sale: {res.error}")
        return str(res.id)
