"""Reconcile one month of a workspace: refresh what we know, flag, and write the workbook."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.connectors import registry
from app.connectors.tokens import TokenStore
from app.domain.models import Invoice, Payment
from app.ops.workspaces import get_workspace, open_connectors
from app.reconcile.engine import HeldRecord, MonthData, Report, reconcile
from app.reconcile.workbook import write_workbook
from app.store.db import Store
from app.store.models import ConflictRow, Link, Mirror, Quarantine
from app.sync.engine import SyncEngine, _party_from
from app.sync.invoices import STATUS_WORDS, _deal_from_json


@dataclass
class ReconcileResult:
    workspace: str
    month: str
    report: Report
    path: Path | None

    def to_json(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace, "month": self.month, "workbook": str(self.path) if self.path else None,
            "discrepancies": len(self.report.discrepancies), "by_kind": self.report.counts(),
            "crm_totals": {k: str(v) for k, v in self.report.crm_totals.items()},
            "ledger_totals": {k: str(v) for k, v in self.report.ledger_totals.items()},
            "items": [{"kind": d.kind, "severity": d.severity, "explanation": d.explanation, "crm_id": d.crm_id,
                       "acct_id": d.acct_id} for d in self.report.discrepancies],
        }


def _dec(value: Any) -> Decimal | None:
    return Decimal(value) if value not in (None, "") else None


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def month_data(store: Store, workspace_id: int, month: str, crm: Any = None, acct: Any = None) -> MonthData:
    with store.session() as s:
        def rows(side: str, otype: str) -> list[Mirror]:
            return list(s.scalars(select(Mirror).where(Mirror.workspace_id == workspace_id, Mirror.side == side,
                                                       Mirror.object_type == otype)))

        deals = [_deal_from_json(m.remote_id, m.data) for m in rows("crm", "deal")]
        invoices, deleted = [], set()
        for m in rows("accounting", "invoice"):
            d = m.data
            if d.get("deleted"):
                deleted.add(m.remote_id)
            invoices.append(Invoice(m.remote_id, d.get("customer_id") or "", d.get("currency") or "", (),
                                    reference=d.get("reference"), number=d.get("number"),
                                    issue_date=_date(d.get("issue_date")), due_date=_date(d.get("due_date")),
                                    total=_dec(d.get("total")), amount_paid=_dec(d.get("amount_paid")),
                                    balance=_dec(d.get("balance")), status=d.get("status"), web_url=d.get("web_url")))
        currency_of = {i.id: i.currency for i in invoices}
        payments = [Payment(m.remote_id, m.data.get("invoice_id"), Decimal(m.data.get("amount") or 0),
                            currency_of.get(m.data.get("invoice_id"), ""), _date(m.data.get("date")))
                    for m in rows("accounting", "payment")]
        customers, names = {}, {}
        for m in rows("accounting", "customer"):
            names[m.remote_id] = m.data.get("raw_name") or m.data.get("name") or m.remote_id
            if not m.archived:
                customers[m.remote_id] = _party_from(m.data)
        links = list(s.scalars(select(Link).where(Link.workspace_id == workspace_id)))
        held = [HeldRecord(q.record_type, q.record_id, q.name,
                           " ".join(i["message"] for i in q.reasons.get("items", [])))
                for q in s.scalars(select(Quarantine).where(Quarantine.workspace_id == workspace_id))]
        held += [HeldRecord(c.crm_type, c.crm_id, c.crm_value or c.crm_id,
                            f"open conflict on {c.field}: CRM '{c.crm_value}', ledger '{c.acct_value}'")
                 for c in s.scalars(select(ConflictRow).where(ConflictRow.workspace_id == workspace_id,
                                                               ConflictRow.outcome == "open"))]
    return MonthData(
        month=month, deals=deals, invoices=invoices, payments=payments, customers=customers, customer_names=names,
        deal_invoice={lk.crm_id: lk.acct_id for lk in links if lk.object_type == "invoice"},
        company_customer={lk.crm_id: lk.acct_id for lk in links if lk.object_type == "customer"},
        deal_status_written={lk.crm_id: (lk.snapshot or {}).get("written", {}).get("crossledger_invoice_status")
                             for lk in links if lk.object_type == "invoice"
                             and (lk.snapshot or {}).get("written")},
        deleted_invoices=deleted, held=held,
        crm_url=(lambda i: crm.record_url("deal", i)) if crm is not None else (lambda i: None),
        acct_url=(lambda i: acct.invoice_url(i)) if acct is not None else (lambda i: None),
        status_words=STATUS_WORDS,
    )


def reconcile_workspace(store: Store, tokens: TokenStore, name: str, month: str, out: str | Path | None,
                        *, refresh: bool = True, progress: Any = None) -> ReconcileResult:
    try:
        dt.date.fromisoformat(month + "-01")
    except ValueError:
        from app.ops.workspaces import UserError

        raise UserError(f"'{month}' is not a month. Write it as YYYY-MM, for example 2026-10.") from None
    ws = get_workspace(store, name)
    crm, acct = open_connectors(store, tokens, ws)
    try:
        if refresh:  # bring our picture of both sides up to date without writing anything
            SyncEngine(store, ws.id, crm, acct, trigger="reconcile", dry_run=True, progress=progress).run()
        report = reconcile(month_data(store, ws.id, month, crm, acct))
        path = None
        if out:
            path = write_workbook(report, out, workspace=ws.name, crm_label=registry.info(ws.crm).label,
                                  ledger_label=registry.info(ws.accounting).label)
        return ReconcileResult(ws.name, month, report, path)
    finally:
        crm.close()
        acct.close()


def scheduled(store: Store, tokens: TokenStore, name: str) -> ReconcileResult:
    """The monthly job: last month's report into the workspace's report folder."""
    today = dt.datetime.now(dt.UTC).date()
    last = (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    ws = get_workspace(store, name)
    folder = Path(ws.settings.get("report_folder") or Path(os.environ.get("CROSSLEDGER_HOME", ".")) / "reports")
    return reconcile_workspace(store, tokens, name, last, folder / f"{name}-reconciliation-{last}.xlsx")
