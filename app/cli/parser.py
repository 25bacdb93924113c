"""The whole command line in one place: every command, its arguments and how a wrong one is told."""

from __future__ import annotations

import argparse
import math
import re
from typing import NoReturn

from app import __version__
from app.cli.common import one_line


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are told on one line, with where to read how (not a page of usage)."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument (command|action): invalid choice:", "there is no such command:", message)
        message = re.sub(r"^argument ([^:]+): ", r"\1: ", message)
        self.exit(2, f"{self.prog}: {one_line(message)}. See '{self.prog} --help'.\n")


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


CONNECT_WAYS = """\
ways to connect:
  sign in with this copy's app (when its distribution profile has one for the provider; the browser opens):
    crossledger connect quickbooks --workspace Acme
  sign in with your own app (packaging/README.md says how to register one):
    crossledger connect quickbooks --workspace Acme --client-id ID --client-secret SECRET
  an access token for one business, HubSpot or Pipedrive (never typed on the command line):
    crossledger connect hubspot --workspace Acme --access-token-stdin < token.txt
    CROSSLEDGER_ACCESS_TOKEN=... crossledger connect pipedrive --workspace Acme
  HubSpot: a private app's access token, from Settings › Integrations › Private apps.
  Pipedrive: your personal API token, from Settings › Personal preferences › API.
  A token the provider refuses is not saved (exit code 2).
"""


def build_parser() -> argparse.ArgumentParser:
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
    wset.add_argument("--plan", metavar="lite|growth|premium|ultimate",
                      help="Pipedrive: the company's plan, which sets its daily API token budget with its seats")
    wset.add_argument("--json", action="store_true", help="print the settings afterwards as JSON")
    wshow = wsub.add_parser("show", help="a workspace's settings")
    wshow.add_argument("name")
    wshow.add_argument("--json", action="store_true")

    c = sub.add_parser("connect", help="connect a provider account to a workspace (sign in, or an access token)",
                       description="Connect a workspace's CRM or accounting system. Sign-ins and tokens go to the "
                                   "system keyring only.",
                       epilog=CONNECT_WAYS, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("provider", type=_provider())
    c.add_argument("--workspace", required=True)
    c.add_argument("--base-url", help="API root (a sandbox URL, or the provider's own by default)")
    c.add_argument("--auth-url", help="root of the OAuth endpoints, if not the base URL")
    c.add_argument("--client-id", help="your own app's client ID (instead of this copy's app)")
    c.add_argument("--client-secret", help="your own app's client secret, where the provider requires one")
    c.add_argument("--access-token-stdin", action="store_true",
                   help="HubSpot and Pipedrive: read an access token from standard input instead of signing in "
                        "(or set CROSSLEDGER_ACCESS_TOKEN); it is checked by one read before it is saved")
    c.add_argument("--timeout", type=_seconds, default=300, help="seconds to wait for the sign-in (default 300)")
    c.add_argument("--plan", metavar="lite|growth|premium|ultimate",
                   help="Pipedrive: the company's plan, which sets its daily API token budget with its seats "
                        "(Lite is assumed until it is given)")

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
    rc.add_argument("--month", help="YYYY-MM (default: last month, as the monthly report covers)")
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

    hd = sub.add_parser("held", help="list the records held back, and the one-click way out of each that has one")
    hd.add_argument("name")
    hd.add_argument("--json", action="store_true")

    ra = sub.add_parser("reactivate", help="make a ledger customer active again, so the invoices waiting on it "
                                           "are made by the next sync")
    ra.add_argument("name")
    ra.add_argument("customer", help="the ledger customer's id or name, or the CRM record's (see 'held')")
    ra.add_argument("--json", action="store_true")

    for command, words in (("relink", "link a CRM record to the ledger customer its own was merged into"),
                           ("unlink", "forget the link of a CRM record whose ledger customer was deleted: the next "
                                      "sync creates (or matches) it again")):
        way = sub.add_parser(command, help=words)
        way.add_argument("name")
        way.add_argument("record", help="the CRM record's id or name (see 'held')")
        if command == "relink":
            way.add_argument("--to", metavar="CUSTOMER", help="the surviving customer's id or name (checked: the "
                                                              "one the ledger merged it into)")
        way.add_argument("--json", action="store_true")

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
