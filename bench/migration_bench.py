"""10,000 CRM companies migrated into each accounting sandbox, rate limits scaled up 100 times.

    python -m bench.migration_bench [N] [--scale X] [provider ...]

For each ledger it prints the write calls against the minimum the batch size allows (goal: at most
1.05 times) and the apply's wall time against the floor the (scaled) rate limit implies (goal, issue
20 point 4: at most 1.5 times), and merges the figures into ``bench/results.json`` under "migration".

Limits x100 are the providers' own limits on a clock 100 times as fast: the same number of calls in a
window a hundredth as long (QuickBooks: 40 batch calls in 0.6 s, Xero: 60 calls in 0.6 s), on the
ledger's sandbox and in the connector alike. Raising the counts instead (4,000 batch calls a minute)
would give a window that holds every call of the import, so the limiter would never wait and the
"floor" would bound nothing. The figures show that the limiter binds: how often and how long it waited,
and the most calls the sandbox saw in any one window (the limit itself when it binds).

The connectors run with real sleeps, so their rate limiters really wait. Each sandbox runs in a process
of its own, served over HTTP on 127.0.0.1 (``bench.sandbox_child``), as a provider is another machine:
its CPU is not ours, and waiting on its answer releases our GIL. Calls are counted at the ledger
sandbox's own request log; ``own_cpu_seconds`` is this process's CPU during the apply,
``sandbox_cpu_seconds`` the ledger sandbox process's. The CRM sandbox (HubSpot, its limits x100 by
count) is read by the dry run only.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
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
from app.store.db import Store
from app.store.models import Workspace

SCALE = 100
CRM = "hubspot"
GOAL = 1.5  # wall time at most this many times the floor
RESULTS = Path(__file__).with_name("results.json")


class _Waits:
    """A real sleep that counts: how often and how long the rate limiters waited."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.count += 1
            self.seconds += seconds
        time.sleep(seconds)


class _Provider:
    """A provider's sandbox in a process of its own (``bench.sandbox_child``), served on 127.0.0.1."""

    def __init__(self, provider: str, *, by: str, companies: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.sandbox_child", provider, "--scale", str(SCALE), "--by", by,
             "--companies", str(companies)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parent.parent)
        hello = self._answer()
        self.url: str = hello["url"]
        self.limits = [tuple(x) for x in hello["limits"]]

    def _answer(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError(f"the sandbox process stopped (exit code {self.proc.poll()})")
        return dict(json.loads(line))

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # the child stops serving at the end of its input
            self.proc.wait(timeout=30)


def _connector(provider: str, box: _Provider, waits: _Waits, *, faster: bool = False) -> Any:
    """A connector talking HTTP to ``box``, its own limits scaled like the sandbox's."""
    tokens = MemoryTokenStore()
    conn = Connection(id=f"{provider}-{uuid.uuid4().hex[:8]}", provider=provider, base_url=box.url,
                      auth_url=box.url)
    grant = box.ask(f"grant {conn.client_id}")
    connect_with_grant(conn, tokens, grant["tokens"], grant["callback"], client_secret="sandbox-secret")
    connector = registry.make_connector(conn, tokens)  # real sleeps: limits really wait
    limits = connector.limits
    cap = limits.daily_cap * SCALE if limits.daily_cap else None

    def scaled(requests: int, window: float) -> tuple[int, float]:
        return (requests, window / SCALE) if faster else (requests * SCALE, window)

    requests, window = scaled(limits.requests, limits.window_seconds)
    connector.limits = dataclasses.replace(limits, requests=requests, window_seconds=window, daily_cap=cap)
    old = connector.api.limiter
    connector.api.limiter = RateLimiter(*scaled(old.requests, old.window), sleep=waits)
    if (batch := batch_limits(connector)) is not None:
        requests, window = scaled(batch.requests, batch.window_seconds)
        connector.batch_limits = dataclasses.replace(batch, requests=requests, window_seconds=window)
    if hasattr(connector, "batch_pacer"):  # QuickBooks paces its own batch calls (40 a minute)
        connector.batch_pacer = RateLimiter(*scaled(connector.batch_pacer.requests, connector.batch_pacer.window),
                                            sleep=waits)
    return connector


def _busiest(stamps: list[float], window: float) -> int:
    """The most calls in any one window of ``window`` seconds."""
    return max((bisect.bisect_left(stamps, t + window) - n for n, t in enumerate(stamps)), default=0)


def run_one(provider: str, n: int) -> dict[str, Any]:
    waits = _Waits()
    crm_box = _Provider(CRM, by="count", companies=n)  # read in the dry run only: its limits x SCALE by count
    acct_box = _Provider(provider, by="time")
    try:
        crm = _connector(CRM, crm_box, waits)
        acct = _connector(provider, acct_box, waits, faster=True)
        with tempfile.TemporaryDirectory() as folder:
            store = Store(f"sqlite:///{Path(folder) / 'bench.db'}")
            with store.session() as s:
                ws = Workspace(name="bench", crm_provider=CRM, accounting_provider=provider, settings={})
                s.add(ws)
                s.flush()
                ws_id = ws.id
            plan_cpu = time.process_time()
            plan = run_migration(store, ws_id, crm, acct)
            plan_cpu = time.process_time() - plan_cpu
            acct_box.ask("mark")
            waits.count, waits.seconds = 0, 0.0
            cpu = time.process_time()
            applied = run_migration(store, ws_id, crm, acct, apply=True, sleep=waits)
            cpu = time.process_time() - cpu
            seen = acct_box.ask("report")  # counted at the sandbox's own request log
            store.dispose()
        crm.close()
        acct.close()
    finally:
        crm_box.close()
        acct_box.close()
    limits = acct.limits
    writes = applied.done["create_ledger"]
    minimum = math.ceil(writes / max(1, limits.batch_max))
    calls, stamps = seen["calls"], sorted(seen["stamps"])
    # the floor: the slowest of the sandbox's own limits, each x SCALE, for the fewest calls possible; a
    # limit whose window holds every call (Xero's day) never makes anyone wait and bounds nothing
    floor, binding = 0.0, (0, 0.0)
    for requests, window in acct_box.limits:
        if minimum > requests and minimum * window / SCALE / requests > floor:
            floor, binding = minimum * window / SCALE / requests, (requests, window / SCALE)
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    ratio = applied.seconds / floor if floor else None
    return {
        "ledger": provider, "companies": n, "planned_creates": plan.counts["create_ledger"],
        "plan_counts": plan.counts, "created": writes, "status": applied.status, "batch_max": limits.batch_max,
        "rate_limit": f"{binding[0]} calls in {binding[1]:g} s (the sandbox's {binding[0]} in "
                      f"{binding[1] * SCALE:g} s, x{SCALE} by time)" if floor else "none binds at this size",
        "write_calls": calls, "min_write_calls": minimum, "calls_ratio": round(calls / max(1, minimum), 3),
        "statuses_at_sandbox": seen["statuses"],
        "limiter_waits": waits.count, "limiter_waited_seconds": round(waits.seconds, 2),
        "busiest_window_calls": _busiest(stamps, binding[1]), "window_limit": binding[0],
        "calls_per_limit_window": round((calls - 1) * binding[1] / span, 1) if span else None,
        "apply_seconds": round(applied.seconds, 2), "own_cpu_seconds": round(cpu, 2),
        "sandbox_cpu_seconds": round(seen["cpu_seconds"], 2),
        "in_write_calls_seconds": round(applied.call_seconds, 2),
        "floor_seconds": round(floor, 2),
        "time_ratio": round(ratio, 2) if ratio else None, "goal_ratio": GOAL,
        "result": "pass" if ratio is not None and ratio <= GOAL and waits.count else "miss",
        "plan_seconds": round(plan.seconds, 1), "plan_cpu_seconds": round(plan_cpu, 1),
        "eta_shown": plan.estimate.text, "eta_seconds": plan.estimate.seconds,
    }


def record(entries: list[dict[str, Any]], command: str, load: list[float]) -> None:
    """Merge into results.json under "migration", keyed by ledger; other entries are kept."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    ledgers = (data.get("migration") or {}).get("ledgers") or {}
    ledgers.update({e["ledger"]: e for e in entries})
    data["migration"] = {
        "command": command, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "load_average_at_start": load,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "limits": f"x{SCALE} by time (each window a {SCALE}th as long)", "goal": f"wall <= {GOAL} x floor",
        "ledgers": ledgers}
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    global SCALE
    args = sys.argv[1:]
    n = int(args.pop(0)) if args and args[0].isdigit() else 10_000
    if "--scale" in args:  # another speed-up than x100 (results.json keeps only x100 runs)
        at = args.index("--scale")
        SCALE = int(args[at + 1])
        del args[at:at + 2]
    providers = args or ["quickbooks", "xero"]
    load = [round(x, 2) for x in os.getloadavg()]
    results = []
    for provider in providers:
        figures = run_one(provider, n)
        results.append(figures)
        print(json.dumps(figures), flush=True)
    command = f"python -m bench.migration_bench {n} {' '.join(providers)}".rstrip()
    print(f"command: {command}; limits x{SCALE}; load average at start {load}")
    if n == 10_000 and SCALE == 100:
        record(results, command, load)


if __name__ == "__main__":
    main()
