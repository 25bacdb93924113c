"""What every command shares: the data folder and store, sign-ins, one-line messages, progress and a run's summary."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from app.domain.text import plural


def home_folder(args: argparse.Namespace) -> Path:
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
        raise UserError(f"Crossledger cannot keep its data in {home} ({why(exc)}). {give} you can write "
                        "to.") from None
    os.environ["CROSSLEDGER_HOME"] = str(home)
    return home


def open_home(args: argparse.Namespace):
    from app.ops.storage import open_store

    home = home_folder(args)
    opened = open_store(home, args.db)
    for warning in opened.warnings:
        print(f"crossledger: {one_line(warning)}", file=sys.stderr)
    return home, opened.store


def why(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def one_line(text: str) -> str:
    """A message on exactly one line: control characters from the input are shown, not obeyed."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in " ".join(text.splitlines()))


def keyring_tokens(store: Any = None, *names: str):
    """The OS keyring; or, with none running, memory for workspaces that only use embedded sandboxes."""
    from app.ops.sandbox_signin import choose_tokens

    choice = choose_tokens(store, list(names) if names else None)
    if choice.note:
        print(choice.note, file=sys.stderr)
    return choice.tokens


def token_store(store: Any = None, *names: str):
    """The sign-ins the commands use: ``app.cli._tokens``, looked up at each call so that a test or a
    probe may replace it there."""
    import app.cli

    return app.cli._tokens(store, *names)


def print_progress(stage: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r{stage}… {done}/{total}   ", end="", file=sys.stderr, flush=True)


def counts_of(store: Any, workspace: str) -> Any:
    from app.ops.status import workspace_counts
    from app.ops.workspaces import get_workspace

    return workspace_counts(store, get_workspace(store, workspace).id)


def print_run_summary(run: Any, store: Any) -> None:
    """What the run did, then where the workspace stands: held back and to review are the window's
    numbers (app.ops.status.workspace_counts; docs/glossary.md), not this run's own tallies."""
    c = run.counts
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"Sync of '{run.workspace}' {'(dry run) ' if run.dry_run else ''}finished: {run.status}.")
    print(f"  read {plural(c.get('read', 0), 'record')}; created {plural(c.get('created', 0), 'customer')}, "
          f"linked {c.get('linked', 0)} to existing ones, updated {c.get('updated', 0)}")
    print(f"  {plural(c.get('writes', 0), 'change')} written")
    print(f"  {count_words(counts_of(store, run.workspace).to_json())}")
    if c.get("invoices_created") or c.get("deals_updated") or c.get("deals_held") or c.get("invoices_matched"):
        matched = c.get("invoices_matched", 0)
        print(f"  {plural(c.get('invoices_created', 0), 'invoice')} created for won deals"
              + (f" ({matched} more already had one in the ledger and "
                 f"{'was' if matched == 1 else 'were'} linked to it)" if matched else "") + ", "
              f"{plural(c.get('deals_held', 0), 'won deal')} held back, "
              f"{plural(c.get('deals_updated', 0), 'deal')} given their invoice's payment status")
    from app.ops.status import after_invoice_words

    if after := after_invoice_words(c):
        print(f"  {after}")
    for err in run.errors[:10]:
        print(f"  ! {err}")
    if run.status == "held":
        print(f"  To see what would change: crossledger sync \"{run.workspace}\" --dry-run")
        print(f"  To let it through:        crossledger sync \"{run.workspace}\" --allow-mass-change")


def count_words(counts: dict[str, int]) -> str:
    """'16 held back, 3 to review (1 with conflicting changes, 2 possible matches)', from the
    ``counts`` of ``status --json`` (``WorkspaceCounts.to_json``)."""
    conflicts, matches = counts["conflicts"], counts["possible_matches"]
    why = [f"{conflicts} with conflicting changes"] if conflicts else []
    if matches:
        why.append(f"{matches} possible {'match' if matches == 1 else 'matches'}")
    return f"{counts['held_back']} held back, {counts['to_review']} to review" + (f" ({', '.join(why)})" if why else "")


def registry_label(provider: str) -> str:
    from app.connectors import registry

    return registry.info(provider).label


def db_url(args: argparse.Namespace) -> str:
    from app.store.db import sqlite_url

    return args.db or sqlite_url(home_folder(args))


def run_window(args: argparse.Namespace, home: Path, store: Any, tokens: Any = None) -> int:
    from app.ops.sandbox_signin import keyring_available
    from app.ui.app import run_gui

    if tokens is None and not keyring_available():
        from app.connectors.errors import KeyringUnavailable

        try:  # a machine with no keyring can still open the demo's sandbox-only workspaces
            tokens = token_store(store)
        except KeyringUnavailable:  # real connections: the window explains the keyring itself
            tokens = None
    return run_gui(store=store, home=home, tokens=tokens)


def gui(args: argparse.Namespace, home: Path, store: Any, tokens: Any = None) -> int:
    """Open the window: ``app.cli._gui``, looked up at each call so that a probe may replace it there."""
    import app.cli

    return app.cli._gui(args, home, store, tokens=tokens)
