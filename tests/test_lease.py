"""The workspace lease on the app's own SQLite store, its expiry driven by a fake clock."""

from __future__ import annotations

import datetime as dt

from app.domain.clock import FakeClock
from app.store import lease
from app.store.db import Store
from app.store.models import Lease, Workspace


def _workspace(tmp_path) -> tuple[Store, int]:
    store = Store(f"sqlite:///{tmp_path}/lease.db")
    with store.session() as s:
        ws = Workspace(name="Acme Books", crm_provider="hubspot", accounting_provider="xero", settings={})
        s.add(ws)
        s.flush()
        return store, ws.id


def test_a_lease_from_another_machine_holds_until_it_expires_and_renewing_keeps_it(tmp_path):
    store, ws_id = _workspace(tmp_path)
    clock = FakeClock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    other, me = "front-desk-pc:4242:abcd1234", lease.holder_id()
    assert lease.acquire(store, ws_id, other, ttl=300, clock=clock)
    clock.advance(200)
    assert lease.renew(store, ws_id, other, ttl=300, clock=clock)  # a batch boundary: five more minutes
    clock.advance(299)
    assert not lease.acquire(store, ws_id, me, clock=clock)  # renewed 299 s ago: still syncing
    clock.advance(2)
    assert lease.acquire(store, ws_id, me, clock=clock)  # silent for over five minutes: taken over
    assert not lease.renew(store, ws_id, other, clock=clock)  # the old holder has lost it
    with store.session() as s:
        row = s.get(Lease, ws_id)
        assert (row.holder, row.expires_at) == (me, dt.datetime(2026, 12, 1, 9, 13, 21))
    lease.release(store, ws_id, me)
    assert lease.acquire(store, ws_id, other, clock=clock)  # released: free at once
    store.dispose()
