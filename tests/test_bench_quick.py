"""The benchmark suite's quick mode (``python -m bench --quick``) as a test: its call counts are exact,
so they are asserted; its times depend on the machine and are not."""

from __future__ import annotations

import dataclasses

from bench.__main__ import QUICK, run


def test_quick_bench_spends_exactly_the_calls_the_batch_sizes_allow():
    fig, rows, failures = run(dataclasses.replace(QUICK, subprocesses=False), out=lambda *a, **kw: None)
    assert failures == []
    # nothing changed: one read per object type on each side, nothing written, for all 12 pairs
    assert len(fig["idle"]) == 12
    assert all(r["max_reads_per_type"] == 1 and r["write_calls"] == 0 for r in fig["idle"])
    # new customers go out in full batches: ceil(N / batch max) calls, not one more
    for ledger in ("quickbooks", "xero", "zohobooks"):
        r = fig["creates"][ledger]
        assert r["created"] > 0
        assert r["write_calls"] == r["min_calls"]
    # against a client sending one record a call: at least 25 times fewer calls where batches exist
    assert fig["creates"]["quickbooks"]["naive_ratio"] >= 25
    assert fig["creates"]["xero"]["naive_ratio"] >= 25
    assert fig["crm_writes"]["naive_ratio"] >= 25
    assert fig["crm_writes"]["batched"]["write_calls"] == fig["crm_writes"]["batched"]["min_calls"]
    # the realtime job carried a CRM change to the ledger
    assert fig["realtime"]["samples"]
    assert {r[3] for r in rows} <= {"pass", "miss"}
