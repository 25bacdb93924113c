"""Every setting the window offers can be made on the command line too: direction, rules, cadence."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from app import cli
from app.ops.workspaces import get_workspace
from app.sched.service import cadence
from app.store.db import Store


def run(home: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["--home", str(home), *args])
    return code, out.getvalue(), err.getvalue()


def test_direction_rules_and_cadence_are_saved_where_the_sync_and_scheduler_read_them(tmp_path):
    home = tmp_path / "home"
    assert run(home, "workspace", "add", "Acme", "--crm", "pipedrive", "--accounting", "zohobooks")[0] == 0
    code, out, _ = run(home, "workspace", "set", "Acme", "--direction", "crm-to-accounting", "--rule", "city=ask",
                       "--rule", "Tax ID=accounting", "--cadence", "realtime=15m,batch=03:00,reconcile=2")
    assert code == 0
    assert "Pipedrive → Zoho Books only" in out and "city: ask me (Review)" in out and "every 15 min" in out

    code, out, _ = run(home, "workspace", "show", "Acme", "--json")
    shown = json.loads(out)
    assert shown["direction"] == {"customer": "crm-to-accounting", "invoice": "on"}
    assert shown["rules"]["city"] == "ask" and shown["rules"]["tax_id"] == "accounting"
    assert shown["rules"]["email"] == "crm"  # untouched fields keep the default: the CRM owns contact details
    assert shown["cadence"] == {"realtime_minutes": 15, "batch_hour": 3, "reconcile_day": 2, "paused": False}

    store = Store(f"sqlite:///{home}/crossledger.db")
    settings = get_workspace(store, "Acme").settings
    assert settings["direction"]["customer"] == "crm_to_acct"  # the key the planner reads
    assert cadence(settings)["realtime_minutes"] == 15  # what the scheduler reads
    store.dispose()

    # Invoices can be switched off alone; the customers' direction stays.
    code, out, _ = run(home, "workspace", "set", "Acme", "--direction", "invoice=off", "--json")
    assert json.loads(out)["direction"] == {"customer": "crm-to-accounting", "invoice": "off"}


def test_a_bad_setting_is_refused_in_one_line_and_nothing_is_saved(tmp_path):
    home = tmp_path / "home"
    run(home, "workspace", "add", "Acme", "--crm", "hubspot", "--accounting", "xero")
    for bad in (["--direction", "sideways"], ["--rule", "town=ask"], ["--rule", "city=whoever"],
                ["--cadence", "realtime=0m"], ["--cadence", "batch=25:00"], ["--cadence", "hourly"],
                ["--rule", "city=ask", "--cadence", "realtime=soon"]):
        code, _, err = run(home, "workspace", "set", "Acme", *bad)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "crossledger:" in err, (bad, err)
    shown = json.loads(run(home, "workspace", "show", "Acme", "--json")[1])
    assert shown["rules"]["city"] == "crm" and shown["cadence"]["realtime_minutes"] == 2
