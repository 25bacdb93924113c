"""`crossledger connect` as a script runs it: the distribution profile's app with no client ID typed, and
HubSpot and Pipedrive access tokens read from stdin or the environment, checked by one read before they
reach the real Secret Service keyring. Real processes, sandboxes served over real HTTP."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.connectors.profile import FILE_NAME, PUBLIC_CLIENTS
from app.connectors.tokens import KeyringTokenStore
from app.sandbox.base import Request, Response
from app.sandbox.server import RunningServer
from tests.test_signin import sandbox

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sandboxes() -> Iterator[dict[str, RunningServer]]:
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(sandbox(name)) for name in ("hubspot", "pipedrive", "quickbooks", "xero")}


def write_profile(home: Path, servers: dict[str, RunningServer]) -> None:
    """This copy's apps, living on the sandboxes (loopback redirect on any free port: tests run side by side)."""
    lines = []
    for name, server in servers.items():
        lines += [f"[{name}]", f'client_id = "crossledger-{name}"', f'server = "{server.url}"', "port = 0"]
        if name not in PUBLIC_CLIENTS:
            lines.append(f'client_secret = "shipped-{name}-secret"')
    home.mkdir(parents=True, exist_ok=True)
    (home / FILE_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")


def cli(home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("CROSSLEDGER_ACCESS_TOKEN", "CROSSLEDGER_HOME")}
    return subprocess.run([sys.executable, "-m", "app", "--home", str(home), *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=240, env={**clean, **(env or {})},
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def token_requests(server: RunningServer) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []

    def hook(req: Request, _resp: Response) -> None:
        if req.method == "POST" and "token" in req.path and "introspect" not in req.path:
            seen.append(req.form() | {"authorization": req.header("authorization") or ""})

    server.app.exchange_hooks.append(hook)
    return seen


def app_sent(request: dict[str, str]) -> tuple[str | None, str | None]:
    """(client id, client secret) a token request carried, in its form or in HTTP Basic (QuickBooks)."""
    if request["authorization"].startswith("Basic "):
        client_id, secret = base64.b64decode(request["authorization"][6:]).decode().split(":", 1)
        return client_id, secret
    return request.get("client_id"), request.get("client_secret")


def connections(home: Path) -> dict[str, tuple[str, str]]:
    """side → (provider, client id) of the connections saved in the database."""
    with sqlite3.connect(home / "crossledger.db") as db:
        return {side: (provider, client_id) for side, provider, client_id in
                db.execute("select side, provider, client_id from connection")}


def sync_works(home: Path, name: str) -> None:
    run = json.loads(ok(cli(home, "sync", name, "--json")))
    assert run["status"] == "ok" and run["errors"] == 0 and run["read"] > 0, run
    assert run["linked"] + run["created"] > 0, run


def keyring_holds(secret: str) -> bool:
    """Whether any item of the Secret Service, in any of its collections, holds ``secret``."""
    import secretstorage

    with secretstorage.dbus_init() as bus:
        return any(secret in item.get_secret().decode("utf-8", "replace")
                   for collection in secretstorage.get_all_collections(bus) if not collection.is_locked()
                   for item in collection.get_all_items())


# -- the distribution profile's app ------------------------------------------------------------------------

def test_a_profile_pointing_at_the_sandboxes_connects_through_the_cli_with_no_client_id_typed(
        secret_service, sandboxes, tmp_path):
    home = tmp_path / "home"
    write_profile(home, sandboxes)
    asked = {name: token_requests(sandboxes[name]) for name in ("hubspot", "quickbooks", "xero")}
    ok(cli(home, "workspace", "add", "Acme", "--crm", "hubspot", "--accounting", "quickbooks"))
    ok(cli(home, "workspace", "add", "Kiwi", "--crm", "hubspot", "--accounting", "xero"))
    for provider, ws in (("hubspot", "Acme"), ("quickbooks", "Acme"), ("xero", "Kiwi"), ("hubspot", "Kiwi")):
        out = ok(cli(home, "connect", provider, "--workspace", ws))  # no --client-id, no --base-url
        assert "Connected to" in out and "keyring" in out
    for provider, seen in asked.items():
        assert seen, f"no token request reached the {provider} sandbox"
        first = seen[0]
        client_id, secret = app_sent(first)
        assert client_id == f"crossledger-{provider}" and first["code_verifier"]  # PKCE, with the profile's app
        assert secret == (None if provider in PUBLIC_CLIENTS else f"shipped-{provider}-secret")  # Xero: none
    with sqlite3.connect(home / "crossledger.db") as db:
        rows = db.execute("select provider, client_id, extra from connection").fetchall()
    assert {(p, c) for p, c, _ in rows} == {("hubspot", "crossledger-hubspot"),
                                            ("quickbooks", "crossledger-quickbooks"), ("xero", "crossledger-xero")}
    assert all(json.loads(extra or "{}").get("auth") == "profile" for *_, extra in rows)
    sync_works(home, "Acme")


def test_the_own_app_flags_still_win_over_the_profile(secret_service, sandboxes, tmp_path):
    home = tmp_path / "home"
    write_profile(home, {"quickbooks": sandboxes["quickbooks"]})
    seen = token_requests(sandboxes["quickbooks"])
    ok(cli(home, "workspace", "add", "Acme", "--crm", "hubspot", "--accounting", "quickbooks"))
    ok(cli(home, "connect", "quickbooks", "--workspace", "Acme", "--base-url", sandboxes["quickbooks"].url,
           "--client-id", "my-own-app", "--client-secret", "my-own-secret"))
    assert seen and app_sent(seen[0]) == ("my-own-app", "my-own-secret")
    assert connections(home)["accounting"] == ("quickbooks", "my-own-app")


def test_without_a_profile_a_real_provider_asks_for_your_own_app_on_one_line(secret_service, tmp_path):
    home = tmp_path / "home"
    ok(cli(home, "workspace", "add", "Acme", "--crm", "hubspot", "--accounting", "quickbooks"))
    proc = cli(home, "connect", "quickbooks", "--workspace", "Acme")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "no QuickBooks Online app to sign in with" in proc.stderr and "--client-id" in proc.stderr


# -- access tokens ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("crm", "accounting", "how"),
                         [("hubspot", "quickbooks", "stdin"), ("pipedrive", "xero", "env")])
def test_a_good_access_token_is_saved_to_the_keyring_and_a_sync_then_works(
        secret_service, sandboxes, tmp_path, crm, accounting, how):
    home = tmp_path / "home"
    write_profile(home, {accounting: sandboxes[accounting]})
    app = sandboxes[crm].app
    token = app.private_app_token() if crm == "hubspot" else app.api_token()
    ok(cli(home, "workspace", "add", "Acme", "--crm", crm, "--accounting", accounting))
    args = ("connect", crm, "--workspace", "Acme", "--base-url", sandboxes[crm].url)
    if how == "stdin":
        proc = cli(home, *args, "--access-token-stdin", stdin=f"{token}\n")
    else:
        proc = cli(home, *args, env={"CROSSLEDGER_ACCESS_TOKEN": token})
    assert "with the access token" in ok(proc) and token not in proc.stdout + proc.stderr
    ok(cli(home, "connect", accounting, "--workspace", "Acme"))
    saved = connections(home)
    assert saved["crm"] == (crm, "")  # no app: the token alone
    with sqlite3.connect(home / "crossledger.db") as db:
        (conn_id,) = db.execute("select id from connection where side = 'crm'").fetchone()
    stored = KeyringTokenStore().load(conn_id)
    assert stored is not None and stored.access_token == token and stored.refresh_token is None
    for path in home.rglob("*"):
        assert not path.is_file() or token.encode() not in path.read_bytes(), f"the token is in {path}"
    sync_works(home, "Acme")
    if crm == "pipedrive":  # its daily token budget: seats counted at connect, the plan the user's to give
        assert "3 seats: 90,000 API tokens a day if the plan is Lite" in proc.stdout
        assert "--plan growth" in proc.stdout
        shown = json.loads(ok(cli(home, "workspace", "set", "Acme", "--plan", "Growth", "--json")))
        assert shown["pipedrive"] == {"plan": "growth", "seats": 3, "daily_tokens": 180_000}
        status = json.loads(ok(cli(home, "status", "--json")))
        [line] = [b for w in status["workspaces"] for b in w["budget"] if b["provider"] == "pipedrive"]
        assert line["unit"] == "tokens" and line["cap"] == 180_000 and line["used"] > 0
        assert line["text"] == f"Pipedrive: {line['used']:,} of 180,000 tokens today"


@pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
def test_a_refused_access_token_is_not_saved_and_exits_2_with_one_line(secret_service, sandboxes, tmp_path, crm):
    home = tmp_path / "home"
    ok(cli(home, "workspace", "add", "Acme", "--crm", crm, "--accounting", "quickbooks"))
    bad = "pat-na1-00000000-0000-0000-0000-000000000000" if crm == "hubspot" else "0" * 40
    proc = cli(home, "connect", crm, "--workspace", "Acme", "--base-url", sandboxes[crm].url,
               "--access-token-stdin", stdin=bad + "\n")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    label, place = {"hubspot": ("HubSpot", "Settings › Integrations › Private apps"),
                    "pipedrive": ("Pipedrive", "Settings › Personal preferences › API")}[crm]
    assert f"{label} refused this access token: check it was copied whole, from {place}" in proc.stderr
    assert "crm" not in connections(home)
    assert not keyring_holds(bad)


@pytest.mark.parametrize(("stdin", "says"), [("", "No HubSpot access token came on standard input"),
                                         ("pat-na1 with spaces\n", "has spaces in it; a token has none")])
def test_an_empty_or_broken_token_is_told_on_one_line_and_nothing_is_sent(tmp_path, stdin, says):
    home = tmp_path / "home"
    ok(cli(home, "workspace", "add", "Acme", "--crm", "hubspot", "--accounting", "quickbooks"))
    proc = cli(home, "connect", "hubspot", "--workspace", "Acme", "--base-url", "http://127.0.0.1:9",
               "--access-token-stdin", stdin=stdin)  # nobody listens there: a read would fail otherwise
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
    assert "crm" not in connections(home)


def test_a_provider_with_no_access_token_refuses_the_environment_variable_on_one_line(tmp_path):
    home = tmp_path / "home"
    ok(cli(home, "workspace", "add", "Acme", "--crm", "hubspot", "--accounting", "xero"))
    proc = cli(home, "connect", "xero", "--workspace", "Acme", env={"CROSSLEDGER_ACCESS_TOKEN": "abc"})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "Xero has no access token for one business" in proc.stderr
    assert "unset CROSSLEDGER_ACCESS_TOKEN" in proc.stderr
