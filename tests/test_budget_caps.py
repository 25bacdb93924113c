"""Salesforce's daily allocation in the shared budget: learned from Sforce-Limit-Info, every app's calls counted."""

from __future__ import annotations

import pytest

from app.connectors.errors import RateLimited
from app.ops.budget import attach, key_of
from app.store.db import Store
from app.store.models import ProviderBudget
from tests.support import in_process


def test_salesforces_daily_allocation_is_the_budgets_cap_and_other_apps_calls_count(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/b.db")
    c = in_process("salesforce", "demo", api_max=400)
    hour = str(int(c.sandbox.now() // 3600))
    c.sandbox.state["usage"][hour] = c.sandbox.state["usage"].get(hour, 0) + 250  # another app's calls today
    budget = attach(store, c.connector, share=0.8)  # scheduled syncs: 320 of the 400
    assert budget is not None and budget.cap is None  # nothing known before Salesforce's first answer

    def read_until_stopped() -> None:
        for _ in range(200):
            c.connector.read_records("company", None)

    with pytest.raises(RateLimited) as stopped:
        read_until_stopped()
    assert stopped.value.daily and "allowance" in str(stopped.value)
    with store.session() as s:
        row = s.get(ProviderBudget, key_of(c.conn))
        assert row.cap == 400 and 300 <= row.used <= 320 + 20
    used = sum(c.sandbox.state["usage"].values())
    assert used <= 320 + 20  # stopped at the scheduled share (one block at most over), not at Salesforce's 403
    assert not any(status == 403 for _, _, status in c.sandbox.request_log)
