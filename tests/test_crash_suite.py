"""The crash suite in its CI size: syncs killed with SIGKILL at random points, then rerun, leave the
ledger exactly as an uninterrupted sync does (bench/crash.py runs the full 100 kills)."""

from __future__ import annotations

import pytest

from bench.crash import Snapshot, run


@pytest.mark.slow
def test_random_kills_then_a_rerun_leave_no_duplicate_and_nothing_lost(secret_service):
    lines: list[str] = []
    # One fresh workspace killed four times in a row (each kill lands on what the last one left), then rerun:
    # the same kills as two workspaces of two, with one set of sandboxes and sign-ins fewer to start.
    failures = run(kills=4, per_cycle=4, seed="demo", out=lines.append)
    assert failures == [], "\n".join(lines)
    assert lines[0].startswith("clean run: ") and "invoices" in lines[0]
    assert lines[-1] == "4 kills in 1 cycle: no duplicate, nothing lost"


def test_the_checker_sees_duplicates_missing_records_and_dangling_links():
    from collections import Counter

    clean = Snapshot(customers=Counter({"Acme Ltd": 1, "Beta GmbH": 1}),
                     invoices=Counter({("Acme Ltd", "120.00", "deal-1"): 1}), links=2)
    broken = Snapshot(customers=Counter({"Acme Ltd": 2}), invoices=Counter(), links=3,
                      dangling=["link company 7 points at ledger customer 99, which does not exist"])
    problems = broken.problems(clean)
    assert "customer 'Acme Ltd' exists 2 times" in problems
    assert "customer 'Beta GmbH' is missing" in problems
    assert "invoice ('Acme Ltd', '120.00', 'deal-1') is missing" in problems
    assert "3 links instead of 2" in problems and any("does not exist" in p for p in problems)
    assert clean.problems(clean) == []
