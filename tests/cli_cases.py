"""Bad command lines for every `crossledger` command, and a driver that runs them in one process.

``python -m tests.cli_cases OUT.json`` builds a small world in a temporary folder, runs every case
through ``app.cli.main`` with stdout and stderr as the interpreter opened them (same encoding and
error handling, so LC_ALL=C and PYTHONIOENCODING=ascii behave as in a terminal), and writes what each
case printed and returned. tests/test_cli_bad_input.py runs it under several locales.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sqlite3
import sys
import tempfile
from pathlib import Path

# {home}: a data folder holding workspaces 'Acme', 'Beta' and 'Zürich Ltd'; {file}: a plain text file;
# {dir}: a folder; {notdb}: notes in a file named like a database; {otherdb}: another program's SQLite file;
# {empty}: an empty file; {db}: the home's own database; {closed}: a loopback port nobody listens on;
# {running}/{dry}/{undone}: run ids still running, a dry run, and a run already undone.
CASES: list[list[str]] = [
    # the command line itself
    ["--frob"], ["frob"], ["--home"], ["--db"], ["status", "extra"], ["gui", "extra"], ["doctor", "extra"],
    ["--home", "", "status"], ["--home", " ", "status"],
    ["--home", "{file}", "status"], ["--home", "{file}/sub", "status"], ["--home", "/proc/crossledger", "status"],
    ["--home", "/proc/self/status", "workspace", "list"],
    # --db
    ["--db", "foo", "status"], ["--db", "sqlite", "status"], ["--db", "://", "status"],
    ["--db", "sqlite:////nonexistent-folder/x.db", "status"], ["--db", "sqlite:///{dir}", "status"],
    ["--db", "sqlite:///{notdb}", "status"], ["--db", "sqlite:///{otherdb}", "workspace", "list"],
    ["--db", "sqlite:///{file}/x.db", "status"], ["--db", "sqlite:////proc/x.db", "status"],
    ["--db", "mysql://u@localhost/x", "status"], ["--db", "oracle://x", "status"],
    ["--db", "http://example.com/db", "status"], ["--db", "postgresql+nosuchdriver://u@localhost/x", "status"],
    ["--db", "postgresql://u@127.0.0.1:{closed}/x", "status"], ["--db", "sqlite:///file:x?mode=ro&uri=true", "status"],
    ["--db", "sqlite:///{notdb}", "backup"], ["--db", "postgresql://u@127.0.0.1:{closed}/x", "backup"],
    # workspace
    ["workspace"], ["workspace", "frob"], ["workspace", "add"], ["workspace", "add", "X"],
    ["workspace", "add", "X", "--crm", "nope", "--accounting", "xero"],
    ["workspace", "add", "X", "--crm", "xero", "--accounting", "hubspot"],
    ["workspace", "add", "", "--crm", "hubspot", "--accounting", "xero"],
    ["workspace", "add", "a/b", "--crm", "hubspot", "--accounting", "xero"],
    ["workspace", "add", "x" * 200, "--crm", "hubspot", "--accounting", "xero"],
    ["workspace", "add", "ACME", "--crm", "hubspot", "--accounting", "xero"],
    ["workspace", "add", " acme ", "--crm", "hubspot", "--accounting", "xero"],
    ["workspace", "add", "ZÜRICH LTD", "--crm", "hubspot", "--accounting", "xero"],
    ["workspace", "add", "a\nb", "--crm", "hubspot", "--accounting", "xero"],
    ["workspace", "add", "\u202eevil", "--crm", "hubspot", "--accounting", "xero"],
    ["workspace", "remove", "nope"], ["workspace", "rename", "nope", "x"], ["workspace", "rename", "Acme", "BETA"],
    ["workspace", "rename", "Acme", ""], ["workspace", "rename", "Acme", "a;b"], ["workspace", "set", "Acme"],
    ["workspace", "set", "Acme", "--report-folder", "relative/dir"],
    ["workspace", "set", "Acme", "--report-folder", "{file}"],
    ["workspace", "set", "Acme", "--report-folder", "/proc/reports"],
    ["workspace", "set", "nope", "--report-folder", "{dir}"], ["workspace", "list", "--frob"],
    # connect
    ["connect"], ["connect", "hubspot"], ["connect", "nope", "--workspace", "Acme"],
    ["connect", "hubspot", "--workspace", "nope"], ["connect", "xero", "--workspace", "Acme"],
    ["connect", "hubspot", "--workspace", "Acme", "--base-url", "notaurl"],
    ["connect", "hubspot", "--workspace", "Acme", "--base-url", "ftp://127.0.0.1/x"],
    ["connect", "hubspot", "--workspace", "Acme", "--base-url", "https://evil.example"],
    ["connect", "hubspot", "--workspace", "Acme", "--base-url", "http://[::1"],
    ["connect", "hubspot", "--workspace", "Acme", "--base-url", "http://127.0.0.1:99999"],
    ["connect", "hubspot", "--workspace", "Acme", "--auth-url", "https://evil.example"],
    ["connect", "hubspot", "--workspace", "Acme", "--timeout", "0"],
    ["connect", "hubspot", "--workspace", "Acme", "--timeout", "-5"],
    ["connect", "hubspot", "--workspace", "Acme", "--timeout", "nan"],
    ["connect", "hubspot", "--workspace", "Acme", "--timeout", "inf"],
    ["connect", "hubspot", "--workspace", "Acme", "--timeout", "soon"],
    ["connect", "hubspot", "--workspace", "Acme", "--base-url", "http://127.0.0.1:{closed}"],
    ["connect", "quickbooks", "--workspace", "Acme", "--base-url", "http://localhost:{closed}", "--timeout", "5"],
    ["connect", "hubspot", "--workspace", "Acme"], ["connect", "quickbooks", "--workspace", "Acme"],
    ["connect", "quickbooks", "--workspace", "Acme", "--access-token-stdin"],
    ["connect", "xero", "--workspace", "Acme", "--access-token-stdin"],
    ["connect", "hubspot", "--workspace", "Acme", "--access-token-stdin", "--client-id", "x"],
    ["connect", "hubspot", "--workspace", "Acme", "--access-token-stdin", "--client-secret", "s"],
    ["connect", "hubspot", "--workspace", "Acme", "--access-token-stdin", "--auth-url", "http://127.0.0.1:9"],
    ["connect", "hubspot", "--workspace", "Acme", "--access-token-stdin", "--base-url", "https://evil.example"],
    ["connect", "hubspot", "--workspace", "nope", "--access-token-stdin"],
    ["connect", "pipedrive", "--workspace", "Acme", "--access-token-stdin"],
    ["connect", "hubspot", "--workspace", "Acme", "--plan", "growth"],
    ["connect", "pipedrive", "--workspace", "Acme", "--plan", "gold"],
    ["workspace", "set", "Acme", "--plan", "gold"], ["workspace", "set", "Acme", "--plan", "growth"],
    ["connect", "hubspot", "--workspace", "Acme", "--access-token-stdin", "extra"],
    # sync
    ["sync"], ["sync", "nope"], ["sync", "acme"], ["sync", "Acme"], ["sync", "Zürich Ltd"], ["sync", "Acme", "--frob"],
    ["sync", ""],
    ["conflicts"], ["conflicts", "nope"], ["conflicts", "Acme", "--frob"],
    ["resolve", "Acme"], ["resolve", "nope", "x", "city", "--keep", "crm"],
    ["resolve", "Acme", "Nobody Ltd", "city", "--keep", "crm"], ["resolve", "Acme", "x", "city"],
    ["workspace", "show", "nope"], ["workspace", "set", "Acme", "--direction", "sideways"],
    ["workspace", "set", "Acme", "--rule", "town=ask"], ["workspace", "set", "Acme", "--cadence", "realtime=0m"],
    ["workspace", "set", "Acme", "--cadence", "batch=25:00,reconcile=40"], ["service", "--frob"],
    # status
    ["status", "--frob"],
    # reconcile
    ["reconcile"], ["reconcile", "Acme"], ["reconcile", "nope", "--month", "2026-01"],
    *(["reconcile", "Acme", "--month", m] for m in (
        "9999-12", "0000-01", "0001-01", "2026-13", "2026-00", "2026-1", "26-01", "2026/01", "", "abcd-ef",
        "2026-W01", "\u0661\u0662\u0663\u0664-\u0660\u0661", "99999-01", "1899-12", "3000-01", "2026-01-15")),
    ["reconcile", "Acme", "--month", "2026-01", "--out", "{dir}"],
    ["reconcile", "Acme", "--month", "2026-01", "--out", "{file}/x.xlsx"],
    ["reconcile", "Acme", "--month", "2026-01", "--out", "{file}/deeper/x.xlsx"],
    ["reconcile", "Acme", "--month", "2026-01", "--out", "/proc/x.xlsx"],
    ["reconcile", "Acme", "--month", "2026-01", "--out", "/proc/self/x.xlsx"],
    ["reconcile", "Acme", "--month", "2026-01", "--out", "."],
    ["reconcile", "Acme", "--month", "2026-01", "--out", ".."],
    ["reconcile", "Acme", "--month", "2026-01"],
    # migrate
    ["migrate"], ["migrate", "nope"], ["migrate", "Acme"], ["migrate", "Acme", "--apply"],
    ["migrate", "Acme", "--apply", "--dry-run"], ["migrate", "Acme", "--exclude", "x"],
    ["migrate", "Acme", "--exclude", "-1"], ["migrate", "Acme", "--exclude", "0"],
    ["migrate", "Acme", "--exclude", "99999999999999999999"],
    # history
    ["history"], ["history", "nope"], ["history", "Acme", "--record"], ["history", "Acme", "--frob"],
    # undo
    ["undo"], ["undo", "abc"], ["undo", "-1"], ["undo", "1.5"], ["undo", "1", "2", "3"],
    ["undo", "12345678901234567890123"], ["undo", "999999"], ["undo", "0"], ["undo", "\u0663"],
    ["undo", "Acme", "999"], ["undo", "{running}"], ["undo", "{dry}"], ["undo", "{undone}"],
    ["undo", "{undone}", "--workspace", "Beta"], ["undo", "Beta", "{undone}"],
    # release
    ["release"], ["release", "Acme", "invoice", "1"], ["release", "nope", "company", "1"],
    ["release", "Acme", "company", "123"],
    # sandbox
    ["sandbox"], ["sandbox", "serve"], ["sandbox", "serve", "nope"], ["sandbox", "serve", "hubspot", "--port", "x"],
    ["sandbox", "serve", "hubspot", "--port", "-1"], ["sandbox", "serve", "hubspot", "--port", "70000"],
    ["sandbox", "serve", "hubspot", "--seed", "nope"], ["sandbox", "serve", "hubspot", "--size", "0"],
    ["sandbox", "serve", "hubspot", "--seed", "large", "--size", "many"],
    ["sandbox", "serve", "hubspot", "--size", "500"], ["sandbox", "serve", "hubspot", "--limits-scale", "0"],
    ["sandbox", "serve", "hubspot", "--limits-scale", "nan"], ["sandbox", "serve", "xero", "--limits-scale", "-2"],
    ["sandbox", "serve", "hubspot", "--state", "{dir}"],
    ["sandbox", "serve", "hubspot", "--state", "{file}/x.json"],
    ["sandbox", "serve", "hubspot", "--state", "{notdb}"],
    ["sandbox", "serve", "hubspot", "--state", "/nonexistent-folder/x.json"],
    # backup and restore
    ["backup", "{file}"], ["backup", "/nonexistent-folder/x.db"], ["backup", "/proc"], ["backup", "{db}"],
    ["--home", "{dir}/fresh-home", "backup"],
    ["restore"], ["restore", "/nonexistent-folder/x.db"], ["restore", "{dir}"], ["restore", "{notdb}"],
    ["restore", "{otherdb}"], ["restore", "{empty}"], ["restore", "{db}"],
    # demo
    ["demo", "--crm", "nope"], ["demo", "--accounting", "hubspot"], ["demo", "--crm", "xero"],
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once closed: connections to it are refused


def build_world(root: Path) -> dict[str, str]:
    from app.store.db import Store, sqlite_url
    from app.store.models import Run, Workspace

    home = root / "home"
    home.mkdir()
    store = Store(sqlite_url(home))
    with store.session() as s:
        ws = [Workspace(name=n, crm_provider="hubspot", accounting_provider="quickbooks", settings={})
              for n in ("Acme", "Beta", "Zürich Ltd")]
        s.add_all(ws)
        s.flush()
        running = Run(workspace_id=ws[0].id, trigger="cli", status="running")
        dry = Run(workspace_id=ws[0].id, trigger="cli", dry_run=1, status="ok")
        done = Run(workspace_id=ws[0].id, trigger="cli", status="ok")
        s.add_all([running, dry, done])
        s.flush()
        s.add(Run(workspace_id=ws[0].id, trigger="undo", status="ok", counts={"undo_of": done.id}))
        ids = {"running": running.id, "dry": dry.id, "undone": done.id}
    store.dispose()
    (root / "dir").mkdir()
    (root / "file.txt").write_text("just a file\n")
    (root / "notes.db").write_text("Q3 figures, do not lose\n" * 40)
    (root / "empty.db").write_bytes(b"")
    with contextlib.closing(sqlite3.connect(root / "other.sqlite")) as conn:
        conn.execute("create table recipes (name text)")
        conn.commit()
    return {"home": str(home), "file": str(root / "file.txt"), "dir": str(root / "dir"),
            "notdb": str(root / "notes.db"), "otherdb": str(root / "other.sqlite"), "empty": str(root / "empty.db"),
            "db": str(home / "crossledger.db"), "closed": str(_closed_port()),
            **{k: str(v) for k, v in ids.items()}}


def expand(case: list[str], world: dict[str, str]) -> list[str]:
    return ["--home", world["home"], *(arg.format(**world) if "{" in arg else arg for arg in case)]


def run_one(argv: list[str]) -> dict:
    """main(argv) with stdout/stderr of the interpreter's own encoding and error handling."""
    import app.cli
    from app.connectors.tokens import MemoryTokenStore

    app.cli._tokens = lambda *_a, **_k: MemoryTokenStore()  # the keyring is not what these cases are about
    saved = sys.stdout, sys.stderr
    out, err = io.BytesIO(), io.BytesIO()
    wrappers = (io.TextIOWrapper(out, encoding=saved[0].encoding, errors=saved[0].errors, write_through=True),
                io.TextIOWrapper(err, encoding=saved[1].encoding, errors=saved[1].errors, write_through=True))
    sys.stdout, sys.stderr = wrappers
    env = os.environ.get("CROSSLEDGER_HOME")
    try:
        try:
            code = app.cli.main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException as exc:
            import traceback

            traceback.print_exc(file=sys.stderr)
            code = f"raised {type(exc).__name__}"
    finally:
        for w in wrappers:
            w.flush()
            w.detach()  # the bytes stay readable
        sys.stdout, sys.stderr = saved
        if env is None:
            os.environ.pop("CROSSLEDGER_HOME", None)
        else:
            os.environ["CROSSLEDGER_HOME"] = env
    return {"argv": argv, "code": code, "stdout": out.getvalue().decode("utf-8", "replace"),
            "stderr": err.getvalue().decode("utf-8", "replace")}


def run_all(root: Path) -> dict:
    world = build_world(root)
    before = {k: Path(world[k]).read_bytes() for k in ("file", "notdb", "otherdb", "empty")}
    results = [run_one(expand(case, world)) for case in CASES]
    untouched = all(Path(world[k]).read_bytes() == v for k, v in before.items())
    return {"results": results, "files_untouched": untouched, "encoding": sys.stderr.encoding,
            "world": world}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="cli-cases-") as tmp:
        cwd = Path(tmp) / "cwd"
        cwd.mkdir()
        os.chdir(cwd)  # nothing may land in the folder the command was run from
        report = run_all(Path(tmp))
        report["cwd_left_clean"] = not any(cwd.iterdir())
    Path(sys.argv[1]).write_text(json.dumps(report))
