"""Open conflicts on the command line: listed by `status --json` and `conflicts`, decided by `resolve`.

A script sees what the Review page shows, names each conflict by its record, and decides it with
the same effect: the next sync puts the kept value on both sides.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from app import cli
from app.ops import status
from app.ops.reconcile_month import month_data
from tests.test_review_ui import World
from tests.test_review_ui import world as review_world  # noqa: F401 - the fixture: three companies, "ask" rules


@pytest.fixture
def world(review_world: World) -> World:  # noqa: F811 - the imported fixture, under the name used here
    return review_world


def run(world: World, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["--home", str(tmp_path / "home"), "--db", world.store.url, *args])
    return code, out.getvalue(), err.getvalue()


def test_open_conflicts_are_listed_by_record_and_decided_from_the_command_line(world: World, tmp_path):
    world.conflict_on_address("Maple Grove Nursery", "Stonebridge Bakery")

    [ws] = status.status_json(world.store)["workspaces"]
    listed = {(c["name"], c["field"]): c for c in ws["conflicts"]}
    assert set(listed) == {("Maple Grove Nursery", "address_line1"), ("Stonebridge Bakery", "address_line1")}
    maple = listed["Maple Grove Nursery", "address_line1"]
    assert maple["crm_value"] == "Unit 4, Station Road Business Park"
    assert maple["accounting_value"] == "14 Station Rd"
    assert maple["last_synced_value"] == "14 Station Road" and maple["since"].endswith("Z")

    code, out, _ = run(world, tmp_path, "conflicts", world.name, "--json")
    assert code == 0 and json.loads(out)["conflicts"] == ws["conflicts"]
    code, out, _ = run(world, tmp_path, "conflicts", world.name)
    assert code == 0 and "2 open conflicts" in out
    assert "Maple Grove Nursery" in out and "HubSpot 'Unit 4, Station Road Business Park'" in out

    # The monthly report names the company, not the disputed value.
    held = month_data(world.store, world.ws_id, dt.date.today().strftime("%Y-%m")).held
    assert {h.name for h in held if "open conflict" in h.reason} == {"Maple Grove Nursery", "Stonebridge Bakery"}

    # By name (any case) and by the field's label; by CRM id and a typed value.
    code, out, _ = run(world, tmp_path, "resolve", world.name, "maple grove nursery", "Address", "--keep", "crm")
    assert code == 0 and "keeps HubSpot's" in out
    bakery_id = world.ids["Stonebridge Bakery"][0]
    code, _, _ = run(world, tmp_path, "resolve", world.name, bakery_id, "address_line1", "--keep", "value=PO Box 78")
    assert code == 0
    assert status.status_json(world.store)["workspaces"][0]["conflicts"] == []

    world.sync()
    assert world.crm_address("Maple Grove Nursery") == "Unit 4, Station Road Business Park"
    assert world.ledger("Maple Grove Nursery").address_line1 == "Unit 4, Station Road Business Park"
    assert world.crm_address("Stonebridge Bakery") == "PO Box 78"
    assert world.ledger("Stonebridge Bakery").address_line1 == "PO Box 78"


def test_a_resolve_that_names_nothing_open_says_what_to_do(world: World, tmp_path):
    world.conflict_on_address("Maple Grove Nursery")
    code, _, err = run(world, tmp_path, "resolve", world.name, "Nobody Ltd", "city", "--keep", "crm")
    assert code == 2 and "No open conflict for 'Nobody Ltd'" in err and "crossledger conflicts" in err
    code, _, err = run(world, tmp_path, "resolve", world.name, "Maple Grove Nursery", "city", "--keep", "crm")
    assert code == 2 and "has no open conflict on 'city'" in err and "address_line1" in err
    code, _, err = run(world, tmp_path, "resolve", world.name, "Maple Grove Nursery", "address", "--keep", "mine")
    assert code == 2 and "--keep crm, --keep accounting" in err
    assert len(err.strip().splitlines()) == 1
