"""The undo-planning benchmark (issue 25, point 5) on the demo's usual size: the planning reads each
record once, so its calls do not grow with the invoices the run made."""

from __future__ import annotations

from bench.undo_bench import run_pair


def test_undo_planning_calls_do_not_grow_with_the_invoices_undone():
    figures = run_pair("hubspot", "quickbooks", size="demo")
    made = figures["invoices_in_run"]
    assert made >= 20
    assert figures["plan"]["void_invoice"] == made  # every invoice of the run is planned to be voided
    # one read of the CRM's deals and companies, one of the invoices' states: not one read per invoice
    assert figures["calls"]["crm"] + figures["calls"]["ledger"] < made / 2, figures["calls"]
    assert figures["throttled_429"] == 0 and figures["result"] == "pass"
