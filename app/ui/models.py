"""Table and list models over the plain rows of ``app.ops.status`` (never ORM objects)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRegularExpression,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QIcon

from app.ops.status import LinkRow, QuarantineRow, RunRow, WorkspaceStatus
from app.ui import text
from app.ui.theme import LEVEL_COLORS, Palette
from app.ui.widgets import dot_icon

R = TypeVar("R")
Index = QModelIndex | QPersistentModelIndex
Clock = Callable[[], dt.datetime]

SortRole = Qt.ItemDataRole.UserRole
RowRole = Qt.ItemDataRole.UserRole + 1
SearchRole = Qt.ItemDataRole.UserRole + 2

_DISPLAY = Qt.ItemDataRole.DisplayRole
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_TOP = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


def _orderable(value: Any) -> tuple[int, Any]:
    """A sort key that never compares a number with a text (blanks first, as Qt's own sort puts them)."""
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, value if isinstance(value, str) else str(value))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(value: dt.datetime | None) -> float:
    if value is None:
        return 0.0
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


class RowTableModel(QAbstractTableModel, Generic[R]):
    """A read-only table over a list of row objects; subclasses say what each column shows."""

    HEADERS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, parent: QObject | None = None, *, now: Clock = _utcnow) -> None:
        super().__init__(parent)
        self._rows: list[R] = []
        self._now = now
        self._sorted_by: tuple[int, Qt.SortOrder] | None = None

    def set_rows(self, rows: Sequence[R], *, in_order: bool = False) -> None:
        """``in_order``: ``rows`` come from ``ordered()`` (sorted off the UI thread for a big table)."""
        self.beginResetModel()
        self._rows = list(rows)
        if self._sorted_by is not None and not in_order:
            self._sort_rows()
        self.endResetModel()

    def ordered(self, rows: Sequence[R]) -> list[R]:
        """``rows`` in the table's current order; pure Python, so a worker thread may call it."""
        out = list(rows)
        if self._sorted_by is not None:
            column, order = self._sorted_by
            out.sort(key=lambda r: _orderable(self.sort_key(r, column)), reverse=order == Qt.SortOrder.DescendingOrder)
        return out

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """One Python sort of the rows (SearchFilterProxy asks for it): a sorting proxy calls data()
        from C++ twice a comparison, which for 10,000 rows holds the window up for seconds."""
        self._sorted_by = (column, order)
        if not self._rows:
            return
        self.layoutAboutToBeChanged.emit()
        old = [i for i in self.persistentIndexList() if 0 <= i.row() < len(self._rows)]
        held = [(self._rows[i.row()], i.column()) for i in old]
        self._sort_rows()
        where = {id(r): n for n, r in enumerate(self._rows)}
        self.changePersistentIndexList(old, [self.index(where[id(r)], c) for r, c in held])
        self.layoutChanged.emit()

    def _sort_rows(self) -> None:
        column, order = self._sorted_by
        self._rows.sort(key=lambda r: _orderable(self.sort_key(r, column)),
                        reverse=order == Qt.SortOrder.DescendingOrder)

    def row(self, n: int) -> R:
        return self._rows[n]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's own default
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self.HEADERS):
            if role == _DISPLAY:
                return self.HEADERS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return self.alignment(section)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or not (0 <= index.row() < len(self._rows)):
            return None
        row, col = self._rows[index.row()], index.column()
        if role == _DISPLAY:
            return self.display(row, col)
        if role == SortRole:
            return self.sort_key(row, col)
        if role == RowRole:
            return row
        if role == SearchRole:
            return self.search_text(row)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return self.alignment(col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(row, col)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self.foreground(row, col)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.decoration(row, col)
        return None

    # what subclasses fill in
    def display(self, row: R, col: int) -> str:
        raise NotImplementedError

    def sort_key(self, row: R, col: int) -> Any:
        value = self.display(row, col)
        return value.casefold() if isinstance(value, str) else value

    def search_text(self, row: R) -> str:
        return ""

    def alignment(self, col: int) -> int:
        return _LEFT

    def tooltip(self, row: R, col: int) -> str | None:
        return None

    def foreground(self, row: R, col: int) -> QColor | None:
        return None

    def decoration(self, row: R, col: int) -> QIcon | None:
        return None


class LinkedModel(RowTableModel[LinkRow]):
    """CRM records and the ledger customers they are synced with."""

    NAME, TYPE, EMAIL, LEDGER, HOW, SYNCED = range(6)
    HEADERS = ("CRM record", "Type", "Email", "Ledger customer", "Matched by", "Last synced")

    def display(self, row: LinkRow, col: int) -> str:
        if col == self.NAME:
            return row.name or "(no name)"
        if col == self.TYPE:
            return text.record_type_label(row.crm_type)
        if col == self.EMAIL:
            return row.email or ""
        if col == self.LEDGER:  # the name as the ledger spells it; its ID until the ledger was read
            return row.acct_name or f"ID {row.acct_id}"
        if col == self.HOW:
            return text.how_label(row.how)
        return text.format_when(row.updated_at, self._now())

    def sort_key(self, row: LinkRow, col: int) -> Any:
        if col == self.SYNCED:
            return _stamp(row.updated_at)
        return super().sort_key(row, col)

    def search_text(self, row: LinkRow) -> str:
        return " ".join((row.name, row.email or "", row.acct_name, row.acct_id, row.crm_id,
                         text.how_label(row.how))).casefold()

    def tooltip(self, row: LinkRow, col: int) -> str | None:
        if col == self.NAME:
            return f"{row.name}\nCRM ID {row.crm_id}"
        if col == self.EMAIL:
            return row.email or None
        if col == self.LEDGER:
            return f"{row.acct_name}\nLedger ID {row.acct_id}" if row.acct_name else f"Ledger ID {row.acct_id}"
        if col == self.HOW:
            return text.how_tip(row.how) or None
        if col == self.SYNCED:
            return f"{text.local(row.updated_at):%d %B %Y, %H:%M}"
        return None

    def foreground(self, row: LinkRow, col: int) -> QColor | None:
        if col in (self.TYPE, self.SYNCED) or (col == self.LEDGER and not row.acct_name):
            return QColor(Palette.TEXT_MUTED)
        if col == self.HOW and row.how.startswith("duplicate"):
            return QColor(Palette.WARNING_TEXT)
        return None


class HeldBackModel(RowTableModel[QuarantineRow]):
    """Records held back from the sync, with every reason on its own line."""

    NAME, TYPE, REASONS, SINCE = range(4)
    HEADERS = ("Record", "Type", "Why it was held back", "Held since")

    def display(self, row: QuarantineRow, col: int) -> str:
        if col == self.NAME:
            return row.name or f"(no name, ID {row.record_id})"
        if col == self.TYPE:
            return text.record_type_label(row.record_type)
        if col == self.REASONS:
            reasons = [text.in_window_words(r) for r in row.reasons]  # older holds named a command to run
            if len(reasons) == 1:
                return reasons[0]
            return "\n".join(f"• {reason}" for reason in reasons)
        return text.format_when(row.since, self._now())

    def sort_key(self, row: QuarantineRow, col: int) -> Any:
        if col == self.SINCE:
            return _stamp(row.since)
        if col == self.REASONS:
            return len(row.reasons)
        return super().sort_key(row, col)

    def search_text(self, row: QuarantineRow) -> str:
        return " ".join((row.name, row.record_id, *row.reasons)).casefold()

    def alignment(self, col: int) -> int:
        return _TOP

    def tooltip(self, row: QuarantineRow, col: int) -> str | None:
        if col == self.NAME:
            return f"{row.name}\nCRM ID {row.record_id}"
        return None

    def foreground(self, row: QuarantineRow, col: int) -> QColor | None:
        if col in (self.TYPE, self.SINCE):
            return QColor(Palette.TEXT_MUTED)
        return None


class RunsModel(RowTableModel[RunRow]):
    """The latest runs of one workspace, newest first."""

    WHEN, TRIGGER, RESULT, SUMMARY, TOOK = range(5)
    HEADERS = ("Started", "How", "Result", "What happened", "Took")

    def display(self, row: RunRow, col: int) -> str:
        if col == self.WHEN:
            return text.format_when(row.started_at, self._now())
        if col == self.TRIGGER:
            label = text.trigger_label(row.trigger)
            return f"{label} (dry run)" if row.dry_run else label
        if col == self.RESULT:
            return text.run_status_label(row.status)
        if col == self.SUMMARY:
            if row.status == "running":
                return "In progress"
            if row.status == "failed" and row.message:
                return row.message.splitlines()[0]
            return text.run_summary(row.counts)
        return text.format_duration(row.started_at, row.finished_at)

    def sort_key(self, row: RunRow, col: int) -> Any:
        if col == self.WHEN:
            return _stamp(row.started_at)
        if col == self.TOOK:
            return (row.finished_at - row.started_at).total_seconds() if row.finished_at else -1.0
        return super().sort_key(row, col)

    def alignment(self, col: int) -> int:
        return _RIGHT if col == self.TOOK else _LEFT

    def tooltip(self, row: RunRow, col: int) -> str | None:
        if col == self.SUMMARY:
            return row.message
        if col == self.WHEN:  # the strip shows one card per run, anchored on this column
            lines = [f"{text.local(row.started_at):%d %B %Y, %H:%M} · {self.display(row, self.TRIGGER)}",
                     f"{text.run_status_label(row.status)}: {self.display(row, self.SUMMARY)}"]
            if row.message and row.status != "failed":
                lines.append(row.message)
            return "\n".join(lines)
        return None

    def foreground(self, row: RunRow, col: int) -> QColor | None:
        if col in (self.TRIGGER, self.TOOK):
            return QColor(Palette.TEXT_MUTED)
        return None

    def decoration(self, row: RunRow, col: int) -> QIcon | None:
        if col == self.RESULT:
            return dot_icon(LEVEL_COLORS[text.run_level(row.status)])
        return None


class SearchFilterProxy(QSortFilterProxyModel):
    """Sorts on SortRole; keeps rows whose search text holds every word typed.

    Over a RowTableModel the source sorts its own rows (one Python sort) and this proxy keeps their
    order: sorting here would call the model's data() from C++ for every comparison. The words are one
    regular expression on SearchRole that Qt checks itself: a filterAcceptsRow written in Python was
    called for every row at each reset, a third of the time a 10,000-row table took to show its rows.
    """

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        source = self.sourceModel()
        if isinstance(source, RowTableModel) and column >= 0:
            source.sort(column, order)
        else:
            super().sort(column, order)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._words: list[str] = []
        self.setSortRole(SortRole)
        self.setDynamicSortFilter(True)
        self.setFilterRole(SearchRole)
        self.setFilterKeyColumn(0)

    def set_search(self, query: str) -> None:
        words = query.casefold().split()
        if words != self._words:
            self.change_filter(lambda: self._set_words(words))

    def _set_words(self, words: list[str]) -> None:
        """Every word, in any order: one look-ahead each, on the row's casefolded search text."""
        self._words = words
        pattern = "^" + "".join(f"(?=.*{QRegularExpression.escape(w)})" for w in words) if words else ""
        self.setFilterRegularExpression(
            QRegularExpression(pattern, QRegularExpression.PatternOption.DotMatchesEverythingOption))

    def change_filter(self, change: Callable[[], None]) -> None:
        """Apply ``change`` to what the filter keeps, and filter the rows again."""
        if hasattr(self, "beginFilterChange"):  # Qt 6.10+; invalidateRowsFilter is deprecated there
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateRowsFilter()


class WorkspaceListModel(QAbstractListModel):
    """The client workspaces down the left side, with how their last sync went."""

    SubtitleRole = Qt.ItemDataRole.UserRole + 10
    StateRole = Qt.ItemDataRole.UserRole + 11
    LevelRole = Qt.ItemDataRole.UserRole + 12
    IdRole = Qt.ItemDataRole.UserRole + 13

    def __init__(self, parent: QObject | None = None, *, now: Clock = _utcnow) -> None:
        super().__init__(parent)
        self._items: list[WorkspaceStatus] = []
        self._running: set[int] = set()
        self._now = now

    def set_items(self, items: Sequence[WorkspaceStatus]) -> None:
        self.beginResetModel()
        self._items = list(items)
        self.endResetModel()

    def update_item(self, item: WorkspaceStatus) -> None:
        """Replace one workspace's row in place (after its sync), leaving the selection alone."""
        for n, old in enumerate(self._items):
            if old.id == item.id:
                self._items[n] = item
                self.dataChanged.emit(self.index(n), self.index(n))
                return

    def set_running(self, workspace_id: int, running: bool) -> None:
        (self._running.add if running else self._running.discard)(workspace_id)
        n = self.row_of(workspace_id)
        if n is not None:
            self.dataChanged.emit(self.index(n), self.index(n))

    def row_of(self, workspace_id: int) -> int | None:
        return next((n for n, item in enumerate(self._items) if item.id == workspace_id), None)

    def item(self, n: int) -> WorkspaceStatus:
        return self._items[n]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or not (0 <= index.row() < len(self._items)):
            return None
        item = self._items[index.row()]
        running = item.id in self._running
        if role == _DISPLAY:
            return item.name
        if role == self.SubtitleRole:
            return text.pair_label(item.crm, item.accounting)
        if role == self.StateRole:
            if running:
                return "Syncing…"
            last = item.last_run
            return text.last_run_text(last.status if last else None, last.started_at if last else None,
                                      self._now())
        if role == self.LevelRole:
            if running:
                return "running"
            return text.run_level(item.last_run.status) if item.last_run else "idle"
        if role == self.IdRole:
            return item.id
        if role == RowRole:
            return item
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{item.name}\n{text.pair_label(item.crm, item.accounting)}"
        return None
