"""A simulated year of a small business, with the app's scheduler keeping its CRM and ledger in step.

    python -m bench.year --pair CRM-LEDGER [--pair ...] --days N --seed S [--events supported|all]
    python -m bench.year --pair all --days 365            # the benchmark: every pair, a year

Prints the figures per pair (days, events, invariant checks, violations and the first of them) and
merges them into bench/results.json under "year" (one entry per pair, length and events switch).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.connectors import registry
from bench.year.sim import run

RESULTS = Path(__file__).resolve().parent.parent / "results.json"


def pairs(names: list[str]) -> list[tuple[str, str]]:
    if names == ["all"]:
        return [(c, a) for c in registry.available("crm") for a in registry.available("accounting")]
    out = []
    for name in names:
        crm, _, ledger = name.partition("-")
        if crm not in registry.CRM_PROVIDERS or ledger not in registry.ACCOUNTING_PROVIDERS:
            raise SystemExit(f"'{name}' is not a pair: write CRM-LEDGER, e.g. hubspot-quickbooks, or 'all'.")
        out.append((crm, ledger))
    return out


def record(entries: list[dict[str, Any]], command: str) -> None:
    """Merge ``entries`` into results.json, under a lock: several pairs may run in processes side by side."""
    with _locked(RESULTS.with_name(RESULTS.name + ".lock")):
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        section = data.get("year") or {}
        runs = section.get("runs") or {}
        for e in entries:
            key = f"{e['pair']} {e['days']}d {e['events_switch']}"
            runs[key + (" signin-faults" if e["signin_faults_per_day"] else "")] = {**e, "command": command}
        # the totals: the events the app handles, faults on API calls only (the other runs show what is to do)
        plain = [r for r in runs.values() if r["events_switch"] == "supported" and not r["signin_faults_per_day"]]
        totals = {k: sum(r[k] for r in plain) for k in FIGURES}
        by_length: dict[str, dict[str, int]] = {}  # "365d all": the year benchmark's totals over its pairs
        for r in runs.values():
            if r["signin_faults_per_day"]:
                continue
            name = f"{r['days']}d {r['events_switch']}"
            group = by_length.setdefault(name, {"pairs": 0, **dict.fromkeys(FIGURES, 0)})
            group["pairs"] += 1
            for k in FIGURES:
                group[k] += r[k]
        data["year"] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
                        "totals_supported_events": totals, "totals_by_length": dict(sorted(by_length.items())),
                        "runs": dict(sorted(runs.items()))}
        RESULTS.write_text(json.dumps(data, indent=2) + "\n")


FIGURES = ("days", "events", "invariant_checks", "violations")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: one run at a time
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.year", description=__doc__.split("\n")[0])
    parser.add_argument("--pair", action="append", required=True, help="CRM-LEDGER, or 'all' for the 12 pairs")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", choices=("supported", "all"), default="supported")
    parser.add_argument("--faults", type=float, default=3.0, help="faults a day on the syncs' API calls (default 3)")
    parser.add_argument("--signin-faults", type=float, default=0.0,
                        help="faults a day on the syncs' sign-in renewals (default 0; see bench/README.md)")
    parser.add_argument("--cadence", type=int, default=360, help="minutes between quick syncs (default 360)")
    parser.add_argument("--no-record", action="store_true", help="print only; leave bench/results.json alone")
    args = parser.parse_args(argv)
    entries = []
    for crm, ledger in pairs(args.pair):
        figures = run(crm, ledger, args.days, args.seed, args.events, args.faults, args.cadence,
                      args.signin_faults)
        entries.append(figures)
        print(f"{figures['pair']}: {figures['days']} days, {figures['events']} events, {figures['faults_fired']} "
              f"faults, {figures['invariant_checks']} invariant checks, {figures['violations']} violations "
              f"({figures['cpu_seconds']} s CPU)", flush=True)
        for line in figures["first_violations"][:10]:
            print("   ", line)
        if not args.no_record:  # after each pair: a long run that is stopped keeps what it measured
            record([figures], "python -m bench.year " + " ".join(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
