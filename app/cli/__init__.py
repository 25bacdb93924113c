"""The `crossledger` command. Its sub-commands and their --json shapes are promises to scripts.

The parser is built in ``app.cli.parser``; each group of commands has a module (workspace, connect, runs,
records, machine); what they share is in ``app.cli.common``. ``_tokens`` and ``_gui`` are looked up here at each
call, so a test or a probe may replace them on this module."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from app.cli.common import keyring_tokens as _tokens
from app.cli.common import one_line, open_home, why
from app.cli.common import print_run_summary as _print_run_summary
from app.cli.common import run_window as _gui
from app.cli.connect import cmd_connect
from app.cli.held import cmd_held, cmd_reactivate, cmd_relink, cmd_unlink
from app.cli.machine import cmd_backup, cmd_doctor, cmd_restore, cmd_sandbox
from app.cli.parser import build_parser
from app.cli.records import cmd_conflicts, cmd_history, cmd_release, cmd_resolve, cmd_undo
from app.cli.runs import cmd_demo, cmd_migrate, cmd_reconcile, cmd_service, cmd_status, cmd_sync
from app.cli.workspace import cmd_workspace

__all__ = ["_gui", "_print_run_summary", "_tokens", "main"]


def main(argv: list[str] | None = None) -> int:
    _tolerant_output()
    args = build_parser().parse_args(argv)
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
        print(f"crossledger: {one_line(_unexpected(exc, args.verbose))}", file=sys.stderr)
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
        return f"Crossledger could not use{where} ({why(exc)}). Check the path and that you may write there."
    detail = "" if verbose else " Run it again with -v to see the details."
    return (f"Something unexpected went wrong ({type(exc).__name__}); nothing more was changed.{detail} "
            "Please report it if it happens again.")


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.self_test:
            from app.ops.selftest import run as self_test

            return self_test(Path(args.home).expanduser() if args.home else None)
        if args.command in (None, "gui"):
            home, store = open_home(args)
            return _gui(args, home, store)
        return {"demo": cmd_demo, "workspace": cmd_workspace, "connect": cmd_connect, "sync": cmd_sync,
                "status": cmd_status, "sandbox": cmd_sandbox, "reconcile": cmd_reconcile,
                "doctor": cmd_doctor, "migrate": cmd_migrate, "history": cmd_history,
                "undo": cmd_undo, "release": cmd_release, "backup": cmd_backup, "restore": cmd_restore,
                "conflicts": cmd_conflicts, "resolve": cmd_resolve, "service": cmd_service, "held": cmd_held,
                "reactivate": cmd_reactivate, "relink": cmd_relink, "unlink": cmd_unlink}[args.command](args)
    except Exception as exc:
        code = _refusal(exc)
        if code is None:
            raise
        return code
    finally:
        from app.ops import sandboxes

        sandboxes.stop_all()


def _refusal(exc: Exception) -> int | None:
    """The exit status for a refusal the user can act on, printed in one line; None for anything else.

    The classes are imported here, when something failed, so that the window's start does not import the
    sync engine and the undo (each only raises its own after it was imported by what ran)."""
    from app.connectors.errors import ConnectorError
    from app.domain.settings import SettingsError
    from app.ops.undo import UndoError
    from app.ops.workspaces import UserError
    from app.sync.engine import Busy

    if isinstance(exc, (UserError, Busy, UndoError, SettingsError)):
        print(f"crossledger: {one_line(str(exc))}", file=sys.stderr)
        return 2
    if isinstance(exc, ConnectorError):
        print(f"crossledger: {one_line(exc.message)}", file=sys.stderr)
        return 3
    return None


def _tolerant_output() -> None:
    """Under LC_ALL=C or PYTHONIOENCODING=ascii a name with an accent prints as '?', never a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a closed or unusual stream: left as it is
                reconfigure(errors="replace")

