"""`crossledger workspace …`: workspaces and their settings (`crossledger connect` is in app.cli.connect)."""

from __future__ import annotations

import argparse
import json
import sys
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

    if (args.report_folder is None and args.direction is None and not args.rule and args.cadence is None
            and args.plan is None):
        print("Nothing to change. Say what to set, e.g. --report-folder ~/Reports/Acme, --direction "
              "crm-to-accounting, --rule city=ask, --cadence realtime=5m or --plan growth.", file=sys.stderr)
        return 2
    if args.plan is not None:
        from app.ops.budget import check_plan

        check_plan(store, args.name, args.plan)  # with the others, before anything is saved
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
    if args.plan is not None:
        from app.connectors.pipedrive_tokens import seats_label
        from app.ops.budget import pipedrive_plan, set_pipedrive_plan

        set_pipedrive_plan(store, args.name, args.plan)
        plan, seats, cap = pipedrive_plan(store, args.name) or (None, 1, 0)
        shown["pipedrive"] = {"plan": plan, "seats": seats, "daily_tokens": cap}
        if not args.json:
            print(f"Pipedrive plan for '{args.name}': {str(plan).capitalize()}. With {seats_label(seats)} that is "
                  f"{cap:,} API tokens a day; scheduled syncs leave a fifth of them for your own work.")
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
