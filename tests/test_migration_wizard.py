"""The migration wizard: the flow without widgets on in-process sandboxes, then the Qt pages over HTTP ones."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import queue
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.connectors import registry
from app.connectors.base import CustomerWrite, RecordWrite
from app.domain.models import Party
from app.ops.conflicts import ambiguous_matches
from app.ops.workspaces import UserError
from app.sandbox.server import InProcessTransport
from app.store.db import Store
from app.store.models import Link, MigrationPlan, Workspace
from app.wizard.migration_flow import APART, LATER, LINK, MigrationFlow, later_matches
from tests.shots import screenshot_dir
from tests.support import Connected, in_process

SHOTS = screenshot_dir()
LONG = 300_000  # ms: a wait for a state that comes on its own; only a broken run ever takes this long


def add_near_matches(crm, acct) -> None:
    """Pairs a person has to judge: names close but not the same, and a shared email under another name."""
    crm.update_records([RecordWrite(f"near-crm-{n}", "company", None, props) for n, props in enumerate([
        {"name": "Copper Kettle Catering Ltd", "country": "GB"},
        {"name": "Northwind Traders", "billing_email": "billing@zephyr-optics.com"},
        {"name": "Bluebell Garden Supplies Ltd", "country": "GB"},
    ])])
    acct.create_customers([CustomerWrite(f"near-acct-{n}", party, display_name=party.name) for n, party in enumerate([
        Party("company", "Copper Kettle Caterers Ltd", country="GB"),
        Party("company", "Zephyr Optics GmbH", email="billing@zephyr-optics.com"),
        Party("company", "Bluebell Garden Supply Co", country="GB"),
    ])])


class Sides:
    """A workspace over two in-process sandboxes seeded like the demo; each open gets fresh connectors."""

    def __init__(self, tmp_path: Path, crm: str = "hubspot", acct: str = "quickbooks", name: str = "Demo") -> None:
        self.store = Store(f"sqlite:///{tmp_path}/w.db")
        with self.store.session() as s:
            s.add(Workspace(name=name, crm_provider=crm, accounting_provider=acct, settings={}))
        self.name = name
        self.crm = in_process(crm, "demo")
        self.acct = in_process(acct, "demo")

    @staticmethod
    def _open(side: Connected):
        return registry.make_connector(side.conn, side.tokens, transport=InProcessTransport(side.sandbox),
                                       sleep=side.sandbox.advance)

    def connectors(self):
        return self._open(self.crm), self._open(self.acct)

    def flow(self) -> MigrationFlow:
        return MigrationFlow(self.store, None, self.name, connectors=self.connectors, sleep=self.acct.sandbox.advance)

    def ledger_names(self) -> Counter:
        acct = self._open(self.acct)
        try:
            return Counter((c.raw_name or c.party.name).casefold() for c in acct.read_customers(None).records
                           if c.active)
        finally:
            acct.close()

    def crm_names(self) -> list[str]:
        crm = self._open(self.crm)
        try:
            return [str(r.properties.get("name") or "") for r in crm.read_records("company", None).records]
        finally:
            crm.close()

    def add_near_matches(self) -> None:
        crm, acct = self.connectors()
        try:
            add_near_matches(crm, acct)
        finally:
            crm.close()
            acct.close()

    def links(self) -> dict[tuple[str, str], str]:
        with self.store.session() as s:
            return {(lk.crm_type, lk.crm_id): lk.acct_id for lk in s.scalars(select(Link))}


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[Sides]:
    w = Sides(tmp_path)
    yield w
    w.store.dispose()


def read(flow: MigrationFlow) -> None:
    flow.record_read(flow.read())
    assert flow.flow.submit() == {}  # read -> plan


def test_plan_exclude_apply_exactly_that_and_a_second_apply_does_nothing(sides):
    flow = sides.flow()
    assert flow.flow.current.id == "read"
    before = sides.ledger_names()
    read(flow)
    assert flow.flow.current.id == "plan"
    counts = flow.counts()
    assert counts["link"] > 5 and counts["create_ledger"] > 50 and counts["invalid"] > 0
    assert sum(sides.ledger_names().values()) == sum(before.values())  # reading wrote nothing

    # every link says why, in words: the score explained
    links = flow.rows("link")
    assert links and all("%" in r.why or "same" in r.why for r in links)
    assert all(r.before and r.after.startswith("Linked.") for r in links)
    # searchable
    some = flow.rows("create_ledger")[3]
    found = flow.rows(search=some.name.upper())
    assert some.id in [r.id for r in found] and len(found) < len(flow.rows())
    by_email = flow.rows(search="same email")
    assert any("same email" in r.why for r in by_email) and len(by_email) < len(flow.rows())

    # leave out one create on each side and one link
    left_out = {a: flow.rows(a)[0] for a in ("create_ledger", "create_crm", "link")}
    for r in left_out.values():
        flow.set_excluded(r.id, True)
    shown = flow.counts()
    assert shown["create_ledger"] == counts["create_ledger"] - 1 and shown["link"] == counts["link"] - 1
    eta = flow.eta_text()
    assert "at the pace" in eta and "write call" not in eta

    while flow.flow.current.id != "start":
        assert flow.flow.submit() == {}
    flow.commit()
    assert flow.flow.submit() == {}  # start -> apply
    result = flow.apply()
    flow.record_applied(result)
    assert result.status == "applied", result.errors
    assert result.done == shown  # the counts shown are what was done
    assert flow.flow.submit() == {} and flow.flow.current.id == "done"
    assert any("Review tab" in line or "Held back" in line for line in flow.done_lines())

    after = sides.ledger_names()
    assert max(after.values()) == 1  # no customer twice
    assert sum(after.values()) == sum(before.values()) + shown["create_ledger"]
    made = left_out["create_ledger"].after.split(": ", 1)[1].split(",")[0].casefold()
    assert made not in after  # the left-out row was not written
    assert left_out["create_crm"].name not in sides.crm_names()
    crm_type, crm_id = left_out["link"].crm.split(" ")
    assert (crm_type, crm_id) not in sides.links()
    assert left_out["link"].ledger not in sides.links().values()

    again = flow.apply()
    assert again.status == "nothing_to_do" and again.writes == 0
    assert sides.ledger_names() == after


def test_apply_interrupted_then_resumed_by_a_new_wizard_finishes_once(sides):
    flow = sides.flow()
    read(flow)
    shown = flow.counts()
    flow.commit()
    cancel = threading.Event()

    def progress(_stage: str, done: int, _total: int) -> None:
        if done >= 40:
            cancel.set()  # Pause or Cancel, or the app closed

    first = flow.apply(progress, cancel)
    flow.record_applied(first)
    assert first.status == "cancelled"
    assert flow.unfinished is not None and flow.unfinished.done > 0

    # after a restart: the wizard offers to continue, and continuing redoes nothing
    again = sides.flow()
    assert again.flow.current.id == "resume"
    assert again.unfinished.counts == shown
    with pytest.raises(UserError, match="has not finished"):
        again.read()  # no new plan while one is half done
    assert again.flow.submit() == {} and again.flow.current.id == "apply"
    done = again.apply()
    again.record_applied(done)
    assert done.status == "applied", done.errors
    assert done.done == shown
    assert max(sides.ledger_names().values()) == 1
    assert again.flow.submit() == {} and again.flow.current.id == "done"
    assert sides.flow().flow.current.id == "read"  # nothing left to resume


def test_possible_matches_link_keep_apart_or_wait_on_the_review_tab(sides):
    sides.add_near_matches()
    flow = sides.flow()
    read(flow)
    pairs = [r for r in flow.review_rows() if r.crm_fields and r.ledger_fields]
    assert len(pairs) >= 2, [r.why for r in flow.review_rows()]
    review = flow.counts()["review"]
    link, apart = pairs[0], pairs[1]
    assert flow.choices_for(link.id) == [LINK, APART, LATER]
    flow.decide(link.id, LINK)
    flow.decide(apart.id, APART)
    counts = flow.counts()
    assert counts["review"] == review - 2
    linked = next(r for r in flow.rows("link") if r.id == link.id)
    assert "same customer" in linked.why
    assert any(r.id == apart.id for r in flow.rows("create_ledger"))
    flow.commit()
    with pytest.raises(UserError):
        flow.decide(apart.id, LATER)  # the plan is being applied
    result = flow.apply()
    assert result.status == "applied", result.errors
    assert result.done == counts

    links = sides.links()
    assert links[tuple(link.crm.split(" "))] == link.ledger  # linked as the bookkeeper said
    made = links[tuple(apart.crm.split(" "))]  # kept apart: a customer of its own in the ledger
    assert made != apart.ledger
    assert [acct for acct in links.values() if acct == apart.ledger]  # and the ledger customer got a CRM record
    assert max(sides.ledger_names().values()) == 1
    with sides.store.session() as s:
        ws_id = s.scalars(select(Workspace.id)).one()
        assert s.scalars(select(MigrationPlan)).one().status == "applied"
    # what waits: every possible match left for later is on the Review page's list
    left = [r for r in flow.review_rows() if r.choice is None]
    assert len(left) == review - 2
    waiting = {m.record_id: m for m in later_matches(sides.store, ws_id)}
    assert set(waiting) == {r.crm.split(" ")[1] for r in left}
    assert {m.record_id for m in ambiguous_matches(sides.store, ws_id)} >= set(waiting)
    for r in left:
        m = waiting[r.crm.split(" ")[1]]
        assert "In HubSpot:" in m.explanation and "In QuickBooks Online:" in m.explanation  # side by side


# -- the Qt wizard ----------------------------------------------------------------------------------------

@pytest.fixture
def qapp_themed(qapp):
    from PySide6.QtCore import QThreadPool

    from app.ops import sandboxes
    from app.ui.app import make_application

    make_application()
    yield qapp
    QThreadPool.globalInstance().waitForDone(60_000)
    sandboxes.stop_all()


def _numbers(bar) -> dict[str, int]:
    return {a: int(label.text().replace(",", "")) for a, label in bar.numbers.items()}


def _next(qtbot, wizard, button=None) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QWizard

    before = wizard.currentId()
    qtbot.mouseClick(wizard.button(button or QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)
    assert wizard.currentId() != before, wizard.currentPage().errors.text()


def test_the_wizard_from_the_demo_sandboxes_to_a_finished_migration(qtbot, qapp_themed, home, qtmodeltester):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QWizard

    from app.connectors.tokens import MemoryTokenStore
    from app.ops import workspaces
    from app.ui.main_window import MainWindow
    from app.ui.migration_wizard import MigrationWizard
    from tests.test_wizards_ui import _connected

    store = Store(f"sqlite:///{home / 'crossledger.db'}")
    tokens = MemoryTokenStore()
    _connected(store, tokens, home, "Demo Bakery")  # HubSpot and QuickBooks sandboxes over HTTP, seeded like the demo
    ws = workspaces.get_workspace(store, "Demo Bakery")
    crm, acct = workspaces.open_connectors(store, tokens, ws)
    add_near_matches(crm, acct)
    ledger_before = {(c.raw_name or c.party.name).casefold() for c in acct.read_customers(None).records}
    crm.close()
    acct.close()

    window = MainWindow(store, tokens, home=home)
    qtbot.addWidget(window)
    window.resize(1200, 760)
    window.show()
    try:
        menu = window.workspace_actions.menu
        assert window.migration_actions.action in menu.actions()
        menu.aboutToShow.emit()
        assert window.migration_actions.action.isEnabled()
        button = window.page.connection_bar.migrate_button  # the same, under the workspace's name
        assert button.isVisible() and button.isEnabled()
        button.click()
        wizard = window.migration_actions.wizard
        assert isinstance(wizard, MigrationWizard) and wizard.isVisible()
        wizard.resize(1180, 760)
        assert wizard.currentPage().step_id == "read"
        qtbot.waitUntil(lambda: wizard.currentPage().step_id == "plan", timeout=LONG)  # goes on by itself

        plan = wizard.currentPage()
        qtmodeltester.check(plan.model)
        mf = wizard.mf
        counts = _numbers(plan.counts)
        assert counts == mf.counts() and counts["create_ledger"] > 50 and counts["review"] == 3
        assert plan.proxy.rowCount() == sum(counts.values())
        # search: only the rows whose words match
        qtbot.keyClicks(plan.search, "Copper Kettle")
        assert 0 < plan.proxy.rowCount() < 5
        plan.search.clear()
        # leave out one customer to create: a real key press on its check box
        plan.kind.setCurrentIndex(plan.kind.findData("create_ledger"))
        assert plan.proxy.rowCount() == counts["create_ledger"]
        index = plan.proxy.index(1, 0)
        left_out = index.data(Qt.ItemDataRole.UserRole)
        plan.view.setFocus()
        plan.view.setCurrentIndex(index)
        qtbot.keyClick(plan.view, Qt.Key.Key_Space)
        assert left_out.id in mf.excluded
        assert _numbers(plan.counts)["create_ledger"] == counts["create_ledger"] - 1
        # a record that is not valid is skipped: no "Apply" tick, and none can be given to it
        plan.kind.setCurrentIndex(plan.kind.findData("invalid"))
        assert plan.proxy.rowCount() == counts["invalid"]
        for n in range(plan.proxy.rowCount()):
            tick = plan.proxy.index(n, 0)
            assert tick.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
            assert not tick.flags() & Qt.ItemFlag.ItemIsUserCheckable
        assert plan.title().startswith("Step ") and ": " in plan.title()
        assert wizard.button(QWizard.WizardButton.CommitButton).objectName() == "PrimaryButton"
        plan.kind.setCurrentIndex(0)
        link = next(r for r in mf.rows("link") if "same" in r.why)
        plan.select_row(link.id)
        assert "Why:" in plan.detail.text() and "Now:" in plan.detail.text()
        wizard.grab().save(str(SHOTS / "migration-plan.png"))

        _next(qtbot, wizard)
        invalid = wizard.currentPage()
        assert invalid.step_id == "invalid" and invalid.list.count() == counts["invalid"]
        _next(qtbot, wizard)
        review = wizard.currentPage()
        assert review.step_id == "review" and review.list.count() == 3
        copper = next(r for r in review.rows if r.name.startswith("Copper Kettle"))
        review.choose(copper.id, LINK)
        assert mf.decisions[copper.id].choice == LINK
        assert "links the two" in review.effect.text()
        _next(qtbot, wizard)

        start = wizard.currentPage()
        assert start.step_id == "start"
        shown = _numbers(start.counts)
        assert shown["review"] == 2 and shown["link"] == counts["link"] + 1
        assert shown["create_ledger"] == counts["create_ledger"] - 1
        assert "at the pace" in start.eta.text() and "call" not in start.eta.text()
        assert wizard.button(QWizard.WizardButton.CommitButton).text() == "Apply"

        apply = wizard.page_for("apply")
        shot: list[str] = []

        def grab(_stage: str, done: int, total: int) -> None:
            if not shot and 0 < done < total:
                shot.append(apply.stage.text())
                wizard.grab().save(str(SHOTS / "migration-apply.png"))

        apply.progressed.connect(grab)
        _next(qtbot, wizard, QWizard.WizardButton.CommitButton)
        qtbot.waitUntil(lambda: wizard.currentPage().step_id == "done", timeout=LONG)
        assert shot, "no progress was shown while applying"
        done = wizard.currentPage()
        assert mf.applied.status == "applied", mf.applied.errors
        assert mf.applied.done == shown  # the counts shown are what was applied
        words = done.lines.text()
        assert f"Created {shown['create_ledger']:,} customers in QuickBooks Online" in words
        assert "Review tab" in words and "Sync now" in words
        wizard.grab().save(str(SHOTS / "migration-done.png"))
        with qtbot.waitSignal(wizard.migrated, timeout=60_000):
            _next_finish = wizard.button(QWizard.WizardButton.FinishButton)
            qtbot.mouseClick(_next_finish, Qt.MouseButton.LeftButton)
        assert "migration" in window.workspace_actions.last_notice.title

        crm, acct = workspaces.open_connectors(store, tokens, ws)
        names = Counter((c.raw_name or c.party.name).casefold() for c in acct.read_customers(None).records)
        crm.close()
        acct.close()
        assert max(names.values()) == 1
        assert len(names) == len(ledger_before) + shown["create_ledger"]
        assert left_out.name.casefold() not in set(names) - ledger_before  # the row left out was not written

        # the two left for later wait on the Review tab, side by side
        window.page.review.reload()
        from app.ui.models import RowRole

        model = window.page.review.model
        items = [model.index(r, 0).data(RowRole) for r in range(model.rowCount())]
        later = [i for i in items if i.kind == "match" and "Left for later" in i.match.explanation]
        assert len(later) == 2
        assert all("In HubSpot:" in i.match.explanation and "In QuickBooks Online:" in i.match.explanation
                   for i in later)
    finally:
        window.shutdown()
        store.dispose()


class Gated:
    """The ledger's connector, holding chosen create calls until the test lets them go. Every job opens
    its own connectors (on its pool thread), so a held call is announced on a queue shared by all of
    them: the test never has to guess which connector the current job is using."""

    def __init__(self, inner, hold: set[int], held: queue.Queue[threading.Event]) -> None:
        self.inner, self.hold, self.held, self.calls = inner, hold, held, 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def create_customers(self, writes):
        self.calls += 1
        if self.calls in self.hold:
            go = threading.Event()
            self.held.put(go)
            assert go.wait(300), "the test never let the held batch go"
        return self.inner.create_customers(writes)


def test_pause_continue_and_cancel_leave_a_state_the_next_wizard_continues(qtbot, qapp_themed, sides):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QWizard

    from app.ui.migration_wizard import MigrationWizard

    held: queue.Queue[threading.Event] = queue.Queue()

    def connectors():
        crm, acct = sides.connectors()
        return crm, Gated(acct, {2, 4}, held)

    def next_held() -> threading.Event:
        """The next batch write being held, once a job has reached it (the event loop runs meanwhile)."""
        qtbot.waitUntil(lambda: not held.empty(), timeout=LONG)
        return held.get_nowait()

    before = sides.ledger_names()
    wizard = MigrationWizard(sides.store, None, sides.name, connectors=connectors)
    qtbot.addWidget(wizard)
    wizard.show()
    qtbot.waitUntil(lambda: wizard.currentPage().step_id == "plan", timeout=LONG)
    planned = wizard.mf.counts()
    while wizard.currentPage().step_id != "start":
        _next(qtbot, wizard)
    _next(qtbot, wizard, QWizard.WizardButton.CommitButton)
    apply = wizard.currentPage()
    assert apply.step_id == "apply"

    # Pause while a batch is being written: it stops after that batch, and Continue goes on
    go = next_held()
    qtbot.mouseClick(apply.pause_button, Qt.MouseButton.LeftButton)
    assert "Pausing" in apply.stage.text()
    go.set()
    qtbot.waitUntil(lambda: apply.pause_button.text() == "Continue" and apply.pause_button.isEnabled(), timeout=LONG)
    assert "Paused" in apply.stage.text() and "records are done" in apply.stage.text()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    assert held.empty()  # the paused job wrote nothing more
    qtbot.mouseClick(apply.pause_button, Qt.MouseButton.LeftButton)

    # Cancel during the next held batch: the wizard closes; the batch finishes and the plan waits
    go = next_held()
    job = wizard.job
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.CancelButton), Qt.MouseButton.LeftButton)
    assert not wizard.isVisible()
    go.set()
    qtbot.waitUntil(lambda: not job.running, timeout=LONG)
    assert held.empty()
    with sides.store.session() as s:
        assert s.scalars(select(MigrationPlan)).one().status == "applying"
    half = sides.ledger_names()
    assert sum(before.values()) < sum(half.values()) < sum(before.values()) + planned["create_ledger"]

    # After a restart: the wizard offers to continue, and finishes exactly the plan
    again = MigrationWizard(sides.store, None, sides.name, connectors=sides.connectors)
    qtbot.addWidget(again)
    again.show()
    resume = again.currentPage()
    assert resume.step_id == "resume"
    assert again.button(QWizard.WizardButton.NextButton).text() == "Continue"
    assert "not done again" in resume.body.text()
    assert 0 < resume.bar.value() < resume.bar.maximum()
    _next(qtbot, again)
    qtbot.waitUntil(lambda: again.currentPage().step_id == "done", timeout=LONG)
    assert again.mf.applied.status == "applied", again.mf.applied.errors
    assert again.mf.applied.done == planned
    after = sides.ledger_names()
    assert max(after.values()) == 1
    assert sum(after.values()) == sum(before.values()) + planned["create_ledger"]
    again.accept()
