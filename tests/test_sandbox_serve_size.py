"""`crossledger sandbox serve PROVIDER --seed large --size N --limits-scale X`: N companies with people, deals
and products in proportion, and every limit of that sandbox multiplied by X (issue 20's benchmarks)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.connectors.base import Connection
from app.connectors.tokens import MemoryTokenStore
from app.ops.connect import connect
from app.sandbox.demo_data import proportional
from app.sandbox.registry import sandbox_class

ROOT = Path(__file__).resolve().parent.parent


def _serve(provider: str, state: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app", "sandbox", "serve", provider, "--port", "0", "--state",
                             str(state), *flags], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    proc.stdout.close()
    proc.stderr.close()


def test_seed_large_with_a_size_and_limits_scaled_over_http(tmp_path):
    state = tmp_path / "hubspot.json"
    proc = _serve("hubspot", state, "--seed", "large", "--size", "400", "--limits-scale", "4")
    try:
        url = proc.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
        conn = Connection(id="served", provider="hubspot", base_url=url, auth_url=url)
        tokens = MemoryTokenStore()
        connect(conn, tokens, client_secret="sandbox-secret", timeout=20)
        headers = {"Authorization": f"Bearer {tokens.load(conn.id).access_token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
            resp = http.get("/crm/v3/objects/companies", params={"limit": 1})
            assert resp.headers["X-HubSpot-RateLimit-Max"] == "440"  # 110 per 10 s, times 4
    finally:
        _stop(proc)
    objects = json.loads(state.read_text())["objects"]
    size = proportional(400)
    assert size == {"companies": 400, "people": 40, "deals": 240, "products": 8}
    # the demo's mess adds a dozen duplicated companies and a few contacts of its own
    assert 400 <= len(objects["companies"]) <= 400 + 20
    assert 40 <= len(objects["contacts"]) <= 40 + 20
    assert len(objects["deals"]) == 240 and len(objects["products"]) == 8


@pytest.mark.parametrize("provider", ["hubspot", "pipedrive", "salesforce", "zohocrm", "quickbooks", "xero",
                                      "zohobooks"])
def test_limits_scale_multiplies_every_limit(provider):
    box = sandbox_class(provider)()
    box.seed("empty")
    before = _limits(box)
    box.scale_limits(3)
    after = _limits(box)
    assert before and set(before) == set(after)
    assert all(after[k] == pytest.approx(3 * v, rel=0.05) for k, v in before.items()), (before, after)


def _limits(box) -> dict[str, float]:
    """Every limit the sandbox enforces, by name (per window and per day)."""
    out: dict[str, float] = {}
    if box.rate_limit:
        out["rate"] = box.rate_limit[0]
    for name in ("search_rate", "batch_limit"):
        if isinstance(getattr(box, name, None), tuple):
            out[name] = getattr(box, name)[0]
    for name in ("minute_limit", "day_limit", "app_minute_limit", "burst_limit", "search_limit", "daily_budget",
                 "credit_limit"):
        if isinstance(getattr(box, name, None), int):
            out[name] = getattr(box, name)
    if hasattr(box, "api_usage"):
        out["daily_allocation"] = box.api_usage()[1]
    if hasattr(box, "daily_cap"):
        out["daily_cap"] = box.daily_cap(box.state["default_org"])
    return out
