"""Reconciliation: exactly one flag per planted discrepancy, none on clean records; the workbook."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from decimal import Decimal as D

import openpyxl
import pytest

from app.domain.models import Deal, Invoice, LineItem, Party, Payment
from app.reconcile.engine import HeldRecord, MonthData, reconcile
from app.reconcile.workbook import write_workbook
from app.sync.invoices import STATUS_WORDS

NOV = dt.date(2026, 11, 10)


def deal(i: str, amount: str, *, won=True, cur="USD", company="c1", date=NOV) -> Deal:
    return Deal(i, f"Deal {i}", won, cur, close_date=date, company_id=company,
                line_items=(LineItem("Consulting", D(1), D(amount)),))


def inv(i: str, total: str, *, cur="USD", cust="L1", status="awaiting_payment", date=NOV) -> Invoice:
    return Invoice(i, cust, cur, (), number=f"INV-{i}", issue_date=date, total=D(total), status=status,
                   balance=D(total), amount_paid=D(0))


def data() -> MonthData:
    deals = [deal("clean", "100.00"), deal("noinv", "250.00"), deal("amount", "300.00"), deal("cur", "40.00"),
             deal("cust", "50.00"), deal("status", "60.00"), deal("void", "70.00"),
             deal("october", "999.00", date=dt.date(2026, 10, 30)), deal("lost", "5.00", won=False)]
    invoices = [inv("i-clean", "100.00"), inv("i-amount", "299.00"), inv("i-cur", "40.00", cur="EUR"),
                inv("i-cust", "50.00", cust="L2"), inv("i-status", "60.00", status="paid"),
                inv("i-void", "0.00", status="void"), inv("i-orphan", "12.50", cust="L2")]
    customers = {"L1": Party("company", "Maple Ltd", email="a@maple.co"),
                 "L2": Party("company", "Cedar Ltd", email="c@cedar.co"),
                 "L3": Party("company", "MAPLE LIMITED", email="other@maple.co")}
    return MonthData(
        month="2026-11", deals=deals, invoices=invoices,
        payments=[Payment("p1", "i-status", D("60.00"), "USD", NOV)], customers=customers,
        customer_names={"L1": "Maple Ltd", "L2": "Cedar Ltd", "L3": "MAPLE LIMITED"},
        deal_invoice={"clean": "i-clean", "amount": "i-amount", "cur": "i-cur", "cust": "i-cust",
                      "status": "i-status", "void": "i-void"},
        company_customer={"c1": "L1"},
        deal_status_written={"clean": "Awaiting payment", "status": "Awaiting payment"},
        held=[HeldRecord("company", "c9", "Bad Email Ltd", "The email address 'x@@y' is not valid.")],
        status_words=STATUS_WORDS, crm_url=lambda i: f"https://crm.example/deal/{i}",
        acct_url=lambda i: f"https://ledger.example/inv/{i}")


def test_each_planted_discrepancy_is_flagged_exactly_once_and_clean_records_never():
    report = reconcile(data())
    assert report.counts() == {"won_without_invoice": 1, "amount_mismatch": 1, "currency_mismatch": 1,
                               "customer_mismatch": 1, "payment_status_mismatch": 1, "void_while_won": 1,
                               "invoice_without_deal": 1, "duplicate_customer": 1, "held_back": 1}
    flagged = {d.crm_id for d in report.discrepancies}
    assert "clean" not in flagged and "october" not in flagged and "lost" not in flagged
    assert report.crm_totals == {"USD": D("870.00")}
    assert report.ledger_totals == {"USD": D("521.50"), "EUR": D("40.00")}
    amount = next(d for d in report.discrepancies if d.kind == "amount_mismatch")
    assert "300.00" in amount.explanation and "299.00" in amount.explanation
    assert report.discrepancies[0].severity == "high"


def test_workbook_has_live_formulas_links_and_text_that_cannot_run(tmp_path):
    d = data()
    d.deals.append(Deal("evil", '=HYPERLINK("http://x","click")', True, "USD", close_date=NOV,
                        line_items=(LineItem("x", D(1), D(1)),)))
    report = reconcile(d)
    path = write_workbook(report, tmp_path / "r.xlsx", workspace="Acme", crm_label="HubSpot",
                          ledger_label="QuickBooks Online")
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Summary", "Discrepancies", "Deals", "Invoices", "Payments"]
    summary = wb["Summary"]
    formulas = [c.value for row in summary.iter_rows() for c in row if isinstance(c.value, str)
                and c.value.startswith("=")]
    assert any("COUNTIF(Discrepancies" in f for f in formulas)
    assert any("SUMIFS(Deals" in f for f in formulas) and any("SUMIFS(Invoices" in f for f in formulas)
    disc = wb["Discrepancies"]
    assert disc.freeze_panes == "A2" and disc.auto_filter.ref.startswith("A1:")
    assert disc.max_row == len(report.discrepancies) + 1
    assert any(c.hyperlink for c in disc["E"][1:])
    evil = next(c for c in wb["Deals"]["B"] if c.value and str(c.value).startswith("=HYPERLINK"))
    assert evil.data_type == "s" and evil.quotePrefix
    assert wb["Deals"]["E2"].number_format.startswith("#,##0.00")


@pytest.mark.skipif(not shutil.which("libreoffice") and not shutil.which("soffice"), reason="no LibreOffice")
def test_libreoffice_recomputes_the_summary_to_the_engines_totals(tmp_path):
    report = reconcile(data())
    path = write_workbook(report, tmp_path / "r.xlsx", workspace="Acme", crm_label="HubSpot",
                          ledger_label="QuickBooks Online")
    exe = shutil.which("libreoffice") or shutil.which("soffice")
    subprocess.run([exe, "--headless", "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir",
                    str(tmp_path / "out"), str(path)], check=True, capture_output=True, timeout=120)
    wb = openpyxl.load_workbook(tmp_path / "out" / "r.xlsx", data_only=True)
    rows = {r[0].value: r for r in wb["Summary"].iter_rows() if r[0].value in ("USD", "EUR")}
    assert D(str(rows["USD"][1].value)) == report.crm_totals["USD"]
    assert D(str(rows["USD"][2].value)) == report.ledger_totals["USD"]
    counts = {r[0].value: r[1].value for r in wb["Summary"].iter_rows() if r[0].value == "All discrepancies"}
    assert counts["All discrepancies"] == len(report.discrepancies)
