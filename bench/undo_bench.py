"""Planning the undo of a ~300-invoice run, at the sandboxes' real rate limits (issue 25, point 5).

    python -m bench.undo_bench [CRM-LEDGER ...]      # default: hubspot-quickbooks

The CRM sandbox holds the demo's "large" data set (1,000 companies, 600 deals of which about 300 are
won); the ledger starts empty. Both sandboxes are served over HTTP on 127.0.0.1 and keep their real
rate limits (nothing is scaled). The syncs that set the workspace up wait out those limits on a
virtual clock (the sandboxes' clocks move with the connectors' waits), so the set-up costs no wall
time. A minute later on the sandboxes' clocks, the undo's planning (``plan_undo``, the dry run behind
``crossledger undo RUN``) runs as the app runs it: connectors made from the stored connections, real sleeps, wall time.

Figures: the planning's wall and CPU seconds and the requests it sent, counted at each sandbox's own
request log (sign-in renewals left out), with the 429 answers among them. Goal: under 30 s.
The figures are merged into ``bench/results.json`` under ``undo_planning`` (one entry per pair).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.connectors.tokens import MemoryTokenStore
from app.ops.connect import connect_with_grant
from app.ops.sync_run import run_sync
from app.ops.undo import plan_undo
from app.ops.workspaces import add_workspace, new_connection, save_connection
from app.sandbox import demo_data
from app.sandbox.registry import sandbox_class
from app.sandbox.server import RunningServer, serve
from app.store.db import Store

GOAL_SECONDS = 30.0
WS = "Undo bench"
RESULTS = Path(__file__).with_name("results.json")


class _Offset:
    """The sandboxes' clock: the computer's, plus every wait the set-up syncs were spared."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def now(self) -> float:
        return time.time() + self.seconds

    def sleep(self, seconds: float) -> None:
        self.seconds += max(0.0, seconds)


def api_calls(log: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """Requests that count against a provider's allowance (token renewals do not)."""
    return [r for r in log if "oauth" not in r[1].lower() and "/token" not in r[1]]


def run_pair(crm: str, ledger: str, size: str = "large") -> dict[str, Any]:
    offset = _Offset()
    servers: list[RunningServer] = []
    with tempfile.TemporaryDirectory(prefix="undo-bench-") as folder:
        store = Store(f"sqlite:///{folder}/undo.db")
        tokens = MemoryTokenStore()
        ws = add_workspace(store, WS, crm, ledger)
        boxes = {}
        try:
            for provider, seed in ((crm, "demo"), (ledger, "empty")):
                box = sandbox_class(provider)(clock=offset.now)
                with demo_data.sized(size):
                    box.seed(seed)
                server = serve(box)
                servers.append(server)
                conn = new_connection(ws, provider, server.url)
                connect_with_grant(conn, tokens, box.grant_tokens(conn.client_id), box.test_callback_params(),
                                   client_secret="sandbox-secret")
                save_connection(store, ws, conn)
                boxes[provider] = box
            # Set-up: sync until nothing more is invoiced; the run that invoiced most is the one undone.
            setup_started = time.perf_counter()
            best, syncs = None, 0
            for _ in range(4):
                result = run_sync(store, tokens, WS, sleep=offset.sleep)
                syncs += 1
                made = result.counts.get("invoices_created", 0)
                if best is None or made > best.counts.get("invoices_created", 0):
                    best = result
                if not made and syncs > 1:
                    break
            setup_seconds = time.perf_counter() - setup_started
            assert best is not None
            invoices = best.counts.get("invoices_created", 0)
            # The bookkeeper looks at the history and decides to undo a minute later: the providers' rate
            # windows have moved on from the set-up's last calls (their daily counts have not).
            offset.sleep(60)
            before = {p: len(b.request_log) for p, b in boxes.items()}
            cpu = time.process_time()
            started = time.perf_counter()
            plan = plan_undo(store, tokens, WS, best.run_id)
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
            calls = {p: api_calls(b.request_log[before[p]:]) for p, b in boxes.items()}
        finally:
            for server in servers:
                server.stop()
            store.dispose()
    voids = sum(1 for s in plan.steps if s.kind == "void_invoice")
    return {
        "pair": f"{crm}-{ledger}", "crm_data": f"demo '{size}'", "invoices_in_run": invoices,
        "run_counts": {k: v for k, v in best.counts.items() if isinstance(v, int) and v},
        "setup_syncs": syncs, "setup_seconds": round(setup_seconds, 1),
        "planning_seconds": round(seconds, 2), "planning_cpu_seconds": round(cpu, 2),
        "calls": {"crm": len(calls[crm]), "ledger": len(calls[ledger])},
        "throttled_429": sum(1 for c in calls.values() for r in c if r[2] == 429),
        "plan": {"steps": len(plan.steps), "void_invoice": voids, "refusals": len(plan.refusals)},
        "limits": "real (not scaled)",
        "goal": f"< {GOAL_SECONDS:g} s", "result": "pass" if seconds < GOAL_SECONDS else "miss",
    }


def record(entries: list[dict[str, Any]], argv: list[str], load: list[float]) -> None:
    """Merge into results.json under "undo_planning", keyed by pair; other entries are kept."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    section = data.get("undo_planning") or {}
    pairs = section.get("pairs") or {}
    for e in entries:
        pairs[e["pair"]] = e
    data["undo_planning"] = {
        "command": "python -m bench.undo_bench " + " ".join(argv), "date": dt.datetime.now(dt.UTC).isoformat(
            timespec="seconds"), "cpu_count": os.cpu_count(), "load_average_at_start": load,
        "goal_seconds": GOAL_SECONDS, "pairs": pairs}
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def main(argv: list[str]) -> int:
    pairs = argv or ["hubspot-quickbooks"]
    load = [round(x, 2) for x in os.getloadavg()]
    entries = []
    for pair in pairs:
        crm, ledger = pair.split("-")
        entry = run_pair(crm, ledger)
        print(json.dumps(entry), flush=True)
        entries.append(entry)
    record(entries, argv, load)
    return 0 if all(e["result"] == "pass" for e in entries) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
