"""One number per thing (docs/glossary.md): the command line, `status --json`, the window's tabs and
header, the tray and its notifications say the same "held back" and "to review" for one workspace."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QThreadPool

from app import cli
from app.connectors.tokens import MemoryTokenStore
from app.ops.status import workspace_counts, workspace_statuses
from app.store.db import Store
from app.store.models import ConflictRow, ConnectionRow, Link, Quarantine, Run, Workspace
from app.ui import tray_state

NOW = dt.datetime(2026, 3, 14, 15, 40, tzinfo=dt.UTC)
T0 = NOW.replace(tzinfo=None)


def seed(store: Store) -> int:
    """Three records held back (one of them a possible match), two records with open conflicts (one
    of them on two fields), a conflict already decided, and a past run whose own tallies differ."""
    with store.session() as s:
        ws = Workspace(name="Acme Books", crm_provider="hubspot", accounting_provider="quickbooks", settings={})
        s.add(ws)
        s.flush()
        for side, provider in (("crm", "hubspot"), ("accounting", "quickbooks")):
            s.add(ConnectionRow(id=f"c-{side}", workspace_id=ws.id, side=side, provider=provider,
                                base_url="https://api.example.test", auth_url=None, client_id="x", tenant_id=None,
                                label="Acme Trading", extra={}))
        for n in range(4):
            s.add(Link(workspace_id=ws.id, object_type="customer", crm_type="company", crm_id=f"crm-{n}",
                       acct_id=str(n + 1), how="email", snapshot={"crm": {"name": f"Client {n}"}}, updated_at=T0))
        for rid, name, field in (("q1", "Galway Bay Tours", "country"), ("q2", "Tom Whitaker", "email")):
            s.add(Quarantine(workspace_id=ws.id, side="crm", record_type="company", record_id=rid, name=name,
                             reasons={"items": [{"field": field, "message": f"The {field} is not valid."}]},
                             created_at=T0))
        s.add(Quarantine(workspace_id=ws.id, side="crm", record_type="company", record_id="q3", name="Harbour Cafe",
                         reasons={"items": [{"field": "match", "message": "Two customers could be this one."}],
                                  "candidates": ["7", "8"]}, created_at=T0))
        for crm_id, field, outcome in (("crm-0", "email", "open"), ("crm-0", "phone", "open"),
                                       ("crm-1", "city", "open"), ("crm-2", "city", "chosen")):
            s.add(ConflictRow(workspace_id=ws.id, crm_type="company", crm_id=crm_id, acct_id="1", field=field,
                              crm_value="a", acct_value="b", base_value="c", rule="ask", outcome=outcome,
                              created_at=T0))
        s.add(Run(workspace_id=ws.id, trigger="schedule", status="ok", started_at=T0, finished_at=T0,
                  counts={"read": 40, "quarantined": 32, "conflicts": 24, "writes": 0}))
        return ws.id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(f"sqlite:///{tmp_path}/counts.db")
    yield st
    st.dispose()


def test_one_count_everywhere(store: Store, tmp_path: Path, capsys, qtbot) -> None:
    ws_id = seed(store)
    counts = workspace_counts(store, ws_id)
    assert (counts.linked, counts.held_back, counts.conflicts, counts.matches, counts.to_review) == (4, 3, 2, 1, 3)

    # the command line: `status` and `status --json`
    argv = ["--home", str(tmp_path / "home"), "--db", str(store.engine.url)]
    assert cli.main([*argv, "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["workspaces"][0]
    assert data["counts"] == {"linked": 4, "held_back": 3, "to_review": 3, "conflicts": 2, "possible_matches": 1}
    assert len(data["quarantined"]) == data["counts"]["held_back"]
    assert cli.main([*argv, "status"]) == 0
    out = capsys.readouterr().out
    assert "  3 held back, 3 to review (2 with conflicting changes, 1 possible match)" in out
    assert "32" not in out and "24" not in out  # a past run's own tallies are not the workspace's count
    # the summary a sync prints ends with the same line, whatever the run's own tallies were
    from app.sync.engine import RunResult

    cli._print_run_summary(RunResult(9, "Acme Books", "ok", False, {"read": 40, "quarantined": 32, "conflicts": 24,
                                                                     "writes": 2}), store)
    summary = capsys.readouterr().out
    assert summary.splitlines()[-1] == "  3 held back, 3 to review (2 with conflicting changes, 1 possible match)"
    assert "32" not in summary and "24" not in summary

    # the window: tab titles and header tiles
    from app.ui.app import make_application
    from app.ui.main_window import MainWindow

    make_application()
    window = MainWindow(store, MemoryTokenStore(), pool=QThreadPool(), now=lambda: NOW)
    qtbot.addWidget(window)
    page = window.page
    tabs = {page.tabs.tabText(i).split("  ")[0]: page.tabs.tabText(i) for i in range(page.tabs.count())}
    assert tabs["Held back"] == "Held back  3"
    assert tabs["Review"] == "Review  3"
    assert tabs["Linked records"] == "Linked records  4"
    assert page.header.held_tile.value.text() == "3" and page.header.review_tile.value.text() == "3"
    assert page.header.review_tile.caption.text() == "to review"
    assert page.review.count == 3  # the rows of the Review list itself

    # the tray and its notification
    statuses = workspace_statuses(store)
    state = tray_state.state_for(statuses)
    assert state == "review"
    assert tray_state.summary_line(state, statuses) == "Crossledger — 3 to review, 3 held back"
    assert tray_state.tooltip(state, statuses, now=NOW).splitlines()[1] == "Acme Books: 3 to review, 3 held back"
    assert tray_state.state_line(statuses[0], running=False, paused=False, failure=None) == \
        "State: 3 to review, 3 held back"
    told = tray_state.review_message("Acme Books", statuses[0].quarantined, statuses[0].to_review,
                                     ledger="QuickBooks Online")
    assert told.title == "Acme Books: 3 to review, 3 held back" and "QuickBooks Online" in told.body
    assert window.shutdown(5000)


def test_what_a_run_did_after_invoicing_is_said_in_the_same_words_by_the_cli_and_the_window(tmp_path, capsys):
    """Voids, credit notes, links that followed a merge and flagged invoiced deals: one wording (issue 21)."""
    from app.sync.engine import RunResult
    from app.ui.text import run_summary

    store = Store(f"sqlite:///{tmp_path}/c.db")
    with store.session() as s:
        s.add(Workspace(name="Acme Books", crm_provider="hubspot", accounting_provider="xero", settings={}))
    counts = {"read": 12, "writes": 3, "invoices_voided": 1, "credit_notes": 2, "links_followed": 1}
    words = "1 invoice voided, 2 credit notes raised, 1 link moved to the surviving record"
    cli._print_run_summary(RunResult(9, "Acme Books", "ok", False, counts), store)
    assert f"  {words}" in capsys.readouterr().out.splitlines()
    assert run_summary(counts) == words[0].upper() + words[1:]
    assert run_summary({"read": 12, "deals_flagged": 1}) == "1 invoiced deal flagged for review"
    assert run_summary({"read": 12}) == "Everything was already in sync"  # nothing of the kind: not said
    store.dispose()
