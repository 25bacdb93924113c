"""`crossledger workspace …` and `crossledger connect`: workspaces, their settings and their sign-ins."""

from __future__ import annotations

import argparse
import json
import sys
import webbrowser
from pathlib import Path
from typing import Any

from app.cli.common import open_home, token_store


def cmd_workspace(args: argparse.Namespace) -> int:
    from app.ops import workspaces

    _, store = open_home(args)
    if args.action == "add":
        ws = workspaces.add_workspace(store, args.name, args.crm, args.accounting)
        print(f"Workspace '{ws.name}' added ({ws.crm} ↔ {ws.accounting}). Next: crossledger connect {ws.crm} "
              f"--workspace \"{ws.name}\"")
    elif args.action == "list":
        items = workspaces.list_workspaces(store)
        if args.json:
            print(json.dumps([{"name": w.name, "crm": w.crm, "accounting": w.accounting} for w in items]))
        else:
            for w in items:
                print(f"{w.name}\t{w.crm}\t{w.accounting}")
            if not items:
                print("No workspaces yet. Add one with 'crossledger workspace add NAME --crm ... --accounting ...'.")
    elif args.action == "rename":
        ws = workspaces.rename_workspace(store, args.name, args.new_name)
        print(f"Workspace '{args.name}' is now called '{ws.name}'. Its connections, links and history are kept.")
    elif args.action == "set":
        return _workspace_set(args, store)
    elif args.action == "show":
        from app.ops.workspace_settings import describe

        shown = describe(store, args.name)
        print(json.dumps(shown) if args.json else _settings_text(shown))
    elif args.action == "remove":
        workspaces.get_workspace(store, args.name)  # an unknown name is told before the keyring is needed
        removed = workspaces.remove_workspace(store, token_store(store, args.name), args.name)
        print(f"Workspace '{args.name}' removed; its sign-ins for {', '.join(removed) or 'no providers'} were "
              "deleted from the keyring.")
    return 0


def _workspace_set(args: argparse.Namespace, store: Any) -> int:
    from app.ops.workspace_settings import apply_settings, load, save

    if args.report_folder is None and args.direction is None and not args.rule and args.cadence is None:
        print("Nothing to change. Say what to set, e.g. --report-folder ~/Reports/Acme, --direction "
              "crm-to-accounting, --rule city=ask or --cadence realtime=5m.", file=sys.stderr)
        return 2
    if args.report_folder is not None:
        from app.ops.reconcile_month import folder_problem

        folder = args.report_folder.strip()
        if folder and (problem := folder_problem(folder)):
            print(problem, file=sys.stderr)
            return 2
    shown = apply_settings(store, args.name, direction=args.direction, rules=args.rule, cadence=args.cadence)
    if args.report_folder is not None:
        from app.ops.reconcile_month import report_folder

        folder = args.report_folder.strip()
        save(store, args.name, report_folder=str(Path(folder).expanduser()) if folder else None)
        settings = load(store, args.name)
        if not args.json:
            print(f"Monthly reconciliation workbooks for '{args.name}' now go to {report_folder(settings)}.")
        shown["report_folder"] = settings.report_folder
    if args.json:
        print(json.dumps(shown))
    elif args.direction is not None or args.rule or args.cadence is not None:
        print(f"Saved. {_settings_text(shown)}")
    return 0


def _settings_text(shown: dict[str, Any]) -> str:
    from app.connectors import registry

    crm, acct = registry.info(shown["crm"]).label, registry.info(shown["accounting"]).label
    way = {"both": "both ways", "crm-to-accounting": f"{crm} → {acct} only",
           "accounting-to-crm": f"{acct} → {crm} only", "off": "off"}[shown["direction"]["customer"]]
    wins = {"crm": crm, "accounting": acct, "recent": "the latest change", "ask": "ask me (Review)"}
    rules = ", ".join(f"{f}: {wins[r]}" for f, r in shown["rules"].items())
    c = shown["cadence"]
    return (f"'{shown['name']}' ({crm} ↔ {acct}): customers sync {way}; invoices for won deals "
            f"{'on' if shown['direction']['invoice'] == 'on' else 'off'}.\n"
            f"  When a field changed on both sides: {rules}.\n"
            f"  Scheduled syncs: every {c['realtime_minutes']} min, a full pass daily at {c['batch_hour']:02d}:00, "
            f"the monthly reconciliation on day {c['reconcile_day']}{' (paused)' if c['paused'] else ''}.")


def _checked_url(text: str | None, flag: str, provider: str) -> str | None:
    from urllib.parse import urlsplit

    from app.connectors import hosts
    from app.ops.workspaces import UserError

    if text is None:
        return None
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port that is not a number fails here
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise UserError(f"'{text}' is not a web address. Give {flag} as http://… or https://…, for example "
                        "http://127.0.0.1:8765 for a sandbox.")
    try:
        return hosts.check_configured(provider, text, flag)
    except hosts.UntrustedHost as exc:
        raise UserError(exc.message) from None


def cmd_connect(args: argparse.Namespace) -> int:
    import httpx

    from app.connectors import registry
    from app.connectors.oauth import follow_redirects_opener
    from app.ops import workspaces
    from app.ops.connect import connect

    base_url = _checked_url(args.base_url, "--base-url", args.provider)
    auth_url = _checked_url(args.auth_url, "--auth-url", args.provider)
    _, store = open_home(args)
    ws = workspaces.get_workspace(store, args.workspace)
    info = registry.info(args.provider)
    base = base_url or info.default_base_url
    conn = workspaces.new_connection(ws, args.provider, base, auth_url or (None if base_url
                                                                          else info.default_auth_url))
    tokens = token_store()
    if args.client_id:
        conn.client_id = args.client_id
    local = any(h in (conn.auth_url or "") for h in ("127.0.0.1", "localhost"))

    def sandbox_browser(url: str) -> None:
        try:
            follow_redirects_opener(url)
        except httpx.HTTPError:
            raise workspaces.UserError(f"Crossledger could not reach {conn.auth_url} to sign in. Check the address "
                                       "given with --base-url (is the sandbox running?) and try again.") from None

    opener = sandbox_browser if local else _browser
    print(f"Connecting {info.label} to '{ws.name}' …")
    secret = args.client_secret
    if secret is None and local:
        secret = "crossledger-sandbox-secret"  # a local sandbox takes any secret; some providers require one  # noqa: S105 - sandbox only
    connect(conn, tokens, client_secret=secret, open_url=opener, timeout=args.timeout)
    workspaces.save_connection(store, ws, conn)
    print(f"Connected to {(conn.label or info.label).rstrip('.')}. The sign-in is saved in the system keyring.")
    return 0


def _browser(url: str) -> None:
    print("Your browser will open to sign in. If it does not, open this address:\n  " + url)
    webbrowser.open(url)
