"""A month of a small business on four pairs (issue 21, point 7): the app's scheduler keeps the CRM and
the ledger in step on a virtual clock while the business works through both and faults hit the syncs,
and after every day no invariant is broken. ``python -m bench.year`` runs the same for longer."""

from __future__ import annotations

import pytest

from bench.year.__main__ import main
from bench.year.business import EVENTS, events
from bench.year.sim import run

PAIRS = [("hubspot", "quickbooks"), ("pipedrive", "xero"), ("salesforce", "zohobooks"), ("zohocrm", "xero")]


@pytest.mark.parametrize(("crm", "ledger"), PAIRS, ids=[f"{c}-{a}" for c, a in PAIRS])
def test_a_month_of_business_keeps_every_invariant(crm, ledger):
    figures = run(crm, ledger, days=30, seed=1, which="all", cadence=720)
    assert figures["first_violations"] == [] and figures["violations"] == 0
    assert figures["job_errors"] == [] and figures["refused_to_the_business"] == []
    # the month was a real one: new companies and deals every day, deals won and paid, faults that fired,
    # discrepancies planted and the month-end report checked against them
    done = figures["events_by_kind"]
    assert figures["events"] >= 150 and done["win_deal"] >= 20 and done["new_company"] >= 25
    assert done.get("pay_full", 0) + done.get("pay_partial", 0) >= 10
    assert figures["planted"] >= 2 and figures["month_reports_checked"] == 1
    assert figures["faults_fired"] >= 20 and figures["syncs"].get("ok", 0) >= 80
    assert figures["invariant_checks"] >= 1500


def test_every_event_of_the_business_is_one_the_app_handles():
    """Archives and merges on both sides, deals lost or reopened after invoicing and credit notes are handled
    now (issue 21, points 1, 2 and 6): nothing is left for later."""
    supported = {e.name for e in events("supported")}
    assert {e.name for e in events("all")} - supported == set()
    assert {e.name for e in EVENTS} == supported
    assert {"archive_crm_company", "merge_crm_companies", "archive_ledger_customer", "lose_after_invoice",
            "reopen_after_invoice", "credit_note"} <= supported


def test_the_command_prints_the_figures(capsys):
    assert main(["--pair", "hubspot-xero", "--days", "2", "--seed", "3", "--no-record"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hubspot-xero: 2 days, ") and " 0 violations " in out
