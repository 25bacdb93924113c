"""Regenerate page-<tab>-<light|dark>.png: every page of a workspace at the default 1280×800, in both palettes.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/make_page_screenshots.py

The workspace is the real demo (its sandboxes served by this process) with one discrepancy of each kind
planted for September 2026 (tests/reconcile_seed.py). Then, as a bookkeeper and a salesperson would, the
city of twelve linked customers is changed differently on both sides while the workspace's rules say "ask
me" for cities, so the Review page has records waiting. Pages: Linked records, Held back, Review (with
one field of a record decided), Activity, Reconcile (after a run of September 2026).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.reconcile_seed import _server, planted_demo  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
CITIES = [("Bristol", "Bristol (Clifton)"), ("Leeds", "Leeds LS1"), ("York", "York, North Yorkshire"),
          ("Bath", "Bath & NE Somerset"), ("Derby", "Derby City"), ("Exeter", "Exeter, Devon"),
          ("Oxford", "Oxford OX1"), ("Durham", "Durham City"), ("Chester", "Chester CH1"),
          ("Norwich", "Norwich NR2"), ("Lincoln", "Lincoln LN1"), ("Truro", "Truro, Cornwall")]


def _settle(seconds: float = 0.3) -> None:
    from PySide6.QtCore import QCoreApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def make_review_items(demo) -> None:
    """Twelve linked companies whose city changed differently in HubSpot and QuickBooks Online, rules 'ask'."""
    from app.ops import status
    from app.ops.sync_run import run_sync
    from app.ops.workspaces import get_workspace, update_settings

    ws = get_workspace(demo.store, "demo")
    update_settings(demo.store, "demo", rules={**(ws.settings.get("rules") or {}), "city": "ask"})
    hub, qbo = _server("hubspot"), _server("quickbooks")
    company = next(iter(qbo.state["companies"].values()))
    customers = company["entities"]["Customer"]
    companies = hub.state["objects"]["companies"]
    pairs = [(r.crm_id, r.acct_id) for r in status.linked_records(demo.store, ws.id)
             if r.crm_type == "company" and r.crm_id in companies and r.acct_id in customers][:len(CITIES)]
    for (crm_id, acct_id), (crm_city, ledger_city) in zip(pairs, CITIES, strict=False):
        hub._update_one("companies", companies[crm_id], {"city": crm_city})
        cust = customers[acct_id]
        qbo._write(company, "Customer", {"Id": acct_id, "SyncToken": cust["SyncToken"], "sparse": True,
                                         "BillAddr": {**(cust.get("BillAddr") or {}), "City": ledger_city}},
                   "update")
    time.sleep(4)  # the demo's HubSpot search shows a write 3 s later, as HubSpot's own does
    result = run_sync(demo.store, demo.tokens, "demo")
    print(f"sync for the Review page: {result.status}, {result.counts.get('conflicts', 0)} conflicts")


def shoot(demo, dark: bool) -> list[Path]:
    from PySide6.QtCore import QCoreApplication, QDate

    from app.ui.app import make_application
    from app.ui.main_window import MainWindow
    from app.ui.theme import apply_theme

    app = make_application()
    apply_theme(app, dark=dark)
    window = MainWindow(demo.store, demo.tokens)
    window.resize(1280, 800)
    window.show()
    _settle()
    page = window.page
    rec = page.reconcile
    rec.month.setDate(QDate(2026, 9, 1))
    rec.start()
    deadline = time.monotonic() + 120
    while rec.running and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    tone = "dark" if dark else "light"
    saved = []
    for name, tab in (("linked", page.linked), ("held-back", page.held), ("review", page.review),
                      ("activity", page.activity), ("reconcile", rec)):
        page.tabs.setCurrentWidget(tab)
        _settle(0.5 if tab is page.activity else 0.2)
        deadline = time.monotonic() + 60
        while tab is page.activity and tab.running and time.monotonic() < deadline:  # its first read
            _settle(0.1)
        if tab is page.review and page.review.count:
            page.review.select(0)
            _settle(0.2)
            if page.review.diff.rows:
                page.review.diff.pick("crm", page.review.diff.rows[0])
        if tab is page.activity and page.activity.visible_runs():
            page.activity.select_run(page.activity.visible_runs()[0].id)
        if tab is rec:
            rec.table.selectRow(0)
        _settle(0.3)
        path = OUT / f"page-{name}-{tone}.png"
        window.grab().save(str(path))
        saved.append(path)
    window.close()
    rec.shutdown()
    window.shutdown()
    return saved


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="crossledger-pages-") as tmp, planted_demo(Path(tmp) / "demo") as demo:
        make_review_items(demo)
        for dark in (False, True):
            for path in shoot(demo, dark):
                print(f"saved {path}")


if __name__ == "__main__":
    main()
