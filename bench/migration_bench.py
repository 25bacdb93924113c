"""10,000 CRM companies migrated into each accounting sandbox, rate limits scaled up 100 times.

    python -m bench.migration_bench [N] [provider ...]

For each ledger it prints the write calls against the minimum the batch size allows (goal: at most
1.05 times) and the apply's wall time against the floor the (scaled) rate limit implies (goal: at
most 1.2 times). The connectors run with real sleeps, so their rate limiters really wait; the
sandboxes are reached in-process (httpx's WSGI transport), so no socket time is counted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from app.connectors import registry
from app.connectors.base import Connection
from app.connectors.http import RateLimiter
from app.connectors.tokens import MemoryTokenStore
from app.ops.connect import connect_with_grant
from app.ops.migration import batch_limits, run_migration
from app.sandbox.registry import sandbox_class
from app.sandbox.server import InProcessTransport
from app.store.db import Store
from app.store.models import Workspace
from bench.matchgen import entities

SCALE = 100
CRM = "hubspot"


def _sandbox(provider: str) -> Any:
    sandbox = sandbox_class(provider)()
    sandbox.seed("empty")
    sandbox.scale_limits(SCALE)
    return sandbox


def _connector(provider: str, sandbox: Any) -> Any:
    """A connector wired in-process to ``sandbox``, its own limits scaled like the sandbox's."""
    transport = InProcessTransport(sandbox)
    tokens = MemoryTokenStore()
    conn = Connection(id=f"{provider}-{uuid.uuid4().hex[:8]}", provider=provider, base_url=sandbox.public_url,
                      auth_url=sandbox.public_url)
    connect_with_grant(conn, tokens, sandbox.grant_tokens(conn.client_id), sandbox.test_callback_params(),
                       transport=transport, client_secret="sandbox-secret")
    connector = registry.make_connector(conn, tokens, transport=transport)  # real sleeps: limits really wait
    limits = connector.limits
    connector.limits = dataclasses.replace(
        limits, requests=limits.requests * SCALE,
        daily_cap=limits.daily_cap * SCALE if limits.daily_cap else None)
    old = connector.api.limiter
    connector.api.limiter = RateLimiter(old.requests * SCALE, old.window)
    if (batch := batch_limits(connector)) is not None:
        connector.batch_limits = dataclasses.replace(batch, requests=batch.requests * SCALE)
    if hasattr(connector, "batch_pacer"):  # QuickBooks paces its own batch calls (40 a minute)
        connector.batch_pacer = RateLimiter(connector.batch_pacer.requests * SCALE, connector.batch_pacer.window)
    return connector


def _seed_companies(sandbox: Any, n: int) -> None:
    rng = random.Random(5)
    start = int((time.time() - 86400) * 1000)
    for i, e in enumerate(entities(n, seed=3)):
        domain = re.sub(r"(\.[a-z.]+)(\d+)$", r"\2\1", e["domain"])  # harbourbakery42.com
        props = {"name": f"{e['name']} {e['suffix']}".strip(), "domain": domain,
                 "billing_email": f"accounts@{domain}", "phone": f"+44 20 {rng.randrange(1000, 9999)} "
                                                                     f"{rng.randrange(1000, 9999)}",
                 "city": "London", "country": "United Kingdom", "zip": "EC1A 1BB"}
        sandbox._insert("companies", props, start + i)


def run_one(provider: str, n: int) -> dict[str, Any]:
    crm_box = _sandbox(CRM)
    _seed_companies(crm_box, n)
    acct_box = _sandbox(provider)
    crm = _connector(CRM, crm_box)
    acct = _connector(provider, acct_box)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'bench.db'}")
        with store.session() as s:
            ws = Workspace(name="bench", crm_provider=CRM, accounting_provider=provider, settings={})
            s.add(ws)
            s.flush()
            ws_id = ws.id
        plan = run_migration(store, ws_id, crm, acct)
        cpu = time.process_time()
        applied = run_migration(store, ws_id, crm, acct, apply=True)
        cpu = time.process_time() - cpu
        store.dispose()
    crm.close()
    acct.close()
    limits = acct.limits
    writes = applied.done["create_ledger"]
    minimum = math.ceil(writes / max(1, limits.batch_max))
    calls = applied.calls["ledger"]
    floor = minimum * limits.window_seconds / limits.requests
    if (batch := batch_limits(acct)) is not None:
        floor = max(floor, minimum * batch.window_seconds / batch.requests)
    return {
        "ledger": provider, "companies": n, "planned_creates": plan.counts["create_ledger"],
        "plan_counts": plan.counts, "created": writes, "status": applied.status, "batch_max": limits.batch_max,
        "rate_limit": f"{limits.requests}/{limits.window_seconds:g}s (x{SCALE})"
                      + (f", batch calls {batch.requests}/{batch.window_seconds:g}s" if batch else ""),
        "write_calls": calls, "min_write_calls": minimum, "calls_ratio": round(calls / max(1, minimum), 3),
        "apply_seconds": round(applied.seconds, 1), "apply_cpu_seconds": round(cpu, 1),
        "in_write_calls_seconds": round(applied.call_seconds, 1),
        "floor_seconds": round(floor, 1),
        "time_ratio": round(applied.seconds / floor, 2) if floor else None,
        "plan_seconds": round(plan.seconds, 1), "eta_shown": plan.estimate.text,
        "eta_seconds": plan.estimate.seconds,
    }


def main() -> None:
    args = sys.argv[1:]
    n = int(args.pop(0)) if args and args[0].isdigit() else 10_000
    providers = args or registry.available("accounting")
    results = []
    for provider in providers:
        figures = run_one(provider, n)
        results.append(figures)
        print(json.dumps(figures), flush=True)
    print(f"command: python -m bench.migration_bench {n} {' '.join(providers)}".rstrip())

if __name__ == "__main__":
    main()
