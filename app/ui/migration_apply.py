"""The migration wizard's last pages: Ready to apply, Applying the plan ("n of N records done" and the
time left, redrawn every second, with Pause/Continue), and Migration done."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QVBoxLayout, QWizard

from app.ops.migration import MigrationResult
from app.ops.workspaces import UserError
from app.ui import text
from app.ui.connect_wizard import start_job
from app.ui.eta import Eta, time_left_words
from app.ui.migration_plan import CountsBar, _esc, _failure_words, _label, _Page
from app.ui.workers import BackgroundJob

if TYPE_CHECKING:
    from app.ui.migration_wizard import MigrationWizard


class StartPage(_Page):
    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "start", "Ready to apply",
                         "Apply does exactly this plan and nothing else.")
        self.counts = CountsBar()
        self.eta = _label(name="BoxTitle")
        self.more = _label(name="Help")
        layout = QVBoxLayout(self)
        layout.addWidget(self.counts)
        layout.addSpacing(12)
        layout.addWidget(self.eta)
        layout.addWidget(self.more)
        layout.addStretch(1)
        layout.addWidget(self.errors)
        self.setCommitPage(True)

    def initializePage(self) -> None:
        mf = self.mf
        self.counts.show_counts(mf.counts(), self.w.crm_label, self.w.ledger_label)
        self.eta.setText(mf.eta_text())
        left_out = len(mf.excluded)
        self.more.setText(
            (f"{text.plural(left_out, 'row')} you left out {'is' if left_out == 1 else 'are'} not touched. "
             if left_out else "") +
            "You can pause or cancel at any time: what is done stays done, and the rest can be continued later "
            "without doing anything twice.")
        self.w.setButtonText(QWizard.WizardButton.CommitButton, "Apply")

    def validatePage(self) -> bool:
        problems = self.mf.flow.check({}, "start")
        if not problems:
            try:
                self.mf.commit()
            except UserError as exc:
                problems = {"start": str(exc)}
        if problems:
            self.show_problems(problems)
            return False
        return super().validatePage()


class ApplyPage(_Page):
    progressed = Signal(str, int, int)  # for tests and screenshots: a step of the apply was shown

    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "apply", "Applying the plan",
                         "Everything written is saved as it goes. Pause or Cancel stops after the current batch; "
                         "the rest can be continued later.")
        self.job: BackgroundJob | None = None
        self.cancel_event: threading.Event | None = None
        self.pausing = False
        self.stage = _label(name="Stage")
        self.eta = _label(name="Help")
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.done_text = _label(name="Help", wrap=False)
        widest = "999,999 of 999,999 records done"
        self.done_text.setMinimumWidth(self.done_text.fontMetrics().horizontalAdvance(widest))
        self.eta.setWordWrap(False)
        self.eta.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # "1,234 of 10,000 records done" and the time left from the pace so far, redrawn every second
        # (the wizard's clock: tests move it by hand)
        self.pace = Eta(wizard.clock)
        self.ticker = QTimer(self)
        self.ticker.setInterval(1000)
        self.ticker.timeout.connect(self._redraw)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Stop after the current batch; Continue picks up where it stopped")
        self.pause_button.clicked.connect(self.pause_or_continue)
        row = QHBoxLayout()
        row.addWidget(self.done_text)
        row.addStretch(1)
        row.addWidget(self.eta)
        self.counts = CountsBar()
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.pause_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.stage)
        layout.addWidget(self.bar)
        layout.addLayout(row)
        layout.addLayout(buttons)
        layout.addSpacing(16)
        layout.addWidget(_label("The plan being applied", "BoxTitle"))
        layout.addWidget(self.counts)
        layout.addStretch(1)
        layout.addWidget(self.errors)

    def initializePage(self) -> None:
        u = self.mf.unfinished
        counts = self.mf.counts() if self.mf.result is not None else (u.counts if u else {})
        self.counts.show_counts(counts, self.w.crm_label, self.w.ledger_label)
        if self.mf.applied is None or self.mf.applied.status not in ("applied", "partial", "nothing_to_do"):
            self.start()

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def isComplete(self) -> bool:
        a = self.mf.applied
        return a is not None and a.status in ("applied", "partial", "nothing_to_do") and not self.running

    def start(self) -> None:
        if self.running:
            return
        self.show_problems({})
        self.pausing = False
        self.pause_button.setText("Pause")
        self.pause_button.setEnabled(True)
        self.stage.setText("Starting…")
        self.eta.setText(self.mf.eta_text() if self.mf.result else "")
        self.pace.restart()
        self.ticker.start()
        cancel = self.cancel_event = threading.Event()
        mf = self.mf

        def work(progress: Any) -> MigrationResult:
            return mf.apply(progress, cancel)

        self.job = BackgroundJob(work, on_success=self._done, on_failure=self._failed, on_progress=self._progress)
        start_job(self.job, self.w.pool)
        self.completeChanged.emit()

    def stop(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()

    def pause_or_continue(self) -> None:
        if self.running:
            self.pausing = True
            self.stop()
            self.pause_button.setEnabled(False)
            self.stage.setText("Pausing after the current batch…")
        else:
            self.start()

    def _progress(self, stage: str, done: int, total: int) -> None:
        if self.w.closed:
            return
        words = stage.partition(" (")[0]  # the flow's own "(about 2 min left)": the pace here says it
        if stage.startswith("Applying the plan: "):  # the estimate from the providers' limits, until counting starts
            self.eta.setText(f"About {stage.split(': ', 1)[1].removeprefix('about ')}.")
        if not self.pausing:
            self.stage.setText(text.progress_text(words) if words != "Done" else "Finishing…")
        if total > 1:
            self.pace.update(done, total)
            self.bar.setRange(0, total)
            self.bar.setValue(done)
            self._redraw()
        self.progressed.emit(stage, done, total)

    def _redraw(self) -> None:
        """The count and the time left, from the pace since counting began."""
        pace = self.pace
        if pace.total <= 0 or self.w.closed:
            return
        self.done_text.setText(f"{min(pace.done, pace.total):,} of {pace.total:,} records done")
        left = pace.seconds_left()
        if left is not None and pace.done < pace.total and not self.pausing:
            words = time_left_words(left)
            self.eta.setText(f"{words[:1].upper()}{words[1:]}.")

    def _done(self, result: MigrationResult) -> None:
        self.ticker.stop()
        if self.w.closed:
            return
        self.mf.record_applied(result)
        if result.status in ("applied", "partial", "nothing_to_do"):
            self.bar.setValue(self.bar.maximum())
            self.pause_button.hide()
            self.stage.setText("The plan is done.")
            self.eta.setText("")
            self.completeChanged.emit()
            if self.w.currentPage() is self:
                QTimer.singleShot(0, self.w.next)
            return
        self.pause_button.setEnabled(True)
        self.pause_button.setText("Continue")
        u = self.mf.unfinished
        done = f" {u.done:,} of {u.done + u.left:,} records are done." if u else ""
        if result.status == "cancelled":
            self.stage.setText(f"Paused.{done} Everything so far is saved; Continue picks up where it stopped.")
        else:
            self.stage.setText(f"The migration stopped before the end.{done} Everything so far is saved.")
            self.show_problems({"apply": " ".join(result.errors[:3]) or
                                "Continue to try the rest again; nothing done is done twice."})
        self.eta.setText("")
        self.completeChanged.emit()

    def _failed(self, exc: Exception) -> None:
        self.ticker.stop()
        if self.w.closed:
            return
        self.pause_button.setEnabled(True)
        self.pause_button.setText("Continue")
        self.stage.setText("The migration stopped before the end. Everything so far is saved.")
        self.show_problems({"apply": _failure_words(exc, self.w.workspace)})
        self.completeChanged.emit()


class DonePage(_Page):
    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "done", "Migration done")
        self.lines = _label()
        self.lines.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.lines)
        layout.addStretch(1)

    def initializePage(self) -> None:
        lines = self.mf.done_lines()
        self.lines.setText("<br><br>".join(_esc(line) for line in lines))
        res = self.mf.applied
        if res is not None and res.status != "nothing_to_do":
            self.setSubTitle(f"{self.w.workspace}: both sides now start from one clean list of customers "
                             f"(took {self.mf.elapsed_text()}).")

