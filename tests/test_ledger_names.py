"""Each ledger sandbox keeps its customers' names unique through an index; a rename must move the name."""

from __future__ import annotations

import pytest

from app.connectors.base import CustomerWrite
from app.connectors.errors import DuplicateName
from app.domain.models import Party
from tests.support import in_process


def party(name: str) -> Party:
    return Party(kind="company", name=name)


@pytest.mark.parametrize("ledger", ["quickbooks", "xero", "zohobooks"])
def test_a_renamed_customer_frees_its_old_name_and_takes_the_new_one(ledger):
    c = in_process(ledger, "demo")
    try:
        [a] = c.connector.create_customers([CustomerWrite("a", party("Harbour Lights Ltd"))])
        assert a.ok, a.error
        [again] = c.connector.create_customers([CustomerWrite("b", party("HARBOUR lights ltd"))])
        assert isinstance(again.error, DuplicateName)
        [renamed] = c.connector.update_customers([CustomerWrite("c", party("Harbour Lights Trading Ltd"), id=a.id,
                                                                version=a.version)])
        assert renamed.ok, renamed.error
        [old_name] = c.connector.create_customers([CustomerWrite("d", party("Harbour Lights Ltd"))])
        assert old_name.ok, old_name.error  # the old name is free again
        [new_name] = c.connector.create_customers([CustomerWrite("e", party("harbour lights trading ltd"))])
        assert isinstance(new_name.error, DuplicateName)  # ... and the new one is taken
    finally:
        c.connector.close()


@pytest.mark.parametrize("ledger", ["quickbooks", "xero", "zohobooks"])
def test_a_name_stays_taken_across_a_restart_and_a_customer_added_in_the_ledgers_own_screens(ledger, tmp_path):
    """The name index is rebuilt from the records themselves: a sandbox served again from its state file,
    or a customer someone typed into the ledger by hand, still holds its name."""
    state = str(tmp_path / f"{ledger}.json")
    c = in_process(ledger, "demo", state_file=state)
    try:
        [a] = c.connector.create_customers([CustomerWrite("a", party("Quayside Kilns Ltd"))])
        assert a.ok, a.error
    finally:
        c.connector.close()
    again = in_process(ledger, None, state_file=state)  # served again from its file
    try:
        add_by_hand = {"quickbooks": lambda sb: sb.add("Customer", {"DisplayName": "Marsh Lane Bakery"}),
                       "xero": lambda sb: sb.add_contact({"Name": "Marsh Lane Bakery"}),
                       "zohobooks": lambda sb: sb.add_contact({"contact_name": "Marsh Lane Bakery"})}[ledger]
        add_by_hand(again.sandbox)
        for name in ("quayside kilns ltd", " MARSH LANE BAKERY "):
            [clash] = again.connector.create_customers([CustomerWrite(name, party(name))])
            assert isinstance(clash.error, DuplicateName), (ledger, name, clash)
    finally:
        again.connector.close()
