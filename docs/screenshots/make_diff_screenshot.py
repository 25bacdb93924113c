"""Regenerate diff-view.png: a real conflict made on HubSpot and QuickBooks Online sandboxes over HTTP.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/make_diff_screenshot.py

A customer moved: the sales team typed the new address into HubSpot, the bookkeeper typed it into
QuickBooks from the letterhead, a little differently. The workspace's rules say "ask me" for
addresses, so the sync holds those fields back for review.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QThreadPool  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.connectors import registry  # noqa: E402
from app.connectors.base import Connection, CustomerWrite  # noqa: E402
from app.connectors.tokens import MemoryTokenStore  # noqa: E402
from app.ops import status  # noqa: E402
from app.ops.connect import connect  # noqa: E402
from app.ops.sync_run import run_sync  # noqa: E402
from app.ops.workspaces import add_workspace, save_connection, update_settings  # noqa: E402
from app.sandbox.registry import sandbox_class  # noqa: E402
from app.sandbox.server import serve  # noqa: E402
from app.store.db import Store  # noqa: E402

OUT = ROOT / "docs" / "screenshots" / "diff-view.png"
CUSTOMERS = [  # name, address, city, postcode
    ("Maple Grove Nursery", "14 Station Road", "Bramley", "GU5 0AA"),
    ("Stonebridge Bakery", "2 Mill Lane", "Ashby", "LE65 1AA"),
    ("Harbor Light Marine", "The Quay", "Penryn", "TR10 8AB"),
    ("Birchwood Furniture", "88 Cross Street", "Hollins", "M24 4AQ"),
    ("Copperleaf Catering", "5 Orchard Row", "Sandford", "BS25 5RA"),
    ("Lantern Books", "31 Market Place", "Thornton", "BD13 3HA"),
]
# name: {field: (in HubSpot, in QuickBooks)}
EDITS = {
    "Maple Grove Nursery": {"address_line1": ("Unit 4, Kingfisher Business Park", "Unit 4 Kingfisher Park"),
                            "postal_code": ("GU5 0QT", "GU5 0QB")},
    "Stonebridge Bakery": {"address_line1": ("2 Mill Lane, Ashby Industrial Estate", "PO Box 77")},
    "Harbor Light Marine": {"city": ("Falmouth", "Penryn, Falmouth")},
}
HUBSPOT_PROPS = {"address_line1": "address", "city": "city", "postal_code": "zip"}


def main() -> None:
    from app.ui.app import make_application
    from app.ui.main_window import MainWindow

    app = make_application()
    tokens = MemoryTokenStore()
    folder = Path(tempfile.mkdtemp(prefix="crossledger-shot-"))
    store = Store(f"sqlite:///{folder}/shot.db")
    ws = add_workspace(store, "Harbour & Finch Ltd", "hubspot", "quickbooks")
    servers = []
    conns = {}
    for provider in ("hubspot", "quickbooks"):
        sandbox = sandbox_class(provider)()
        sandbox.seed("empty")
        server = serve(sandbox)
        servers.append(server)
        conn = Connection(id=f"{provider}-{uuid.uuid4().hex[:8]}", provider=provider, base_url=server.url,
                          auth_url=server.url)
        connect(conn, tokens, client_secret="sandbox-secret", timeout=20)  # noqa: S106 - a sandbox's
        save_connection(store, ws, conn)
        conns[provider] = (sandbox, conn)
    try:
        update_settings(store, ws.name, rules={"address_line1": "ask", "city": "ask", "postal_code": "ask"})
        crm_sandbox, _ = conns["hubspot"]
        ids = {name: crm_sandbox.create("companies", name=name, address=a, city=c, zip=z, country="GB")
               for name, a, c, z in CUSTOMERS}
        run_sync(store, tokens, ws.name)
        links = {lk.crm_id: lk.acct_id for lk in status.linked_records(store, ws.id)}
        acct = registry.make_connector(conns["quickbooks"][1], tokens)
        for name, fields in EDITS.items():
            crm_sandbox.edit("companies", ids[name], **{HUBSPOT_PROPS[f]: v[0] for f, v in fields.items()})
            [cust] = acct.get_customers([links[ids[name]]])
            [res] = acct.update_customers([CustomerWrite(f"shot-{name}", cust.party.with_fields(
                {f: v[1] for f, v in fields.items()}), id=cust.id, version=cust.version)])
            assert res.ok, res.error
        acct.close()
        result = run_sync(store, tokens, ws.name)
        assert result.counts["conflicts"] == 4, result.counts

        window = MainWindow(store, tokens, pool=QThreadPool())
        window.resize(1280, 900)
        window.show()
        window.reload()
        page = window.page
        page.tabs.setCurrentWidget(page.review)
        page.review.select(0)
        page.review.diff.pick("crm", page.review.diff.rows[0])  # Address: keep HubSpot's
        page.review.diff.rows[1].use_left.setFocus()
        for _ in range(5):
            app.processEvents()
        window.grab().save(str(OUT))
        print(f"saved {OUT}")
        window.close()
    finally:
        for server in servers:
            server.stop()
        store.dispose()
    QApplication.processEvents()


if __name__ == "__main__":
    main()
