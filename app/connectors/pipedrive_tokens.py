"""Pipedrive's token budget: what a company may spend a day, and what each request costs.

Since 2025 Pipedrive prices API requests in tokens. A company's daily budget is 30,000 base tokens ×
its plan's multiplier × its seats (at most 100 million), shared by every user and app of the company
and renewed at midnight UTC. Each endpoint costs what its operation's ``x-token-cost`` says in
Pipedrive's API reference: reading one record is cheap, a list dearer, a search dearer still.

No answer tells the plan or the budget left, so the plan is the user's to say (``connect --plan``, or
Settings); the seats are counted from the company's active users when it is connected. Until the plan is
known the smallest (Lite) is assumed, which can only make us too careful, never too costly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

# Tokens a day per seat, by plan (Pipedrive's "Usage limits" page; the older plans still billed too).
PLAN_TOKENS: dict[str, int] = {
    "lite": 30_000, "growth": 60_000, "premium": 150_000, "ultimate": 210_000,
    "essential": 30_000, "advanced": 60_000, "professional": 90_000, "power": 150_000, "enterprise": 210_000,
}
CURRENT_PLANS = ("lite", "growth", "premium", "ultimate")
OLDER_PLANS = ("essential", "advanced", "professional", "power", "enterprise")
ASSUMED_PLAN = "lite"
COMPANY_MAX = 100_000_000


def plan_of(extra: Mapping[str, Any]) -> str | None:
    plan = str(extra.get("plan") or "").strip().lower()
    return plan if plan in PLAN_TOKENS else None


def seats_of(extra: Mapping[str, Any]) -> int:
    try:
        return max(1, int(extra.get("seats") or 1))
    except (TypeError, ValueError):
        return 1


def daily_tokens(extra: Mapping[str, Any]) -> int:
    """The company's daily token budget, from the plan and seats kept on its connection."""
    per_seat = PLAN_TOKENS[plan_of(extra) or ASSUMED_PLAN]
    return min(COMPANY_MAX, per_seat * seats_of(extra))


def budget_of(extra: Mapping[str, Any]) -> tuple[str | None, int, int]:
    """(the plan the user gave, or None), the seats and the daily token budget they make."""
    return plan_of(extra), seats_of(extra), daily_tokens(extra)


def plan_label(plan: str) -> str:
    return plan.capitalize()


def seats_label(seats: int) -> str:
    return f"{seats} seat" + ("" if seats == 1 else "s")


def token_cost(method: str, url: str) -> int:
    """The tokens one request costs: each endpoint's ``x-token-cost`` in Pipedrive's API reference,
    by the shape of its path (v1 or v2; one record, a list, a search; a read or a write)."""
    path = httpx.URL(url).path.rstrip("/")
    tail = path.rsplit("/", 1)[-1]
    if "/v1/" in path:
        if tail == "merge":
            return 40
        if method == "GET":
            return 2 if tail.isdigit() or tail == "me" else 20  # one user; any list (fields, recents, users)
        return 10  # creating a field
    if method == "GET":
        if tail in ("search", "archived"):
            return 20
        if tail.isdigit():
            return 1
        return 5 if tail in ("pipelines", "stages") else 10
    return 3 if method == "DELETE" else 5
