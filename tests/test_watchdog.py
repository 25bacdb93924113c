"""The connection watchdog renews idle sign-ins past half their life, leaves fresh ones alone, and turns
a refused renewal into a "reconnect" state; the scheduler runs it once a day."""

from __future__ import annotations

import dataclasses
import time

from app.connectors.tokens import MemoryTokenStore
from app.ops.watchdog import keep_alive
from app.ops.workspaces import add_workspace, list_workspaces
from app.sched import jobs
from app.sched.service import KEEPALIVE_ID, Scheduler
from app.store.db import Store
from app.store.models import ConnectionRow
from tests.support import in_process

DAY = 86400


def _world(tmp_path, crm="pipedrive", acct="xero"):
    store = Store(f"sqlite:///{tmp_path}/w.db")
    ws = add_workspace(store, "Acme Books", crm, acct)
    tokens = MemoryTokenStore()  # one token store for both, as in the app
    c, a = in_process(crm, "demo", tokens=tokens), in_process(acct, "demo", tokens=tokens)
    for side, conn in (("crm", c), ("accounting", a)):
        with store.session() as s:
            s.add(ConnectionRow(id=conn.conn.id, workspace_id=ws.id, side=side, provider=conn.conn.provider,
                                base_url="http://sandbox.test", auth_url=None, client_id="x", tenant_id=None,
                                label="Acme", extra={}))
    return store, c, a


def _age(tokens, conn_id, days):
    saved = tokens.load(conn_id)
    tokens.save(conn_id, dataclasses.replace(saved, refresh_issued_at=time.time() - days * DAY))


def test_an_idle_sign_in_past_half_its_life_is_renewed_and_a_fresh_one_left_alone(tmp_path):
    store, crm, acct = _world(tmp_path)
    _age(crm.tokens, acct.conn.id, 35)  # Xero: 60 days unused, so 35 is past half
    _age(crm.tokens, crm.conn.id, 10)  # Pipedrive: 60 days, 10 is fresh
    before = {cid: crm.tokens.load(cid) for cid in (crm.conn.id, acct.conn.id)}
    result = keep_alive(store, crm.tokens, open_fn=lambda *_: (crm.connector, acct.connector))
    assert result.renewed == ["Acme Books: xero"] and result.dead == [] and result.errors == []
    renewed = crm.tokens.load(acct.conn.id)
    assert renewed.refresh_token != before[acct.conn.id].refresh_token  # Xero rotated it: a new 60 days
    assert time.time() - renewed.refresh_issued_at < 60
    assert crm.tokens.load(crm.conn.id) == before[crm.conn.id]


def test_a_refused_renewal_marks_the_connection_for_reconnecting(tmp_path):
    store, crm, acct = _world(tmp_path)
    _age(crm.tokens, acct.conn.id, 59)
    acct.sandbox.state["oauth"]["refresh"].clear()  # the client revoked access in Xero meanwhile
    result = keep_alive(store, crm.tokens, open_fn=lambda *_: (crm.connector, acct.connector))
    assert result.dead == ["Acme Books: xero"] and result.renewed == []
    with store.session() as s:
        assert s.get(ConnectionRow, acct.conn.id).status == "reconnect"
    # and that workspace's scheduled syncs now stop without calling the provider
    again = keep_alive(store, crm.tokens, open_fn=lambda *_: (crm.connector, acct.connector))
    assert again.dead == [] and again.renewed == []


def test_the_scheduler_keeps_one_daily_keep_alive_job(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    add_workspace(store, "Acme Books", "hubspot", "xero")
    sched = Scheduler(store, jobs.Context(store, None))
    sched.start(paused=True)
    try:
        job = sched.scheduler.get_job(KEEPALIVE_ID)
        assert job is not None and list(job.args) == ["keepalive", "*"]
        assert "hour='4'" in str(job.trigger)
        sched.sync_jobs()
        assert sum(1 for j in sched.scheduler.get_jobs() if j.id == KEEPALIVE_ID) == 1
        assert all(info.workspace == "Acme Books" for info in sched.jobs())
        assert [w.name for w in list_workspaces(store)] == ["Acme Books"]
    finally:
        sched.shutdown(wait=False)
