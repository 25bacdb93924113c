"""What the runs changed, record by record: history, undo, release, and the conflicts a person decides."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.cli.common import open_home, print_progress, registry_label, token_store
from app.domain.clock import local
from app.domain.text import plural


def cmd_history(args: argparse.Namespace) -> int:
    from app.ops.history import field_changes, record_names
    from app.ops.workspaces import get_workspace

    _, store = open_home(args)
    ws = get_workspace(store, args.name)
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
    from app.ops.history_export import DEAL_FIELD, field_label, rule_label, trigger_label

    names = record_names(store, args.name)
    crm, ledger = registry_label(ws.crm), registry_label(ws.accounting)
    widths = (16, 4, 12, 6, 24, 18, 22, 22, 0)  # the last column, why, is never cut
    head = ("When", "Run", "By", "Side", "Record", "Field", "Before", "After", "Why")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    for r in rows:
        side = {"accounting": "ledger", "crm": "CRM", "local": "link"}.get(r.side, r.side)
        deal = (r.side == "crm" and r.field.startswith(DEAL_FIELD)) or r.field == "linked_invoice"
        record = names.get(("deal" if deal else r.side, r.record_id)) or r.record_id
        before, after = r.before, r.after
        if r.side == "local" and before:  # a link: the ledger record it pointed to
            before = names.get(("accounting", before)) or before
        cells = (f"{local(r.run_started):%Y-%m-%d %H:%M}", r.run_id, trigger_label(r.trigger), side, record,
                 field_label(r.field),
                 before if before is not None else "(blank)", after if after is not None else "(blank)",
                 rule_label(r.rule, crm, ledger))
        print("  ".join(_cell(c, w).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return 0


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    return text if not width or len(text) <= width else text[: width - 1] + "…"


def cmd_undo(args: argparse.Namespace) -> int:
    from app.ops.undo import UndoError, apply_undo, plan_undo, workspace_of_run

    if len(args.run) > 2 or not args.run[-1].isascii() or not args.run[-1].isdigit():
        raise UndoError("Give the run's number, e.g. 'crossledger undo 12' ('crossledger status' lists them).")
    run_id = int(args.run[-1])
    if run_id >= 2**63:
        raise UndoError(f"There is no run {run_id}. 'crossledger status' lists the runs and their numbers.")
    wanted = args.workspace or (args.run[0] if len(args.run) == 2 else None)
    _, store = open_home(args)
    name = workspace_of_run(store, run_id)
    if wanted and wanted != name:
        raise UndoError(f"Run {run_id} belongs to workspace '{name}', not '{wanted}'.")
    if args.dry_run:
        plan = plan_undo(store, token_store(store, name), name, run_id)
        if args.json:
            print(json.dumps({"dry_run": True, **plan.to_json()}))
            return 0
        print(f"{plan.run_summary}")
        print(f"Undoing run {run_id} would do {plural(len(plan.steps), 'thing')}:" if plan.steps else
              f"Undoing run {run_id} would change nothing.")
        for step in plan.steps:
            print(f"  - {step.description}")
        if plan.refusals:
            print(f"And leave {plural(len(plan.refusals), 'thing')} as they are:")
            for r in plan.refusals:
                print(f"  - {r.reason}")
        print("Nothing was changed (dry run). Run it again without --dry-run to undo.")
        return 0
    result = apply_undo(store, token_store(store, name), name, run_id, progress=None if args.json else print_progress)
    if args.json:
        print(json.dumps({"dry_run": False, "run_id": run_id, "workspace": name, **result.to_json()}))
    else:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        print(result.message)
        for line in result.errors:
            print(f"  - {line}")
    return 0 if result.status in ("ok", "partial") else 1


def cmd_release(args: argparse.Namespace) -> int:
    from app.ops.undo import held_by_undo, release_undone
    from app.ops.workspaces import get_workspace

    _, store = open_home(args)
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


def cmd_conflicts(args: argparse.Namespace) -> int:
    from app.ops.conflicts import conflict_json, open_conflicts
    from app.ops.workspaces import get_workspace

    _, store = open_home(args)
    ws = get_workspace(store, args.name)
    found = open_conflicts(store, ws.id)
    if args.json:
        print(json.dumps({"workspace": ws.name, "conflicts": [conflict_json(c) for c in found]}))
        return 0
    if not found:
        print(f"No open conflicts in '{ws.name}'.")
        return 0
    crm, acct = registry_label(ws.crm), registry_label(ws.accounting)
    print(f"{plural(len(found), 'open conflict')} in '{ws.name}' (a field changed differently in {crm} and {acct}):")
    for c in found:
        if c.is_flag:  # something that happened on one side: what it was, no two values
            print(f"  {c.record_name} ({c.crm_type} {c.crm_id}), to look at: {c.acct_value or ''}  "
                  f"since {c.created_at:%Y-%m-%d %H:%M}")
            continue
        print(f"  {c.record_name} ({c.crm_type} {c.crm_id}), {c.field_label.lower()}: "
              f"{crm} '{c.crm_value or ''}', {acct} '{c.acct_value or ''}'  since {c.created_at:%Y-%m-%d %H:%M}")
    print(f"Decide one with: crossledger resolve \"{ws.name}\" RECORD FIELD --keep crm|accounting|value=TEXT")
    if any(c.is_flag for c in found):
        print(f"Mark one to look at as seen with: crossledger resolve \"{ws.name}\" RECORD FIELD --keep crm "
              "(FIELD as 'conflicts --json' gives it)")
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    from app.ops.conflicts import resolve
    from app.ops.workspaces import get_workspace

    _, store = open_home(args)
    ws = get_workspace(store, args.name)
    c = resolve(store, ws.id, args.record, args.field, args.keep)
    kept = {"crm": registry_label(ws.crm), "accounting": registry_label(ws.accounting),
            "ledger": registry_label(ws.accounting)}.get(args.keep, "your value")
    print(f"Decided: {c.record_name}'s {c.field_label.lower()} keeps {kept}'s. The next sync puts it on both "
          f"sides (crossledger sync \"{ws.name}\").")
    return 0
