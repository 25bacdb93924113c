"""QuickBooks Online invoices, payments and credit memos, for ``app.connectors.quickbooks.Connector``.

QBO has no invoice status: it is derived (paid = Balance 0; void = zero amounts and "Voided" in the
private note). Lines are sent so that ``Amount = Qty x UnitPrice`` to the cent; a discount is QBO's own
DiscountLineDetail where its single rounding gives the same total, else folded into the unit price and
named in the description, which reads back. Payments are one per invoice they are applied to, for the
money received (credit memos applied in the same payment are credits, not payments).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from app.connectors.base import Changes, InvoiceState, InvoiceWrite, WriteResult
from app.connectors.errors import AuthExpired, ConnectorError, NotFound, Unauthorized, ValidationRejected
from app.connectors.quickbooks_wire import (
    NAMESPACE,
    PAGE,
    found,
    parse_ts,
    unchanged_since,
)
from app.domain.models import Invoice, InvoiceLine, InvoiceStatus, Payment
from app.domain.money import CENT, HUNDRED, ZERO
from app.domain.money import decimal_or_none as _dec
from app.domain.money import money as _money
from app.domain.text import text_or_none as _text

if TYPE_CHECKING:
    from app.connectors.base import Connection
    from app.connectors.http import ApiClient

_DISCOUNT_NOTE = re.compile(r"\s\((\d+(?:\.\d+)?)% discount\)$")


class QuickBooksInvoices:
    """The invoice and payment half of the QuickBooks connector (a mixin: the calls are the connector's)."""

    if TYPE_CHECKING:
        provider: str
        conn: Connection
        api: ApiClient

        def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                  requestid: str | None = None, resource: str = "") -> tuple[dict[str, Any], Any]: ...
        def _by_ids(self, entity: str, ids: Sequence[str], names: bool) -> dict[str, dict[str, Any]]: ...
        def _changes(self, entity: str, cursor: str | None, *, names: bool) -> Any: ...
        def _run_batches(self, entity: str, resource: str,
                         prepared: list[tuple[str, dict[str, Any]] | ConnectorError], keys: list[str],
                         seed_parts: list[str]) -> list[tuple[dict[str, Any] | ConnectorError, dict[str, Any]]]: ...
        @staticmethod
        def _server_date(data: dict[str, Any]) -> dt.date: ...
        def query(self, statement: str) -> dict[str, Any]: ...
        def invoice_url(self, invoice_id: str) -> str: ...

    def to_invoice(self, i: dict[str, Any], today: dt.date | None = None) -> Invoice:
        """Status is derived: QBO has no status field (paid = Balance 0; void = zero amounts + "Voided")."""
        today = today or dt.datetime.now(dt.UTC).date()
        total, balance = _dec(i.get("TotalAmt")), _dec(i.get("Balance"))
        lines_raw = i.get("Line") or []
        subtotal = sum((_dec(li.get("Amount")) or ZERO for li in lines_raw
                        if li.get("DetailType") == "SalesItemLineDetail"), ZERO)
        invoice_pct = ZERO
        for li in lines_raw:
            if li.get("DetailType") == "DiscountLineDetail":
                detail = li.get("DiscountLineDetail") or {}
                if detail.get("PercentBased"):
                    invoice_pct = _dec(detail.get("DiscountPercent")) or ZERO
                elif subtotal:
                    invoice_pct = ((_dec(li.get("Amount")) or ZERO) * HUNDRED / subtotal).normalize()
        lines = []
        for li in lines_raw:
            if li.get("DetailType") != "SalesItemLineDetail":
                continue
            detail = li.get("SalesItemLineDetail") or {}
            amount = _dec(li.get("Amount")) or ZERO
            qty = _dec(detail.get("Qty"))
            price = _dec(detail.get("UnitPrice"))
            if qty is None:
                qty = (amount / price).normalize() if price else Decimal(1)
            if price is None:
                price = (amount / qty).normalize() if qty else amount
            description = li.get("Description") or ""
            pct = invoice_pct
            note = _DISCOUNT_NOTE.search(description)
            if note:  # a line discount we folded into the unit price: give back list price and percent
                line_pct = Decimal(note.group(1))
                description = description[: note.start()]
                if line_pct < HUNDRED:
                    price = (price * HUNDRED / (HUNDRED - line_pct)).quantize(Decimal("0.00001")).normalize()
                    if price == price.to_integral_value():
                        price = price.quantize(CENT)
                pct = line_pct
            lines.append(InvoiceLine(description=description, quantity=qty, unit_price=price, discount_percent=pct,
                                     item_id=_text((detail.get("ItemRef") or {}).get("value")),
                                     tax_code=_text((detail.get("TaxCodeRef") or {}).get("value")), amount=amount))
        due = dt.date.fromisoformat(i["DueDate"]) if i.get("DueDate") else None
        voided = (i.get("PrivateNote") or "").startswith("Voided") and not total
        status: InvoiceStatus
        if voided:
            status = "void"
        elif total is not None and balance is not None and balance <= 0:
            status = "paid"
        elif due is not None and balance and balance > 0 and due < today:
            status = "overdue"
        elif total is not None and balance is not None and balance < total:
            status = "partly_paid"
        else:
            status = "awaiting_payment"  # QBO has no drafts: a saved invoice is open
        reference = None
        for part in (i.get("PrivateNote") or "").splitlines():
            if part.strip() and not voided:
                reference = part.strip()
                break
        return Invoice(
            id=str(i["Id"]), customer_id=str((i.get("CustomerRef") or {}).get("value") or ""),
            currency=(i.get("CurrencyRef") or {}).get("value") or self.conn.extra.get("home_currency") or "",
            lines=tuple(lines), reference=reference, number=_text(i.get("DocNumber")),
            issue_date=dt.date.fromisoformat(i["TxnDate"]) if i.get("TxnDate") else None, due_date=due,
            total=total, amount_paid=(total - balance) if total is not None and balance is not None else None,
            balance=balance, status=status, updated_at=parse_ts((i.get("MetaData") or {}).get("LastUpdatedTime")),
            web_url=self.invoice_url(str(i["Id"])))

    def _lines(self, inv: Invoice) -> list[dict[str, Any]]:
        """Lines as QBO wants them: ``Amount = Qty x UnitPrice`` to the cent.

        A discount the same on every line whose QBO rounding (once, on the subtotal) gives the same total
        becomes QBO's own DiscountLineDetail. Otherwise each line's discount is folded into its unit
        price (exact to QBO's 5 decimal places) and named in its description, which reads back.
        """
        if not inv.lines:
            raise ValidationRejected("An invoice needs at least one line.", field="lines", provider=self.provider)
        pcts = {li.discount_percent for li in inv.lines}
        gross = [li.quantity * li.unit_price for li in inv.lines]
        nets = [_money(g - g * li.discount_percent / HUNDRED) for g, li in zip(gross, inv.lines, strict=True)]
        subtotal = sum((_money(g) for g in gross), ZERO)
        uniform = next(iter(pcts)) if len(pcts) == 1 else ZERO
        native = bool(uniform) and all(_money(g) == g for g in gross) and \
            subtotal - _money(subtotal * uniform / HUNDRED) == sum(nets, ZERO)
        out: list[dict[str, Any]] = []
        for li in inv.lines:
            if not li.item_id:
                raise ValidationRejected(f"The line {li.description!r} has no product in QuickBooks.",
                                         field="item", provider=self.provider)
            price, pct, description = li.unit_price, li.discount_percent, li.description or ""
            if pct and not native:
                price = li.unit_price * (HUNDRED - pct) / HUNDRED
                if price != price.quantize(Decimal("0.00001")):
                    price = price.quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP)
                description = f"{description} ({pct.normalize():f}% discount)"
            detail: dict[str, Any] = {"ItemRef": {"value": li.item_id}, "Qty": li.quantity,
                                      "UnitPrice": price.normalize() if price == price.to_integral_value()
                                      else price}
            if li.tax_code:
                detail["TaxCodeRef"] = {"value": li.tax_code}
            line: dict[str, Any] = {"DetailType": "SalesItemLineDetail", "Amount": _money(li.quantity * price),
                                    "SalesItemLineDetail": detail}
            if description:
                line["Description"] = description[:4000]
            out.append(line)
        if native:
            out.append({"DetailType": "DiscountLineDetail", "Amount": _money(subtotal * uniform / HUNDRED),
                        "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": uniform}})
        return out

    def _invoice_body(self, inv: Invoice) -> dict[str, Any]:
        body: dict[str, Any] = {"CustomerRef": {"value": inv.customer_id}, "Line": self._lines(inv)}
        if inv.currency:
            body["CurrencyRef"] = {"value": inv.currency}
        if inv.reference:
            body["PrivateNote"] = inv.reference[:4000]  # not printed for the customer; read back as reference
        if inv.number:
            body["DocNumber"] = inv.number[:21]
        if inv.issue_date:
            body["TxnDate"] = inv.issue_date.isoformat()
        if inv.due_date:
            body["DueDate"] = inv.due_date.isoformat()
        return body

    def _invoice_results(self, writes: Sequence[InvoiceWrite], index: list[int],
                         sent: list[tuple[dict[str, Any] | ConnectorError, dict[str, Any]]],
                         results: dict[int, WriteResult]) -> list[WriteResult]:
        for n, (answer, data) in zip(index, sent, strict=True):
            if isinstance(answer, ConnectorError):
                results[n] = WriteResult(writes[n].key, error=answer)
            else:
                record = self.to_invoice(answer, self._server_date(data))
                results[n] = WriteResult(writes[n].key, record.id, str(answer.get("SyncToken")), record=record)
        return [results[n] for n in range(len(writes))]

    def read_invoices(self, cursor: str | None) -> Changes[Invoice]:
        start = self.api.request_count
        read = self._changes("Invoice", cursor, names=False)
        return Changes([self.to_invoice(r, read.today) for r in read.rows], read.cursor, read.deleted, full=read.full,
                       requests=self.api.request_count - start)

    def find_invoices(self, reference: str) -> list[Invoice]:
        """Invoices whose PrivateNote is ``reference``. PrivateNote is not queryable, so newest first,
        1000 a page, until a page holds a match (a duplicate would have been made close in time)."""
        hits: list[Invoice] = []
        start = 1
        while True:
            data = self.query(f"select * from Invoice ORDERBY MetaData.CreateTime DESC STARTPOSITION {start} "  # noqa: S608 - literals go through quote()
                              f"MAXRESULTS {PAGE}")
            rows = (data.get("QueryResponse") or {}).get("Invoice") or []
            today = self._server_date(data)
            hits += [self.to_invoice(r, today) for r in rows
                     if reference in [p.strip() for p in (r.get("PrivateNote") or "").splitlines()]]
            if hits or len(rows) < PAGE:
                return hits
            start += PAGE

    def create_invoices(self, writes: Sequence[InvoiceWrite]) -> list[WriteResult]:
        """Batches of 30 under one requestid each; the reference rides in PrivateNote."""
        refused = self._align_currencies([w.invoice for w in writes])
        prepared: list[tuple[str, dict[str, Any]] | ConnectorError] = []
        for w in writes:
            try:
                if w.invoice.customer_id in refused:
                    raise refused[w.invoice.customer_id]
                prepared.append(("create", self._invoice_body(w.invoice)))
            except ConnectorError as exc:
                prepared.append(exc)
        sent = self._run_batches("Invoice", "invoice", prepared, [w.key for w in writes], [""] * len(writes))
        return self._invoice_results(writes, list(range(len(writes))), sent, {})

    def _align_currencies(self, invoices: Sequence[Invoice]) -> dict[str, ConnectorError]:
        """A QBO transaction is in its customer's currency, so make them agree before invoicing.

        A customer without transactions (typically one we just created: CRMs rarely give a currency)
        takes the invoice's currency; once it has transactions QBO refuses, and so does the invoice.
        Returns customer id -> the error for customers that cannot be invoiced in that currency.
        """
        wanted = {inv.customer_id: inv.currency for inv in invoices if inv.currency and inv.customer_id}
        if not wanted:
            return {}
        current = self._by_ids("Customer", list(wanted), names=True)
        refused: dict[str, ConnectorError] = {}
        changes: list[tuple[str, dict[str, Any]] | ConnectorError] = []
        ids: list[str] = []
        for cid, currency in wanted.items():
            rec = current.get(cid)
            had = ((rec or {}).get("CurrencyRef") or {}).get("value") or self.conn.extra.get("home_currency")
            if rec is None or had == currency:
                continue
            if not self.conn.extra.get("multicurrency", True):
                refused[cid] = ValidationRejected(
                    f"Multicurrency is off in QuickBooks, so it cannot invoice in {currency}. Turn it on under "
                    "Settings → Advanced → Currency, or change the deal's currency.", field="currency",
                    provider=self.provider)
                continue
            changes.append(("update", {"Id": cid, "SyncToken": str(rec["SyncToken"]), "sparse": True,
                                       "CurrencyRef": {"value": currency}}))
            ids.append(cid)
        sent = self._run_batches("Customer", "customer", changes, [f"currency:{cid}" for cid in ids],
                                 [f"{wanted[cid]}:{current[cid]['SyncToken']}" for cid in ids])
        for cid, (answer, _) in zip(ids, sent, strict=True):
            if isinstance(answer, ConnectorError) and str(answer.code) == "2500":  # no such currency in QBO
                refused[cid] = ValidationRejected(
                    f"QuickBooks does not have {wanted[cid]} in its currency list, so it cannot invoice in it. Add "
                    f"{wanted[cid]} under Settings → Currencies, or change the deal's currency.", field="currency",
                    provider=self.provider, status=answer.status, code=answer.code)
            elif isinstance(answer, ConnectorError):
                billed = ((current[cid].get("CurrencyRef") or {}).get("value")) or "the home currency"
                refused[cid] = ValidationRejected(
                    f"The customer is billed in {billed} and already has transactions, so QuickBooks cannot "
                    f"invoice it in {wanted[cid]}. Change the deal's currency, or bill this customer under "
                    "another customer.", field="currency", provider=self.provider, status=answer.status,
                    code=answer.code)
        return refused

    def update_invoices(self, writes: Sequence[InvoiceWrite]) -> list[WriteResult]:
        """Sparse updates (lines replaced) of invoices nothing has been paid on; QBO has no drafts, so
        "unpaid and not void" is what may still change."""
        results: dict[int, WriteResult] = {}
        current = self._by_ids("Invoice", [w.invoice.id for w in writes if w.invoice.id], names=False)
        prepared: list[tuple[str, dict[str, Any]] | ConnectorError] = []
        versions: list[str] = []
        index: list[int] = []
        for n, w in enumerate(writes):
            inv = w.invoice
            rec = current.get(str(inv.id)) if inv.id else None
            try:
                if rec is None:
                    raise NotFound(f"Invoice {inv.id} is not in QuickBooks.", provider=self.provider) if inv.id \
                        else ValidationRejected("An update needs the invoice's id.", provider=self.provider)
                now = self.to_invoice(rec)
                if now.status == "void":
                    raise ValidationRejected(f"Invoice {now.number} is void; Crossledger does not change it.",
                                             field="status", provider=self.provider)
                if now.balance != now.total:
                    raise ValidationRejected(f"Invoice {now.number} has payments applied; Crossledger only changes "
                                             "unpaid invoices.", field="status", provider=self.provider)
                unchanged_since(rec, w.version, "Invoice")
                body = {"Id": str(rec["Id"]), "SyncToken": str(rec["SyncToken"]), "sparse": True,
                        **self._invoice_body(inv)}
                body.pop("CurrencyRef", None)
                prepared.append(("update", body))
            except ConnectorError as exc:
                prepared.append(exc)
            versions.append(str((rec or {}).get("SyncToken") or ""))
            index.append(n)
        sent = self._run_batches("Invoice", "invoice", prepared, [writes[n].key for n in index], versions)
        return self._invoice_results(writes, index, sent, results)

    def get_invoice_states(self, ids: Sequence[str]) -> list[InvoiceState]:
        """Read by id. QBO has no draft: an invoice counts as sent once EmailStatus is EmailSent."""
        rows = self._by_ids("Invoice", [str(i) for i in ids], names=False)
        return [InvoiceState(self.to_invoice(rows[str(i)]), rows[str(i)].get("EmailStatus") == "EmailSent",
                             str(rows[str(i)].get("SyncToken"))) for i in ids if str(i) in rows]

    def void_invoice(self, invoice_id: str, version: str | None = None) -> WriteResult:
        """``POST /invoice?operation=void`` with Id and SyncToken: amounts become zero, the record stays."""
        key = f"void:{invoice_id}"
        try:
            rec = found(self._by_ids("Invoice", [invoice_id], names=False).get(str(invoice_id)), "Invoice",
                        invoice_id)
            if self.to_invoice(rec).status == "void":
                return WriteResult(key, str(rec["Id"]), str(rec.get("SyncToken")), record=self.to_invoice(rec))
            unchanged_since(rec, version, "Invoice")
            data, _ = self._call("POST", "/invoice", params={"operation": "void"},
                                 body={"Id": str(rec["Id"]), "SyncToken": str(rec["SyncToken"])},
                                 requestid=str(uuid.uuid5(NAMESPACE, f"void:{rec['Id']}:{rec['SyncToken']}")),
                                 resource="invoice")
        except (AuthExpired, Unauthorized):
            raise
        except ConnectorError as exc:
            return WriteResult(key, invoice_id, error=exc)
        answer = data["Invoice"]
        return WriteResult(key, str(answer["Id"]), str(answer.get("SyncToken")),
                           record=self.to_invoice(answer, self._server_date(data)))

    # -- payments and credit memos --------------------------------------------------------------
    def _payments(self, p: dict[str, Any]) -> list[Payment]:
        """One Payment per invoice a QBO payment is applied to (id ``{payment}:{invoice}``), for the money
        actually received: credit memos applied in the same payment (its CreditMemo lines) are credits, not
        payments, and are taken off its invoice lines in order (a credit applied alone is no payment at all)."""
        currency = (p.get("CurrencyRef") or {}).get("value") or self.conn.extra.get("home_currency") or ""
        when = dt.date.fromisoformat(p["TxnDate"]) if p.get("TxnDate") else dt.datetime.now(dt.UTC).date()
        recorded = parse_ts((p.get("MetaData") or {}).get("CreateTime"))
        credit = sum((_dec(line.get("Amount")) or ZERO for line in p.get("Line") or []
                      for link in line.get("LinkedTxn") or [] if link.get("TxnType") == "CreditMemo"), ZERO)
        out = []
        for line in p.get("Line") or []:
            for link in line.get("LinkedTxn") or []:
                if link.get("TxnType") == "Invoice":
                    amount = _dec(line.get("Amount")) or ZERO
                    taken = min(credit, amount)
                    credit -= taken
                    if amount - taken > 0:
                        out.append(Payment(id=f"{p['Id']}:{link['TxnId']}", invoice_id=str(link["TxnId"]),
                                           amount=amount - taken, currency=currency, date=when,
                                           recorded_at=recorded))
        return out

    def read_payments(self, cursor: str | None) -> Changes[Payment]:
        start = self.api.request_count
        read = self._changes("Payment", cursor, names=False)
        records = [pay for r in read.rows for pay in self._payments(r)]
        return Changes(records, read.cursor, read.deleted, full=read.full, requests=self.api.request_count - start)

    def read_credit_memos(self, cursor: str | None) -> Changes[Invoice]:
        """Credit memos as Invoice records: ``total`` the credit, ``balance`` the credit still unused."""
        start = self.api.request_count
        read = self._changes("CreditMemo", cursor, names=False)
        records = [self.to_invoice({**r, "Balance": r.get("RemainingCredit", r.get("Balance"))}, read.today)
                   for r in read.rows]
        return Changes(records, read.cursor, read.deleted, full=read.full, requests=self.api.request_count - start)
