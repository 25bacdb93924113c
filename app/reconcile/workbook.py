"""The reconciliation workbook: Summary with live formulas over the detail sheets.

Written in openpyxl's write-only mode, and the detail sheets' rows (10,000 deals make about 90,000
cells) are streamed by ``_RowWriter`` as ready-made XML for the plain kinds of cell (text, numbers,
dates, with or without a style) instead of one element tree per cell; anything else (a hyperlink) goes
through openpyxl's own cell writer. The file is the same workbook either way.

Every text cell goes through ``_clean``/``_Cells`` so that a name like '=HYPERLINK(...)' or '+44 20…'
is stored as text and can never run as a formula.
"""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from collections.abc import Callable, Iterable, Iterator
from copy import copy
from decimal import Decimal
from math import isfinite
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell._writer import write_cell
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel
from openpyxl.worksheet._writer import WorksheetWriter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from app.domain.files import atomic_path
from app.reconcile.engine import KINDS, Report

MONEY = '#,##0.00;[Red]-#,##0.00'
DATE = "yyyy-mm-dd"
HEADER_FILL = PatternFill("solid", fgColor="1F3A5F")
FONT = "Calibri"  # named on every styled font: a font with no name renders in a serif face in LibreOffice
HEADER_FONT = Font(name=FONT, bold=True, color="FFFFFF")
BOLD = Font(name=FONT, bold=True)
LINK_FONT = Font(name=FONT, color="0563C1", underline="single")
SEVERITY_FILLS = {"high": "F8D7DA", "medium": "FFF3CD", "low": "E2E3E5"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TOP = Alignment(vertical="top")
WRAP_TOP = Alignment(wrap_text=True, vertical="top")

_UNWRITABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(value: Any) -> Any:
    # Control characters and halves of characters cannot be stored in a workbook (openpyxl refuses
    # them): each shows as a replacement mark, so a record holding one still has its row.
    if isinstance(value, str):
        return _UNWRITABLE.sub("\ufffd", value)
    return float(value) if isinstance(value, Decimal) else value


class _Cells:
    """Cells of one sheet; each style is looked up in the workbook once (per cell it would be most of
    the writing time for 10,000 rows)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._styles: dict[tuple[Any, ...], tuple[int, Any]] = {}

    def style(self, **style: Any) -> tuple[int, Any]:
        """(the workbook's id of ``style``, its style array)."""
        key = tuple(sorted(style.items(), key=lambda kv: kv[0]))
        found = self._styles.get(key)
        if found is None:
            cell = WriteOnlyCell(self.ws)
            for name, setting in style.items():
                setattr(cell, name, setting)
            found = self._styles[key] = (cell.style_id, copy(cell._style))
        return found

    def cell(self, value: Any, *, text: bool = False, **style: Any) -> Any:
        """An openpyxl cell holding ``value``; ``text`` keeps a string that starts like a formula as text
        (shown with its first character); else a string starting with "=" is a formula."""
        value = _clean(value)
        quoted = text and isinstance(value, str) and value.startswith(_FORMULA_START)
        if quoted:
            style["quotePrefix"] = True
        cell = WriteOnlyCell(self.ws, value)
        if style:
            cell._style = copy(self.style(**style)[1])
        if quoted:
            cell.data_type = "s"
        return cell


Item = tuple[Any, dict[str, Any], str]  # (value, style, hyperlink or "")


def _fast_xml(ref: str, value: Any, sid: int) -> str | None:
    """The XML openpyxl would write for a plain cell, or None where it must write it itself."""
    s = f' s="{sid}"' if sid else ""
    kind = type(value)
    if kind is str:
        if not value:
            return f'<c r="{ref}"{s} t="inlineStr"></c>' if sid else ""
        stripped = value.strip()
        space = ' xml:space="preserve"' if stripped and stripped != value else ""
        return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{escape(value)}</t></is></c>'
    if kind is int or kind is float:
        shown = f"{value:.16g}" if isfinite(value) else ""
        return f'<c r="{ref}"{s} t="n"><v>{shown}</v></c>'
    if kind is dt.date and sid:
        return f'<c r="{ref}"{s} t="n"><v>{to_excel(value):.16g}</v></c>'
    if value is None:
        return f'<c r="{ref}"{s} t="n"></c>' if sid else ""
    return None


class _RowWriter(WorksheetWriter):
    """Writes ``rows`` (lists of items, and each row's height or None) when the sheet is closed."""

    def __init__(self, ws: Any, cells: _Cells, rows: Iterator[tuple[list[Item], float | None]]) -> None:
        super().__init__(ws)
        self.cells = cells
        self.source = rows

    def write_rows(self) -> None:
        xf = self.xf.send(True)
        with xf.element("sheetData"):
            out = getattr(xf, "_file", None)  # et_xmlfile's writer: plain text goes straight to the file
            for r, (items, height) in enumerate(self.source, 1):
                if out is None:  # lxml writes its elements fast enough itself
                    self.write_row(xf, [self._cell(r, c, item) for c, item in enumerate(items, 1)], r)
                    continue
                tall = f' ht="{height:g}" customHeight="1"' if height else ""
                out(f'<row r="{r}"{tall}>')
                for c, item in enumerate(items, 1):
                    value, style, link = item
                    sid = self.cells.style(**style)[0] if style else 0
                    fast = None if link else _fast_xml(f"{get_column_letter(c)}{r}", value, sid)
                    if fast is None:
                        cell = self._cell(r, c, item)
                        write_cell(xf, self.ws, cell, cell.has_style)
                    else:
                        out(fast)
                out("</row>")
        self.xf.send(None)

    def _cell(self, r: int, c: int, item: Item) -> Any:
        value, style, link = item
        cell = self.cells.cell(value, text=True, **style)
        cell.row, cell.column = r, c
        if link:
            cell.hyperlink = link
        return cell


def _sheet(wb: Workbook, title: str, headers: list[tuple[str, int]], rows: Iterable[list[Any]],
           formats: dict[int, str] | None = None, *, wrapped: dict[int, int] | None = None,
           aligned: bool = False, count: int = 0, before: Callable[[Any], None] | None = None) -> Any:
    """A detail sheet: a header row, then ``rows`` (a value, or (text, url) for a hyperlink). ``formats``
    gives a column its number format; ``wrapped`` (column -> width) wraps those columns and sets each
    row's height from its longest text; ``aligned`` tops every cell. ``count`` (rows) sizes the
    filter; ``before(ws)`` adds what must be in place before the rows (conditional formats)."""
    ws = wb.create_sheet(title)
    cells = _Cells(ws)
    for col, (_name, width) in enumerate(headers, 1):
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(count + 1, 1)}"
    ws.print_title_rows = "1:1"
    _fit_width(ws)
    if before is not None:
        before(ws)
    formats, wrapped = formats or {}, wrapped or {}
    styles: dict[int, dict[str, Any]] = {}
    for col in range(1, len(headers) + 1):
        style = styles[col] = {}
        if aligned:
            style["alignment"] = WRAP_TOP if col in wrapped else TOP
        if col in formats:
            style["number_format"] = formats[col]
    header_style = {"fill": HEADER_FILL, "font": HEADER_FONT}

    def stream() -> Iterator[tuple[list[Item], float | None]]:
        yield [(name, header_style, "") for name, _width in headers], None
        for row in rows:
            items: list[Item] = []
            lines = 1
            for col, value in enumerate(row, 1):
                style = styles[col]
                if isinstance(value, tuple):  # (text, url): a hyperlink
                    text, url = value
                    items.append((_clean(text), {**style, "font": LINK_FONT} if url else style, url or ""))
                    continue
                value = _clean(value)
                if col in wrapped and isinstance(value, str):
                    lines = max(lines, len(textwrap.wrap(value, int(wrapped[col] * 1.1))))
                if isinstance(value, str) and value.startswith(_FORMULA_START):
                    items.append((value, {**style, "quotePrefix": True}, ""))
                else:
                    items.append((value, style, ""))
            # Spreadsheet programs do not all grow a row for wrapped text on opening; say how tall it is.
            yield items, (15 * lines + 2 if wrapped else None)

    ws._writer = _RowWriter(ws, cells, stream())
    ws._writer.write_top()
    return ws


def _fit_width(ws: Any) -> None:
    """Print landscape, as wide as one page and as long as it needs."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)


def write_workbook(report: Report, path: str | Path, *, workspace: str, crm_label: str, ledger_label: str) -> Path:
    path = Path(path)
    wb = Workbook(write_only=True)
    _summary(wb.create_sheet("Summary"), report, workspace=workspace, crm_label=crm_label,
             ledger_label=ledger_label)
    last = max(2, len(report.discrepancies) + 1)

    def severity_colours(ws: Any) -> None:
        for severity, colour in SEVERITY_FILLS.items():
            ws.conditional_formatting.add(f"A2:J{last}", FormulaRule(formula=[f'$A2="{severity.title()}"'],
                                                                     fill=PatternFill("solid", bgColor=colour)))

    _sheet(wb, "Discrepancies", [("Severity", 10), ("Kind", 34), ("What to check", 70), (crm_label, 28),
                                 ("CRM ID", 12), (ledger_label, 24), ("Ledger ID", 12), ("Currency", 9),
                                 ("CRM amount", 14), ("Ledger amount", 14)],
           ([d.severity.title(), d.title, d.explanation, d.crm_name, (d.crm_id, d.crm_url), d.acct_name,
             (d.acct_id, d.acct_url), d.currency, d.crm_amount, d.acct_amount]
            for d in report.discrepancies), {9: MONEY, 10: MONEY},
           wrapped={2: 34, 3: 70, 4: 28, 6: 24}, aligned=True, count=len(report.discrepancies),
           before=severity_colours)
    _sheet(wb, "Deals", [("Deal ID", 14), ("Deal", 40), ("Won on", 12), ("Currency", 9), ("Amount", 14)],
           ([d.id, d.name, d.close_date, d.currency, _deal_amount(d)] for d in report.deals), {3: DATE, 5: MONEY},
           count=len(report.deals))
    _sheet(wb, "Invoices", [("Invoice ID", 14), ("Number", 14), ("Customer ID", 14), ("Date", 12), ("Due", 12),
                            ("Currency", 9), ("Total", 14), ("Paid", 14), ("Balance", 14), ("Status", 16)],
           ([i.id, i.number, i.customer_id, i.issue_date, i.due_date, i.currency,
             Decimal(0) if i.status == "void" else i.total, i.amount_paid, i.balance, i.status]
            for i in report.invoices), {4: DATE, 5: DATE, 7: MONEY, 8: MONEY, 9: MONEY}, count=len(report.invoices))
    _sheet(wb, "Payments", [("Payment ID", 14), ("Invoice ID", 14), ("Date", 12), ("Currency", 9), ("Amount", 14)],
           ([p.id, p.invoice_id, p.date, p.currency, p.amount] for p in report.payments), {3: DATE, 5: MONEY},
           count=len(report.payments))
    # Records held back and duplicate customers that touch nothing of the month: apart from its discrepancies
    _sheet(wb, "Data quality", [("Kind", 34), ("What to check", 70), (crm_label, 28), ("CRM ID", 12),
                                (ledger_label, 24), ("Ledger ID", 12)],
           ([d.title, d.explanation, d.crm_name, (d.crm_id, d.crm_url), d.acct_name, (d.acct_id, d.acct_url)]
            for d in report.set_apart), aligned=True, wrapped={1: 34, 2: 70}, count=len(report.set_apart))
    with atomic_path(path) as tmp:  # a kill while saving leaves last month's workbook, never half of one
        wb.save(tmp)
    return path


def _summary(summary: Any, report: Report, *, workspace: str, crm_label: str, ledger_label: str) -> None:
    """The counts per kind and the gap per currency, as formulas over the detail sheets."""
    cells = _Cells(summary)
    summary.column_dimensions["A"].width = 42
    for col in "BCD":
        summary.column_dimensions[col].width = max(18, len(ledger_label) + 14)
    summary.freeze_panes = "A5"
    summary.page_setup.orientation = "portrait"
    summary.page_setup.fitToWidth = 1
    summary.page_setup.fitToHeight = 0
    summary.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    header = {"fill": HEADER_FILL, "font": HEADER_FONT}
    right = {**header, "alignment": Alignment(horizontal="right")}
    rows: list[list[Any]] = [
        [cells.cell(f"Reconciliation for {_month_words(report.month)}", text=True,
                    font=Font(name=FONT, bold=True, size=14))],
        [cells.cell(f"Workspace: {workspace} ({crm_label} and {ledger_label})", text=True)],
        [],
        [cells.cell("Discrepancy", **header), cells.cell("Count", **right)],
    ]
    first = len(rows) + 1
    for _sev, title in KINDS.values():
        rows.append([title, f'=COUNTIF(Discrepancies!$B:$B,"{title}")'])
    rows.append([cells.cell("All discrepancies", font=BOLD), cells.cell(f"=SUM(B{first}:B{len(rows)})", font=BOLD)])
    rows.append([])
    rows.append([cells.cell(name, text=True, **(right if col else header)) for col, name in
                 enumerate(["Currency", f"Won in {crm_label}", f"Invoiced in {ledger_label}", "Gap"])])
    for currency in sorted(set(report.crm_totals) | set(report.ledger_totals)):
        row = len(rows) + 1
        rows.append([cells.cell(currency, text=True),  # a CRM currency could be any text, even "=..."
                     cells.cell(f'=SUMIFS(Deals!$E:$E,Deals!$D:$D,A{row})', number_format=MONEY),
                     cells.cell(f'=SUMIFS(Invoices!$G:$G,Invoices!$F:$F,A{row})', number_format=MONEY),
                     cells.cell(f"=B{row}-C{row}", number_format=MONEY)])
    rows.append([])
    note = len(rows) + 1
    rows.append([cells.cell("The gap per currency is explained by the discrepancies listed on the Discrepancies "
                            "sheet (won deals without invoices, amount differences, invoices without deals, "
                            "voided invoices).", alignment=WRAP_TOP)])
    summary.merged_cells.add(f"A{note}:D{note}")
    summary.row_dimensions[note].height = 32
    for values in rows:
        summary.append(values)


def _month_words(month: str) -> str:
    year, mon = (int(x) for x in month.split("-"))
    return dt.date(year, mon, 1).strftime("%B %Y")


def _deal_amount(deal: Any) -> Decimal:
    return deal.net
