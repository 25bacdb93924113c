"""The `crossledger` command. Its sub-commands and their --json shapes are promises to scripts."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import signal
import sys
import time
import webbrowser
from pathlib import Path
from typing import Any, NoReturn

from app import __version__


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are told on one line, with where to read how (not a page of usage)."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument (command|action): invalid choice:", "there is no such command:", message)
        message = re.sub(r"^argument ([^:]+): ", r"\1: ", message)
        self.exit(2, f"{self.prog}: {_one_line(message)}. See '{self.prog} --help'.\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 1 or value > 86400:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds between 1 and 86400")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number (0 to 65535; 0 picks a free one)")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 10_000_000:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of companies (1 to 10,000,000)")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1_000_000 or value != value:
        raise argparse.ArgumentTypeError(f"'{text}' is not a factor above 0 (1 keeps the provider's limits)")
    return value


def _row_number(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**31:
        raise argparse.ArgumentTypeError(f"'{text}' is not a row number from the dry run")
    return int(text)


def _provider(kind: str | None = None):
    def check(text: str) -> str:
        from app.connectors import registry

        names = {"crm": registry.CRM_PROVIDERS, "accounting": registry.ACCOUNTING_PROVIDERS}.get(
            kind or "", tuple(registry.PROVIDER_MODULES))
        if text not in names:
            what = {"crm": "a CRM", "accounting": "an accounting system"}.get(kind or "", "a provider")
            raise argparse.ArgumentTypeError(f"'{text}' is not {what} Crossledger knows; choose one of "
                                             f"{', '.join(names)}")
        return text
    return check


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="crossledger", description="Keep a CRM and an accounting system in sync.")
    p.add_argument("--version", action="version", version=f"crossledger {__version__}")
    p.add_argument("--home", help="folder for all of Crossledger's state (default: your user data folder; "
                                  "or set CROSSLEDGER_HOME)")
    p.add_argument("--db", help="SQLAlchemy database URL (default: SQLite in the home folder)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens to stderr")
    p.add_argument("--self-test", action="store_true",
                   help="check this installation end to end on built-in sandboxes, then exit")
    sub = p.add_subparsers(dest="command")

    sub.add_parser("gui", help="open the window (the default)")

    d = sub.add_parser("demo", help="try Crossledger on sandbox CRM and accounting data")
    d.add_argument("--headless", action="store_true", help="do not open the window afterwards")
    d.add_argument("--crm", default="hubspot", type=_provider("crm"))
    d.add_argument("--accounting", default="quickbooks", type=_provider("accounting"))

    w = sub.add_parser("workspace", help="add, list or remove client workspaces")
    wsub = w.add_subparsers(dest="action", required=True)
    wa = wsub.add_parser("add")
    wa.add_argument("name")
    wa.add_argument("--crm", required=True)
    wa.add_argument("--accounting", required=True)
    wl = wsub.add_parser("list")
    wl.add_argument("--json", action="store_true")
    wr = wsub.add_parser("remove")
    wr.add_argument("name")
    wn = wsub.add_parser("rename")
    wn.add_argument("name")
    wn.add_argument("new_name")
    wset = wsub.add_parser("set", help="change a workspace's settings")
    wset.add_argument("name")
    wset.add_argument("--report-folder", metavar="DIR",
                      help="where the monthly reconciliation workbooks go ('' for the default folder)")
    wset.add_argument("--direction", metavar="both|crm-to-accounting|accounting-to-crm|off",
                      help="which way customers sync (or customer=…,invoice=on|off)")
    wset.add_argument("--rule", action="append", metavar="FIELD=crm|accounting|recent|ask",
                      help="who wins when a field changed on both sides (repeat for more fields)")
    wset.add_argument("--cadence", metavar="realtime=2m,batch=02:00,reconcile=1,paused=no",
                      help="how often the scheduled syncs run")
    wset.add_argument("--json", action="store_true", help="print the settings afterwards as JSON")
    wshow = wsub.add_parser("show", help="a workspace's settings")
    wshow.add_argument("name")
    wshow.add_argument("--json", action="store_true")

    c = sub.add_parser("connect", help="connect a provider account to a workspace (OAuth)")
    c.add_argument("provider", type=_provider())
    c.add_argument("--workspace", required=True)
    c.add_argument("--base-url", help="API root (a sandbox URL, or the provider's own by default)")
    c.add_argument("--auth-url", help="root of the OAuth endpoints, if not the base URL")
    c.add_argument("--client-id")
    c.add_argument("--client-secret")
    c.add_argument("--timeout", type=_seconds, default=300)

    s = sub.add_parser("sync", help="sync a workspace now")
    s.add_argument("name")
    s.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    s.add_argument("--json", action="store_true", help="print one JSON object with the run's counts")
    s.add_argument("--allow-mass-change", action="store_true",
                   help="let this run change more linked records than the safety limit")

    st = sub.add_parser("status", help="workspaces, connections, links, quarantined records, last runs")
    st.add_argument("--json", action="store_true")

    rc = sub.add_parser("reconcile", help="flag every discrepancy of a month and export an Excel workbook")
    rc.add_argument("name")
    rc.add_argument("--month", required=True, help="YYYY-MM")
    rc.add_argument("--out", help="the .xlsx file to write")
    rc.add_argument("--json", action="store_true")

    sub.add_parser("doctor", help="check this machine and the store, and say how to fix what is wrong")

    bk = sub.add_parser("backup", help="copy the database now (a copy is also made every day; the last 7 are kept)")
    bk.add_argument("file", nargs="?", help="where to put the copy: a new file or a folder (default: the backups "
                                            "folder beside the database)")
    rs = sub.add_parser("restore", help="put a backup in place of the database (a copy of the current one is kept)")
    rs.add_argument("file", help="the backup to restore ('crossledger doctor' names the latest)")

    mg = sub.add_parser("migrate", help="bring existing records on both sides to one clean baseline (once)")
    mg.add_argument("name")
    mode = mg.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="make and show the plan, write nothing (the default)")
    mode.add_argument("--apply", action="store_true", help="carry out the saved plan, exactly as shown")
    mg.add_argument("--exclude", nargs="+", type=_row_number, action="extend", default=[], metavar="ID",
                    help="leave these plan rows out (row numbers from the dry run)")
    mg.add_argument("--json", action="store_true", help="print one JSON object with the plan or the result")

    hi = sub.add_parser("history", help="every field change the runs of a workspace made, newest first")
    hi.add_argument("name")
    hi.add_argument("--record", help="only this record (its id in the CRM or the ledger)")
    hi.add_argument("--field", help="only this field (e.g. email)")
    hi.add_argument("--json", action="store_true")

    un = sub.add_parser("undo", help="take back what one run changed (see the run ids in 'status')")
    un.add_argument("run", nargs="+", metavar="RUN_ID", help="the run to undo ([NAME] RUN_ID is accepted too)")
    un.add_argument("--workspace", help="check that the run belongs to this workspace")
    un.add_argument("--dry-run", action="store_true", help="show what would be undone and left alone; write nothing")
    un.add_argument("--json", action="store_true")

    sv = sub.add_parser("service", help="run the scheduled syncs headless (an office machine or a server)")
    sv.add_argument("--run-now", action="store_true", help="run each workspace's real-time sync once at start")

    cf = sub.add_parser("conflicts", help="list the open conflicts a person has to decide")
    cf.add_argument("name")
    cf.add_argument("--json", action="store_true")

    rs = sub.add_parser("resolve", help="decide one open conflict, as the Review page does")
    rs.add_argument("name")
    rs.add_argument("record", help="the CRM record's id or name")
    rs.add_argument("field", help="the field in conflict, e.g. city or email")
    rs.add_argument("--keep", required=True, metavar="crm|accounting|value=TEXT",
                    help="keep the CRM's value, the accounting system's, or the value you type")

    rl = sub.add_parser("release", help="let the next sync make again a CRM record an undo held back")
    rl.add_argument("name")
    rl.add_argument("record_type", choices=("company", "person", "deal"))
    rl.add_argument("record_id")

    sb = sub.add_parser("sandbox", help="serve a provider imitation on 127.0.0.1")
    sbsub = sb.add_subparsers(dest="action", required=True)
    serve = sbsub.add_parser("serve")
    serve.add_argument("provider", type=_provider())
    serve.add_argument("--port", type=_port, default=0)
    serve.add_argument("--state", help="JSON file keeping the sandbox's state across restarts")
    serve.add_argument("--seed", choices=("demo", "empty", "large"), default=None,
                       help="fill a new sandbox (default: demo when the state file is new; "
                            "large: 1,000 companies and 600 deals, for load and crash tests)")
    serve.add_argument("--search-lag", type=float, metavar="SECONDS",
                       help="HubSpot only: how long a change takes to show in search (default 3, as HubSpot)")
    serve.add_argument("--size", type=_positive_int, metavar="N",
                       help="with --seed large: N companies, and people, deals and products in proportion")
    serve.add_argument("--limits-scale", type=_positive_float, metavar="X", default=1.0,
                       help="multiply every limit of the sandbox (per second, minute and day) by X")
    return p


def _home(args: argparse.Namespace) -> Path:
    """The data folder, made if missing; UserError when it cannot be (a file, or nowhere to write)."""
    from app.ops.workspaces import UserError
    from app.store.db import default_home, ensure_home

    if args.home is not None and not args.home.strip():
        raise UserError("--home was given no folder. Give the folder for Crossledger's data, or leave --home out.")
    home = Path(args.home).expanduser() if args.home else default_home()
    flag = "--home" if args.home else "CROSSLEDGER_HOME" if os.environ.get("CROSSLEDGER_HOME") else None
    give = f"Give {flag} a folder" if flag else "Start Crossledger with --home pointing at a folder"
    if home.exists() and not home.is_dir():
        raise UserError(f"{home} is a file, not a folder. {give} (it is made if missing).")
    try:
        home = ensure_home(home)
    except OSError as exc:
        raise UserError(f"Crossledger cannot keep its data in {home} ({_why(exc)}). {give} you can write "
                        "to.") from None
    os.environ["CROSSLEDGER_HOME"] = str(home)
    return home


def _open(args: argparse.Namespace):
    from app.ops.storage import open_store

    home = _home(args)
    opened = open_store(home, args.db)
    for warning in opened.warnings:
        print(f"crossledger: {_one_line(warning)}", file=sys.stderr)
    return home, opened.store


def _why(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _one_line(text: str) -> str:
    """A message on exactly one line: control characters from the input are shown, not obeyed."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in " ".join(text.splitlines()))


def _tokens(store: Any = None, *names: str):
    """The OS keyring; or, with none running, memory for workspaces that only use embedded sandboxes."""
    from app.ops.sandbox_signin import choose_tokens

    choice = choose_tokens(store, list(names) if names else None)
    if choice.note:
        print(choice.note, file=sys.stderr)
    return choice.tokens


def _print_progress(stage: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r{stage}… {done}/{total}   ", end="", file=sys.stderr, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from app.ops.demo import run_demo
    from app.ops.sandbox_signin import choose_tokens

    home, store = _open(args)
    print(f"Setting up the demo in {home} …")
    choice = choose_tokens(sandbox_only=True)
    if choice.note:
        print(choice.note)
    result = run_demo(store, choice.tokens, home, crm=args.crm, accounting=args.accounting, progress=_print_progress)
    _print_run_summary(result.run, store)
    _print_invoices(store, result.workspace)
    print(f"\nThe demo workspace '{result.workspace}' is saved in {home}.")
    print(f"  crossledger --home {home} status        shows linked, held back and to review")
    print(f"  crossledger --home {home} sync demo     syncs again (nothing changed: 0 writes)")
    if not args.headless:
        return _gui(args, home, store, tokens=choice.tokens)
    return 0


def _print_invoices(store: Any, workspace: str) -> None:
    """Won deals and where their invoices stand, as a salesperson would ask."""
    from app.ops.status import invoice_summary
    from app.ops.workspaces import get_workspace
    from app.sync.invoices import STATUS_WORDS

    summary = invoice_summary(store, get_workspace(store, workspace).id)
    if not summary["linked"]:
        return
    states = ", ".join(f"{n} {STATUS_WORDS.get(k, k).lower()}" for k, n in sorted(summary["by_status"].items()))
    print(f"\nInvoices for won deals: {summary['linked']} ({states})")
    for row in summary["deals"][:12]:
        state = STATUS_WORDS.get(row["status"], row["status"])
        print(f"  {row['deal'][:38]:<38} invoice {row['number'] or '?':<10} {state:<16} "
              f"paid {row['amount_paid'] or 0:>10} of {row['total'] or 0:>10} {row['currency'] or ''}")
    if summary["linked"] > 12:
        print(f"  … and {summary['linked'] - 12} more (crossledger status --json lists them all)")


def _counts(store: Any, workspace: str) -> Any:
    from app.ops.status import workspace_counts
    from app.ops.workspaces import get_workspace

    return workspace_counts(store, get_workspace(store, workspace).id)


def _print_run_summary(run: Any, store: Any) -> None:
    """What the run did, then where the workspace stands: held back and to review are the window's
    numbers (app.ops.status.workspace_counts; docs/glossary.md), not this run's own tallies."""
    c = run.counts
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"Sync of '{run.workspace}' {'(dry run) ' if run.dry_run else ''}finished: {run.status}.")
    print(f"  read {c.get('read', 0)} records; created {c.get('created', 0)} customers, "
          f"linked {c.get('linked', 0)} to existing ones, updated {c.get('updated', 0)}")
    print(f"  {c.get('writes', 0)} changes written")
    print(f"  {_count_words(_counts(store, run.workspace).to_json())}")
    if c.get("invoices_created") or c.get("deals_updated") or c.get("deals_held") or c.get("invoices_matched"):
        matched = c.get("invoices_matched", 0)
        print(f"  {c.get('invoices_created', 0)} invoices created for won deals"
              + (f" ({matched} more already had one in the ledger and were linked to it)" if matched else "") + ", "
              f"{c.get('deals_held', 0)} won deals held back, "
              f"{c.get('deals_updated', 0)} deals given their invoice's payment status")
    for err in run.errors[:10]:
        print(f"  ! {err}")
    if run.status == "held":
        print(f"  To see what would change: crossledger sync \"{run.workspace}\" --dry-run")
        print(f"  To let it through:        crossledger sync \"{run.workspace}\" --allow-mass-change")


def _count_words(counts: dict[str, int]) -> str:
    """'16 held back, 3 to review (1 with conflicting changes, 2 possible matches)', from the
    ``counts`` of ``status --json`` (``WorkspaceCounts.to_json``)."""
    conflicts, matches = counts["conflicts"], counts["possible_matches"]
    why = [f"{conflicts} with conflicting changes"] if conflicts else []
    if matches:
        why.append(f"{matches} possible {'match' if matches == 1 else 'matches'}")
    return f"{counts['held_back']} held back, {counts['to_review']} to review" + (f" ({', '.join(why)})" if why else "")


def cmd_workspace(args: argparse.Namespace) -> int:
    from app.ops import workspaces

    _, store = _open(args)
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
        removed = workspaces.remove_workspace(store, _tokens(store, args.name), args.name)
        print(f"Workspace '{args.name}' removed; its sign-ins for {', '.join(removed) or 'no providers'} were "
              "deleted from the keyring.")
    return 0


def _workspace_set(args: argparse.Namespace, store: Any) -> int:
    from app.ops import workspaces
    from app.ops.workspace_settings import apply_settings

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
        workspaces.update_settings(store, args.name, report_folder=str(Path(folder).expanduser()) if folder else None)
        where = report_folder(workspaces.get_workspace(store, args.name).settings)
        if not args.json:
            print(f"Monthly reconciliation workbooks for '{args.name}' now go to {where}.")
        shown["report_folder"] = workspaces.get_workspace(store, args.name).settings.get("report_folder")
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
    _, store = _open(args)
    ws = workspaces.get_workspace(store, args.workspace)
    info = registry.info(args.provider)
    base = base_url or info.default_base_url
    conn = workspaces.new_connection(ws, args.provider, base, auth_url or (None if base_url
                                                                          else info.default_auth_url))
    tokens = _tokens()
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


def cmd_sync(args: argparse.Namespace) -> int:
    from app.ops.sync_run import run_sync
    from app.ops.workspaces import get_workspace

    _, store = _open(args)
    get_workspace(store, args.name)  # an unknown workspace is explained before the keyring is needed
    result = run_sync(store, _tokens(store, args.name), args.name, dry_run=args.dry_run, trigger="cli",
                      progress=None if args.json else _print_progress, allow_mass_change=args.allow_mass_change)
    if args.json:
        print(json.dumps({**result.to_json(), "workspace_counts": _counts(store, args.name).to_json()}))
    else:
        _print_run_summary(result, store)
    return 0 if result.status in ("ok", "partial") else 1


def cmd_status(args: argparse.Namespace) -> int:
    from app.ops.status import status_json

    _, store = _open(args)
    data = status_json(store)
    if args.json:
        print(json.dumps(data, default=str))
        return 0
    if not data["workspaces"]:
        print("No workspaces yet. Try 'crossledger demo' to see Crossledger at work on sample data.")
    for ws in data["workspaces"]:
        print(f"{ws['name']}: {ws['crm']} ↔ {ws['accounting']}")
        for c in ws["connections"]:
            print(f"  {c['side']:<10} {c['provider_label']:<18} {c['company'] or ''} ({c['status']})")
        print(f"  {ws['links']['total']} linked customers "
              f"({', '.join(f'{k}: {v}' for k, v in sorted(ws['links']['by_match'].items()))})")
        print(f"  {_count_words(ws['counts'])}")
        if ws["quarantined"]:
            print(f"  Held back ({len(ws['quarantined'])}):")
            for q in ws["quarantined"]:
                print(f"    - {q['name']}: {' '.join(q['reasons'])}")
        for r in ws["last_runs"][:3]:
            print(f"  run {r['id']} {r['started_at']} {r['status']}: {r['counts'].get('writes', 0)} writes")
    return 0


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_history(args: argparse.Namespace) -> int:
    from app.ops.history import field_changes, record_names
    from app.ops.workspaces import get_workspace

    _, store = _open(args)
    get_workspace(store, args.name)
    rows = field_changes(store, args.name, record_id=args.record, field=args.field)
    if args.json:
        print(json.dumps({"workspace": args.name, "changes": [
            {"run_id": r.run_id, "run_started": r.run_started.isoformat() + "Z", "trigger": r.trigger,
             "side": r.side, "record_id": r.record_id, "field": r.field, "before": r.before, "after": r.after,
             "rule": r.rule} for r in rows]}))
        return 0
    if not rows:
        print("No changes recorded" + (" for that record or field." if args.record or args.field else " yet."))
        return 0
    names = record_names(store, args.name)
    widths = (16, 4, 8, 6, 24, 16, 24, 24, 14)
    head = ("When (UTC)", "Run", "By", "Side", "Record", "Field", "Before", "After", "Why")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    for r in rows:
        side = {"accounting": "ledger", "crm": "CRM", "local": "link"}.get(r.side, r.side)
        deal = (r.side == "crm" and r.field.startswith("crossledger_")) or r.field == "linked_invoice"
        record = names.get(("deal" if deal else r.side, r.record_id)) or r.record_id
        before, after = r.before, r.after
        if r.side == "local" and before:  # a link: the ledger record it pointed to
            before = names.get(("accounting", before)) or before
        cells = (f"{r.run_started:%Y-%m-%d %H:%M}", r.run_id, r.trigger, side, record,
                 r.field.removeprefix("crossledger_"),
                 before if before is not None else "(blank)", after if after is not None else "(blank)", r.rule)
        print("  ".join(_cell(c, w).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    from app.ops.undo import UndoError, apply_undo, plan_undo, workspace_of_run

    if len(args.run) > 2 or not args.run[-1].isascii() or not args.run[-1].isdigit():
        raise UndoError("Give the run's number, e.g. 'crossledger undo 12' ('crossledger status' lists them).")
    run_id = int(args.run[-1])
    if run_id >= 2**63:
        raise UndoError(f"There is no run {run_id}. 'crossledger status' lists the runs and their numbers.")
    wanted = args.workspace or (args.run[0] if len(args.run) == 2 else None)
    _, store = _open(args)
    name = workspace_of_run(store, run_id)
    if wanted and wanted != name:
        raise UndoError(f"Run {run_id} belongs to workspace '{name}', not '{wanted}'.")
    if args.dry_run:
        plan = plan_undo(store, _tokens(store, name), name, run_id)
        if args.json:
            print(json.dumps({"dry_run": True, **plan.to_json()}))
            return 0
        print(f"{plan.run_summary}")
        print(f"Undoing run {run_id} would do {len(plan.steps)} thing(s):" if plan.steps else
              f"Undoing run {run_id} would change nothing.")
        for step in plan.steps:
            print(f"  - {step.description}")
        if plan.refusals:
            print(f"And leave {len(plan.refusals)} thing(s) as they are:")
            for r in plan.refusals:
                print(f"  - {r.reason}")
        print("Nothing was changed (dry run). Run it again without --dry-run to undo.")
        return 0
    result = apply_undo(store, _tokens(store, name), name, run_id, progress=None if args.json else _print_progress)
    if args.json:
        print(json.dumps({"dry_run": False, "run_id": run_id, "workspace": name, **result.to_json()}))
    else:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        print(result.message)
        for line in result.errors:
            print(f"  - {line}")
    return 0 if result.status in ("ok", "partial") else 1


def cmd_service(args: argparse.Namespace) -> int:
    """The window's scheduler without the window: same jobs, same lease per workspace run."""
    import threading

    from app.ops.workspaces import list_workspaces
    from app.sched import jobs
    from app.sched.service import Scheduler

    home, store = _open(args)
    tokens = _tokens(store)
    stop = threading.Event()

    def said(kind: str, workspace: str, result: Any) -> None:
        status = getattr(result, "status", "done")
        counts = getattr(result, "counts", {}) or {}
        print(f"{_now()} {kind} sync of '{workspace}': {status}, {counts.get('writes', 0)} writes", flush=True)

    def failed(kind: str, workspace: str, exc: BaseException) -> None:
        print(f"{_now()} {kind} sync of '{workspace}' did not run: {getattr(exc, 'message', None) or exc}",
              flush=True)

    scheduler = Scheduler(store, jobs.Context(store, tokens, on_result=said, on_error=failed))
    scheduler.start()
    names = [w.name for w in list_workspaces(store)]
    print(f"Crossledger is running the scheduled syncs of {len(names)} workspace(s) from {home}. "
          "Ctrl+C (or SIGTERM) stops it after the run in progress.", flush=True)
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if args.run_now:
            for name in names:
                scheduler.run_now(name)
        while not stop.wait(60):
            scheduler.sync_jobs()  # settings changed from the window or 'workspace set' take effect
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        scheduler.shutdown(wait=True)
    print("Stopped.", flush=True)
    return 0


def _now() -> str:
    import datetime as dt

    return dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")


def cmd_conflicts(args: argparse.Namespace) -> int:
    from app.ops.conflicts import conflict_json, open_conflicts
    from app.ops.workspaces import get_workspace

    _, store = _open(args)
    ws = get_workspace(store, args.name)
    found = open_conflicts(store, ws.id)
    if args.json:
        print(json.dumps({"workspace": ws.name, "conflicts": [conflict_json(c) for c in found]}))
        return 0
    if not found:
        print(f"No open conflicts in '{ws.name}'.")
        return 0
    crm, acct = registry_label(ws.crm), registry_label(ws.accounting)
    print(f"{len(found)} open conflict(s) in '{ws.name}' (a field changed differently in {crm} and {acct}):")
    for c in found:
        print(f"  {c.record_name} ({c.crm_type} {c.crm_id}), {c.field_label.lower()}: "
              f"{crm} '{c.crm_value or ''}', {acct} '{c.acct_value or ''}'  since {c.created_at:%Y-%m-%d %H:%M}")
    print(f"Decide one with: crossledger resolve \"{ws.name}\" RECORD FIELD --keep crm|accounting|value=TEXT")
    return 0


def registry_label(provider: str) -> str:
    from app.connectors import registry

    return registry.info(provider).label


def cmd_resolve(args: argparse.Namespace) -> int:
    from app.ops.conflicts import resolve
    from app.ops.workspaces import get_workspace

    _, store = _open(args)
    ws = get_workspace(store, args.name)
    c = resolve(store, ws.id, args.record, args.field, args.keep)
    kept = {"crm": registry_label(ws.crm), "accounting": registry_label(ws.accounting),
            "ledger": registry_label(ws.accounting)}.get(args.keep, "your value")
    print(f"Decided: {c.record_name}'s {c.field_label.lower()} keeps {kept}'s. The next sync puts it on both "
          f"sides (crossledger sync \"{ws.name}\").")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from app.ops.undo import held_by_undo, release_undone
    from app.ops.workspaces import get_workspace

    _, store = _open(args)
    get_workspace(store, args.name)
    held = {(t, rid): name for t, rid, name in held_by_undo(store, args.name)}
    if not release_undone(store, args.name, args.record_type, args.record_id):
        listed = "; ".join(f"{t} {rid} ({name})" for (t, rid), name in held.items()) or "none"
        print(f"crossledger: no {args.record_type} {args.record_id} is held back by an undo in '{args.name}' "
              f"(held back: {listed}).", file=sys.stderr)
        return 2
    name = held.get((args.record_type, args.record_id)) or args.record_id
    print(f"Released {name}: the next sync of '{args.name}' makes it again.")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from app.ops.reconcile_month import check_month, out_problem, reconcile_workspace
    from app.ops.workspaces import UserError, get_workspace

    check_month(args.month)  # every mistake in the command is told before the keyring or a provider is asked
    if args.out and (problem := out_problem(args.out)):
        raise UserError(problem)
    _, store = _open(args)
    get_workspace(store, args.name)
    result = reconcile_workspace(store, _tokens(store, args.name), args.name, args.month, args.out,
                                 progress=None if args.json else _print_progress, trigger="cli")
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    counts = result.report.counts()
    print(f"Reconciliation of '{result.workspace}' for {result.month}: {len(result.report.discrepancies)} "
          "discrepancies.")
    if result.stale:
        print(f"  Note: one side could not be read just now ({result.stale}) This report uses what Crossledger "
              "read last time; run it again when the connection is back.")
    for kind, n in sorted(counts.items()):
        print(f"  {n:>4}  {kind.replace('_', ' ')}")
    for cur in sorted(set(result.report.crm_totals) | set(result.report.ledger_totals)):
        print(f"  {cur}: won {result.report.crm_totals.get(cur, 0):,.2f} in the CRM, invoiced "
              f"{result.report.ledger_totals.get(cur, 0):,.2f} in the ledger")
    if result.path:
        print(f"Workbook written to {result.path}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.ops.doctor import Check, run_checks
    from app.store.db import default_home, sqlite_url

    home = Path(args.home).expanduser() if args.home else default_home()
    url = args.db or sqlite_url(home)
    try:
        from app.ui.doctor_checks import tray_check

        tray = tray_check()
    except ImportError:
        tray = Check("System tray", False, "Qt could not be loaded, so the window and tray cannot open.",
                     "Reinstall Crossledger; on Linux also install libegl1 and libxkbcommon-x11-0.")
    checks = run_checks(home, url, tray)
    for c in checks:
        print(f"{'ok ' if c.ok else '!! '} {c.name}: {c.message}")
        if not c.ok and c.fix:
            print(f"     What to do: {c.fix}")
    bad = sum(not c.ok for c in checks)
    print(f"\n{'Everything looks fine.' if not bad else f'{bad} thing(s) need attention.'}")
    return 0 if not bad else 1


def _db_url(args: argparse.Namespace) -> str:
    from app.store.db import sqlite_url

    return args.db or sqlite_url(_home(args))


def cmd_backup(args: argparse.Namespace) -> int:
    from app.ops.storage import make_backup

    path = make_backup(_db_url(args), args.file)
    print(f"The database was copied to {path}. To go back to it: crossledger restore \"{path}\"")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from app.ops.storage import restore

    db_file, kept = restore(_db_url(args), args.file)
    print(f"Restored {args.file} into {db_file}."
          + (f" The database as it was is kept in {kept}." if kept else "")
          + " Sync each workspace to bring it up to date with both sides.")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    import threading

    from app.ops.migration import describe_result, migrate, saved_estimate
    from app.ops.workspaces import get_workspace

    _, store = _open(args)
    get_workspace(store, args.name)
    tokens = _tokens(store, args.name)
    if args.apply and not args.json and (est := saved_estimate(store, args.name)) is not None:
        print(f"Applying the saved plan takes {est.text} within the providers' limits. {est.note} "
              "Ctrl+C stops it safely; the same command continues where it stopped.".replace("  ", " "), flush=True)
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        result = migrate(store, tokens, args.name, apply=args.apply, exclude=args.exclude,
                         progress=None if args.json else _print_progress, cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
    if args.json:
        print(json.dumps(result.to_json(), default=str))
    else:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        print(describe_result(result))
    return 0 if result.status in ("planned", "applied", "nothing_to_do", "partial") else 1


def cmd_sandbox(args: argparse.Namespace) -> int:
    from app.connectors import registry
    from app.ops.workspaces import UserError
    from app.sandbox.registry import sandbox_class
    from app.sandbox.server import serve

    cls = sandbox_class(args.provider)
    state = args.state
    if state and (Path(state).is_dir() or not Path(state).expanduser().parent.is_dir()):
        raise UserError(f"The sandbox keeps its state in a file: give --state a file name in a folder that "
                        f"exists ({state} is {'a folder' if Path(state).is_dir() else 'not in one'}).")
    new = not state or not Path(state).exists()
    options = dict(getattr(cls, "served_defaults", {}))
    if args.search_lag is not None:
        if "search_lag" not in options:
            raise UserError("--search-lag is for the HubSpot sandbox only.")
        options["search_lag"] = max(0.0, args.search_lag)
    try:
        app = cls(state_file=state, **options)
    except (OSError, ValueError):
        raise UserError(f"{state} is not a sandbox state file Crossledger can read. Give a new file name, or the "
                        "file an earlier 'crossledger sandbox serve' kept.") from None
    seed = args.seed or ("demo" if new else None)
    if args.size is not None and seed != "large":
        raise UserError("--size is for --seed large: it says how many companies the large data set has.")
    if args.limits_scale != 1.0:
        app.scale_limits(args.limits_scale)
    if seed:
        from app.sandbox.demo_data import sized

        with sized("large" if seed == "large" else "demo", args.size):
            app.seed("empty" if seed == "empty" else "demo")
        app.persist()
    server = serve(app, port=args.port)
    print(f"{registry.info(args.provider).label} sandbox on {server.url} (state: {state or 'memory'}). "
          "Ctrl+C stops it.", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


def _gui(args: argparse.Namespace, home: Path, store: Any, tokens: Any = None) -> int:
    from app.ops.sandbox_signin import keyring_available
    from app.ui.app import run_gui

    if tokens is None and not keyring_available():
        from app.connectors.errors import KeyringUnavailable

        try:  # a machine with no keyring can still open the demo's sandbox-only workspaces
            tokens = _tokens(store)
        except KeyringUnavailable:  # real connections: the window explains the keyring itself
            tokens = None
    return run_gui(store=store, home=home, tokens=tokens)


def _tolerant_output() -> None:
    """Under LC_ALL=C or PYTHONIOENCODING=ascii a name with an accent prints as '?', never a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a closed or unusual stream: left as it is
                reconfigure(errors="replace")


def main(argv: list[str] | None = None) -> int:
    _tolerant_output()
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("crossledger: stopped. Run the same command again to carry on.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # the last word: one sentence, the details only with -v
        if args.verbose:
            logging.getLogger("crossledger").exception("unexpected failure")
        print(f"crossledger: {_one_line(_unexpected(exc, args.verbose))}", file=sys.stderr)
        return 1


def _unexpected(exc: Exception, verbose: bool) -> str:
    from sqlalchemy.exc import DatabaseError, OperationalError

    if isinstance(exc, OperationalError) and "locked" in str(exc):
        return "The database is busy (another Crossledger is writing to it). Try again in a moment."
    if isinstance(exc, DatabaseError):
        return ("The database could not be read or written; it may be damaged. Run 'crossledger doctor' to "
                "check it and see how to restore a backup.")
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"Crossledger could not use{where} ({_why(exc)}). Check the path and that you may write there."
    detail = "" if verbose else " Run it again with -v to see the details."
    return (f"Something unexpected went wrong ({type(exc).__name__}); nothing more was changed.{detail} "
            "Please report it if it happens again.")


def _dispatch(args: argparse.Namespace) -> int:
    from app.connectors.errors import ConnectorError
    from app.ops.undo import UndoError
    from app.ops.workspaces import UserError
    from app.sync.engine import Busy

    try:
        if args.self_test:
            from app.ops.selftest import run as self_test

            return self_test(Path(args.home).expanduser() if args.home else None)
        if args.command in (None, "gui"):
            home, store = _open(args)
            return _gui(args, home, store)
        return {"demo": cmd_demo, "workspace": cmd_workspace, "connect": cmd_connect, "sync": cmd_sync,
                "status": cmd_status, "sandbox": cmd_sandbox, "reconcile": cmd_reconcile,
                "doctor": cmd_doctor, "migrate": cmd_migrate, "history": cmd_history,
                "undo": cmd_undo, "release": cmd_release, "backup": cmd_backup, "restore": cmd_restore,
                "conflicts": cmd_conflicts, "resolve": cmd_resolve, "service": cmd_service}[args.command](args)
    except (UserError, Busy, UndoError) as exc:
        print(f"crossledger: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except ConnectorError as exc:
        print(f"crossledger: {_one_line(exc.message)}", file=sys.stderr)
        return 3
    finally:
        from app.ops import sandboxes

        sandboxes.stop_all()


if __name__ == "__main__":
    raise SystemExit(main())
