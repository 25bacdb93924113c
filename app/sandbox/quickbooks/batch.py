"""QBO's batch: up to 30 items, run in order, each answered with its own Fault."""

from __future__ import annotations

from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.quickbooks.cdc import QboCdc
from app.sandbox.quickbooks.faults import QboFault, missing, unsupported
from app.sandbox.quickbooks.schema import API, BATCH_MAX, FIELDS


class QboBatch(QboCdc):
    """The /batch endpoint."""

    # -- API: batch ----------------------------------------------------------------------------------
    @route("POST", API + r"/batch")
    def batch(self, req: Request) -> Response:
        co = self._enter(req, batch=True)
        replay = self._replay(co, req, limit=36)
        if replay is not None:
            return replay
        body = self._body(req)
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise self._fail(missing("BatchItemRequest"))
        if len(items) > BATCH_MAX:
            raise self._fail(QboFault("1040", "Invalid batch request",
                                      f"Batch size {len(items)} exceeds the maximum of {BATCH_MAX} items.",
                                      "BatchItemRequest"))
        with_rid = req.arg("requestid") is not None
        seen: set[str] = set()
        for item in items:
            bid = str((item or {}).get("bId") or "") if isinstance(item, dict) else ""
            if not bid:
                raise self._fail(missing("bId"))
            if with_rid and len(bid) > 10:
                raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                          "With a requestid, each bId is at most 10 characters.", "bId"))
            if bid in seen:
                raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                          f"Duplicate bId {bid}", "bId"))
            seen.add(bid)
        answers = []
        for item in items:  # serially, in the order given
            answers.append(self._batch_item(co, item))
        answers.sort(key=lambda a: a["bId"])  # order of answers is not promised: match them by bId
        self.persist()
        return self._keep(co, req, self.ok({"BatchItemResponse": answers}))

    def _batch_item(self, co: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        bid = str(item["bId"])
        try:
            extra = set(item) - {"bId", "operation", "optionsData", "Query", *FIELDS}
            if extra:
                raise unsupported(sorted(extra)[0])
            if "Query" in item:
                return {"bId": bid, "QueryResponse": self.run_query(co, str(item["Query"]))}
            entities = [k for k in item if k in FIELDS]
            if len(entities) != 1:
                raise missing("an entity")
            entity = entities[0]
            operation = item.get("operation") or "create"
            if operation not in ("create", "update", "delete", "void"):
                raise QboFault("2010", "Request has invalid or unsupported property",
                               f"Unknown operation {operation}", "operation")
            return {"bId": bid, entity: self._write(co, entity, item[entity], operation)}
        except QboFault as err:
            return {"bId": bid, "Fault": err.fault()}

