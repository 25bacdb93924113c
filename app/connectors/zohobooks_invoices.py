"""Zoho Books invoices and customer payments, for ``app.connectors.zohobooks.Connector``.

An invoice's status is Zoho's own, mapped to ours (``STATUS``); overdue is worked out again from the due
date when a summary lags. Line discounts go as item-level percentages. A customer's currency is set
before its first invoice in another currency. Payments are read from the change filter and each one's
detail fetched once per change (what it was applied to is not in the list).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from app.connectors.base import Changes, InvoiceState, InvoiceWrite, WriteResult
from app.connectors.errors import (
    AuthExpired,
    ConnectorError,
    NotFound,
    Unauthorized,
    ValidationRejected,
)
from app.connectors.zohobooks_wire import (
    _PCT,
    CACHE_MAX,
    STATUS,
    _Cursor,
    one_by_one,
    parse_ts,
    unchanged_since,
)
from app.domain.models import Invoice, InvoiceLine, Payment
from app.domain.money import decimal_or_none as _dec
from app.domain.text import text_or_none as _text

if TYPE_CHECKING:
    import httpx

    from app.connectors.base import Connection
    from app.connectors.http import ApiClient


class ZohoBooksInvoices:
    """The invoice and payment half of the Zoho Books connector (a mixin: the calls are the connector's)."""

    if TYPE_CHECKING:
        provider: str
        conn: Connection
        api: ApiClient
        _details: dict[str, tuple[str, dict[str, Any]]]
        _payment_details: dict[str, tuple[str, dict[str, Any]]]

        def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                  org: bool = True, resource: str = "") -> tuple[dict[str, Any], httpx.Response]: ...
        def _pages(self, path: str, key: str, params: dict[str, Any],
                   first: list[httpx.Response] | None = None) -> Iterator[list[dict[str, Any]]]: ...
        def _listed(self, path: str, key: str, id_field: str, ids: Sequence[str],
                    params: dict[str, Any]) -> dict[str, dict[str, Any]]: ...
        def _create(self, path: str, resource: str, body: dict[str, Any],
                    settle: Callable[[], dict[str, Any] | None],
                    params: dict[str, Any] | None = None) -> dict[str, Any]: ...
        def _remember(self, contact: dict[str, Any]) -> dict[str, Any]: ...
        def _changed_rows(self, path: str, key: str, id_field: str, cursor: str | None,
                          params: dict[str, Any]) -> tuple[list[dict[str, Any]], _Cursor | None, float | None]: ...
        @staticmethod
        def _server_time(resp: httpx.Response | None) -> float | None: ...
        def currency_ids(self) -> dict[str, str]: ...
        def invoice_url(self, invoice_id: str) -> str: ...

    def to_invoice(self, i: dict[str, Any]) -> Invoice:
        total, balance = _dec(i.get("total")), _dec(i.get("balance"))
        status = STATUS.get(i.get("status") or "", "awaiting_payment")
        due = dt.date.fromisoformat(i["due_date"]) if i.get("due_date") else None
        if status == "awaiting_payment" and due and balance and balance > 0 and due < dt.datetime.now(dt.UTC).date():
            status = "overdue"  # Zoho computes overdue; a summary read before the due date may lag
        lines = []
        for li in i.get("line_items") or []:
            qty, rate = _dec(li.get("quantity")) or Decimal(0), _dec(li.get("rate")) or Decimal(0)
            discount = li.get("discount")
            pct = _PCT.match(discount) if isinstance(discount, str) else None
            if pct:
                percent = Decimal(pct.group(1))
            else:
                amount = _dec(discount) or Decimal(0)
                gross = qty * rate
                percent = (amount * 100 / gross).normalize() if amount and gross else Decimal(0)
            lines.append(InvoiceLine(description=li.get("description") or li.get("name") or "", quantity=qty,
                                     unit_price=rate, discount_percent=percent, item_id=_text(li.get("item_id")),
                                     tax_code=_text(li.get("tax_id")), amount=_dec(li.get("item_total"))))
        return Invoice(
            id=str(i["invoice_id"]), customer_id=str(i.get("customer_id") or ""), currency=i.get("currency_code") or "",
            lines=tuple(lines), reference=_text(i.get("reference_number")), number=_text(i.get("invoice_number")),
            issue_date=dt.date.fromisoformat(i["date"]) if i.get("date") else None, due_date=due,
            total=total, amount_paid=(total - balance) if total is not None and balance is not None else None,
            balance=balance, status=status, updated_at=parse_ts(i.get("last_modified_time")),
            web_url=self.invoice_url(str(i["invoice_id"])))

    def _invoice_body(self, inv: Invoice) -> dict[str, Any]:
        lines = []
        for li in inv.lines:
            line: dict[str, Any] = {"description": li.description, "quantity": li.quantity, "rate": li.unit_price}
            if li.item_id:
                line["item_id"] = li.item_id
            else:
                line["name"] = li.description
            if li.discount_percent:
                line["discount"] = f"{li.discount_percent.normalize():f}%"
            if li.tax_code:
                line["tax_id"] = li.tax_code
            lines.append(line)
        body: dict[str, Any] = {"customer_id": inv.customer_id, "line_items": lines, "discount_type": "item_level",
                                "is_inclusive_tax": False}
        if inv.reference:
            body["reference_number"] = inv.reference
        if inv.issue_date:
            body["date"] = inv.issue_date.isoformat()
        if inv.due_date:
            body["due_date"] = inv.due_date.isoformat()
        return body

    def read_invoices(self, cursor: str | None) -> Changes[Invoice]:
        start = self.api.request_count
        rows, state, server_now = self._changed_rows("/invoices", "invoices", "invoice_id", cursor,
                                                     {"filter_by": "Status.All"})
        records = [self.to_invoice(r) for r in rows]
        watermark = server_now or max((r.updated_at.timestamp() for r in records if r.updated_at),
                                      default=state.since if state else 0.0)
        return Changes(records, _Cursor(watermark).dump(with_ids=False), full=state is None,
                       requests=self.api.request_count - start)

    def find_invoices(self, reference: str) -> list[Invoice]:
        data, _ = self._call("GET", "/invoices", params={"reference_number": reference, "filter_by": "Status.All"})
        return [self.to_invoice(r) for r in data.get("invoices") or [] if r.get("reference_number") == reference]

    def create_invoices(self, writes: Sequence[InvoiceWrite]) -> list[WriteResult]:
        """One POST per invoice, stamped with ``reference_number``; a lost answer is settled by it."""
        def create(w: InvoiceWrite) -> WriteResult:
            inv = w.invoice
            self._ensure_currency(inv)
            body = self._invoice_body(inv)
            made = self._create("/invoices", "invoice", body, functools.partial(self._settle_invoice, inv.reference))
            if inv.status == "awaiting_payment" and made.get("status") == "draft":
                self._call("POST", f"/invoices/{made['invoice_id']}/status/sent", resource="invoice")
                data, _ = self._call("GET", f"/invoices/{made['invoice_id']}", resource="invoice")
                made = data["invoice"]
            record = self.to_invoice(made)
            return WriteResult(w.key, record.id, made.get("last_modified_time"), record=record)
        return one_by_one(writes, create)

    def get_invoice_states(self, ids: Sequence[str]) -> list[InvoiceState]:
        """Sent = any status past draft (sent, viewed, overdue, paid ...), void excepted.

        Many ids are read from the invoice list's pages (status, totals, balance and version are on the
        summary; its lines are not, and no state needs them); the rest with one GET each.
        """
        rows = self._listed("/invoices", "invoices", "invoice_id", ids, {"filter_by": "Status.All"})
        out = []
        for invoice_id in dict.fromkeys(str(i) for i in ids):
            raw = rows.get(invoice_id)
            if raw is None:
                try:
                    data, _ = self._call("GET", f"/invoices/{invoice_id}", resource="invoice")
                except NotFound:
                    continue
                raw = data["invoice"]
            out.append(InvoiceState(self.to_invoice(raw), (raw.get("status") or "draft") not in ("draft", "void"),
                                    _text(raw.get("last_modified_time"))))
        return out

    def void_invoice(self, invoice_id: str, version: str | None = None) -> WriteResult:
        """``POST /invoices/{id}/status/void``; Zoho refuses an invoice with payments."""
        key = f"void:{invoice_id}"
        try:
            data, _ = self._call("GET", f"/invoices/{invoice_id}", resource="invoice")
            raw = data["invoice"]
            if raw.get("status") == "void":
                return WriteResult(key, invoice_id, _text(raw.get("last_modified_time")), record=self.to_invoice(raw))
            unchanged_since(raw, version, "invoice")
            self._call("POST", f"/invoices/{invoice_id}/status/void", resource="invoice")
            data, _ = self._call("GET", f"/invoices/{invoice_id}", resource="invoice")
        except (AuthExpired, Unauthorized):
            raise
        except ConnectorError as exc:
            return WriteResult(key, invoice_id, error=exc)
        raw = data["invoice"]
        return WriteResult(key, invoice_id, _text(raw.get("last_modified_time")), record=self.to_invoice(raw))

    def _ensure_currency(self, inv: Invoice) -> None:
        """A Zoho invoice is always in its customer's currency, so make them agree before creating it.

        A customer without transactions (one we just created: the CRM gives no currency) takes the
        invoice's currency; once it has transactions Zoho refuses, and so does this invoice.
        """
        if not inv.currency:
            return
        cached = self._details.get(inv.customer_id)
        if cached is None:
            data, _ = self._call("GET", f"/contacts/{inv.customer_id}", resource="contact")
            cached = ("", self._remember(data["contact"]))
        billed = cached[1].get("currency_code")
        if billed == inv.currency:
            return
        currency_id = self.currency_ids().get(inv.currency)
        if currency_id is None:
            raise ValidationRejected(f"Zoho Books has no {inv.currency} currency. Add it under Settings → "
                                     "Currencies, then sync again.", field="currency", provider=self.provider)
        try:
            data, _ = self._call("PUT", f"/contacts/{inv.customer_id}", body={"currency_id": currency_id},
                                 resource="contact")
        except ValidationRejected as exc:
            raise ValidationRejected(
                f"The customer is billed in {billed} and already has transactions, so Zoho Books cannot invoice "
                f"it in {inv.currency}. Change the deal's currency, or bill this customer under another contact.",
                field="currency", provider=self.provider, status=exc.status, code=exc.code) from exc
        self._remember(data["contact"])

    def _settle_invoice(self, reference: str | None) -> dict[str, Any] | None:
        if not reference:
            return None
        hits = self.find_invoices(reference)
        if not hits:
            return None
        data, _ = self._call("GET", f"/invoices/{hits[0].id}", resource="invoice")
        return data["invoice"]

    def update_invoices(self, writes: Sequence[InvoiceWrite]) -> list[WriteResult]:
        """Only drafts are changed; ``version`` (last_modified_time) guards against a concurrent edit."""
        results: list[WriteResult] = []
        for w in writes:
            inv = w.invoice
            try:
                if not inv.id:
                    raise ValidationRejected("An update needs the invoice's id.", provider=self.provider)
                data, _ = self._call("GET", f"/invoices/{inv.id}", resource="invoice")
                current = data["invoice"]
                if current.get("status") != "draft":
                    raise ValidationRejected(
                        f"Invoice {current.get('invoice_number')} is {current.get('status')}, not a draft; "
                        "Crossledger only changes draft invoices.", field="status", provider=self.provider)
                unchanged_since(current, w.version, "invoice")
                data, _ = self._call("PUT", f"/invoices/{inv.id}", body=self._invoice_body(inv), resource="invoice")
                record = self.to_invoice(data["invoice"])
                results.append(WriteResult(w.key, record.id, data["invoice"].get("last_modified_time"), record=record))
            except (AuthExpired, Unauthorized):
                raise
            except ConnectorError as exc:
                results.append(WriteResult(w.key, error=exc))
        return results

    # -- payments -------------------------------------------------------------------------------
    def read_payments(self, cursor: str | None) -> Changes[Payment]:
        """Changed customer payments; each invoice a payment was applied to is one Payment."""
        start = self.api.request_count
        rows, state, server_now = self._changed_rows("/customerpayments", "customerpayments", "payment_id", cursor, {})
        records: list[Payment] = []
        for row in rows:
            pid, lmt = str(row["payment_id"]), row.get("last_modified_time") or ""
            cached = self._payment_details.get(pid)
            if cached and cached[0] == lmt:
                detail = cached[1]
            else:
                try:
                    data, _ = self._call("GET", f"/customerpayments/{pid}")
                except NotFound:
                    continue
                detail = data["payment"]
                if len(self._payment_details) >= CACHE_MAX:
                    self._payment_details.clear()
                self._payment_details[pid] = (lmt, detail)
            when = dt.date.fromisoformat(detail["date"])
            for app in detail.get("invoices") or []:
                records.append(Payment(
                    id=str(app.get("invoice_payment_id") or f"{pid}:{app['invoice_id']}"),
                    invoice_id=str(app["invoice_id"]), amount=_dec(app.get("amount_applied")) or Decimal(0),
                    currency=detail.get("currency_code") or "", date=when))
        watermark = server_now or (state.since if state else 0.0)
        return Changes(records, _Cursor(watermark).dump(with_ids=False), full=state is None,
                       requests=self.api.request_count - start)
