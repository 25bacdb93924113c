"""Add a client / Connect / Reconnect: thin Qt pages over app.wizard.connect_flow.

Each page loads from the flow in ``initializePage``, hands its values to the flow in
``validatePage`` (the flow decides what is wrong and what comes next), and nothing is saved
until Finish. Sign-in and the test call run on the thread pool, never on the UI thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizard,
)

from app.connectors import registry
from app.connectors.tokens import TokenStore
from app.ops.workspaces import UserError, WorkspaceInfo
from app.store.db import Store
from app.ui import text
from app.ui.connect_pages import PAGE_IDS, STEP_OF, AccountPage, FlowPage, select
from app.ui.connect_pages import label as _label
from app.ui.theme import Palette
from app.ui.wizard_kit import add_step_indicator, style_main_action
from app.ui.workers import BackgroundJob
from app.wizard.connect_flow import SIDE_LABEL, SIDES, Checked, ConnectFlow, SignedIn, explain


def wizard_style() -> str:
    """Read when a wizard opens, so it takes the palette in use (light or dark)."""
    return f"""
QLabel#ErrorText {{ color: {Palette.ERROR}; }}
QLabel#Help {{ color: {Palette.TEXT_MUTED}; }}
QFrame#FailureBox {{ background: {Palette.ERROR_SOFT}; border: 1px solid {Palette.ERROR}; border-radius: 6px; }}
QFrame#SuccessBox {{ background: {Palette.SUCCESS_SOFT}; border: 1px solid {Palette.SUCCESS}; border-radius: 6px; }}
QLabel#BoxTitle {{ font-weight: 600; }}
QToolButton#Disclosure {{ border: none; background: transparent; font-weight: 600; padding: 2px 0; }}
"""


WIZARD_STYLE = wizard_style()  # the palette at import time (the mapping and migration wizards use it)


_LIVE_JOBS: set[BackgroundJob] = set()


def start_job(job: BackgroundJob, pool: QThreadPool) -> BackgroundJob:
    """Run ``job`` holding it until it reports, even if the wizard that started it is closed and deleted
    (its relay must outlive the pool thread that emits on it)."""
    _LIVE_JOBS.add(job)
    job.done.connect(lambda: _LIVE_JOBS.discard(job))
    job.start(pool)
    return job


def _providers(kind: str) -> list[tuple[str, str]]:
    names = registry.available(kind)
    return [(n, registry.info(n).label) for n in names]


# -- add a client / what to connect --------------------------------------------------------------------

class ClientPage(FlowPage):
    def __init__(self, wizard: ConnectWizard) -> None:
        super().__init__(wizard, "client")
        self.name = QLineEdit()
        self.name.setPlaceholderText("The client company, e.g. Maple Bakery Ltd")
        self.crm = QComboBox()
        for name, label in _providers("crm"):
            self.crm.addItem(label, name)
        self.accounting = QComboBox()
        for name, label in _providers("accounting"):
            self.accounting.addItem(label, name)
        self.sides = QComboBox()
        self.sides.addItem("Both: the CRM first, then the accounting system", "both")
        self.sides.addItem("Only the CRM for now", "crm")
        self.sides.addItem("Only the accounting system for now", "accounting")
        form = QFormLayout()
        form.addRow("Client &name:", self.name)
        form.addRow("&CRM:", self.crm)
        form.addRow("&Accounting system:", self.accounting)
        form.addRow("Connect &now:", self.sides)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(_label("You can connect the other system later with Connect… on the workspace.",
                                "Help"))
        layout.addStretch(1)
        layout.addWidget(self.errors)
        self.registerField("name*", self.name)
        self.setTabOrder(self.name, self.crm)
        self.setTabOrder(self.crm, self.accounting)
        self.setTabOrder(self.accounting, self.sides)

    def initializePage(self) -> None:
        d = self.flow.data
        self.name.setText(d.get("name", ""))
        select(self.crm, d["crm"])
        select(self.accounting, d["accounting"])
        sides = d.get("sides", list(SIDES))
        select(self.sides, "both" if len(sides) == 2 else sides[0])
        self.name.setFocus()

    def values(self) -> dict[str, Any]:
        return {"name": self.name.text(), "crm": self.crm.currentData(), "accounting": self.accounting.currentData(),
                "sides": self.sides.currentData()}

    def fields(self) -> dict[str, QWidget]:
        return {"name": self.name, "crm": self.crm, "accounting": self.accounting, "sides": self.sides}

    def preview_values(self) -> dict[str, Any]:
        choice = self.sides.currentData()
        return {"sides": list(SIDES) if choice == "both" else [choice]}


class SidesPage(FlowPage):
    def __init__(self, wizard: ConnectWizard) -> None:
        super().__init__(wizard, "sides")
        self.checks: dict[str, QCheckBox] = {}
        self.combos: dict[str, QComboBox] = {}
        self.notes: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)
        grid = QFormLayout()
        for side in SIDES:
            check = QCheckBox(f"Connect the {SIDE_LABEL[side]}:")
            combo = QComboBox()
            for name, label in _providers(side):
                combo.addItem(label, name)
            check.toggled.connect(self.completeChanged)
            self.checks[side], self.combos[side] = check, combo
            self.notes[side] = _label(name="Help")
            grid.addRow(check, combo)
            grid.addRow("", self.notes[side])
        layout.addLayout(grid)
        layout.addStretch(1)
        layout.addWidget(self.errors)

    def initializePage(self) -> None:
        d = self.flow.data
        connected = d.get("connected", [])
        for side in SIDES:
            select(self.combos[side], d[side])
            self.checks[side].setChecked(side in d["sides"])
            self.combos[side].setEnabled(side not in connected)
            self.notes[side].setText("Connected. Tick it only to sign in again." if side in connected else
                                     "Not connected yet.")

    def _sides(self) -> list[str]:
        return [s for s in SIDES if self.checks[s].isChecked()]

    def isComplete(self) -> bool:
        return bool(self._sides())

    def values(self) -> dict[str, Any]:
        return {"sides": self._sides(), **{s: self.combos[s].currentData() for s in SIDES}}

    def fields(self) -> dict[str, QWidget]:
        return dict(self.combos)

    def preview_values(self) -> dict[str, Any]:
        return {"sides": self._sides() or ["crm"]}


# -- one side: sign-in, organisation (the account step is in app.ui.connect_pages) ---------------------

class SignInPage(FlowPage):
    """Runs the sign-in in the background with a Cancel; a failure says what happened and what to do."""

    def __init__(self, wizard: ConnectWizard, side: str) -> None:
        super().__init__(wizard, f"{side}.signin")
        self.side = side
        self.job: BackgroundJob | None = None
        self.cancel_event: threading.Event | None = None
        self.status = _label()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(6)
        self.link = QLineEdit()
        self.link.setReadOnly(True)
        self.copy = QPushButton("Copy link")
        self.copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.link.text()))
        self.link_row = QWidget()
        row = QHBoxLayout(self.link_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(_label("If no browser window opened, open this link:", "Help", wrap=False))
        row.addWidget(self.link, 1)
        row.addWidget(self.copy)
        self.cancel_button = QPushButton("Cancel sign-in")
        self.cancel_button.clicked.connect(self.cancel)

        self.failure = QFrame()
        self.failure.setObjectName("FailureBox")
        self.failure_title = _label(name="BoxTitle")
        self.failure_detail = _label()
        self.retry_button = QPushButton("Try again")
        self.retry_button.setObjectName("PrimaryButton")  # what to do next after a failed sign-in
        self.retry_button.clicked.connect(self.start)
        self.back_button = QPushButton("Change the details")
        self.back_button.clicked.connect(lambda: self.wizard().back())
        fbox = QVBoxLayout(self.failure)
        fbox.addWidget(self.failure_title)
        fbox.addWidget(self.failure_detail)
        frow = QHBoxLayout()
        frow.addStretch(1)
        frow.addWidget(self.back_button)
        frow.addWidget(self.retry_button)
        fbox.addLayout(frow)

        self.success = QFrame()
        self.success.setObjectName("SuccessBox")
        self.success_text = _label(name="BoxTitle")
        QVBoxLayout(self.success).addWidget(self.success_text)

        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.busy)
        layout.addWidget(self.link_row)
        cancel_row = QHBoxLayout()
        cancel_row.addStretch(1)
        cancel_row.addWidget(self.cancel_button)
        layout.addLayout(cancel_row)
        layout.addWidget(self.failure)
        layout.addWidget(self.success)
        layout.addStretch(1)
        layout.addWidget(self.errors)

    @property
    def label(self) -> str:
        return registry.info(self.flow.data[self.side]).label

    def initializePage(self) -> None:
        self.setTitle(f"Sign in to {self.label}")
        source = self.w.cf.source(self.side)
        self.setSubTitle("Crossledger starts the sandbox and signs in to it." if source == "sandbox" else
                         f"Crossledger reads the {self.label} account once with the access token, and saves the "
                         f"token to the system keyring only if {self.label} accepts it." if source == "token" else
                         f"Your browser opens {self.label}'s sign-in page. Sign in there and choose Allow; then "
                         "come back here.")
        if self.flow.data.get(f"{self.side}.connection") is None:
            self.start()
        else:
            self._show_success()

    def cleanupPage(self) -> None:  # Back: stop waiting
        self.cancel()

    def isComplete(self) -> bool:
        return self.flow.data.get(f"{self.side}.connection") is not None and not self.running

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def start(self) -> None:
        if self.running:
            return
        self.failure.hide()
        self.success.hide()
        self.link_row.hide()
        self.errors.hide()
        self.status.setText(f"Checking the access token with {self.label}…" if self.w.cf.source(self.side) == "token"
                            else f"Signing in to {self.label}…")
        self.busy.show()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        cancel = self.cancel_event = threading.Event()
        cf, side = self.w.cf, self.side

        def work(progress: Any) -> SignedIn:
            return cf.sign_in(side, cancel=cancel, on_url=lambda url: progress(url, 0, 0))

        self.job = BackgroundJob(work, on_success=self._done, on_failure=self._failed, on_progress=self._url)
        self.job.done.connect(self._job_done)
        start_job(self.job, self.w.pool)
        self.completeChanged.emit()

    def _job_done(self) -> None:
        if not self.w.closed:
            self.completeChanged.emit()

    def cancel(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()
        self.cancel_button.setEnabled(False)

    def _url(self, url: str, _done: int, _total: int) -> None:
        if not self.w.closed and self.flow.data.get(f"{self.side}.source") != "sandbox":
            self.link.setText(url)
            self.link.setCursorPosition(0)
            self.link_row.show()
            self.status.setText(f"Waiting for you to sign in to {self.label} in your browser…")

    def _done(self, result: SignedIn) -> None:
        if self.w.closed:
            return
        self._idle()
        self.w.cf.record_sign_in(result)
        self._show_success()

    def _show_success(self) -> None:
        self.status.setText("")
        company = self.flow.data.get(f"{self.side}.company") or self.label
        more = len(self.flow.data.get(f"{self.side}.tenants") or [])
        extra = f" This sign-in opened {more} organisations; choose the client's on the next page." if more > 1 else ""
        self.success_text.setText(text.sentence(f"Signed in to {self.label}: {company}") + extra)
        self.success.show()
        self.w.refresh_step()  # several organisations: a step to choose one comes next
        self.completeChanged.emit()

    def _failed(self, exc: Exception) -> None:
        if self.w.closed:
            return
        self._idle()
        failure = explain(exc, self.flow.data[self.side])
        self.status.setText("")
        self.failure_title.setText(failure.title)
        self.failure_detail.setText(failure.detail)
        self.back_button.setVisible(failure.action == "back")
        self.retry_button.setDefault(failure.action != "back")
        self.failure.show()
        self.last_failure = failure

    def _idle(self) -> None:
        self.busy.hide()
        self.cancel_button.hide()
        self.link_row.hide()


class TenantPage(FlowPage):
    def __init__(self, wizard: ConnectWizard, side: str) -> None:
        super().__init__(wizard, f"{side}.tenant")
        self.side = side
        self.list = QListWidget()
        self.list.setSpacing(3)
        self.list.itemSelectionChanged.connect(self.completeChanged)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.errors)

    def initializePage(self) -> None:
        self.list.clear()
        conn = self.flow.data[f"{self.side}.connection"]
        for tenant in self.flow.data.get(f"{self.side}.tenants") or []:
            item = QListWidgetItem(tenant.name or tenant.id)
            item.setData(Qt.ItemDataRole.UserRole, tenant.id)
            self.list.addItem(item)
            if tenant.id == conn.tenant_id:
                item.setSelected(True)
                self.list.setCurrentItem(item)

    def isComplete(self) -> bool:
        return bool(self.list.selectedItems())

    def values(self) -> dict[str, Any]:
        items = self.list.selectedItems()
        return {"tenant": items[0].data(Qt.ItemDataRole.UserRole) if items else None}


class FinishPage(FlowPage):
    def __init__(self, wizard: ConnectWizard) -> None:
        super().__init__(wizard, "finish")
        self.rows = QVBoxLayout()
        self.status = _label()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(6)
        self.failure = _label(name="ErrorText")
        self.retry = QPushButton("Try the test call again")
        self.retry.clicked.connect(self._check)
        layout = QVBoxLayout(self)
        layout.addLayout(self.rows)
        layout.addWidget(self.status)
        layout.addWidget(self.busy)
        layout.addWidget(self.failure)
        layout.addWidget(self.retry, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        layout.addWidget(self.errors)
        self.job: BackgroundJob | None = None

    def initializePage(self) -> None:
        self._check()

    def _show_rows(self) -> None:
        while self.rows.count():
            item = self.rows.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        for system, what in self.w.cf.summary():
            self.rows.addWidget(_label(f"<b>{system}</b>: {what}"))

    def _check(self) -> None:
        self._show_rows()
        self.failure.hide()
        self.retry.hide()
        self.busy.show()
        self.status.setText("Asking each system for the company's name…")
        cf = self.w.cf
        self.job = BackgroundJob(lambda _p: cf.check_companies(), on_success=self._checked,
                                 on_failure=self._failed)
        self.job.done.connect(lambda: None if self.w.closed else self.completeChanged.emit())
        start_job(self.job, self.w.pool)
        self.completeChanged.emit()

    def _checked(self, checks: list[Checked]) -> None:
        if self.w.closed:
            return
        self.busy.hide()
        self.w.cf.record_checks(checks)
        self._show_rows()
        self.status.setText("Everything answered. Click Finish to save; the sign-ins are already in the system "
                            "keyring.")

    def _failed(self, exc: Exception) -> None:
        if self.w.closed:
            return
        self.busy.hide()
        side = next((s for s in self.flow.data["sides"] if not self.flow.data.get(f"{s}.checked")),
                    self.flow.data["sides"][0])
        failure = explain(exc, self.flow.data[side])
        self.status.setText("")
        self.failure.setText(f"{failure.title}. {failure.detail}")
        self.failure.show()
        self.retry.show()

    def isComplete(self) -> bool:
        d = self.flow.data
        return all(d.get(f"{s}.checked") for s in d["sides"]) and not (self.job and self.job.running)

    def validatePage(self) -> bool:
        try:
            self.w.result_workspace = self.w.cf.commit()
        except UserError as exc:
            self.show_problems({"finish": str(exc)})
            return False
        return True


class ConnectWizard(QWizard):
    """``workspace=None``: Add a client. ``workspace``: Connect…; with ``reconnect``: Reconnect that side."""

    saved = Signal(str)  # the workspace's name

    def __init__(self, store: Store, tokens: TokenStore, home: Path, *, workspace: str | None = None,
                 reconnect: str | None = None, pool: QThreadPool | None = None, parent: QWidget | None = None,
                 **flow_kw: Any) -> None:
        super().__init__(parent)
        self.cf = ConnectFlow(store, tokens, home, workspace=workspace, reconnect=reconnect, **flow_kw)
        self.pool = pool or QThreadPool.globalInstance()
        self.closed = False
        self.result_workspace: WorkspaceInfo | None = None
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setStyleSheet(wizard_style())
        title = {"new": "Add a client", "connect": "Connect", "reconnect": "Reconnect"}[self.cf.mode]
        self.setWindowTitle(f"{title} — Crossledger")
        self.setMinimumSize(680, 560)
        self.pages: dict[str, FlowPage] = {"client": ClientPage(self), "sides": SidesPage(self),
                                        "finish": FinishPage(self)}
        for side in SIDES:
            self.pages[f"{side}.account"] = AccountPage(self, side)
            self.pages[f"{side}.signin"] = SignInPage(self, side)
            self.pages[f"{side}.tenant"] = TenantPage(self, side)
        for step, page in self.pages.items():
            self.setPage(PAGE_IDS[step], page)
        self.setStartId(PAGE_IDS[self.cf.flow.history[0]])
        style_main_action(self, finish="Finish")
        self.refresh_step = add_step_indicator(self, self._position)

    def _position(self, page_id: int) -> tuple[int, int] | None:
        page = self.page(page_id)
        data = {**self.cf.flow.data, **page.preview_values()} if isinstance(page, FlowPage) else None
        return self.cf.flow.position(STEP_OF[page_id], data) if page_id in STEP_OF else None

    def page_for(self, step: str) -> FlowPage:
        return self.pages[step]

    def done(self, result: int) -> None:
        if result == QWizard.DialogCode.Accepted:
            super().done(result)  # QWizard validates the last page here: FinishPage commits
            if self.result_workspace is not None:
                self.closed = True
                self.saved.emit(self.result_workspace.name)
            return
        self.closed = True
        for page in self.pages.values():
            if isinstance(page, SignInPage):
                page.cancel()
        self.cf.abandon()
        for page in self.pages.values():  # a sign-in finishing after Cancel is dropped too
            job = getattr(page, "job", None)
            if job is not None and job.running:
                job.done.connect(self.cf.abandon)
        super().done(result)
