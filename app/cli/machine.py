"""This machine and its data: doctor, backup, restore, and a provider sandbox served locally."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

from app.cli.common import db_url
from app.domain.text import plural


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
    print("\n" + ("Everything looks fine." if not bad else
                   f"{plural(bad, 'thing needs', 'things need')} attention."))
    return 0 if not bad else 1


def cmd_backup(args: argparse.Namespace) -> int:
    from app.ops.storage import make_backup

    path = make_backup(db_url(args), args.file)
    print(f"The database was copied to {path}. To go back to it: crossledger restore \"{path}\"")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from app.ops.storage import restore

    db_file, kept = restore(db_url(args), args.file)
    print(f"Restored {args.file} into {db_file}."
          + (f" The database as it was is kept in {kept}." if kept else "")
          + " Sync each workspace to bring it up to date with both sides.")
    return 0


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
