"""Held records and their one-click ways out: ``held``, ``reactivate``, ``relink``, ``unlink``.

An invoice waits when its ledger customer was archived, merged or deleted; these commands list what waits and
take the way out the Held back tab offers, with the same effect (app/ops/ways_out.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.cli.common import open_home, token_store
from app.domain.text import plural

EXIT = {"ok": 0, "refused": 2, "provider": 3}  # as the other commands: 2 a refusal of ours, 3 the provider's


def command_for(workspace: str, way: Any) -> str:
    """The command that takes ``way`` (a ``WayOut``)."""
    if way.kind == "reactivate":
        return f'crossledger reactivate "{workspace}" {way.target_id}'
    if way.kind == "link_to_survivor":
        return f'crossledger relink "{workspace}" {way.crm_id} --to {way.target_id}'
    return f'crossledger unlink "{workspace}" {way.crm_id}'


def way_out_json(workspace: str, way: Any) -> dict[str, Any]:
    return {**way.to_json(), "command": command_for(workspace, way)}


def add_ways_out(store: Any, data: dict[str, Any]) -> dict[str, Any]:
    """``status --json``: each workspace's open ways out under "ways_out"."""
    from app.ops.ways_out import ways_out
    from app.ops.workspaces import get_workspace

    for ws in data["workspaces"]:
        ws["ways_out"] = [way_out_json(ws["name"], w) for w in ways_out(store, get_workspace(store, ws["name"]).id)]
    return data


def print_ways_out(workspace: str, ways: list[dict[str, Any]], indent: str = "  ") -> None:
    print(f"{indent}Waiting on you ({len(ways)}):")
    for w in ways:
        print(f"{indent}  - {w['reason']}")
        print(f"{indent}    {w['label']}: {w['command']}")


def cmd_held(args: argparse.Namespace) -> int:
    from app.ops.status import quarantined_records
    from app.ops.ways_out import ways_out
    from app.ops.workspaces import get_workspace

    _, store = open_home(args)
    ws = get_workspace(store, args.name)
    held = quarantined_records(store, ws.id)
    ways = [way_out_json(ws.name, w) for w in ways_out(store, ws.id)]
    if args.json:
        print(json.dumps({"workspace": ws.name, "held": [
            {"record_type": q.record_type, "record_id": q.record_id, "name": q.name, "reasons": q.reasons,
             "since": q.since.isoformat() + "Z", "undone": q.undone} for q in held], "ways_out": ways}))
        return 0
    if not held:
        print(f"Nothing is held back in '{ws.name}'.")
        return 0
    print(f"{plural(len(held), 'record')} held back in '{ws.name}':")
    for q in held:
        print(f"  {q.name or q.record_id} ({q.record_type} {q.record_id}): {' '.join(q.reasons)}")
    if ways:
        print_ways_out(ws.name, ways, indent="")
    return 0


def _take(args: argparse.Namespace, kinds: tuple[str, ...], record: str, to: str | None = None) -> int:
    from app.ops.ways_out import find, take, ways_out
    from app.ops.workspaces import UserError, get_workspace

    _, store = open_home(args)
    ws = get_workspace(store, args.name)
    way = find(ways_out(store, ws.id), kinds, record)
    if to is not None and to.strip().casefold() not in {(way.target_id or "").casefold(), way.target_name.casefold()}:
        raise UserError(f"The way out for '{way.crm_name or record}' is: {way.label} (customer {way.target_id}). "
                        "--to must name that customer, the one the ledger merged it into.")
    taken = take(store, token_store(store, ws.name), ws.name, way.key)
    if args.json:
        print(json.dumps({"workspace": ws.name, **taken.to_json()}))
    elif taken.ok:
        print(taken.message)
    else:
        print(f"crossledger: {taken.message}", file=sys.stderr)
    return EXIT[taken.status]


def cmd_reactivate(args: argparse.Namespace) -> int:
    return _take(args, ("reactivate",), args.customer)


def cmd_relink(args: argparse.Namespace) -> int:
    return _take(args, ("link_to_survivor",), args.record, args.to)


def cmd_unlink(args: argparse.Namespace) -> int:
    return _take(args, ("unlink",), args.record)
