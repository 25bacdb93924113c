"""Give a connector whose provider lists records without their details (Zoho Books' contacts), or whose
field definitions cost a read each sync (Pipedrive's *Fields lists), the store's copy of them, shared by every
process on that account (app.store.detail_cache)."""

from __future__ import annotations

from typing import Any

from app.ops.budget import key_of
from app.store.db import Store
from app.store.detail_cache import StoreDetails


def attach(store: Store, connector: Any) -> None:
    conn = getattr(connector, "conn", None)
    if conn is not None and hasattr(connector, "details"):
        connector.details = StoreDetails(store, key_of(conn), connector.details_kind)
