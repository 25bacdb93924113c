"""Settings: each workspace's sync cadence, pause, notifications and reports folder, and starting at login.

Loads from the workspace's settings, writes them back with ``workspace_settings.save`` when Save is
clicked (never on every keystroke) and asks the scheduler to follow (``sync_jobs``). Starting at
login is per user, not per workspace: its truth is the autostart entry itself.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.exc import SQLAlchemyError

from app.domain.settings import SettingsError, WorkspaceSettings, settings_of
from app.ops import autostart as autostart_module
from app.ops.budget import PIPEDRIVE_PLANS, daily_tokens_for, pipedrive_plan, set_pipedrive_plan
from app.ops.reconcile_month import folder_problem, report_folder
from app.ops.workspace_settings import save as save_settings
from app.ops.workspaces import UserError, list_workspaces
from app.store.db import Store
from app.ui.text import plural

log = logging.getLogger("crossledger.ui.settings")

PAGE_KEYS = ("schedule", "notifications", "report_folder")
RECONCILE_UTC_HOUR = 6  # app.sched.service runs the monthly reconciliation at 06:00 UTC


class _Jobs(Protocol):
    def sync_jobs(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WorkspaceForm:
    """The values the page edits for one workspace."""

    realtime_minutes: int
    batch_hour: int  # UTC, as the scheduler keeps it
    reconcile_day: int
    paused: bool
    notifications: bool
    report_folder: str = ""  # "" = the default, reports/ in the data folder
    pipedrive_plan: str = ""  # "" = not given (Lite assumed) or no Pipedrive connection

    @classmethod
    def from_settings(cls, settings: WorkspaceSettings) -> WorkspaceForm:
        sched = settings.schedule
        return cls(min(60, sched.realtime_minutes), sched.batch_hour, sched.reconcile_day, sched.paused,
                   settings.notifications, settings.report_folder or "")



def _page_settings(stored: dict[str, Any]) -> tuple[WorkspaceSettings, str]:
    """The settings this page edits, and why they could not be read (then the page's own keys alone, else
    the defaults: saving writes what the page shows)."""
    try:
        return settings_of(stored), ""
    except SettingsError as exc:
        try:
            return settings_of({k: v for k, v in stored.items() if k in PAGE_KEYS}), str(exc)
        except SettingsError:
            return WorkspaceSettings(), str(exc)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def local_clock(utc_hour: int, today: dt.date) -> str:
    """'03:00' for 02:00 UTC in Dublin in summer: the scheduler's UTC hour in this computer's time."""
    return dt.datetime.combine(today, dt.time(utc_hour), dt.UTC).astimezone().strftime("%H:%M")


class SettingsPage(QWidget):
    """A plain widget; the window places it. ``saved(workspace)`` after each successful Save."""

    saved = Signal(str)

    def __init__(
        self,
        store: Store,
        scheduler: _Jobs | None,
        *,
        autostart: ModuleType | Any = autostart_module,
        autostart_command: Sequence[str] | Callable[[], Sequence[str]] | None = None,
        now: Callable[[], dt.datetime] = _utcnow,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("Content")
        self._store = store
        self._scheduler = scheduler
        self._autostart = autostart
        self._command = autostart_command
        self._now = now
        self._loaded: WorkspaceForm | None = None
        self._loaded_login = False
        self._filling = False

        title = QLabel("Settings")
        title.setObjectName("PageTitle")

        self.workspace = QComboBox()
        self.workspace.setMinimumWidth(300)
        self.workspace.currentIndexChanged.connect(self._workspace_changed)
        self.realtime = QSpinBox()
        self.realtime.setRange(1, 60)
        self.realtime.setSuffix(" min")
        self.realtime.setMinimumWidth(110)
        self.realtime.setToolTip("How often Crossledger looks for new and changed records (1 to 60 minutes).")
        self.batch_hour = QComboBox()
        self.batch_hour.setMinimumWidth(110)
        self.batch_hour.setToolTip("Once a night Crossledger reads everything again, to catch what the quick "
                                   "syncs cannot see.")
        self.reconcile_day = QSpinBox()
        self.reconcile_day.setRange(1, 28)  # every month has a 28th
        self.reconcile_day.setPrefix("day ")
        self.reconcile_day.setMinimumWidth(110)
        self.reconcile_day.setToolTip("The day of the month on which last month's reconciliation workbook is "
                                      "made.")
        self.reconcile_hint = QLabel()
        self.reconcile_hint.setObjectName("Muted")
        self.paused = QCheckBox("Pause automatic syncing for this workspace")
        self.notifications = QCheckBox("Show notifications for this workspace")
        self.notifications.setToolTip("Failed syncs, records waiting for review and sign-ins about to expire.")
        self.report_folder = QLineEdit()
        self.report_folder.setMinimumWidth(320)
        self.report_folder.setClearButtonEnabled(True)
        self.report_folder.setPlaceholderText(str(report_folder(WorkspaceSettings())))
        self.report_folder.setToolTip("Where the monthly reconciliation workbooks are saved. Leave it empty for "
                                      "the default folder shown.")
        self.choose_folder = QPushButton("Choose…")
        self.choose_folder.clicked.connect(self._choose_folder)
        self.plan = QComboBox()
        self.plan.setMinimumWidth(180)
        self.plan.addItem("Not sure (Lite assumed)", "")
        for key, label in PIPEDRIVE_PLANS:
            self.plan.addItem(label, key)
        self.plan.setToolTip("Pipedrive gives each company a daily budget of API tokens by its plan and seats. "
                             "Crossledger spaces its syncs to leave a fifth of it for your own work.")
        self.plan_hint = QLabel()
        self.plan_hint.setObjectName("Muted")
        self._seats = 1
        self.plan.currentIndexChanged.connect(self._show_plan_hint)

        ws_form = QFormLayout()
        ws_form.setHorizontalSpacing(16)
        ws_form.setVerticalSpacing(10)
        ws_form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        ws_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        ws_form.addRow("Workspace", self.workspace)
        ws_form.addRow("Quick sync every", self.realtime)
        ws_form.addRow("Nightly full sync at", self.batch_hour)
        reconcile_row = QHBoxLayout()
        reconcile_row.setSpacing(10)
        reconcile_row.addWidget(self.reconcile_day)
        reconcile_row.addWidget(self.reconcile_hint, 1)
        ws_form.addRow("Monthly reconciliation on", reconcile_row)
        folder_row = QHBoxLayout()
        folder_row.setSpacing(10)
        folder_row.addWidget(self.report_folder, 1)
        folder_row.addWidget(self.choose_folder)
        ws_form.addRow("Save workbooks in", folder_row)
        plan_row = QHBoxLayout()
        plan_row.setSpacing(10)
        plan_row.addWidget(self.plan)
        plan_row.addWidget(self.plan_hint, 1)
        self.plan_label = QLabel("Pipedrive plan")
        ws_form.addRow(self.plan_label, plan_row)
        self._plan_row = (self.plan_label, self.plan, self.plan_hint)
        ws_form.addRow("", self.paused)
        ws_form.addRow("", self.notifications)
        times = QLabel("Times are in this computer's time zone.")
        times.setObjectName("Muted")
        ws_form.addRow("", times)
        self.ws_card = self._card("Syncing", ws_form)

        self.start_at_login = QCheckBox("Start Crossledger when I log in")
        self.start_at_login.setToolTip("Crossledger then keeps syncing from the system tray without you "
                                       "opening it.")
        login_form = QVBoxLayout()
        login_form.addWidget(self.start_at_login)
        self.login_card = self._card("This computer", login_form)

        self.message = QLabel()
        self.message.setObjectName("Muted")
        self.message.setWordWrap(True)
        self.discard_button = QPushButton("Discard changes")
        self.discard_button.clicked.connect(self.discard)
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("PrimaryButton")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        buttons = QHBoxLayout()
        buttons.addWidget(self.message, 1)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.save_button)

        self.empty = QLabel("There is no workspace yet. Add one first; its sync settings then appear here.")
        self.empty.setObjectName("Muted")
        self.empty.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(14)
        layout.addWidget(title)
        layout.addWidget(self.empty)
        layout.addWidget(self.ws_card)
        layout.addWidget(self.login_card)
        layout.addLayout(buttons)
        layout.addStretch(1)

        for signal in (self.realtime.valueChanged, self.batch_hour.currentIndexChanged,
                       self.reconcile_day.valueChanged, self.paused.toggled, self.notifications.toggled,
                       self.start_at_login.toggled, self.report_folder.textChanged, self.plan.currentIndexChanged):
            signal.connect(self._edited)
        self.reload()

    @staticmethod
    def _card(heading: str, inner: QFormLayout | QVBoxLayout) -> QFrame:
        card = QFrame()
        card.setObjectName("Card")
        box = QVBoxLayout(card)
        box.setContentsMargins(18, 14, 18, 16)
        box.setSpacing(10)
        label = QLabel(heading)
        label.setObjectName("SectionTitle")
        box.addWidget(label)
        box.addLayout(inner)
        return card

    # -- loading -----------------------------------------------------------------------------------
    def reload(self, select: str | None = None) -> None:
        """Re-read the workspaces and the autostart entry, keeping (or choosing) the selection."""
        keep = select or self.current_workspace()
        self._filling = True
        try:
            self._fill_hours()
            self.workspace.clear()
            names = [w.name for w in list_workspaces(self._store)]
            self.workspace.addItems(names)
            if keep in names:
                self.workspace.setCurrentIndex(names.index(keep))
            self._loaded_login = self._login_enabled()
            self.start_at_login.setChecked(self._loaded_login)
        finally:
            self._filling = False
        self.empty.setVisible(not names)
        self.ws_card.setEnabled(bool(names))
        self._load_workspace()

    def select(self, name: str) -> None:
        self.reload(select=name)

    def current_workspace(self) -> str | None:
        return self.workspace.currentText() or None

    def _fill_hours(self) -> None:
        today = self._now().date()
        items = sorted((local_clock(h, today), h) for h in range(24))
        self.batch_hour.clear()
        for label, hour in items:
            self.batch_hour.addItem(label, hour)
        self.reconcile_hint.setText(f"of the month, at {local_clock(RECONCILE_UTC_HOUR, today)} "
                                    "(last month's workbook)")

    def _login_enabled(self) -> bool:
        try:
            return bool(self._autostart.is_enabled())
        except OSError:
            log.warning("could not read the autostart entry", exc_info=True)
            return False

    def _workspace_changed(self, _index: int) -> None:
        if not self._filling:
            self._load_workspace()

    def _load_workspace(self) -> None:
        name = self.current_workspace()
        ws = next((w for w in list_workspaces(self._store) if w.name == name), None) if name else None
        settings, problem = _page_settings(ws.settings) if ws else (None, "")
        self._loaded = WorkspaceForm.from_settings(settings) if settings else None
        pipedrive = pipedrive_plan(self._store, name) if ws and name else None
        for widget in self._plan_row:
            widget.setVisible(pipedrive is not None)
        if self._loaded is not None and pipedrive is not None:
            self._seats = pipedrive[1]
            self._loaded = replace(self._loaded, pipedrive_plan=pipedrive[0] or "")
        if self._loaded is not None:
            self._show(self._loaded)
        self._set_message("")
        self._edited()
        if problem:
            self._set_message(problem, "error")

    def _show(self, form: WorkspaceForm) -> None:
        self._filling = True
        try:
            self.realtime.setValue(form.realtime_minutes)
            self.batch_hour.setCurrentIndex(max(0, self.batch_hour.findData(form.batch_hour)))
            self.reconcile_day.setValue(form.reconcile_day)
            self.paused.setChecked(form.paused)
            self.notifications.setChecked(form.notifications)
            self.report_folder.setText(form.report_folder)
            self.plan.setCurrentIndex(max(0, self.plan.findData(form.pipedrive_plan)))
        finally:
            self._filling = False
        self._show_plan_hint()

    def _show_plan_hint(self, *_args: object) -> None:
        tokens = daily_tokens_for(str(self.plan.currentData() or ""), self._seats)
        self.plan_hint.setText(f"{plural(self._seats, 'seat')} · {tokens:,} API tokens a day")

    # -- editing -----------------------------------------------------------------------------------
    def form(self) -> WorkspaceForm:
        plan = str(self.plan.currentData() or "") if self.plan.isVisibleTo(self) else ""
        if self._loaded is not None and not self.plan.isVisibleTo(self):
            plan = self._loaded.pipedrive_plan
        return WorkspaceForm(self.realtime.value(), int(self.batch_hour.currentData() or 0),
                             self.reconcile_day.value(), self.paused.isChecked(), self.notifications.isChecked(),
                             self.report_folder.text().strip(), plan)

    def _choose_folder(self) -> None:
        start = self.report_folder.text().strip() or str(report_folder(WorkspaceSettings()))
        chosen = QFileDialog.getExistingDirectory(self, "Save monthly workbooks in", start)
        if chosen:
            self.report_folder.setText(chosen)

    def is_dirty(self) -> bool:
        ws_dirty = self._loaded is not None and self.form() != self._loaded
        return ws_dirty or self.start_at_login.isChecked() != self._loaded_login

    def _edited(self, *_args: object) -> None:
        if self._filling:
            return
        dirty = self.is_dirty()
        self.save_button.setEnabled(dirty)
        self.discard_button.setEnabled(dirty)
        # One workspace's edits at a time: switching would silently drop them otherwise.
        self.workspace.setEnabled(not dirty and self.workspace.count() > 0)
        if dirty:
            self._set_message("Unsaved changes. Save them, or discard them to switch workspace.")
        elif self.message.property("kind") == "pending":
            self._set_message("")

    def _set_message(self, words: str, kind: str = "pending") -> None:
        self.message.setText(words)
        self.message.setProperty("kind", kind if words else "")

    def discard(self) -> None:
        self._filling = True
        try:
            self.start_at_login.setChecked(self._loaded_login)
        finally:
            self._filling = False
        if self._loaded is not None:
            self._show(self._loaded)
        self._set_message("")
        self._edited()

    def save(self) -> bool:
        """Write what changed; True when everything was saved."""
        problems: list[str] = []
        name = self.current_workspace()
        form = self.form()
        folder_changed = self._loaded is not None and form.report_folder != self._loaded.report_folder
        folder_wrong = folder_problem(form.report_folder) if folder_changed and form.report_folder else None
        if folder_wrong:
            problems.append(folder_wrong)
        elif name and self._loaded is not None and form != self._loaded:
            try:
                ws = next(w for w in list_workspaces(self._store) if w.name == name)
                schedule = replace(_page_settings(ws.settings)[0].schedule, realtime_minutes=form.realtime_minutes,
                                   batch_hour=form.batch_hour, reconcile_day=form.reconcile_day, paused=form.paused)
                save_settings(self._store, name, schedule=schedule, notifications=form.notifications,
                              report_folder=form.report_folder or None)
                if form.pipedrive_plan and form.pipedrive_plan != self._loaded.pipedrive_plan:
                    set_pipedrive_plan(self._store, name, form.pipedrive_plan)
                self._loaded = form
                if self._scheduler is not None:
                    self._scheduler.sync_jobs()
            except (StopIteration, UserError):
                problems.append(f"The workspace '{name}' no longer exists, so its settings were not saved.")
            except SQLAlchemyError:
                log.warning("saving settings of %s failed", name, exc_info=True)
                problems.append("The settings could not be written to the database. Try again; if it keeps "
                                "failing, quit and open Crossledger again.")
        want_login = self.start_at_login.isChecked()
        if want_login != self._loaded_login:
            try:
                if want_login:
                    self._autostart.enable(self._autostart_command())
                else:
                    self._autostart.disable()
                self._loaded_login = want_login
            except OSError as exc:
                what = "turn on" if want_login else "turn off"
                problems.append(f"Could not {what} starting at login ({exc.strerror or exc}). Check that your "
                                "settings folder can be written to.")
        self._edited()
        if problems:
            self._set_message(" ".join(problems), "error")
            return False
        self._set_message("Saved.", "saved")
        if name:
            self.saved.emit(name)
        return True

    def _autostart_command(self) -> list[str]:
        cmd = self._command() if callable(self._command) else self._command
        return list(cmd) if cmd else autostart_module.default_command()
