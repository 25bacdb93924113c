"""The Reconcile page's discrepancy table, its filter and the summary strip above it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.ops.reconcile_month import ReconcileResult, ReconcileRow
from app.reconcile.engine import SEVERITY_ORDER, Discrepancy
from app.ui.models import RowTableModel, SortRole
from app.ui.theme import Palette
from app.ui.widgets import dot_icon

Index = QModelIndex | QPersistentModelIndex

SEVERITY_LABELS = {"high": "High", "medium": "Medium", "low": "Low"}
# Palette names, read when drawn: the palette is the light or the dark one (app/ui/theme.py)
SEVERITY_COLOURS = {"high": "ERROR", "medium": "WARNING", "low": "INFO"}
SEVERITY_TEXT = {"high": "ERROR", "medium": "WARNING_TEXT", "low": "TEXT_MUTED"}


def money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def month_label(month: str) -> str:
    return dt.date.fromisoformat(month + "-01").strftime("%B %Y")


HISTORY_STATUS = {"ok": "", "stale": " (one side unreadable)", "failed": " (failed)", "cancelled": " (cancelled)",
                  "running": " (running)"}


def history_line(row: ReconcileRow) -> str:
    """"September 2026 on 27 Nov 14:02 · 9 discrepancies": one past reconciliation."""
    what = month_label(row.month) if row.month else "A month"
    n = row.counts.get("discrepancies")
    found = f" · {n:,} discrepanc{'y' if n == 1 else 'ies'}" if n is not None and row.status in ("ok", "stale") \
        else ""
    when = row.started_at.replace(tzinfo=dt.UTC).astimezone()  # stored in UTC, shown in local time
    return f"{what}, checked {when:%d %b %H:%M}{found}{HISTORY_STATUS.get(row.status, '')}"


# -- the table --------------------------------------------------------------------------------------
class DiscrepancyModel(RowTableModel[Discrepancy]):
    """One row per flag, in the engine's order: money first, largest gap first, then by severity.

    The gap sits next to the severity, so it is in view at any window width."""

    SEVERITY, AMOUNTS, KIND, EXPLANATION, CRM, LEDGER = range(6)
    HEADERS = ("Severity", "Gap", "Discrepancy", "What to check", "CRM record", "Ledger record")

    def display(self, row: Discrepancy, col: int) -> str:
        if col == self.SEVERITY:
            return SEVERITY_LABELS.get(row.severity, row.severity)
        if col == self.KIND:
            return row.title
        if col == self.EXPLANATION:
            return row.explanation
        if col == self.CRM:
            return row.crm_name or ""
        if col == self.LEDGER:
            return row.acct_name or row.acct_id or ""
        gap = row.gap
        if gap is None:
            return ""
        return f"{row.currency or ''} {gap:+,.2f}".strip()

    def sort_key(self, row: Discrepancy, col: int) -> Any:
        if col == self.SEVERITY:
            return SEVERITY_ORDER.get(row.severity, 9)
        if col == self.AMOUNTS:
            gap = row.gap
            return float(abs(gap)) if gap is not None else -1.0
        return super().sort_key(row, col)

    def tooltip(self, row: Discrepancy, col: int) -> str | None:
        if col == self.EXPLANATION:
            return row.explanation
        if col == self.CRM and row.crm_id:
            return f"{row.crm_name or ''}\nCRM ID {row.crm_id}".strip()
        if col == self.LEDGER and row.acct_id:
            return f"{row.acct_name or ''}\nLedger ID {row.acct_id}".strip()
        if col == self.AMOUNTS and row.gap is not None:
            cur = row.currency or ""
            return (f"In the CRM: {cur} {money(row.crm_amount) or 'nothing'}\n"
                    f"In the ledger: {cur} {money(row.acct_amount) or 'nothing'}\n"
                    "Gap: what the CRM shows minus what the ledger shows")
        return None

    def foreground(self, row: Discrepancy, col: int) -> QColor | None:
        if col == self.SEVERITY:
            return QColor(Palette.get(SEVERITY_TEXT.get(row.severity, "TEXT_MUTED")))
        if col == self.AMOUNTS and row.gap:
            return QColor(Palette.ERROR)
        return None

    def alignment(self, col: int) -> int:
        flags = Qt.AlignmentFlag.AlignTop
        flags |= Qt.AlignmentFlag.AlignRight if col == self.AMOUNTS else Qt.AlignmentFlag.AlignLeft
        return int(flags)


class DiscrepancyFilter(QSortFilterProxyModel):
    """Shows the flags of one kind and/or one severity; None means every one."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.kind: str | None = None
        self.severity: str | None = None
        self.setSortRole(SortRole)

    def set_filter(self, *, kind: str | None, severity: str | None) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.10+; invalidateRowsFilter is deprecated there
            self.beginFilterChange()
            self.kind, self.severity = kind, severity
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.kind, self.severity = kind, severity
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        if not isinstance(model, DiscrepancyModel):
            return True
        row = model.row(source_row)
        return (self.kind is None or row.kind == self.kind) and (self.severity is None or row.severity == self.severity)


# -- the summary strip ------------------------------------------------------------------------------
class SummaryStrip(QFrame):
    """Counts by severity, then each currency's totals on both sides and the gap."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        self.counts: dict[str, QLabel] = {}
        tiles = QHBoxLayout()
        tiles.setSpacing(18)
        for severity in ("high", "medium", "low"):
            value = QLabel("0")
            value.setObjectName("StatValue")
            caption = QLabel(f"{SEVERITY_LABELS[severity]} severity")
            caption.setObjectName("StatLabel")
            dot = QLabel()
            dot.setPixmap(dot_icon(Palette.get(SEVERITY_COLOURS[severity]), 10, 14).pixmap(14, 14))
            cap_row = QHBoxLayout()
            cap_row.setSpacing(6)
            cap_row.addWidget(dot)
            cap_row.addWidget(caption)
            tile = QVBoxLayout()
            tile.setSpacing(0)
            tile.addWidget(value)
            tile.addLayout(cap_row)
            tiles.addLayout(tile)
            self.counts[severity] = value
        tiles.addStretch(1)
        self.notes = QHBoxLayout()  # the last reconciliation, and how many rows the filters show
        self.notes.setSpacing(12)
        left = QVBoxLayout()
        left.setSpacing(4)
        left.addLayout(tiles)
        left.addLayout(self.notes)

        self.totals = QGridLayout()
        self.totals.setHorizontalSpacing(22)
        self.totals.setVerticalSpacing(3)
        self.totals_box = QWidget()
        self.totals_box.setLayout(self.totals)
        self.totals_box.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)

        row = QHBoxLayout(self)
        row.setContentsMargins(16, 6, 16, 6)
        row.setSpacing(16)
        row.addLayout(left, 1)
        row.addWidget(self.totals_box, 0, Qt.AlignmentFlag.AlignVCenter)

    def set_result(self, result: ReconcileResult) -> None:
        by_severity = dict.fromkeys(SEVERITY_LABELS, 0)
        for d in result.report.discrepancies:
            by_severity[d.severity] = by_severity.get(d.severity, 0) + 1
        for severity, label in self.counts.items():
            label.setText(f"{by_severity[severity]:,}")
            label.setProperty("attention", severity == "high" and by_severity[severity] > 0)
            label.style().unpolish(label)
            label.style().polish(label)
        while self.totals.count():
            item = self.totals.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        report = result.report
        headers = ("Currency", f"Won in {result.crm_label}", f"Invoiced in {result.ledger_label}", "Gap")
        for col, words in enumerate(headers):
            cell = QLabel(words)
            cell.setObjectName("StatLabel")
            self.totals.addWidget(cell, 0, col, Qt.AlignmentFlag.AlignRight if col else Qt.AlignmentFlag.AlignLeft)
        currencies = sorted(set(report.crm_totals) | set(report.ledger_totals))
        if not currencies:
            none = QLabel("Nothing won or invoiced this month.")
            none.setObjectName("Muted")
            self.totals.addWidget(none, 1, 0, 1, 4)
        for r, cur in enumerate(currencies, 1):
            gap = report.gap(cur)
            cells = (cur, money(report.crm_totals.get(cur, Decimal(0))),
                     money(report.ledger_totals.get(cur, Decimal(0))), f"{gap:+,.2f}" if gap else "0.00")
            for col, words in enumerate(cells):
                cell = QLabel(words)
                cell.setObjectName("TotalCell")
                if col == 3 and gap:
                    cell.setStyleSheet(f"color: {Palette.ERROR}; font-weight: 600;")
                self.totals.addWidget(cell, r, col,
                                      Qt.AlignmentFlag.AlignRight if col else Qt.AlignmentFlag.AlignLeft)
