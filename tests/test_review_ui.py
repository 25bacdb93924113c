"""The Review tab and the side-by-side diff view, on real HTTP sandboxes (HubSpot and QuickBooks Online).

An address edited differently on both sides under an "ask me" rule becomes an open conflict; it is
resolved in the window with clicks and keys, and the next sync puts the chosen value on both sides.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QApplication

from app.connectors.base import CustomerWrite
from app.connectors.tokens import MemoryTokenStore
from app.domain.diff import diff_spans
from app.ops import conflicts, status
from app.ops.sync_run import run_sync
from app.ops.workspaces import add_workspace, save_connection, update_settings
from app.store.db import Store
from app.store.models import ConflictRow, FieldChange, Quarantine
from app.ui.app import make_application
from app.ui.diff_view import GAP_MARK, spans_html
from app.ui.main_window import MainWindow
from app.ui.review_page import ReviewModel, review_items
from app.ui.theme import Palette
from tests.support import Connected, over_http

ASK = {"address_line1": "ask", "city": "ask", "postal_code": "ask"}
COMPANIES = {  # name: (address, city, postcode)
    "Maple Grove Nursery": ("14 Station Road", "Bramley", "GU5 0AA"),
    "Stonebridge Bakery": ("2 Mill Lane", "Ashby", "LE65 1AA"),
    "Harbor Light Marine": ("The Quay", "Penrose", "TR10 8AB"),
}
NEW_ADDRESS = {  # name: (in HubSpot, in QuickBooks)
    "Maple Grove Nursery": ("Unit 4, Station Road Business Park", "14 Station Rd"),
    "Stonebridge Bakery": ("2 Mill Lane, Ashby Industrial Estate", "PO Box 77"),
    "Harbor Light Marine": ("Harbour Office, The Quay", "The Old Quay"),
}


@dataclass
class World:
    store: Store
    tokens: MemoryTokenStore
    crm: Connected
    acct: Connected
    ws_id: int
    name: str
    ids: dict[str, tuple[str, str]]  # company name -> (HubSpot id, QuickBooks id)

    def sync(self):
        result = run_sync(self.store, self.tokens, self.name)
        assert result.status == "ok", result.errors
        return result

    def crm_address(self, company: str) -> str | None:
        return self.crm.sandbox.values("companies", self.ids[company][0]).get("address")

    def ledger(self, company: str):
        [cust] = self.acct.connector.get_customers([self.ids[company][1]])
        return cust.party

    def edit_ledger(self, company: str, **fields) -> None:
        [cust] = self.acct.connector.get_customers([self.ids[company][1]])
        [res] = self.acct.connector.update_customers(
            [CustomerWrite(f"test-{company}-{sorted(fields.items())}", cust.party.with_fields(fields), id=cust.id,
                           version=cust.version)])
        assert res.ok, res.error

    def conflict_on_address(self, *companies: str) -> None:
        """The same field edited differently in HubSpot and in QuickBooks, then a sync: open conflicts."""
        for company in companies:
            crm_value, ledger_value = NEW_ADDRESS[company]
            self.crm.sandbox.edit("companies", self.ids[company][0], address=crm_value)
            self.edit_ledger(company, address_line1=ledger_value)
        result = self.sync()
        assert result.counts["conflicts"] == len(companies)

    def open_rows(self) -> list[conflicts.ConflictView]:
        return conflicts.open_conflicts(self.store, self.ws_id)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    tokens = MemoryTokenStore()
    store = Store(f"sqlite:///{tmp_path}/review.db")
    ws = add_workspace(store, "Maple Books", "hubspot", "quickbooks")
    with ExitStack() as stack:
        crm = stack.enter_context(over_http("hubspot", "empty", tokens=tokens))
        acct = stack.enter_context(over_http("quickbooks", "empty", tokens=tokens))
        save_connection(store, ws, crm.conn)
        save_connection(store, ws, acct.conn)
        update_settings(store, ws.name, rules=ASK)
        crm_ids = {name: crm.sandbox.create("companies", name=name, address=a, city=c, zip=z, country="GB")
                   for name, (a, c, z) in COMPANIES.items()}
        w = World(store, tokens, crm, acct, ws.id, ws.name, {})
        w.sync()
        links = {lk.crm_id: lk.acct_id for lk in status.linked_records(store, ws.id)}
        w.ids = {name: (rid, links[rid]) for name, rid in crm_ids.items()}
        yield w
    store.dispose()


@pytest.fixture
def window(world: World, qtbot) -> Iterator[MainWindow]:
    make_application()
    pool = QThreadPool()
    win = MainWindow(world.store, world.tokens, pool=pool)
    qtbot.addWidget(win)
    win.resize(1280, 860)
    win.show()
    win.activateWindow()
    qtbot.waitExposed(win)
    yield win
    win.sync.shutdown()
    pool.waitForDone(60_000)


def open_review(win: MainWindow):
    win.reload()
    page = win.page
    page.tabs.setCurrentWidget(page.review)
    return page.review


def review_tab_text(win: MainWindow) -> str:
    return win.page.tabs.tabText(win.page.tabs.indexOf(win.page.review))


def plain(rich: str) -> str:
    return re.sub(r"<[^>]+>", "", rich)


def saved(review, qtbot) -> None:
    qtbot.waitUntil(lambda: not review.diff.busy, timeout=60_000)


# -- the diff, painted ---------------------------------------------------------------------------
def test_changed_words_and_characters_are_highlighted() -> None:
    left, right = diff_spans("14 Station Road", "14 Station Rd")
    left_html, right_html = spans_html(left), spans_html(right)
    assert "14 Station R" in left_html and f'background-color:{Palette.HIGHLIGHT};">oa</span>' in left_html
    # the right lacks the letters: a caret marks where, and no letter of it is highlighted
    assert right_html.count(Palette.HIGHLIGHT) == 1 and f'{GAP_MARK}</span>d</span>' in right_html
    _left, r2 = diff_spans("GU5 0AA", "GU5 0AX")
    assert f'{Palette.HIGHLIGHT};">X</span>' in spans_html(r2)
    assert "&lt;b&gt;" in spans_html(diff_spans("<b>", None)[0])  # values are text, never markup
    assert "(empty)" in spans_html([])


def test_review_list_groups_a_records_fields_and_passes_the_model_tester(world: World, qtmodeltester) -> None:
    name = "Maple Grove Nursery"
    world.crm.sandbox.edit("companies", world.ids[name][0], address="Unit 4, Station Road", zip="GU5 0AX")
    world.edit_ledger(name, address_line1="14 Station Rd", postal_code="GU5 0BX")
    world.sync()
    items = review_items(world.open_rows(), [])
    assert [(i.name, [c.field for c in i.conflicts]) for i in items] == [(name, ["address_line1", "postal_code"])]
    assert items[0].what == "Address and postcode changed differently on both sides"
    model = ReviewModel()
    model.set_rows(items)
    qtmodeltester.check(model)


# -- the round trip, in the window ------------------------------------------------------------------
def test_pick_sides_with_clicks_and_keys_then_apply_now_lands_on_both_sides(world: World, window, qtbot) -> None:
    world.conflict_on_address("Maple Grove Nursery", "Stonebridge Bakery", "Harbor Light Marine")
    review = open_review(window)
    assert review_tab_text(window) == "Review  3"
    assert review.pending.isHidden() and review.apply_button.isHidden()

    # A click: keep QuickBooks' address for the first record, then Save.
    review.select(0)
    diff = review.diff
    assert diff.title.text() == "Maple Grove Nursery"
    [row] = diff.rows
    assert plain(row.left_value.text()) == "Unit 4, Station Road Business Park"
    assert plain(row.right_value.text()) == "14 Station Rd"
    assert f'{Palette.HIGHLIGHT};">Rd</span>' in row.right_value.text()  # what differs is on the highlighter
    assert not diff.save_button.isEnabled()
    qtbot.mouseClick(row.use_right, Qt.MouseButton.LeftButton)
    assert row.right_cell.property("chosen") is True and row.use_right.text() == "✓ Keeping this value"
    qtbot.mouseClick(diff.save_button, Qt.MouseButton.LeftButton)
    saved(review, qtbot)
    qtbot.waitUntil(lambda: review_tab_text(window) == "Review  2")
    assert "1 choice saved" in review.pending.text() and review.apply_button.isVisible()

    # Keys: Enter on the list goes into the diff view, Alt+L keeps HubSpot's, Enter saves.
    review.select(0)
    second = diff.title.text()
    review.table.setFocus()
    qtbot.keyClick(review.table, Qt.Key.Key_Return)
    assert diff.rows[0].use_left.hasFocus()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_L, Qt.KeyboardModifier.AltModifier)
    assert diff.rows[0].choice == "crm"
    assert diff.save_button.hasFocus()  # the only field is decided: Save is next
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Return)
    saved(review, qtbot)
    qtbot.waitUntil(lambda: review_tab_text(window) == "Review  1")

    # The third: type a merged value (Alt+E), Enter.
    third = diff.title.text()
    diff.focus_first()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_E, Qt.KeyboardModifier.AltModifier)
    editor = diff.rows[0].editor
    assert editor.isVisible() and editor.hasFocus()
    editor.selectAll()
    qtbot.keyClicks(editor, "Harbour Office, The Old Quay")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    saved(review, qtbot)
    qtbot.waitUntil(lambda: review_tab_text(window) == "Review  0")
    assert "3 choices saved" in review.pending.text()

    # Apply now: a sync in the background through the window's controller.
    with qtbot.waitSignal(window.sync.finished, timeout=60_000):
        qtbot.mouseClick(review.apply_button, Qt.MouseButton.LeftButton)
    # the page is read again on a worker thread once the run has ended, then shown
    qtbot.waitUntil(lambda: review.apply_button.isHidden() and review_tab_text(window) == "Review  0",
                    timeout=60_000)

    chosen = {"Maple Grove Nursery": "14 Station Rd", second: NEW_ADDRESS[second][0],
              third: "Harbour Office, The Old Quay"}
    for company, value in chosen.items():
        assert world.crm_address(company) == value, company
        assert world.ledger(company).address_line1 == value, company
    with world.store.session() as s:
        rows = s.query(ConflictRow).filter_by(workspace_id=world.ws_id).all()
        assert {(r.choice, r.outcome) for r in rows} == {("accounting", "resolved"), ("crm", "resolved"),
                                                         ("edited", "resolved")}
        assert all(r.resolved_at and r.applied_at for r in rows)
        assert s.query(FieldChange).filter_by(rule="review").count() == 4  # 1 + 1 + 2 sides
    # Our own writes come back through both change feeds and write nothing more.
    assert world.sync().counts["writes"] == 0
    assert world.sync().counts["writes"] == 0


def test_tab_walks_the_choices_in_reading_order_and_keys_act_on_the_focused_field(world: World, window,
                                                                                  qtbot) -> None:
    name = "Maple Grove Nursery"
    world.crm.sandbox.edit("companies", world.ids[name][0], address="Unit 4, Kingfisher Park", zip="GU5 0QT")
    world.edit_ledger(name, address_line1="Unit 4 Kingfisher Park", postal_code="GU5 0QB")
    world.sync()
    review = open_review(window)
    diff = review.diff
    address, postcode = diff.rows
    assert (address.conflict.field_label, postcode.conflict.field_label) == ("Address", "Postcode")
    address.use_left.setFocus()
    walked = [address.use_left]
    for _ in range(5):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        walked.append(QApplication.focusWidget())
    assert walked == [address.use_left, address.use_right, address.type_other, postcode.use_left,
                      postcode.use_right, postcode.type_other]
    # Alt+R with the focus on the postcode decides the postcode, not the first field.
    postcode.use_left.setFocus()
    qtbot.keyClick(postcode.use_left, Qt.Key.Key_R, Qt.KeyboardModifier.AltModifier)
    assert (address.choice, postcode.choice) == (None, "accounting")
    assert address.use_left.hasFocus()  # on to the field still undecided
    # A sync finishing meanwhile refreshes the list but keeps the picks not saved yet.
    window.page.load(next(ws for ws in status.workspace_statuses(world.store) if ws.id == world.ws_id))
    assert diff.rows[1] is postcode and postcode.choice == "accounting"
    qtbot.keyClick(address.use_left, Qt.Key.Key_L, Qt.KeyboardModifier.AltModifier)
    assert diff.save_button.hasFocus()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab, Qt.KeyboardModifier.ShiftModifier)
    assert postcode.type_other.hasFocus()  # and back again
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Enter)
    saved(review, qtbot)
    qtbot.waitUntil(lambda: review_tab_text(window) == "Review  0")
    world.sync()
    assert (world.ledger(name).address_line1, world.ledger(name).postal_code) == ("Unit 4, Kingfisher Park",
                                                                                   "GU5 0QB")
    assert world.crm.sandbox.values("companies", world.ids[name][0]).get("zip") == "GU5 0QB"


def test_apply_to_all_similar_conflicts(world: World, window, qtbot) -> None:
    world.conflict_on_address("Maple Grove Nursery", "Stonebridge Bakery", "Harbor Light Marine")
    review = open_review(window)
    review.select(1)
    diff = review.diff
    assert diff.similar_box.isVisible()
    assert diff.similar_box.text() == (
        "Apply the same choice to 2 similar conflicts (other records where address differs)")
    assert not diff.similar_box.isEnabled()  # nothing chosen yet
    qtbot.mouseClick(diff.rows[0].use_left, Qt.MouseButton.LeftButton)
    assert diff.similar_box.isEnabled()
    qtbot.keyClick(diff.rows[0].use_left, Qt.Key.Key_A, Qt.KeyboardModifier.AltModifier)
    assert diff.similar_box.isChecked()
    qtbot.keyClick(diff.rows[0].use_left, Qt.Key.Key_Return)
    saved(review, qtbot)
    qtbot.waitUntil(lambda: review_tab_text(window) == "Review  0")
    assert "3 choices saved" in review.pending.text()

    world.sync()
    for company, (crm_value, _ledger_value) in NEW_ADDRESS.items():
        assert world.ledger(company).address_line1 == crm_value
        assert world.crm_address(company) == crm_value
    assert world.open_rows() == []
    assert world.sync().counts["writes"] == 0


def test_only_the_conflicting_field_is_held_back(world: World) -> None:
    name = "Maple Grove Nursery"
    world.conflict_on_address(name)
    # While the address waits for a person, other edits of the same record flow both ways.
    world.crm.sandbox.edit("companies", world.ids[name][0], city="Guildford", address="Unit 5, Station Road")
    world.edit_ledger(name, phone="+441483892000")
    result = world.sync()
    assert result.counts["conflicts"] == 0
    ledger = world.ledger(name)
    assert ledger.city == "Guildford" and ledger.address_line1 == "14 Station Rd"  # held: the ledger's own
    assert world.crm.sandbox.values("companies", world.ids[name][0]).get("phone") == "+441483892000"
    assert world.crm_address(name) == "Unit 5, Station Road"
    [still] = world.open_rows()
    assert still.field == "address_line1"
    # The others were not touched at all.
    assert world.ledger("Stonebridge Bakery").address_line1 == "2 Mill Lane"


def test_a_conflict_decided_elsewhere_meanwhile_is_reported_in_words(world: World, window, qtbot) -> None:
    world.conflict_on_address("Maple Grove Nursery")
    review = open_review(window)
    review.select(0)
    [row] = review.diff.rows
    conflicts.choose(world.store, row.conflict.id, "crm")  # e.g. a colleague on another machine
    qtbot.mouseClick(row.use_right, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(review.diff.save_button, Qt.MouseButton.LeftButton)
    saved(review, qtbot)
    qtbot.waitUntil(review.banner.isVisible)
    assert "no longer open" in review.banner.text()
    assert "Traceback" not in review.banner.text()
    assert review_tab_text(window) == "Review  0"


def test_ambiguous_matches_are_listed_with_their_explanation(world: World, window, qtbot) -> None:
    world.conflict_on_address("Stonebridge Bakery")
    with world.store.session() as s:  # what the planner stores for an email shared by two ledger customers
        s.add(Quarantine(workspace_id=world.ws_id, side="crm", record_type="company", record_id="77",
                         name="Lantern Books", created_at=dt.datetime(2026, 1, 5),
                         reasons={"items": [{"field": "match", "message":
                                             "Its email address matches 2 customers in the ledger ('Lantern Books', "
                                             "'Lantern Books Ltd'). Merge the duplicates in the ledger, or pick the "
                                             "right one on the Review page."}]}))
    review = open_review(window)
    assert review_tab_text(window) == "Review  2"
    review.select(1)
    assert review.detail.currentWidget() is review.match_panel
    assert "'Lantern Books Ltd'" in review.match_panel.body.text()
    assert "QuickBooks Online" in review.match_panel.next_step.text()


def test_nothing_to_review_says_so(world: World, window) -> None:
    review = open_review(window)
    assert review_tab_text(window) == "Review  0"
    assert review.list.currentWidget() is review.list.note
    assert "Nothing to review" in review.list.note.text()
