"""Crash suite: a sync of 1,000 customers and ~300 won deals, as a subprocess against HubSpot and
QuickBooks sandboxes in other processes, killed with SIGKILL at random points, then rerun.

    python -m bench.crash [--kills 100] [--per-cycle 5] [--seed large|demo]

Each cycle starts from fresh sandboxes and an empty workspace, kills ``per-cycle`` syncs at random
moments, then lets one finish. Afterwards the ledger must hold exactly what a sync with no kills
produces: no customer or invoice twice, none missing, every link pointing at records on both sides.
Prints one line per cycle and a summary; exit status 1 if any cycle broke an invariant.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cli(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "app", "--home", str(home), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"crossledger {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


_ONE_PROCESS = """
import json, sys
from app.cli import main
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    if code != 0:
        sys.exit(code)
"""


def run_in_one_process(home: Path, commands: list[list[str]], timeout: float = 240) -> None:
    """Several crossledger commands in one process (the setup is not what is killed; each process start
    costs a second or two of imports)."""
    argvs = [["--home", str(home), *args] for args in commands]
    proc = subprocess.run([sys.executable, "-c", _ONE_PROCESS, json.dumps(argvs)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"crossledger setup exited {proc.returncode}: {proc.stderr[-2000:]}")


class Sandbox:
    def __init__(self, provider: str, state: Path, seed: str) -> None:
        self.provider, self.state = provider, state
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "sandbox", "serve", provider, "--port", "0",
                                      "--state", str(state), "--seed", seed], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        self.url = line.split(" on ", 1)[1].split(" ", 1)[0]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.proc.stdout.close()


@dataclass
class Snapshot:
    customers: Counter = field(default_factory=Counter)  # active DisplayName -> count
    invoices: Counter = field(default_factory=Counter)  # (customer name, total) -> count
    links: int = 0
    dangling: list[str] = field(default_factory=list)

    def problems(self, clean: Snapshot | None) -> list[str]:
        out = [f"customer '{n}' exists {k} times" for n, k in self.customers.items() if k > 1]
        out += [f"invoice {key} exists {k} times" for key, k in self.invoices.items() if k > 1]
        out += self.dangling
        if clean is not None:
            out += [f"customer '{n}' is missing" for n in clean.customers if n not in self.customers]
            out += [f"invoice {key} is missing" for key in clean.invoices if key not in self.invoices]
            if self.links != clean.links:
                out.append(f"{self.links} links instead of {clean.links}")
        return out


def snapshot(home: Path, qbo_state: Path, hubspot_state: Path) -> Snapshot:
    from app.store.db import Store, sqlite_url
    from app.store.models import Link

    qbo = json.loads(qbo_state.read_text())
    [company] = [c for c in qbo["companies"].values() if c["entities"].get("Customer")] or [{}]
    ents = company.get("entities", {})
    names = {c["Id"]: c["DisplayName"] for c in ents.get("Customer", {}).values()}
    active = {i for i, c in ents.get("Customer", {}).items() if c.get("Active", True)}
    snap = Snapshot(customers=Counter(names[i] for i in active))
    for inv in ents.get("Invoice", {}).values():
        snap.invoices[(names.get(inv["CustomerRef"]["value"], "?"), str(inv.get("TotalAmt")),
                       inv.get("PrivateNote") or inv.get("DocNumber"))] += 1
    hub = json.loads(hubspot_state.read_text())
    crm_ids = {str(i) for kind in ("companies", "contacts") for i in (hub.get("objects", {}).get(kind) or {})}
    store = Store(sqlite_url(home), migrate=False)
    with store.session() as s:
        links = list(s.query(Link).filter_by(object_type="customer"))
    store.dispose()
    snap.links = len(links)
    for lk in links:
        if lk.acct_id not in names:
            snap.dangling.append(f"link {lk.crm_type} {lk.crm_id} points at ledger customer {lk.acct_id}, "
                                 "which does not exist")
        if crm_ids and lk.crm_id not in crm_ids:
            snap.dangling.append(f"link to CRM record {lk.crm_id}, which does not exist")
    return snap


def _runs(home: Path) -> int:
    """How many syncs have started in this data folder (each writes its run row as it begins)."""
    db = home / "crossledger.db"
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM run").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def cycle(work: Path, seed: str, kills: int, rng: random.Random, pristine: dict[str, Path]) -> tuple[Snapshot, float]:
    """One fresh workspace: ``kills`` syncs killed at random moments, then one left to finish."""
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    states = {p: work / f"{p}.json" for p in ("hubspot", "quickbooks")}
    for p, path in states.items():
        if p in pristine:
            shutil.copyfile(pristine[p], path)
        else:
            path.unlink(missing_ok=True)
    boxes = {p: Sandbox(p, path, seed) for p, path in states.items()}
    for p, path in states.items():
        if p not in pristine:  # keep the freshly seeded state for the next cycles (seeding 1,000 takes time)
            time.sleep(0.2)
            pristine[p] = work / f"{p}.pristine.json"
            shutil.copyfile(path, pristine[p])
    try:
        run_in_one_process(home, [["workspace", "add", "acme", "--crm", "hubspot", "--accounting", "quickbooks"],
                      *(["connect", p, "--workspace", "acme", "--base-url", box.url] for p, box in boxes.items())])
        for _ in range(kills):
            before = _runs(home)
            run = subprocess.Popen([sys.executable, "-m", "app", "--home", str(home), "sync", "acme", "--json"],
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # a random moment of the sync's own work: counted from its run's start, not from the process's
            # (its imports take a second on an idle machine and many on a loaded one, and are no kill point)
            deadline = time.monotonic() + 120
            while _runs(home) == before and run.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 3.0))
            run.send_signal(signal.SIGKILL)
            run.wait()
        start = time.monotonic()
        final = _cli(home, "sync", "acme", "--json")
        took = time.monotonic() - start
        result = json.loads(final.stdout)
        if result["status"] not in ("ok", "partial"):
            raise RuntimeError(f"the rerun did not finish: {result}")
    finally:
        for box in boxes.values():
            box.stop()
    return snapshot(home, states["quickbooks"], states["hubspot"]), took


def run(kills: int, per_cycle: int, seed: str, *, out=print, rng_seed: int = 20261127) -> list[str]:
    rng = random.Random(rng_seed)
    work = Path(tempfile.mkdtemp(prefix="crossledger-crash-"))
    pristine: dict[str, Path] = {}
    try:
        clean, took = cycle(work, seed, 0, rng, pristine)
        out(f"clean run: {sum(clean.customers.values())} customers, {sum(clean.invoices.values())} invoices, "
            f"{clean.links} links ({took:.1f} s)")
        failures: list[str] = []
        done = 0
        n = 0
        while done < kills:
            k = min(per_cycle, kills - done)
            n += 1
            snap, took = cycle(work, seed, k, rng, pristine)
            problems = snap.problems(clean)
            done += k
            out(f"cycle {n}: {k} kills, rerun {took:.1f} s: {'ok' if not problems else '; '.join(problems[:5])}")
            failures += problems
        verdict = "no duplicate, nothing lost" if not failures else f"{len(failures)} problems"
        out(f"{done} kills in {n} cycle{'s' if n != 1 else ''}: {verdict}")
        return failures
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--per-cycle", type=int, default=5)
    parser.add_argument("--seed", choices=("large", "demo"), default="large")
    args = parser.parse_args()
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        from tests.conftest import _start_keyring

        _start_keyring()  # tokens live only in a keyring: a private gnome-keyring for the run
    import keyring
    from keyring.backends import SecretService

    keyring.set_keyring(SecretService.Keyring())
    return 1 if run(args.kills, args.per_cycle, args.seed) else 0


if __name__ == "__main__":
    sys.exit(main())
