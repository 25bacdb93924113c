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
