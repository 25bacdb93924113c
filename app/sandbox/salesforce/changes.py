"""Salesforce imitation: the replication API (getUpdated, getDeleted)."""

from __future__ import annotations

from app.sandbox.base import Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.salesforce.common import (
    DAY,
    DELETED_DAYS,
    UPDATED_DAYS,
    _fail,
    api,
    fmt_dt,
    parse_dt,
)


class Changes(SandboxPart):
    """The replication API (getUpdated, getDeleted)."""

    # -- replication -------------------------------------------------------------------------
    def _window(self, req: Request, days: int) -> tuple[float, float]:
        start_raw, end_raw = req.arg("start"), req.arg("end")
        if not start_raw or not end_raw:
            raise _fail(400, "MISSING_ARGUMENT", "start and end are both required")
        start, end = parse_dt(start_raw), parse_dt(end_raw)
        if start is None or end is None:
            shown = start_raw if start is None else end_raw
            raise _fail(400, "INVALID_REPLICATION_DATE", f"unable to parse date: {shown}")
        if end - start <= 60:
            raise _fail(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate by more "
                                                         "than one minute")
        now = self.now()
        if start < now - days * DAY:
            raise _fail(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago")
        start = start - start % 60  # seconds are ignored
        end = min(end, now)
        return start, end - end % 60

    @api("GET", r"/sobjects/(?P<sobject>\w+)/updated")
    def get_updated(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        start, end = self._window(req, UPDATED_DAYS)
        ids = [r["Id"] for r in self.state["records"][obj].values()
               if not r["IsDeleted"] and start <= r["SystemModstamp"] < end]
        if len(ids) > 600_000:
            raise _fail(400, "EXCEEDED_ID_LIMIT", "too many ids: choose start and end dates closer together")
        return Response(200, {"ids": ids, "latestDateCovered": fmt_dt(end)})

    @api("GET", r"/sobjects/(?P<sobject>\w+)/deleted")
    def get_deleted(self, req: Request) -> Response:
        obj = self._known(req.params["sobject"])
        start, end = self._window(req, DELETED_DAYS)
        log = self.state["deleted_log"][obj]
        earliest = min((e["deletedDate"] for e in log), default=self.now() - DELETED_DAYS * DAY)
        earliest = max(earliest, self.now() - DELETED_DAYS * DAY)
        records = [{"id": e["id"], "deletedDate": fmt_dt(e["deletedDate"])} for e in log
                   if start <= e["deletedDate"] < end]
        return Response(200, {"deletedRecords": records, "earliestDateAvailable": fmt_dt(earliest - earliest % 60),
                              "latestDateCovered": fmt_dt(end)})
