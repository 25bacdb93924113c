"""Daily caps in the shared budget: Salesforce's allocation learned from Sforce-Limit-Info, every app's calls
counted; Pipedrive's token budget, each call booked at its price."""

from __future__ import annotations

import pytest

from app.connectors import registry
from app.connectors.errors import RateLimited
from app.ops.budget import BudgetLine, attach, key_of, pipedrive_plan, set_pipedrive_plan
from app.ops.workspaces import UserError
from app.store.budget import StoreBudget
from app.store.db import Store
from app.store.models import ProviderBudget
from tests.support import in_process


def _read_until_stopped(connector, times: int) -> None:
    """Read every company again and again: the budget must stop it (RateLimited) before ``times`` reads."""
    for _ in range(times):
        connector.read_records("company", None)


def test_salesforces_daily_allocation_is_the_budgets_cap_and_other_apps_calls_count(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/b.db")
    c = in_process("salesforce", "demo", api_max=400)
    hour = str(int(c.sandbox.now() // 3600))
    c.sandbox.state["usage"][hour] = c.sandbox.state["usage"].get(hour, 0) + 250  # another app's calls today
    budget = attach(store, c.connector, share=0.8)  # scheduled syncs: 320 of the 400
    assert budget is not None and budget.cap is None  # nothing known before Salesforce's first answer

    with pytest.raises(RateLimited) as stopped:
        _read_until_stopped(c.connector, 200)
    assert stopped.value.daily and "allowance" in str(stopped.value)
    with store.session() as s:
        row = s.get(ProviderBudget, key_of(c.conn))
        assert row.cap == 400 and 300 <= row.used <= 320 + 20
    used = sum(c.sandbox.state["usage"].values())
    assert used <= 320 + 20  # stopped at the scheduled share (one block at most over), not at Salesforce's 403
    assert not any(status == 403 for _, _, status in c.sandbox.request_log)


# -- Pipedrive: a daily budget of tokens, each call priced by its endpoint --------------------------------

def test_pipedrive_books_each_call_at_its_token_price_so_todays_count_is_the_companys(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/b.db")
    c = in_process("pipedrive", "demo", plan_multiplier=2, seats=3)
    c.conn.extra["plan"] = "growth"
    c.conn.extra["seats"] = c.connector.active_seats()
    assert c.conn.extra["seats"] == 3  # the deactivated colleague is not a seat
    connector = registry.make_connector(c.conn, c.tokens, transport=c.connector.api._http._transport,
                                        sleep=c.sandbox.advance)
    budget = attach(store, connector)
    assert budget is not None and budget.cap == 180_000  # 60,000 tokens a seat on Growth
    before = c.sandbox.tokens_used_today()
    cursors = {t: connector.read_records(t, None).cursor for t in ("company", "person")}
    connector.read_deals(None)
    connector.get_records("company", ["1", "2"])
    for t in ("company", "person"):
        connector.read_records(t, cursors[t])
    connector.close()
    spent = c.sandbox.tokens_used_today() - before
    assert spent > connector.api.request_count  # lists cost 10 or 20 tokens, not one
    with store.session() as s:
        row = s.get(ProviderBudget, key_of(c.conn))
        assert row.used == spent == connector.api.units_spent
    [line] = [BudgetLine("crm", "pipedrive", row.used, row.cap)]
    assert line.text == f"Pipedrive: {spent:,} of 180,000 tokens today"


def test_a_spent_pipedrive_day_stops_the_sync_before_pipedrive_refuses(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/b.db")
    c = in_process("pipedrive", "demo", plan_multiplier=1, seats=1)  # Lite, one seat: 30,000 tokens
    assert c.connector.limits.daily_cap == 30_000  # no plan given: Lite assumed, the smallest
    budget = attach(store, c.connector, share=0.8)  # scheduled syncs: 24,000 of them
    other = StoreBudget(store, key_of(c.conn), cap=30_000)
    for _ in range(24_000 - 100):  # another process spent the day's share but 100 tokens
        assert other.take() == (0.0, "")
    other.close()
    before = c.sandbox.tokens_used_today()

    with pytest.raises(RateLimited) as stopped:
        _read_until_stopped(c.connector, 20)
    assert stopped.value.daily and "Pipedrive API tokens" in str(stopped.value)
    assert c.sandbox.tokens_used_today() - before <= 100
    assert not any(status == 429 for _, _, status in c.sandbox.request_log)
    assert budget.resume_at() is not None


def test_the_pipedrive_plan_is_the_users_to_give_and_survives_a_reconnect(tmp_path):
    from app.ops.workspaces import add_workspace, load_connection, new_connection, save_connection

    store = Store(f"sqlite:///{tmp_path}/b.db")
    ws = add_workspace(store, "Acme", "pipedrive", "xero")
    with pytest.raises(UserError, match="no Pipedrive connection"):
        set_pipedrive_plan(store, "Acme", "growth")
    conn = new_connection(ws, "pipedrive", "http://pipedrive.test")
    conn.extra["seats"] = 4
    save_connection(store, ws, conn)
    assert pipedrive_plan(store, "Acme") == (None, 4, 120_000)  # Lite assumed until told
    with pytest.raises(UserError, match="Growth, Premium, Ultimate"):
        set_pipedrive_plan(store, "Acme", "Gold")
    assert set_pipedrive_plan(store, "Acme", " Premium ") == 600_000
    again = new_connection(ws, "pipedrive", "http://pipedrive.test")  # a reconnect: a fresh sign-in
    again.extra["seats"] = 5
    save_connection(store, ws, again)
    assert load_connection(store, ws, "crm").extra["plan"] == "premium"
    assert pipedrive_plan(store, "Acme") == ("premium", 5, 750_000)


def test_the_pipedrive_demo_shows_the_sample_companys_growth_budget_in_tokens(tmp_path):
    from app.connectors.tokens import MemoryTokenStore
    from app.ops import sandboxes
    from app.ops.budget import budget_today
    from app.ops.demo import run_demo

    store = Store(f"sqlite:///{tmp_path}/b.db")
    try:
        result = run_demo(store, MemoryTokenStore(), tmp_path, crm="pipedrive", accounting="xero")
    finally:
        sandboxes.stop_all()
    assert result.run.status == "ok", result.run.errors
    [line] = [b for b in budget_today(store, "demo") if b.provider == "pipedrive"]
    # the sample company is on Growth with 3 seats, as its sandbox: 180,000 tokens, not Lite's 90,000
    assert line.cap == 180_000 and 0 < line.used < 180_000
    assert line.text == f"Pipedrive: {line.used:,} of 180,000 tokens today"


def test_pipedrive_field_definitions_are_kept_for_every_process_and_read_again_when_a_record_has_a_new_one(
        tmp_path):
    from app.ops import detail_cache

    store = Store(f"sqlite:///{tmp_path}/b.db")
    c = in_process("pipedrive", "demo")

    def fields_reads() -> int:
        return sum(1 for _m, path, _s in c.sandbox.request_log if path.endswith("/organizationFields"))

    def a_process():
        connector = registry.make_connector(c.conn, c.tokens, transport=c.connector.api._http._transport,
                                            sleep=c.sandbox.advance)
        detail_cache.attach(store, connector)
        return connector

    first = a_process()
    mapping = first.default_mapping()
    cursor = first.read_records("company", None).cursor
    first.close()
    read = fields_reads()
    second = a_process()  # another process, later: an idle sync
    assert second.default_mapping() == mapping
    assert second.read_records("company", cursor).records == []
    assert fields_reads() == read  # 20 tokens a sync no longer spent on an unchanged list of fields
    # Someone adds a custom field in Pipedrive and fills it in on a company: the next read sees a key the kept
    # definitions lack, and reads them again, once.
    added = c.sandbox.add_custom_field("organization", "Account manager", "varchar")
    c.sandbox.advance(2)
    c.sandbox.edit("organizations", 1, custom_fields={added["key"]: "Dana"})
    [company] = second.read_records("company", cursor).records
    assert company.properties[added["key"]] == "Dana"
    assert fields_reads() == read + 1
    assert "Account manager" in {f.label for f in second.list_fields("company")}
    assert second.default_mapping() == mapping
    second.close()
