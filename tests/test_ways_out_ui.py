"""The Held back tab offers each way out as a button with its label; a click takes it off the UI thread, says what
happened, and the way out leaves the list; a ledger's refusal is shown and the button stays."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt

from app.ops import changes, status
from app.ui.app import make_application
from app.ui.models import HeldBackModel
from app.ui.quarantine_view import HeldBackView, WayOutActions
from app.ui.workers import WriteQueues
from tests.shots import screenshot_dir
from tests.test_ways_out import ARCHIVED, HARBOUR, REACTIVATE
from tests.ways_out_world import World, make_world


def _view(w: World, qtbot) -> tuple[HeldBackView, WriteQueues]:
    make_application()
    writes = WriteQueues()
    view = HeldBackView(HeldBackModel(None, now=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None)))
    qtbot.addWidget(view)
    view.attach_ways_out(WayOutActions(w.store, w.tokens, writes, lambda: (w.ws_id, w.name), w.options()))
    view.set_rows(status.quarantined_records(w.store, w.ws_id))
    view.resize(1100, 560)
    view.show()
    qtbot.waitExposed(view)
    return view, writes


def _shot(view: HeldBackView, qtbot, name: str) -> None:
    qtbot.wait(50)  # the layout settles as it would in the window's event loop
    view.grab().save(str(screenshot_dir() / name))


def test_the_way_out_button_reactivates_the_customer_and_leaves_the_list(tmp_path, qtbot):
    with make_world(tmp_path, "quickbooks") as w:
        cid = w.acct_ids[HARBOUR]
        w.archive(HARBOUR)
        w.hold("901", "Lighthouse refit", HARBOUR, "reactivate", cid, REACTIVATE, ARCHIVED)
        w.hold("902", "Lantern order", HARBOUR, "reactivate", cid, REACTIVATE, ARCHIVED)
        view, writes = _view(w, qtbot)
        [card] = view.cards  # two deals wait on one customer: one button
        assert card.button.text() == REACTIVATE and card.button.isVisible() and card.button.isEnabled()
        assert view.model.rowCount() == 2
        _shot(view, qtbot, "held-back-way-out.png")

        heard: list[changes.Changed] = []
        stop = changes.listen(w.store, heard.append)  # the window re-reads what the announcement names
        try:
            with qtbot.waitSignal(view.way_out_taken, timeout=20000) as taken:
                qtbot.mouseClick(card.button, Qt.MouseButton.LeftButton)
                assert card.button.text() == "Working…" and not card.button.isEnabled()  # the ledger is called
        finally:
            stop()
        result = taken.args[0]
        assert result.ok and w.fate(cid) == "active"
        assert not view.result.isHidden()
        assert view.result.title.text() == f"Done: {REACTIVATE}"
        assert view.result.detail.text() == result.message
        assert view.cards == [] and view.ways_box.isHidden()
        assert heard and heard[-1].touches(changes.QUARANTINE)
        view.set_rows(status.quarantined_records(w.store, w.ws_id))  # the window's refresh
        reasons = [view.model.row(n).reasons[0] for n in range(view.model.rowCount())]
        assert reasons == [f"Released by you: {result.message}"] * 2 and view.cards == []
        _shot(view, qtbot, "held-back-way-out-taken.png")
        assert writes.wait(10000)


def test_a_refusal_is_shown_and_the_button_stays(tmp_path, qtbot):
    with make_world(tmp_path, "xero") as w:
        loser = w.acct_ids[HARBOUR]
        w.books.user_merge_contacts(loser, w.acct_ids["Quayside Joinery"])
        w.hold("901", "Lighthouse refit", HARBOUR, "reactivate", loser, REACTIVATE, ARCHIVED)
        view, writes = _view(w, qtbot)
        [card] = view.cards
        with qtbot.waitSignal(view.way_out_taken, timeout=20000) as taken:
            qtbot.mouseClick(card.button, Qt.MouseButton.LeftButton)
        assert taken.args[0].status == "provider"
        assert view.result.title.text() == f"Not done: {REACTIVATE}"
        assert "Xero merged this contact into another one" in view.result.detail.text()
        [again] = view.cards
        assert again.button.text() == REACTIVATE and again.button.isEnabled()
        assert writes.wait(10000)


def test_the_window_s_held_back_tab_offers_the_way_out(tmp_path, qtbot):
    """The workspace page wires the ways out whenever it has the keyring's tokens (as the app's window does)."""
    from app.ui.workspace_page import WorkspacePage

    with make_world(tmp_path, "quickbooks") as w:
        cid = w.acct_ids[HARBOUR]
        w.archive(HARBOUR)
        w.hold("901", "Lighthouse refit", HARBOUR, "reactivate", cid, REACTIVATE, ARCHIVED)
        make_application()
        page = WorkspacePage(w.store, lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None), tokens=w.tokens)
        qtbot.addWidget(page)
        page.load(next(ws for ws in status.workspace_statuses(w.store) if ws.id == w.ws_id))
        [card] = page.held.cards
        assert card.button.text() == REACTIVATE and card.button.isEnabled()
        assert page.writes.wait(10000)
