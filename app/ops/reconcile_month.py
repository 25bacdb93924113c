"""Reconcile one month of a workspace: refresh what we know, flag, and write the workbook."""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.connectors import registry
from app.connectors.errors import ConnectorError
from app.connectors.tokens import TokenStore
from app.domain.models import Invoice, Payment
from app.domain.settings import WorkspaceSettings, settings_of
from app.ops import changes
from app.ops.conflicts import FIELD_LABELS, conflict_name, is_flag
from app.ops.reconcile_feed import lifecycle_feed, recorded_at
from app.ops.status import RECONCILE
from app.ops.workspace_settings import load
from app.ops.workspaces import UserError, get_workspace, open_connectors
from app.reconcile.engine import HeldRecord, MonthData, Report, reconcile
from app.store.db import Store
from app.store.models import ConflictRow, Link, Mirror, Quarantine, Reconciliation, Run, utcnow
from app.store.serial import deal_from_json, party_from
from app.sync.engine import Cancelled, SyncEngine
from app.sync.invoice_plan import STATUS_WORDS


@dataclass
class ReconcileResult:
    workspace: str
    month: str
    report: Report
    path: Path | None
    stale: str | None = None  # why both sides could not be read again first, if they could not
    crm_label: str = "CRM"
    ledger_label: str = "Ledger"

    def write(self, path: str | Path) -> Path:
        """The workbook for this result (the GUI's Export to Excel)."""
        from app.reconcile.workbook import write_workbook  # openpyxl: imported when a workbook is written

        return write_workbook(self.report, path, workspace=self.workspace, crm_label=self.crm_label,
                              ledger_label=self.ledger_label)

    def to_json(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace, "month": self.month, "workbook": str(self.path) if self.path else None,
            "stale": self.stale,
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


def _url(connector: Any, method: str, *args: str) -> str | None:
    """A record's address in its provider's web app; None when the connector cannot tell."""
    if connector is None or not hasattr(connector, method):
        return None
    try:
        return getattr(connector, method)(*args) or None
    except (ConnectorError, KeyError, ValueError):  # an unknown record type, or the provider is unreachable
        return None


def _held_url(crm: Any, acct: Any, side: str, record_type: str, record_id: str) -> str | None:
    if side == "crm":
        return _url(crm, "record_url", record_type, record_id)
    return _url(acct, "customer_url", record_id) if record_type == "customer" else None


def month_data(store: Store, workspace_id: int, month: str, crm: Any = None, acct: Any = None) -> MonthData:
    with store.session() as s:
        def rows(side: str, otype: str) -> list[Mirror]:
            return list(s.scalars(select(Mirror).where(Mirror.workspace_id == workspace_id, Mirror.side == side,
                                                       Mirror.object_type == otype)))

        deals = [deal_from_json(m.remote_id, m.data) for m in rows("crm", "deal")]
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
                            currency_of.get(m.data.get("invoice_id"), ""), _date(m.data.get("date")),
                            recorded_at(m.data))
                    for m in rows("accounting", "payment")]
        customers, names = {}, {}
        for m in rows("accounting", "customer"):
            names[m.remote_id] = m.data.get("raw_name") or m.data.get("name") or m.remote_id
            if not m.archived:
                customers[m.remote_id] = party_from(m.data)
        links = list(s.scalars(select(Link).where(Link.workspace_id == workspace_id)))
        held = [HeldRecord(q.record_type, q.record_id, q.name,
                           " ".join(i["message"] for i in q.reasons.get("items", [])), q.side,
                           _held_url(crm, acct, q.side, q.record_type, q.record_id))
                for q in s.scalars(select(Quarantine).where(Quarantine.workspace_id == workspace_id))]
        record_names = {(lk.crm_type, lk.crm_id): (lk.snapshot or {}).get("crm", {}).get("name") for lk in links}
        held += [HeldRecord(c.crm_type, c.crm_id, conflict_name(c, record_names, names),
                            f"to look at on the Review page: {c.acct_value}" if is_flag(c.field) else
                            f"open conflict on {FIELD_LABELS.get(c.field, c.field).lower()}: CRM "
                            f"'{c.crm_value}', ledger '{c.acct_value}'", "crm",
                            _held_url(crm, acct, "crm", c.crm_type, c.crm_id))
                 for c in s.scalars(select(ConflictRow).where(ConflictRow.workspace_id == workspace_id,
                                                               ConflictRow.outcome == "open"))]
        feed = lifecycle_feed(s, workspace_id, links)
        link_types = {lk.crm_id: lk.crm_type for lk in links if lk.object_type == "customer"}
    return MonthData(
        month=month, deals=deals, invoices=invoices, payments=payments, customers=customers, customer_names=names,
        deal_invoice={lk.crm_id: lk.acct_id for lk in links if lk.object_type == "invoice"},
        # a deal's company_id names a company: where a CRM numbers its people and companies alike
        # (Pipedrive's person 23 and organization 23), the company's link wins
        company_customer={lk.crm_id: lk.acct_id for lk in sorted(links, key=lambda lk: lk.crm_type == "company")
                          if lk.object_type == "customer"},
        customer_records=_customer_records(links),
        deal_status_written={lk.crm_id: (lk.snapshot or {}).get("written", {}).get("crossledger_invoice_status")
                             for lk in links if lk.object_type == "invoice"
                             and (lk.snapshot or {}).get("written")},
        deleted_invoices=deleted, held=held,
        crm_url=lambda i: _url(crm, "record_url", "deal", i),
        acct_url=lambda i: _url(acct, "invoice_url", i),
        customer_url=lambda i: _url(acct, "customer_url", i),
        company_url=lambda i: _url(crm, "record_url", link_types.get(i, "company"), i),
        status_words=STATUS_WORDS, **feed,
    )


def reconcile_workspace(store: Store, tokens: TokenStore, name: str, month: str, out: str | Path | None,
                        *, refresh: bool = True, progress: Any = None,
                        cancel: threading.Event | None = None, trigger: str = "manual") -> ReconcileResult:
    """Flag one month's discrepancies, after reading both sides again (a dry run: nothing is written).

    ``cancel`` stops the refresh between steps and raises ``Cancelled``; nothing is written either way.
    """
    check_month(month)
    if out and (problem := out_problem(out)):
        raise UserError(problem)
    ws = get_workspace(store, name)
    crm, acct = open_connectors(store, tokens, ws)
    with store.session() as s:
        row = Reconciliation(workspace_id=ws.id, month=month, trigger=trigger)
        s.add(row)
        s.flush()
        rec_id = row.id
    outcome: dict[str, Any] = {"status": "failed"}
    try:
        stale = None
        if refresh:  # bring our picture of both sides up to date without writing anything
            run = SyncEngine(store, ws.id, crm, acct, trigger=RECONCILE, dry_run=True, progress=progress,
                             cancel=cancel).run()
            if run.run_id is not None:  # a reconciliation is not a sync: it keeps its own history
                _forget_run(store, run.run_id)
            if run.status == "cancelled":
                outcome["status"] = "cancelled"
                raise Cancelled()
            if run.status == "failed":
                stale = " ".join(run.errors[:1]) or "A provider could not be read."
        if cancel is not None and cancel.is_set():
            outcome["status"] = "cancelled"
            raise Cancelled()
        if progress:
            progress("Checking the month", 0, 1)
        report = reconcile(month_data(store, ws.id, month, crm, acct))
        result = ReconcileResult(ws.name, month, report, None, stale, registry.info(ws.crm).label,
                                 registry.info(ws.accounting).label)
        if out:
            try:
                result.path = result.write(Path(out).expanduser())
            except OSError as exc:
                raise UserError(f"The workbook could not be saved to {out} ({(exc.strerror or str(exc)).lower()}). "
                                "Choose a folder you can save files in.") from None
        outcome = {"status": "stale" if stale else "ok", "message": stale,
                   "workbook": str(result.path) if result.path else None,
                   "counts": {**report.counts(), "discrepancies": len(report.discrepancies),
                              "money": len(report.money), "set_apart": len(report.set_apart)}}
        return result
    except Exception as exc:
        if outcome["status"] == "failed":
            outcome["message"] = str(exc)[:500]
        raise
    finally:
        crm.close()
        acct.close()
        with store.session() as s:
            done = s.get(Reconciliation, rec_id)
            if done is not None:
                done.status = outcome["status"]
                done.message = outcome.get("message")
                done.workbook = outcome.get("workbook")
                done.counts = outcome.get("counts") or {}
                done.finished_at = utcnow()
        changes.announce(store, ws.id, changes.RECONCILIATIONS)


def _forget_run(store: Store, run_id: int) -> None:
    """Drop the dry-run sync the refresh recorded: it wrote nothing, and it must not count as the last sync."""
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is not None and run.dry_run and run.trigger == RECONCILE:
            s.delete(run)


@dataclass(frozen=True, slots=True)
class ReconcileRow:
    """One past reconciliation, for the Reconcile page's history."""

    month: str | None
    trigger: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    counts: dict[str, int]
    workbook: str | None


def history(store: Store, name: str, limit: int = 12) -> list[ReconcileRow]:
    """The workspace's reconciliations, newest first."""
    ws = get_workspace(store, name)
    with store.session() as s:
        rows = s.scalars(select(Reconciliation).where(Reconciliation.workspace_id == ws.id)
                         .order_by(Reconciliation.id.desc()).limit(limit))
        return [ReconcileRow(r.month, r.trigger, r.status, r.started_at, r.finished_at, dict(r.counts or {}),
                             r.workbook) for r in rows]


def check_month(month: str) -> None:
    """UserError unless ``month`` is YYYY-MM of a year a ledger can hold (1900 to 2999)."""
    try:
        ok = bool(re.fullmatch(r"\d{4}-\d{2}", month)) and dt.date.fromisoformat(month + "-01") is not None
    except ValueError:
        ok = False
    if not ok:
        raise UserError(f"'{month}' is not a month. Write it as YYYY-MM, for example 2026-10.")
    if not 1900 <= int(month[:4]) <= 2999:
        raise UserError(f"{month} is outside the years Crossledger reconciles (1900 to 2999). Check the year.")


def out_problem(out: str | Path) -> str | None:
    """Why a workbook could not be written to ``out``, in plain words; None when it can (folders are made)."""
    path = Path(out).expanduser()
    if path.is_dir():
        return f"{path} is a folder. Give a file name inside it, for example {path / 'reconciliation.xlsx'}."
    if not path.name or path.name in (".", ".."):
        return f"'{out}' is not a file name. Give one ending in .xlsx, for example reconciliation.xlsx."
    folder = path.parent
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, so the workbook cannot go under it. Give a path in a folder."
    return folder_problem(str(folder.absolute()), made="workbook")


def last_month(today: dt.date) -> str:
    """The month before ``today``'s, as YYYY-MM: what a monthly report covers by default."""
    return (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


def report_folder(settings: WorkspaceSettings | Mapping[str, Any] | None) -> Path:
    """Where the monthly workbooks go: the workspace's ``report_folder`` setting, else reports/ in the data folder."""
    from app.store.db import default_home

    return Path(settings_of(settings).report_folder or default_home() / "reports").expanduser()


def scheduled(store: Store, tokens: TokenStore, name: str, *, today: dt.date | None = None) -> ReconcileResult:
    """The monthly job: last month's report into the workspace's report folder."""
    last = last_month(today or dt.datetime.now(dt.UTC).date())
    ws = get_workspace(store, name)
    folder = report_folder(load(store, ws.name))
    return reconcile_workspace(store, tokens, name, last, folder / f"{name}-reconciliation-{last}.xlsx",
                               trigger="schedule")


def folder_problem(text: str, made: str = "reports folder") -> str | None:
    """Why monthly workbooks could not be written to ``text`` (made if missing), in plain words; None if fine."""
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        return f"'{text}' is not a full folder path. Give the whole path, e.g. /home/you/Reports."
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder. Give a folder for the workbooks (it is made if missing)."
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".crossledger-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = f"the reports folder {folder}" if made == "reports folder" else f"{folder}"
        return (f"Crossledger cannot write to {where} ({(exc.strerror or str(exc)).lower()}). Choose a "
                "folder you can save files in.")
    return None


def _customer_records(links: list) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for lk in links:
        if lk.object_type == "customer":
            out.setdefault(lk.acct_id, []).append((lk.crm_type, lk.crm_id))
    return out
