"""The reconciliation workbook: Summary with live formulas over the detail sheets.

Every text cell goes through ``_text`` so that a name like '=HYPERLINK(...)' or '+44 20…' is
stored as text and can never run as a formula.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from app.domain.files import atomic_path
from app.reconcile.engine import KINDS, Report, deal_total

MONEY = '#,##0.00;[Red]-#,##0.00'
DATE = "yyyy-mm-dd"
HEADER_FILL = PatternFill("solid", fgColor="1F3A5F")
FONT = "Calibri"  # named on every styled font: a font with no name renders in a serif face in LibreOffice
HEADER_FONT = Font(name=FONT, bold=True, color="FFFFFF")
BOLD = Font(name=FONT, bold=True)
LINK_FONT = Font(name=FONT, color="0563C1", underline="single")
SEVERITY_FILLS = {"high": "F8D7DA", "medium": "FFF3CD", "low": "E2E3E5"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_UNWRITABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(cell: Any, value: Any) -> None:
    if isinstance(value, str):
        # Control characters and halves of characters cannot be stored in a workbook (openpyxl refuses
        # them): each shows as a replacement mark, so a record holding one still has its row.
        value = _UNWRITABLE.sub("\ufffd", value)
        cell.value = value
        cell.data_type = "s"
        if value.startswith(_FORMULA_START):
            cell.quotePrefix = True
    else:
        cell.value = value


def _sheet(wb: Workbook, title: str, headers: list[tuple[str, int]], rows: Iterable[list[Any]],
           formats: dict[int, str] | None = None) -> Worksheet:
    ws = wb.create_sheet(title)
    for col, (name, width) in enumerate(headers, 1):
        cell = ws.cell(row=1, column=col, value=name)
        cell.fill, cell.font = HEADER_FILL, HEADER_FONT
        ws.column_dimensions[get_column_letter(col)].width = width
    n = 1
    for n, row in enumerate(rows, 2):
        for col, value in enumerate(row, 1):
            cell = ws.cell(row=n, column=col)
            if isinstance(value, tuple):  # (text, url): a hyperlink
                _text(cell, value[0])
                if value[1]:
                    cell.hyperlink = value[1]
                    cell.font = LINK_FONT
            else:
                _text(cell, float(value) if isinstance(value, Decimal) else value)
            if formats and col in formats:
                cell.number_format = formats[col]
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(n, 1)}"
    ws.print_title_rows = "1:1"
    _fit_width(ws)
    return ws


def _fit_width(ws: Worksheet) -> None:
    """Print landscape, as wide as one page and as long as it needs."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)


def write_workbook(report: Report, path: str | Path, *, workspace: str, crm_label: str, ledger_label: str) -> Path:
    path = Path(path)
    wb = Workbook()
    summary = wb.active
    summary.title = "Summary"

    disc = _sheet(wb, "Discrepancies", [("Severity", 10), ("Kind", 34), ("What to check", 70), (crm_label, 28),
                                        ("CRM ID", 12), (ledger_label, 24), ("Ledger ID", 12), ("Currency", 9),
                                        ("CRM amount", 14), ("Ledger amount", 14)],
                  ([d.severity.title(), d.title, d.explanation, d.crm_name, (d.crm_id, d.crm_url), d.acct_name,
                    (d.acct_id, d.acct_url), d.currency, d.crm_amount, d.acct_amount]
                   for d in report.discrepancies), {9: MONEY, 10: MONEY})
    wrapped = {2: 34, 3: 70, 4: 28, 6: 24}  # column -> its width, as set above
    for row in disc.iter_rows(min_row=2, max_col=10):
        lines = 1
        for cell in row:
            cell.alignment = Alignment(wrap_text=cell.column in wrapped, vertical="top")
            if cell.column in wrapped and isinstance(cell.value, str):
                lines = max(lines, len(textwrap.wrap(cell.value, int(wrapped[cell.column] * 1.1))))
        # Spreadsheet programs do not all grow a row for wrapped text on opening; say how tall it is.
        disc.row_dimensions[row[0].row].height = 15 * lines + 2
    last = max(2, len(report.discrepancies) + 1)
    for severity, colour in SEVERITY_FILLS.items():
        disc.conditional_formatting.add(f"A2:J{last}", FormulaRule(formula=[f'$A2="{severity.title()}"'],
                                                                   fill=PatternFill("solid", bgColor=colour)))

    _sheet(wb, "Deals", [("Deal ID", 14), ("Deal", 40), ("Won on", 12), ("Currency", 9), ("Amount", 14)],
           ([d.id, d.name, d.close_date, d.currency, _deal_amount(d)] for d in report.deals), {3: DATE, 5: MONEY})
    _sheet(wb, "Invoices", [("Invoice ID", 14), ("Number", 14), ("Customer ID", 14), ("Date", 12), ("Due", 12),
                            ("Currency", 9), ("Total", 14), ("Paid", 14), ("Balance", 14), ("Status", 16)],
           ([i.id, i.number, i.customer_id, i.issue_date, i.due_date, i.currency,
             Decimal(0) if i.status == "void" else i.total, i.amount_paid, i.balance, i.status]
            for i in report.invoices), {4: DATE, 5: DATE, 7: MONEY, 8: MONEY, 9: MONEY})
    _sheet(wb, "Payments", [("Payment ID", 14), ("Invoice ID", 14), ("Date", 12), ("Currency", 9), ("Amount", 14)],
           ([p.id, p.invoice_id, p.date, p.currency, p.amount] for p in report.payments), {3: DATE, 5: MONEY})
    # Records held back and duplicate customers that touch nothing of the month: apart from its discrepancies
    quality = _sheet(wb, "Data quality", [("Kind", 34), ("What to check", 70), (crm_label, 28), ("CRM ID", 12),
                                          (ledger_label, 24), ("Ledger ID", 12)],
                     ([d.title, d.explanation, d.crm_name, (d.crm_id, d.crm_url), d.acct_name,
                       (d.acct_id, d.acct_url)] for d in report.set_apart))
    for row in quality.iter_rows(min_row=2, max_col=6):
        for cell in row:
            cell.alignment = Alignment(wrap_text=cell.column in (1, 2), vertical="top")

    summary.column_dimensions["A"].width = 42
    for col in "BCD":
        summary.column_dimensions[col].width = max(18, len(ledger_label) + 14)
    summary["A1"] = f"Reconciliation for {_month_words(report.month)}"
    summary["A1"].font = Font(name=FONT, bold=True, size=14)
    _text(summary["A2"], f"Workspace: {workspace} ({crm_label} and {ledger_label})")
    summary["A4"], summary["B4"] = "Discrepancy", "Count"
    for cell in (summary["A4"], summary["B4"]):
        cell.fill, cell.font = HEADER_FILL, HEADER_FONT
    summary["B4"].alignment = Alignment(horizontal="right")
    row = 5
    for _kind, (_sev, title) in KINDS.items():
        summary.cell(row=row, column=1, value=title)
        summary.cell(row=row, column=2, value=f'=COUNTIF(Discrepancies!$B:$B,"{title}")')
        row += 1
    summary.cell(row=row, column=1, value="All discrepancies").font = BOLD
    summary.cell(row=row, column=2, value=f"=SUM(B5:B{row - 1})").font = BOLD
    row += 2
    headers = ["Currency", f"Won in {crm_label}", f"Invoiced in {ledger_label}", "Gap"]
    for col, name in enumerate(headers, 1):
        cell = summary.cell(row=row, column=col, value=name)
        cell.fill, cell.font = HEADER_FILL, HEADER_FONT
        if col > 1:
            cell.alignment = Alignment(horizontal="right")
    for currency in sorted(set(report.crm_totals) | set(report.ledger_totals)):
        row += 1
        _text(summary.cell(row=row, column=1), currency)  # a CRM currency could be any text, even "=..."
        summary.cell(row=row, column=2, value=f'=SUMIFS(Deals!$E:$E,Deals!$D:$D,A{row})').number_format = MONEY
        summary.cell(row=row, column=3, value=f'=SUMIFS(Invoices!$G:$G,Invoices!$F:$F,A{row})').number_format = MONEY
        summary.cell(row=row, column=4, value=f"=B{row}-C{row}").number_format = MONEY
    row += 2
    note = summary.cell(row=row, column=1, value="The gap per currency is explained by the discrepancies listed on "
                                                 "the Discrepancies sheet (won deals without invoices, amount "
                                                 "differences, invoices without deals, voided invoices).")
    note.alignment = Alignment(wrap_text=True, vertical="top")
    summary.merge_cells(start_row=row, start_column=1, end_row=row, end_column=4)
    summary.row_dimensions[row].height = 32
    summary.freeze_panes = "A5"
    summary.page_setup.orientation = "portrait"
    summary.page_setup.fitToWidth = 1
    summary.page_setup.fitToHeight = 0
    summary.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    with atomic_path(path) as tmp:  # a kill while saving leaves last month's workbook, never half of one
        wb.save(tmp)
    return path


def _month_words(month: str) -> str:
    year, mon = (int(x) for x in month.split("-"))
    return date(year, mon, 1).strftime("%B %Y")


def _deal_amount(deal: Any) -> Decimal:
    return deal_total(deal)
