"""The Activity page's tables: runs, field changes, the undo preview's steps and a record's history."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QSortFilterProxyModel
from PySide6.QtGui import QColor, QIcon

from app.ops.history_export import (
    ActivityChange,
    ActivityRun,
    field_label,
    rule_label,
    side_label,
    status_label,
    trigger_label,
)
from app.ui import text
from app.ui.models import Index, RowTableModel, SortRole, _stamp
from app.ui.resources import icon
from app.ui.theme import LEVEL_COLORS, Palette
from app.ui.widgets import dot_icon

EMPTY = "(empty)"


def when_text(value: dt.datetime | None) -> str:
    return "" if value is None else f"{text.local(value):%d %b %Y, %H:%M}"


def value_text(value: str | None) -> str:
    return value if value not in (None, "") else EMPTY


# -- the tables --------------------------------------------------------------------------------------------
class RunModel(RowTableModel[ActivityRun]):
    """One row per run, newest first."""

    RUN, TRIGGER, STARTED, FINISHED, STATUS, COUNTS, MESSAGE = range(7)
    HEADERS = ("Run", "Kind", "Started", "Finished", "Result", "What it did", "Messages")

    def display(self, row: ActivityRun, col: int) -> str:
        if col == self.RUN:
            return f"#{row.id}"
        if col == self.TRIGGER:
            return trigger_label(row.trigger) + (" (dry run)" if row.dry_run else "")
        if col == self.STARTED:
            return text.format_when(row.started_at, self._now())
        if col == self.FINISHED:
            if row.finished_at is None:
                return ""
            same_day = text.local(row.finished_at).date() == text.local(row.started_at).date()
            return f"{text.local(row.finished_at):%H:%M}" if same_day else text.format_when(row.finished_at,
                                                                                             self._now())
        if col == self.STATUS:
            return status_label(row.status)
        if col == self.COUNTS:
            return row.counts_text()
        message = (row.message or "").splitlines()[0] if row.message else ""
        if row.errors:
            errors = text.plural(row.errors, "error")
            return f"{errors}: {message}" if message else errors
        return message

    def sort_key(self, row: ActivityRun, col: int) -> Any:
        if col == self.RUN:
            return row.id
        if col == self.STARTED:
            return _stamp(row.started_at)
        if col == self.FINISHED:
            return _stamp(row.finished_at)
        return super().sort_key(row, col)

    def search_text(self, row: ActivityRun) -> str:
        return " ".join((str(row.id), trigger_label(row.trigger), status_label(row.status), row.message or "",
                         row.counts_text())).casefold()

    def tooltip(self, row: ActivityRun, col: int) -> str | None:
        if col in (self.STARTED, self.FINISHED):
            value = row.started_at if col == self.STARTED else row.finished_at
            took = text.format_duration(row.started_at, row.finished_at)
            return f"{when_text(value)}" + (f" (took {took})" if took and col == self.FINISHED else "")
        if col == self.COUNTS:
            read = int(row.counts.get("read") or 0)
            return f"{row.counts_text()}\n{text.plural(read, 'record')} read from both sides"
        if col == self.MESSAGE and row.message:
            return row.message
        if col == self.TRIGGER and row.trigger == "undo":
            return "This run put back the changes of an earlier run. An undo cannot itself be undone."
        return None

    def foreground(self, row: ActivityRun, col: int) -> QColor | None:
        if col == self.MESSAGE and row.errors:
            return QColor(Palette.ERROR)
        if col in (self.RUN, self.FINISHED):
            return QColor(Palette.TEXT_MUTED)
        if col == self.TRIGGER and row.trigger == "undo":
            return QColor(Palette.WARNING_TEXT)
        return None

    def decoration(self, row: ActivityRun, col: int) -> QIcon | None:
        if col == self.STATUS:
            return dot_icon(LEVEL_COLORS[text.run_level(row.status)])
        if col == self.TRIGGER and row.trigger == "undo":
            return icon("sync")
        return None


class ChangeModel(RowTableModel[ActivityChange]):
    """The field changes of the runs shown: what each field was and became, and the rule that decided."""

    RECORD, FIELD, SIDE, BEFORE, AFTER, RULE = range(6)
    HEADERS = ("Record", "Field", "Written to", "Before", "After", "Why")  # the side the run wrote; why: its rule

    def __init__(self, parent: QObject | None = None, *, side_names: dict[str, str] | None = None) -> None:
        super().__init__(parent)
        self.side_names = side_names or {}

    def display(self, row: ActivityChange, col: int) -> str:
        if col == self.RECORD:
            return row.record
        if col == self.FIELD:
            return field_label(row.field)
        if col == self.SIDE:
            return self.side_names.get(row.side) or side_label(row.side)
        if col == self.BEFORE:
            return value_text(row.before)
        if col == self.AFTER:
            return value_text(row.after)
        return rule_label(row.rule, self.side_names.get("crm", "the CRM"),
                          self.side_names.get("accounting", "the ledger"))

    def search_text(self, row: ActivityChange) -> str:
        return row.search_text()

    def tooltip(self, row: ActivityChange, col: int) -> str | None:
        if col == self.RECORD:
            return f"{row.record}\nID {row.record_id} in the {side_label(row.side).lower()}"
        if col in (self.BEFORE, self.AFTER):
            return value_text(row.before if col == self.BEFORE else row.after)
        return None

    def foreground(self, row: ActivityChange, col: int) -> QColor | None:
        if col in (self.BEFORE, self.SIDE, self.RULE):
            return QColor(Palette.TEXT_MUTED)
        return None


@dataclass(frozen=True)
class Filters:
    search: list[str]
    record: str | None
    field: str | None
    trigger: str | None
    since: dt.date | None
    until: dt.date | None

    def run_ok(self, run: ActivityRun) -> bool:
        day = text.local(run.started_at).date()
        return ((self.trigger is None or run.trigger == self.trigger)
                and (self.since is None or day >= self.since) and (self.until is None or day <= self.until))

    def change_ok(self, change: ActivityChange) -> bool:
        if self.record is not None and change.record_key != self.record:
            return False
        if self.field is not None and change.field != self.field:
            return False
        haystack = change.search_text()
        return all(word in haystack for word in self.search)

    @property
    def narrows_changes(self) -> bool:
        return bool(self.search or self.record or self.field)


class RunFilter(QSortFilterProxyModel):
    """Runs of the kind and dates chosen; with a record, field or words chosen, only runs that changed them."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SortRole)
        self.filters: Filters | None = None
        self.matching_runs: set[int] = set()
        self.search_runs: set[int] = set()

    def set_filters(self, filters: Filters, matching_runs: set[int], search_runs: set[int]) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.10+
            self.beginFilterChange()
            self.filters, self.matching_runs, self.search_runs = filters, matching_runs, search_runs
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.filters, self.matching_runs, self.search_runs = filters, matching_runs, search_runs
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        if self.filters is None or not isinstance(model, RunModel):
            return True
        run = model.row(source_row)
        if not self.filters.run_ok(run):
            return False
        if self.filters.narrows_changes:
            return run.id in self.matching_runs or run.id in self.search_runs
        return True


# -- the undo preview --------------------------------------------------------------------------------------
class StepModel(RowTableModel[Any]):
    """What the undo will do: one row per step, the current value and what it goes back to."""

    RECORD, WHAT, NOW, BACK = range(4)
    HEADERS = ("Record", "What will change", "Now", "Goes back to")

    def __init__(self, parent: QObject | None = None, side_names: dict[str, str] | None = None) -> None:
        super().__init__(parent)
        self.side_names = side_names or {}

    def display(self, row: Any, col: int) -> str:
        if col == self.RECORD:
            return row.label
        if col == self.WHAT:
            return step_words(row, self.side_names)
        if row.kind != "restore_field":
            return ""
        return value_text(row.current if col == self.NOW else row.restore_to)

    def tooltip(self, row: Any, col: int) -> str | None:
        return row.description

    def foreground(self, row: Any, col: int) -> QColor | None:
        return QColor(Palette.TEXT_MUTED) if col == self.NOW else None


class RefusalModel(RowTableModel[Any]):
    RECORD, WHY = range(2)
    HEADERS = ("Left as it is", "Why")

    def display(self, row: Any, col: int) -> str:
        if col == self.RECORD:
            return f"{row.label}: {field_label(row.field)}" if row.field else row.label
        return row.reason


def step_words(step: Any, side_names: dict[str, str]) -> str:
    where = side_names.get(step.side) or side_label(step.side)
    if step.kind == "restore_field":
        return f"Put {field_label(step.field or '')} back in {where}"
    if step.kind == "deactivate_customer":
        return f"Make the customer inactive in {where} (it is not deleted)"
    if step.kind == "void_invoice":
        return f"Void the draft invoice in {where}"
    if step.kind == "unlink":
        return "Unlink it from its ledger customer in Crossledger"
    return step.description


# -- a record's history ------------------------------------------------------------------------------------
class HistoryModel(RowTableModel[tuple[str, ActivityChange, bool]]):
    """(field, change, first of its field): each field's changes, oldest first, its current value last."""

    FIELD, WHEN, WHERE, CHANGE, RULE = range(5)
    HEADERS = ("Field", "When", "Written to", "Before → after", "Why")

    def __init__(self, parent: QObject | None = None, side_names: dict[str, str] | None = None) -> None:
        super().__init__(parent)
        self.side_names = side_names or {}

    def display(self, row: tuple[str, ActivityChange, bool], col: int) -> str:
        name, c, first = row
        if col == self.FIELD:
            return field_label(name) if first else ""
        if col == self.WHEN:
            return f"{when_text(c.run_started)} · run #{c.run_id}"
        if col == self.WHERE:
            return self.side_names.get(c.side) or side_label(c.side)
        if col == self.CHANGE:
            return f"{value_text(c.before)} → {value_text(c.after)}"
        return rule_label(c.rule, self.side_names.get("crm", "the CRM"),
                          self.side_names.get("accounting", "the ledger"))

    def tooltip(self, row: tuple[str, ActivityChange, bool], col: int) -> str | None:
        _name, c, _first = row
        if col == self.WHEN:
            return f"Run #{c.run_id}: {trigger_label(c.trigger)}, {when_text(c.run_started)}"
        if col == self.CHANGE:
            return f"Before: {value_text(c.before)}\nAfter: {value_text(c.after)}"
        return None

    def foreground(self, row: tuple[str, ActivityChange, bool], col: int) -> QColor | None:
        if col in (self.WHEN, self.WHERE, self.RULE):
            return QColor(Palette.TEXT_MUTED)
        return None
