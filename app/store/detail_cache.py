"""What a provider's list leaves out, read once and kept in the store for every process on that account.

Zoho Books lists contacts without their addresses and tax numbers, so a contact costs a GET whenever it is
read in full. Kept here with the ``last_modified_time`` it was read at, a new process (the CLI, the
scheduler, a second workstation) fetches a contact again only when the list shows another time.

A cache, never the record of truth: if the store cannot be reached the connector fetches as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.store.db import Store
from app.store.models import DetailCache

log = logging.getLogger("crossledger.detail_cache")
CHUNK = 500


class StoreDetails:
    """The ``details`` a connector reads and writes (app.connectors.zohobooks.Connector.details)."""

    def __init__(self, store: Store, account: str, kind: str) -> None:
        self.store, self.account, self.kind = store, account, kind

    def load(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """id -> (version, encoded detail) for those of ``ids`` kept here."""
        ids = list(dict.fromkeys(ids))
        out: dict[str, tuple[str, str]] = {}
        try:
            with self.store.session() as s:
                for start in range(0, len(ids), CHUNK):
                    for row in s.scalars(select(DetailCache).where(
                            DetailCache.account == self.account, DetailCache.kind == self.kind,
                            DetailCache.remote_id.in_(ids[start:start + CHUNK]))):
                        out[row.remote_id] = (row.version, row.data)
        except SQLAlchemyError as exc:
            log.warning("detail cache %s not available (%s); details are fetched", self.account, type(exc).__name__)
        return out

    def save(self, items: Iterable[tuple[str, str, str]]) -> None:
        """Keep (id, version, encoded detail) for each, replacing what was kept."""
        latest = {rid: (version, data) for rid, version, data in items}
        ids = list(latest)
        try:
            with self.store.session() as s:
                for start in range(0, len(ids), CHUNK):
                    part = ids[start:start + CHUNK]
                    kept = {row.remote_id: row for row in s.scalars(select(DetailCache).where(
                        DetailCache.account == self.account, DetailCache.kind == self.kind,
                        DetailCache.remote_id.in_(part)))}
                    for rid in part:
                        version, data = latest[rid]
                        row = kept.get(rid)
                        if row is None:
                            s.add(DetailCache(account=self.account, kind=self.kind, remote_id=rid, version=version,
                                              data=data))
                        else:
                            row.version, row.data = version, data
        except SQLAlchemyError as exc:  # another process kept the same one first, or no store: it is a cache
            log.warning("detail cache %s: could not keep %d details (%s)", self.account, len(ids), type(exc).__name__)
