"""Regenerate the screenshots in this folder from a store filled with realistic sample rows.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/make_screenshots.py
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.connectors.tokens import MemoryTokenStore  # noqa: E402
from app.store.db import Store  # noqa: E402
from app.store.models import ConnectionRow, Link, Mirror, Quarantine, Run, Workspace  # noqa: E402

NOW = dt.datetime(2025, 3, 14, 15, 40, tzinfo=dt.UTC).replace(tzinfo=None)  # naive UTC, as the store keeps it

COMPANIES = [
    "Acme Plumbing Supply", "Alder & Finch Architects", "Amberline Logistics", "Apex Physiotherapy",
    "Ashford Dental Group", "Baker Street Bikes", "Beacon Hill Insurance", "Birchwood Furniture",
    "Blue Harbor Seafood", "Bright Path Tutoring", "Brookside Vet Clinic", "Cedar & Stone Builders",
    "Clearwater Pools", "Cobalt Software GmbH", "Copperleaf Catering", "Crescent Moon Yoga",
    "Dalton Electrical", "Driftwood Coffee Roasters", "Eastgate Motors", "Elm Street Pharmacy",
    "Evergreen Lawn Care", "Fairview Accounting", "Fjord Outdoor AS", "Foxglove Florists",
    "Galway Bay Tours", "Granite Peak Roofing", "Greenleaf Organics", "Harbor Light Marine",
    "Hawthorne Legal LLP", "Highland Textiles", "Ironbridge Fabrication", "Juniper Health Foods",
    "Kingfisher Print Co.", "Lakeshore Realty", "Lantern Books", "Larkspur Interiors",
    "Maple Grove Nursery", "Meridian Freight", "Millbrook Brewing", "Northgate Optics",
    "Oakhaven Care Homes", "Orchard Lane Cider", "Pinecrest Dental", "Quayside Storage",
    "Redwood Analytics", "Riverbend Pottery", "Saffron Kitchen", "Silverline Plumbing",
    "Stonebridge Bakery", "Summit Fitness", "Tidewater Charters", "Willow & Sage Spa",
]
PEOPLE = [
    "Amelia Hart", "Ben Okafor", "Chloé Martin", "Daniel Kowalski", "Elena Rossi", "Farah Siddiqui",
    "George Lindqvist", "Hannah Byrne", "Isaac Mensah", "Julia Novak", "Kenji Watanabe", "Laura Jiménez",
    "Mateo García", "Nora O'Brien", "Oliver Brennan", "Priya Natarajan", "Rosa Delgado", "Samuel Adeyemi",
]
REASONS = [
    [{"field": "email", "message": "The email address “accounts@@birchwood.co.uk” is not valid."}],
    [{"field": "tax_id", "message": "The VAT number DE81234 is too short for Germany (9 digits after DE)."}],
    [{"field": "country", "message": "The country is missing, so the VAT number cannot be checked."},
     {"field": "tax_id", "message": "VAT number “GB 123 4567” cannot be checked without a country."}],
    [{"field": "phone", "message": "The phone number “0207 946 0” is too short to be a UK number."}],
    [{"field": "name", "message": "Two ledger customers are called “Lantern Books”; pick the right one."}],
    [{"field": "email", "message": "The email address “info@harborlight” has no domain ending (.com, .ie…)."},
     {"field": "phone", "message": "The phone number “+353 1 555” is too short for Ireland."}],
    [{"field": "currency", "message": "The CRM says NOK, but this ledger only accepts GBP and EUR."}],
]


FIRST = ["Alice", "Chidi", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Maya", "Noah", "Omar", "Sofia"]
LAST = ["Anderson", "Brady", "Costa", "Dunne", "Ekström", "Fischer", "Gallagher", "Haddad", "Ivanova", "Kerr"]
PLACES = ["Ashby", "Bramley", "Carlow", "Dunmore", "Elmfield", "Fernhill", "Glenbrook", "Hollins", "Kilbride",
          "Larchmont", "Mossley", "Newbury", "Penrose", "Redcliffe", "Sandford", "Thornton", "Wexford"]
TRADES = ["Bakery", "Builders", "Dental Care", "Electrical", "Florists", "Garage", "Joinery", "Kitchens",
          "Landscaping", "Opticians", "Pharmacy", "Plumbing", "Print Shop", "Roofing", "Vets", "Wines"]


def _unique_names(rnd: random.Random, n: int) -> list[str]:
    names = list(COMPANIES) + list(PEOPLE)
    seen = set(names)
    while len(names) < n:
        if rnd.random() < 0.2:
            name = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"
        else:
            name = f"{rnd.choice(PLACES)} {rnd.choice(TRADES)}" + rnd.choice(["", " Ltd", " & Co.", ""])
        if name not in seen:
            seen.add(name)
            names.append(name)
    rnd.shuffle(names)
    return names[:n]


def _slug(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())[:18]


def populate(store: Store) -> None:
    rnd = random.Random(7)
    with store.session() as s:
        specs = [
            ("Northwind Traders", "hubspot", "quickbooks", "Northwind Traders", "Northwind Traders Ltd", "ok"),
            ("Alder Street Dental", "hubspot", "quickbooks", "Alder Street Dental", "Alder Street Dental LLC",
             "ok"),
            ("Harbor & Pine Bakery", "pipedrive", "xero", "Harbor & Pine", "Harbor & Pine Bakery Ltd", "partial"),
            ("Kestrel Design Studio", "salesforce", "zohobooks", "Kestrel Design", "Kestrel Design Studio",
             "failed"),
            ("Oakridge Veterinary", "zohocrm", "quickbooks", "Oakridge Vets", None, None),
        ]
        main_id = 0
        for n, (name, crm, acct, crm_label, acct_label, last) in enumerate(specs):
            ws = Workspace(name=name, crm_provider=crm, accounting_provider=acct, settings={})
            s.add(ws)
            s.flush()
            if n == 0:
                main_id = ws.id
            s.add(ConnectionRow(id=f"{ws.id}-{crm}", workspace_id=ws.id, side="crm", provider=crm,
                                base_url=f"https://api.{crm}.example", auth_url=None, client_id="c",
                                tenant_id=None, label=crm_label, extra={}))
            if acct_label:
                s.add(ConnectionRow(id=f"{ws.id}-{acct}", workspace_id=ws.id, side="accounting", provider=acct,
                                    base_url=f"https://api.{acct}.example", auth_url=None, client_id="c",
                                    tenant_id=None, label=acct_label, extra={}))
            if last and n:
                started = NOW - dt.timedelta(hours=3 * n, minutes=7 * n)
                s.add(Run(workspace_id=ws.id, trigger="schedule", status=last, started_at=started,
                          finished_at=started + dt.timedelta(seconds=40 + 9 * n),
                          counts={"read": 40, "created": 3, "linked": 1, "quarantined": 1},
                          message="QuickBooks Online rejected the sign-in." if last == "failed" else None))

        # Northwind: the one on screen.
        hows = ["created"] * 143 + ["email"] * 12 + ["tax_id"] * 4 + ["name"] * 3 + ["duplicate"] * 3
        rnd.shuffle(hows)
        names = _unique_names(rnd, len(hows))
        for i, how in enumerate(hows):
            crm_name = names[i]
            person = crm_name in PEOPLE or crm_name.split()[0] in FIRST
            email = (f"{crm_name.split()[0].lower()}.{crm_name.split()[-1].lower()}@gmail.com" if person
                     else f"accounts@{_slug(crm_name)}.co.uk")
            acct_id = str(1000 + i)
            acct_name = crm_name if how != "name" else crm_name.upper() if i % 2 else crm_name + " Ltd"
            if how == "duplicate":
                acct_name = crm_name
            synced = NOW - dt.timedelta(minutes=rnd.randint(1, 60 * 24 * 9))
            s.add(Link(workspace_id=main_id, object_type="customer", crm_type="person" if person else "company",
                       crm_id=str(50000 + i), acct_id=acct_id, how=how,
                       snapshot={"crm": {"name": crm_name, "email": email}, "acct": {"name": acct_name}},
                       created_at=synced, updated_at=synced))
            s.add(Mirror(workspace_id=main_id, side="accounting", object_type="customer", remote_id=acct_id,
                         data={"name": acct_name, "raw_name": acct_name}))
        held = ["Birchwood Furniture (UK)", "Cobalt Software GmbH", "Galway Bay Tours", "Silverline Plumbing",
                "Lantern Books", "Harbor Light Marine", "Fjord Outdoor AS", "Tom Whitaker", "Meadowbank Farm Shop",
                "Quill & Ink Stationers", "Ravenscroft Joinery", "Seaview B&B", "Thornbury Antiques",
                "Upland Honey Co.", "Vale Cycles", "Westfield Kennels", "Yardley Glass", "Zest Juice Bar"]
        order = [0, 1, 2, 3, 4, 5, 6]
        for i, name in enumerate(held):
            reasons = REASONS[order[i % len(order)]]
            s.add(Quarantine(workspace_id=main_id, side="crm", record_type="person" if " " in name and
                             name.split()[0] in ("Tom",) else "company", record_id=str(90000 + i), name=name,
                             reasons={"items": reasons}, created_at=NOW - dt.timedelta(days=i % 4, hours=i)))
        runs = [
            (NOW - dt.timedelta(days=6, hours=2), "demo", "ok", 94,
             {"read": 231, "created": 143, "linked": 22, "quarantined": 18, "writes": 143}),
            (NOW - dt.timedelta(days=3, hours=5), "schedule", "partial", 31,
             {"read": 12, "created": 0, "updated": 4, "quarantined": 0, "writes": 5}),
            (NOW - dt.timedelta(days=1, hours=1), "schedule", "ok", 8, {"read": 3, "updated": 2, "writes": 2}),
            (NOW - dt.timedelta(minutes=52), "manual", "ok", 5, {"read": 0}),
        ]
        for started, trigger, st, secs, counts in runs:
            s.add(Run(workspace_id=main_id, trigger=trigger, status=st, counts=counts, started_at=started,
                      finished_at=started + dt.timedelta(seconds=secs),
                      message="Ashford Dental Group: QuickBooks Online rejected the update (stale record)."
                      if st == "partial" else None))


def main() -> None:
    from PySide6.QtCore import QCoreApplication

    from app.connectors.errors import AuthExpired
    from app.sync.engine import RunResult
    from app.ui.app import make_application
    from app.ui.main_window import MainWindow
    from app.ui.sync_controller import RunState
    from app.ui.text import notice_for_error, notice_for_result

    app = make_application()
    out = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/shots.db")
        populate(store)
        window = MainWindow(store, MemoryTokenStore(), now=lambda: NOW.replace(tzinfo=dt.UTC))
        window.resize(1280, 800)
        window.show()
        items = [window.list_model.item(n) for n in range(window.list_model.rowCount())]
        window.sidebar.select(next(ws.id for ws in items if ws.name == "Northwind Traders"))
        window.page.show_notice(notice_for_result(RunResult(
            4, "Northwind Traders", "ok", False, {"created": 143, "linked": 22, "quarantined": 18})))
        for _ in range(5):
            QCoreApplication.processEvents()
        window.grab().save(str(out / "main-window.png"))

        window.page.tabs.setCurrentIndex(window.page.HELD_TAB)
        window.page.show_notice(None)
        for _ in range(5):
            QCoreApplication.processEvents()
        window.grab().save(str(out / "held-back.png"))

        window.page.tabs.setCurrentIndex(window.page.LINKED_TAB)
        window.page.show_run(RunState(0, "Northwind Traders", stage="Creating customers in the ledger", done=61,
                                      total=143))
        window.sidebar.model.set_running(window.page.workspace_id, True)
        for _ in range(5):
            QCoreApplication.processEvents()
        window.grab().save(str(out / "syncing.png"))
        window.page.show_run(None)
        window.sidebar.model.set_running(window.page.workspace_id, False)
        window.page.show_notice(notice_for_error(AuthExpired("refresh token revoked", provider="hubspot"),
                                                 workspace="Northwind Traders"))
        for _ in range(5):
            QCoreApplication.processEvents()
        window.grab().save(str(out / "error.png"))
        window.close()
        store.dispose()

        empty = Store(f"sqlite:///{tmp}/empty.db")
        window = MainWindow(empty, MemoryTokenStore())
        window.resize(1280, 800)
        window.show()
        for _ in range(5):
            QCoreApplication.processEvents()
        window.grab().save(str(out / "empty-state.png"))
        window.empty.demo_started()  # "Try the demo" runs it in the window, with its progress
        window.empty.demo_progressed("Creating customers in QuickBooks Online", 61, 143)
        for _ in range(5):
            QCoreApplication.processEvents()
        window.grab().save(str(out / "empty-state-demo-running.png"))
        window.empty.demo_finished()
        window.close()
        empty.dispose()
    del app


if __name__ == "__main__":
    main()
