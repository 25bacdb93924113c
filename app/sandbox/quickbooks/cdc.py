"""QBO's change data capture: 30 days back, 1,000 objects across entities, tombstones."""

from __future__ import annotations

from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.quickbooks.faults import QboFault, missing
from app.sandbox.quickbooks.query import QboQueries, _parse_when
from app.sandbox.quickbooks.schema import API, CDC_DAYS, CDC_ENTITIES, CDC_MAX


class QboCdc(QboQueries):
    """The /cdc endpoint."""

    # -- API: change data capture ---------------------------------------------------------------
    @route("GET", API + r"/cdc")
    def cdc(self, req: Request) -> Response:
        co = self._enter(req)
        try:
            return self.ok({"CDCResponse": [{"QueryResponse": self.run_cdc(co, req.arg("entities"),
                                                                             req.arg("changedSince"))}]})
        except QboFault as err:
            raise self._fail(err) from None

    def run_cdc(self, co: dict[str, Any], entities: str | None, since_text: str | None) -> list[dict[str, Any]]:
        if not entities:
            raise missing("entities")
        if not since_text:
            raise missing("changedSince")
        names = []
        for raw in entities.split(","):
            name = next((e for e in CDC_ENTITIES if e.lower() == raw.strip().lower()), None)
            if name is None:
                raise QboFault("4001", "Invalid query", f"CDC is not supported for entity {raw.strip()}",
                               "entities")
            names.append(name)
        try:
            since = _parse_when(since_text)
        except QboFault:
            raise QboFault("2010", "Request has invalid or unsupported property",
                           f"Invalid changedSince {since_text!r}", "changedSince") from None
        if since < self.now() - CDC_DAYS * 86400:
            raise QboFault("6000", "A business validation error has occurred while processing your request",
                           f"Operation cdc with changedSince date {since_text} which is older than fixed days is "
                           "not supported.", "changedSince")
        found: list[tuple[float, str, dict[str, Any]]] = []
        for name in names:
            for rec in co["entities"][name].values():
                if int(rec["_updated"]) >= since:
                    found.append((rec["_updated"], name, self.wire(co, name, rec)))
            for rec_id, when in co["deleted"].get(name, {}).items():
                if int(when) >= since:
                    found.append((when, name, {"Id": rec_id, "domain": "QBO", "status": "Deleted",
                                               "MetaData": {"LastUpdatedTime": self.ts(when)}}))
        found.sort(key=lambda f: f[0])
        found = found[:CDC_MAX]  # shared across entities, silently cut (reference §6.1)
        out = []
        for name in names:
            rows = [r for _, n, r in found if n == name]
            out.append({name: rows, "startPosition": 1, "maxResults": len(rows), "totalCount": len(rows)}
                       if rows else {})
        return out

