"""The commands that run something against the providers: demo, sync, status, migrate, reconcile, service."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from app.cli.common import count_words, counts_of, gui, open_home, print_progress, print_run_summary, token_store
from app.domain.text import plural


def cmd_demo(args: argparse.Namespace) -> int:
    from app.ops.demo import run_demo
    from app.ops.sandbox_signin import choose_tokens

    home, store = open_home(args)
    print(f"Setting up the demo in {home} …")
    choice = choose_tokens(sandbox_only=True)
    if choice.note:
        print(choice.note)
    result = run_demo(store, choice.tokens, home, crm=args.crm, accounting=args.accounting, progress=print_progress)
    print_run_summary(result.run, store)
    _print_invoices(store, result.workspace)
    print(f"\nThe demo workspace '{result.workspace}' is saved in {home}.")
    print(f"  crossledger --home {home} status        shows linked, held back and to review")
    print(f"  crossledger --home {home} sync demo     syncs again (nothing changed: 0 writes)")
    if not args.headless:
        return gui(args, home, store, tokens=choice.tokens)
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
        # "0.00 of 9.50 GBP paid": the amounts after the state, so "paid" is not read as a second state
        print(f"  {row['deal'][:38]:<38} invoice {row['number'] or '?':<10} {state:<16} "
              f"{row['amount_paid'] or 0:>10} of {row['total'] or 0:>10} {row['currency'] or ''} paid".rstrip())
    if summary["linked"] > 12:
        print(f"  … and {summary['linked'] - 12} more (crossledger status --json lists them all)")


def cmd_sync(args: argparse.Namespace) -> int:
    from app.ops.sync_run import run_sync
    from app.ops.workspaces import get_workspace

    _, store = open_home(args)
    get_workspace(store, args.name)  # an unknown workspace is explained before the keyring is needed
    result = run_sync(store, token_store(store, args.name), args.name, dry_run=args.dry_run, trigger="cli",
                      progress=None if args.json else print_progress, allow_mass_change=args.allow_mass_change)
    if args.json:
        print(json.dumps({**result.to_json(), "workspace_counts": counts_of(store, args.name).to_json()}))
    else:
        print_run_summary(result, store)
    return 0 if result.status in ("ok", "partial") else 1


def cmd_status(args: argparse.Namespace) -> int:
    from app.cli.held import add_ways_out, print_ways_out
    from app.ops.status import status_json

    _, store = open_home(args)
    data = add_ways_out(store, status_json(store))
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
        print(f"  {count_words(ws['counts'])}")
        if ws["quarantined"]:
            print(f"  Held back ({len(ws['quarantined'])}):")
            for q in ws["quarantined"]:
                print(f"    - {q['name']}: {' '.join(q['reasons'])}")
        if ws["ways_out"]:
            print_ways_out(ws["name"], ws["ways_out"])
        for r in ws["last_runs"][:3]:
            writes = plural(r["counts"].get("writes", 0), "write")
            print(f"  run {r['id']} {_local(r['started_at'])} {r['status']}: {writes}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    import threading

    from app.ops.migration import describe_result, migrate, saved_estimate
    from app.ops.workspaces import get_workspace

    _, store = open_home(args)
    get_workspace(store, args.name)
    tokens = token_store(store, args.name)
    if args.apply and not args.json and (est := saved_estimate(store, args.name)) is not None:
        print(f"Applying the saved plan takes {est.text} within the providers' limits. {est.note} "
              "Ctrl+C stops it safely; the same command continues where it stopped.".replace("  ", " "), flush=True)
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        result = migrate(store, tokens, args.name, apply=args.apply, exclude=args.exclude,
                         progress=None if args.json else print_progress, cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
    if args.json:
        print(json.dumps(result.to_json(), default=str))
    else:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        print(describe_result(result))
    return 0 if result.status in ("planned", "applied", "nothing_to_do", "partial") else 1


def cmd_reconcile(args: argparse.Namespace) -> int:
    import datetime as dt

    from app.ops.reconcile_month import check_month, last_month, out_problem, reconcile_workspace
    from app.ops.workspaces import UserError, get_workspace

    args.month = args.month or last_month(dt.datetime.now().astimezone().date())  # the computer's own date
    check_month(args.month)  # every mistake in the command is told before the keyring or a provider is asked
    if args.out and (problem := out_problem(args.out)):
        raise UserError(problem)
    _, store = open_home(args)
    get_workspace(store, args.name)
    result = reconcile_workspace(store, token_store(store, args.name), args.name, args.month, args.out,
                                 progress=None if args.json else print_progress, trigger="cli")
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    counts = result.report.counts()
    print(f"Reconciliation of '{result.workspace}' for {result.month}: "
          f"{plural(len(result.report.discrepancies), 'discrepancy', 'discrepancies')}.")
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


def cmd_service(args: argparse.Namespace) -> int:
    """The window's scheduler without the window: same jobs, same lease per workspace run."""
    import threading

    from app.ops.workspaces import list_workspaces
    from app.sched import jobs
    from app.sched.service import Scheduler

    home, store = open_home(args)
    tokens = token_store(store)
    stop = threading.Event()

    def said(kind: str, workspace: str, result: Any) -> None:
        status = getattr(result, "status", "done")
        counts = getattr(result, "counts", {}) or {}
        writes = plural(counts.get("writes", 0), "write")
        print(f"{_now()} {kind} sync of '{workspace}': {status}, {writes}", flush=True)

    def failed(kind: str, workspace: str, exc: BaseException) -> None:
        print(f"{_now()} {kind} sync of '{workspace}' did not run: {getattr(exc, 'message', None) or exc}",
              flush=True)

    scheduler = Scheduler(store, jobs.Context(store, tokens, on_result=said, on_error=failed))
    scheduler.start()
    names = [w.name for w in list_workspaces(store)]
    print(f"Crossledger is running the scheduled syncs of {plural(len(names), 'workspace')} from {home}. "
          "Ctrl+C (or SIGTERM) stops it after the run in progress.", flush=True)
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if args.run_now:
            for name in names:
                scheduler.run_now(name)
        # Waited out a second at a time: Linux may hand SIGTERM to any thread, and the main thread, asleep in a
        # long wait, then runs the handler only when that wait ends (it took a minute to stop).
        waited = 0
        while not stop.wait(1):
            waited += 1
            if waited % 60 == 0:
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


def _local(stamp: str) -> str:
    """A run's UTC start ('2026-12-07T22:46:22.720213Z', as status --json gives it) in the computer's own
    time, to the minute, as the service's lines are written."""
    import datetime as dt

    from app.domain.clock import local

    try:
        return f"{local(dt.datetime.fromisoformat(stamp.removesuffix('Z'))):%Y-%m-%d %H:%M}"
    except ValueError:
        return stamp
