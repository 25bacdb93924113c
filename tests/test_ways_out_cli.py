"""The ways out on the command line: `held` and `status --json` list them, `reactivate`, `relink` and `unlink`
take them with the same effect as the Held back tab's button; refusals exit 2 (ours) or 3 (the ledger's)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from app import cli
from tests.test_ways_out import ARCHIVED, HARBOUR, REACTIVATE, _merged_into_a_new_customer
from tests.ways_out_world import World, make_world


def run(w: World, tmp_path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["--home", str(tmp_path / "home"), "--db", w.store.url, *args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def signed_in(monkeypatch):
    def use(w: World) -> World:
        monkeypatch.setattr(cli, "_tokens", lambda *_a, **_k: w.tokens)  # the world's sign-ins, not the keyring
        return w
    return use


def test_held_invoices_are_listed_with_their_way_out_and_reactivated_from_the_command_line(tmp_path, signed_in):
    with make_world(tmp_path, "quickbooks", http=True) as w:
        signed_in(w)
        cid = w.acct_ids[HARBOUR]
        w.archive(HARBOUR)
        w.hold("901", "Lighthouse refit", HARBOUR, "reactivate", cid, REACTIVATE, ARCHIVED)
        w.hold("902", "Lantern order", HARBOUR, "reactivate", cid, REACTIVATE, ARCHIVED)

        code, out, _ = run(w, tmp_path, "held", w.name)
        assert code == 0 and "2 records held back in 'Harbour Books'" in out
        assert "Waiting on you (1):" in out and ARCHIVED in out
        assert f"{REACTIVATE}: crossledger reactivate \"Harbour Books\" {cid}" in out

        code, out, _ = run(w, tmp_path, "held", w.name, "--json")
        listed = json.loads(out)
        assert code == 0 and {h["record_id"] for h in listed["held"]} == {"901", "902"}
        [way] = listed["ways_out"]
        assert (way["kind"], way["label"], way["customer_id"], way["customer_name"], way["record_name"]) == (
            "reactivate", REACTIVATE, cid, HARBOUR, HARBOUR)
        assert [x["name"] for x in way["waiting"]] == ["Lighthouse refit", "Lantern order"]
        code, out, _ = run(w, tmp_path, "status", "--json")
        assert code == 0 and json.loads(out)["workspaces"][0]["ways_out"] == listed["ways_out"]
        code, out, _ = run(w, tmp_path, "status")
        assert "Waiting on you (1):" in out

        code, _, err = run(w, tmp_path, "reactivate", w.name, "Nobody Ltd")
        assert code == 2 and "Nothing held waits on 'Nobody Ltd'" in err and "crossledger held" in err
        code, _, err = run(w, tmp_path, "unlink", w.name, HARBOUR)
        assert code == 2 and f"The way out for '{HARBOUR}' is: {REACTIVATE}." in err

        code, out, err = run(w, tmp_path, "reactivate", w.name, HARBOUR.upper())  # by name, any case
        assert code == 0, err
        assert out.strip() == (f"'{HARBOUR}' is active again in QuickBooks Online. The next sync makes the invoices "
                               "for 'Lighthouse refit' and 'Lantern order'.")
        assert w.fate(cid) == "active"
        code, out, _ = run(w, tmp_path, "held", w.name, "--json")
        assert json.loads(out)["ways_out"] == []
        code, out, _ = run(w, tmp_path, "history", w.name, "--record", cid, "--field", "active", "--json")
        [change] = json.loads(out)["changes"]
        assert (change["before"], change["after"], change["trigger"], change["rule"]) == (
            "false", "true", "activate", "chosen-by-you")
        code, out, _ = run(w, tmp_path, "history", w.name, "--record", cid)
        [line] = [ln for ln in out.splitlines() if " Active " in ln]
        assert line.split()[3:] == ["Activate", "ledger", "Harbour", "Lights", "Ltd", "Active", "false", "true",
                                    "Chosen", "by", "you"]


def test_a_ledger_refusal_exits_3_and_changes_nothing(tmp_path, signed_in):
    with make_world(tmp_path, "xero", http=True) as w:
        signed_in(w)
        loser = w.acct_ids[HARBOUR]
        w.books.user_merge_contacts(loser, w.acct_ids["Quayside Joinery"])
        w.hold("901", "Lighthouse refit", HARBOUR, "reactivate", loser, REACTIVATE, ARCHIVED)
        code, out, err = run(w, tmp_path, "reactivate", w.name, loser)
        assert code == 3 and out == ""
        assert err.startswith(f"crossledger: Xero did not make '{HARBOUR}' active again: Xero merged this contact")
        assert err.strip().endswith("Nothing was changed; the invoice for 'Lighthouse refit' still waits.")
        code, out, _ = run(w, tmp_path, "reactivate", w.name, loser, "--json")
        answer = json.loads(out)
        assert code == 3 and answer["status"] == "provider" and answer["released"] == []
        assert len(json.loads(run(w, tmp_path, "held", w.name, "--json")[1])["ways_out"]) == 1


def test_relink_and_unlink_from_the_command_line(tmp_path, signed_in):
    with make_world(tmp_path, "quickbooks", http=True) as w:
        signed_in(w)
        survivor = _merged_into_a_new_customer(w)
        code, _, err = run(w, tmp_path, "relink", w.name, HARBOUR, "--to", "Quayside Joinery")
        assert code == 2 and "Link 'Harbour Lights Ltd' to 'Harbour Lights Limited' (customer " + survivor in err
        code, out, err = run(w, tmp_path, "relink", w.name, w.crm_ids[HARBOUR], "--to", survivor, "--json")
        answer = json.loads(out)
        assert code == 0 and answer["status"] == "ok", err
        assert answer["message"].startswith(f"'{HARBOUR}' is now linked to 'Harbour Lights Limited'")
        assert {r["record_id"] for r in answer["released"]} == {"901", "902"}
        assert w.link_of(HARBOUR).acct_id == survivor
        code, out, err = run(w, tmp_path, "undo", str(answer["run_id"]), "--dry-run", "--json")
        assert code == 0, err
        [step] = json.loads(out)["steps"]
        assert step["kind"] == "unlink" and "Unlink Harbour Lights Ltd in HubSpot from Harbour Lights Limited" in \
            step["description"]

        # A customer deleted from the ledger: unlink, and the next sync makes it again.
        quay = "Quayside Joinery"
        w.hold("903", "Quay steps", quay, "unlink", None, f"Unlink '{quay}'", f"'{quay}' was deleted in the ledger.")
        code, out, err = run(w, tmp_path, "unlink", w.name, "quay steps")  # a waiting deal names it too
        assert code == 0, err
        assert out.startswith(f"'{quay}' is no longer linked to a customer in QuickBooks Online.")
        assert w.crm_ids[quay] not in {lk.crm_id for lk in _links(w)}


def _links(w: World):
    from app.ops.status import linked_records

    return linked_records(w.store, w.ws_id)
