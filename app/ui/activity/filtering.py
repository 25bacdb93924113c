"""The Activity page's filters and the runs they leave in view (a part of ``ActivityPage``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QDate
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QLabel,
    QLineEdit,
    QTableView,
)

from app.ops.history_export import (
    Activity,
    ActivityChange,
    ActivityRun,
    field_label,
    trigger_label,
)
from app.ui import text
from app.ui.activity.models import ChangeModel, Filters, RunFilter, RunModel
from app.ui.models import RowRole
from app.ui.tables import TableOrNote
from app.ui.workers import BackgroundJob


class Filtering:
    """The Activity page's filters (words, record, field, kind of run, dates) and which runs they leave in view."""

    # the page's widgets and state (ActivityPage builds them)
    workspace: str | None
    activity: Activity | None
    job: BackgroundJob[Any] | None
    _dates_chosen: bool
    _pending_record: str | None
    _today: Callable[[], dt.date]
    search: QLineEdit
    record_filter: QComboBox
    field_filter: QComboBox
    trigger_filter: QComboBox
    since: QDateEdit
    until: QDateEdit
    shown: QLabel
    run_model: RunModel
    run_proxy: RunFilter
    runs_table: QTableView
    runs_body: TableOrNote
    change_model: ChangeModel

    @property
    def running(self) -> bool:
        return self.job is not None

    def _fill_filters(self, activity: Activity | None) -> None:
        """The choices are what the runs hold; a choice still held is kept."""
        changes = activity.changes if activity else []
        records = sorted({(c.record_key, c.record) for c in changes}, key=lambda r: (r[1].casefold(), r[0]))
        fields = sorted({c.field for c in changes}, key=lambda f: field_label(f).casefold())
        triggers = sorted({r.trigger for r in activity.runs} if activity else set(), key=trigger_label)
        for combo, every, items in (
                (self.record_filter, "Every record", [(key, name) for key, name in records]),
                (self.field_filter, "Every field", [(f, field_label(f)) for f in fields]),
                (self.trigger_filter, "Every kind of run", [(t, trigger_label(t)) for t in triggers])):
            keep = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(every, None)
            for data, words in items:
                combo.addItem(words, data)
            index = combo.findData(keep) if keep is not None else 0
            combo.setCurrentIndex(max(index, 0))
            combo.blockSignals(False)
        if activity and not self._dates_chosen:
            first = min((text.local(r.started_at).date() for r in activity.runs), default=self._today())
            last = max(self._today(), max((text.local(r.started_at).date() for r in activity.runs), default=first))
            for box, day in ((self.since, first), (self.until, last)):
                box.blockSignals(True)
                box.setDate(QDate(day.year, day.month, day.day))
                box.blockSignals(False)

    def _dates_changed(self, _date: QDate) -> None:
        self._dates_chosen = True
        self._apply_filters()

    # -- filtering ----------------------------------------------------------------------------------
    def filters(self) -> Filters:
        since, until = self.since.date().toPython(), self.until.date().toPython()
        return Filters(self.search.text().casefold().split(), self.record_filter.currentData(),
                       self.field_filter.currentData(), self.trigger_filter.currentData(),
                       since if self.activity and self._dates_chosen else None,
                       until if self.activity and self._dates_chosen else None)

    def _apply_filters(self, keep_run: int | None = None) -> None:
        if keep_run is None:
            current = self.selected_run()
            keep_run = current.id if current else None
        f = self.filters()
        changes = self.activity.changes if self.activity else []
        matching = {c.run_id for c in changes if f.change_ok(c)}
        search_runs = ({self.run_model.row(n).id for n in range(self.run_model.rowCount())
                        if all(w in self.run_model.search_text(self.run_model.row(n)) for w in f.search)}
                       if f.search and not (f.record or f.field) else set())
        self.run_proxy.set_filters(f, matching, search_runs)
        total, shown = self.run_model.rowCount(), self.run_proxy.rowCount()
        if self.activity is None:
            self.shown.setText("")
            self.runs_body.show_note("Reading the activity…" if self.workspace else "Choose a workspace.")
        elif total == 0:
            self.shown.setText("")
            self.runs_body.show_note("No runs yet. Each sync is listed here with every field it changed.")
        elif shown == 0:
            self.shown.setText(f"Showing 0 of {text.plural(total, 'run')}")
            self.runs_body.show_note("No run matches these filters. Choose “Clear filters” to see every run.")
        else:
            self.shown.setText(text.plural(total, "run") if shown == total
                               else f"Showing {shown:,} of {text.plural(total, 'run')}")
            self.runs_body.show_table()
        rows = [self.run_proxy.mapToSource(self.run_proxy.index(r, 0)).row() for r in range(shown)]
        again = next((r for r, src in enumerate(rows) if self.run_model.row(src).id == keep_run), None)
        if again is None and shown:
            again = 0
        if again is not None:
            self.runs_table.selectRow(again)
        else:
            self.runs_table.clearSelection()
        self._run_selected()

    def visible_runs(self) -> list[ActivityRun]:
        return [self.run_proxy.data(self.run_proxy.index(r, 0), RowRole) for r in range(self.run_proxy.rowCount())]

    def visible_changes(self) -> list[ActivityChange]:
        return [self.change_model.row(r) for r in range(self.change_model.rowCount())]

    def exported_changes(self) -> list[ActivityChange]:
        """Every change of the runs shown that passes the filters (not only the selected run's)."""
        if self.activity is None:
            return []
        f, runs = self.filters(), {r.id for r in self.visible_runs()}
        return [c for c in self.activity.changes if c.run_id in runs and f.change_ok(c)]

    def select_run(self, run_id: int) -> bool:
        for r in range(self.run_proxy.rowCount()):
            if self.run_proxy.data(self.run_proxy.index(r, 0), RowRole).id == run_id:
                self.runs_table.selectRow(r)
                return True
        return False

    def set_record(self, record_key: str | None) -> bool:
        if self.activity is None or self.running:
            self._pending_record = record_key  # chosen once the activity has been read
        index = self.record_filter.findData(record_key) if record_key else 0
        if index < 0:
            return False
        self.record_filter.setCurrentIndex(index)
        return True

    def set_field(self, field: str | None) -> bool:
        index = self.field_filter.findData(field) if field else 0
        if index >= 0:
            self.field_filter.setCurrentIndex(index)
        return index >= 0

    def set_trigger(self, trigger: str | None) -> bool:
        index = self.trigger_filter.findData(trigger) if trigger else 0
        if index >= 0:
            self.trigger_filter.setCurrentIndex(index)
        return index >= 0

    def set_dates(self, since: dt.date, until: dt.date) -> None:
        self.since.setDate(QDate(since.year, since.month, since.day))
        self.until.setDate(QDate(until.year, until.month, until.day))

    def clear_filters(self) -> None:
        for combo in (self.record_filter, self.field_filter, self.trigger_filter):
            combo.blockSignals(True)
            combo.setCurrentIndex(0)
            combo.blockSignals(False)
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self._dates_chosen = False
        self._fill_filters(self.activity)
        self._apply_filters()

    def selected_run(self) -> ActivityRun | None:
        rows = self.runs_table.selectionModel().selectedRows()
        return self.run_proxy.data(rows[0], RowRole) if rows else None

    def _run_selected(self) -> None:
        raise NotImplementedError  # the page shows the selected run's changes
