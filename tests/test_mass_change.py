"""The mass-change circuit breaker: a run that would change many linked records stops before writing
and asks; the bookkeeper can then let it through, from the window or the command line."""

from __future__ import annotations

import threading

from app.connectors.base import RecordWrite
from app.domain.settings import MASS_CHANGE_FLOOR
from app.store.db import Store
from app.store.models import Link, Run, Workspace
from app.sync.engine import RunResult, SyncEngine, mass_change_limit
from tests.support import in_process


def test_the_limit_is_the_smaller_of_twenty_percent_and_fifty_records():
    assert mass_change_limit(100, {}) == 20
    assert mass_change_limit(1000, {}) == 50
    assert mass_change_limit(5, {}) == MASS_CHANGE_FLOOR  # a tiny workspace can still change a couple
    assert mass_change_limit(100, {"safety": {"mass_change_percent": 50, "mass_change_records": 200}}) == 50


class World:
    def __init__(self, tmp_path):
        self.store = Store(f"sqlite:///{tmp_path}/m.db")
        with self.store.session() as s:
            ws = Workspace(name="m", crm_provider="hubspot", accounting_provider="quickbooks", settings={})
            s.add(ws)
            s.flush()
            self.ws_id = ws.id
        self.crm, self.acct = in_process("hubspot", "demo"), in_process("quickbooks", "demo")

    def sync(self, **kw):
        return SyncEngine(self.store, self.ws_id, self.crm.connector, self.acct.connector, **kw).run()

    def company_links(self):
        with self.store.session() as s:
            return [(lk.crm_id, lk.acct_id) for lk in s.query(Link).filter_by(workspace_id=self.ws_id,
                                                                             crm_type="company")]

    def edit_emails(self, links, domain):
        writes = [RecordWrite(f"e{n}", "company", crm_id, {"billing_email": f"accounts{n}@{domain}"})
                  for n, (crm_id, _) in enumerate(links)]
        assert all(r.ok for r in self.crm.connector.update_records(writes))


def test_a_bulk_edit_stops_before_writing_and_goes_through_when_allowed(tmp_path):
    w = World(tmp_path)
    assert w.sync().status == "ok"
    links = w.company_links()
    with w.store.session() as s:
        linked = s.query(Link).filter_by(workspace_id=w.ws_id, object_type="customer").count()
    limit = mass_change_limit(linked, {})
    bulk = links[:limit + 5]
    w.edit_emails(bulk, "bulk-edit.example")
    before = {c.id: c.party.email for c in w.acct.connector.read_customers(None).records}

    held = w.sync()
    assert held.status == "held"
    assert held.counts["writes"] == 0 and held.counts["would_change"] > limit
    assert "safety limit" in held.errors[0] and "before writing anything" in held.errors[0]
    after = {c.id: c.party.email for c in w.acct.connector.read_customers(None).records}
    assert after == before  # not one customer touched
    with w.store.session() as s:
        run = s.get(Run, held.run_id)
        assert run.status == "held" and "safety limit" in run.message

    again = w.sync()  # asking again without leave stops again: the edit is still waiting
    assert again.status == "held"
    allowed = w.sync(allow_mass_change=True)
    assert allowed.status == "ok", allowed.errors
    emails = {c.party.email for c in w.acct.connector.read_customers(None).records}
    assert sum(1 for e in emails if e and e.endswith("@bulk-edit.example")) >= len({a for _, a in bulk}) - 1
    assert w.sync().counts["writes"] == 0


def test_a_few_edits_go_through_without_asking(tmp_path):
    w = World(tmp_path)
    w.sync()
    w.edit_emails(w.company_links()[:2], "small-edit.example")
    result = w.sync()
    assert result.status == "ok" and result.counts["updated"] == 2


def test_the_window_offers_to_sync_allowing_the_changes(qtbot, tmp_path):
    from PySide6.QtCore import Qt, QThreadPool

    from app.connectors.tokens import MemoryTokenStore
    from app.ui.app import make_application
    from app.ui.main_window import MainWindow

    make_application()
    store = Store(f"sqlite:///{tmp_path}/w.db")
    with store.session() as s:
        s.add(Workspace(name="Acme Books", crm_provider="hubspot", accounting_provider="quickbooks", settings={}))
    calls: list[dict] = []
    done = threading.Event()

    def fake_sync(store, tokens, name, *, trigger="manual", progress=None, cancel=None, **kw):
        calls.append(kw)
        done.set()
        if kw.get("allow_mass_change"):
            return RunResult(2, name, "ok", False, {"updated": 60, "writes": 60})
        return RunResult(1, name, "held", False, {"would_change": 60}, [
            "This sync would change 60 of the 200 linked records at once, more than the safety limit of 40, so it "
            "stopped before writing anything."])

    window = MainWindow(store, MemoryTokenStore(), sync=fake_sync, pool=QThreadPool())
    qtbot.addWidget(window)
    window.show()
    qtbot.mouseClick(window.page.header.sync_button, Qt.MouseButton.LeftButton)
    banner = window.page.banner
    qtbot.waitUntil(lambda: banner.isVisible() and banner.action.isVisible(), timeout=60_000)
    assert banner.title.text() == "Sync stopped before a large change"
    assert banner.action.text() == "Sync and allow these changes"
    qtbot.mouseClick(banner.action, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(calls) == 2 and banner.title.text() == "Sync finished", timeout=60_000)
    assert calls == [{}, {"allow_mass_change": True}]
    assert not banner.action.isVisible()
    assert window.shutdown(5000)
