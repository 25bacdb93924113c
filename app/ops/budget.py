"""Each provider account's daily allowance, as the app uses it: given to the connectors of a run, shown in
the window ("Zoho Books: 312 of 1,000 calls today"), and read by the scheduler to space and hold its syncs.

The count itself lives in the store (app.store.budget), shared by every process using it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.connectors import pipedrive_tokens, registry
from app.domain.clock import SYSTEM_CLOCK, Clock
from app.store.budget import StoreBudget, budget_key, day_of, next_day, record_cost, zone_named
from app.store.db import Store
from app.store.models import ConnectionRow, ProviderBudget, Workspace

SCHEDULED_SHARE = 0.8  # scheduled syncs never spend the last fifth of a day: it is the user's own
# The quick syncs are spaced to spend less than that (70% of the cap, the nightly one included), so that
# sign-in renewals and busier runs fit too and an ordinary day never reaches the 80% stop.
PLANNED_SHARE = 0.7
# What an idle sync costs on one side before one has been measured: a read of each change feed
# (companies, people, deals; or customers, items, invoices, payments) plus a sign-in check or two.
IDLE_RUN_CALLS = 8
# The nightly full sync before one has been measured: every list read in full, in pages.
NIGHTLY_CALLS = 60
# Until a sync has been measured, a call there is priced as its dearest read (a v1 list: 20 tokens).
FIRST_PRICE = {"pipedrive": 20}
# Pipedrive's plans as a choice: (kept key, label), the current ones first.
PIPEDRIVE_PLANS = [(p, pipedrive_tokens.plan_label(p)) for p in pipedrive_tokens.CURRENT_PLANS] + [
    (p, f"{pipedrive_tokens.plan_label(p)} (older plan)") for p in pipedrive_tokens.OLDER_PLANS]


@dataclass(frozen=True, slots=True)
class BudgetLine:
    side: str
    provider: str
    used: int
    cap: int | None

    @property
    def unit(self) -> str:
        return cap_unit(self.provider)

    @property
    def text(self) -> str:
        label = provider_label(self.provider)
        if self.cap:
            return f"{label}: {self.used:,} of {self.cap:,} {self.unit} today"
        return f"{label}: {self.used:,} {self.unit} today"


def cap_unit(provider: str) -> str:
    """What a provider's daily allowance counts ("calls"; Pipedrive's "tokens"), as its connector says."""
    try:
        return str(registry.module(provider).Connector.limits.cap_unit)
    except (ValueError, ModuleNotFoundError, AttributeError):
        return "calls"


def provider_label(provider: str) -> str:
    try:
        return registry.info(provider).label
    except (ValueError, ModuleNotFoundError):
        return provider


def attach(store: Store, connector: Any, *, share: float = 1.0, clock: Clock = SYSTEM_CLOCK) -> StoreBudget | None:
    """Give a connector's HTTP client its account's shared budget (connectors built without a store have none)."""
    api, conn, limits = getattr(connector, "api", None), getattr(connector, "conn", None), connector.limits
    if api is None or conn is None:
        return None
    api.budget = StoreBudget(store, key_of(conn), cap=limits.daily_cap, requests=limits.requests,
                             window=limits.window_seconds, share=share, clock=clock, zone=zone_of(conn))
    return api.budget


def zone_of(conn: Any) -> dt.tzinfo:
    """The time zone whose midnight renews this account's day (Zoho: the organisation's)."""
    return zone_named((conn.extra or {}).get("time_zone"))


def key_of(conn: Any) -> str:
    return budget_key(conn.provider, conn.tenant_id, conn.id)


def _connections(store: Store, workspace: str) -> list[ConnectionRow]:
    with store.session() as s:
        ws = s.scalars(select(Workspace).where(Workspace.name == workspace)).first()
        if ws is None:
            return []
        return list(s.scalars(select(ConnectionRow).where(ConnectionRow.workspace_id == ws.id)
                              .order_by(ConnectionRow.side)))


def _rows(store: Store, workspace: str) -> list[tuple[ConnectionRow, ProviderBudget | None]]:
    conns = _connections(store, workspace)
    with store.session() as s:
        return [(c, s.get(ProviderBudget, key_of(c))) for c in conns]


def budget_today(store: Store, workspace: str, clock: Clock = SYSTEM_CLOCK) -> list[BudgetLine]:
    """Calls each of the workspace's connections has used today, by every process, against its cap."""
    now = clock.now().timestamp()
    return [BudgetLine(c.side, c.provider, row.used if row is not None and row.day == day_of(now, zone_of(c)) else 0,
                       row.cap if row is not None else None)
            for c, row in _rows(store, workspace)]


def scheduled_hold(store: Store, workspace: str, clock: Clock = SYSTEM_CLOCK) -> dt.datetime | None:
    """Until when the scheduler leaves this workspace alone: a provider asked everyone to wait, or
    scheduled syncs have spent their share of a connection's day."""
    now = clock.now().timestamp()
    until = 0.0
    for conn, row in _rows(store, workspace):
        if row is None:
            continue
        if row.blocked_until > now:
            until = max(until, row.blocked_until)
        zone = zone_of(conn)
        if row.cap and row.day == day_of(now, zone) and row.used >= int(row.cap * SCHEDULED_SHARE):
            until = max(until, next_day(now, zone))
    return dt.datetime.fromtimestamp(until, dt.UTC) if until else None


def realtime_minutes(store: Store, workspace: str, configured: int, *, batch_hour: int = 2,
                     clock: Clock = SYSTEM_CLOCK) -> int:
    """The quick-sync cadence: the user's, or wider when a connection's daily cap needs it, so that a day
    of scheduled syncs (the nightly one included) leaves at least a fifth of the cap for the user.

    Two figures, the wider wins: a whole day's plan (PLANNED_SHARE of the cap, less the nightly sync, in
    quick syncs), and what is left of today's plan after what every process has already spent, over the
    hours left (so a busy day, by hand or by sync, slows the quick syncs instead of running into the stop).
    An idle sync's cost is the last one measured on that account (``run_calls``, from RunResult.requests),
    else IDLE_RUN_CALLS; the nightly one's likewise (``batch_calls``, else NIGHTLY_CALLS). On Zoho Books
    Free with HubSpot that is 4 calls a quick sync and about 175 a night: every 11 minutes, not 2."""
    minutes = configured
    now = clock.now()
    for conn, row in _rows(store, workspace):
        if row is None or not row.cap:
            continue
        price = FIRST_PRICE.get(conn.provider, 1)
        per_run = max(1, row.run_calls or IDLE_RUN_CALLS * price)
        nightly = row.batch_calls or NIGHTLY_CALLS * price
        planned = row.cap * PLANNED_SHARE
        minutes = max(minutes, _spread(24 * 60, (planned - nightly) / per_run))
        zone = zone_of(conn)
        epoch = now.timestamp()
        used = row.used if row.day == day_of(epoch, zone) else 0
        still_to_come = nightly if now.astimezone(dt.UTC).hour < batch_hour else 0
        minutes = max(minutes, _spread((next_day(epoch, zone) - epoch) / 60,
                                       (planned - used - still_to_come) / per_run))
    return minutes


def _spread(minutes: float, runs: float) -> int:
    """The interval that fits ``runs`` syncs in ``minutes``; all of them when not even one fits (today's
    plan is spent: the next quick sync comes as the day renews)."""
    return math.ceil(minutes / runs) if runs >= 1 else max(1, math.ceil(minutes))


def remember_cost(store: Store, connector: Any, calls: int, *, nightly: bool) -> None:
    """``calls`` in the units the account's day counts (app.connectors.http.ApiClient.units_spent)."""
    conn = getattr(connector, "conn", None)
    if conn is not None:
        record_cost(store, key_of(conn), calls, nightly=nightly)


def local_time(when: float) -> str:
    """HH:MM on this computer's clock, as the user reads it."""
    return dt.datetime.fromtimestamp(when, dt.UTC).astimezone().strftime("%H:%M")


def daily_tokens_for(plan: str, seats: int) -> int:
    """Pipedrive's daily token budget for a plan ("" = not given: Lite) and seats."""
    return pipedrive_tokens.daily_tokens({"plan": plan, "seats": seats})


def pipedrive_plan(store: Store, workspace: str) -> tuple[str | None, int, int] | None:
    """The workspace's Pipedrive connection: (the plan the user gave, or None), its seats and the daily token
    budget they make; None when the workspace's CRM is not a connected Pipedrive."""
    for conn in _connections(store, workspace):
        if conn.provider == "pipedrive":
            return pipedrive_tokens.budget_of(conn.extra or {})
    return None


def plan_key(plan: str) -> str:
    """A Pipedrive plan as the user wrote it ("Growth", "growth ") as we keep it, or a UserError naming them."""
    from app.ops.workspaces import UserError

    key = plan.strip().lower()
    if key not in pipedrive_tokens.PLAN_TOKENS:
        names = ", ".join(p.capitalize() for p in pipedrive_tokens.PLAN_TOKENS)
        raise UserError(f"'{plan}' is not a Pipedrive plan. Choose one of: {names}.")
    return key


def check_plan(store: Store, workspace: str, plan: str) -> tuple[str, str]:
    """(the plan as kept, the Pipedrive connection's id), or a UserError saying what is wrong."""
    from app.ops.workspaces import UserError, get_workspace

    key = plan_key(plan)
    get_workspace(store, workspace)  # an unknown workspace is told as such
    conns = [c for c in _connections(store, workspace) if c.provider == "pipedrive"]
    if not conns:
        raise UserError(f"Workspace '{workspace}' has no Pipedrive connection; a plan only matters for Pipedrive. "
                        f"Connect it first: crossledger connect pipedrive --workspace \"{workspace}\" --plan {key}.")
    return key, conns[0].id


def set_pipedrive_plan(store: Store, workspace: str, plan: str) -> int:
    """Keep the Pipedrive company's plan (Lite, Growth, …), which no answer of Pipedrive's tells, and return the
    daily token budget it makes with the company's seats. The shared count's cap follows at once."""
    key, conn_id = check_plan(store, workspace, plan)
    with store.session() as s:
        row = s.get(ConnectionRow, conn_id)
        assert row is not None
        row.extra = {**(row.extra or {}), "plan": key}
        cap = pipedrive_tokens.daily_tokens(row.extra)
        budget = s.get(ProviderBudget, key_of(row))
        if budget is not None:
            budget.cap = cap
    return cap
