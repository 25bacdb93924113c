"""A HubSpot workspace and a ledger sandbox with linked customers, and invoices held in the shape the sync holds
them when a ledger customer is archived, merged or deleted (a quarantine row per deal, its ``way_out``)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.connectors.base import CustomerWrite
from app.connectors.tokens import MemoryTokenStore
from app.domain.clock import FakeClock
from app.domain.models import Party
from app.ops import status
from app.ops.sync_run import run_sync
from app.ops.workspaces import add_workspace, open_connectors, save_connection
from app.sandbox.server import InProcessTransport
from app.store.db import Store
from app.store.models import Quarantine
from tests.budget_world import Router, connect_in_process
from tests.support import over_http

LEDGER_LABELS = {"quickbooks": "QuickBooks", "xero": "Xero", "zohobooks": "Zoho Books"}
COMPANIES = ("Harbour Lights Ltd", "Quayside Joinery", "Northgate Florists")


@dataclass
class World:
    store: Store
    tokens: MemoryTokenStore
    crm: Any  # the HubSpot sandbox
    books: Any  # the ledger's sandbox
    ledger: str
    ws_id: int
    transport: httpx.BaseTransport | None
    clock: FakeClock | None = None
    name: str = "Harbour Books"
    crm_ids: dict[str, str] = field(default_factory=dict)  # company name -> HubSpot id
    acct_ids: dict[str, str] = field(default_factory=dict)  # company name -> ledger customer id

    @property
    def label(self) -> str:
        return LEDGER_LABELS[self.ledger]

    def options(self) -> dict[str, Any]:
        if self.clock is None:
            return {}
        return {"transport": self.transport, "clock": self.clock, "sleep": self.clock.sleep}

    def sync(self):
        return run_sync(self.store, self.tokens, self.name, **self.options())

    def connector(self) -> Any:
        crm, acct = open_connectors(self.store, self.tokens, _info(self), **self.options())
        crm.close()
        return acct

    def archive(self, company: str) -> None:
        """A bookkeeper makes the customer inactive in the ledger, through its API."""
        acct = self.connector()
        try:
            assert acct.deactivate_customer(self.acct_ids[company]).ok
        finally:
            acct.close()

    def new_customer(self, name: str) -> str:
        """A customer a bookkeeper makes in the ledger (through its API): its id."""
        acct = self.connector()
        try:
            [made] = acct.create_customers([CustomerWrite("bookkeeper", Party("company", name))])
            assert made.ok, made.error
            return made.id
        finally:
            acct.close()

    def fate(self, customer_id: str) -> str:
        acct = self.connector()
        try:
            return acct.customer_fates([customer_id])[0].state
        finally:
            acct.close()

    def hold(self, deal_id: str, deal_name: str, company: str, kind: str, target: str | None, label: str,
             message: str, crm_type: str = "company") -> None:
        """The deal held as the sync holds it when it cannot make the invoice (the contract with the engine)."""
        way = {"kind": kind, "label": label, "target_id": target, "side": "accounting", "crm_type": crm_type,
               "crm_id": self.crm_ids[company]}
        with self.store.session() as s:
            s.add(Quarantine(workspace_id=self.ws_id, side="crm", record_type="deal", record_id=deal_id,
                             name=deal_name, reasons={"items": [{"field": "customer", "message": message,
                                                                 "way_out": way}]}))

    def held(self) -> dict[str, dict[str, Any]]:
        with self.store.session() as s:
            return {q.record_id: dict(q.reasons) for q in s.query(Quarantine).filter_by(workspace_id=self.ws_id)}

    def link_of(self, company: str):
        return next(lk for lk in status.linked_records(self.store, self.ws_id) if lk.crm_id == self.crm_ids[company])


def _info(w: World):
    from app.ops.workspaces import get_workspace

    return get_workspace(w.store, w.name)


@contextlib.contextmanager
def make_world(tmp_path, ledger: str, *, http: bool = False) -> Iterator[World]:
    """Three HubSpot companies synced to ``ledger`` (created there and linked); ``http``: the sandboxes on real
    127.0.0.1 ports (for the command line, which opens its own connections), else in-process."""
    store = Store(f"sqlite:///{tmp_path}/ways-{ledger}.db")
    ws = add_workspace(store, "Harbour Books", "hubspot", ledger)
    tokens = MemoryTokenStore()
    with contextlib.ExitStack() as stack:
        if http:
            crm = stack.enter_context(over_http("hubspot", "empty", tokens=tokens))
            books = stack.enter_context(over_http(ledger, "empty", tokens=tokens))
            save_connection(store, ws, crm.conn)
            save_connection(store, ws, books.conn)
            sandboxes, transport, clock = (crm.sandbox, books.sandbox), None, None
        else:
            clock = FakeClock(dt.datetime.now(dt.UTC))
            routes: dict[str, InProcessTransport] = {}
            made = [connect_in_process(store, ws, tokens, clock, provider, host, routes, "empty")
                    for provider, host in (("hubspot", "crm.test"), (ledger, "books.test"))]
            sandboxes, transport = (made[0], made[1]), Router(routes)
        w = World(store, tokens, sandboxes[0], sandboxes[1], ledger, ws.id, transport, clock)
        w.crm_ids = {name: w.crm.create("companies", name=name, country="United Kingdom") for name in COMPANIES}
        result = w.sync()
        assert result.status == "ok", result.errors
        links = {lk.crm_id: lk.acct_id for lk in status.linked_records(store, ws.id)}
        w.acct_ids = {name: links[rid] for name, rid in w.crm_ids.items()}
        yield w
    store.dispose()
