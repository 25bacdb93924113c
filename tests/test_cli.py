"""The command line as a user who scripts it sees it: real processes, real HTTP, real keyring."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from bench.crash import run_in_one_process

ROOT = Path(__file__).resolve().parent.parent


def cli(home: Path, *args: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "app", "--home", str(home), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ})
    if check and proc.returncode != 0:
        raise AssertionError(f"crossledger {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def qbo_customers(state_file: Path) -> list[dict]:
    state = json.loads(state_file.read_text())
    return list(_customers_in(state))


def _customers_in(state: dict):
    """The sandbox's customers, wherever its state keeps them (one realm or several)."""
    stack = [state]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "DisplayName" in node and "Id" in node:
                yield node
            else:
                stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


@pytest.mark.slow
def test_demo_then_status_then_sync_with_no_writes(secret_service, tmp_path):
    home = tmp_path / "home"
    out = cli(home, "demo", "--headless").stdout
    assert "created" in out and "held back" in out

    status = json.loads(cli(home, "status", "--json").stdout)
    [ws] = status["workspaces"]
    assert ws["name"] == "demo"
    assert ws["links"]["total"] > 150
    assert ws["links"]["by_match"].get("email") and ws["links"]["by_match"].get("name")
    # Customers only: the invoices made from won deals are counted under "invoices", not as links.
    assert ws["links"]["total"] == sum(ws["links"]["by_match"].values()) == ws["linked_customers"]
    with sqlite3.connect(home / "crossledger.db") as db:
        kinds = dict(db.execute("select object_type, count(*) from link group by object_type").fetchall())
    assert kinds["invoice"] > 0 and ws["links"]["total"] == kinds["customer"]
    assert len(ws["quarantined"]) >= 10
    assert all(q["reasons"] and q["name"] for q in ws["quarantined"])
    assert {c["side"] for c in ws["connections"]} == {"crm", "accounting"}
    raw = json.dumps(status)
    assert "-at-" not in raw and "-rt-" not in raw  # no token in the output

    sync = json.loads(cli(home, "sync", "demo", "--json").stdout)
    for key in ("read", "created", "updated", "linked", "quarantined", "conflicts", "writes", "errors"):
        assert key in sync
    assert sync["writes"] == 0 and sync["created"] == 0 and sync["errors"] == 0

    # The text status tells each run's start in the computer's own time, to the minute.
    text = subprocess.run([sys.executable, "-m", "app", "--home", str(home), "status"], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, env={**os.environ, "TZ": "Asia/Kolkata"}, check=True).stdout
    last = json.loads(cli(home, "status", "--json").stdout)["workspaces"][0]["last_runs"][0]
    started = dt.datetime.fromisoformat(last["started_at"].removesuffix("Z")) + dt.timedelta(hours=5, minutes=30)
    assert f"run {last['id']} {started:%Y-%m-%d %H:%M} ok:" in text, text

    # The monthly report needs no month: it covers last month, as the scheduled one does.
    report = cli(home, "reconcile", "demo").stdout
    month = (dt.date.today().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    assert f"Reconciliation of 'demo' for {month}: " in report, report
    assert "(s)" not in report and " 1 discrepancies" not in report

    customers = [c for c in qbo_customers(home / "sandboxes" / "demo-quickbooks.json") if c.get("Active", True)]
    names = Counter(c["DisplayName"].casefold() for c in customers)
    assert max(names.values()) == 1

    _no_secret_anywhere(home)

    # No secret in the database file or anywhere in the home folder but the sandboxes' own state.
    db = (home / "crossledger.db").read_bytes()
    assert b"-at-" not in db and b"-rt-" not in db and b"demo-client-secret" not in db
    if os.name == "posix":
        assert (home.stat().st_mode & 0o777) == 0o700
        assert ((home / "crossledger.db").stat().st_mode & 0o777) == 0o600


def test_unknown_workspace_and_provider_are_explained(tmp_path):
    proc = cli(tmp_path / "h", "sync", "nope", check=False)
    assert proc.returncode == 2
    assert "no workspace called 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli(tmp_path / "h", "workspace", "add", "Acme", "--crm", "excel", "--accounting", "xero", check=False)
    assert proc.returncode == 2 and "hubspot" in proc.stderr


def _serve(provider: str, state: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "app", "sandbox", "serve", provider, "--port", "0",
                             "--state", str(state), "--seed", "demo"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    url = line.split(" on ", 1)[1].split(" ", 1)[0]
    httpx.get(url + "/", timeout=5)
    return proc, url


def add_acme(home: Path, crm_url: str, ledger_url: str, crm: str = "hubspot", ledger: str = "quickbooks") -> None:
    """The workspace 'acme' on two sandboxes, signed in: the CLI's three commands in one process (what
    these tests kill and rerun comes after)."""
    run_in_one_process(home, [["workspace", "add", "acme", "--crm", crm, "--accounting", ledger],
                              ["connect", crm, "--workspace", "acme", "--base-url", crm_url],
                              ["connect", ledger, "--workspace", "acme", "--base-url", ledger_url]])


@pytest.mark.slow
def test_sync_killed_at_random_points_never_duplicates(secret_service, tmp_path):
    home = tmp_path / "home"
    crm_proc, crm_url = _serve("hubspot", tmp_path / "hs.json")
    qbo_proc, qbo_url = _serve("quickbooks", tmp_path / "qbo.json")
    try:
        add_acme(home, crm_url, qbo_url)
        for delay in (0.8, 1.6):
            run = subprocess.Popen([sys.executable, "-m", "app", "--home", str(home), "sync", "acme", "--json"],
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            run.send_signal(signal.SIGKILL)
            run.wait()
        final = json.loads(cli(home, "sync", "acme", "--json").stdout)
        assert final["errors"] == 0, final
        again = json.loads(cli(home, "sync", "acme", "--json").stdout)
        assert again["writes"] == 0
    finally:
        for p in (crm_proc, qbo_proc):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
            p.stdout.close()
    customers = [c for c in qbo_customers(tmp_path / "qbo.json") if c.get("Active", True)]
    names = Counter(c["DisplayName"].casefold() for c in customers)
    assert max(names.values()) == 1
    status = json.loads(cli(home, "status", "--json").stdout)
    assert status["workspaces"][0]["links"]["total"] > 150


def _no_secret_anywhere(home: Path) -> None:
    """The real tokens and client secrets, read back from the keyring, appear in no file Crossledger
    writes (database, settings, exported workbook) and in no log line, even at --verbose."""
    import zipfile

    from app.connectors.tokens import KeyringTokenStore
    from app.store.db import Store
    from app.store.models import ConnectionRow

    db = Store(f"sqlite:///{home / 'crossledger.db'}", migrate=False)
    with db.session() as s:
        connection_ids = [c.id for c in s.query(ConnectionRow)]
    db.dispose()
    assert len(connection_ids) == 2
    store = KeyringTokenStore()
    secrets = set()
    for cid in connection_ids:
        saved = store.load(cid)
        assert saved is not None and saved.access_token, f"no tokens in the keyring for {cid}"
        secrets |= {v for v in (saved.access_token, saved.refresh_token, saved.client_secret) if v and len(v) >= 8}
    assert secrets
    verbose = cli(home, "-v", "sync", "demo")
    workbook = home / "exports" / "r.xlsx"
    workbook.parent.mkdir(exist_ok=True)
    cli(home, "reconcile", "demo", "--month", "2026-03", "--out", str(workbook))
    texts = {"sync output": verbose.stdout + verbose.stderr}
    with zipfile.ZipFile(workbook) as z:
        texts["workbook"] = "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
    for path in home.rglob("*"):
        if path.is_file() and "sandboxes" not in path.relative_to(home).parts:  # the imitated providers' own
            texts[str(path.relative_to(home))] = path.read_bytes().decode("utf-8", "replace")
    for where, body in texts.items():
        for secret in secrets:
            assert secret not in body, f"a token or client secret was found in {where}"


def test_a_run_of_one_of_each_is_summed_up_in_the_singular(monkeypatch, capsys):
    from types import SimpleNamespace

    from app.cli import common

    counts = SimpleNamespace(to_json=lambda: {"held_back": 1, "to_review": 0, "conflicts": 0, "possible_matches": 0})
    monkeypatch.setattr(common, "counts_of", lambda store, name: counts)
    run = SimpleNamespace(workspace="Acme", dry_run=False, status="ok", errors=[], counts={
        "read": 1, "created": 1, "linked": 1, "updated": 1, "writes": 1, "invoices_created": 1, "invoices_matched": 1,
        "deals_held": 1, "deals_updated": 1})
    common.print_run_summary(run, store=None)
    out = capsys.readouterr().out
    assert "read 1 record; created 1 customer, linked 1 to existing ones, updated 1" in out
    assert "  1 change written" in out
    assert ("1 invoice created for won deals (1 more already had one in the ledger and was linked to it), "
            "1 won deal held back, 1 deal given their invoice's payment status") in out
